"""Restore: `lifecycleAction: {action: restore, snapshotName}` puts a Wukong's disks back as
a VirtualMachineSnapshot of its VM holds them, through KubeVirt's own restore. Pure.

The operator makes a VirtualMachineRestore of its VM from the snapshot, `InPlace` (KubeVirt
deletes each claim and makes it again, of the same name, from the snapshot's VolumeSnapshot)
with `volumeOwnershipPolicy: None` (the claims are not given to the VM, which the operator
may delete) and `targetReadinessPolicy: WaitGracePeriodAndFail` (KubeVirt's default: its
VMI cache may lag the operator's; a VM started meanwhile fails the restore after 5 minutes,
said meanwhile in KubeVirt's words). While it runs the operator stands aside: it makes,
patches and grows no disk and does not touch the VM (KubeVirt deletes claims and rewrites
the VM's spec: anything the operator did would be undone, or would undo the restore).
When KubeVirt says it is complete, the next passes take the claims back (ownership, labels)
and put the VM's template back as the spec says; a VM the user had stopped stays stopped.

A running VM is stopped first and started again afterwards, through the lifecycle state
machine like any stop and start (not by KubeVirt's `StopTarget`, which would stop it behind
the operator's back and leave it stopped): the pass that accepts the restore records it as
`StoppingVM` and hands the lifecycle planner a stop of its own (`RestorePlan.lifecycle`);
once the VMI is gone the restore is made; the pass that sees it complete hands over a start.
The lifecycle record drives both calls from there (exactly once, grace period, forced
power-off at its end). A request to run the VM is refused while a restore is in flight
(and one taken anyway would cancel it); a stop the state machine or KubeVirt refuses
refuses it. The VM is started after it unless the user's word since says stop (a forced
stop taken, or a stop refused because the VM was stopping already). A restore that fails
leaves the VM stopped.

A VM whose guest shut down by itself under runStrategy Manual keeps its ended VMI (KubeVirt
removes it only at the next start): the operator deletes that VMI, which no guest runs in.

Refused at once, with nothing made: the snapshot does not exist, is of another VM, or is not
ready; a snapshot is being taken, a migration runs, a request to run the VM is still on its
way, or another restore runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

from wukong.api import JsonObj, names
from wukong.api.conditions import RESTORING, STALLED, Cond
from wukong.api.objects import being_deleted
from wukong.api.spec import Action as Verb
from wukong.api.status import LifecycleState, RestoreStatus
from wukong.api.v1alpha1 import LifecycleAction, Wukong
from wukong.fsm.requests import Answer
from wukong.reconcile.actions import Action, CreateChild, DeleteChild, Emit
from wukong.reconcile.children import labels, owned_by, owner_reference
from wukong.reconcile.lifecycle import IN_FLIGHT, RUNNING_ACTIONS
from wukong.reconcile.lifecycle import request_id as fingerprint
from wukong.reconcile.migration import kubevirts_migration, running_migrations
from wukong.reconcile.observed import Observed, condition_of
from wukong.reconcile.snapshot import in_progress
from wukong.reconcile.timefmt import iso, parse_time

# Accepted, waiting for the stopped VM's VMI to be gone: KubeVirt's restore wants no VMI at
# all (restore.go Ready), and would wait for, then fail on, one still terminating.
WAITING = "WaitingForVMI"
# Accepted for a running VM: the lifecycle planner stops it (`RestorePlan.lifecycle`), and
# the restore is made once its VMI is gone.
STOPPING = "StoppingVM"
# A lifecycle request still on its way (its call to make, made, or waiting for the VM).
RUNNING_NOW = (*IN_FLIGHT, Answer.Waiting)
# Seconds KubeVirt keeps one restore error before the Wukong says the restore is stuck.
STUCK_AFTER: Final = 10.0


@dataclass(frozen=True)
class RestorePlan:
    """What the restore planner decided; `holding`: KubeVirt is restoring, hands off."""

    actions: tuple[Action, ...]
    status: RestoreStatus | None
    holding: bool = False
    lifecycle: LifecycleAction | None = None
    """The stop (on acceptance) or start (on completion) a restore of a running VM asks of
    the lifecycle planner in this pass; its record carries it on from there."""
    because: str | None = None
    """Why, for the lifecycle request's answer and Event."""
    requeue_after: float | None = None
    """Look again this soon (a completion held for the pass that writes Stopped, a restore
    error not standing yet)."""


@dataclass(frozen=True)
class Around:
    """What the lifecycle says around a restore, from the status the last pass wrote."""

    runs: bool = False
    """The Wukong is meant to run (the lifecycle's last word): a live guest is stopped for
    the restore and started after it."""
    life: LifecycleState | None = None
    """lifecycleState."""
    asked_since: str | None = None
    """The verb of a lifecycle request asked since the restore (the spec's, when it is no
    migrate, snapshot or restore), taken or refused: the user's later word on whether the
    VM runs after it."""
    stopped: bool = True
    """The phase is Stopped: the state machine takes the start after the restore only
    from there."""
    user_first: bool = False
    """That request is one the lifecycle planner has not answered yet: it goes first, and
    decides whether the VM runs (the restore hands no start over)."""


def restore_name(wukong: str, request_id: str) -> str:
    """One VirtualMachineRestore per request: `<wukong>-restore-<fingerprint>`."""
    return names.fit(f"{wukong}-restore-{request_id[:8]}", 63)


def refusal(
    cr: Wukong,
    seen: Observed,
    snapshot: str,
    busy: RestoreStatus | None,
    life: LifecycleState | None = None,
) -> str | None:
    """Why a restore cannot start now, or None."""
    name = cr.metadata.name
    if busy is not None:
        return f"a restore of {name} is in progress ({busy.name}): wait for it to finish"
    if seen.vm is None:
        return f"restore needs the VM: {name} has none yet"
    if life is not None and life.state in RUNNING_NOW and life.last_action in RUNNING_ACTIONS:
        # Its guest may not show yet (a start called, its VMI not made): the restore would
        # be made under it, and a guest booting on disks KubeVirt is replacing fails it.
        return (
            f"a {life.last_action} of {name} is under way ({life.message}): ask again once "
            "it is done"
        )
    if live_guest(seen) and (busy_moving := running_migrations(seen)):
        return (
            f"restore stops {name}, and a migration of it is running "
            f"({busy_moving[0]['metadata']['name']}): wait for it to end, or cancel it "
            f"({names.command('migrate-cancel', name, cr.metadata.namespace)})"
        )
    if live_guest(seen) and (theirs := kubevirts_migration(seen)) is not None:
        return (
            f"restore stops {name}, and a migration of it {theirs} is running: wait for it to end"
        )
    if (why := snapshot_refusal(cr, seen, snapshot)) is not None:
        return why
    taking = in_progress(seen)
    if taking:
        return (
            f"a snapshot of {name} is being taken ({taking[0]['metadata']['name']}): wait for "
            "it to finish"
        )
    return None


def snapshot_refusal(cr: Wukong, seen: Observed, snapshot: str) -> str | None:
    """Why the snapshot cannot be restored into this Wukong's VM, or None: it does not
    exist, is of another VM, is not ready, or holds a volume the spec has no disk for whose
    claim name is taken (`replaced_claims`)."""
    name, vm = cr.metadata.name, names.vm_name(cr.metadata.name)
    found = seen.snapshots.get(snapshot)
    if found is None:
        return (
            f"no VirtualMachineSnapshot named {snapshot} in namespace {cr.metadata.namespace} "
            f"(kubectl get vmsnapshot -l {names.LABEL_WUKONG}={name} lists this Wukong's)"
        )
    source = ((found.get("spec") or {}).get("source") or {}).get("name")
    if source != vm:
        return f"{snapshot} is a snapshot of VM {source}, not of {vm}: restore it into that VM"
    status = found.get("status") or {}
    if not status.get("readyToUse"):
        return f"{snapshot} is not ready to use (phase {status.get('phase') or 'InProgress'})"
    left_out = _not_in_snapshot(cr, seen, snapshot)
    if cr.spec.disks and len(left_out) == len(cr.spec.disks):
        # KubeVirt would restore nothing, yet stop and start a running VM for it (source
        # audit, session 47, finding 6).
        return (
            f"snapshot {snapshot} holds none of {name}'s disks (left out: "
            f"{', '.join(left_out)}: no VolumeSnapshotClass for their StorageClass when it "
            "was taken, or added since): restoring it would change no disk"
        )
    if replaced := replaced_claims(cr, seen, snapshot):
        return (
            f"restore would replace {'; '.join(replaced)} with snapshot {snapshot}'s copy: "
            f"the snapshot holds disks {name}'s spec no longer has, and KubeVirt's in-place "
            "restore deletes and makes again the claim of every disk it holds, whoever's it "
            "is now. Add the disk back to the spec (it is then restored with the others), or "
            "delete the claim once its data is safe elsewhere, then ask again"
        )
    return None


def replaced_claims(cr: Wukong, seen: Observed, snapshot: str) -> list[str]:
    """The claims of the snapshot's volumes that the spec has no disk for and that exist
    ("claim web-1-data (disk data, kept when it was detached)"). KubeVirt restores every
    volume of the snapshot (restore.go: one VolumeRestore per VolumeBackup), and InPlace
    deletes the claim of its name that this restore did not make, whoever's it is (no owner
    or label check), to make it again from the snapshot: a disk detached with preserveData,
    a disk kept from a deleted Wukong of this name, a user's claim or another Wukong's
    (`web` + disk `1-data` is `web-1-data` too) would lose what it holds (source audit,
    session 47, finding 1)."""
    found = seen.snapshots.get(snapshot) or {}
    lists = (found.get("status") or {}).get("snapshotVolumes") or {}
    disks = {d.name for d in cr.spec.disks}
    said = []
    for volume in lists.get("includedVolumes") or []:
        claim = names.disk_claim_name(cr.metadata.name, str(volume))
        pvc = seen.claims.get(claim) or seen.snapshot_claims.get(claim)
        if volume in disks or pvc is None:
            continue
        said.append(f"claim {claim} ({_whose(cr, pvc, str(volume))})")
    return said


def _whose(cr: Wukong, pvc: JsonObj, volume: str) -> str:
    """What a claim named for a snapshot volume the spec has no disk for is now, in words."""
    meta = pvc.get("metadata") or {}
    marks = meta.get("labels") or {}
    name = cr.metadata.name
    kept = marks.get(names.LABEL_RETAINED_FROM)
    wukong = marks.get(names.LABEL_WUKONG)
    if kept == name and marks.get(names.LABEL_RETAINED_UID) == cr.metadata.uid:
        said = f"disk {volume}, kept when it was detached"
    elif kept == name:
        said = f"disk {volume}, kept from an earlier Wukong {name}"
    elif kept is not None:
        said = f"a disk kept from Wukong {kept}"
    elif wukong == name:
        said = f"disk {volume}, which the spec no longer has"
    elif wukong is not None:
        said = f"Wukong {wukong}'s"
    else:
        said = "not this Wukong's"
    return f"{said}, being deleted" if being_deleted(pvc) else said


def build_restore(cr: Wukong, name: str, snapshot: str, request_id: str) -> JsonObj:
    """The VirtualMachineRestore of this Wukong's VM from `snapshot` (see above)."""
    return {
        "apiVersion": f"{names.SNAPSHOT_GROUP}/{names.SNAPSHOT_VERSION}",
        "kind": "VirtualMachineRestore",
        "metadata": {
            "name": name,
            "namespace": cr.metadata.namespace,
            "labels": {**labels(cr), names.LABEL_REQUEST: request_id},
            "ownerReferences": [owner_reference(cr)],
        },
        "spec": {
            "target": {
                "apiGroup": names.KUBEVIRT_GROUP,
                "kind": "VirtualMachine",
                "name": names.vm_name(cr.metadata.name),
            },
            "virtualMachineSnapshotName": snapshot,
            "volumeRestorePolicy": "InPlace",
            "volumeOwnershipPolicy": "None",
            # KubeVirt checks its own VMI cache once: FailImmediate failed a restore the
            # operator made the moment its cache showed the VMI gone, when KubeVirt's did not
            # yet (source audit, session 41). This waits that out (and a guest started
            # meanwhile for up to 5 minutes, said in KubeVirt's words).
            "targetReadinessPolicy": "WaitGracePeriodAndFail",
        },
    }


def live_guest(seen: Observed) -> bool:
    """A guest runs (or boots, or is paused): a VMI neither ended nor going."""
    return seen.vmi is not None and not (seen.vmi_ended or being_deleted(seen.vmi))


def stop_for(request_id: str, *, force: bool = False) -> LifecycleAction:
    """The stop a restore of a running VM asks for: a request of its own (its fingerprint
    is no user's: they never set requestedAt so), answered in lifecycleState. Forced for a
    paused guest, which cannot shut down: the grace period would only delay the power-off
    it ends in (and the disks it could have written to are the ones being restored)."""
    return LifecycleAction(action=Verb.STOP, force=force, requested_at=f"for-restore-{request_id}")


def _answers_our_stop(life: LifecycleState, request_id: str) -> bool:
    """Whether lifecycleState answers the stop the restore `request_id` asked for."""
    ours = {fingerprint(stop_for(request_id, force=force)) for force in (False, True)}
    return life.request_id in ours


def start_after(request_id: str) -> LifecycleAction:
    """The start once that restore has put the disks back."""
    return LifecycleAction(action=Verb.START, requested_at=f"after-restore-{request_id}")


def plan_restore(
    cr: Wukong,
    seen: Observed,
    old: RestoreStatus | None,
    request_id: str | None,
    snapshot: str,
    around: Around | None = None,
    not_valid: str | None = None,
) -> RestorePlan:
    """Start a new restore request (or refuse it), then follow the one in flight; `around`:
    what the lifecycle says (whether a live guest is stopped for it and started after);
    `not_valid`: why the spec is not valid (the request is refused so).
    The Wukong's failed VirtualMachineRestores go once the status has said so."""
    plan = _plan_restore(cr, seen, old, request_id, snapshot, around or Around(), not_valid)
    gone = _failed_ones(cr, seen, old)
    return replace(plan, actions=(*plan.actions, *gone)) if gone else plan


def _failed_ones(cr: Wukong, seen: Observed, old: RestoreStatus | None) -> list[Action]:
    """Delete the Wukong's VirtualMachineRestores KubeVirt failed, but the one whose failure
    this pass says first (gone before the status says why, it would read "deleted before it
    completed"; the next pass deletes it). KubeVirt's webhook refuses every restore of a VM
    while another is not complete, a failed one too, and a failed one can keep the VM's
    restoreInProgress, which refuses any runStrategy change (found by a source audit,
    session 41). Its story stays in status.restore and in KubeVirt's Events."""
    running = in_flight(old)
    return [
        DeleteChild("VirtualMachineRestore", name, restore["metadata"].get("uid"))
        for name, restore in sorted(seen.restores.items())
        if owned_by(restore, cr.metadata.uid)
        and (condition_of(restore, "Failure") or {}).get("status") == "True"
        and not being_deleted(restore)
        and (running is None or running.name != name)
    ]


def _plan_restore(
    cr: Wukong,
    seen: Observed,
    old: RestoreStatus | None,
    request_id: str | None,
    snapshot: str,
    around: Around,
    not_valid: str | None = None,
) -> RestorePlan:
    life = around.life
    running = in_flight(old)
    if request_id is not None and (old is None or not old.answers(request_id)):
        name = restore_name(cr.metadata.name, request_id)
        made = seen.restores.get(name)
        mine = RestoreStatus(
            request_id=request_id,
            name=name,
            snapshot=snapshot,
            phase="Restoring",
            message=f"{name}: restoring the disks from {snapshot}",
            started_at=seen.now,
        )
        # Another's of this name (an earlier Wukong of the name, its restore orphaned, asked
        # with the same request: the name is the request's fingerprint) is not followed: it
        # answered Succeeded for a restore this Wukong never made, and its uid took the claims
        # that restore made for this Wukong's (source audit, session 47, finding 8).
        taken = made is not None and not owned_by(made, cr.metadata.uid)
        if made is not None and not taken:  # made by a pass whose status write was lost
            return _follow(cr, mine, seen, around)
        why = (
            not_valid
            or (_taken_words(name) if taken else None)
            or refusal(cr, seen, snapshot, running, life)
        )
        if why is not None:
            event = Emit("Warning", "RestoreRefused", why)
            if running is not None:
                kept = running.refused_beside(request_id, why)
                followed = _follow(cr, kept, seen, around)
                return RestorePlan((event, *followed.actions), followed.status, followed.holding)
            return _refused(request_id, snapshot, why, seen.now)
        if seen.vmi is None:
            return _start(cr, mine, seen, around)
        message = f"{name}: waiting for the stopped VM's VMI to go"
        if _kept_by_kubevirt(seen):
            message = (
                f"{name}: deleting the VMI {names.vm_name(cr.metadata.name)} left when its "
                "guest shut down (KubeVirt keeps it under runStrategy Manual until the next "
                "start)"
            )
        return _waiting(
            cr, mine.model_copy(update={"phase": WAITING, "message": message}), seen, around
        )
    if running is None:
        return RestorePlan((), old)
    if running.phase == STOPPING:
        return _stopping(cr, running, seen, around)
    if running.phase == WAITING:
        return _waiting(cr, running, seen, around)
    return _follow(cr, running, seen, around)


def _waiting(cr: Wukong, waiting: RestoreStatus, seen: Observed, around: Around) -> RestorePlan:
    """A restore accepted while the VM still has a VMI, from the pass that accepts it on: a
    live guest of a Wukong meant to run is stopped for it (and started after); one started
    outside Wukong is said, not stopped; an ended VMI KubeVirt keeps is deleted; one going
    is waited for (its deletion wakes the pass); with none left, the restore is made."""
    if live_guest(seen):
        if around.user_first:  # the user's unanswered request goes first
            return RestorePlan((), waiting)
        return _stop_first(waiting, seen) if around.runs else _runs_again(cr, waiting)
    vmi = seen.vmi
    if vmi is None:
        return _start(cr, waiting, seen, around)
    if not _kept_by_kubevirt(seen):
        return RestorePlan((), waiting)
    # No guest runs in it; pinned to its uid, so a VMI started meanwhile is never touched.
    name = names.vm_name(cr.metadata.name)
    delete = DeleteChild("VirtualMachineInstance", name, vmi["metadata"].get("uid"))
    return RestorePlan((delete,), waiting)


def _stop_first(accepted: RestoreStatus, seen: Observed) -> RestorePlan:
    """A restore of a VM meant to run, its guest live: stopped for it through the lifecycle
    (`stop_for`, handed over in this pass only), started again after it. Also for a guest
    that runs again while the restore waited for an ended VMI to go: KubeVirt restarting
    it under runStrategy Always in the moment the restore was asked."""
    assert accepted.request_id is not None
    paused = seen.vmi_pause() is not None
    how = " (its guest is paused and cannot shut down: powered off at once)"
    because = (
        f"restore {accepted.name} of snapshot {accepted.snapshot} needs the VM stopped"
        f"{how if paused else ''}; it starts again once the disks are restored"
    )
    update = {
        "phase": STOPPING,
        "start_after": True,
        "message": f"{accepted.name}: stopping the VM first (it starts again once the disks "
        "are restored)",
    }
    stop = stop_for(accepted.request_id, force=paused)
    return RestorePlan((), accepted.model_copy(update=update), lifecycle=stop, because=because)


def _runs_again(cr: Wukong, waiting: RestoreStatus) -> RestorePlan:
    """A guest runs again while the restore waited for the stopped VM's VMI to go, and the
    Wukong is not meant to run (started outside Wukong: virtctl). The restore does not stop
    it behind the user's back: it waits on, and says so once, with the way on (a stop is
    taken while a restore waits, a start is not)."""
    name = cr.metadata.name
    text = (
        f"{waiting.name}: {name} runs again (started outside Wukong): the restore waits "
        f"until it is stopped ({names.command('stop', name, cr.metadata.namespace)})"
    )
    if text == waiting.message:
        return RestorePlan((), waiting)
    said = waiting.model_copy(update={"message": text})
    return RestorePlan((Emit("Warning", "RestoreWaiting", text),), said)


def _kept_by_kubevirt(seen: Observed) -> bool:
    """The VMI is one whose guest ended under runStrategy Manual, not yet going: KubeVirt
    keeps it until the next start (vm.go), and its stop subresource refuses it (409 "VM is
    not running"), so nothing else would take it away and the restore (which wants no VMI)
    would wait forever; the operator deletes it. Under every other runStrategy
    virt-controller deletes an ended VMI itself (and restarts it, or not)."""
    vmi = seen.vmi
    manual_ended = seen.run_strategy == "Manual" and seen.vmi_ended
    return vmi is not None and manual_ended and not being_deleted(vmi)


def _refused(request_id: str, snapshot: str, why: str, now: datetime) -> RestorePlan:
    refused = RestoreStatus(
        request_id=request_id,
        snapshot=snapshot,
        result="Refused",
        message=why,
        refusal=why,
        started_at=now,
    )
    return RestorePlan((Emit("Warning", "RestoreRefused", why),), refused)


def _stopping(cr: Wukong, running: RestoreStatus, seen: Observed, around: Around) -> RestorePlan:
    """A running VM stopped for the restore: made once its VMI is gone; refused when its
    stop is; given up when a later request was taken before the VM had stopped."""
    assert running.request_id is not None
    life = around.life or LifecycleState()
    answered = _answers_our_stop(life, running.request_id)
    name = cr.metadata.name
    if answered and life.state in (Answer.Refused, Answer.Failed):
        why = f"restore needs {name} stopped, and the stop was refused: {life.message}"
        if life.state == Answer.Failed:
            why = f"restore needs {name} stopped, and KubeVirt refused the stop: {life.message}"
        ended = running.model_copy(
            update={
                "phase": None,
                "result": "Refused",
                "refusal": why,
                "message": why,
                "ended_at": seen.now,
                "start_after": None,
            }
        )
        return RestorePlan((Emit("Warning", "RestoreRefused", why),), ended)
    later = life.request_id is not None and not _on_our_stop(life, running)
    # A forced stop only hastens this one. A request to run the VM is refused while a
    # restore is in flight (`decide.restoring_words`): this is the guard behind it, so
    # that no restore is ever made under a guest someone asked to run.
    if later and life.last_action != "stop":
        text = (
            f"restore {running.name} was not made: {life.last_action or 'another request'} was "
            f"asked before {name} had stopped for it"
        )
        # Never made: it deleted nothing.
        return _failed(running, text, seen.now, lost_claims=[], start_after=None)
    if seen.vmi is not None:  # the stop is under way; the VMI's deletion wakes the pass
        return RestorePlan((), running)
    return _start(cr, running, seen, around)


def _on_our_stop(life: LifecycleState, restore: RestoreStatus) -> bool:
    """Whether lifecycleState still stands on the stop this restore handed over: it answers
    that stop, or a request refused since (a refusal keeps the record's action, force and
    time; a request taken since replaces them, and a user's stop taken then is a forced
    one: a graceful stop is refused while one runs or once stopped)."""
    assert restore.request_id is not None
    if _answers_our_stop(life, restore.request_id):
        return True
    return (
        life.state == Answer.Refused
        and life.last_action == "stop"
        and not life.force
        and life.last_action_time is not None
        and restore.started_at is not None
        and life.last_action_time >= restore.started_at
    )


def _failed(restore: RestoreStatus, text: str, now: datetime, **update: object) -> RestorePlan:
    """The restore ended without completing, in `text` (a Warning too); `update`: the other
    fields that change with it (`lost_claims` always: what it left missing)."""
    ended = {"phase": "Failed", "result": "Failed", "message": text, "ended_at": now, **update}
    return RestorePlan((Emit("Warning", "RestoreFailed", text),), restore.model_copy(update=ended))


def _missing_claims(cr: Wukong, seen: Observed) -> list[str]:
    """The claims of the spec's disks not there now (a restore ending without completing
    had deleted them to make them again)."""
    claims = (names.disk_claim_name(cr.metadata.name, d.name) for d in cr.spec.disks)
    return sorted(c for c in claims if c not in seen.claims or being_deleted(seen.claims[c]))


def _not_in_snapshot(cr: Wukong, seen: Observed, snapshot: str | None) -> list[str]:
    """The spec's disks the snapshot does not hold (its `includedVolumes`): KubeVirt
    restores only volumes with a backup in it and leaves the others as they are, where the
    answer said every disk was as the snapshot holds it (source audit, session 41). None
    known when the snapshot is gone or does not list them."""
    found = seen.snapshots.get(snapshot or "") or {}
    lists = (found.get("status") or {}).get("snapshotVolumes")
    if lists is None:
        return []
    included = set(lists.get("includedVolumes") or [])  # omitted when empty
    return [d.name for d in cr.spec.disks if d.name not in included]


def _not_in_spec(cr: Wukong, seen: Observed) -> str:
    """The claims KubeVirt restored for disks the spec no longer has ("claim web-1-old
    (disk old)"): KubeVirt restores every volume of the snapshot; the operator then writes
    the VM's template from the spec, and nothing takes those claims back."""
    disks = {d.name for d in cr.spec.disks}
    vm = names.vm_name(cr.metadata.name)
    found = []
    for name, pvc in sorted(seen.claims.items()):
        labels_ = pvc.get("metadata", {}).get("labels") or {}
        disk = labels_.get(names.LABEL_DISK)
        if (
            labels_.get(names.LABEL_RESTORED_FROM_VM) == vm
            and labels_.get(names.LABEL_WUKONG) == cr.metadata.name
            and disk is not None
            and disk not in disks
        ):
            found.append(f"claim {name} (disk {disk})")
    return ", ".join(found)


def _start(cr: Wukong, accepted: RestoreStatus, seen: Observed, around: Around) -> RestorePlan:
    """Make the VirtualMachineRestore; hands off from now on."""
    assert accepted.name is not None and accepted.request_id is not None
    snapshot = accepted.snapshot or ""
    started = accepted.model_copy(
        update={
            "phase": "Restoring",
            "message": f"{accepted.name}: restoring the disks from {snapshot}",
        }
    )
    if accepted.name in seen.restores:
        # Made by a pass whose status write was lost (the operator stopped in between): a
        # create would answer 409 and bring no event to wake the next pass. Followed.
        return _follow(cr, started, seen, around)
    if (why := snapshot_refusal(cr, seen, snapshot)) is not None:
        # Checked again: the snapshot deleted (or a claim kept) while the VM stopped for
        # the restore. KubeVirt's webhook admits a restore of a snapshot that is gone, and
        # its controller retries "VMSnapshot … does not exist" for ever with the VM down
        # (source audit, session 47, finding 3).
        return _not_made(cr, accepted, why, seen, around)
    restore = build_restore(cr, accepted.name, snapshot, accepted.request_id)
    create = CreateChild("VirtualMachineRestore", restore)
    said = f"restoring the disks from snapshot {snapshot}"
    actions = (create, Emit("Normal", "RestoreStarted", said, after=(create,)))
    return RestorePlan(actions, started, holding=True)


def _then(
    cr: Wukong, old: RestoreStatus, around: Around
) -> tuple[str, LifecycleAction | None] | None:
    """Whether a VM stopped for a restore that has ended is started again, in words ("; …")
    and the start to hand over: unless the user's word since says stop (a stop refused
    while the VM was stopping for the restore too), or a request was taken since, or a
    request of the user's goes first. None: not this pass (the phase is not Stopped yet)."""
    assert old.request_id is not None
    life = around.life or LifecycleState()
    taken = around.asked_since is None and not _on_our_stop(life, old)
    if around.asked_since == "stop" or taken:
        verb = around.asked_since or life.last_action or "a request"
        return f"; {cr.metadata.name} stays stopped: {verb} was asked meanwhile", None
    if around.user_first:
        return f"; {around.asked_since} was asked meanwhile: that request decides", None
    if not around.stopped:
        return None
    return f"; starting {cr.metadata.name} again", start_after(old.request_id)


def _not_made(
    cr: Wukong, accepted: RestoreStatus, why: str, seen: Observed, around: Around
) -> RestorePlan:
    """A restore accepted, found impossible when it was to be made: refused, nothing made.
    A VM stopped for it is started again as after a restore (`_then`): nothing changed."""
    text = f"restore {accepted.name} was not made: {why}"
    start = None
    if accepted.start_after and accepted.request_id is not None:
        then = _then(cr, accepted, around)
        if then is None:  # the phase is not Stopped yet: the next pass, which writes it
            return RestorePlan((), accepted, requeue_after=0.0)
        words, start = then
        text += words
    ended = accepted.model_copy(
        update={
            "phase": None,
            "result": "Refused",
            "refusal": why,
            "message": text,
            "ended_at": seen.now,
            "start_after": None,
        }
    )
    because = f"restore {accepted.name} was not made" if start is not None else None
    return RestorePlan(
        (Emit("Warning", "RestoreRefused", text),), ended, lifecycle=start, because=because
    )


def _taken_words(name: str) -> str:
    return (
        f"a VirtualMachineRestore named {name} exists and is not this Wukong's (one an earlier "
        "Wukong of this name made?): delete it, or ask again (a new request gets a new name)"
    )


def _follow(cr: Wukong, old: RestoreStatus, seen: Observed, around: Around) -> RestorePlan:
    """The restore in flight, as KubeVirt reports it; hands off until it ends."""
    assert old.name is not None
    restore = seen.restores.get(old.name)
    stays = f"; {cr.metadata.name} stays stopped" if old.start_after else ""
    if restore is None:
        if old.uid is None:  # not in the cache yet (just created)
            return RestorePlan((), old, holding=True)
        text = f"restore {old.name} was deleted before it completed{stays}"
        return _failed(old, text, seen.now, lost_claims=_missing_claims(cr, seen))
    status = restore.get("status") or {}
    update: dict[str, object] = {"uid": restore["metadata"].get("uid") or old.uid}
    failure = condition_of(restore, "Failure") or {}
    if status.get("complete"):
        text = f"the disks are as snapshot {old.snapshot} holds them (restore {old.name})"
        if kept := _not_in_snapshot(cr, seen, old.snapshot):
            text += (
                f"; disk(s) {', '.join(kept)} are not in the snapshot and keep what they hold "
                "(added since, or left out: no VolumeSnapshotClass for their StorageClass)"
            )
        if extra := _not_in_spec(cr, seen):
            text += (
                f"; also restored, for a disk the spec no longer has: {extra}, left as KubeVirt "
                "made it, owned by nobody (add the disk back to use it, or delete the claim)"
            )
        start = None
        if old.start_after and old.request_id is not None:
            then = _then(cr, old, around)
            if then is None:
                # Complete in the pass that sees the VM's stop end (after an operator
                # restart, say): the state machine takes the start from Stopped, which this
                # pass writes. Said complete by the next one, which hands the start over.
                held = {"uid": update["uid"], "message": f"{old.name}: complete"}
                return RestorePlan((), old.model_copy(update=held), True, requeue_after=0.0)
            words, start = then
            text += words
        update |= {
            "phase": "Succeeded",
            "result": "Succeeded",
            "message": text,
            "ended_at": seen.now,
        }
        because = f"the disks are restored from snapshot {old.snapshot}"
        done = old.model_copy(update=update)
        return RestorePlan(
            (Emit("Normal", "Restored", text),), done, lifecycle=start, because=because
        )
    if failure.get("status") == "True":
        text = f"restore {old.name} failed: {failure.get('reason') or 'see its Events'}"
        if failure.get("message"):
            text = f"restore {old.name} failed: {failure['message']}"
        text += stays
        failed = _failed(old, text, seen.now, lost_claims=_missing_claims(cr, seen), **update)
        return replace(failed, requeue_after=0.0)  # the next pass lets it go (_failed_ones)
    progressing = condition_of(restore, "Progressing") or {}
    said = progressing.get("message") or progressing.get("reason")
    actions: tuple[Action, ...] = ()
    if progressing.get("status") == "False" and said:
        # KubeVirt's error (doUpdateError): it retries, and the restore waits until it is
        # fixed or deleted. Many are passing (a claim "not found" before KubeVirt has made
        # it again, "already exists" after): one stands once KubeVirt has kept it
        # STUCK_AFTER seconds (its lastTransitionTime moves only when the words change).
        # Until then a retry in the status; then a Warning, once per error.
        since = parse_time(progressing.get("lastTransitionTime"))
        stood = STUCK_AFTER if since is None else (seen.now - since).total_seconds()
        if stood < STUCK_AFTER:
            update["message"] = f"{old.name}: KubeVirt retries: {said}"
            waited = old.model_copy(update=update)
            return RestorePlan((), waited, holding=True, requeue_after=STUCK_AFTER - stood)
        text = f"{old.name}: KubeVirt cannot go on: {said}"
        if old.snapshot not in seen.snapshots:
            text += _snapshot_gone(cr, old, restore)
        if text != old.message:
            actions = (Emit("Warning", "RestoreStuck", text),)
        update["message"] = text
    elif said:
        update["message"] = f"{old.name}: KubeVirt: {said}"
    return RestorePlan(actions, old.model_copy(update=update), holding=True)


def _snapshot_gone(cr: Wukong, old: RestoreStatus, restore: JsonObj) -> str:
    """The way back from a restore whose snapshot is gone (KubeVirt retries for ever)."""
    name, ns = cr.metadata.name, cr.metadata.namespace
    began = bool((restore.get("status") or {}).get("restores"))
    lost = (
        "the claims it has deleted are lost with it"
        if began
        else "KubeVirt has changed no disk yet"
    )
    return (
        f"; snapshot {old.snapshot} is gone, so it never will ({lost}): delete the restore "
        f"(kubectl delete vmrestore {old.name} -n {ns}); {name} stays stopped "
        f"({names.command('start', name, ns)} then)"
    )


def unfinished(seen: Observed, uid: str) -> list[JsonObj]:
    """The Wukong's VirtualMachineRestores KubeVirt has neither completed nor failed (those
    being deleted too, until KubeVirt has let them go)."""
    return [
        r
        for r in seen.restores.values()
        if owned_by(r, uid)
        and not (r.get("status") or {}).get("complete")
        and (condition_of(r, "Failure") or {}).get("status") != "True"
    ]


def in_flight(status: RestoreStatus | None) -> RestoreStatus | None:
    """The restore accepted and not ended (waiting for the VMI, or KubeVirt restoring)."""
    if status is None or status.name is None or status.result is not None:
        return None
    return status


# The Restoring condition's reason at each stage of a restore in flight.
RESTORING_REASONS: Final = {STOPPING: "StoppingVM", WAITING: "WaitingForVMI"}


def restoring_condition(
    cr: Wukong, status: RestoreStatus | None, outside: Sequence[JsonObj] = ()
) -> Cond | None:
    """Restoring=True while a restore is in flight (SPEC §1, one condition per running
    operation): reason `StoppingVM`, `WaitingForVMI`, then `InProgress` once KubeVirt has
    the VirtualMachineRestore, the message what it is at in status.restore's words (KubeVirt's
    own once it reports: "KubeVirt: Creating new PVCs"). None when none is: the condition
    goes with the restore, whose end status.restore and the Restored or RestoreFailed Event
    say (source audit, session 47: nothing but `Ready=False Stopped` said one ran).
    `outside`: restores of the VM made outside Wukong (`Observed.outside_restores`), reason
    `OutsideWukong`, while the Wukong has none of its own in flight."""
    running = in_flight(status)
    if running is None and outside:
        made = ", ".join(sorted(r["metadata"]["name"] for r in outside))
        return Cond(
            RESTORING,
            True,
            "OutsideWukong",
            f"VirtualMachineRestore {made}, made outside Wukong, is restoring "
            f"{cr.metadata.name}'s VM: its disks and VM are left to KubeVirt until it ends",
        )
    if running is None:
        return None
    said = running.message or ""
    said = said.removeprefix(f"{running.name}: ")
    if said == f"restoring the disks from {running.snapshot}":  # made, not taken up yet
        said = "made, waiting for KubeVirt to take it up"
    message = (
        f"restoring {cr.metadata.name}'s disks from snapshot {running.snapshot} "
        f"(VirtualMachineRestore {running.name})" + (f": {said}" if said else "")
    )
    reason = RESTORING_REASONS.get(running.phase or "", "InProgress")
    return Cond(RESTORING, True, reason, message)


def restore_stalled(
    status: RestoreStatus | None,
    now: datetime,
    stall_after: float,
    outside: Sequence[JsonObj] = (),
) -> tuple[Cond | None, float | None]:
    """Stalled when a restore outlives `stall_after` (the operator keeps its hands off the
    disks and the VM all that time), naming what KubeVirt last said; else when to look again.
    None when no restore is in flight. The message is stable, like a phase's: it changes only
    with what KubeVirt says. `outside`: restores of the VM made outside Wukong
    (`Observed.outside_restores`), timed from their creation, while none of the Wukong's
    own is in flight: they hold it the same way, and one stuck said nothing (session 48's
    leftover: `Stalled=False "nothing is stuck"` under a restore KubeVirt retried for ever)."""
    running = in_flight(status)
    if running is None and outside:
        return _outside_stalled(outside, now, stall_after)
    if running is None or running.started_at is None:
        return None, None
    age = (now - running.started_at).total_seconds()
    if age < stall_after:
        return None, stall_after - age + 0.05
    message = (
        f"restore {running.name} since {iso(running.started_at)} (more than {int(stall_after)}s): "
        f"{running.message or running.phase}"
    )
    return Cond(STALLED, True, "RestoreTooLong", message), None


def _outside_stalled(
    outside: Sequence[JsonObj], now: datetime, stall_after: float
) -> tuple[Cond | None, float | None]:
    """`restore_stalled` of the oldest restore made outside Wukong, in KubeVirt's words (its
    `Progressing` condition, or `Failure`'s while it is not deleted)."""
    made = [(parse_time(r["metadata"].get("creationTimestamp")), r) for r in outside]
    dated = sorted(((at, r) for at, r in made if at is not None), key=lambda m: m[0])
    if not dated:
        return None, None
    since, oldest = dated[0]
    age = (now - since).total_seconds()
    if age < stall_after:
        return None, stall_after - age + 0.05
    failure = condition_of(oldest, "Failure") or {}
    cond = failure if failure.get("status") == "True" else condition_of(oldest, "Progressing")
    said = str((cond or {}).get("message") or (cond or {}).get("reason") or "")
    message = (
        f"VirtualMachineRestore {oldest['metadata']['name']}, made outside Wukong, since "
        f"{iso(since)} (more than {int(stall_after)}s): "
        + (f"KubeVirt: {said}" if said else "KubeVirt has not said why")
    )
    return Cond(STALLED, True, "RestoreTooLong", message), None
