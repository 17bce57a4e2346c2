"""A restore in progress, as the Wukong says it and as it ends (session 48): the Restoring
condition, VolumesBound's words for a claim KubeVirt is making again, no Event for what the
restore's hold leaves undone, a disk removed meanwhile cleaned up once it ends, and a
deletion that does not call a disk kept when no claim of it is left."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from tests.unit.reconcile.world import (
    NOW,
    bound_pvc,
    decide,
    plan_deletion,
    ready_children,
    restored_pvc,
    seen,
    wukong,
)
from wukong.api import names
from wukong.api.v1alpha1 import Wukong
from wukong.reconcile.actions import DeleteChild, Emit, PatchChild
from wukong.reconcile.lifecycle import request_id
from wukong.reconcile.observed import Observed
from wukong.reconcile.vm import build_vm

ASKED = {"action": "restore", "snapshotName": "good"}
SINCE = (NOW - timedelta(seconds=30)).isoformat().replace("+00:00", "Z")


def _rid() -> str:
    spec = wukong(lifecycleAction=ASKED).spec.lifecycle_action
    assert spec is not None
    return request_id(spec)


def _restore_status(phase: str = "Restoring", **more: Any) -> dict[str, Any]:
    return {
        "requestId": _rid(),
        "name": "r1",
        "uid": "r1-uid",
        "snapshot": "good",
        "phase": phase,
        "message": "r1: restoring the disks from good",
        "startedAt": SINCE,
        **more,
    }


def _kubevirts(complete: bool = False, reason: str | None = None) -> dict[str, Any]:
    """Restore r1 as KubeVirt reports it: Progressing in its words (`reason`)."""
    status: dict[str, Any] = {"complete": complete}
    if reason is not None:
        status["conditions"] = [
            {"type": "Progressing", "status": "True", "reason": reason},
            {"type": "Ready", "status": "False", "reason": reason},
        ]
    meta = {"name": "r1", "namespace": "demo", "uid": "r1-uid"}
    meta["ownerReferences"] = [{"kind": "Wukong", "name": "web-1", "uid": "uid-web-1"}]
    return {"metadata": meta, "status": status}


def _volumes(*removed: str, preserve: bool = False) -> list[dict[str, Any]]:
    out = [
        {"name": "system", "pvcName": "web-1-system", "bound": True, "phase": "Succeeded"},
        {"name": "data", "pvcName": "web-1-data", "bound": True, "phase": "Bound"},
    ]
    for disk in removed:
        out.append(
            {
                "name": disk,
                "pvcName": f"web-1-{disk}",
                "bound": True,
                "phase": "Bound",
                "preserveData": preserve,
            }
        )
    return out


def _stopped_vm(cr: Wukong, world: Observed) -> dict[str, Any]:
    vm = build_vm(cr, world, "Halted")
    vm["metadata"]["uid"] = "vm-uid"
    return vm


def _restoring(
    claims: dict[str, Any],
    *,
    restore: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    reason: str | None = "Creating new PVCs",
    **spec: Any,
) -> tuple[Wukong, dict[str, Any], Observed]:
    """web-1, stopped, asked to restore snapshot good: restore r1 made, KubeVirt at
    `reason`; `claims` as the pass sees them."""
    body = wukong(lifecycleAction=ASKED, **spec).to_dict()
    status = {
        "phase": "Stopped",
        "volumes": _volumes(),
        "restore": restore or _restore_status(),
        **(status or {}),
    }
    cr = Wukong.from_dict({**body, "status": status})
    base = ready_children(claims=claims)
    world = ready_children(
        claims=claims,
        vm=_stopped_vm(cr, base),
        restores={"r1": _kubevirts(reason=reason)},
        snapshots={"good": {"metadata": {"name": "good", "namespace": "demo"}}},
    )
    return cr, status, world


def _condition(plan: Any, type_: str) -> dict[str, Any] | None:
    return next((c for c in plan.status["conditions"] if c["type"] == type_), None)


SYSTEM = bound_pvc("web-1-system", "20Gi")


# --- 1. The Restoring condition ---


def test_a_restore_in_progress_is_a_condition_in_kubevirts_words() -> None:
    """SPEC §1: one condition per running operation. Before, only Ready=False Stopped and
    VolumesBound "waiting for data (being created)" said anything while KubeVirt worked
    (source audit, session 47, section 7)."""
    cr, status, world = _restoring({"web-1-system": SYSTEM})
    plan = decide(cr, status, world)
    cond = _condition(plan, "Restoring")
    assert cond is not None
    assert (cond["status"], cond["reason"]) == ("True", "InProgress")
    assert cond["message"] == (
        "restoring web-1's disks from snapshot good (VirtualMachineRestore r1): "
        "KubeVirt: Creating new PVCs"
    )
    # No Event of its own: RestoreStarted and Restored (or RestoreFailed) tell the story.
    assert not [a for a in plan.actions if isinstance(a, Emit) and a.reason == "InProgress"]


def test_the_restoring_condition_names_each_stage_before_kubevirt_works() -> None:
    stopping = _restore_status(
        "StoppingVM", message="r1: stopping the VM first (it starts again once the disks are "
        "restored)", startAfter=True,
    )  # fmt: skip
    cr, status, world = _restoring(
        {"web-1-system": SYSTEM, "web-1-data": bound_pvc("web-1-data")}, restore=stopping
    )
    live = {"metadata": {"name": "web-1-vm", "namespace": "demo"}, "status": {"phase": "Running"}}
    world = replace(world, vmi=live, restores={})  # the guest shutting down
    cond = _condition(decide(cr, status, world), "Restoring")
    assert cond is not None and cond["reason"] == "StoppingVM"
    assert cond["message"] == (
        "restoring web-1's disks from snapshot good (VirtualMachineRestore r1): stopping the "
        "VM first (it starts again once the disks are restored)"
    )
    waiting = _restore_status("WaitingForVMI", message="r1: waiting for the stopped VM's VMI to go")
    vmi = {"metadata": {"name": "web-1-vm", "namespace": "demo"}, "status": {"phase": "Succeeded"}}
    cr, status, world = _restoring(
        {"web-1-system": SYSTEM, "web-1-data": bound_pvc("web-1-data")}, restore=waiting
    )
    world = replace(world, vmi=vmi, restores={})
    cond = _condition(decide(cr, status, world), "Restoring")
    assert cond is not None and cond["reason"] == "WaitingForVMI"
    assert cond["message"].endswith("): waiting for the stopped VM's VMI to go")


def test_the_restoring_condition_goes_when_the_restore_ends() -> None:
    """An operation condition: gone with the operation (status.restore and the Restored or
    RestoreFailed Event say how it ended)."""
    claims = {"web-1-system": SYSTEM, "web-1-data": restored_pvc(restore="r1-r1-uid")}
    cr, status, world = _restoring(claims)
    running = decide(cr, status, world)
    assert _condition(running, "Restoring") is not None
    done = replace(world, restores={"r1": _kubevirts(complete=True)})
    ended = decide(cr, running.status, done)
    assert ended.status["restore"]["result"] == "Succeeded"
    assert _condition(ended, "Restoring") is None
    failure = _kubevirts()
    failure["status"]["conditions"] = [
        {"type": "Failure", "status": "True", "reason": "VMI exists", "message": "VMI exists"}
    ]
    failed = decide(cr, running.status, replace(world, restores={"r1": failure}))
    assert failed.status["restore"]["result"] == "Failed"
    assert _condition(failed, "Restoring") is None


def test_a_claim_kubevirt_makes_again_is_said_restored_not_created() -> None:
    """VolumesBound said "waiting for data (being created)" for a claim the operator makes
    nothing of: KubeVirt deleted it and makes it again from the snapshot."""
    cr, status, world = _restoring({"web-1-system": SYSTEM})
    plan = decide(cr, status, world)
    bound = _condition(plan, "VolumesBound")
    assert bound is not None and bound["status"] == "False"
    assert bound["reason"] == "Restoring"
    assert bound["message"] == (
        "waiting for data (KubeVirt is restoring its claim from snapshot good: restore r1)"
    )
    [data] = [v for v in plan.status["volumes"] if v["name"] == "data"]
    assert data["phase"] == "Restoring"
    # Not a Warning: the restore asked for it (and its Restored Event ends it).
    assert not [a for a in plan.actions if isinstance(a, Emit) and a.reason == "Restoring"]


# --- 2. F11 (s46) ---


def test_no_event_goes_out_for_an_action_the_restores_hold_leaves_undone() -> None:
    """A disk removed from the spec while KubeVirt restores: its claim's delete is left
    undone (hands off), and so is its DiskDetached Event, which said "data deleted" on
    every pass of the restore (F11, session 46)."""
    cr, status, world = _restoring(
        {"web-1-system": SYSTEM, "web-1-logs": bound_pvc("web-1-logs", "10Gi")},
        status={"volumes": _volumes("logs")},
    )
    plan = decide(cr, status, world)
    assert not [a for a in plan.actions if isinstance(a, DeleteChild | PatchChild)]
    assert not [a for a in plan.actions if isinstance(a, Emit) and a.reason == "DiskDetached"]
    [logs] = [v for v in plan.status["volumes"] if v["name"] == "logs"]
    assert logs["phase"] == "Detaching"


def _after_restore(preserve: bool) -> tuple[Wukong, dict[str, Any], Observed]:
    """Restore r1 completed; disk logs left the spec while it ran, and KubeVirt made its
    claim again from the snapshot (it restores every volume the snapshot holds)."""
    logs = restored_pvc(disk="logs", restore="r1-r1-uid")
    logs["metadata"]["resourceVersion"] = "9"
    done = _restore_status(
        "Succeeded", result="Succeeded", message="the disks are as snapshot good holds them"
    )
    cr, status, world = _restoring(
        {"web-1-system": SYSTEM, "web-1-data": bound_pvc("web-1-data"), "web-1-logs": logs},
        restore=done,
        status={"volumes": _volumes("logs", preserve=preserve)},
    )
    world = replace(world, restores={"r1": _kubevirts(complete=True)})
    return cr, status, world


def test_a_disk_removed_during_a_restore_is_deleted_once_it_ends() -> None:
    """It stayed Detaching for good: the claim KubeVirt made is owned by nobody
    (volumeOwnershipPolicy None), and the cleanup took only claims the Wukong holds."""
    cr, status, world = _after_restore(preserve=False)
    plan = decide(cr, status, world)
    [delete] = [a for a in plan.actions if isinstance(a, DeleteChild)]
    assert (delete.kind, delete.name) == ("PersistentVolumeClaim", "web-1-logs")
    [said] = [a for a in plan.actions if isinstance(a, Emit) and a.reason == "DiskDetached"]
    assert said.message == "detached disk logs: data deleted"


def test_a_disk_removed_with_preserve_data_during_a_restore_is_kept_once_it_ends() -> None:
    """Kept as any detach with preserveData keeps it (retained-from), and said to hold
    the snapshot's data: KubeVirt replaced the claim while the restore ran."""
    cr, status, world = _after_restore(preserve=True)
    plan = decide(cr, status, world)
    [keep] = [a for a in plan.actions if isinstance(a, PatchChild) and a.name == "web-1-logs"]
    labels = keep.patch["metadata"]["labels"]
    assert labels[names.LABEL_RETAINED_FROM] == "web-1"
    assert labels[names.LABEL_DISK] == "logs"
    assert labels[names.LABEL_WUKONG] is None
    assert labels[names.LABEL_RESTORED_FROM_VM] is None  # KubeVirt's marks go with it
    assert keep.patch["metadata"]["resourceVersion"] == "9"
    [said] = [a for a in plan.actions if isinstance(a, Emit) and a.reason == "DiskDetached"]
    assert said.message == (
        "detached disk logs: data kept in web-1-logs (as snapshot good holds it: restore r1 "
        "made the claim again while the disk was being removed)"
    )
    # Released, it is no longer the Wukong's: not Detaching any more.
    released = dict(world.claims)
    released["web-1-logs"] = {
        "metadata": {
            "name": "web-1-logs",
            "labels": {names.LABEL_RETAINED_FROM: "web-1", names.LABEL_DISK: "logs"},
        }
    }
    after = decide(cr, plan.status, replace(world, claims=released))
    assert "logs" not in [v["name"] for v in after.status["volumes"]]


# --- 3. Deletion: "kept" names only disks with data left ---


def test_a_kept_disk_with_no_claim_left_is_not_said_kept() -> None:
    """A restore cancelled by the deletion had deleted web-1-data to make it again: the
    data is only in the snapshot, and "kept: data" promised a claim that is not there."""
    failed = _restore_status(
        "Failed", result="Failed", message="restore r1 was deleted before it completed",
        lostClaims=["web-1-data"],
    )  # fmt: skip
    body = wukong(deleteOptions={"preserveDisksList": ["data"]}).to_dict()
    body["metadata"]["deletionTimestamp"] = NOW.isoformat().replace("+00:00", "Z")
    status = {"phase": "Deleting", "volumes": _volumes(), "restore": failed}
    cr = Wukong.from_dict({**body, "status": status})
    good = {"metadata": {"name": "good", "namespace": "demo"}}
    plan = plan_deletion(cr, status, seen(snapshots={"good": good}))  # every child gone
    assert plan.finalize
    assert plan.deletion["kept"] == []
    [final] = [a for a in plan.actions if isinstance(a, Emit) and a.reason == "Finalize"]
    assert final.message == (
        "children deleted; kept: none; no claim left of disk data (restore r1 of snapshot good "
        "did not complete: the snapshot holds its data)"
    )
    gone = plan_deletion(cr, status, seen())
    [final] = [a for a in gone.actions if isinstance(a, Emit) and a.reason == "Finalize"]
    assert final.message.endswith("did not complete, and the snapshot is gone too)")
    # A kept disk whose claim is there is kept, and said so.
    there = seen(claims={"web-1-data": bound_pvc("web-1-data")})
    assert plan_deletion(cr, status, there).deletion["kept"] == ["data"]
