"""start/stop/restart/suspend/resume: write a fresh request, then read the operator's answer.

A request is `spec.lifecycleAction` with a new `requestedAt`, so repeating an action is a new
request (docs/decisions.md). The operator answers in `status.lifecycleState`, naming the
request by its fingerprint and the generation that carried it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from wukong.api import names
from wukong.api.conditions import READY
from wukong.api.contract import ANSWERED_APART, request_id
from wukong.api.objects import being_deleted
from wukong.api.spec import Action, LifecycleAction
from wukong.console.errors import CliError
from wukong.console.invocation import typed
from wukong.console.render import age
from wukong.console.status import condition, primary_ip, running_where, vmi_runs
from wukong.console.status import phase as status_phase

JsonObj = dict[str, Any]
# Where each action leaves the Wukong when it is done.
SETTLES_IN: Final = {
    Action.START: "Running",
    Action.RESTART: "Running",
    Action.RESUME: "Running",
    Action.STOP: "Stopped",
    Action.SUSPEND: "Suspended",
}


@dataclass(frozen=True)
class Request:
    """One lifecycle request as the CLI writes it."""

    action: Action
    force: bool = False
    grace_period: int | None = None
    requested_at: str = ""
    snapshot_name: str | None = None

    @classmethod
    def now(
        cls,
        action: Action,
        now: datetime,
        *,
        force: bool = False,
        grace_period: int | None = None,
        snapshot_name: str | None = None,
    ) -> Request:
        """A request stamped with `now` to the microsecond, so it is always a new one."""
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return cls(action, force, grace_period, stamp, snapshot_name)

    def patch(self) -> JsonObj:
        """The merge patch; every field is written (null clears) so nothing stale survives."""
        body = {
            "action": self.action.value,
            "force": self.force,
            "gracePeriodSeconds": self.grace_period,
            "snapshotName": self.snapshot_name,
            "requestedAt": self.requested_at,
        }
        return {"spec": {"lifecycleAction": body}}

    @property
    def fingerprint(self) -> str:
        """The id the operator records in lifecycleState.requestId for this request."""
        model = LifecycleAction(
            action=self.action,
            force=self.force,
            grace_period_seconds=self.grace_period,
            snapshot_name=self.snapshot_name,
            requested_at=self.requested_at,
        )
        return request_id(model)


@dataclass(frozen=True)
class Outcome:
    """How a request ended: ok or not, and what to tell the user."""

    ok: bool
    message: str
    awaiting_address: bool = False
    """It runs, but the status has no IP yet: a wait follows it a few seconds more for one."""
    lead: str = ""
    """What the message says before where it runs (a restore's answer), kept when that
    part is said again with the address."""


def answers(life: JsonObj, request: Request, generation: int) -> bool:
    """Whether this lifecycleState is the answer to our request."""
    return life.get("requestId") == request.fingerprint or life.get("generation") == generation


def outcome(cr: JsonObj | None, request: Request, generation: int) -> Outcome | None:
    """The request's end as the Wukong shows it; None while it is still under way."""
    if cr is None:
        return Outcome(False, "the Wukong was deleted")
    name = cr["metadata"]["name"]
    status = cr.get("status") or {}
    life = status.get("lifecycleState") or {}
    if being_deleted(cr):
        return Outcome(False, f"{name} is being deleted")
    if request.action is Action.MIGRATE:
        return migration_outcome(name, status.get("migration") or {}, request)
    if request.action in APART:
        answer = status.get(APART[request.action]) or {}
        done = apart_outcome(answer, request)
        if done is not None and done.ok and answer.get("startAfter"):
            return started_again(cr, done)
        return done
    if not answers(life, request, generation):
        return None
    state, message = life.get("state"), life.get("message") or ""
    verb = request.action.value
    if state == "Refused":
        return Outcome(False, f"{verb} refused: {message}")
    if state == "Failed":
        return Outcome(False, f"{verb} failed: {message}")
    phase = status.get("phase")
    if phase == "Error":
        return in_error(cr, message)
    if state != "Done":
        return None
    wanted = SETTLES_IN[request.action]
    if phase != wanted:
        return Outcome(False, f"{verb} done but {name} is {phase}, not {wanted}")
    return running(cr) if wanted == "Running" else Outcome(True, f"{name} is {wanted}")


def started_again(cr: JsonObj, restored: Outcome) -> Outcome | None:
    """A restore of a running VM ends when the operator's start after it does: Running (or
    refused, or in Error); at once when nothing starts it (a request came meanwhile: the
    restore's message says the VM stays stopped)."""
    status = cr.get("status") or {}
    life = status.get("lifecycleState") or {}
    if life.get("lastAction") != "start":
        return restored
    state, message = life.get("state"), life.get("message") or ""
    if state in ("Refused", "Failed"):
        return Outcome(False, f"{restored.message}, but the start was {state.lower()}: {message}")
    if status.get("phase") == "Error":
        return in_error(cr, message)
    if state != "Done" or status.get("phase") != "Running":
        return None
    lead = f"{restored.message}; "
    waits = primary_ip(cr) is None
    return Outcome(True, lead + running_where(cr), awaiting_address=waits, lead=lead)


def running(cr: JsonObj) -> Outcome:
    """A wait that ends Running: where it runs (node, IP), as far as the status says."""
    return Outcome(True, running_where(cr), awaiting_address=primary_ip(cr) is None)


def in_error(cr: JsonObj, otherwise: str) -> Outcome:
    """A Wukong in phase Error: Ready's message says why (`otherwise` when it says nothing)."""
    why = condition(cr, READY).get("message") or otherwise
    return Outcome(False, f"{cr['metadata']['name']} is in Error: {why}")


def acknowledgement(cr: JsonObj | None, request: Request, generation: int) -> Outcome | None:
    """The operator's first word on the request, which a command without --wait reports:
    refused or failed (not ok), or taken (ok: Accepted, Issued, Waiting or already Done, in
    the operator's words); None while it has said nothing."""
    if cr is None or being_deleted(cr):
        return outcome(cr, request, generation)
    status = cr.get("status") or {}
    if request.action.value in ANSWERED_APART:
        answer = status.get(ANSWERED_APART[request.action.value]) or {}
        if (beside := refused_beside(answer, request)) is not None:
            return beside
        if answer.get("requestId") != request.fingerprint:
            return None
        if answer.get("result") in ("Refused", "Failed"):
            return outcome(cr, request, generation)
        return Outcome(True, str(answer.get("message") or answer.get("phase") or ""))
    life = status.get("lifecycleState") or {}
    if not answers(life, request, generation) or not life.get("state"):
        return None
    state, message = str(life["state"]), str(life.get("message") or "")
    if state in ("Refused", "Failed"):
        return outcome(cr, request, generation)
    # "start accepted" (the Accepted message) says nothing the state does not.
    said = message and message != f"{request.action.value} {state.lower()}"
    return Outcome(True, f"{state}: {message}" if said else state)


def migration_outcome(name: str, migration: JsonObj, request: Request) -> Outcome | None:
    """A migrate request's end, from status.migration (the operator answers it there)."""
    if (beside := refused_beside(migration, request)) is not None:
        return beside
    if migration.get("requestId") != request.fingerprint:
        return None
    result, message = migration.get("result"), migration.get("message") or ""
    if result == "Refused":
        return Outcome(False, f"migrate refused: {migration.get('refusal') or message}")
    if result == "Failed":
        return Outcome(False, f"migrate failed: {message}")
    if result == "Succeeded":
        source, target = migration.get("sourceNode"), migration.get("targetNode")
        return Outcome(True, f"{name} migrated from {source} to {target}")
    return None


# Requests answered in a status field of their own besides migrate (whose end names the
# nodes: `migration_outcome`).
APART: Final = {Action(a): f for a, f in ANSWERED_APART.items() if a != Action.MIGRATE}


def apart_outcome(answer: JsonObj, request: Request) -> Outcome | None:
    """A snapshot or restore request's end, from its status field (status.snapshot,
    status.restore). A snapshot ready without some volumes' data (`leftOut`) is said, and is
    not a success to a script."""
    if (beside := refused_beside(answer, request)) is not None:
        return beside
    if answer.get("requestId") != request.fingerprint:
        return None
    verb = request.action.value
    result, message = answer.get("result"), str(answer.get("message") or "")
    if result == "Refused":
        return Outcome(False, f"{verb} refused: {answer.get('refusal') or message}")
    if result == "Failed":
        return Outcome(False, f"{verb} failed: {message}")
    if result == "Succeeded":
        return Outcome(not answer.get("leftOut"), message)
    return None


def refused_beside(answer: JsonObj, request: Request) -> Outcome | None:
    """The request was refused while an earlier one ran (`refusedRequestId`: requestId
    stays that one's, for whoever waits for it)."""
    if answer.get("refusedRequestId") != request.fingerprint:
        return None
    return Outcome(False, f"{request.action.value} refused: {answer.get('refusal')}")


def migration_to_cancel(cr: JsonObj) -> JsonObj:
    """`migrate-cancel`: the migration in flight (status.migration, not ended), or a
    CliError saying there is none to cancel."""
    name = cr["metadata"]["name"]
    migration: JsonObj = (cr.get("status") or {}).get("migration") or {}
    if not migration.get("name") or migration.get("result"):
        last = (
            f" (the last, {migration['name']}, {migration['result']})"
            if migration.get("result") and migration.get("name")
            else ""
        )
        raise CliError(f"no migration of {name} is running{last}")
    return migration


def cancel_outcome(name: str, migration: str, cr: JsonObj | None) -> Outcome | None:
    """How a cancelled migration ended, from status.migration: the abort took (the VM stays
    where it was), or it finished first (the VM moved). None while it runs."""
    if cr is None:
        return Outcome(False, f"{name} was deleted")
    status = (cr.get("status") or {}).get("migration") or {}
    if status.get("name") != migration or not status.get("result"):
        return None
    if status["result"] == "Succeeded":
        return Outcome(
            False,
            f"migration {migration} finished before it could be cancelled: {name} "
            f"moved from {status.get('sourceNode')} to {status.get('targetNode')}",
        )
    return Outcome(
        True, f"migration {migration} cancelled: {name} stays on {status.get('sourceNode')}"
    )


# Phases in which `soft-reboot` asks the VMI whether the guest runs: the Wukong's phase
# says it does (Running), cannot (Suspended: paused), or must not be (Stopping) otherwise.
ASK_THE_VMI: Final = frozenset({"Running", "Suspended", "Stopping"})


def soft_reboot_refusal(cr: JsonObj, vmi: JsonObj | None = None) -> str | None:
    """Why `soft-reboot` cannot go ahead (None: it can). A soft reboot is the guest's own
    reboot in its pod, so only a running, unpaused guest can take it; virt-api refuses the
    rest too, but in the VMI's words, not the Wukong's. `vmi`: the Wukong's VMI, read for a
    phase not in ASK_THE_VMI: one that runs takes it whatever the Wukong's phase (in Error
    for a disk that failed to import, as virt-api would), unless it is being shut down (a
    reboot would race the stop: refused, as for a Wukong Stopping)."""
    name, namespace = cr["metadata"]["name"], cr["metadata"]["namespace"]
    phase = status_phase(cr)
    if being_deleted(cr):
        return f"{name} is being deleted"
    if phase == "Running":
        return None
    if phase == "Suspended":
        return (
            f"{name} is Suspended: a paused guest cannot reboot "
            f"({typed(f'resume {name}', namespace)} first)"
        )
    if phase == "Stopping" or (vmi_runs(vmi) and being_deleted(vmi)):
        return f"{name} is shutting down ({phase}): a reboot in place would race its stop"
    if vmi_runs(vmi):
        return None
    if phase == "Stopped":
        return f"{name} is Stopped, not Running: start it ({typed(f'start {name}', namespace)})"
    return f"{name} is {phase}, not Running: only a running guest can reboot in place"


def snapshot_choices(name: str, namespace: str, snapshots: Sequence[JsonObj], now: datetime) -> str:
    """What `restore` without --snapshot-name says: the Wukong's snapshots, newest first,
    as `--snapshot-name` takes them ("before-upgrade (ready, 2h ago)"), or how to take one."""
    vm = names.vm_name(name)
    mine = [s for s in snapshots if ((s.get("spec") or {}).get("source") or {}).get("name") == vm]
    if not mine:
        return (
            f"restore needs --snapshot-name: {name} has no snapshot to restore "
            f"({typed(f'snapshot {name}', namespace)} takes one)"
        )
    mine.sort(key=lambda s: str(s["metadata"].get("creationTimestamp") or ""), reverse=True)
    listed = []
    for shot in mine:
        status = shot.get("status") or {}
        state = "ready" if status.get("readyToUse") else str(status.get("phase") or "InProgress")
        when = age(shot["metadata"].get("creationTimestamp"), now)
        listed.append(f"{shot['metadata']['name']} ({state}, {when} ago)")
    return f"restore needs --snapshot-name; snapshots of {name}: " + ", ".join(listed)
