"""The story `kubectl describe` tells: an Event that reports what an action did goes out
only when the action went through (source audit, session 48)."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import timedelta
from typing import Any

from tests.unit.reconcile.test_deletion import deleting
from tests.unit.reconcile.test_disks_at_runtime import _disks, running
from tests.unit.reconcile.test_settle import Server, running_with_request
from tests.unit.reconcile.world import NOW, POLICY, bound_pvc, wukong
from wukong.act.executor import Executor
from wukong.act.reconciler import Reconciler
from wukong.api import kinds, names
from wukong.api.conditions import CHILDREN_ADMITTED, VOLUMES_RESIZED, find_condition
from wukong.api.status import WukongStatus
from wukong.errors import Forbidden, Invalid, ServerError, TransientError
from wukong.reconcile.actions import CreateChild, DeleteChild, Emit, ExpandDisk, Failed, told
from wukong.reconcile.admission import admit
from wukong.reconcile.decide import decide as typed_decide
from wukong.reconcile.deletion import plan_deletion
from wukong.reconcile.outcome import as_written, deletion_refusals, fold, fold_deletion

JsonObj = dict[str, Any]


class Failing(Server):
    """The API server answers `error` to every request whose path holds `fragment`."""

    def __init__(self, raw: JsonObj, fragment: str, error: Exception) -> None:
        super().__init__(raw)
        self.fragment, self.error = fragment, error

    async def request(self, method: str, path: str, *, body: Any = None, **kw: Any) -> Any:
        if self.fragment in path:
            self.writes.append((method, path, body))
            raise self.error
        return await super().request(method, path, body=body, **kw)


def events(server: Server) -> list[tuple[str, str]]:
    return [
        (b["type"], b["reason"])
        for m, p, b in server.writes
        if m == "POST" and p.endswith("/events")
    ]


async def test_a_migration_lost_on_its_way_is_not_said_started() -> None:
    """virt-api's webhook unreachable (failurePolicy Fail: a 5xx): each retry said
    "MigrationStarted" again, "(x13 over 1m) migrating from node node-1", with nothing
    migrating (source audit, session 48, finding 4)."""
    raw, cache = running_with_request("migrate")
    down = ServerError(500, "InternalError", 'failed calling webhook "migration-create"')
    server = Failing(raw, "virtualmachineinstancemigrations", down)
    reconciler = Reconciler(cache, Executor(server), clock=lambda: NOW)
    try:
        await reconciler.reconcile("demo/web-1")
    except TransientError:
        pass  # retried by the queue
    assert any("virtualmachineinstancemigrations" in p for _, p, _ in server.writes)
    assert ("Normal", "MigrationStarted") not in events(server)


async def test_a_migration_kubevirt_refuses_is_refused_not_started_then_refused() -> None:
    raw, cache = running_with_request("migrate")
    no = Invalid(422, "Invalid", "in-flight migration detected")
    server = Failing(raw, "virtualmachineinstancemigrations", no)
    await Reconciler(cache, Executor(server), clock=lambda: NOW).reconcile("demo/web-1")
    said = events(server)
    assert ("Warning", "MigrationRefused") in said
    assert ("Normal", "MigrationStarted") not in said


QUOTA = (
    'persistentvolumeclaims "web-1-data" is forbidden: exceeded quota: storage, requested: '
    "requests.storage=100Gi, used: requests.storage=120Gi, limited: requests.storage=200Gi"
)


def test_a_refused_growth_says_so_in_the_pass_that_was_refused() -> None:
    """The API server refuses the claim's growth (a ResourceQuota): the pass wrote
    `VolumesResized=False Resizing` with the generation observed and posted a Normal
    `Resizing`; `wukong resize` read a success, `--wait` waited for good, and the Warning
    came only from a pass nothing woke (source audit, session 48, finding 1)."""
    cr = wukong(disks=[*_disks()[:1], {"name": "data", "size": "200Gi"}])
    old = WukongStatus.model_validate({"phase": "Running", "observedGeneration": 1})
    plan = typed_decide(cr, old, running())
    [grow] = [a for a in plan.actions if isinstance(a, ExpandDisk)]
    planned = [a for a in plan.actions if isinstance(a, Emit)]
    assert ("Normal", "Resizing") in [(e.type, e.reason) for e in planned]
    written = fold(plan.status, old, {grow: Failed("permanent", QUOTA, 403)})
    resized = find_condition(written.conditions, VOLUMES_RESIZED)
    assert resized is not None
    assert (resized.status, resized.reason) == ("False", "ExpansionRefused")
    assert "expansion to 200Gi refused: " + QUOTA == resized.message
    said = [(e.type, e.reason) for e in as_written(planned, plan.status, written)]
    assert ("Warning", "ExpansionRefused") in said
    assert ("Normal", "Resizing") not in said
    # The next pass says the same, and no Event again.
    again = typed_decide(cr, written, running())
    assert find_condition(again.status.conditions, VOLUMES_RESIZED) == resized
    assert not [a for a in again.actions if isinstance(a, Emit | ExpandDisk)]


def test_a_growth_lost_on_its_way_is_still_resizing() -> None:
    cr = wukong(disks=[*_disks()[:1], {"name": "data", "size": "200Gi"}])
    old = WukongStatus.model_validate({"phase": "Running", "observedGeneration": 1})
    plan = typed_decide(cr, old, running())
    [grow] = [a for a in plan.actions if isinstance(a, ExpandDisk)]
    planned = [a for a in plan.actions if isinstance(a, Emit)]
    written = fold(plan.status, old, {grow: Failed("transient", "etcd timeout", 504)})
    assert as_written(planned, plan.status, written) == planned


class GrowthRefused(Server):
    """The API server refuses the claim's PATCH (a ResourceQuota)."""

    async def request(self, method: str, path: str, *, body: Any = None, **kw: Any) -> Any:
        if method == "PATCH" and path.endswith("/persistentvolumeclaims/web-1-data"):
            self.writes.append((method, path, body))
            raise Forbidden(403, "Forbidden", QUOTA)
        return await super().request(method, path, body=body, **kw)


async def test_the_pass_a_growth_is_refused_in_is_followed_at_once() -> None:
    """Nothing else wakes it: the claim did not change and our own status write is
    skipped. The follow-up pass decides from the written `expansionRefused`."""
    from tests.unit.reconcile.test_settle import Cache, raw_wukong

    world = running()
    cr = wukong(disks=[*_disks()[:1], {"name": "data", "size": "200Gi"}])
    raw = raw_wukong({"phase": "Running", "vmName": "web-1-vm", "observedGeneration": 1}, cr)
    raw["metadata"]["generation"] = 2
    cache = Cache(
        {
            kinds.WUKONG.cache: [raw],
            kinds.VM.cache: [world.vm],
            kinds.VMI.cache: [world.vmi],
            kinds.PVC.cache: list(world.claims.values()),
            kinds.DATA_VOLUME.cache: list(world.data_volumes.values()),
            kinds.NAD.cache: list(world.nads.values()),
            kinds.NETWORK_POLICY.cache: [POLICY],
        }
    )
    server = GrowthRefused(raw)
    reconciler = Reconciler(cache, Executor(server), clock=lambda: NOW)
    assert await reconciler._pass("demo/web-1") == 0.0  # NOW: decide again at once
    said = events(server)
    assert ("Warning", "ExpansionRefused") in said and ("Normal", "Resizing") not in said
    [status] = server.statuses
    resized = next(c for c in status["conditions"] if c["type"] == VOLUMES_RESIZED)
    assert resized["reason"] == "ExpansionRefused"


DENIED = 'admission webhook "protect.example.com" denied the request: claims labelled backup=true'


def _detach_of_logs() -> tuple[Any, WukongStatus, DeleteChild]:
    """The pass that deletes the claim of disk logs, removed from a stopped Manual VM."""
    cr = wukong()
    world = running(**{"web-1-logs": bound_pvc("web-1-logs", "10Gi")})
    ended = copy.deepcopy(world.vmi)
    ended["status"]["phase"] = "Succeeded"
    ended["status"]["volumeStatus"].append({"name": "logs", "phase": "Ready"})
    old = WukongStatus.model_validate(
        {
            "volumes": [{"name": "logs", "pvcName": "web-1-logs", "preserveData": False}],
            "phase": "Stopped",
            "observedGeneration": 1,
        }
    )
    plan = typed_decide(cr, old, replace(world, vmi=ended))
    [delete] = [a for a in plan.actions if isinstance(a, DeleteChild)]
    return plan, old, delete


def test_a_delete_the_api_server_refuses_is_a_condition_and_a_warning() -> None:
    """SPEC §8: a child refused by the API server reaches a condition and a Warning. A
    refused delete was said only in the log, not retried, and the detach's Event said "data
    deleted" beside the claim still there (source audit, session 48, finding 2)."""
    plan, old, delete = _detach_of_logs()
    failed = {delete: Failed("permanent", DENIED, 403)}
    status, said, retry = admit(fold(plan.status, old, failed), failed, NOW, 1)
    admitted = find_condition(status.conditions, CHILDREN_ADMITTED)
    assert admitted is not None and (admitted.status, admitted.reason) == ("False", "Refused")
    assert admitted.message == (
        f"the API server refused to delete PersistentVolumeClaim web-1-logs: {DENIED}"
    )
    assert [(e.type, e.reason) for e in said] == [("Warning", "ChildRefused")]
    assert retry is not None
    # And "detached disk logs: data deleted" is said once the delete went through.
    events = [a for a in plan.actions if isinstance(a, Emit)]
    assert [e.reason for e in events] == ["DiskDetached"]
    assert told(events, done=set()) == []
    assert told(events, done={delete}) == events


def test_a_deletion_step_the_api_server_refuses_says_why_once() -> None:
    """In a deletion the step stalled with the refusal only in the log: `Stalled` said
    what it waited for, not why."""
    delete = DeleteChild("PersistentVolumeClaim", "web-1-logs", "u")
    deletion = {"step": "DeleteDisks", "message": "waiting for PersistentVolumeClaim/web-1-logs"}
    planned = WukongStatus.model_validate({"phase": "Deleting", "deletion": deletion})
    failed = {delete: Failed("permanent", DENIED, 403)}
    written = fold_deletion(planned, failed)
    assert written.deletion is not None and written.deletion.message == (
        "waiting for PersistentVolumeClaim/web-1-logs; the API server refused to delete "
        f"PersistentVolumeClaim web-1-logs: {DENIED}"
    )
    [warning] = deletion_refusals(planned, written, failed)
    assert (warning.type, warning.reason) == ("Warning", "ChildRefused")
    assert deletion_refusals(written, fold_deletion(planned, failed), failed) == []


def test_the_same_quota_refusal_with_other_usage_is_not_a_new_event() -> None:
    """The quota's 403 names the namespace's usage: every change of it was a new Warning
    and a status write (source audit, session 48, finding 5)."""
    create = CreateChild("PersistentVolumeClaim", {"metadata": {"name": "web-1-data"}})
    first, said, _ = admit(WukongStatus(), {create: Failed("permanent", QUOTA, 403)}, NOW, 1)
    assert [e.reason for e in said] == ["ChildRefused"]
    moved = QUOTA.replace("used: requests.storage=120Gi", "used: requests.storage=150Gi")
    later = NOW + timedelta(seconds=30)
    again, said, retry = admit(first, {create: Failed("permanent", moved, 403)}, later, 1)
    assert said == [] and retry is not None
    assert again == first  # nothing new to write either
    other = QUOTA.replace("limited: requests.storage=200Gi", "limited: requests.storage=300Gi")
    _, said, _ = admit(first, {create: Failed("permanent", other, 403)}, later, 1)
    assert [e.reason for e in said] == ["ChildRefused"]


def _deleting(protected: bool = False) -> Any:
    cr = deleting()
    if protected:
        cr.metadata.annotations[names.ANNOTATION_DELETION_PROTECTION] = "true"
    return cr


def _said(plan: Any) -> list[tuple[str, str]]:
    return [(a.type, a.reason) for a in plan.actions if isinstance(a, Emit)]


def test_deleting_a_protected_wukong_says_so_in_a_warning_once() -> None:
    """`kubectl describe` showed no Event at all for a protected delete, nor for one in the
    foreground, whose condition says the garbage collector deletes the VM and disks
    (source audit, session 48, finding 3). Lifted, the protection's end is said too."""
    world = running()
    live = typed_decide(wukong(), WukongStatus(), world).status
    first = plan_deletion(_deleting(protected=True), live, world)
    assert _said(first) == [("Normal", "DeletionRequested"), ("Warning", "DeletionProtected")]
    again = plan_deletion(_deleting(protected=True), first.status, world)
    assert _said(again) == []
    lifted = plan_deletion(_deleting(), again.status, world)
    assert _said(lifted)[0] == ("Normal", "NotProtected")  # then the step's own


def test_a_stalled_deletion_step_warns_once() -> None:
    """A live pass warns `StartingTooLong`; a deletion step that stalled raised only the
    condition."""
    world = replace(running(), vmi=None)  # the VM's deletion hangs (a finalizer, say)
    cr = _deleting()
    status = WukongStatus.model_validate({"phase": "Deleting"})
    plan = plan_deletion(cr, status, world)
    step = plan.deletion.step
    assert step == "DeleteVM"
    later = plan_deletion(cr, plan.status, replace(world, now=NOW + timedelta(seconds=301)))
    assert _said(later) == [("Warning", "DeleteVMTooLong")]
    again = plan_deletion(cr, later.status, replace(world, now=NOW + timedelta(seconds=600)))
    assert _said(again) == []


async def test_an_event_tied_to_an_action_that_failed_is_not_posted() -> None:
    """Outside a pass too (`Executor.run`), and in a deletion's line of actions."""
    from tests.unit.reconcile.test_executor import OWNER, RecordingKube, child

    for stop_on_failure in (False, True):
        no = Forbidden(403, "Forbidden", DENIED)
        kube = RecordingKube(fail={"virtualmachineinstancemigrations": no})
        create = child("VirtualMachineInstanceMigration", "web-1-migrate")
        said = Emit("Normal", "MigrationStarted", "migrating", after=(create,))
        await Executor(kube).run(OWNER, [create, said], stop_on_failure=stop_on_failure)
        assert "MigrationStarted" not in kube.started
        kube = RecordingKube()
        await Executor(kube).run(OWNER, [create, said], stop_on_failure=stop_on_failure)
        assert kube.finished == ["web-1-migrate", "MigrationStarted"]
