"""Conditions and history: the one module that owns them.

metav1.Condition and the state-transition history, which conditions a Wukong always carries
and which only while an operation has something to say, and the pure helpers that merge a
pass's verdicts and phase changes into them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from wukong.api._base import Timestamp, WireModel

ConditionStatus = Literal["True", "False", "Unknown"]
HISTORY_LIMIT = 10

# The patterns of metav1.Condition, so a bad reason fails in tests, not at the API server.
CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


class Condition(WireModel):
    """One aspect of the Wukong's state, in the standard metav1.Condition shape."""

    type: Annotated[str, Field(pattern=CONDITION_TYPE_PATTERN, max_length=316)]
    """CamelCase condition type, e.g. Ready, SpecValid, VolumesBound."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: Annotated[str, Field(pattern=CONDITION_REASON_PATTERN, max_length=1024)]
    """CamelCase reason for the last transition."""
    message: Annotated[str, Field(max_length=32768)] = ""
    """What a person should know, and do."""
    last_transition_time: Timestamp
    """When status last changed."""
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The metadata.generation this condition was computed from."""

    @property
    def is_true(self) -> bool:
        """Whether the status is "True"."""
        return self.status == "True"


def find_condition(conditions: Sequence[Condition], type: str) -> Condition | None:
    """The condition of this type, if present."""
    return next((c for c in conditions if c.type == type), None)


def set_condition(
    conditions: Sequence[Condition],
    type: str,
    status: bool | ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None = None,
) -> list[Condition]:
    """A new list with this condition set; lastTransitionTime moves only when status changes."""
    if isinstance(status, bool):
        status = "True" if status else "False"
    old = find_condition(conditions, type)
    if old is not None and (old.status, old.reason, old.message, old.observed_generation) == (
        status,
        reason,
        message,
        generation,
    ):
        return list(conditions)  # as it was: most conditions of most passes
    # metav1 semantics: a new reason or message is not a transition.
    since = old.last_transition_time if old is not None and old.status == status else now
    new = Condition(
        type=type,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
    if old is None:
        return [*conditions, new]
    return [new if c.type == type else c for c in conditions]


def remove_condition(conditions: Sequence[Condition], type: str) -> list[Condition]:
    """A new list without the condition of this type."""
    return [c for c in conditions if c.type != type]


class Transition(WireModel):
    """One entry of status.history: the phase changed from one state to another."""

    from_: str = Field(alias="from")
    """Phase before."""
    to: str
    """Phase after."""
    reason: str = ""
    """Why, in a few words."""
    time: Timestamp
    """When."""


def record_transition(
    history: Sequence[Transition], from_: str, to: str, reason: str, now: datetime
) -> list[Transition]:
    """A new history with this transition appended, keeping the last HISTORY_LIMIT entries."""
    entry = Transition(from_=from_, to=to, reason=reason, time=now)
    return [*history, entry][-HISTORY_LIMIT:]


# --- The conditions a Wukong carries (SPEC §2, docs/decisions.md "Conditions say something") ---

READY = "Ready"
SPEC_VALID = "SpecValid"
NETWORKS_CONFIGURED = "NetworksConfigured"
VOLUMES_BOUND = "VolumesBound"
STALLED = "Stalled"
DISK_HOTPLUG = "DiskHotplug"
DISK_DETACH = "DiskDetach"
FILESYSTEM_RESIZE_PENDING = "FileSystemResizePending"
VOLUMES_RESIZED = "VolumesResized"
RESTART_REQUIRED = "RestartRequired"
DELETION_BLOCKED = "DeletionBlocked"
VM_HEALTHY = "VMHealthy"
"""False while KubeVirt reports the VM in trouble (reconcile/vm_health.py); absent otherwise."""
CHILDREN_ADMITTED = "ChildrenAdmitted"
"""False while the API server refuses a child (reconcile/admission.py); absent otherwise."""
SECRET_MISSING = "SecretMissing"
ACCESS_CREDENTIALS = "AccessCredentialsSynchronized"
"""False while KubeVirt cannot give the guest the keys of spec.sshKeys (reconcile/access.py);
absent otherwise."""
CPU_MEMORY_HOTPLUG = "CPUMemoryHotplug"
"""True while KubeVirt applies a cpu/memory change to the running VM (reconcile/resources.py)."""
EVICTION_BLOCKED = "EvictionBlocked"
"""True while the running VM's evictionStrategy is LiveMigrate and KubeVirt cannot migrate it:
a drain of its node waits for it (reconcile/vm.py)."""
RESTORING = "Restoring"
"""True while a restore is in flight, from its acceptance to its end: the VM stopping for it,
its VMI going, KubeVirt restoring the disks (reconcile/restore.py)."""

ALWAYS_PRESENT = frozenset({READY, SPEC_VALID, NETWORKS_CONFIGURED, VOLUMES_BOUND, STALLED})
"""Conditions not about an operation: never removed once set. Ready, SpecValid and Stalled
are set by every pass; NetworksConfigured once the spec is valid, VolumesBound once the
networks are ready (the planners run in that order)."""
OPERATION_CONDITIONS = frozenset(
    {
        VM_HEALTHY,
        DISK_HOTPLUG,
        DISK_DETACH,
        FILESYSTEM_RESIZE_PENDING,
        VOLUMES_RESIZED,
        RESTART_REQUIRED,
        DELETION_BLOCKED,
        SECRET_MISSING,
        ACCESS_CREDENTIALS,
        CPU_MEMORY_HOTPLUG,
        EVICTION_BLOCKED,
        RESTORING,
    }
)
"""Conditions about an operation: present only while they have something to say (like
KubeVirt's own Paused and RestartRequired); a pass that does not set one removes it."""


@dataclass(frozen=True)
class Cond:
    """A planner's verdict on one condition, before it is merged with timestamps."""

    type: str
    status: bool | None
    """True/False; None is Unknown."""
    reason: str
    message: str

    @property
    def wire_status(self) -> ConditionStatus:
        """The status as the API writes it."""
        if self.status is None:
            return "Unknown"
        return "True" if self.status else "False"


def merge_conditions(
    old: Sequence[Condition], verdicts: Iterable[Cond], now: datetime, generation: int | None
) -> list[Condition]:
    """The conditions after a pass, sorted by type: each verdict set with metav1 semantics
    (lastTransitionTime moves only when the status flips); an operation condition the pass
    did not set is gone; any other condition the pass did not set stays as it was."""
    verdicts = list(verdicts)
    produced = {v.type for v in verdicts}
    # One per type: the list is atomic, so the API server would keep a duplicate someone
    # else wrote; the first of each type is the one find_condition reads.
    first = {c.type: c for c in reversed(old)}
    merged = [
        c
        for c in old
        if first[c.type] is c and (c.type not in OPERATION_CONDITIONS or c.type in produced)
    ]
    for verdict in verdicts:
        merged = set_condition(
            merged,
            verdict.type,
            verdict.wire_status,
            verdict.reason,
            verdict.message,
            now,
            generation,
        )
    return sorted(merged, key=lambda c: c.type)


def record_hops(
    history: Sequence[Transition], hops: Iterable[tuple[str, str, str]], now: datetime
) -> list[Transition]:
    """The history with a pass's phase changes (from, to, reason) appended; a hop that stays
    in its phase (a recorded request, an escalation) is not a transition."""
    entries = list(history)
    for source, dest, reason in hops:
        if source != dest:
            entries = record_transition(entries, source, dest, reason, now)
    return entries


def phase_since(history: Sequence[Transition]) -> datetime | None:
    """When the current phase was entered, from the history."""
    return history[-1].time if history else None


CLEARED: dict[str, tuple[str, str]] = {
    SECRET_MISSING: ("SecretsFound", "every Secret the VM names is there: KubeVirt mounted them"),
    # Gone also when the VM stops or pauses: the words claim no success.
    ACCESS_CREDENTIALS: (
        "NoSyncError",
        "KubeVirt reports no failure to put the keys of spec.sshKeys in the guest",
    ),
    VOLUMES_RESIZED: ("UpToDate", "every disk has the size the spec asks for"),
    FILESYSTEM_RESIZE_PENDING: ("NothingPending", "no claim's filesystem waits to grow"),
    DISK_DETACH: ("NothingPending", "no disk waits to be detached"),
    RESTART_REQUIRED: ("UpToDate", "the running VM matches the spec"),
    DELETION_BLOCKED: ("NotProtected", "deletion proceeds"),
    VM_HEALTHY: ("NoError", "KubeVirt reports no error for the VM"),
    # Gone also when the VM stops: the words claim only what is true then.
    EVICTION_BLOCKED: ("EvictionPossible", "no drain of the VM's node waits for the VM"),
}
"""What the absence of an operation condition means (reason, message): the Normal Event
that announces it went away after saying something bad."""
