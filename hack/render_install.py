"""Render the single-file install manifests, as kubebuilder's `make build-installer` does:

    python hack/render_install.py --kubectl PATH [--out dist]

writes dist/install.yaml (manifests/, the cluster-wide operator) and
dist/install-namespaced.yaml (manifests/namespaced/), each one `kubectl apply -f` away:

    kubectl apply --server-side -f https://…/install.yaml

`nox -s installer` runs it with the kubectl the local control plane builds;
tests/integration/test_manifests.py renders both and applies them with a server-side dry run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"install.yaml": "manifests", "install-namespaced.yaml": "manifests/namespaced"}
HEADER = (
    "# Wukong {version}: {what}.\n"
    "# Rendered from {source}/ by `nox -s installer` (hack/render_install.py); do not edit.\n"
)


def version() -> str:
    """The package version, read from wukong/__init__.py without importing it."""
    for line in (ROOT / "wukong" / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    raise SystemExit("no __version__ in wukong/__init__.py")


def render(kubectl: str, source: str) -> str:
    """`kubectl kustomize <source>` with a header naming where it came from."""
    done = subprocess.run(
        [kubectl, "kustomize", str(ROOT / source)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"kubectl kustomize {source} failed:\n{done.stderr}")
    what = "the operator for one namespace" if "namespaced" in source else "the operator"
    return HEADER.format(version=version(), what=what, source=source) + done.stdout


def main(argv: list[str] | None = None) -> int:
    """Write each variant into --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubectl", default="kubectl", help="kubectl binary (kustomize built in)")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="default: %(default)s")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, source in VARIANTS.items():
        path = args.out / name
        path.write_text(render(args.kubectl, source), encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
