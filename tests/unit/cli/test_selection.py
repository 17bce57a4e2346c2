"""`-l` over several Wukongs: `delete` checks every plan before the first write, lifecycle
verbs go on past one that fails and name each failure, and a client dry run prints one
document. The whole CLI runs against a fake API server at the one seam, `Kube.request`."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.unit.cli.objects import IMAGE, running, wukong
from wukong.adapters.kube import Kube
from wukong.api import names
from wukong.cli import app
from wukong.console import commands, options
from wukong.console.flows import common
from wukong.console.output import Output, patches_text
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
    """Stored Wukongs (all labelled grp=t) and `services`; records every write; a write to a
    name in `refuse` fails with that error. `answer` plays the operator: after a lifecycle patch,
    the next read shows what it returns."""

    def __init__(self, *crs: JsonObj, refuse: dict[str, ApiError] | None = None) -> None:
        self.stored = {cr["metadata"]["name"]: cr for cr in crs}
        for cr in crs:
            cr["metadata"].setdefault("labels", {"grp": "t"})
        self.refuse = refuse or {}
        self.writes: list[tuple[str, str]] = []
        self.answer: Any = None
        self.services: list[JsonObj] | None = []  # None: the user may not list them

    async def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> JsonObj:
        if path.endswith("/services"):  # `delete` lists the Services `expose` made
            if self.services is None:
                raise Forbidden(403, "Forbidden", 'services is forbidden: User "u"', path=path)
            return {"items": self.services}
        if "/kubevirt.io/v1/" in path:  # the access verbs ask for a VMI: there is none
            raise NotFound(404, "NotFound", "not found", path=path)
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


def test_keeping_a_disk_one_selected_wukong_lacks_deletes_none_and_exits_1(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeApiServer(running("k1", disks=DATA), running("k2"))
    result = wukong_cli(
        server, kubeconfig, monkeypatch, "delete", "-l", "grp=t", "--keep", "data", "-y"
    )
    assert result.exit_code == 1, result.output  # a disk k2 lacks: not found, as detach's
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
    assert (result.exit_code, result.stderr) == (1, "error: k2 has no disk data (disks: system)\n")
    assert server.writes == []


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["detach", "k2", "nope", "-y"], id="detach"),
        pytest.param(["delete", "k2", "--keep", "nope", "-y"], id="delete-keep"),
        pytest.param(["resize", "k2", "--disk", "nope=2Gi"], id="resize"),
    ],
)
def test_a_disk_the_wukong_lacks_is_the_same_line_and_exit_1_for_every_verb(
    args: list[str], kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`detach web-1 nosuch` exited 1 and `delete --keep nosuch` 2 (CLI audit s44, F17): a
    disk missing from the Wukong is "not found" (exit 1), as a missing Wukong is."""
    server = FakeApiServer(running("k2"))
    result = wukong_cli(server, kubeconfig, monkeypatch, *args)
    assert (result.exit_code, result.stderr) == (1, "error: k2 has no disk nope (disks: system)\n")
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
    server.answer = accept
    result = wukong_cli(server, kubeconfig, monkeypatch, "stop", "-l", "grp=t")
    assert result.exit_code == 1, result.output
    assert server.writes == [("PATCH", "k4"), ("PATCH", "k6"), ("PATCH", "k7")]
    assert result.stdout.splitlines() == [
        f"stop requested for k4 (generation 4): Accepted: {ACCEPTED}",
        f"stop requested for k7 (generation 4): Accepted: {ACCEPTED}",
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


ACCEPTED = "recorded; KubeVirt is asked next"


def accept(cr: JsonObj) -> None:
    """The operator's first answer to any request: it took it."""
    generation = cr["metadata"]["generation"]
    cr["status"]["lifecycleState"] = {
        "requestId": f"r{generation}",
        "generation": generation,
        "state": "Accepted",
        "message": ACCEPTED,
    }


def test_without_wait_a_refusal_is_an_error_at_once_as_virtctl_s(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Session 26's note: `wukong start web-1` on a running VM printed "start requested" and
    exited 0, the refusal only in `wukong status`. virtctl fails at once (virt-api refuses
    synchronously); the CLI now reads the operator's first answer before it returns."""
    t4 = running("t4")
    t4["status"]["phase"] = "Stopped"
    server = FakeApiServer(running("t1"), t4)
    server.answer = refuse_start_unless_stopped
    one = wukong_cli(server, kubeconfig, monkeypatch, "start", "t1")
    assert (one.exit_code, one.stdout) == (1, "")
    assert one.stderr == f"error: start refused: {ALREADY_RUNNING}\n"
    several = wukong_cli(server, kubeconfig, monkeypatch, "start", "-l", "grp=t")
    assert several.exit_code == 1, several.output
    assert several.stdout == "start requested for t4 (generation 4): Done\n"
    assert several.stderr == f"error: t1: start refused: {ALREADY_RUNNING}\n"


def test_without_wait_an_operator_that_does_not_answer_is_said_and_the_request_stands(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def never(*_: Any, **__: Any) -> Any:
        await asyncio.Event().wait()

    monkeypatch.setattr(common, "ACK_SECONDS", 0.05)
    monkeypatch.setattr(common, "wait_for", never)
    server = FakeApiServer(running("t1"))
    result = wukong_cli(server, kubeconfig, monkeypatch, "stop", "t1")
    assert result.exit_code == 0, result.output
    assert result.stdout == "stop requested for t1 (generation 4)\n"
    assert result.stderr == (
        "warning: t1: the operator has not answered in 0.05s; "
        "`wukong status t1 -n demo` shows its answer when it comes\n"
    )
    assert server.writes == [("PATCH", "t1")]


def refuse_start_unless_stopped(cr: JsonObj) -> None:
    """The operator's answer to a start: done for a stopped Wukong, refused otherwise."""
    generation = cr["metadata"]["generation"]
    if cr["status"]["phase"] == "Stopped":
        cr["status"] |= {"phase": "Running"}
        answer = {"state": "Done", "message": "start done"}
    else:
        answer = {"state": "Refused", "message": ALREADY_RUNNING}
    cr["status"]["lifecycleState"] = {"requestId": f"r{generation}", "generation": generation}
    cr["status"]["lifecycleState"] |= answer


def test_waiting_on_a_selection_names_the_wukong_on_every_line(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # t1 and t3 answered an earlier start with the very words they will answer this one.
    earlier = {"requestId": "r1", "generation": 1, "state": "Refused", "message": ALREADY_RUNNING}
    t1, t3, t4 = running("t1"), running("t3"), running("t4")
    t1["status"]["lifecycleState"] = dict(earlier)
    t3["status"]["lifecycleState"] = dict(earlier)
    t4["status"]["phase"] = "Stopped"
    server = FakeApiServer(t1, t3, t4)
    server.answer = refuse_start_unless_stopped
    result = wukong_cli(
        server, kubeconfig, monkeypatch, "start", "-l", "grp=t", "--wait", "--timeout", "10s"
    )
    assert result.exit_code == 1, result.output
    assert result.stdout == "t4 is Running on node-1 at 10.244.0.7\n"
    lines = result.stderr.splitlines()
    names_one = [n for n in ("t1", "t3", "t4") for line in lines if f" {n}" in f" {line}"]
    assert len(names_one) == len(lines), lines  # each line names exactly one Wukong
    for name in ("t1", "t3"):  # the new refusal is told, though worded as the last one
        assert f"{name}: Refused: {ALREADY_RUNNING}" in lines
    assert "t4: Stopped -> Running" in lines
    assert lines[-2:] == [
        f"error: t1: start refused: {ALREADY_RUNNING}",
        f"error: t3: start refused: {ALREADY_RUNNING}",
    ]


def test_a_client_dry_run_of_delete_prints_the_patch_alone_on_stdout(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeApiServer(running("web-1"))
    args = ("delete", "web-1", "--dry-run=client", "--keep-disks", "-o", "json")
    result = wukong_cli(server, kubeconfig, monkeypatch, *args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "metadata": {"resourceVersion": "42"},
        "spec": {"deleteOptions": {"preserveDisks": True}},
    }
    assert "Deleting Wukong web-1 in namespace demo:" in result.stderr
    assert "wukong web-1 would be deleted (client dry run)" in result.stderr
    assert server.writes == []
    # Nothing to write before the DELETE: nothing on stdout.
    plain = wukong_cli(server, kubeconfig, monkeypatch, "delete", "web-1", "--dry-run=client")
    assert (plain.exit_code, plain.stdout) == (0, "")
    assert "would be deleted (client dry run)" in plain.stderr


@pytest.mark.parametrize("verb", ["delete", "stop"])
def test_a_client_dry_run_over_a_selection_prints_one_json_list_or_yaml_documents(
    verb: str, kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeApiServer(running("t1"), running("t2"))
    flags = ("--force",) if verb == "delete" else ()
    args = (verb, "-l", "grp=t", "--dry-run=client", *flags)
    as_json = wukong_cli(server, kubeconfig, monkeypatch, *args, "-o", "json")
    assert as_json.exit_code == 0, as_json.output
    listed = json.loads(as_json.stdout)
    assert (listed["apiVersion"], listed["kind"], len(listed["items"])) == ("v1", "List", 2)
    assert as_json.stderr.count("# PATCH wukong.vm.novasphere.dev/t") == 2
    as_yaml = wukong_cli(server, kubeconfig, monkeypatch, *args, "-o", "yaml")
    documents = list(yaml.safe_load_all(as_yaml.stdout))
    assert [sorted(d["spec"]) for d in documents] == [sorted(i["spec"]) for i in listed["items"]]
    assert server.writes == []


def test_a_selection_with_nothing_to_patch_is_still_one_json_document(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeApiServer(wukong("t1"))
    args = ("delete", "-l", "grp=t", "--dry-run=client", "-o", "json")
    result = wukong_cli(server, kubeconfig, monkeypatch, *args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"apiVersion": "v1", "kind": "List", "items": []}


def test_several_patches_are_one_json_list_and_yaml_documents() -> None:
    patches = [{"spec": {"n": 1}}, {"spec": {"n": 2}}]
    listed = json.loads(patches_text(patches, Output.JSON, listed=False) or "")
    assert listed == {"apiVersion": "v1", "kind": "List", "items": patches}
    assert list(yaml.safe_load_all(patches_text(patches, None, listed=True) or "")) == patches
    one = patches_text(patches[:1], Output.JSON, listed=False)
    assert json.loads(one or "") == patches[0]  # a named Wukong's patch: alone, as before
    assert patches_text([], Output.YAML, listed=True) is None


def test_several_names_are_taken_as_kubectl_takes_them(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review s22: `wukong stop t1 t2` was "unexpected extra argument"; kubectl takes several
    NAMEs. Each is acted on once, in the order given."""
    server = FakeApiServer(running("t1"), running("t2"), running("t3"))
    server.answer = accept
    result = wukong_cli(server, kubeconfig, monkeypatch, "stop", "t2", "t1", "t2")
    assert result.exit_code == 0, result.output
    assert server.writes == [("PATCH", "t2"), ("PATCH", "t1")]
    deleted = wukong_cli(server, kubeconfig, monkeypatch, "delete", "t1", "t3", "-y")
    assert deleted.exit_code == 0, deleted.output
    assert [w for w in server.writes if w[0] == "DELETE"] == [("DELETE", "t1"), ("DELETE", "t3")]


def test_a_missing_name_among_several_writes_nothing(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeApiServer(running("t1"))
    result = wukong_cli(server, kubeconfig, monkeypatch, "stop", "t1", "nosuch")
    assert result.exit_code == 1 and server.writes == []
    assert "wukong nosuch not found in namespace demo" in result.stderr
    both = wukong_cli(server, kubeconfig, monkeypatch, "stop", "t1", "-l", "grp=t")
    assert both.exit_code == 2 and "do not go together" in both.stderr


def test_a_client_dry_run_of_detach_prints_its_two_patches_as_one_document(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: `detach --dry-run=client -o json` printed its two patches (the detach options,
    then the removal) as two bare JSON objects, which no JSON reader takes."""
    server = FakeApiServer(running("web-1", disks=DATA))
    args = ("detach", "web-1", "data", "--keep-data", "--dry-run=client")
    as_json = wukong_cli(server, kubeconfig, monkeypatch, *args, "-o", "json")
    assert as_json.exit_code == 0, as_json.output
    listed = json.loads(as_json.stdout)
    assert (listed["apiVersion"], listed["kind"]) == ("v1", "List")
    options, removal = listed["items"]
    assert options["spec"]["disks"][1]["detachOptions"] == {"force": False, "preserveData": True}
    assert [d["name"] for d in removal["spec"]["disks"]] == ["system"]
    assert as_json.stderr.count("# PATCH wukong.vm.novasphere.dev/web-1") == 2
    as_yaml = wukong_cli(server, kubeconfig, monkeypatch, *args, "-o", "yaml")
    assert list(yaml.safe_load_all(as_yaml.stdout)) == listed["items"]
    assert server.writes == []


def on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """`delete` asks as on a terminal (CliRunner's stdin is not one); `input` answers."""
    monkeypatch.setattr(
        commands, "asker", lambda yes, what: options.asker(yes, what, terminal=True)
    )


def test_delete_over_a_selection_shows_every_plan_then_asks_once(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: `delete -l` asked `Delete Wukong NAME?` once per Wukong, each after its own
    plan. As kubectl: every plan (what goes, what stays), one question, then every delete."""
    server = FakeApiServer(running("t1"), running("t2"), running("t3"))
    on_a_terminal(monkeypatch)
    monkeypatch.setattr(Kube, "request", server.request)
    where = ["-n", "demo", "--kubeconfig", kubeconfig]
    no = CliRunner().invoke(app, ["delete", "-l", "grp=t", *where], input="n\n")
    assert no.exit_code == 1, no.output
    assert no.stderr.count("[y/N]") == 1
    assert "Delete 3 Wukongs (t1, t2, t3)? [y/N]" in no.stderr
    assert "error: not confirmed: nothing was deleted" in no.stderr
    assert server.writes == []
    yes = CliRunner().invoke(app, ["delete", "t1", "t2", *where], input="y\n")
    assert yes.exit_code == 0, yes.output
    assert yes.stderr.count("[y/N]") == 1
    lines = yes.stdout.splitlines()
    plans_end = lines.index("  delete  VirtualMachine t2-vm (graceful stop, up to 60s)")
    assert lines[0] == "Deleting Wukong t1 in namespace demo:"
    assert "Deleting Wukong t2 in namespace demo:" in lines[:plans_end]
    assert all("is being deleted" not in line for line in lines[:plans_end])
    assert lines[-2:] == [
        "wukong t1 is being deleted (follow it with: wukong status t1 -w -n demo)",
        "wukong t2 is being deleted (follow it with: wukong status t2 -w -n demo)",
    ]
    assert server.writes == [("DELETE", "t1"), ("DELETE", "t2")]


def test_delete_names_the_services_each_wukong_owns_or_says_it_cannot_see_them(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeApiServer(running("t1"), running("t2"))
    owner = [{"kind": "Wukong", "name": "t2", "uid": "uid-t2"}]
    server.services = [{"metadata": {"name": "t2-ssh", "ownerReferences": owner}}]
    result = wukong_cli(server, kubeconfig, monkeypatch, "delete", "t1", "t2", "--yes")
    assert result.exit_code == 0, result.output
    plans = result.stdout.split("Deleting Wukong ")
    assert "Service" not in plans[1] and "  delete  Service t2-ssh\n" in plans[2]
    server = FakeApiServer(running("t1"))
    server.services = None
    result = wukong_cli(server, kubeconfig, monkeypatch, "delete", "t1", "--yes")
    assert result.exit_code == 0, result.output
    assert "  delete  Services it owns, if any (you may not list Services here)" in result.stdout
    assert server.writes == [("DELETE", "t1")]


def test_delete_over_a_selection_without_a_terminal_refuses_once_and_deletes_nothing(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeApiServer(running("t1"), running("t2"))
    result = wukong_cli(server, kubeconfig, monkeypatch, "delete", "-l", "grp=t")
    assert result.exit_code == 1, result.output
    assert server.writes == []
    assert "Deleting Wukong t1 in namespace demo:" in result.stdout
    assert "Deleting Wukong t2 in namespace demo:" in result.stdout
    assert result.stderr == (
        "error: refusing to delete 2 Wukongs (t1, t2) without confirmation: stdin is not a "
        "terminal; pass --yes\n"
    )


def test_a_detach_that_deletes_the_data_asks_first(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`detach` deletes the disk's PVC unless --keep-data, and did it without a word; its
    alias `removevolume` is virtctl's name, which never deletes a claim there. As `delete`:
    shown, then asked; no terminal and no --yes is a refusal; "no" writes nothing."""
    server = FakeApiServer(running("web-1", disks=DATA))
    for verb in ("detach", "removevolume"):
        refused = wukong_cli(server, kubeconfig, monkeypatch, verb, "web-1", "data")
        assert refused.exit_code == 1, refused.output
        assert (
            "error: refusing to delete PVC web-1-data (disk data of web-1) without "
            "confirmation: stdin is not a terminal; pass --yes"
        ) in refused.stderr
    on_a_terminal(monkeypatch)
    monkeypatch.setattr(Kube, "request", server.request)
    where = ["-n", "demo", "--kubeconfig", kubeconfig]
    no = CliRunner().invoke(app, ["detach", "web-1", "data", *where], input="n\n")
    assert no.exit_code == 1, no.output
    assert no.stdout.startswith("detaching disk data from web-1 once the guest no longer uses ")
    assert "Delete PVC web-1-data and the data on it? [y/N]" in no.stderr
    assert "error: not confirmed: nothing was detached" in no.stderr
    assert server.writes == []


def test_a_wait_that_ends_running_waits_a_moment_more_for_the_address(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guest reports its IP a moment after it runs; `start --wait` ended at Running and
    said `t1 is Running on node-1`, without what the user connects to next."""
    stopped = running("t1")
    stopped["status"]["phase"] = "Stopped"
    server = FakeApiServer(stopped)

    def answer(cr: JsonObj) -> None:
        refuse_start_unless_stopped(cr)
        cr["status"]["interfaces"] = []  # it runs; no address reported yet

    server.answer = answer
    looks = 0

    async def request(_kube: Kube, method: str, path: str, **kwargs: Any) -> JsonObj:
        nonlocal looks
        status = server.stored["t1"]["status"]
        if method == "GET" and status["phase"] == "Running" and not status["interfaces"]:
            looks += 1
            if looks == 2:  # the look after the one that saw it run
                status["interfaces"] = [{"name": "default", "ipAddress": "10.244.0.9"}]
        return await server.request(method, path, **kwargs)

    monkeypatch.setattr(Kube, "request", request)
    where = ["-n", "demo", "--kubeconfig", kubeconfig]
    result = CliRunner().invoke(app, ["start", "t1", "--wait", *where])
    assert result.exit_code == 0, result.output
    assert result.stdout == "t1 is Running on node-1 at 10.244.0.9\n"
    # No address within the grace: it runs all the same, and says as much as it knows.
    monkeypatch.setattr(common, "ADDRESS_SECONDS", 0.05)
    server.stored["t1"]["status"] |= {"phase": "Stopped", "interfaces": []}
    looks = -1000
    result = CliRunner().invoke(app, ["start", "t1", "--wait", *where])
    assert result.exit_code == 0, result.output
    assert result.stdout == "t1 is Running on node-1\n"


def test_delete_wait_over_a_selection_has_one_deadline_for_all(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As kubectl's `delete --wait`: three Wukongs that never go, --timeout 1s, about 1 s
    in all and not 3 (one after another, each with the whole timeout: CLI audit, s44)."""
    from wukong.console.errors import CliError
    from wukong.console.flows import deleting

    following: set[str] = set()
    together: list[int] = []

    async def never_gone(_target: Any, name: str, _check: Any, *, within: float, **_: Any) -> Any:
        following.add(name)
        together.append(len(following))
        await asyncio.sleep(within)
        following.discard(name)
        raise CliError(f"timed out after {within:g}s waiting for {name} to be deleted")

    monkeypatch.setattr(deleting, "wait_for", never_gone)
    server = FakeApiServer(running("t1"), running("t2"), running("t3"))
    args = ("delete", "-l", "grp=t", "-y", "--wait", "--timeout", "1s")
    result = wukong_cli(server, kubeconfig, monkeypatch, *args)
    assert result.exit_code == 1, result.output
    assert max(together) == 3  # followed at once
    assert [w for w in server.writes if w[0] == "DELETE"] == [
        ("DELETE", "t1"),
        ("DELETE", "t2"),
        ("DELETE", "t3"),
    ]
    assert result.stderr.splitlines()[-3:] == [
        f"error: {n}: timed out after 1s waiting for {n} to be deleted" for n in ("t1", "t2", "t3")
    ]


NAMED = "wukong.vm.novasphere.dev"  # kind.group, lowercased: cli-runtime's NamePrinter


def test_delete_o_name_prints_each_deleted_wukong_alone_as_kubectl(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`kubectl delete -o name` prints `<kind>.<group>/<name>` per object deleted and
    nothing else; `wukong delete -o name` was a usage error asking for --dry-run=client
    (session 46). The plan is still shown first, on stderr, so stdout is the names alone."""
    server = FakeApiServer(running("t1"), running("t2"), deleting("t3"))
    result = wukong_cli(
        server, kubeconfig, monkeypatch, "delete", "-l", "grp=t", "-y", "-o", "name"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"{NAMED}/t1", f"{NAMED}/t2", f"{NAMED}/t3"]
    assert "Deleting Wukong t1 in namespace demo:" in result.stderr
    assert "t3 is already being deleted (step StopVM)" in result.stderr
    assert server.writes == [("DELETE", "t1"), ("DELETE", "t2")]
    for dry_run in ("--dry-run=server", "--dry-run=client"):
        server = FakeApiServer(running("web-1"))
        args = ("delete", "web-1", "-y", "--keep-disks", dry_run, "-o", "name")
        result = wukong_cli(server, kubeconfig, monkeypatch, *args)
        assert (result.exit_code, result.stdout) == (0, f"{NAMED}/web-1\n"), result.output
        assert "Deleting Wukong web-1 in namespace demo:" in result.stderr
    # -o json and yaml still print a client dry run's patches, and only that.
    result = wukong_cli(server, kubeconfig, monkeypatch, "delete", "web-1", "-y", "-o", "json")
    assert result.exit_code == 2, result.output
    assert "goes with --dry-run=client on this command (-o name goes without)" in result.stderr


def test_delete_o_name_still_confirms_first(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """-o name changes what is printed, not the confirmation: without a terminal and without
    --yes nothing is deleted; on a terminal the plan and the question come first (stderr),
    and a no deletes nothing and prints no name."""
    server = FakeApiServer(running("t1"))
    refused = wukong_cli(server, kubeconfig, monkeypatch, "delete", "t1", "-o", "name")
    assert (refused.exit_code, refused.stdout, server.writes) == (1, "", [])
    assert "Deleting Wukong t1 in namespace demo:" in refused.stderr
    assert refused.stderr.endswith("stdin is not a terminal; pass --yes\n")
    on_a_terminal(monkeypatch)
    monkeypatch.setattr(Kube, "request", server.request)
    argv = ["delete", "t1", "-o", "name", "-n", "demo", "--kubeconfig", kubeconfig]
    no = CliRunner().invoke(app, argv, input="n\n")
    # CliRunner echoes the answer to stdout, where a terminal would show it itself.
    assert (no.exit_code, no.stdout.split(), server.writes) == (1, ["n"], [])
    yes = CliRunner().invoke(app, argv, input="y\n")
    assert (yes.exit_code, yes.stdout.split()) == (0, ["y", f"{NAMED}/t1"]), yes.output
    assert yes.stderr.index("Deleting Wukong t1") < yes.stderr.index("Delete Wukong t1? [y/N]")
    assert server.writes == [("DELETE", "t1")]


def test_delete_o_name_with_wait_prints_the_name_once_and_the_end_on_stderr(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wukong.console.flows import deleting as flow

    async def gone(*_: Any, **__: Any) -> bool:
        return True

    monkeypatch.setattr(flow, "wait_for", gone)
    server = FakeApiServer(running("t1"))
    args = ("delete", "t1", "-y", "--wait", "-o", "name")
    result = wukong_cli(server, kubeconfig, monkeypatch, *args)
    assert (result.exit_code, result.stdout) == (0, f"{NAMED}/t1\n"), result.output
    assert result.stderr.splitlines()[-1] == "wukong t1 deleted"
