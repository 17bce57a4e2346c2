"""Every lifecycle request in every phase: accepted with its effects, or refused with a reason."""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import pytest

from tests.unit.fsm.worlds import UP, WORLD
from wukong.fsm import Effect, Facts, Phase, Request, allowed_requests, decide

P, R, E = Phase, Request, Effect


class Accepted(NamedTuple):
    dest: Phase
    reason: str
    effects: tuple[Effect, ...] = ()


class Refused(NamedTuple):
    message: str


def acc(dest: Phase, reason: str, *effects: Effect) -> Accepted:
    return Accepted(dest, reason, effects)


STOP = acc(P.Stopping, "StopRequested", E.STOP_VM)
FORCE_STOP = acc(P.Stopping, "ForceStopRequested", E.FORCE_STOP_VM)
DELETED = "the Wukong is being deleted"

# (phase, request) without force -> outcome. Every pair appears exactly once.
WITHOUT_FORCE: dict[tuple[Phase, Request], Accepted | Refused] = {
    (P.Pending, R.start): acc(P.Pending, "StartRequested"),
    (P.Pending, R.stop): acc(P.Pending, "StopRequested"),
    (P.Pending, R.restart): Refused("cannot restart: the VM does not exist yet"),
    (P.Pending, R.suspend): Refused("cannot suspend: the VM does not exist yet"),
    (P.Pending, R.resume): Refused("cannot resume: the VM does not exist yet"),
    (P.Creating, R.start): acc(P.Creating, "StartRequested"),
    (P.Creating, R.stop): acc(P.Creating, "StopRequested"),
    (P.Creating, R.restart): Refused("cannot restart: the VM is still being created"),
    (P.Creating, R.suspend): Refused("cannot suspend: the VM is still being created"),
    (P.Creating, R.resume): Refused("cannot resume: the VM is still being created, not suspended"),
    (P.Starting, R.start): Refused("cannot start: the VM is already starting"),
    (P.Starting, R.stop): STOP,
    (P.Starting, R.restart): Refused(
        "cannot restart: the VM is still starting; wait until it runs"
    ),
    (P.Starting, R.suspend): Refused(
        "cannot suspend: the VM is still starting; wait until it runs"
    ),
    (P.Starting, R.resume): Refused("cannot resume: the VM is starting, not suspended"),
    (P.Running, R.start): Refused("cannot start: the VM is already running"),
    (P.Running, R.stop): STOP,
    (P.Running, R.restart): acc(P.Restarting, "RestartRequested", E.RESTART_VM),
    (P.Running, R.suspend): acc(P.Suspending, "SuspendRequested", E.PAUSE_VMI),
    (P.Running, R.resume): Refused("cannot resume: the VM is running, not suspended"),
    (P.Stopping, R.start): Refused(
        "cannot start: the VM is still stopping; start it once it has stopped"
    ),
    (P.Stopping, R.stop): Refused(
        "cannot stop: the VM is already stopping; use force to power it off now"
    ),
    (P.Stopping, R.restart): Refused("cannot restart: the VM is stopping"),
    (P.Stopping, R.suspend): Refused("cannot suspend: the VM is stopping"),
    (P.Stopping, R.resume): Refused("cannot resume: the VM is stopping, not suspended"),
    (P.Stopped, R.start): acc(P.Starting, "StartRequested", E.START_VM),
    (P.Stopped, R.stop): Refused("cannot stop: the VM is already stopped"),
    (P.Stopped, R.restart): Refused("cannot restart a stopped VM: start it instead"),
    (P.Stopped, R.suspend): Refused("cannot suspend: the VM is stopped"),
    (P.Stopped, R.resume): Refused("cannot resume: the VM is stopped, not suspended"),
    (P.Restarting, R.start): Refused("cannot start: the VM is restarting"),
    (P.Restarting, R.stop): STOP,
    (P.Restarting, R.restart): Refused(
        "cannot restart: the VM is already restarting; use force to restart it now"
    ),
    (P.Restarting, R.suspend): Refused("cannot suspend: the VM is restarting"),
    (P.Restarting, R.resume): Refused("cannot resume: the VM is restarting, not suspended"),
    (P.Suspending, R.start): Refused("cannot start: the VM is running and being suspended"),
    (P.Suspending, R.stop): STOP,
    (P.Suspending, R.restart): Refused("cannot restart a suspended VM: resume it first"),
    (P.Suspending, R.suspend): Refused("cannot suspend: the VM is already being suspended"),
    (P.Suspending, R.resume): acc(P.Resuming, "ResumeRequested", E.UNPAUSE_VMI),
    (P.Suspended, R.start): Refused("cannot start a suspended VM: resume it instead"),
    (P.Suspended, R.stop): STOP,
    (P.Suspended, R.restart): Refused("cannot restart a suspended VM: resume it first"),
    (P.Suspended, R.suspend): Refused("cannot suspend: the VM is already suspended"),
    (P.Suspended, R.resume): acc(P.Resuming, "ResumeRequested", E.UNPAUSE_VMI),
    (P.Resuming, R.start): Refused("cannot start: the VM is already resuming"),
    (P.Resuming, R.stop): STOP,
    (P.Resuming, R.restart): Refused(
        "cannot restart: the VM is still resuming; wait until it runs"
    ),
    (P.Resuming, R.suspend): acc(P.Suspending, "SuspendRequested", E.PAUSE_VMI),
    (P.Resuming, R.resume): Refused("cannot resume: the VM is already resuming"),
    **{(P.Deleting, r): Refused(f"cannot {r.value}: {DELETED}") for r in Request},
    (P.Error, R.start): Refused(
        "cannot start: the Wukong is in error; fix the cause, or restart it"
    ),
    (P.Error, R.stop): STOP,
    (P.Error, R.restart): acc(P.Restarting, "RestartRequested", E.RESTART_VM),
    (P.Error, R.suspend): Refused("cannot suspend: the Wukong is in error"),
    (P.Error, R.resume): Refused("cannot resume: the Wukong is in error"),
}

# Force only matters to stop and restart; elsewhere it changes nothing.
WITH_FORCE: dict[tuple[Phase, Request], Accepted | Refused] = {
    **{key: FORCE_STOP for key, out in WITHOUT_FORCE.items() if out == STOP},
    (P.Stopping, R.stop): FORCE_STOP,
    (P.Running, R.restart): acc(P.Restarting, "ForceRestartRequested", E.FORCE_RESTART_VM),
    (P.Error, R.restart): acc(P.Restarting, "ForceRestartRequested", E.FORCE_RESTART_VM),
    (P.Restarting, R.restart): acc(P.Restarting, "ForceRestartRequested", E.FORCE_RESTART_VM),
}


def _cases() -> list[object]:
    cases: list[object] = []
    for (phase, request), outcome in WITHOUT_FORCE.items():
        cases.append(pytest.param(phase, request, False, outcome, id=f"{request}-while-{phase}"))
        forced = WITH_FORCE.get((phase, request), outcome)
        cases.append(
            pytest.param(phase, request, True, forced, id=f"force-{request}-while-{phase}")
        )
    return cases


def test_the_request_table_covers_every_phase_and_request() -> None:
    assert set(WITHOUT_FORCE) == {(p, r) for p in Phase for r in Request}


@pytest.mark.parametrize(("phase", "action", "force", "outcome"), _cases())
def test_request_is_accepted_or_refused_with_a_reason(
    phase: Phase, action: Request, force: bool, outcome: Accepted | Refused
) -> None:
    step = decide(phase, WORLD[phase], action, force=force)

    if isinstance(outcome, Refused):
        assert step.refused == outcome.message
        assert step.effects == ()
        assert step.phase is phase, "a refused request leaves a settled phase alone"
    else:
        assert step.refused is None
        assert step.hops[0] == (phase, outcome.dest, outcome.reason)
        assert step.effects == outcome.effects


@pytest.mark.parametrize(
    ("phase", "action"),
    [pytest.param(p, r, id=f"{r}-while-{p}") for (p, r) in WITHOUT_FORCE],
)
def test_allowed_requests_lists_what_some_pass_can_accept(phase: Phase, action: Request) -> None:
    accepted = any(
        isinstance(table.get((phase, action)), Accepted) for table in (WITHOUT_FORCE, WITH_FORCE)
    )
    assert (action in allowed_requests(phase)) is accepted


@pytest.mark.parametrize(
    ("phase", "facts", "action", "dest"),
    [
        pytest.param(P.Stopped, WORLD[P.Stopped], "start", P.Starting, id="start-by-name"),
        pytest.param(None, Facts(spec_valid=False), R.stop, P.Pending, id="stop-without-phase"),
        pytest.param("", Facts(spec_valid=False), "", P.Pending, id="empty-request-is-none"),
    ],
)
def test_requests_and_phases_are_read_from_plain_strings(
    phase: Phase | str | None, facts: Facts, action: Request | str, dest: Phase
) -> None:
    step = decide(phase, facts, action)

    assert step.refused is None
    assert step.phase is dest


def test_an_unknown_action_is_refused_and_names_the_known_ones() -> None:
    step = decide(P.Running, WORLD[P.Running], "reboot")

    assert step.refused == (
        "cannot reboot: unknown action (expected one of start, stop, restart, suspend, resume)"
    )
    assert step.phase is P.Running


@pytest.mark.parametrize(
    "action", [pytest.param(r, id=f"{r}-while-being-deleted") for r in Request]
)
def test_no_request_is_honoured_once_the_wukong_is_being_deleted(action: Request) -> None:
    # deletionTimestamp is set but status.phase still says Running: deletion wins.
    step = decide(P.Running, WORLD[P.Deleting], action, force=True)

    assert step.refused == f"cannot {action.value}: {DELETED}"
    assert step.effects == ()
    assert step.phase is P.Deleting


@pytest.mark.parametrize(
    ("phase", "action", "force"),
    [
        pytest.param(P.Deleting, r, force, id=f"{'force-' if force else ''}{r}-while-Deleting")
        for r in Request
        for force in (False, True)
    ],
)
def test_deleting_is_absorbing(phase: Phase, action: Request, force: bool) -> None:
    # Even a world where the deletion looks cancelled does not leave Deleting.
    for facts in (WORLD[P.Deleting], Facts(), WORLD[P.Running]):
        step = decide(phase, facts, action, force=force)
        assert step.phase is P.Deleting
        assert step.hops == ()


KUBEVIRT_PAUSED = replace(UP, vmi_ready=False, vmi_paused_otherwise=True)


@pytest.mark.parametrize("action", [R.suspend, R.resume])
def test_a_guest_kubevirt_paused_itself_is_neither_suspended_nor_resumed_by_a_request(
    action: Request,
) -> None:
    """QEMU paused the guest on a disk I/O error (or a migration did): a suspend once took that
    pause for its own call, never made the call, and stayed Suspending for good."""
    step = decide(P.Running, KUBEVIRT_PAUSED, action)
    assert (step.phase, step.effects) == (P.Running, ())
    assert step.refused is not None
    assert step.refused.startswith(f"cannot {action.value}: ")
    assert "KubeVirt paused it itself" in step.refused or "KubeVirt has paused" in step.refused
