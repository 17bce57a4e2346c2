"""The deletion steps, as a table: which step a teardown is at, from what is left."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.unit.reconcile.test_deletion import deleting, world_with_vm
from tests.unit.reconcile.world import UID, plan_deletion, restored_pvc
from wukong.api import names
from wukong.api.status import RestoreStatus
from wukong.api.v1alpha1 import Wukong
from wukong.reconcile.actions import DeleteChild, Emit, PatchChild
from wukong.reconcile.deletion import STEP_TABLE, STEPS
from wukong.reconcile.observed import Observed


def _stopped() -> Observed:
    world = world_with_vm()
    assert world.vmi is not None
    return replace(world, vmi={**world.vmi, "status": {"phase": "Succeeded"}})


def _no_vm() -> Observed:
    return replace(world_with_vm(), vm=None, vmi=None)


def _only_nads() -> Observed:
    return replace(_no_vm(), claims={}, data_volumes={})


def _nothing() -> Observed:
    return replace(_only_nads(), nads={})


def _restore(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web-1-restore-1",
            "namespace": "demo",
            "uid": "restore-uid",
            "ownerReferences": [{"uid": UID, "kind": "Wukong", "name": "web-1"}],
        },
        "status": status,
    }


def _restoring() -> Observed:
    return replace(_stopped(), restores={"web-1-restore-1": _restore(complete=False)})


def _restoring_outside() -> Observed:
    """KubeVirt has locked the VM for a restore made by hand (`status.restoreInProgress`)."""
    theirs = {"metadata": {"name": "by-hand", "namespace": "demo", "uid": "theirs-uid"}}
    return replace(_stopped(), outside_restores=(theirs,))


def _restored() -> Observed:
    return replace(_stopped(), restores={"web-1-restore-1": _restore(complete=True)})


CASES: list[Any] = [
    pytest.param({}, _restoring, "CancelRestore", id="a-running-restore-is-cancelled-first"),
    pytest.param({}, _restored, "DeleteVM", id="a-finished-restore-is-left-to-the-gc"),
    pytest.param(
        {"preserveDisksList": ["data"]},
        _restoring_outside,
        "WaitForRestore",
        id="a-restore-made-outside-wukong-is-waited-for",
    ),
    pytest.param({"preserveDisksList": ["data"]}, world_with_vm, "Retain", id="kept-disks-first"),
    pytest.param({}, world_with_vm, "StopVM", id="a-running-vmi-is-stopped"),
    pytest.param({}, _stopped, "DeleteVM", id="a-stopped-vm-is-deleted"),
    pytest.param({}, _no_vm, "DeleteDisks", id="then-the-disks"),
    pytest.param({}, _only_nads, "DeleteNetworks", id="then-the-owned-nads"),
    pytest.param({}, _nothing, "Finalize", id="nothing-left"),
]


@pytest.mark.parametrize(("options", "world", "step"), CASES)
def test_the_first_pending_step_is_the_current_one(
    options: dict[str, Any], world: Any, step: str
) -> None:
    cr = deleting(deleteOptions=options) if options else deleting()
    plan = plan_deletion(cr, {}, world())
    assert plan.deletion["step"] == step
    assert plan.finalize is (step == "Finalize")
    assert plan.status["phase"] == "Deleting"


def test_the_table_is_the_documented_order() -> None:
    assert (*(row.name for row in STEP_TABLE), "Finalize") == STEPS


def test_a_running_restore_is_deleted_and_waited_for_before_the_vm_is_touched() -> None:
    """KubeVirt's restore of a VM that is gone makes the VM anew (restore.go: a target that
    does not exist is created), so the VM is deleted only once the restore has let go."""
    plan = plan_deletion(deleting(), {}, _restoring())
    assert [(a.kind, a.name, a.uid) for a in plan.actions if isinstance(a, DeleteChild)] == [
        ("VirtualMachineRestore", "web-1-restore-1", "restore-uid")
    ]
    assert plan.deletion["message"] == "cancelling the restore web-1-restore-1"
    going = _restore(complete=False)
    going["metadata"]["deletionTimestamp"] = "2026-11-23T12:00:00Z"
    waiting = plan_deletion(deleting(), {}, replace(_stopped(), restores={"r": going}))
    assert waiting.deletion["step"] == "CancelRestore"
    assert not [a for a in waiting.actions if isinstance(a, DeleteChild)]  # asked once
    forced = plan_deletion(deleting(deleteOptions={"force": True}), {}, _restoring())
    kinds = [a.kind for a in forced.actions if isinstance(a, DeleteChild)]
    assert kinds[0] == "VirtualMachineRestore" and "VirtualMachine" in kinds


def test_a_restore_made_outside_wukong_is_waited_for_not_deleted() -> None:
    """Session 48's note: a deletion went on under a restore of the VM made by hand, deleting
    the VM KubeVirt's restore then makes again (restore.go creates a target that does not
    exist), and releasing or deleting the claims it was replacing. It is not Wukong's to
    cancel: the deletion waits, and says how to go on; a forced deletion cancels it."""
    plan = plan_deletion(deleting(), {}, _restoring_outside())
    assert plan.deletion["step"] == "WaitForRestore"
    assert not [a for a in plan.actions if isinstance(a, DeleteChild)]
    message = plan.deletion["message"]
    assert "VirtualMachineRestore by-hand, made outside Wukong" in message
    assert "delete the restore" in message
    [started] = [a for a in plan.actions if isinstance(a, Emit) and a.reason.startswith("Del")]
    assert started.reason == "DeletionWaitForRestore"
    forced = plan_deletion(deleting(deleteOptions={"force": True}), {}, _restoring_outside())
    deletes = [(a.kind, a.name, a.uid) for a in forced.actions if isinstance(a, DeleteChild)]
    assert deletes[0] == ("VirtualMachineRestore", "by-hand", "theirs-uid")
    assert ("VirtualMachine", "web-1-vm") in [(kind, name) for kind, name, _ in deletes]


def _asked_restore(**spec: Any) -> Wukong:
    cr = deleting(**spec)
    restore = RestoreStatus(name="web-1-restore-1", uid="restore-uid", phase="Restoring")
    return cr.model_copy(update={"status": cr.status.model_copy(update={"restore": restore})})


def test_a_claim_a_restore_made_is_deleted_or_kept_as_the_spec_says() -> None:
    world = replace(_no_vm(), claims={"web-1-data": restored_pvc()})
    plan = plan_deletion(_asked_restore(), {}, world)
    deletes = [(a.kind, a.name) for a in plan.actions if isinstance(a, DeleteChild)]
    assert ("PersistentVolumeClaim", "web-1-data") in deletes
    kept = plan_deletion(_asked_restore(deleteOptions={"preserveDisksList": ["data"]}), {}, world)
    assert kept.deletion["step"] == "Retain"
    [release] = [a for a in kept.actions if isinstance(a, PatchChild)]
    assert release.name == "web-1-data"
    assert release.patch["metadata"]["labels"][names.LABEL_RETAINED_FROM] == "web-1"
    # One for a disk the spec no longer has was left to the user: not deleted either.
    gone = restored_pvc(disk="old")
    left = plan_deletion(_asked_restore(), {}, replace(world, claims={"web-1-old": gone}))
    assert "web-1-old" not in [a.name for a in left.actions if isinstance(a, DeleteChild)]
    # Without a restore asked, an unowned claim is not this Wukong's to delete.
    plain = plan_deletion(deleting(), {}, world)
    assert ("PersistentVolumeClaim", "web-1-data") not in [
        (a.kind, a.name) for a in plain.actions if isinstance(a, DeleteChild)
    ]


def _deleted(plan: Any) -> list[tuple[str, str]]:
    return [(a.kind, a.name) for a in plan.actions if isinstance(a, DeleteChild)]


def test_a_restored_claim_the_status_has_no_uid_for_yet_is_known_by_the_cached_restore() -> None:
    """The pass that made the restore wrote its status before the restore was in the cache:
    the restore, the Wukong's, is known by its uid there while the deletion cancels it."""
    cr = _asked_restore()
    assert cr.status.restore is not None
    unknown = cr.status.restore.model_copy(update={"uid": None})
    cr = cr.model_copy(update={"status": cr.status.model_copy(update={"restore": unknown})})
    world = replace(_no_vm(), claims={"web-1-data": restored_pvc()})
    assert ("PersistentVolumeClaim", "web-1-data") not in _deleted(plan_deletion(cr, {}, world))
    restoring = replace(world, restores={"web-1-restore-1": _restore(complete=False)})
    assert _deleted(plan_deletion(cr, {}, restoring)) == [
        ("VirtualMachineRestore", "web-1-restore-1")
    ]
    cancelled = replace(world, restores={"web-1-restore-1": _restore(complete=True)})
    assert ("PersistentVolumeClaim", "web-1-data") in _deleted(plan_deletion(cr, {}, cancelled))


def test_an_orphan_cascade_after_a_restore_leaves_the_claims_of_the_vm_it_left_running() -> None:
    """`kubectl delete --cascade=orphan` after a restore: the garbage collector strips the
    Wukong's references from the VM and the claims before the deletion runs, and a claim
    the restore had made, owned by nobody again, was deleted as the restore's (pvc-protection
    held it while the VM ran, its deletion for good: source audit, session 46)."""
    cr = _asked_restore()
    # Taken back since the restore (KubeVirt's label gone), then orphaned.
    taken_back = restored_pvc()
    del taken_back["metadata"]["labels"][names.LABEL_RESTORED_FROM_VM]
    # An imported disk's claim, under its DataVolume (orphaned too), KubeVirt's label on.
    system = restored_pvc(disk="system")
    system["metadata"]["ownerReferences"] = [
        {"kind": "DataVolume", "name": "web-1-system", "uid": "web-1-system-uid"}
    ]
    dv = _no_vm().data_volumes["web-1-system"]
    dv["metadata"]["ownerReferences"] = []
    world = replace(
        _no_vm(),
        data_volumes={"web-1-system": dv},
        claims={"web-1-data": taken_back, "web-1-system": system},
        nads={},
    )
    plan = plan_deletion(cr, {}, world)
    assert _deleted(plan) == []
    assert plan.finalize
    # A claim of an earlier restore, never taken back (KubeVirt's label on), orphaned: the
    # last restore is another one.
    older = restored_pvc(restore="web-1-restore-0-old-uid")
    plan = plan_deletion(cr, {}, replace(world, claims={"web-1-data": older}))
    assert _deleted(plan) == [] and plan.finalize


def test_an_orphan_cascade_during_a_restore_leaves_the_claims_it_has_made() -> None:
    """`kubectl delete --cascade=orphan` while a restore runs: the garbage collector orphans
    the VM and the VirtualMachineRestore, which goes on. The claims it had made again, owned
    by nobody and marked by it, were deleted as this Wukong's, under the VM the user meant
    to keep, and KubeVirt made them again while it ran (source audit, session 47, finding 2)."""
    world = _stopped()
    assert world.vm is not None
    vm = {**world.vm, "metadata": {**world.vm["metadata"], "ownerReferences": []}}
    running = _restore(complete=False)
    running["metadata"]["ownerReferences"] = []
    orphaned = replace(
        world,
        vm=vm,
        vmi=None,
        restores={"web-1-restore-1": running},
        claims={"web-1-data": restored_pvc()},
        data_volumes={},
        nads={},
    )
    plan = plan_deletion(_asked_restore(), {}, orphaned)
    assert _deleted(plan) == []
    assert plan.finalize
    # The restore orphaned, its VM already gone (deleted by hand): still not this Wukong's.
    plan = plan_deletion(_asked_restore(), {}, replace(orphaned, vm=None))
    assert _deleted(plan) == [] and plan.finalize
    # A restore this Wukong still owns, complete just before a plain delete: its claims go.
    done = replace(orphaned, vm=None, restores={"web-1-restore-1": _restore(complete=True)})
    plan = plan_deletion(_asked_restore(), {}, done)
    assert ("PersistentVolumeClaim", "web-1-data") in [
        (a.kind, a.name) for a in plan.actions if isinstance(a, DeleteChild)
    ]
