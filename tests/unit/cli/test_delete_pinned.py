"""`wukong delete` deletes what the user confirmed: its DELETE is pinned to the version the
plan was made from (or to the version its deleteOptions patch made), and a Wukong that
changed meanwhile is planned again, asked again when the plan changed (deletion audit,
session 48, finding 3: only the uid was pinned, so a keep dropped during the prompt by a
GitOps sync or a colleague was not noticed, and the operator deleted the disk the confirmed
plan kept). The whole CLI runs against a fake API server at the one seam, `Kube.request`,
which checks preconditions as the API server does (apiserver `Preconditions.Check`)."""

from __future__ import annotations

import asyncio
import copy
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.unit.cli.objects import IMAGE, running
from tests.unit.cli.test_selection import FakeApiServer
from wukong.adapters.kube import Kube
from wukong.cli import app
from wukong.console import commands
from wukong.errors import Conflict, Forbidden, NotFound

JsonObj = dict[str, Any]
DISKS = [{"name": "system", "size": "10Gi", "image": IMAGE}, {"name": "data", "size": "1Gi"}]
KEEP = "  keep    disk data (PVC web-1-data, label vm.novasphere.dev/retained-from=web-1)"
GOES = "  delete  disk data (PVC web-1-data)"


class VersionedApiServer(FakeApiServer):
    """FakeApiServer with resourceVersions: every write bumps the version; a patch naming a
    version and a DELETE with preconditions are refused (409) when it is not the stored
    one. `before_delete`: run once, just before the first DELETE is judged (a write that
    lands during the prompt). `others`: objects of other kinds by path; `forbidden`: the
    paths the user may not read."""

    def __init__(self, *crs: JsonObj) -> None:
        super().__init__(*crs)
        self.version = 42
        self.deletes: list[JsonObj] = []
        self.before_delete: Callable[[JsonObj], None] | None = None
        self.others: dict[str, JsonObj] = {}
        self.forbidden: set[str] = set()

    def change(self, name: str, edit: Callable[[JsonObj], None]) -> None:
        """Someone else's write: `edit`, and a new version."""
        edit(self.stored[name])
        self._bump(self.stored[name])

    def _bump(self, cr: JsonObj) -> None:
        self.version += 1
        cr["metadata"]["resourceVersion"] = str(self.version)

    async def request(self, method: str, path: str, *, body: Any = None, **kw: Any) -> JsonObj:
        if path in self.forbidden:
            raise Forbidden(403, "Forbidden", "forbidden", path=path)
        if path.endswith("/services"):
            return await super().request(method, path, body=body, **kw)
        if "/wukongs" not in path:
            if path in self.others:
                return copy.deepcopy(self.others[path])
            raise NotFound(404, "NotFound", "not found", path=path)
        name = path.rsplit("/wukongs", 1)[1].strip("/")
        cr = self.stored.get(name)
        if method == "DELETE" and cr is not None:
            self.deletes.append(copy.deepcopy(body))
            if self.before_delete is not None:
                hook, self.before_delete = self.before_delete, None
                hook(cr)
                self._bump(cr)
            pinned = body.get("preconditions") or {}
            if any(cr["metadata"].get(key) != value for key, value in pinned.items()):
                self.writes.append((method, name))
                raise Conflict(409, "Conflict", "Precondition failed", path=path)
        if method == "PATCH" and cr is not None:
            version = (body.get("metadata") or {}).get("resourceVersion")
            if version is not None and version != cr["metadata"]["resourceVersion"]:
                self.writes.append((method, name))
                raise Conflict(409, "Conflict", "the object has been modified", path=path)
        answer = await super().request(method, path, body=body, **kw)
        if method == "PATCH" and cr is not None:
            self._bump(cr)
            answer["metadata"]["resourceVersion"] = cr["metadata"]["resourceVersion"]
        return answer


@pytest.fixture
def kubeconfig(tmp_path: Path) -> str:
    path = tmp_path / "config"
    cluster = {"server": "https://127.0.0.1:6443"}
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    return str(path)


def answering(
    monkeypatch: pytest.MonkeyPatch, answers: list[bool], meanwhile: Callable[[], None] = print
) -> list[str]:
    """Confirm as on a terminal, answering `answers` in turn; `meanwhile` runs while the
    first question waits. The questions asked, in order."""
    asked: list[str] = []

    def confirm(question: str) -> bool:
        if not asked:
            meanwhile()
        asked.append(question)
        return answers.pop(0)

    monkeypatch.setattr(commands, "asker", lambda yes, who: None if yes else confirm)
    return asked


def run(server: FakeApiServer, kubeconfig: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setattr(Kube, "request", server.request)
    return CliRunner().invoke(app, [*args, "-n", "demo", "--kubeconfig", kubeconfig])


def delete_keeping_data(kubeconfig: str) -> Any:
    """`wukong delete web-1 --keep data --yes`: its deleteOptions patch, then its DELETE."""
    argv = ["delete", "web-1", "--keep", "data", "--yes", "-n", "demo"]
    return CliRunner().invoke(app, [*argv, "--kubeconfig", kubeconfig])


async def ctrl_c() -> None:
    """Ctrl-C now, inside a request: asyncio.run's SIGINT handler cancels the command's task,
    which the sleep hands it (`sigint_as_python_has_it`)."""
    signal.raise_signal(signal.SIGINT)
    await asyncio.sleep(5)


def kept_data() -> JsonObj:
    return running(disks=DISKS, deleteOptions={"preserveDisksList": ["data"]})


def drop_keep(cr: JsonObj) -> None:
    cr["spec"].pop("deleteOptions")
    cr["metadata"]["generation"] += 1


def test_the_delete_is_pinned_to_the_version_the_plan_was_made_from(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = VersionedApiServer(kept_data())
    result = run(server, kubeconfig, monkeypatch, "delete", "web-1", "--yes")
    assert result.exit_code == 0, result.output
    assert server.deletes[0]["preconditions"] == {"uid": "uid-web-1", "resourceVersion": "42"}


def test_a_keep_dropped_during_the_prompt_is_shown_and_asked_again(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audit's scenario: the plan said keep, a sync dropped the keep while the question
    waited; the DELETE with the uid alone went through, and the operator deleted the disk."""
    server = VersionedApiServer(kept_data())
    asked = answering(monkeypatch, [True, False], lambda: server.change("web-1", drop_keep))
    result = run(server, kubeconfig, monkeypatch, "delete", "web-1")
    assert result.exit_code == 1, result.output
    assert asked == ["Delete Wukong web-1?", "Delete Wukong web-1?"]
    first, again = result.stdout.split("web-1 changed after the plan was made; the plan now:\n")
    assert KEEP in first.splitlines() and GOES not in first.splitlines()
    assert GOES in again.splitlines() and KEEP not in again.splitlines()
    assert "error: web-1 changed after the plan was made: not confirmed, not deleted" in (
        result.stderr
    )
    assert server.writes == [("DELETE", "web-1")]  # the refused one: nothing else
    assert "deletionTimestamp" not in server.stored["web-1"]["metadata"]


def test_the_new_plan_confirmed_is_deleted_at_its_own_version(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = VersionedApiServer(kept_data())
    answering(monkeypatch, [True, True], lambda: server.change("web-1", drop_keep))
    result = run(server, kubeconfig, monkeypatch, "delete", "web-1")
    assert result.exit_code == 0, result.output
    assert [d["preconditions"]["resourceVersion"] for d in server.deletes] == ["42", "43"]
    assert "deletionTimestamp" in server.stored["web-1"]["metadata"]


def test_with_yes_a_changed_plan_is_refused_and_nothing_is_deleted(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--yes agreed to the plan it printed, not to one it never showed."""
    server = VersionedApiServer(kept_data())
    server.before_delete = drop_keep
    result = run(server, kubeconfig, monkeypatch, "delete", "web-1", "--yes")
    assert result.exit_code == 1, result.output
    assert "web-1 changed after the plan was made; the plan now:" in result.stdout
    assert GOES in result.stdout.split("the plan now:")[1]
    assert "nothing was deleted (--yes goes on only with the plan shown first)" in result.stderr
    assert len(server.deletes) == 1
    assert "deletionTimestamp" not in server.stored["web-1"]["metadata"]


def test_a_status_write_meanwhile_changes_no_plan_and_the_delete_goes_on(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator writes status often: that changes the version, not the plan."""
    server = VersionedApiServer(kept_data())

    def status(cr: JsonObj) -> None:
        cr["status"]["conditions"][0]["lastTransitionTime"] = "2026-05-01T11:59:00Z"

    server.before_delete = status
    result = run(server, kubeconfig, monkeypatch, "delete", "web-1", "--yes")
    assert result.exit_code == 0, result.output
    assert "changed after the plan" not in result.output
    assert [d["preconditions"]["resourceVersion"] for d in server.deletes] == ["42", "43"]
    assert "deletionTimestamp" in server.stored["web-1"]["metadata"]


def test_after_a_patch_the_delete_is_pinned_to_the_version_the_patch_made(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = VersionedApiServer(running(disks=DISKS))
    result = run(server, kubeconfig, monkeypatch, "delete", "web-1", "--keep", "data", "--yes")
    assert result.exit_code == 0, result.output
    assert server.writes == [("PATCH", "web-1"), ("DELETE", "web-1")]
    assert server.deletes[0]["preconditions"] == {"uid": "uid-web-1", "resourceVersion": "43"}


def test_a_force_added_meanwhile_is_a_changed_plan(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = VersionedApiServer(running(disks=DISKS))

    def force(cr: JsonObj) -> None:
        cr["spec"]["deleteOptions"] = {"force": True}

    server.before_delete = force
    result = run(server, kubeconfig, monkeypatch, "delete", "web-1", "--yes")
    assert result.exit_code == 1, result.output
    assert "VirtualMachine web-1-vm (forced: no graceful stop)" in result.stdout
    assert "deletionTimestamp" not in server.stored["web-1"]["metadata"]


def test_a_wukong_made_again_meanwhile_is_not_deleted(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = VersionedApiServer(kept_data())

    def anew(cr: JsonObj) -> None:
        cr["metadata"]["uid"] = "uid-web-1-again"

    server.before_delete = anew
    result = run(server, kubeconfig, monkeypatch, "delete", "web-1", "--yes")
    assert result.exit_code == 1, result.output
    assert "web-1 was deleted and made again after the plan was made" in result.stderr
    assert len(server.deletes) == 1


def test_a_wukong_that_keeps_changing_is_not_deleted(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = VersionedApiServer(kept_data())
    original = server.request

    async def busy(_kube: Any, method: str, path: str, **kw: Any) -> JsonObj:
        if method == "DELETE":
            server.change("web-1", lambda cr: None)
        return await original(method, path, **kw)

    monkeypatch.setattr(Kube, "request", busy)
    result = CliRunner().invoke(
        app, ["delete", "web-1", "--yes", "-n", "demo", "--kubeconfig", kubeconfig]
    )
    assert result.exit_code == 1, result.output
    assert "web-1 changed again and again after the plan was made: nothing was deleted" in (
        result.stderr
    )
    assert len(server.deletes) == 4  # the first and three plans again


def add_disk(cr: JsonObj) -> None:
    """A change that is not to deleteOptions and changes the plan: one more disk to go."""
    cr["spec"]["disks"].append({"name": "logs", "size": "1Gi"})
    cr["metadata"]["generation"] += 1


def test_a_declined_new_plan_takes_back_the_keep_the_command_wrote(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CLI audit, session 48: the `--keep` patch stayed when the DELETE after it was refused
    (409) and the new plan declined; a later `kubectl delete` kept the disk nobody had
    confirmed keeping for it. A "no" leaves the Wukong as it was."""
    server = VersionedApiServer(running(disks=DISKS))
    server.before_delete = add_disk
    asked = answering(monkeypatch, [True, False])
    result = run(server, kubeconfig, monkeypatch, "delete", "web-1", "--keep", "data")
    assert result.exit_code == 1, result.output
    assert asked == ["Delete Wukong web-1?", "Delete Wukong web-1?"]
    assert "web-1 changed after the plan was made: not confirmed, not deleted" in result.stderr
    assert server.writes == [("PATCH", "web-1"), ("DELETE", "web-1"), ("PATCH", "web-1")]
    stored = server.stored["web-1"]
    assert "deleteOptions" not in stored["spec"]
    assert [d["name"] for d in stored["spec"]["disks"]] == ["system", "data", "logs"]  # theirs
    assert "deletionTimestamp" not in stored["metadata"]


def test_with_yes_a_changed_plan_takes_back_the_force_and_keeps_the_spec_own_options(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = VersionedApiServer(kept_data())
    server.before_delete = add_disk
    result = run(server, kubeconfig, monkeypatch, "delete", "web-1", "--force", "--yes")
    assert result.exit_code == 1, result.output
    assert "--yes goes on only with the plan shown first" in result.stderr
    assert server.stored["web-1"]["spec"]["deleteOptions"] == {"preserveDisksList": ["data"]}


def test_options_someone_changed_meanwhile_are_theirs_and_stay(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = VersionedApiServer(running(disks=DISKS))

    def force(cr: JsonObj) -> None:
        cr["spec"]["deleteOptions"] = {"force": True}  # over the keep this command wrote

    server.before_delete = force
    answering(monkeypatch, [True, False])
    result = run(server, kubeconfig, monkeypatch, "delete", "web-1", "--keep", "data")
    assert result.exit_code == 1, result.output
    assert server.writes == [("PATCH", "web-1"), ("DELETE", "web-1")]
    assert server.stored["web-1"]["spec"]["deleteOptions"] == {"force": True}


def test_options_that_cannot_be_taken_back_are_said(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """May patch, may not delete: the DELETE's 403 deletes nothing; a take-back refused too
    is said, as what a later delete would keep to."""
    server = VersionedApiServer(running(disks=DISKS))
    original = server.request

    async def patch_once(_kube: Any, method: str, path: str, **kw: Any) -> JsonObj:
        if method == "DELETE" or (method == "PATCH" and server.writes):
            raise Forbidden(403, "Forbidden", f"{method} is forbidden", path=path)
        return await original(method, path, **kw)

    monkeypatch.setattr(Kube, "request", patch_once)
    result = delete_keeping_data(kubeconfig)
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        'warning: web-1 keeps {"deleteOptions":{"preserveDisksList":["data"]}}, which this '
        "command wrote: PATCH is forbidden",
        "error: DELETE is forbidden",
    ]


def test_a_refused_delete_takes_back_the_options_it_wrote(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = VersionedApiServer(running(disks=DISKS))
    original = server.request

    async def no_delete(_kube: Any, method: str, path: str, **kw: Any) -> JsonObj:
        if method == "DELETE":
            raise Forbidden(403, "Forbidden", "DELETE is forbidden", path=path)
        return await original(method, path, **kw)

    monkeypatch.setattr(Kube, "request", no_delete)
    result = delete_keeping_data(kubeconfig)
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == ["error: DELETE is forbidden"]
    assert "deleteOptions" not in server.stored["web-1"]["spec"]


VM_PATH = "/apis/kubevirt.io/v1/namespaces/demo/virtualmachines/web-1-vm"
CLAIM_PATH = "/api/v1/namespaces/demo/persistentvolumeclaims/web-1-data"


def _conflicting(keep: bool) -> tuple[VersionedApiServer, JsonObj]:
    """web-1 whose `data` claim is a ClaimConflict the operator has not taken back: a
    VirtualMachineRestore made by hand gave it to web-1's VM."""
    cr = running(
        disks=DISKS, **({"deleteOptions": {"preserveDisksList": ["data"]}} if keep else {})
    )
    cr["status"]["volumes"].append({"name": "data", "pvcName": "web-1-data", "phase": "Conflict"})
    server = VersionedApiServer(cr)
    vm = {
        "metadata": {"name": "web-1-vm", "uid": "vm-uid", "ownerReferences": [{"uid": "uid-web-1"}]}
    }
    claim = {"metadata": {"name": "web-1-data", "ownerReferences": [{"uid": "vm-uid"}]}}
    server.others = {VM_PATH: vm, CLAIM_PATH: claim}
    return server, cr


@pytest.mark.parametrize(("keep", "line"), [(False, GOES), (True, KEEP)])
def test_a_claim_the_wukongs_vm_owns_is_not_said_to_be_left(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch, keep: bool, line: str
) -> None:
    """It goes with the VM unless kept (the operator takes it back, and Retain releases it
    from the VM): "leave" was wrong either way (deletion audit, session 48, finding 1)."""
    server, _ = _conflicting(keep)
    result = run(server, kubeconfig, monkeypatch, "delete", "web-1", "--yes")
    assert result.exit_code == 0, result.output
    assert line in result.stdout.splitlines()
    assert "leave" not in result.stdout


def test_a_conflict_the_user_may_not_read_says_it_may_go_with_the_vm(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = _conflicting(False)
    server.forbidden = {CLAIM_PATH}
    result = run(server, kubeconfig, monkeypatch, "delete", "web-1", "--yes")
    assert result.exit_code == 0, result.output
    assert (
        "  leave   disk data (PVC web-1-data): not this Wukong's (ClaimConflict); if "
        "VirtualMachine web-1-vm owns it, it goes with the VM (you may not read claims or the "
        "VM here)"
    ) in result.stdout.splitlines()


def test_a_claim_of_someone_else_is_still_left(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = _conflicting(False)
    server.others[CLAIM_PATH] = {"metadata": {"name": "web-1-data"}}
    result = run(server, kubeconfig, monkeypatch, "delete", "web-1", "--yes")
    assert result.exit_code == 0, result.output
    assert (
        "  leave   disk data (PVC web-1-data): not this Wukong's (ClaimConflict)"
        in result.stdout.splitlines()
    )


@pytest.fixture
def sigint_as_python_has_it() -> Any:
    """SIGINT's default handler (KeyboardInterrupt), which asyncio.run replaces by its own
    (cancel the command's task) only when it finds it; a test runner may have set another."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_before_the_delete_is_answered_takes_back_the_options_it_wrote(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch, sigint_as_python_has_it: None
) -> None:
    # The deleteOptions patch is answered, then Ctrl-C comes while the DELETE is on its way
    # (not landed): the options stood, and a later `kubectl delete` kept to them.
    server = VersionedApiServer(running(disks=DISKS))
    original = server.request

    async def interrupted_delete(_kube: Any, method: str, path: str, **kw: Any) -> JsonObj:
        if method == "DELETE":
            await ctrl_c()
        return await original(method, path, **kw)

    monkeypatch.setattr(Kube, "request", interrupted_delete)
    result = delete_keeping_data(kubeconfig)
    assert result.exit_code == 130, result.output
    assert result.stderr.splitlines()[-2:] == [
        "web-1 was not deleted: the deleteOptions this command wrote are taken back",
        "interrupted (any request already written stands)",
    ]
    assert "deleteOptions" not in server.stored["web-1"]["spec"]
    assert server.stored["web-1"]["metadata"].get("deletionTimestamp") is None


def test_ctrl_c_after_the_delete_landed_keeps_the_options_its_deletion_goes_by(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch, sigint_as_python_has_it: None
) -> None:
    server = VersionedApiServer(running(disks=DISKS))
    original = server.request

    async def answer_lost(_kube: Any, method: str, path: str, **kw: Any) -> JsonObj:
        answer = await original(method, path, **kw)
        if method == "DELETE":  # landed: the operator's finalizer holds the Wukong
            cr = server.stored.setdefault("web-1", answer)
            cr["metadata"]["deletionTimestamp"] = "2026-12-08T00:00:00Z"
            await ctrl_c()
        return answer

    monkeypatch.setattr(Kube, "request", answer_lost)
    result = delete_keeping_data(kubeconfig)
    assert result.exit_code == 130, result.output
    assert "taken back" not in result.stderr
    options = server.stored["web-1"]["spec"]["deleteOptions"]
    assert options == {"preserveDisksList": ["data"]}


def test_ctrl_c_while_the_options_patch_is_on_its_way_takes_it_back_if_it_landed(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch, sigint_as_python_has_it: None
) -> None:
    server = VersionedApiServer(running(disks=DISKS))
    original = server.request

    async def answer_lost(_kube: Any, method: str, path: str, **kw: Any) -> JsonObj:
        answer = await original(method, path, **kw)
        if method == "PATCH" and "deleteOptions" in (kw.get("body") or {}).get("spec", {}):
            if server.stored["web-1"]["spec"].get("deleteOptions"):  # ours: not the take-back
                await ctrl_c()
        return answer

    monkeypatch.setattr(Kube, "request", answer_lost)
    result = delete_keeping_data(kubeconfig)
    assert result.exit_code == 130, result.output
    assert "web-1 was not deleted: the deleteOptions this command wrote are taken back" in (
        result.stderr
    )
    assert "deleteOptions" not in server.stored["web-1"]["spec"]
    assert server.deletes == []
