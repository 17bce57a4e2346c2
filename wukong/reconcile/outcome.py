"""What the executor's actions did, folded into the status a pass writes. Pure.

The planners decide the status as if every action succeeds; `fold` corrects it for the
actions that did not: `observedGeneration` stays where it was unless every failure is an
answer the status reports (see `answered`), a lifecycle call that failed
transiently is made again next pass (back to Accepted) while one KubeVirt refused is
answered `Failed` (`wukong.fsm.requests.PROTOCOL`), and a
claim expansion the API server refused is remembered as `expansionRefused` so it is not
asked again until the spec asks for another size; a removed disk whose claim's delete or
unplug was refused says so in its own `Detaching` entry. Typed fields, never parsed messages.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from wukong.api.conditions import VOLUMES_RESIZED, find_condition
from wukong.api.status import MigrationStatus, RestoreStatus, SnapshotStatus, WukongStatus
from wukong.fsm.requests import Happened
from wukong.reconcile.actions import (
    Action,
    CreateChild,
    DeleteChild,
    Emit,
    ExpandDisk,
    Failed,
    PatchChild,
    RemoveVolume,
    VmCall,
)
from wukong.reconcile.admission import (
    denied_to_operator,
    operator_forbidden,
    refused,
    refused_child,
    said_as,
)
from wukong.reconcile.lifecycle import moved, start_beside_refusal
from wukong.reconcile.story import condition_events


def answered(action: Action, failure: Failed) -> bool:
    """A failure the status itself answers for this generation, as a Deployment's
    ReplicaFailure does: a child the API server refused (`ChildrenAdmitted`, admission.py), a
    call KubeVirt refused (`lifecycleState` Failed), a claim expansion refused
    (`expansionRefused`). Such a generation is observed: `observedGeneration` moves, and a
    client waiting for it reads the refusal. A transient failure is not an answer (the pass
    is retried), nor is one nothing in the status reports. (A migration, snapshot or restore
    whose create failed for good is answered in its own status too: `answered_requests`.)"""
    if failure.kind == "transient":
        return False
    return refused_child(action, failure) or isinstance(action, (VmCall, ExpandDisk))


def refusal_message(size: str, why: str) -> str:
    """The volume message recording that growing to `size` was refused."""
    return f"expansion to {size} refused: {why}"


# virt-api's 409s to a start that say it runs, or will by itself (lifecycle.go): not refusals.
START_SATISFIED = ("VM is already running", "Always does not support manual start requests")
# And to a pause or unpause made again after it landed (a 5xx or a timeout on its way back,
# the cache not showing it yet): virt-api reads the VMI afresh (lifecycle.go Pause,
# Unpause). The Paused condition's reason still tells a user's pause from KubeVirt's.
PAUSE_SATISFIED = {
    "pause": ("VMI is already paused", "the guest is already paused"),
    "unpause": ("VMI is not paused", "the guest is not paused"),
}


def fold(planned: WukongStatus, old: WukongStatus, failed: Mapping[Action, Failed]) -> WukongStatus:
    """The status to write, given the actions that failed (none: `planned` as it is)."""
    if not failed:
        return planned
    status = planned
    # A migration, snapshot or restore answered Refused or Failed here because its create
    # failed for good is an answer to this generation too, whatever the code (a 404: the
    # CRD not served; a 400 no webhook gave): it stayed unobserved beside its answer until
    # the next pass (audit leftovers, session 50).
    requests = answered_requests(planned, failed)
    if not all(answered(a, f) or a in requests for a, f in failed.items()):
        status = planned.model_copy(update={"observed_generation": old.observed_generation})
    for action, failure in failed.items():
        if isinstance(action, ExpandDisk) and failure.kind == "permanent":
            volumes = [
                v.model_copy(
                    update={
                        "expansion_refused": action.size,
                        "message": refusal_message(action.size, failure.message),
                    }
                )
                if v.name == action.disk
                else v
                for v in status.volumes
            ]
            status = status.model_copy(update={"volumes": volumes})
            status = _growth_refused(status, refusal_message(action.size, failure.message))
        elif (
            isinstance(action, DeleteChild | RemoveVolume)
            and failure.kind != "transient"
            and refused_child(action, failure)
        ):
            status = _detach_refused(status, action, failure)
        elif (
            isinstance(action, CreateChild)
            and (answer := _NOT_MADE.get(action.kind)) is not None
            and getattr(status, answer[0]) is not None
        ):
            field, not_made = answer
            status = status.model_copy(update={field: not_made(status, old, action, failure)})
        elif isinstance(action, VmCall) and status.lifecycle_state is not None:
            state = status.lifecycle_state
            if action.verb == "start" and start_beside_refusal(state):
                # A forced restart's start, made beside a later request's refusal: that
                # refusal stays the answer whatever KubeVirt says. A transient failure makes
                # the start again; any other answer leaves the phase to what KubeVirt shows.
                if failure.kind == "transient":
                    state = state.model_copy(update={"issued": False})
            elif (
                action.force and state.escalated and not state.force and failure.kind == "transient"
            ):
                # The forced escalation of a graceful stop failed (5xx, timeout): clear the
                # mark so the next pass escalates again, forced (issue 15).
                message = f"forced {action.verb} failed: {failure.message}"
                state = state.model_copy(update={"escalated": False, "message": message})
            elif failure.kind == "transient" and (denied := denied_to_operator(failure)):
                # The operator's own RBAC, worded as a refused child's is (it named the
                # authorizer's raw sentence); made again with the queue's backoff.
                message = f"{action.verb} not made yet: {operator_forbidden(action, denied)}"
                state = moved(state, Happened.call_failed, message=message)
            elif failure.kind == "transient":
                state = moved(state, Happened.call_failed)
            elif failure.code == 404 and _names_the_vm(failure.message):
                # The VM (or its VMI) is gone, deleted outside Wukong say: nothing refused the
                # request, and the run state it asked for holds for the VM made again. (Any
                # other 404, KubeVirt's subresource API not served say, is a refusal.)
                message = f"{action.verb} ended: {failure.message}"
                state = moved(state, Happened.moot, message=message, deadline=None)
            elif action.verb == "start" and any(w in failure.message for w in START_SATISFIED):
                # Someone started it meanwhile (virtctl), or a start of ours landed before
                # the cache showed Always: what the start asked for holds.
                state = moved(state, Happened.called)
                state = state.model_copy(update={"message": "start: the VM already runs"})
            elif (satisfied := PAUSE_SATISFIED.get(action.verb)) and satisfied[0] in (
                failure.message
            ):
                state = moved(state, Happened.called)
                message = f"{state.last_action}: {satisfied[1]}"
                state = state.model_copy(update={"message": message})
            elif action.force and state.escalated and not state.force:
                # The graceful call before it was made and may well have landed (a 409 "VM
                # is not running" while its VMI goes): the request stays as it is, not a
                # refusal of the user's request.
                message = f"forced {action.verb} refused: {failure.message}"
                state = state.model_copy(update={"message": message})
            else:
                message = f"KubeVirt refused {action.verb}: {failure.message}"
                state = moved(state, Happened.call_refused, message=message, deadline=None)
            status = status.model_copy(update={"lifecycle_state": state})
    return status


DISK_KINDS = ("PersistentVolumeClaim", "DataVolume")
"""The kinds of a disk's claim (a DataVolume shares its claim's name)."""


def _detach_refused(
    status: WukongStatus, action: DeleteChild | RemoveVolume, failure: Failed
) -> WukongStatus:
    """The `Detaching` entry of the disk whose claim's delete, or whose unplug, was refused,
    with the refusal in its message; the other disks of the same pass as they are. The disk
    is tried again (`ChildrenAdmitted`), and its entry goes once its claim does."""
    said = refused({action: failure})
    volumes = []
    for volume in status.volumes:
        if isinstance(action, RemoveVolume):
            ours = volume.name == action.disk
        else:
            ours = action.kind in DISK_KINDS and volume.pvc_name == action.name
        if ours and volume.phase == "Detaching" and said:
            words = "; ".join(m for m in (volume.message, *said) if m)
            volume = volume.model_copy(update={"message": words})
        volumes.append(volume)
    return status.model_copy(update={"volumes": volumes})


def _growth_refused(status: WukongStatus, message: str) -> WukongStatus:
    """VolumesResized as the pass a growth was refused in writes it: `ExpansionRefused`, as
    the next pass says from `expansionRefused`, not the `Resizing` planned. Written
    `Resizing`, with the generation observed, `wukong resize` read a success and `--wait`
    waited for good, and nothing woke the pass that would say it (source audit, session
    48). Added to a refusal already said."""
    resized = find_condition(status.conditions, VOLUMES_RESIZED)
    if resized is None or resized.reason not in ("Resizing", "ExpansionRefused"):
        return status
    if resized.reason == "ExpansionRefused":
        message = f"{resized.message}; {message}"
    refused = resized.model_copy(update={"reason": "ExpansionRefused", "message": message})
    conditions = [refused if c.type == VOLUMES_RESIZED else c for c in status.conditions]
    return status.model_copy(update={"conditions": conditions})


def as_written(events: Sequence[Emit], planned: WukongStatus, written: WukongStatus) -> list[Emit]:
    """The plan's Events for the status `fold` made of it: a condition fold changed (a
    growth refused: `Resizing` becomes `ExpansionRefused`) is told as written, a Warning,
    and its planned Event (a Normal `Resizing`) is not."""
    after = {c.type: c for c in written.conditions}
    changed = [
        c
        for c in planned.conditions
        if (w := after.get(c.type)) is not None and (w.status, w.reason) != (c.status, c.reason)
    ]
    if not changed:
        return list(events)
    stale = {(c.reason, c.message) for c in changed}
    kept = [e for e in events if (e.reason, e.message) not in stale]
    told = condition_events(changed, [after[c.type] for c in changed])
    return [*kept, *(e for e in told if isinstance(e, Emit))]


def _snapshot_not_made(
    planned: WukongStatus, old: WukongStatus, action: CreateChild, failure: Failed
) -> SnapshotStatus | None:
    """The snapshot whose VirtualMachineSnapshot was not made: one virt-api's webhook said no
    to (the Snapshot feature gate off, say) is answered, not made again; one lost on its way
    is made again next pass, as planned."""
    snapshot = planned.snapshot
    assert snapshot is not None
    if failure.kind == "transient":
        return snapshot
    name = action.body.get("metadata", {}).get("name")
    text = f"KubeVirt refused snapshot {name}: {failure.message}"
    return snapshot.model_copy(update={"result": "Failed", "phase": "Failed", "message": text})


def _migration_not_made(
    planned: WukongStatus, old: WukongStatus, action: CreateChild, failure: Failed
) -> MigrationStatus | None:
    """The migration whose VirtualMachineInstanceMigration was not made. Said Pending "<name>
    created", it waited for good for an object nothing would make, and a migration KubeVirt
    finished meanwhile answered it (found by a source audit, session 42). KubeVirt's webhook
    refuses a migration while another of the VMI is unfinished, one a drain or a workload
    update queued too, which the operator cannot see before the nodes have it ("in-flight
    migration detected", a 400): answered in its words. One lost on its way (a 5xx: the
    webhook's failurePolicy is Fail) is made again next pass."""
    migration = planned.migration
    assert migration is not None
    if failure.kind == "transient":
        return old.migration
    name = action.body.get("metadata", {}).get("name")
    text = f"KubeVirt refused migration {name}: {failure.message}"
    # No name: there is no object to follow (a migration KubeVirt finishes later must not
    # answer this request) nor to cancel.
    update = {"result": "Refused", "phase": None, "name": None, "message": text, "refusal": text}
    return migration.model_copy(update=update)


def answered_requests(planned: WukongStatus, failed: Mapping[Action, Failed]) -> set[Action]:
    """The creates of a migration, snapshot or restore whose failure `fold` answers in the
    request's own status (`status.migration`, `.snapshot`, `.restore`): KubeVirt refused
    them, or any other failure but one lost on its way. Such a request is answered, not made
    again, so it is no child `admit` reports and retries: a refusal said twice, as
    `MigrationRefused` and `ChildRefused`, with `ChildrenAdmitted=False` set for a second
    and cleared by the retry it asked for, which made nothing (session 49)."""
    return {
        action
        for action, failure in failed.items()
        if isinstance(action, CreateChild)
        and (answer := _NOT_MADE.get(action.kind)) is not None
        and getattr(planned, answer[0]) is not None
        and failure.kind != "transient"
    }


def not_made_events(planned: WukongStatus, written: WukongStatus) -> list[Emit]:
    """A Warning for each migration, snapshot or restore that `fold` answered because KubeVirt
    refused its object: the status says it, and so does `kubectl describe` (it said nothing).
    Only an answer to the request planned: one lost on its way gives back the last request's
    answer, maybe a failure told long ago."""
    events: list[Emit] = []
    for field, reason in (
        ("migration", "MigrationRefused"),
        ("snapshot", "SnapshotRefused"),
        ("restore", "RestoreRefused"),
    ):
        before, after = getattr(planned, field), getattr(written, field)
        if before is None or after is None or after.request_id != before.request_id:
            continue
        if after.result in ("Refused", "Failed") and after.result != before.result:
            events.append(Emit("Warning", reason, after.message or after.result))
    return events


def _restore_not_made(
    planned: WukongStatus, old: WukongStatus, action: CreateChild, failure: Failed
) -> RestoreStatus | None:
    """The restore whose VirtualMachineRestore was not made. Said `Restoring`, it waited
    for good for an object nothing would make (found by a source audit, session 41). One
    lost on its way (a 5xx, virt-api's webhook unreachable: its failurePolicy is Fail) is
    made again: the restore goes back to where the last pass left it. One KubeVirt refused
    (its webhook takes no restore of a VM while another is not complete, a failed one too)
    is answered, in its words."""
    restore = planned.restore
    assert restore is not None
    if failure.kind == "transient":
        return old.restore
    name = action.body.get("metadata", {}).get("name")
    text = f"KubeVirt refused restore {name}: {failure.message}"
    if restore.start_after:
        text += "; the VM stays stopped"
    return restore.model_copy(update={"result": "Failed", "phase": "Failed", "message": text})


def fold_deletion(planned: WukongStatus, failed: Mapping[Action, Failed]) -> WukongStatus:
    """The deletion status to write, given the actions that failed. A forced stop that
    failed on its way (a 5xx, a timeout) is not `forced`: the next pass forces it again,
    with the GracePeriodExpired Warning that did not go out (a deletion's actions stop at the
    first failure, and the Warning comes after the call). A graceful stop lost so has no
    deadline: the next pass asks it again. Not one virt-api answered 409:
    no VMI, or its grace period already cut ("Halted only supports manual stop requests
    with a shorter graceperiod"), nothing is left to force, and asking again would loop."""
    deletion = planned.deletion
    if deletion is None:
        return planned
    if said := _step_refusals(failed):
        # A delete (or release) the API server refused: said where the step is, in its
        # words; the step stalled with only the log saying why (source audit, session 48).
        words = "; ".join(said)
        message = f"{deletion.message}; {words}" if deletion.message else words
        deletion = deletion.model_copy(update={"message": message})
        planned = planned.model_copy(update={"deletion": deletion})
    refused_dvs = _refused_releases(failed)
    if refused_dvs - set(deletion.refused_releases):
        deletion = deletion.model_copy(
            update={"refused_releases": sorted(refused_dvs | set(deletion.refused_releases))}
        )
        planned = planned.model_copy(update={"deletion": deletion})
    lost = [
        action
        for action, failure in failed.items()
        if isinstance(action, VmCall) and failure.kind == "transient" and failure.code != 409
    ]
    if deletion.forced and any(call.force for call in lost):
        return planned.model_copy(
            update={"deletion": deletion.model_copy(update={"forced": False})}
        )
    if not deletion.forced and any(not call.force for call in lost):
        # The graceful stop itself was lost: asked again by the next pass, with its own
        # grace period (else the guest would never be asked, and be forced off at the
        # deadline of a stop it never got).
        return planned.model_copy(
            update={"deletion": deletion.model_copy(update={"stop_deadline": None})}
        )
    return planned


def deletion_refusals(
    old: WukongStatus, written: WukongStatus, failed: Mapping[Action, Failed]
) -> list[Emit]:
    """A Warning `ChildRefused` for a deletion step's child the API server refused, once per
    change of what the step says (`fold_deletion`): the step is retried with the queue's
    backoff, and said again only when it says something else."""
    said = _step_refusals(failed)
    before = old.deletion.message if old.deletion is not None else None
    after = written.deletion.message if written.deletion is not None else None
    if not said or (before is not None and said_as(before) == said_as(after or "")):
        return []
    return [Emit("Warning", "ChildRefused", "; ".join(said))]


def _step_refusals(failed: Mapping[Action, Failed]) -> list[str]:
    """What the API server refused a deletion step (`admission.refused`), but the releases
    CDI refuses, which the next pass answers (`refusedReleases`, `DataVolumeNotKept`)."""
    handled = _refused_releases(failed)
    return refused(
        {
            action: failure
            for action, failure in failed.items()
            if not (
                isinstance(action, PatchChild)
                and action.kind == "DataVolume"
                and action.name in handled
            )
        }
    )


def _refused_releases(failed: Mapping[Action, Failed]) -> set[str]:
    """Kept disks' DataVolumes whose release admission refused (400/422: CDI's webhook, once
    their clone's source is gone, refuses every change of them; deletion.py `_let_go`)."""
    return {
        action.name
        for action, failure in failed.items()
        if isinstance(action, PatchChild)
        and action.kind == "DataVolume"
        and failure.kind == "permanent"
        and failure.code in (400, 422)
    }


def _names_the_vm(message: str) -> bool:
    """A 404 that says the VM or its VMI is not found (`virtualmachines.kubevirt.io "x" not
    found`), not that the API is missing ("the server could not find the requested
    resource")."""
    return "not found" in message and "virtualmachine" in message


# What fold makes of a child KubeVirt did not make, by kind: the status field that answers the
# request, and how (transient: made again; refused: answered in KubeVirt's words).
_NOT_MADE: dict[str, tuple[str, Callable[..., object]]] = {
    "VirtualMachineSnapshot": ("snapshot", _snapshot_not_made),
    "VirtualMachineInstanceMigration": ("migration", _migration_not_made),
    "VirtualMachineRestore": ("restore", _restore_not_made),
}
