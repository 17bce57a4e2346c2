"""The per-Wukong state machine: rebuilt at status.phase, fed facts, asked what happens.

The cluster holds the state (status.phase); each pass rebuilds the machine at that phase,
applies the user's lifecycle request (if any) and then the observation trigger `sync`
until nothing more changes. Guards read a frozen `Facts`; callbacks only append an
`Effect` for the reconciler to execute. Nothing here does I/O. The rows, their order and
what they mean are described in `table.py`.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field, replace
from typing import Any

from transitions import Machine, Transition

from wukong.fsm.facts import Facts
from wukong.fsm.refusals import refusal, unknown_request
from wukong.fsm.states import Effect, Phase, Request
from wukong.fsm.table import TRANSITIONS, mermaid

__all__ = [
    "MAX_SYNC_HOPS",
    "TRANSITIONS",
    "Effect",
    "Phase",
    "Request",
    "Step",
    "allowed_requests",
    "decide",
    "mermaid",
]

# pytransitions logs every state entry and exit at INFO: two lines per hop of every pass,
# which say nothing the history and the Events do not.
logging.getLogger("transitions").setLevel(logging.WARNING)

# Enough for the longest legitimate chain (Error -> Creating -> Starting -> Running) plus
# slack; a longer walk would mean the table oscillates, so stop rather than spin.
MAX_SYNC_HOPS = 5


@dataclass(frozen=True)
class Step:
    """The outcome of one pass: where the Wukong ends, what to do, and why."""

    phase: Phase
    previous: Phase
    effects: tuple[Effect, ...] = ()
    refused: str | None = None
    reason: str = ""
    """CamelCase reason of the last transition that fired; empty when none did."""
    hops: tuple[tuple[Phase, Phase, str], ...] = ()
    """Every transition that fired (from, to, reason); from == to for recorded requests
    and escalations."""

    @property
    def changed(self) -> bool:
        """The phase differs from the one the pass started in."""
        return self.phase is not self.previous


class _Transition(Transition):
    """A transition that carries the reason a person reads, and records itself when it fires."""

    def __init__(self, *args: Any, reason: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reason = reason

    def execute(self, event_data: Any) -> bool:
        """Run the transition; on success note the hop on the pass."""
        if not super().execute(event_data):
            return False
        model: _Pass = event_data.model
        model.hops.append((Phase(self.source), Phase(self.dest or self.source), self.reason))
        return True


class _Machine(Machine):
    """A plain sync Machine whose rows carry a reason."""

    transition_cls = _Transition


@dataclass(eq=False)
class _Pass:
    """The mutable model the machine drives for one pass; guards fall through to `facts`."""

    facts: Facts
    forced: bool
    state: str
    effects: list[Effect] = field(default_factory=list)
    hops: list[tuple[Phase, Phase, str]] = field(default_factory=list)

    def __getattr__(self, name: str) -> object:
        # Only reached for names the pass lacks: guard names are Facts fields/properties.
        if name == "facts":
            raise AttributeError(name)
        return getattr(self.facts, name)

    def start_vm(self) -> None:
        """Decide: start the VM."""
        self.effects.append(Effect.START_VM)

    def stop_vm(self) -> None:
        """Decide: stop the VM gracefully."""
        self.effects.append(Effect.STOP_VM)

    def force_stop_vm(self) -> None:
        """Decide: power the VM off now."""
        self.effects.append(Effect.FORCE_STOP_VM)

    def restart_vm(self) -> None:
        """Decide: restart the VM gracefully."""
        self.effects.append(Effect.RESTART_VM)

    def force_restart_vm(self) -> None:
        """Decide: restart the VM now."""
        self.effects.append(Effect.FORCE_RESTART_VM)

    def pause_vmi(self) -> None:
        """Decide: pause the guest."""
        self.effects.append(Effect.PAUSE_VMI)

    def unpause_vmi(self) -> None:
        """Decide: unpause the guest."""
        self.effects.append(Effect.UNPAUSE_VMI)


# Built once: building costs ~ms, while a pass only needs to trigger events on a fresh
# model. The machine holds no model and no queue, so sharing it keeps passes independent.
_MACHINE = _Machine(
    model=None,
    states=[p.value for p in Phase],
    transitions=TRANSITIONS,
    initial=Phase.Pending.value,
    auto_transitions=False,
    ignore_invalid_triggers=False,
    send_event=False,
)


def _phase(value: Phase | str | None) -> Phase:
    """Read status.phase; missing or unknown (e.g. written by a newer operator) is Pending."""
    try:
        return Phase(value) if value else Phase.Pending
    except ValueError:
        return Phase.Pending


def _fire(trigger: str, model: _Pass) -> bool:
    """Fire `trigger` on the pass; False when no row leaves the current phase."""
    event = _MACHINE.events[trigger]
    if not event.transitions.get(model.state):
        return False
    return bool(event.trigger(model))


def _request(model: _Pass, request: Request | str, phase: Phase) -> str | None:
    """Apply the user's request; the refusal sentence, or None when accepted."""
    try:
        wanted = Request(request)
    except ValueError:
        return unknown_request(str(request))
    if model.facts.deleting:
        return refusal(wanted, Phase.Deleting)
    if not _fire(wanted.value, model):
        return refusal(wanted, phase, model.facts)
    # The request is the user's latest word on the run state, even before the
    # reconciler's facts reflect it; without this a start would bounce back to Stopped.
    if wanted in (Request.start, Request.restart):
        model.facts = replace(model.facts, want_running=True)
    elif wanted is Request.stop:
        model.facts = replace(model.facts, want_running=False)
    # KubeVirt's refusal answered the request before; this one has made no call yet (else
    # the hop back of that refusal took the new phase back at once, with a false Warning).
    # Nor is a VM left off by someone else's stop (left_off) the answer to it.
    model.facts = replace(model.facts, call_refused=False, start_refused=False, left_off=False)
    return None


def decide(
    phase: Phase | str | None,
    facts: Facts,
    request: Request | str | None = None,
    *,
    force: bool = False,
) -> Step:
    """Apply `request` (if any) at `phase`, then follow the facts to a fixed point."""
    wanted = request.value if isinstance(request, Request) else request
    return _decide(_phase(phase), facts, wanted, force)


# A pure function of a handful of flags: most passes ask what an earlier one asked, and
# `transitions` takes ~60 µs to answer (a tenth of a pass's planning).
@functools.lru_cache(maxsize=1024)
def _decide(previous: Phase, facts: Facts, request: str | None, force: bool) -> Step:
    model = _Pass(facts=facts, forced=force, state=previous.value)
    refused = _request(model, request, previous) if request else None
    for _ in range(MAX_SYNC_HOPS):
        before = model.state
        if not _fire("sync", model) or model.state == before:
            break  # nothing fired, or an escalation that stays put: a fixed point
    return Step(
        phase=Phase(model.state),
        previous=previous,
        effects=tuple(model.effects),
        refused=refused,
        reason=model.hops[-1][2] if model.hops else "",
        hops=tuple(model.hops),
    )


def allowed_requests(phase: Phase | str | None) -> set[Request]:
    """Requests some row accepts in `phase` (stop in Stopping and restart in Restarting
    only with force, restart in Error only once the VM exists)."""
    state = _phase(phase).value
    return {r for r in Request if _MACHINE.events[r.value].transitions.get(state)}
