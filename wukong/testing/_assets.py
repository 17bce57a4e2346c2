"""Where the control-plane binaries are: $KUBEBUILDER_ASSETS, the build script, or its cache."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

BINARIES = ("kube-apiserver", "etcd", "kube-controller-manager")
_REPO_ROOT = Path(__file__).resolve().parents[2]
_BUILD_SCRIPT = _REPO_ROOT / "hack" / "controlplane" / "build.sh"


class ControlPlaneError(RuntimeError):
    """The control plane could not be found, built or started; the message carries log tails."""


def has_binaries(folder: Path, names: Sequence[str] = BINARIES) -> bool:
    """True when every named binary is an executable file in `folder`."""
    return all(os.access(folder / name, os.X_OK) for name in names)


def assets_dir() -> Path:
    """The folder holding kube-apiserver, etcd and kube-controller-manager, building them if needed.

    Order: $KUBEBUILDER_ASSETS (envtest's convention) when it holds kube-apiserver and etcd; else
    hack/controlplane/build.sh of this checkout (cached, a no-op once built; a cold build takes
    ~10 min); else the newest complete version in the build cache ($WUKONG_CONTROLPLANE_CACHE,
    default ~/.cache/wukong/controlplane), for an installed wukong without the checkout.
    """
    env = os.environ.get("KUBEBUILDER_ASSETS")
    if env and has_binaries(Path(env), BINARIES[:2]):
        return Path(env)
    if _BUILD_SCRIPT.is_file():
        result = subprocess.run(
            ["bash", str(_BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False
        )
        lines = result.stdout.strip().splitlines()
        if result.returncode == 0 and lines:
            return Path(lines[-1])
        raise ControlPlaneError(f"{_BUILD_SCRIPT} failed with exit code {result.returncode}")
    cache = Path(
        os.environ.get("WUKONG_CONTROLPLANE_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wukong/controlplane"
    )
    complete = [d for d in sorted(cache.glob("v*"), reverse=True) if has_binaries(d)]
    if complete:
        return complete[0]
    raise ControlPlaneError(
        "no control-plane binaries: set KUBEBUILDER_ASSETS to a folder with kube-apiserver, etcd "
        f"and kube-controller-manager, or run hack/controlplane/build.sh (looked in {cache})"
    )


def kubectl_binary() -> Path:
    """kubectl of the control plane's version, else the one on PATH.

    hack/controlplane/build.sh builds it beside the control plane, and envtest ships it in
    $KUBEBUILDER_ASSETS too; assets without it (or no assets at all) fall back to PATH.
    """
    try:
        folder = assets_dir()
    except ControlPlaneError as error:
        problem = str(error)
    else:
        if has_binaries(folder, ("kubectl",)):
            return folder / "kubectl"
        problem = f"{folder} has no kubectl"
    found = shutil.which("kubectl")
    if found:
        return Path(found)
    raise ControlPlaneError(
        f"no kubectl: {problem} and none is on PATH; run hack/controlplane/build.sh (it builds "
        "kubectl beside the control plane) or put kubectl on PATH"
    )
