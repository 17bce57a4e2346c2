"""`attach` and `detach`: checked before any write, written as one pinned list."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from tests.unit.cli.objects import IMAGE, running
from tests.unit.cli.test_selection import FakeApiServer, kubeconfig, on_a_terminal, wukong_cli
from wukong.adapters.kube import Kube
from wukong.api.spec import DiskBus
from wukong.cli import app
from wukong.console.disks import (
    Detach,
    attach_patch,
    new_disk,
    options_patch,
    plan_detach,
    recorded,
    remove_patch,
    system_disk,
)
from wukong.console.errors import FAILED, USAGE, CliError
from wukong.errors import Conflict

__all__ = ["kubeconfig"]  # the fixture

SYSTEM = {"name": "system", "size": "10Gi", "image": IMAGE}
LOGS = {"name": "logs", "size": "1Gi", "detachOptions": {"preserveData": True}}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("Data", "1Gi", None), "is not a valid name", id="bad-name"),
        pytest.param(("data", "1GB", None), "did you mean '1G' or '1Gi'", id="bad-size"),
        pytest.param(("data", "0", None), "at least 1Mi", id="zero-size"),
        pytest.param(("data", "1Gi", "ftp://x"), "is not an image source", id="bad-image"),
    ],
)
def test_a_bad_disk_is_a_usage_error_before_any_request(
    args: tuple[str, str, str | None], message: str
) -> None:
    with pytest.raises(CliError, match=message) as bad:
        new_disk(*args, bus=None)
    assert bad.value.code == USAGE


def test_a_new_disk_carries_only_what_was_given() -> None:
    assert new_disk("data", "1Gi", None, None) == {"name": "data", "size": "1Gi"}
    assert new_disk("img", "2Gi", IMAGE, DiskBus.SCSI) == {
        "name": "img",
        "size": "2Gi",
        "image": IMAGE,
        "bus": "scsi",
    }
    assert new_disk("set", "5Gi", None, None, "datasets/train") == {
        "name": "set",
        "size": "5Gi",
        "cloneFrom": "datasets/train",
    }
    assert new_disk("os", "5Gi", None, None, data_source="os-images/fedora") == {
        "name": "os",
        "size": "5Gi",
        "dataSource": "os-images/fedora",
    }
    with pytest.raises(CliError, match="--image and --clone-from") as both:
        new_disk("set", "5Gi", IMAGE, None, "datasets/train")
    assert both.value.code == USAGE


def test_attach_appends_to_the_list_it_read_and_pins_its_version() -> None:
    cr = running(disks=[SYSTEM])
    assert attach_patch(cr, {"name": "data", "size": "1Gi"}) == {
        "metadata": {"resourceVersion": "42"},
        "spec": {"disks": [SYSTEM, {"name": "data", "size": "1Gi"}]},
    }


def test_attaching_a_name_already_used_is_refused() -> None:
    with pytest.raises(CliError, match="web-1 already has a disk system"):
        attach_patch(running(disks=[SYSTEM]), {"name": "system", "size": "1Gi"})


def test_disks_of_a_wukong_being_deleted_do_not_change() -> None:
    cr = running(disks=[SYSTEM, LOGS])
    cr["metadata"]["deletionTimestamp"] = "2026-05-01T12:00:00Z"
    with pytest.raises(CliError, match="being deleted"):
        plan_detach(cr, "logs", keep_data=False, force=False)


@pytest.mark.parametrize(
    ("disks", "system"),
    [
        pytest.param([SYSTEM, LOGS], "system", id="first-disk"),
        pytest.param([LOGS, SYSTEM | {"boot": True}], "system", id="boot-flag"),
    ],
)
def test_the_system_disk_is_never_detached(disks: list[dict[str, object]], system: str) -> None:
    cr = running(disks=disks)
    assert system_disk(cr) == system
    with pytest.raises(CliError, match="system is the system disk of web-1") as refused:
        plan_detach(cr, "system", keep_data=True, force=True)
    assert refused.value.code == FAILED


def test_detaching_an_unknown_disk_lists_the_ones_there_are() -> None:
    with pytest.raises(CliError, match=r"web-1 has no disk nope \(disks: system, logs\)"):
        plan_detach(running(disks=[SYSTEM, LOGS]), "nope", keep_data=False, force=False)


def test_flags_add_to_the_disks_own_detach_options() -> None:
    cr = running(disks=[SYSTEM, LOGS])
    plan = plan_detach(cr, "logs", keep_data=False, force=True)
    assert plan == Detach("logs", "web-1-logs", force=True, keep_data=True)
    patch = options_patch(cr, plan)
    assert patch is not None
    assert patch["spec"]["disks"][1]["detachOptions"] == {"force": True, "preserveData": True}
    summary = plan.summary("web-1", "demo")
    assert "kept" in summary and "without the in-use check" in summary


def test_options_already_in_the_spec_are_not_written_again() -> None:
    cr = running(disks=[SYSTEM, LOGS | {"detachOptions": {"force": False, "preserveData": True}}])
    plan = plan_detach(cr, "logs", keep_data=True, force=False)
    assert options_patch(cr, plan) is None


def test_the_disk_leaves_the_spec_only_once_the_operator_recorded_its_options() -> None:
    cr = running(disks=[SYSTEM, LOGS])
    plan = plan_detach(cr, "logs", keep_data=True, force=False)
    assert recorded(cr, plan) is None  # the operator has not reported the disk yet
    cr["status"]["volumes"].append({"name": "logs", "preserveData": False, "forceDetach": False})
    assert recorded(cr, plan) is None  # old options: removing now would delete the data
    cr["status"]["volumes"][-1]["preserveData"] = True
    assert recorded(cr, plan) is True
    assert remove_patch(cr, plan) == {
        "metadata": {"resourceVersion": "42"},
        "spec": {"disks": [SYSTEM]},
    }


def test_a_disk_kept_on_deletion_leaves_the_keep_list_as_it_leaves_the_spec() -> None:
    """The API server refused `detach web-1 data` for the demo's web-1: its
    deleteOptions.preserveDisksList named `data`, and may only name disks in spec.disks."""
    cr = running(disks=[SYSTEM, LOGS, {"name": "data", "size": "1Gi"}])
    cr["spec"]["deleteOptions"] = {"preserveDisksList": ["logs", "data"]}
    logs = remove_patch(cr, plan_detach(cr, "logs", keep_data=True, force=False))
    assert logs["spec"]["deleteOptions"] == {"preserveDisksList": ["data"]}
    cr["spec"]["deleteOptions"] = {"preserveDisksList": ["logs"]}
    last = remove_patch(cr, plan_detach(cr, "logs", keep_data=True, force=False))
    assert last["spec"]["deleteOptions"] == {"preserveDisksList": None}  # null: the field goes
    unlisted = remove_patch(cr, plan_detach(cr, "data", keep_data=False, force=False))
    assert "deleteOptions" not in unlisted["spec"]


def test_a_disk_attached_at_boot_is_said_to_leave_a_running_vm_at_its_next_restart() -> None:
    """`detach web-1 data --wait` of the demo's web-1 waited 5 minutes for a disk KubeVirt
    does not unplug (only hot-plugged ones are): it leaves the VM at the next restart."""
    cr = running(disks=[SYSTEM, LOGS])
    cr["status"]["volumes"].append({"name": "logs", "attached": True, "hotplugged": False})
    plan = plan_detach(cr, "logs", keep_data=False, force=False)
    assert plan.at_restart
    assert plan.summary("web-1", "demo").startswith(
        "detaching disk logs from web-1 at its next restart (attached at boot; "
        "wukong restart web-1 -n demo); "
    )
    cr["status"]["volumes"][-1]["hotplugged"] = True
    assert not plan_detach(cr, "logs", keep_data=False, force=False).at_restart
    cr["status"]["volumes"][-1]["hotplugged"] = False
    cr["status"]["phase"] = "Stopped"  # no VM to unplug from: it leaves the template now
    assert not plan_detach(cr, "logs", keep_data=False, force=False).at_restart


class DiskOperator(FakeApiServer):
    """Plays the operator's part in a detach: a disk's detachOptions are recorded in its
    status volume, and a disk removed from the spec leaves the status, unless KubeVirt keeps
    it until the next restart (attached at boot to a running VM)."""

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        answer = await super().request(method, path, **kwargs)
        if method == "PATCH":
            cr = self.stored[path.rsplit("/", 1)[1]]
            spec = {d["name"]: d for d in cr["spec"]["disks"]}
            volumes = []
            for volume in cr["status"]["volumes"]:
                disk = spec.get(volume["name"])
                if disk is not None:
                    options = disk.get("detachOptions") or {}
                    volume["preserveData"] = bool(options.get("preserveData"))
                    volume["forceDetach"] = bool(options.get("force"))
                elif not volume.get("attached") or volume.get("hotplugged"):
                    continue  # unplugged: it leaves the status
                volumes.append(volume)
            cr["status"]["volumes"] = volumes
        return answer


def with_data(*, hotplugged: bool) -> dict[str, Any]:
    """web-1 running with a disk `data`, plugged while it ran or attached at boot."""
    cr = running("web-1", disks=[SYSTEM, {"name": "data", "size": "1Gi"}])
    volume = {"name": "data", "pvcName": "web-1-data", "attached": True, "hotplugged": hotplugged}
    cr["status"]["volumes"].append(volume)
    return cr


def test_detach_wait_of_a_disk_attached_at_boot_says_so_and_does_not_wait(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Audit: `detach web-1 data --wait` of a disk attached at boot waited out the whole
    timeout, though the CLI said at once that it leaves at the next restart: nothing happens
    before one. As `resize --wait` for a stopped VM's filesystem: said, not waited for."""
    server = DiskOperator(with_data(hotplugged=False))
    args = ("detach", "web-1", "data", "--yes", "--wait", "--timeout", "3s")
    result = wukong_cli(server, kubeconfig, monkeypatch, *args)
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "detaching disk data from web-1 at its next restart (attached at boot; "
        "wukong restart web-1 -n demo); PVC web-1-data deleted\n"
    )
    assert result.stderr == "not waiting: disk data leaves web-1 when it restarts\n"
    assert server.writes == [("PATCH", "web-1"), ("PATCH", "web-1")]  # options, removal
    # A hot-plugged disk is unplugged now: that --wait still waits for it to leave.
    server = DiskOperator(with_data(hotplugged=True))
    result = wukong_cli(server, kubeconfig, monkeypatch, *args)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "detaching disk data from web-1 once the guest no longer uses it; PVC web-1-data deleted",
        "disk data detached from web-1",
    ]


def test_a_detach_nobody_confirmed_says_nothing_as_done(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Audit: `detach web-3 logs3 </dev/null` printed "…; PVC web-3-logs3 deleted", then
    refused (no terminal, no --yes). What is shown before the question says what a yes
    would do; what is done is said once it is."""
    server = DiskOperator(with_data(hotplugged=True))
    proposal = (
        "detaching disk data from web-1 once the guest no longer uses it would delete PVC "
        "web-1-data and the data on it"
    )
    refused = wukong_cli(server, kubeconfig, monkeypatch, "detach", "web-1", "data")
    assert refused.exit_code == 1, refused.output
    assert refused.stdout == proposal + "\n"
    assert refused.stderr == (
        "error: refusing to delete PVC web-1-data (disk data of web-1) without confirmation: "
        "stdin is not a terminal; pass --yes\n"
    )
    assert server.writes == []
    # On a terminal, a yes: the proposal, the question, then what was done.
    on_a_terminal(monkeypatch)
    monkeypatch.setattr(Kube, "request", server.request)
    where = ["-n", "demo", "--kubeconfig", kubeconfig]
    yes = CliRunner().invoke(app, ["detach", "web-1", "data", *where], input="y\n")
    assert yes.exit_code == 0, yes.output
    lines = yes.stdout.splitlines()  # the answer typed is echoed between them
    assert (lines[0], lines[-1]) == (
        proposal,
        "detaching disk data from web-1 once the guest no longer uses it; PVC web-1-data deleted",
    )
    assert "Delete PVC web-1-data and the data on it? [y/N]" in yes.stderr
    assert server.writes == [("PATCH", "web-1"), ("PATCH", "web-1")]


class RevertingOperator(DiskOperator):
    """A GitOps sync reapplies disk `data` without its detachOptions after the operator
    recorded the ones `detach` wrote, and the operator records that too: the removal, pinned
    to the version read before, meets a 409, as the API server answers it."""

    def __init__(self, cr: dict[str, Any]) -> None:
        super().__init__(cr)
        self.options_written = False
        self.reverted = False

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        if method == "PATCH" and self.options_written and not self.reverted:
            self.reverted = True
            cr = self.stored["web-1"]
            for disk in cr["spec"]["disks"]:
                disk.pop("detachOptions", None)
            for volume in cr["status"]["volumes"]:
                volume.update(preserveData=False, forceDetach=False)
            cr["metadata"]["generation"] += 1
            self.writes.append((method, "web-1"))
            raise Conflict(409, "Conflict", "the object has been modified", path=path)
        answer = await super().request(method, path, **kwargs)
        self.options_written = self.options_written or method == "PATCH"
        return answer


@pytest.mark.parametrize(
    ("own", "flags"),
    [
        pytest.param({}, ("--keep-data",), id="keep-data-flag"),
        pytest.param({"preserveData": True}, (), id="the-disks-own-options"),
    ],
)
def test_a_detach_whose_options_are_reverted_before_the_removal_removes_nothing(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch, own: dict[str, Any], flags: tuple[str, ...]
) -> None:
    """Source audit, session 46: the removal re-planned from the object it was pinned to
    and removed the disk whatever options were in force by then: "PVC web-1-data kept"
    while the operator, recording the revert, deleted it (or, the disk's own preserveData
    dropped, a deletion nobody confirmed, the first plan having kept the data)."""
    cr = with_data(hotplugged=True)
    if own:
        cr["spec"]["disks"][1]["detachOptions"] = own
    server = RevertingOperator(cr)
    result = wukong_cli(server, kubeconfig, monkeypatch, "detach", "web-1", "data", *flags)
    assert result.exit_code == FAILED, result.output
    assert result.stdout == ""
    assert result.stderr == (
        "error: the detach options of disk data changed while waiting for the operator "
        "(you confirmed preserveData: true, force: false; the spec now says preserveData: "
        "false, force: false, the operator recorded preserveData: false, force: false): "
        "nothing was detached; something else writes this Wukong's spec.disks (a GitOps "
        "sync?): detach it there\n"
    )
    assert server.writes == [("PATCH", "web-1"), ("PATCH", "web-1")]  # options, the 409
    assert [d["name"] for d in server.stored["web-1"]["spec"]["disks"]] == ["system", "data"]


class RewritingOperator(RevertingOperator):
    """A GitOps sync writes disk `data`'s detachOptions back in the user's own form,
    `{preserveData: true}`, over the `{force: false, preserveData: true}` that `detach`
    wrote: the same options. The removal meets a 409 as above."""

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        if method == "PATCH" and self.options_written and not self.reverted:
            self.reverted = True
            cr = self.stored["web-1"]
            cr["spec"]["disks"][1]["detachOptions"] = {"preserveData": True}
            cr["metadata"]["generation"] += 1
            self.writes.append((method, "web-1"))
            raise Conflict(409, "Conflict", "the object has been modified", path=path)
        return await super().request(method, path, **kwargs)


def test_a_detach_whose_options_are_written_back_in_another_form_goes_on(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The options were compared by their exact JSON: written back without `force: false`
    they read as changed, and the refusal showed two equal sides (review of session 46's
    disk commits, session 47, finding 4)."""
    server = RewritingOperator(with_data(hotplugged=True))
    result = wukong_cli(server, kubeconfig, monkeypatch, "detach", "web-1", "data", "--keep-data")
    assert result.exit_code == 0, result.output
    assert "PVC web-1-data kept" in result.stdout
    assert [d["name"] for d in server.stored["web-1"]["spec"]["disks"]] == ["system"]
