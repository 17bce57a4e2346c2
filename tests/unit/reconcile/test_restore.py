"""The restore planner: `lifecycleAction: restore` becomes one VirtualMachineRestore per
request (InPlace, claims not given to the VM, failing if the VM runs), refused at once when it
cannot be done, and the operator's hands kept off the disks and the VM while KubeVirt works."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.unit.reconcile.test_lifecycle import running_world
from tests.unit.reconcile.test_snapshot import cr as asking
from tests.unit.reconcile.world import (
    WirePlan,
    bound_pvc,
    decide,
    ready_children,
    restored_pvc,
    wukong,
)
from wukong.api import names
from wukong.api.status import LifecycleState, RestoreStatus, VolumeStatus
from wukong.api.v1alpha1 import Wukong
from wukong.reconcile.actions import CreateChild, DeleteChild, Emit, PatchChild, VmCall
from wukong.reconcile.children import owner_reference
from wukong.reconcile.disks import plan_disks, restored_for
from wukong.reconcile.observed import Observed
from wukong.reconcile.restore import Around, plan_restore

NOW = datetime(2026, 12, 5, tzinfo=UTC)
VM = {"metadata": {"name": "web-vm", "namespace": "ns", "uid": "vm-uid"}}
VMI = {"metadata": {"name": "web-vm", "namespace": "ns"}, "status": {"phase": "Running"}}


def cr() -> Wukong:
    return asking(action="restore", snapshotName="good")


def snapshot(source: str = "web-vm", ready: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"name": "good", "namespace": "ns"},
        "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": source}},
        "status": {"readyToUse": ready, "phase": "Succeeded" if ready else "InProgress"},
    }


def test_a_request_makes_one_in_place_restore_the_wukong_owns_and_holds_off() -> None:
    seen = Observed(now=NOW, vm=VM, snapshots={"good": snapshot()})
    plan = plan_restore(cr(), seen, None, "0123456789abcdef", "good")
    create = next(a for a in plan.actions if isinstance(a, CreateChild))
    body = create.body
    assert create.kind == "VirtualMachineRestore"
    assert body["metadata"]["name"] == "web-restore-01234567"
    assert body["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert body["spec"] == {
        "target": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "web-vm"},
        "virtualMachineSnapshotName": "good",
        "volumeRestorePolicy": "InPlace",
        "volumeOwnershipPolicy": "None",
        "targetReadinessPolicy": "WaitGracePeriodAndFail",
    }
    assert plan.holding and plan.status is not None and plan.status.result is None


@pytest.mark.parametrize(
    ("seen", "words"),
    [
        pytest.param(
            Observed(
                now=NOW,
                vm=VM,
                vmi=VMI,
                snapshots={"good": snapshot()},
                migrations={"m1": {"metadata": {"name": "web-migrate-1"}, "status": {}}},
            ),
            "restore stops web, and a migration of it is running (web-migrate-1): wait for it "
            "to end, or cancel it (wukong migrate-cancel web -n ns)",
            id="migrating",
        ),
        pytest.param(Observed(now=NOW), "restore needs the VM: web has none yet", id="no-vm"),
        pytest.param(
            Observed(now=NOW, vm=VM),
            "no VirtualMachineSnapshot named good in namespace ns",
            id="no-snapshot",
        ),
        pytest.param(
            Observed(now=NOW, vm=VM, snapshots={"good": snapshot(source="db-vm")}),
            "good is a snapshot of VM db-vm, not of web-vm",
            id="other-vm",
        ),
        pytest.param(
            Observed(now=NOW, vm=VM, snapshots={"good": snapshot(ready=False)}),
            "good is not ready to use (phase InProgress)",
            id="not-ready",
        ),
    ],
)
def test_a_restore_that_cannot_be_done_now_is_refused_with_nothing_made(
    seen: Observed, words: str
) -> None:
    plan = plan_restore(cr(), seen, None, "r-1", "good", Around(runs=True))
    assert not any(isinstance(a, CreateChild) for a in plan.actions)
    assert not plan.holding
    assert plan.status is not None and plan.status.result == "Refused"
    assert words in (plan.status.refusal or "")
    assert [a.reason for a in plan.actions if isinstance(a, Emit)] == ["RestoreRefused"]


def _restore(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "r1", "namespace": "ns", "uid": "r1-uid"}, "status": status}


def _following(restore: dict[str, Any] | None, **old: Any) -> Any:
    base = RestoreStatus(request_id="r-1", name="r1", snapshot="good", phase="Restoring")
    seen = Observed(
        now=NOW, vm=VM, snapshots={"good": snapshot()}, restores={"r1": restore} if restore else {}
    )
    return plan_restore(cr(), seen, base.model_copy(update=old), "r-1", "good")


def test_a_restore_is_followed_to_its_end_in_words() -> None:
    plan = _following(_restore(complete=False))
    assert plan.holding and not plan.actions and plan.status.uid == "r1-uid"
    stuck = {"type": "Progressing", "status": "False", "reason": "the server rejected it"}
    plan = _following(_restore(complete=False, conditions=[stuck]))
    assert plan.holding
    assert plan.status.message == "r1: KubeVirt cannot go on: the server rejected it"
    assert [a.reason for a in plan.actions] == ["RestoreStuck"]
    again = _following(_restore(complete=False, conditions=[stuck]), message=plan.status.message)
    assert not again.actions  # said once
    done = _following(_restore(complete=True))
    assert not done.holding and done.status.result == "Succeeded"
    assert done.actions == (
        Emit("Normal", "Restored", "the disks are as snapshot good holds them (restore r1)"),
    )
    failed = {"type": "Failure", "status": "True", "reason": "x", "message": "VM is running"}
    plan = _following(_restore(complete=False, conditions=[failed]))
    assert not plan.holding and plan.status.result == "Failed"
    assert plan.status.message == "restore r1 failed: VM is running"
    gone = _following(None, uid="r1-uid")
    assert not gone.holding and gone.status.result == "Failed"
    assert _following(None).holding  # just created, not in the cache yet


def test_an_error_kubevirt_gets_past_at_its_next_try_is_no_warning() -> None:
    """KubeVirt's restore often meets passing errors while it makes the claims again (one
    "not found" before it is made, "already exists" after): the status says it retries;
    the Warning comes only once one error has stood STUCK_AFTER seconds, and then once."""
    fresh = {
        "type": "Progressing",
        "status": "False",
        "reason": 'persistentvolumeclaims "web-1-data" not found',
        "lastTransitionTime": "2026-12-04T23:59:57Z",  # 3 s before NOW
    }
    plan = _following(_restore(complete=False, conditions=[fresh]))
    assert plan.holding and not plan.actions
    assert (
        plan.status.message == 'r1: KubeVirt retries: persistentvolumeclaims "web-1-data" not found'
    )
    assert plan.requeue_after == pytest.approx(7.0)  # the pass that would say it stands
    standing = fresh | {"lastTransitionTime": "2026-12-04T23:59:50Z"}  # 10 s
    plan = _following(_restore(complete=False, conditions=[standing]), message=plan.status.message)
    stuck = 'r1: KubeVirt cannot go on: persistentvolumeclaims "web-1-data" not found'
    assert plan.holding and plan.status.message == stuck and plan.requeue_after is None
    assert plan.actions == (Emit("Warning", "RestoreStuck", stuck),)
    again = _following(_restore(complete=False, conditions=[standing]), message=stuck)
    assert not again.actions  # said once
    other = standing | {"reason": "later", "lastTransitionTime": "2026-12-04T23:59:59Z"}
    plan = _following(_restore(complete=False, conditions=[other]), message=stuck)
    assert not plan.actions and plan.status.message == "r1: KubeVirt retries: later"


def test_while_kubevirt_restores_the_operator_leaves_disks_and_vm_alone() -> None:
    """A pass that would make the missing claim and patch the VM does neither."""
    spec = wukong().to_dict()
    spec["spec"]["lifecycleAction"] = {"action": "restore", "snapshotName": "good"}
    status = {
        "phase": "Stopped",
        "restore": {"requestId": "r-1", "name": "r1", "snapshot": "good", "phase": "Restoring"},
    }
    restoring = Wukong.from_dict({**spec, "status": status})
    vm = {
        "metadata": {"name": "web-1-vm", "namespace": "team-a", "uid": "vm-uid"},
        "spec": {"runStrategy": "Halted", "template": {"spec": {}}},
    }
    world = ready_children(claims={}, vm=vm, restores={"r1": _restore(complete=False)})
    plan = decide(restoring, status, world)
    assert not [a for a in plan.actions if isinstance(a, (CreateChild, PatchChild))]
    assert plan.status["restore"]["name"] == "r1"


R1 = RestoreStatus(name="r1", uid="r1-uid", result="Succeeded")


def test_a_claim_is_this_wukongs_restores_by_its_mark_until_it_is_taken_back() -> None:
    """The restore that made a claim marks it `<name>-<uid>` (KubeVirt's lastRestoreUID);
    read from the labels alone, a claim stayed the restore's for good (source audit, s46)."""
    pvc = restored_pvc(disk=None, restore="r1-r1-uid")
    cr_ = wukong()
    assert restored_for(pvc, cr_, R1)
    assert not restored_for(pvc, cr_, None)  # no restore asked: someone else's claim
    # Another restore's, one whose uid is not known, or one made again under the same name
    # (a Wukong made again asks a restore of the same name for the same request).
    assert not restored_for(pvc, cr_, R1.model_copy(update={"name": "r2"}))
    assert not restored_for(pvc, cr_, R1.model_copy(update={"uid": None}))
    assert not restored_for(pvc, cr_, R1.model_copy(update={"uid": "other-uid"}))
    for label in (names.LABEL_RESTORED_FROM_VM, names.LABEL_WUKONG):
        other = copy.deepcopy(pvc)
        other["metadata"]["labels"][label] = "db-vm"
        assert not restored_for(other, cr_, R1)
    # Taken back: KubeVirt's label gone, it is the disk's like any other.
    del pvc["metadata"]["labels"][names.LABEL_RESTORED_FROM_VM]
    assert not restored_for(pvc, cr_, R1)


def _after_restore(*claims: dict[str, Any]) -> WirePlan:
    """The pass after restore r1 completed, with `claims` for web-1's disks."""
    status = {"restore": R1.to_wire()}
    done = Wukong.from_dict({**wukong().to_dict(), "status": status})
    world = ready_children(
        claims={c["metadata"]["name"]: c for c in claims}, restores={"r1": _restore(complete=True)}
    )
    return decide(done, status, world)


def test_a_restored_blank_claim_is_taken_back_and_kubevirts_labels_go_in_the_same_write() -> None:
    data = restored_pvc(restore="r1-r1-uid")
    data["metadata"]["resourceVersion"] = "7"
    plan = _after_restore(bound_pvc("web-1-system", "20Gi"), data)
    [take] = [a for a in plan.actions if isinstance(a, PatchChild) and a.name == "web-1-data"]
    meta = take.patch["metadata"]
    assert [r["uid"] for r in meta["ownerReferences"]] == ["uid-web-1"]
    assert meta["labels"] == {
        names.LABEL_HELD_BY: None,
        names.LABEL_RESTORED_FROM_VM: None,
        names.LABEL_RESTORED_FROM_NAMESPACE: None,
    }
    assert meta["resourceVersion"] == "7"  # pinned
    [volume] = [v for v in plan.status["volumes"] if v["name"] == "data"]
    assert volume["phase"] == "Bound"
    # Taken back, it asks nothing more.
    owned = copy.deepcopy(data)
    owned["metadata"]["ownerReferences"] = [owner_reference(wukong())]
    del owned["metadata"]["labels"][names.LABEL_RESTORED_FROM_VM]
    again = _after_restore(bound_pvc("web-1-system", "20Gi"), owned)
    assert not [a for a in again.actions if isinstance(a, PatchChild)]
    # Taken back before session 46, KubeVirt's label on: it goes now.
    owned["metadata"]["labels"][names.LABEL_RESTORED_FROM_VM] = "web-1-vm"
    late_pass = _after_restore(bound_pvc("web-1-system", "20Gi"), owned)
    [late] = [a for a in late_pass.actions if isinstance(a, PatchChild)]
    assert late.patch["metadata"]["labels"] == {
        names.LABEL_RESTORED_FROM_VM: None,
        names.LABEL_RESTORED_FROM_NAMESPACE: None,
    }


def test_a_kept_restored_claim_stays_held_and_loses_kubevirts_labels() -> None:
    """The old claim was held (deleteOptions keep it): KubeVirt copied the label."""
    data = restored_pvc(restore="r1-r1-uid")
    data["metadata"]["labels"][names.LABEL_HELD_BY] = "uid-web-1"
    status = {"restore": R1.to_wire()}
    body = wukong(deleteOptions={"preserveDisksList": ["data"]}).to_dict()
    done = Wukong.from_dict({**body, "status": status})
    world = ready_children(
        claims={"web-1-system": bound_pvc("web-1-system", "20Gi"), "web-1-data": data}
    )
    plan = decide(done, status, world)
    [take] = [a for a in plan.actions if isinstance(a, PatchChild) and a.name == "web-1-data"]
    assert take.patch["metadata"]["labels"] == {
        names.LABEL_RESTORED_FROM_VM: None,
        names.LABEL_RESTORED_FROM_NAMESPACE: None,
    }
    assert "ownerReferences" not in take.patch["metadata"]


def test_a_restored_imported_claim_loses_kubevirts_labels_once_cdi_has_it() -> None:
    """An imported disk's claim is CDI's: the restore marks it populatedFor its DataVolume,
    and CDI takes it under it. Then, and only then, KubeVirt's labels go."""
    system = restored_pvc(disk="system", restore="r1-r1-uid")
    system["metadata"]["resourceVersion"] = "7"
    plan = _after_restore(system, bound_pvc("web-1-data"))
    assert not [a for a in plan.actions if isinstance(a, PatchChild) and a.name == "web-1-system"]
    system["metadata"]["ownerReferences"] = [
        {"kind": "DataVolume", "name": "web-1-system", "uid": "web-1-system-uid"}
    ]
    plan = _after_restore(system, bound_pvc("web-1-data"))
    [take] = [a for a in plan.actions if isinstance(a, PatchChild) and a.name == "web-1-system"]
    assert take.kind == "PersistentVolumeClaim"
    assert take.patch == {
        "metadata": {
            "labels": {
                names.LABEL_RESTORED_FROM_VM: None,
                names.LABEL_RESTORED_FROM_NAMESPACE: None,
            },
            "resourceVersion": "7",
        }
    }


def test_a_claim_another_restore_made_is_not_taken() -> None:
    """An orphaned claim of a Wukong of the same name before (`--cascade=orphan`) keeps
    the labels of its Wukong and of its restore: a new Wukong of the name that restored
    anything took it, silently, and plugged it in (source audit, session 46)."""
    theirs = restored_pvc(restore="web-1-restore-0a1b2c3d-old-uid")
    plan = _after_restore(bound_pvc("web-1-system", "20Gi"), theirs)
    assert not [a for a in plan.actions if isinstance(a, PatchChild) and a.name == "web-1-data"]
    [volume] = [v for v in plan.status["volumes"] if v["name"] == "data"]
    assert volume["phase"] == "Conflict"
    bound = next(c for c in plan.status["conditions"] if c["type"] == "VolumesBound")
    assert bound["reason"] == "ClaimConflict"


def test_a_stopped_vm_whose_vmi_is_still_going_is_restored_once_it_is_gone() -> None:
    """`stop --wait` ends at Stopped while the VMI may still be there (Succeeded, or being
    deleted); KubeVirt's restore wants no VMI at all (it would wait, then fail)."""
    ended = {"metadata": {"name": "web-vm", "namespace": "ns"}, "status": {"phase": "Succeeded"}}
    seen = Observed(now=NOW, vm=VM, vmi=ended, snapshots={"good": snapshot()})
    plan = plan_restore(cr(), seen, None, "r-1", "good")
    assert plan.status is not None and plan.status.phase == "WaitingForVMI"
    assert not plan.actions and not plan.holding
    still = plan_restore(cr(), seen, plan.status, "r-1", "good")
    assert not still.actions and still.status == plan.status
    gone = Observed(now=NOW, vm=VM, snapshots={"good": snapshot()})
    started = plan_restore(cr(), gone, plan.status, "r-1", "good")
    assert started.holding and started.status is not None
    assert started.status.phase == "Restoring"
    assert [type(a).__name__ for a in started.actions] == ["CreateChild", "Emit"]


def _waiting_then_live(around: Around) -> tuple[RestoreStatus, Observed]:
    """A restore accepted while the VMI had ended (it waits for it to go), and the world
    once a guest runs again."""
    ended = {"metadata": {"name": "web-vm", "namespace": "ns"}, "status": {"phase": "Failed"}}
    seen = Observed(now=NOW, vm=VM, vmi=ended, snapshots={"good": snapshot()})
    waiting = plan_restore(cr(), seen, None, "r-1", "good", around).status
    assert waiting is not None and waiting.phase == "WaitingForVMI"
    return waiting, replace(seen, vmi=VMI)


def test_a_guest_started_outside_wukong_while_the_restore_waits_is_said_once() -> None:
    """A Wukong not meant to run, its VM started with virtctl while the restore waited for
    the stopped VM's VMI to go: the restore is not made under it, and it is not stopped
    behind the user's back: the user is told to stop it."""
    waiting, again = _waiting_then_live(Around())
    said = plan_restore(cr(), again, waiting, "r-1", "good")
    text = (
        "web-restore-r-1: web runs again (started outside Wukong): the restore waits until "
        "it is stopped (wukong stop web -n ns)"
    )
    assert said.actions == (Emit("Warning", "RestoreWaiting", text),)
    assert said.status is not None and said.status.message == text
    assert not said.holding and said.status.phase == "WaitingForVMI"
    once = plan_restore(cr(), again, said.status, "r-1", "good")
    assert not once.actions and once.status == said.status
    gone = Observed(now=NOW, vm=VM, snapshots={"good": snapshot()})
    made = plan_restore(cr(), gone, said.status, "r-1", "good")
    assert made.holding and made.status is not None and made.status.phase == "Restoring"
    # Such a guest already there when the restore is asked: said in the pass that accepts.
    asked = plan_restore(cr(), again, None, "r-1", "good")
    assert asked.actions == said.actions and asked.status is not None
    assert (asked.status.phase, asked.status.message) == ("WaitingForVMI", text)


def test_a_guest_kubevirt_restarts_while_the_restore_waits_is_stopped_for_it() -> None:
    """Under Always, a restore asked in the moment the VMI had ended waits for it to go;
    virt-controller makes a new one. The Wukong is meant to run: the restore stops it, as
    it would have on acceptance, and starts it again after."""
    runs = Around(runs=True)
    waiting, again = _waiting_then_live(runs)
    stopping = plan_restore(cr(), again, waiting, "r-1", "good", runs)
    assert stopping.status is not None and stopping.status.phase == "StoppingVM"
    assert stopping.status.start_after and not stopping.actions
    assert stopping.lifecycle is not None and stopping.lifecycle.action == "stop"
    assert stopping.lifecycle.requested_at == "for-restore-r-1"
    assert stopping.because == (
        "restore web-restore-r-1 of snapshot good needs the VM stopped; it starts again once "
        "the disks are restored"
    )
    # A request of the user's not answered yet goes first: nothing handed over in its pass.
    first = plan_restore(cr(), again, waiting, "r-1", "good", Around(runs=True, user_first=True))
    assert first.lifecycle is None and first.status == waiting and not first.actions


def _ended(strategy: str, **meta: Any) -> Observed:
    vm = {**VM, "spec": {"runStrategy": strategy}}
    vmi = {
        "metadata": {"name": "web-vm", "namespace": "ns", "uid": "vmi-1", **meta},
        "status": {"phase": "Succeeded"},
    }
    return Observed(now=NOW, vm=vm, vmi=vmi, snapshots={"good": snapshot()})


def test_a_vmi_kept_after_its_guest_shut_down_under_manual_is_deleted_for_the_restore() -> None:
    """Under Manual KubeVirt keeps an ended VMI until the next start, and virt-api refuses
    to stop it (409 "VM is not running"): the restore deletes that VMI, that uid only, on
    each pass until it is going, and is made once it is gone."""
    seen = _ended("Manual")
    plan = plan_restore(cr(), seen, None, "r-1", "good")
    assert plan.status is not None and plan.status.phase == "WaitingForVMI"
    assert plan.actions == (DeleteChild("VirtualMachineInstance", "web-vm", "vmi-1"),)
    assert plan.status.message == (
        "web-restore-r-1: deleting the VMI web-vm left when its guest shut down (KubeVirt "
        "keeps it under runStrategy Manual until the next start)"
    )
    assert plan.status.start_after is None  # it was not running: it stays stopped
    again = plan_restore(cr(), seen, plan.status, "r-1", "good")  # the deletion not seen yet
    assert again.actions == plan.actions and again.status == plan.status
    going = plan_restore(cr(), _ended("Manual", deletionTimestamp="t"), plan.status, "r-1", "good")
    assert not going.actions and going.status == plan.status
    gone = Observed(now=NOW, vm=seen.vm, snapshots={"good": snapshot()})
    made = plan_restore(cr(), gone, plan.status, "r-1", "good")
    assert made.holding and made.status is not None and made.status.phase == "Restoring"


@pytest.mark.parametrize("strategy", ["Always", "RerunOnFailure", "Halted"])
def test_an_ended_vmi_kubevirt_removes_itself_is_waited_for_not_deleted(strategy: str) -> None:
    plan = plan_restore(cr(), _ended(strategy), None, "r-1", "good")
    assert plan.status is not None and plan.status.phase == "WaitingForVMI"
    assert not plan.actions


def test_a_restore_that_outlives_the_stall_bound_says_stalled_and_what_kubevirt_said() -> None:
    """The phase is Stopped, which never stalls; a restore that never ends keeps the
    operator's hands off the disks and the VM, so it raises Stalled itself."""
    spec = wukong().to_dict()
    spec["spec"]["lifecycleAction"] = {"action": "restore", "snapshotName": "good"}
    started = "2026-12-05T00:00:00Z"
    said = "r1: KubeVirt cannot go on: the server rejected it"
    status = {
        "phase": "Stopped",
        "restore": {
            "requestId": "r-1",
            "name": "r1",
            "snapshot": "good",
            "phase": "Restoring",
            "message": said,
            "startedAt": started,
        },
    }
    vm = {
        "metadata": {"name": "web-1-vm", "namespace": "team-a", "uid": "vm-uid"},
        "spec": {"runStrategy": "Halted", "template": {"spec": {}}},
    }
    stuck = {"type": "Progressing", "status": "False", "reason": "the server rejected it"}
    restoring = Wukong.from_dict({**spec, "status": status})

    def stalled(seconds: int) -> tuple[dict[str, Any], Any]:
        restores = {"r1": _restore(complete=False, conditions=[stuck])}
        world = ready_children(vm=vm, snapshots={"good": snapshot()}, restores=restores)
        world = replace(world, now=datetime(2026, 12, 5, 0, 0, seconds, tzinfo=UTC))
        plan = decide(restoring, status, world, stall_after=30)
        cond = next(c for c in plan.status["conditions"] if c["type"] == "Stalled")
        return cond, plan

    early, plan = stalled(10)
    assert early["status"] == "False"
    assert plan.requeue_after is not None and 19 < plan.requeue_after <= 20.1  # at the bound
    late, plan = stalled(40)
    assert late["status"] == "True" and late["reason"] == "RestoreTooLong"
    assert late["message"] == f"restore r1 since {started} (more than 30s): {said}"
    warned = [a for a in plan.actions if isinstance(a, Emit) and a.reason == "RestoreTooLong"]
    assert [(a.type, a.message) for a in warned] == [("Warning", late["message"])]


def _after_failed_restore(**spec: Any) -> Wukong:
    cr = wukong(**spec)
    failed = RestoreStatus(name="r1", snapshot="good", result="Failed", phase="Failed")
    return cr.model_copy(update={"status": cr.status.model_copy(update={"restore": failed})})


def test_a_claim_gone_after_a_restore_that_did_not_complete_is_not_made_blank() -> None:
    """KubeVirt deletes a claim before making it again from the snapshot: a restore that
    stopped between the two leaves the disk without its claim, and a blank one made then
    would be an empty disk where the guest's data was."""
    world = ready_children(
        claims={"web-1-system": bound_pvc("web-1-system", "20Gi")}, snapshots={"good": snapshot()}
    )
    before = VolumeStatus(name="data", pvc_name="web-1-data", bound=True)
    failed = _after_failed_restore()
    plan = plan_disks(failed, world, {"data": before}, restore=failed.status.restore)
    assert not [a for a in plan.actions if isinstance(a, CreateChild)]
    bound = next(c for c in plan.conditions if c.type == "VolumesBound")
    assert (bound.status, bound.reason) == (False, "RestoreIncomplete")
    assert bound.message == (
        "claim web-1-data is gone after restore r1, which did not complete (KubeVirt deletes "
        "a claim before making it again); the data is in snapshot good: restore it again "
        "(wukong restore web-1 --snapshot-name good -n demo), or remove disk data from the spec "
        "and add it back to start it empty"
    )
    assert not plan.ready
    # A disk the Wukong did not have before is made as usual; so is any after a restore
    # that completed.
    new = plan_disks(failed, world, {}, restore=failed.status.restore)
    assert [a.kind for a in new.actions if isinstance(a, CreateChild)] == ["PersistentVolumeClaim"]
    done = wukong().model_copy(
        update={
            "status": wukong().status.model_copy(
                update={"restore": RestoreStatus(name="r1", snapshot="good", result="Succeeded")}
            )
        }
    )
    again = plan_disks(done, world, {"data": before}, restore=done.status.restore)
    assert [a.kind for a in again.actions if isinstance(a, CreateChild)] == [
        "PersistentVolumeClaim"
    ]


def test_the_pass_that_sees_the_restore_end_makes_no_blank_claim_either() -> None:
    """The restore deleted half-way: the pass that finds it gone ends it (Failed) and, in
    the same pass, must not make the claim KubeVirt had deleted (the first integration run
    caught a blank claim made here, refused by the quota that had stopped the restore)."""
    spec = wukong().to_dict()
    spec["spec"]["lifecycleAction"] = {"action": "restore", "snapshotName": "good"}
    restoring = {"requestId": "r-1", "name": "r1", "uid": "r1-uid", "snapshot": "good"}
    data = {"name": "data", "pvcName": "web-1-data", "bound": True}
    status = {"phase": "Stopped", "restore": {**restoring, "phase": "Restoring"}, "volumes": [data]}
    cr = Wukong.from_dict({**spec, "status": status})
    vm = {
        "metadata": {"name": "web-1-vm", "namespace": "team-a", "uid": "vm-uid"},
        "spec": {"runStrategy": "Halted", "template": {"spec": {}}},
    }
    world = ready_children(claims={"web-1-system": bound_pvc("web-1-system", "20Gi")}, vm=vm)
    plan = decide(cr, status, world)
    assert plan.status["restore"]["result"] == "Failed"
    assert not [a for a in plan.actions if isinstance(a, CreateChild)]
    bound = next(c for c in plan.status["conditions"] if c["type"] == "VolumesBound")
    assert bound["reason"] == "RestoreIncomplete"
    # What was missing when it ended is recorded: only that is the restore's doing.
    assert plan.status["restore"]["lostClaims"] == ["web-1-data"]


def test_a_claim_deleted_by_hand_after_a_failed_restore_is_not_blamed_on_it() -> None:
    """The claims missing when the restore ended are its doing (`lostClaims`); one still
    there then and deleted since was deleted by someone else: made again, empty, with the
    Warning any claim deleted outside Wukong gets, not held as RestoreIncomplete."""
    world = ready_children(
        claims={"web-1-system": bound_pvc("web-1-system", "20Gi")}, snapshots={"good": snapshot()}
    )
    before = VolumeStatus(name="data", pvc_name="web-1-data", bound=True)
    failed = _after_failed_restore()
    restore = failed.status.restore
    assert restore is not None
    for lost, held in (([], False), (["web-1-system"], False), (["web-1-data"], True)):
        ended = restore.model_copy(update={"lost_claims": lost})
        plan = plan_disks(failed, world, {"data": before}, restore=ended)
        bound = next(c for c in plan.conditions if c.type == "VolumesBound")
        made = [a.kind for a in plan.actions if isinstance(a, CreateChild)]
        if held:
            assert (made, bound.reason) == ([], "RestoreIncomplete")
        else:
            assert made == ["PersistentVolumeClaim"] and bound.reason != "RestoreIncomplete"
            warned = [a.reason for a in plan.actions if isinstance(a, Emit)]
            assert "DiskClaimLost" in warned


def test_a_claim_restored_for_a_disk_the_spec_no_longer_has_is_named_in_the_answer() -> None:
    """KubeVirt restores every volume of the snapshot; a disk removed from the spec since
    comes back as a claim nobody owns: said, not deleted."""
    old = restored_pvc("web", "old")
    base = RestoreStatus(request_id="r-1", name="r1", snapshot="good", phase="Restoring")
    seen = Observed(
        now=NOW, vm=VM, restores={"r1": _restore(complete=True)}, claims={"web-old": old}
    )
    plan = plan_restore(cr(), seen, base, "r-1", "good")
    assert plan.status is not None and plan.status.result == "Succeeded"
    assert plan.status.message == (
        "the disks are as snapshot good holds them (restore r1); also restored, for a disk "
        "the spec no longer has: claim web-old (disk old), left as KubeVirt made it, owned by "
        "nobody (add the disk back to use it, or delete the claim)"
    )
    assert not [a for a in plan.actions if not isinstance(a, Emit)]


def _running_asked_to_restore() -> tuple[Wukong, Observed, Observed]:
    """web-1 running, asked to restore snapshot good of its VM; the world as it runs, and
    once it has stopped (no VMI, Halted: what KubeVirt's stop leaves)."""
    asked = wukong(lifecycleAction={"action": "restore", "snapshotName": "good"})
    world = running_world()
    good = snapshot(source="web-1-vm")
    running = replace(world, snapshots={"good": good})
    vm = {
        **world.vm,
        "spec": {**world.vm["spec"], "runStrategy": "Halted"},
        "status": {"printableStatus": "Stopped"},
    }
    stopped = replace(world, vm=vm, vmi=None, snapshots={"good": good})
    return asked, running, stopped


def _completed(made: dict[str, Any], stopped: Observed) -> tuple[dict[str, Any], Observed]:
    """The status the pass that made the restore wrote (with the restore's uid, seen since),
    and the stopped world once KubeVirt has completed that restore."""
    name = made["restore"]["name"]
    complete = {**_restore(complete=True), "metadata": {"name": name}}
    status = {**made, "restore": {**made["restore"], "uid": "r1-uid"}}
    return status, replace(stopped, restores={name: complete})


def calls(plan: Any) -> list[str]:
    return [a.verb for a in plan.actions if isinstance(a, VmCall)]


def test_a_running_vm_is_stopped_for_the_restore_and_started_again_after_it() -> None:
    """Through the lifecycle record, like any stop and start: recorded, then called once."""
    asked, running, stopped = _running_asked_to_restore()
    first = decide(asked, {"phase": "Running"}, running)
    back, life = first.status["restore"], first.status["lifecycleState"]
    assert (back["phase"], back["startAfter"], first.status["phase"]) == (
        "StoppingVM",
        True,
        "Stopping",
    )
    name = back["name"]
    assert (life["lastAction"], life["state"], life["message"]) == (
        "stop",
        "Accepted",
        f"stop accepted: restore {name} of snapshot good needs the VM stopped; it starts "
        "again once the disks are restored",
    )
    assert calls(first) == []  # recorded first, called by the next pass
    assert not [a for a in first.actions if isinstance(a, CreateChild)]
    second = decide(asked, first.status, running)
    assert calls(second) == ["stop"]
    assert second.status["restore"]["phase"] == "StoppingVM"
    assert calls(decide(asked, second.status, running)) == []  # once
    # The VMI is gone: the restore is made, and nothing starts the VM meanwhile.
    made = decide(asked, second.status, stopped)
    assert made.status["phase"] == "Stopped"
    assert made.status["restore"]["phase"] == "Restoring"
    assert [a.kind for a in made.actions if isinstance(a, CreateChild)] == ["VirtualMachineRestore"]
    assert calls(made) == []
    status, done = _completed(made.status, stopped)
    restored = decide(asked, status, done)
    back, life = restored.status["restore"], restored.status["lifecycleState"]
    assert back["result"] == "Succeeded"
    assert back["message"].endswith("; starting web-1 again")
    assert (life["lastAction"], life["state"], life["message"]) == (
        "start",
        "Accepted",
        "start accepted: the disks are restored from snapshot good",
    )
    started = decide(asked, restored.status, done)
    assert calls(started) == ["start"]
    assert started.status["phase"] == "Starting"
    assert calls(decide(asked, started.status, done)) == []


def test_a_guest_back_while_the_restore_waits_is_stopped_through_the_lifecycle() -> None:
    """The whole pass: a restore waiting for an ended VMI to go finds a guest KubeVirt
    restarted (Always): the lifecycle records the restore's stop, the next pass calls it."""
    asked, running, _ = _running_asked_to_restore()
    first = decide(asked, {"phase": "Running"}, running)
    waiting = {
        **first.status["restore"],
        "phase": "WaitingForVMI",
        "message": "waiting",
        "startAfter": None,
    }
    status = {"phase": "Running", "restore": waiting}
    again = decide(asked, status, running)
    back, life = again.status["restore"], again.status["lifecycleState"]
    assert (back["phase"], back["startAfter"]) == ("StoppingVM", True)
    assert (life["lastAction"], life["state"]) == ("stop", "Accepted")
    assert calls(again) == []  # recorded first
    assert calls(decide(asked, again.status, running)) == ["stop"]


def test_a_start_taken_before_the_vm_has_stopped_cancels_the_restore() -> None:
    """Only where the state machine takes a start before the VMI is gone (Stopped while it
    lingers): the guest runs again, and the restore must not be made under it."""
    asked, running, _ = _running_asked_to_restore()
    first = decide(asked, {"phase": "Running"}, running)
    start = {"lastAction": "start", "requestId": "later", "state": "Accepted", "issued": False}
    status = {**first.status, "lifecycleState": start}
    cancelled = decide(asked, status, running)
    back = cancelled.status["restore"]
    assert back["result"] == "Failed" and "startAfter" not in back
    assert back["message"] == (
        f"restore {back['name']} was not made: start was asked before web-1 had stopped for it"
    )
    assert back["lostClaims"] == []  # never made: whatever claim goes later is not its doing
    assert not [a for a in cancelled.actions if isinstance(a, CreateChild)]
    assert [a.reason for a in cancelled.actions if isinstance(a, Emit)].count("RestoreFailed") == 1


def test_a_forced_stop_meanwhile_hastens_the_restore_and_leaves_the_vm_stopped() -> None:
    asked, running, stopped = _running_asked_to_restore()
    first = decide(asked, {"phase": "Running"}, running)
    second = decide(asked, first.status, running)
    forced = wukong(lifecycleAction={"action": "stop", "force": True, "requestedAt": "later"})
    taken = decide(forced, second.status, running)
    assert taken.status["lifecycleState"]["force"] is True
    made = decide(forced, taken.status, stopped)  # the spec asks the forced stop now
    assert [a.kind for a in made.actions if isinstance(a, CreateChild)] == ["VirtualMachineRestore"]
    status, done = _completed(made.status, stopped)
    restored = decide(forced, status, done)
    assert restored.status["restore"]["message"].endswith(
        "; web-1 stays stopped: stop was asked meanwhile"
    )
    assert restored.status["lifecycleState"]["lastAction"] == "stop"
    assert calls(decide(forced, restored.status, done)) == []


def test_a_restore_whose_stop_is_refused_is_refused() -> None:
    asked, running, _ = _running_asked_to_restore()
    first = decide(asked, {"phase": "Running"}, running)
    life = {**first.status["lifecycleState"], "state": "Failed", "message": "409 conflict"}
    refused = decide(asked, {**first.status, "lifecycleState": life}, running)
    back = refused.status["restore"]
    assert back["result"] == "Refused"
    assert back["refusal"] == (
        "restore needs web-1 stopped, and KubeVirt refused the stop: 409 conflict"
    )


def test_a_vm_the_user_is_stopping_is_restored_once_stopped_and_not_started_after() -> None:
    seen = Observed(now=NOW, vm=VM, vmi=VMI, snapshots={"good": snapshot()})
    plan = plan_restore(cr(), seen, None, "r-1", "good", Around(runs=False))
    assert plan.status is not None and plan.status.phase == "WaitingForVMI"
    assert plan.lifecycle is None and not plan.status.start_after


def test_a_restore_of_a_running_vm_that_fails_leaves_it_stopped() -> None:
    failed = {"type": "Failure", "status": "True", "reason": "x", "message": "quota"}
    plan = _following(_restore(complete=False, conditions=[failed]), start_after=True)
    assert plan.status.result == "Failed" and plan.lifecycle is None
    assert plan.status.message == "restore r1 failed: quota; web stays stopped"


def test_a_snapshot_asked_while_the_vm_stops_for_a_restore_is_refused() -> None:
    asked, running, _ = _running_asked_to_restore()
    first = decide(asked, {"phase": "Running"}, running)
    shoot = wukong(lifecycleAction={"action": "snapshot", "requestedAt": "later"})
    plan = decide(shoot, first.status, running)
    name = first.status["restore"]["name"]
    assert plan.status["snapshot"]["refusal"] == (
        f"web-1 is being restored ({name}): snapshot it once that is done"
    )
    assert plan.status["restore"]["phase"] == "StoppingVM"


def test_a_restore_refused_while_one_stops_the_vm_leaves_it_to_start_after() -> None:
    """The refused request is answered beside the running one, whose id stays: the stop it
    handed over is still its own, and the VM is started after it."""
    asked, running, stopped = _running_asked_to_restore()
    first = decide(asked, {"phase": "Running"}, running)
    again = wukong(
        lifecycleAction={"action": "restore", "snapshotName": "good", "requestedAt": "2"}
    )
    refused = decide(again, first.status, running)
    back = refused.status["restore"]
    assert back["requestId"] == first.status["restore"]["requestId"]
    assert back["refusedRequestId"] != back["requestId"]
    assert back["refusal"].startswith("a restore of web-1 is in progress")
    assert back["phase"] == "StoppingVM"
    made = decide(again, refused.status, stopped)
    assert made.status["restore"]["phase"] == "Restoring"
    status, done = _completed(made.status, stopped)
    restored = decide(again, status, done)
    assert restored.status["restore"]["message"].endswith("; starting web-1 again")
    assert restored.status["lifecycleState"]["lastAction"] == "start"


def test_a_request_refused_while_the_vm_stops_for_the_restore_leaves_it_to_start_after() -> None:
    """A resume refused meanwhile overwrites the lifecycle record's requestId, not the stop
    it stands on: the VM is still started once the disks are restored."""
    asked, running, stopped = _running_asked_to_restore()
    first = decide(asked, {"phase": "Running"}, running)
    second = decide(asked, first.status, running)
    resume = wukong(lifecycleAction={"action": "resume", "requestedAt": "later"})
    refused = decide(resume, second.status, running)
    assert refused.status["lifecycleState"]["state"] == "Refused"
    made = decide(resume, refused.status, stopped)
    assert made.status["restore"]["phase"] == "Restoring"
    status, done = _completed(made.status, stopped)
    restored = decide(resume, status, done)
    assert restored.status["restore"]["message"].endswith("; starting web-1 again")
    assert restored.status["lifecycleState"]["lastAction"] == "start"
    # The resume stays answered (once): the start is called, and no pass refuses it again
    # over the start's record (found by test_lifecycle_sequences, session 37).
    started = decide(resume, restored.status, done)
    assert calls(started) == ["start"]
    later = decide(resume, started.status, done)
    for plan in (restored, started, later):
        assert not [a for a in plan.actions if isinstance(a, Emit) and a.reason == "RequestRefused"]
    assert later.status["lifecycleState"]["lastAction"] == "start"


@pytest.mark.parametrize("verb", ["start", "restart", "resume"])
def test_a_restore_asked_while_a_request_to_run_the_vm_is_under_way_is_refused(verb: str) -> None:
    """A start called but its VMI not made yet: nothing shows a guest, and the restore
    would be made under the one about to boot."""
    seen = Observed(now=NOW, vm=VM, snapshots={"good": snapshot()})
    life = LifecycleState(last_action=verb, state="Issued", message=f"{verb} sent to KubeVirt")
    plan = plan_restore(cr(), seen, None, "r-1", "good", Around(runs=True, life=life))
    assert plan.status is not None and plan.status.result == "Refused"
    assert plan.status.refusal == (
        f"a {verb} of web is under way ({verb} sent to KubeVirt): ask again once it is done"
    )
    # A stop under way is not: the restore waits for the VM it stops.
    stopping = LifecycleState(last_action="stop", state="Issued")
    assert (
        plan_restore(cr(), seen, None, "r-1", "good", Around(life=stopping)).status.result is None
    )


def test_a_start_asked_while_a_restore_runs_is_refused_in_the_wukongs_words() -> None:
    """KubeVirt's webhook refuses the runStrategy patch of a start while it restores (the
    request would fail in its words); the operator refuses it first, saying why."""
    _, _, stopped = _running_asked_to_restore()
    back = {"requestId": "r-1", "name": "r1", "snapshot": "good", "phase": "Restoring"}
    status = {"phase": "Stopped", "restore": back}
    start = wukong(lifecycleAction={"action": "start", "requestedAt": "later"})
    plan = decide(start, status, replace(stopped, restores={"r1": _restore(complete=False)}))
    life = plan.status["lifecycleState"]
    assert (life["state"], life["message"]) == (
        "Refused",
        "cannot start: web-1 is being restored from snapshot good (r1): ask again then",
    )
    assert not calls(plan)
    # A running VM stopped for the restore: it is started after it, and the refusal says so.
    stopped_for_it = {**status, "restore": {**back, "startAfter": True}}
    plan = decide(start, stopped_for_it, replace(stopped, restores={"r1": _restore()}))
    assert plan.status["lifecycleState"]["message"] == (
        "cannot start: web-1 is being restored from snapshot good (r1): it starts again once "
        "that is done"
    )


def test_a_stop_refused_while_the_vm_stops_for_the_restore_keeps_it_stopped_after() -> None:
    """Refused because the VM is stopping already, the stop is still the user's word: the
    restore does not start the VM after it."""
    asked, running, stopped = _running_asked_to_restore()
    first = decide(asked, {"phase": "Running"}, running)
    second = decide(asked, first.status, running)
    stop = wukong(lifecycleAction={"action": "stop", "requestedAt": "later"})
    refused = decide(stop, second.status, running)
    assert refused.status["lifecycleState"]["state"] == "Refused"
    made = decide(stop, refused.status, stopped)
    status, done = _completed(made.status, stopped)
    restored = decide(stop, status, done)
    assert restored.status["restore"]["message"].endswith(
        "; web-1 stays stopped: stop was asked meanwhile"
    )
    assert calls(decide(stop, restored.status, done)) == []
    assert restored.status["phase"] == "Stopped"


def test_a_suspended_vm_is_powered_off_for_the_restore_at_once() -> None:
    """A paused guest cannot shut down: a graceful stop would only wait out its grace
    period before the power-off it ends in."""
    asked, _, stopped = _running_asked_to_restore()
    paused = {"type": "Paused", "status": "True", "reason": "PausedByUser"}
    world = running_world(conditions=[{"type": "Ready", "status": "True"}, paused])
    suspended = replace(world, snapshots=stopped.snapshots)
    first = decide(asked, {"phase": "Suspended"}, suspended)
    life = first.status["lifecycleState"]
    assert (life["lastAction"], life["force"]) == ("stop", True)
    assert "its guest is paused and cannot shut down: powered off at once" in life["message"]
    second = decide(asked, first.status, suspended)
    assert [(a.verb, a.force) for a in second.actions if isinstance(a, VmCall)] == [("stop", True)]
    made = decide(asked, second.status, stopped)  # and the restore follows as for any stop
    assert made.status["restore"]["phase"] == "Restoring"


def test_a_restore_made_by_a_pass_whose_status_was_lost_is_followed_not_made_again() -> None:
    """The operator stopped between making the restore and writing that it had: the status
    still says StoppingVM (and Stopping). A create would answer 409 and no event would wake
    the next pass (found by the operator-killed fault matrix): the restore in the cache is
    followed."""
    asked, running, stopped = _running_asked_to_restore()
    first = decide(asked, {"phase": "Running"}, running)
    second = decide(asked, first.status, running)
    name = second.status["restore"]["name"]
    made = {**_restore(complete=True), "metadata": {"name": name, "uid": "r1-uid"}}
    world = replace(stopped, restores={name: made})
    plan = decide(asked, second.status, world)
    assert not [a for a in plan.actions if isinstance(a, CreateChild)]
    # The state machine takes the start from Stopped, which this pass writes: the restore
    # is said complete, and the start handed over, by the pass right after it.
    assert plan.status["phase"] == "Stopped" and plan.requeue_after == 0.0
    assert "result" not in plan.status["restore"]
    after = decide(asked, plan.status, world)
    assert after.status["restore"]["result"] == "Succeeded"
    assert after.status["lifecycleState"]["lastAction"] == "start"
    assert after.status["lifecycleState"]["state"] == "Accepted"


def test_a_request_asked_in_the_pass_a_restore_completes_decides_and_is_said_to() -> None:
    """The user's request, not yet answered, goes before the start the restore would hand
    over; the restore's answer says so rather than 'starting web-1 again'."""
    asked, running, stopped = _running_asked_to_restore()
    first = decide(asked, {"phase": "Running"}, running)
    second = decide(asked, first.status, running)
    made = decide(asked, second.status, stopped)
    status, done = _completed(made.status, stopped)
    restart = wukong(lifecycleAction={"action": "restart", "requestedAt": "later"})
    plan = decide(restart, status, done)
    assert plan.status["restore"]["message"].endswith(
        "; restart was asked meanwhile: that request decides"
    )
    assert plan.status["lifecycleState"]["lastAction"] != "start"


def _owned_restore(name: str, **status: Any) -> dict[str, Any]:
    meta = {"name": name, "namespace": "ns", "uid": f"{name}-uid"}
    return {"metadata": meta | {"ownerReferences": [owner_reference(cr())]}, "status": status}


def test_a_failed_restore_goes_once_the_status_has_said_so() -> None:
    """KubeVirt's webhook refuses every restore of a VM while another is not complete, a
    failed one too; a failed one can keep the VM locked (source audit, session 41)."""
    failure = {"type": "Failure", "status": "True", "reason": "x", "message": "VM is running"}
    seen = Observed(now=NOW, vm=VM, restores={"r1": _owned_restore("r1", conditions=[failure])})
    base = RestoreStatus(request_id="r-1", name="r1", snapshot="good", phase="Restoring")
    said = plan_restore(cr(), seen, base, "r-1", "good")
    assert said.status is not None and said.status.result == "Failed"
    assert not [a for a in said.actions if isinstance(a, DeleteChild)]  # kept until said
    assert said.requeue_after == 0.0
    after = plan_restore(cr(), seen, said.status, "r-1", "good")
    assert [a for a in after.actions if isinstance(a, DeleteChild)] == [
        DeleteChild("VirtualMachineRestore", "r1", "r1-uid")
    ]
    going = _owned_restore("r1", conditions=[failure])
    going["metadata"]["deletionTimestamp"] = "2026-12-06T10:00:00Z"
    theirs = _owned_restore("r2", conditions=[failure])
    theirs["metadata"]["ownerReferences"] = []
    done = _owned_restore("r3", complete=True)
    others = Observed(now=NOW, vm=VM, restores={"r1": going, "r2": theirs, "r3": done})
    assert plan_restore(cr(), others, said.status, "r-1", "good").actions == ()


def test_disks_the_snapshot_does_not_hold_are_named_in_the_answer() -> None:
    """KubeVirt restores only volumes backed up in the snapshot: the answer said every disk
    was as the snapshot holds it (source audit, session 41)."""
    two = asking(action="restore", snapshotName="good").model_dump(by_alias=True)
    two["spec"]["disks"] = [{"name": "system", "size": "1Gi"}, {"name": "data", "size": "1Gi"}]
    shot = snapshot()
    shot["status"]["snapshotVolumes"] = {"includedVolumes": ["system"]}
    seen = Observed(
        now=NOW, vm=VM, restores={"r1": _restore(complete=True)}, snapshots={"good": shot}
    )
    old = RestoreStatus(request_id="r-1", name="r1", snapshot="good", phase="Restoring")
    plan = plan_restore(Wukong.from_dict(two), seen, old, "r-1", "good")
    assert plan.status is not None and plan.status.result == "Succeeded"
    assert plan.status.message == (
        "the disks are as snapshot good holds them (restore r1); disk(s) data are not in the "
        "snapshot and keep what they hold (added since, or left out: no VolumeSnapshotClass "
        "for their StorageClass)"
    )


def _kept(name: str = "web-data", **marks: str) -> dict[str, Any]:
    """A claim released by a detach with preserveData (deletion.release_patch): no owner,
    the retained-from labels instead of the Wukong's."""
    pvc = bound_pvc(name)
    pvc["metadata"]["ownerReferences"] = []
    pvc["metadata"]["labels"] = marks
    return pvc


def _holding(*volumes: str) -> dict[str, Any]:
    shot = snapshot()
    shot["status"]["snapshotVolumes"] = {"includedVolumes": list(volumes)}
    return shot


RETAINED = {names.LABEL_RETAINED_FROM: "web", names.LABEL_DISK: "data"}


@pytest.mark.parametrize(
    ("claim", "words"),
    [
        pytest.param(
            _kept(**RETAINED, **{names.LABEL_RETAINED_UID: "u-1"}),
            "claim web-data (disk data, kept when it was detached)",
            id="detached-with-preserveData",
        ),
        pytest.param(
            _kept(**RETAINED, **{names.LABEL_RETAINED_UID: "u-0"}),
            "claim web-data (disk data, kept from an earlier Wukong web)",
            id="kept-from-a-deleted-wukong",
        ),
        pytest.param(
            _kept(**{names.LABEL_WUKONG: "db"}), "claim web-data (Wukong db's)", id="another"
        ),
        pytest.param(_kept(), "claim web-data (not this Wukong's)", id="a-users"),
    ],
)
def test_a_restore_that_would_replace_a_claim_the_spec_has_no_disk_for_is_refused(
    claim: dict[str, Any], words: str
) -> None:
    """KubeVirt's in-place restore deletes and makes again the claim of every volume the
    snapshot holds, whoever's it is now: a disk detached with preserveData since lost what
    was written to it after the snapshot (source audit, session 47, finding 1)."""
    seen = Observed(
        now=NOW, vm=VM, snapshots={"good": _holding("system", "data")},
        snapshot_claims={"web-data": claim},
    )  # fmt: skip
    plan = plan_restore(cr(), seen, None, "r-1", "good", Around(runs=True))
    assert not any(isinstance(a, CreateChild) for a in plan.actions)
    assert plan.status is not None and plan.status.result == "Refused"
    assert plan.status.refusal == (
        f"restore would replace {words} with snapshot good's copy: the snapshot holds disks "
        "web's spec no longer has, and KubeVirt's in-place restore deletes and makes again "
        "the claim of every disk it holds, whoever's it is now. Add the disk back to the spec "
        "(it is then restored with the others), or delete the claim once its data is safe "
        "elsewhere, then ask again"
    )
    # The Wukong's own, for a disk removed from the spec and not yet gone, counts too.
    mine = bound_pvc("web-data")
    mine["metadata"]["labels"] = {names.LABEL_WUKONG: "web"}
    mine["metadata"]["deletionTimestamp"] = "2026-12-05T00:00:00Z"
    ours = replace(seen, snapshot_claims={}, claims={"web-data": mine})
    plan = plan_restore(cr(), ours, None, "r-1", "good", Around(runs=True))
    assert plan.status is not None and plan.status.refusal is not None
    assert "claim web-data (disk data, which the spec no longer has, being deleted)" in (
        plan.status.refusal
    )
    # No claim of that name: KubeVirt makes one, which the answer names (nobody loses data).
    free = replace(seen, snapshot_claims={})
    plan = plan_restore(cr(), free, None, "r-1", "good", Around(runs=True))
    assert any(isinstance(a, CreateChild) for a in plan.actions)


def test_the_pass_sees_the_claims_named_for_the_snapshots_volumes_the_spec_lacks() -> None:
    """A released claim has neither the Wukong's label nor a spec disk's name: the pass
    looked it up by neither, so the planner could not see it."""
    from tests.unit.reconcile.test_settle import Cache
    from wukong.act.reconciler import observe
    from wukong.api import kinds

    shot = _holding("system", "data")
    kept = _kept(**RETAINED)
    kept["metadata"]["namespace"] = "ns"
    cache = Cache({kinds.SNAPSHOT.cache: [shot], kinds.PVC.cache: [kept]})
    seen = observe(cache, cr(), NOW)
    assert dict(seen.snapshot_claims) == {"web-data": kept}
    assert "good" in seen.snapshots  # not labelled with the Wukong: looked up by name


def test_a_snapshot_deleted_while_the_vm_stopped_for_the_restore_refuses_it_and_starts_the_vm() -> (
    None
):
    """The snapshot was checked only when the request was taken. Deleted while the VM
    stopped for the restore, the VirtualMachineRestore was made anyway: KubeVirt's webhook
    admits it and its controller retries "VMSnapshot … does not exist" for ever, the VM down
    (source audit, session 47, finding 3). Now nothing is made, and the VM runs again."""
    from wukong.reconcile.lifecycle import request_id
    from wukong.reconcile.restore import start_after, stop_for

    rid = "0123456789abcdef"
    stopping = RestoreStatus(
        request_id=rid, name="web-restore-01234567", snapshot="good", phase="StoppingVM",
        start_after=True, started_at=NOW, message="stopping",
    )  # fmt: skip
    life = LifecycleState(
        state="Done", last_action="stop", request_id=request_id(stop_for(rid)), message="done"
    )
    around = Around(runs=True, life=life, stopped=True)
    plan = plan_restore(cr(), Observed(now=NOW, vm=VM), stopping, rid, "good", around)
    assert not any(isinstance(a, CreateChild) for a in plan.actions)
    assert not plan.holding
    assert plan.status is not None and plan.status.result == "Refused"
    text = (
        "restore web-restore-01234567 was not made: no VirtualMachineSnapshot named good in "
        "namespace ns (kubectl get vmsnapshot -l vm.novasphere.dev/wukong=web lists this "
        "Wukong's); starting web again"
    )
    assert plan.status.message == text
    assert plan.actions == (Emit("Warning", "RestoreRefused", text),)
    assert plan.lifecycle == start_after(rid)
    # A stop asked meanwhile keeps it stopped.
    said = replace(around, asked_since="stop")
    plan = plan_restore(cr(), Observed(now=NOW, vm=VM), stopping, rid, "good", said)
    assert plan.lifecycle is None and plan.status is not None
    assert (plan.status.message or "").endswith("web stays stopped: stop was asked meanwhile")
    # A disk kept since (detached with preserveData while the VM stopped) is checked too.
    kept = _kept(**RETAINED, **{names.LABEL_RETAINED_UID: "u-1"})
    seen = Observed(
        now=NOW, vm=VM, snapshots={"good": _holding("system", "data")},
        snapshot_claims={"web-data": kept},
    )  # fmt: skip
    plan = plan_restore(cr(), seen, stopping, rid, "good", around)
    assert plan.status is not None and plan.status.result == "Refused"
    assert "claim web-data (disk data, kept when it was detached)" in (plan.status.message or "")
    # Still there: made.
    seen = Observed(now=NOW, vm=VM, snapshots={"good": snapshot()})
    plan = plan_restore(cr(), seen, stopping, rid, "good", around)
    assert [a.kind for a in plan.actions if isinstance(a, CreateChild)] == ["VirtualMachineRestore"]


def test_a_restore_stuck_on_a_snapshot_that_is_gone_says_the_way_back() -> None:
    """Deleted just after the restore was made: KubeVirt retries for ever."""
    gone = {
        "type": "Progressing",
        "status": "False",
        "reason": "VMSnapshot ns/good does not exist",
        "lastTransitionTime": "2026-12-04T23:59:00Z",
    }
    base = RestoreStatus(request_id="r-1", name="r1", snapshot="good", phase="Restoring")
    seen = Observed(now=NOW, vm=VM, restores={"r1": _restore(complete=False, conditions=[gone])})
    plan = plan_restore(cr(), seen, base, "r-1", "good")
    assert plan.holding and plan.status is not None
    assert plan.status.message == (
        "r1: KubeVirt cannot go on: VMSnapshot ns/good does not exist; snapshot good is gone, "
        "so it never will (KubeVirt has changed no disk yet): delete the restore (kubectl "
        "delete vmrestore r1 -n ns); web stays stopped (wukong start web -n ns then)"
    )
    began = _restore(complete=False, conditions=[gone], restores=[{"volumeName": "system"}])
    plan = plan_restore(cr(), replace(seen, restores={"r1": began}), base, "r-1", "good")
    assert plan.status is not None
    assert "(the claims it has deleted are lost with it)" in (plan.status.message or "")


def test_a_claim_lost_in_a_restore_whose_snapshot_is_gone_does_not_point_at_it() -> None:
    """RestoreIncomplete said "the data is in snapshot good: restore it again" when good
    had been deleted too (its VolumeSnapshots with it): that restore is refused."""
    world = ready_children(claims={"web-1-system": bound_pvc("web-1-system", "20Gi")})
    before = VolumeStatus(name="data", pvc_name="web-1-data", bound=True)
    failed = _after_failed_restore()
    plan = plan_disks(failed, world, {"data": before}, restore=failed.status.restore)
    assert not [a for a in plan.actions if isinstance(a, CreateChild)]
    bound = next(c for c in plan.conditions if c.type == "VolumesBound")
    assert (bound.status, bound.reason) == (False, "RestoreIncomplete")
    assert bound.message == (
        "claim web-1-data is gone after restore r1, which did not complete (KubeVirt deletes "
        "a claim before making it again), and snapshot good is gone too: the data is lost. "
        "Remove disk data from the spec and add it back to start it empty"
    )


def test_a_snapshot_that_holds_none_of_the_disks_is_not_restored() -> None:
    """KubeVirt leaves out a disk whose StorageClass has no VolumeSnapshotClass, and calls
    the snapshot Succeeded. Restoring one that holds no disk at all changed nothing, yet
    stopped and started a running VM, and the answer said the disks were "as the snapshot
    holds them" (source audit, session 47, finding 6)."""
    shot = snapshot()
    shot["status"]["snapshotVolumes"] = {"excludedVolumes": ["system", "cloudinitdisk"]}
    seen = Observed(now=NOW, vm=VM, vmi=VMI, snapshots={"good": shot})
    plan = plan_restore(cr(), seen, None, "r-1", "good", Around(runs=True))
    assert plan.lifecycle is None and not plan.actions[1:]
    assert plan.status is not None and plan.status.refusal == (
        "snapshot good holds none of web's disks (left out: system: no VolumeSnapshotClass for "
        "their StorageClass when it was taken, or added since): restoring it would change no disk"
    )
    # One that holds some is restored, the answer naming the others (as before).
    shot["status"]["snapshotVolumes"] = {"includedVolumes": ["system"]}
    plan = plan_restore(cr(), seen, None, "r-1", "good", Around(runs=True))
    assert plan.status is not None and plan.status.result is None


def test_a_restore_of_the_name_an_earlier_wukong_left_is_refused_not_followed() -> None:
    """A restore's name is its request's fingerprint, which a manifest applied again repeats:
    an earlier Wukong's restore of the name (orphaned by `--cascade=orphan`) was followed, the
    new Wukong answered Succeeded for a restore it never made and took that restore's uid for
    its own (source audit, session 47, finding 8). Refused, saying why; its own is followed."""
    name = "web-restore-01234567"
    theirs = {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": "old-restore",
            "ownerReferences": [{"kind": "Wukong", "name": "web", "uid": "u-0"}],
        },
        "status": {"complete": True},
    }
    seen = Observed(now=NOW, vm=VM, snapshots={"good": snapshot()}, restores={name: theirs})
    plan = plan_restore(cr(), seen, None, "0123456789abcdef", "good")
    assert not any(isinstance(a, CreateChild) for a in plan.actions)
    assert plan.status is not None and plan.status.result == "Refused"
    assert f"a VirtualMachineRestore named {name} exists and is not this Wukong's" in (
        plan.status.refusal or ""
    )
    mine = copy.deepcopy(theirs)
    mine["metadata"]["ownerReferences"] = [owner_reference(cr())]
    seen = replace(seen, restores={name: mine})
    followed = plan_restore(cr(), seen, None, "0123456789abcdef", "good")
    assert followed.status is not None and followed.status.result != "Refused"
    assert not any(isinstance(a, CreateChild) for a in followed.actions)
