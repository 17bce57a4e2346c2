"""The answer to a lifecycle request, as a table: Accepted → Issued → Done, or Refused,
or Failed; before the VM exists, Done at once or Waiting. `status.lifecycleState.state` only
ever moves along a row of `PROTOCOL`.

Exactly once across crashes is why there are two steps before Done: the pass that accepts
a request only records it (Accepted; the status write comes first), the next pass makes
the KubeVirt call the state machine asked for (Issued). A call that failed transiently is
made again (back to Accepted); one KubeVirt refused is answered Failed and not retried. A
forced restart KubeVirt could only take as a forced stop has a second call, its start: back
to Accepted once the stop is done, and made exactly once the same way.
"""

from __future__ import annotations

from enum import StrEnum


class Answer(StrEnum):
    """lifecycleState.state."""

    Accepted = "Accepted"
    Issued = "Issued"
    Done = "Done"
    Refused = "Refused"
    Failed = "Failed"
    Waiting = "Waiting"


class Happened(StrEnum):
    """What moves a request on."""

    accepted = "accepted"
    """The state machine accepted the new request (the status records it; no call yet)."""
    refused = "refused"
    """The state machine refused it (a sentence says why)."""
    called = "called"
    """The next pass made the call, or found it had landed before a crash."""
    settled = "settled"
    """The phase left the request's in-between phase (Stopping, Restarting, ...)."""
    call_failed = "call_failed"
    """The call failed transiently: make it again."""
    stopped_to_restart = "stopped_to_restart"
    """A forced restart's stop is done and nothing will start the guest again (Manual,
    RerunOnFailure): its start is the next call, recorded before it is made."""
    call_refused = "call_refused"
    """KubeVirt refused the call (409) or the API said no: answer, do not retry."""
    moot = "moot"
    """Nothing to act on yet (a restart or resume while the VM is being created): done."""
    deferred = "deferred"
    """A suspend before the VM runs: it waits (not recorded; asked again each pass)."""


ANY = "*"
A, H = Answer, Happened
# (from, event) -> to. ANY matches every state, including none yet.
PROTOCOL: dict[tuple[str, Happened], Answer] = {
    (ANY, H.accepted): A.Accepted,
    (ANY, H.refused): A.Refused,
    (ANY, H.moot): A.Done,
    (ANY, H.deferred): A.Waiting,
    (A.Accepted, H.called): A.Issued,
    (A.Issued, H.settled): A.Done,
    (A.Issued, H.call_failed): A.Accepted,
    (A.Issued, H.stopped_to_restart): A.Accepted,
    (A.Issued, H.call_refused): A.Failed,
    (A.Accepted, H.call_refused): A.Failed,
}
ISSUED = frozenset({A.Issued, A.Done, A.Failed})
"""Answers after which the call was made (lifecycleState.issued)."""


def answer(state: str | None, event: Happened) -> Answer | None:
    """The state after `event`, or None when no row moves `state` (it stays)."""
    return PROTOCOL.get((state or ANY, event)) or PROTOCOL.get((ANY, event))
