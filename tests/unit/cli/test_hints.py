"""Commands the CLI advises are pasted as printed: they name the namespace they are about,
as the deletion-protection hint's `kubectl annotate wukong NAME -n NS …` always did."""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.unit.cli.objects import running, wukong
from tests.unit.cli.test_selection import FakeApiServer, kubeconfig
from wukong.adapters.kube import Kube
from wukong.cli import app
from wukong.console.invocation import typed
from wukong.errors import NotFound

__all__ = ["kubeconfig"]  # the fixture
JsonObj = dict[str, Any]


class OnlyInDemo(FakeApiServer):
    """The Wukongs live in namespace demo; the kubeconfig's context names none, so a
    command without -n asks namespace default and finds nothing, as on the audited cluster."""

    def __init__(self, *crs: JsonObj) -> None:
        super().__init__(*crs)
        self.missed: list[str] = []  # what was asked of another namespace

    async def request(self, method: str, path: str, **kwargs: Any) -> JsonObj:
        if "/namespaces/demo/" not in path:
            self.missed.append(path)
            raise NotFound(404, "NotFound", "not found", path=path)
        return await super().request(method, path, **kwargs)


def run(server: FakeApiServer, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setattr(Kube, "request", server.request)
    return CliRunner().invoke(app, list(args))


def test_an_advised_command_names_its_namespace() -> None:
    assert typed("start web-1", "demo") == "wukong start web-1 -n demo"
    assert typed("status web-1 -w", "demo") == "wukong status web-1 -w -n demo"


@pytest.mark.parametrize(
    ("cr", "args", "hint"),
    [
        pytest.param(
            wukong("web-3", status={"phase": "Stopped"}),
            ["fslist", "web-3"],
            r"start it first \((?P<hint>[^)]*)\)",
            id="fslist-stopped",
        ),
        pytest.param(
            wukong("web-3", status={"phase": "Stopped"}),
            ["soft-reboot", "web-3"],
            r"start it \((?P<hint>[^)]*)\)",
            id="soft-reboot-stopped",
        ),
        pytest.param(
            running("web-3"),
            ["delete", "web-3", "--yes"],
            r"follow it with: (?P<hint>[^)]*)\)",
            id="delete-follow",
        ),
    ],
)
def test_a_hint_pasted_as_printed_reaches_the_same_wukong(
    cr: JsonObj, args: list[str], hint: str, kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Audit: `wukong status web-3 -w`, `wukong start db-1`, printed for a Wukong in another
    namespace than the context's, failed as pasted: "not found in namespace default"."""
    server = OnlyInDemo(cr)
    said = run(server, monkeypatch, *args, "-n", "demo", "--kubeconfig", kubeconfig)
    found = re.search(hint, said.output)
    assert found is not None, said.output
    pasted = shlex.split(found["hint"])
    assert pasted[:1] == ["wukong"] and pasted[-2:] == ["-n", "demo"]
    # Pasted with the same kubeconfig and nothing else, it asks namespace demo, not default
    # (a start as a client dry run; `status -w` then watches, which needs a real cluster:
    # here it is refused, and reconnects until a --timeout).
    server.stored["web-3"] = running("web-3")
    check = ["--dry-run=client"] if pasted[1] == "start" else ["--timeout", "1s"]
    again = run(server, monkeypatch, *pasted[1:], *check, "--kubeconfig", kubeconfig)
    assert "not found" not in again.output
    assert server.missed == []
    if pasted[1] == "start":
        assert again.exit_code == 0, again.output
    else:
        assert again.stdout.splitlines()[1].split()[:2] == ["web-3", "Running"]
