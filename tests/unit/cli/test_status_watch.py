"""`status -w -o json|yaml` prints every Wukong as a document of its own, the listed ones as
the changes after them, as `kubectl get -w` does: it printed a v1 List first, then bare
objects, two shapes in one stream (CLI audit, session 48). Against the local API server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.unit.cli.apiserver import ApiServer, Stream
from tests.unit.cli.objects import running
from wukong.cli import app

JsonObj = dict[str, Any]


def json_documents(text: str) -> list[JsonObj]:
    decoder, docs, at = json.JSONDecoder(), [], 0
    while text[at:].strip():
        at += len(text[at:]) - len(text[at:].lstrip())
        doc, at = decoder.raw_decode(text, at)
        docs.append(doc)
    return docs


def watched(tmp_path: Path, *args: str) -> Any:
    changed = running("web-1")
    changed["status"]["phase"] = "Stopping"
    changed["metadata"]["resourceVersion"] = "43"
    with ApiServer(tmp_path, running("web-1"), running("web-2")) as server:
        server.watches = [Stream([("MODIFIED", changed)])]
        argv = ["status", *args, "--timeout", "1s", "-n", "demo"]
        return CliRunner().invoke(app, [*argv, "--kubeconfig", server.kubeconfig])


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_every_wukong_is_a_document_of_its_own(tmp_path: Path, fmt: str) -> None:
    result = watched(tmp_path, "-w", "-o", fmt)
    assert result.exit_code == 0, result.output
    if fmt == "json":
        docs = json_documents(result.stdout)
    else:
        assert not result.stdout.startswith("---")  # a separator between documents only
        docs = list(yaml.safe_load_all(result.stdout))
    assert [d["kind"] for d in docs] == ["Wukong"] * 3
    assert [(d["metadata"]["name"], d["status"]["phase"]) for d in docs] == [
        ("web-1", "Running"),
        ("web-2", "Running"),
        ("web-1", "Stopping"),
    ]


def test_one_named_wukong_starts_as_status_name_prints_it(tmp_path: Path) -> None:
    with ApiServer(tmp_path, running("web-1")) as server:
        argv = ["status", "web-1", "-o", "json", "-n", "demo", "--kubeconfig", server.kubeconfig]
        alone = CliRunner().invoke(app, argv)
    watching = watched(tmp_path, "web-1", "-w", "-o", "json")
    assert watching.exit_code == 0, watching.output
    assert json_documents(watching.stdout)[0] == json.loads(alone.stdout)
