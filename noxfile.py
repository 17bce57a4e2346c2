"""Task runner: `nox -s tests`, `nox -s demo`, `lint`, `bench`, `e2e`, `controlplane`,
`installer`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

# uv when it is installed (.ci/run installs it: about 40 s less per session), else venv.
nox.options.default_venv_backend = "uv|venv"
# pip compiles .pyc files when it installs, uv only when asked. Without them, and with
# PYTHONDONTWRITEBYTECODE set (as on CI machines), every Python process the tests start (the
# operator, the CLI, the demo) compiled its imports again: about 1.1 s more each.
os.environ.setdefault("UV_COMPILE_BYTECODE", "1")
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]

ROOT = Path(__file__).parent
BUILD_CONTROLPLANE = ROOT / "hack" / "controlplane" / "build.sh"
BUILD_KUBEVIRT = ROOT / "hack" / "kubevirt" / "build.sh"


def _controlplane_assets(session: nox.Session) -> str:
    """Build (once, cached) or locate kube-apiserver, etcd, kube-controller-manager and kubectl."""
    out = session.run(str(BUILD_CONTROLPLANE), silent=True, external=True)
    assert isinstance(out, str)
    return out.strip().splitlines()[-1]


def _kubevirt_assets(session: nox.Session) -> str:
    """Build (once, cached) or locate KubeVirt's virt-api, virt-controller and their CRDs."""
    out = session.run(str(BUILD_KUBEVIRT), silent=True, external=True)
    assert isinstance(out, str)
    return out.strip().splitlines()[-1]


def _kubevirt_env(session: nox.Session) -> dict[str, str]:
    """WUKONG_KUBEVIRT=real (default: KubeVirt's own components) or sim (the pure simulator)."""
    mode = os.environ.get("WUKONG_KUBEVIRT", "real")
    if mode not in ("real", "sim"):
        session.error(f"WUKONG_KUBEVIRT must be real or sim, not {mode!r}")
    env = {"WUKONG_KUBEVIRT": mode}
    if mode == "real":
        env["WUKONG_KUBEVIRT_ASSETS"] = _kubevirt_assets(session)
    return env


@nox.session
def controlplane(session: nox.Session) -> None:
    """Build the local control plane and KubeVirt's components, or report the cached binaries."""
    assets = _controlplane_assets(session)
    kubevirt = _kubevirt_assets(session)
    for folder in (assets, kubevirt):
        for binary in sorted(Path(folder).iterdir()):
            size = binary.stat().st_size / 2**20
            session.log(f"{binary.name:28} {size:7.1f} MiB")
    session.log(f"KUBEBUILDER_ASSETS={assets}")
    session.log(f"WUKONG_KUBEVIRT_ASSETS={kubevirt}")


@nox.session
def tests(session: nox.Session) -> None:
    """Unit and integration tests on a real kube-apiserver + etcd and KubeVirt's own virt-api
    and virt-controller (WUKONG_KUBEVIRT=sim: the pure simulator instead).

    Two pytest-xdist workers, each with its own control plane: most of an integration test is
    waiting on the cluster, so two of them share the 2 cores we test on with room to spare
    (the integration tests took 620 s instead of ~840). WUKONG_TEST_WORKERS=0 runs them in
    one process; `nox -s tests -- -n 4` overrides too."""
    session.install("-e", ".[dev]")
    env = {"KUBEBUILDER_ASSETS": _controlplane_assets(session), **_kubevirt_env(session)}
    workers = ["-n", os.environ.get("WUKONG_TEST_WORKERS", "2")]
    session.run("pytest", *workers, "tests/unit", "tests/integration", *session.posargs, env=env)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format), mypy --strict, import layering, and the committed CRD being
    up to date."""
    session.install("-e", ".[dev]")
    session.run("ruff", "check", "wukong", "tests", "bench", "noxfile.py")
    session.run("ruff", "format", "--check", "wukong", "tests", "bench", "noxfile.py")
    session.run("mypy", "wukong")
    session.run("lint-imports")
    session.run("python", "-m", "wukong.api.crd", "--check")


@nox.session
def demo(session: nox.Session) -> None:
    """Start the local control plane and the simulator, run the operator, apply examples/."""
    session.install("-e", ".[testing]")
    env = {"KUBEBUILDER_ASSETS": _controlplane_assets(session), **_kubevirt_env(session)}
    mode = ["--kubevirt", env["WUKONG_KUBEVIRT"]]
    session.run("wukong", "demo", *mode, *session.posargs, env=env)


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark: writes bench/results.json and bench/results.png."""
    session.install("-e", ".[dev]", "matplotlib", "psutil", "py-spy")
    env = {"KUBEBUILDER_ASSETS": _controlplane_assets(session)}
    session.run("python", "-m", "bench", *session.posargs, env=env)


@nox.session
def e2e(session: nox.Session) -> None:
    """End-to-end on kind + KubeVirt + CDI + Multus; skips, with the reason, without an engine."""
    missing = [tool for tool in ("docker", "kind", "kubectl") if shutil.which(tool) is None]
    reason = ""
    if missing:
        reason = f"missing {', '.join(missing)} on PATH"
    elif session.run("docker", "info", silent=True, success_codes=[0, 1], external=True) is None:
        reason = "docker is installed but no engine answers `docker info`"
    if reason:
        session.skip(f"e2e needs kind + a container engine: {reason}. See docs/e2e.md.")
    session.install("-e", ".[dev]")
    session.run("bash", "tests/e2e/run.sh", *session.posargs, external=True, env=dict(os.environ))


@nox.session(python=False)
def installer(session: nox.Session) -> None:
    """dist/install.yaml and dist/install-namespaced.yaml: the kustomize bases as one file each
    (kubebuilder's build-installer), rendered with the control plane's kubectl."""
    kubectl = Path(_controlplane_assets(session)) / "kubectl"
    session.run(
        "python3", str(ROOT / "hack" / "render_install.py"), "--kubectl", str(kubectl),
        "--out", str(ROOT / "dist"), *session.posargs, external=True,
    )  # fmt: skip
