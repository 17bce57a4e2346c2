"""`-l` over several Wukongs: `delete` checks every plan before the first write, lifecycle
verbs go on past one that fails and name each failure. The whole CLI runs against a fake
API server at the one seam, `Kube.request`."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.unit.cli.objects import IMAGE, running
from wukong.adapters.kube import Kube
from wukong.api import names
from wukong.cli import app
from wukong.errors import ApiError, Forbidden, NotFound

JsonObj = dict[str, Any]
PROTECTED = {names.ANNOTATION_DELETION_PROTECTION: "true"}
DATA = [{"name": "system", "size": "10Gi", "image": IMAGE}, {"name": "data", "size": "1Gi"}]
ALREADY_RUNNING = "cannot start: the VM is already running"


def merged(target: Any, patch: Any) -> Any:
    """RFC 7386, as the API server applies a merge patch."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merged(out.get(key), value)
    return out


class FakeApiServer:
    """Stored Wukongs (all labelled grp=t); records every write; a write to a name in
    `refuse` fails with that error. `answer` plays the operator: after a lifecycle patch,
    the next read shows what it returns."""

    def __init__(self, *crs: JsonObj, refuse: dict[str, ApiError] | None = None) -> None:
        self.stored = {cr["metadata"]["name"]: cr for cr in crs}
        for cr in crs:
            cr["metadata"].setdefault("labels", {"grp": "t"})
        self.refuse = refuse or {}
        self.writes: list[tuple[str, str]] = []
        self.answer: Any = None

    async def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> JsonObj:
        name = path.rsplit("/wukongs", 1)[1].strip("/")
        if not name:
            return {"metadata": {"resourceVersion": "50"}, "items": list(self.stored.values())}
        if name not in self.stored:
            raise NotFound(404, "NotFound", f'wukongs "{name}" not found', path=path)
        if method == "GET":
            return copy.deepcopy(self.stored[name])
        self.writes.append((method, name))
        if name in self.refuse:
            raise self.refuse[name]
        cr = self.stored[name]
        if method == "DELETE":
            cr["metadata"]["deletionTimestamp"] = "2026-05-01T12:00:00Z"
            return {}
        cr.update(merged(cr, {k: v for k, v in body.items() if k != "metadata"}))
        cr["metadata"]["generation"] += 1
        sent = copy.deepcopy(cr)
        if self.answer is not None and "lifecycleAction" in body.get("spec", {}):
            self.answer(cr)
        return sent


@pytest.fixture
def kubeconfig(tmp_path: Path) -> str:
    path = tmp_path / "config"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    return str(path)


def wukong_cli(
    server: FakeApiServer, kubeconfig: str, monkeypatch: pytest.MonkeyPatch, *args: str
) -> Any:
    monkeypatch.setattr(Kube, "request", server.request)
    return CliRunner().invoke(app, [*args, "-n", "demo", "--kubeconfig", kubeconfig])


def deleting(name: str) -> JsonObj:
    cr = running(name)
    cr["metadata"]["deletionTimestamp"] = "2026-05-01T11:59:00Z"
    cr["status"]["deletion"] = {"step": "StopVM"}
    return cr


def test_delete_over_a_selection_deletes_nothing_when_one_is_protected(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeApiServer(
        running("t1"), running("t2"), running("t3", annotations=PROTECTED), running("t4")
    )
    result = wukong_cli(server, kubeconfig, monkeypatch, "delete", "-l", "grp=t", "-y")
    assert result.exit_code == 1, result.output
    assert server.writes == []
    assert result.stdout == ""  # no plan shown: none of them will be carried out
    assert result.stderr.splitlines() == [
        "error: t3 is protected from deletion by the annotation "
        f"{names.ANNOTATION_DELETION_PROTECTION}=true; remove it first: kubectl annotate "
        f"wukong t3 -n demo {names.ANNOTATION_DELETION_PROTECTION}-",
        "error: nothing was deleted: 1 of 4 Wukongs cannot be deleted as asked",
    ]


def test_keeping_a_disk_one_selected_wukong_lacks_deletes_none_and_exits_2(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeApiServer(running("k1", disks=DATA), running("k2"))
    result = wukong_cli(
        server, kubeconfig, monkeypatch, "delete", "-l", "grp=t", "--keep", "data", "-y"
    )
    assert result.exit_code == 2, result.output  # nothing written: the command line is wrong
    assert server.writes == []
    assert result.stderr.splitlines() == [
        "error: k2 has no disk data (disks: system)",
        "error: nothing was deleted: 1 of 2 Wukongs cannot be deleted as asked",
    ]


def test_every_problem_of_a_selection_is_named_before_anything_is_deleted(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeApiServer(
        running("k1", disks=DATA), running("k2"), running("k3", annotations=PROTECTED),
        deleting("k4"), running("k5", disks=DATA),
    )  # fmt: skip
    result = wukong_cli(
        server, kubeconfig, monkeypatch, "delete", "-l", "grp=t", "--keep", "data", "-y"
    )
    assert result.exit_code == 1, result.output  # not only the command line: a refusal
    assert server.writes == []
    lines = result.stderr.splitlines()
    assert [line.split(" ")[1] for line in lines] == ["k2", "k3", "k4", "nothing"]
    assert lines[2] == (
        "error: k4 is already being deleted (step StopVM): too late to change what it keeps"
    )
    assert lines[3] == "error: nothing was deleted: 3 of 5 Wukongs cannot be deleted as asked"


def test_one_named_wukong_that_cannot_be_deleted_is_one_line_as_before(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeApiServer(running("k2"))
    result = wukong_cli(server, kubeconfig, monkeypatch, "delete", "k2", "--keep", "data", "-y")
    assert (result.exit_code, result.stderr) == (2, "error: k2 has no disk data (disks: system)\n")
    assert server.writes == []


def test_a_delete_the_server_refuses_does_not_stop_the_others(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    no = Forbidden(403, "Forbidden", 'wukongs "t2" is forbidden: denied by policy', path="/x")
    server = FakeApiServer(running("t1"), running("t2"), running("t3"), refuse={"t2": no})
    result = wukong_cli(server, kubeconfig, monkeypatch, "delete", "-l", "grp=t", "-y")
    assert result.exit_code == 1, result.output
    assert server.writes == [("DELETE", "t1"), ("DELETE", "t2"), ("DELETE", "t3")]
    assert "wukong t1 is being deleted" in result.stdout
    assert "wukong t3 is being deleted" in result.stdout
    assert result.stderr == 'error: t2: wukongs "t2" is forbidden: denied by policy\n'


def test_a_lifecycle_verb_goes_on_past_a_wukong_that_fails_and_names_each_failure(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    no = Forbidden(403, "Forbidden", "denied by policy", path="/x")
    server = FakeApiServer(
        running("k4"), deleting("k5"), running("k6"), running("k7"), refuse={"k6": no}
    )
    result = wukong_cli(server, kubeconfig, monkeypatch, "stop", "-l", "grp=t")
    assert result.exit_code == 1, result.output
    assert server.writes == [("PATCH", "k4"), ("PATCH", "k6"), ("PATCH", "k7")]
    assert result.stdout.splitlines() == [
        "stop requested for k4 (generation 4)",
        "stop requested for k7 (generation 4)",
    ]
    assert result.stderr.splitlines() == [
        "error: k5 is being deleted: it takes no more requests",
        "error: k6: denied by policy",
    ]


def test_one_named_wukong_being_deleted_is_refused_as_before(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeApiServer(deleting("k5"))
    result = wukong_cli(server, kubeconfig, monkeypatch, "stop", "k5")
    assert result.exit_code == 1
    assert result.stderr == "error: k5 is being deleted: it takes no more requests\n"
