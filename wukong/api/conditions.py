"""metav1.Condition and the state-transition history, with the helpers that keep them right."""

from __future__ import annotations

from collections.abc import Sequence
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
