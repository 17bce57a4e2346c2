"""The namespaced install as a team's overlay renders it: the overlay docs/install.md shows
("One namespace only"), with the namespaces a test asks for. Tests render this, not copies."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from wukong.testing._assets import kubectl_binary

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "install.md"
HEAD = "# team-a/kustomization.yaml"


def documented_overlay() -> str:
    """The team-a overlay in docs/install.md, as written there."""
    text = DOC.read_text()
    start = text.index(HEAD)
    return text[start : text.index("```", start)]


def render_namespaced(
    directory: Path, operator_namespace: str, watch_namespace: str
) -> list[dict[str, Any]]:
    """`kubectl kustomize` of the documented overlay, written into `directory` (anywhere:
    it names this checkout by a relative path), running the operator in `operator_namespace`
    for the Wukongs of `watch_namespace`."""
    import subprocess

    directory.mkdir(parents=True, exist_ok=True)
    checkout = os.path.relpath(ROOT, directory)
    overlay = (
        documented_overlay()
        .replace("../wukong/", f"{checkout}/")
        .replace("operatorNamespace=wukong-team-a", f"operatorNamespace={operator_namespace}")
        .replace("watchNamespace=team-a", f"watchNamespace={watch_namespace}")
    )
    (directory / "kustomization.yaml").write_text(overlay)
    done = subprocess.run(
        [str(kubectl_binary()), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"kubectl kustomize {directory} failed:\n{done.stderr}"
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def operator_namespace(docs: list[dict[str, Any]]) -> str:
    """Where the rendered operator runs: its ServiceAccount's namespace."""
    (account,) = [d for d in docs if d["kind"] == "ServiceAccount"]
    return str(account["metadata"]["namespace"])


def watched_namespace(docs: list[dict[str, Any]]) -> str:
    """The namespace the rendered operator watches: its Deployment's WUKONG_NAMESPACE."""
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (value,) = [e["value"] for e in container["env"] if e["name"] == "WUKONG_NAMESPACE"]
    return str(value)
