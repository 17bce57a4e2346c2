"""The Events a pass's conditions and phase hops tell (SPEC §2.8): a condition going bad and
coming back, a phase changing. Pure. For live passes (`decide`) and deletion passes
(`plan_deletion`) alike: a deletion said none of them (source audit, session 48)."""

from __future__ import annotations

from collections.abc import Sequence

from wukong.api.conditions import (
    ACCESS_CREDENTIALS,
    CHILDREN_ADMITTED,
    CLEARED,
    EVICTION_BLOCKED,
    VM_HEALTHY,
    Condition,
)
from wukong.fsm.machine import Phase, Step
from wukong.reconcile.actions import Action, Emit
from wukong.reconcile.disks import NODE_RESIZE_PENDING, RESTORING
from wukong.reconcile.lifecycle import STOPPED_OUTSIDE, VM_DELETED

# Which way round each condition is healthy: Events report going bad (Warning) and
# coming back (Normal), never a healthy first value.
GOOD_WHEN_TRUE = {
    "NetworksConfigured",
    "VolumesBound",
    "SpecValid",
    "VolumesResized",
    "DiskDetach",
    VM_HEALTHY,
    CHILDREN_ADMITTED,
    ACCESS_CREDENTIALS,
}
BAD_WHEN_TRUE = {
    "RestartRequired",
    "FileSystemResizePending",
    "Stalled",
    "DeletionBlocked",
    "SecretMissing",
    EVICTION_BLOCKED,
}
# Not healthy yet, but the normal path: every new disk is Provisioning for a while. No Warning
# (nor the Normal that would answer it): the phase hop Events tell that story, and Stalled
# warns if it lasts. Nor for a grown claim whose filesystem waits for the kubelet: the grow's
# own Events (`Resizing`, then `DiskGrown`) tell that one. Nor for a claim KubeVirt's restore
# is making again (`Restoring`): RestoreStarted and Restored tell it, and the Restoring
# condition says it meanwhile.
# Not evaluated: said by SpecValid (or NetworksConfigured), not again.
NOT_EVALUATED = "NotEvaluated"
EXPECTED_REASONS = {"Provisioning", NODE_RESIZE_PENDING, NOT_EVALUATED, RESTORING}
# Not healthy yet, but what the user asked for: a disk growing because its size grew. A
# Normal Event when it starts and one when it is done, as the external resizer posts for the
# claim; a Warning only when it is refused.
REQUESTED_REASONS = {"Resizing"}


def _healthy(cond: Condition) -> bool:
    return cond.is_true if cond.type in GOOD_WHEN_TRUE else not cond.is_true


def _notable(cond: Condition) -> bool:
    """Not healthy, and worth an Event when it starts and when it ends."""
    return not _healthy(cond) and cond.reason not in EXPECTED_REASONS


def condition_events(old: Sequence[Condition], new: Sequence[Condition]) -> list[Action]:
    """A Warning when a condition goes bad (a Normal when it goes where the user asked,
    `REQUESTED_REASONS`), a Normal Event when it recovers (an operation condition recovers
    by going away: the Event then says what its absence means)."""
    before = {c.type: c for c in old}
    after = {c.type for c in new}
    events: list[Action] = []
    for cond in new:
        prior = before.get(cond.type)
        if cond.type not in GOOD_WHEN_TRUE | BAD_WHEN_TRUE:
            continue  # Ready and DiskHotplug follow the phase and hop Events
        if prior is not None and (prior.status, prior.reason) == (cond.status, cond.reason):
            continue
        if _notable(cond):
            requested = cond.reason in REQUESTED_REASONS
            events.append(Emit("Normal" if requested else "Warning", cond.reason, cond.message))
        elif _healthy(cond) and prior is not None and _notable(prior):
            events.append(Emit("Normal", cond.reason, cond.message))
    for prior in old:
        if prior.type not in after and prior.type in CLEARED and _notable(prior):
            reason, message = CLEARED[prior.type]
            events.append(Emit("Normal", reason, message))
    return events


# Hops caused by someone acting on the VM behind Wukong's back: a Warning saying what now.
OUTSIDE_HOPS = {
    VM_DELETED: "the VirtualMachine was deleted outside Wukong; it is created again from the "
    "spec (delete the Wukong to delete the VM)",
    STOPPED_OUTSIDE: "the VM was stopped outside Wukong (e.g. virtctl stop) while it "
    "restarted, and stays off; start the Wukong to run it",
}


def hop_events(step: Step, refused: str | None = None) -> list[Action]:
    """An Event per phase change of the pass (SPEC §2.8); a Warning when it leads to Error,
    undoes what someone did outside Wukong, or follows a call KubeVirt refused (`refused`:
    its words, from lifecycleState)."""
    notes = {**OUTSIDE_HOPS, CALL_REFUSED: refused or "KubeVirt refused the call"}
    return [
        Emit(
            "Warning" if dest is Phase.Error or reason in notes else "Normal",
            reason,
            f"{source.value} → {dest.value}" + (f": {notes[reason]}" if reason in notes else ""),
        )
        for source, dest, reason in step.hops
        if source != dest
    ]


CALL_REFUSED = "CallRefused"  # the hop back when KubeVirt refused a lifecycle call
