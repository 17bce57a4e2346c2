"""Lifecycle requests (SPEC §4): accept or refuse, then call KubeVirt exactly once.

A request is identified by its content (action, force, grace period, requestedAt); it runs
once, when that identity differs from the one `status.lifecycleState` last answered, so an
unrelated spec edit never repeats a restart. Exactly once across operator crashes takes two
steps: the pass that accepts a request only records it (`issued: false`); the next pass
makes the KubeVirt call unless the cluster already shows its effect (the call went out
before a crash), then marks it issued.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from wukong.api import names
from wukong.api.v1alpha1 import LifecycleAction, Wukong
from wukong.fsm.facts import Facts
from wukong.fsm.machine import Effect, Phase, Step, decide
from wukong.reconcile.actions import Action, Emit, PatchChild, VmCall
from wukong.reconcile.observed import JsonObj, Observed
from wukong.reconcile.timefmt import iso, parse_time

DEFAULT_GRACE = 30
RUNNING_ACTIONS = {"start", "restart", "resume", "suspend"}
# Before the VM exists (docs/decisions.md, "Lifecycle requests at creation"): start and stop
# are answered by creating the VM running or stopped; restart and resume have nothing to act
# on and are done; suspend waits until the VM runs, then runs like any suspend.
NOT_CREATED = (Phase.Pending, Phase.Creating)
DONE_AT_CREATION = {
    "restart": "restart: nothing to restart, the VM is being created and boots fresh",
    "resume": "resume: nothing is suspended, the VM is being created",
}
WAIT_FOR_RUNNING = "suspend waits until the VM runs: it is still being created or starting"
# The VM is still on its way: a start, stop or suspend that waits for it is not done yet.
IN_PROGRESS = (
    Phase.Pending,
    Phase.Creating,
    Phase.Stopping,
    Phase.Restarting,
    Phase.Suspending,
    Phase.Resuming,
    Phase.Starting,
)


@dataclass(frozen=True)
class LifecyclePlan:
    """The FSM's step plus the calls and the new lifecycleState."""

    step: Step
    actions: tuple[Action, ...]
    state: JsonObj
    requeue_after: float | None = None


def request_id(action: Any) -> str:
    """A short fingerprint of a lifecycleAction: the same request is never run twice."""
    body = action.model_dump(mode="json", by_alias=True, exclude_none=True)
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def want_running(cr: Wukong, last_action: str | None) -> bool:
    """The run state the user asked for: the last accepted request wins over the spec."""
    if last_action == "stop":
        return False
    if last_action in RUNNING_ACTIONS:
        return True
    return cr.spec.start_strategy.auto_start and cr.spec.run_strategy.value != "Halted"


def desired_run_strategy(cr: Wukong, running: bool) -> str:
    """The VM runStrategy that keeps it in the wanted state without restarting it behind
    the user's back: a stopped VM is Halted unless Manual already keeps it down."""
    strategy = cr.spec.run_strategy.value
    if running:
        return "Always" if strategy == "Halted" else strategy
    return "Manual" if strategy == "Manual" else "Halted"


def _state_change_requests(seen: Observed) -> list[str]:
    requests = (seen.vm or {}).get("status", {}).get("stateChangeRequests") or []
    return [str(r.get("action")) for r in requests]


def _vmi_uid(seen: Observed) -> str | None:
    return None if seen.vmi is None else seen.vmi.get("metadata", {}).get("uid")


def call_landed(action: str, state: JsonObj, seen: Observed) -> bool:
    """Whether the cluster already shows the effect of `action` (so it was called)."""
    vm = seen.vm or {}
    strategy = vm.get("spec", {}).get("runStrategy")
    pending = _state_change_requests(seen)
    vmi_terminating = bool((seen.vmi or {}).get("metadata", {}).get("deletionTimestamp"))
    if action == "start":
        return strategy not in (None, "Halted") and ("Start" in pending or seen.vmi is not None)
    if action == "stop":
        return strategy == "Halted" or "Stop" in pending or seen.vmi is None or vmi_terminating
    if action == "restart":
        return bool(pending) or vmi_terminating or _vmi_uid(seen) != state.get("vmiUid")
    if action == "suspend":
        return seen.vmi_condition("Paused")
    if action == "resume":
        return not seen.vmi_condition("Paused")
    return True


AUTO_START = "autoStart"


def auto_start(cr: Wukong, seen: Observed) -> JsonObj:
    """`runStrategy: Manual` with `startStrategy.autoStart: true`: KubeVirt never starts a
    Manual VM by itself, so the operator starts it once, when the VM is new, as if the user
    had asked (recorded, then called: exactly once across crashes). Never again afterwards:
    a Manual VM the guest shut down stays down (issue 15). {} when there is nothing to do."""
    if cr.spec.run_strategy.value != "Manual" or not cr.spec.start_strategy.auto_start:
        return {}
    if seen.vm is None or seen.vmi is not None or cr.spec.lifecycle_action is not None:
        return {}
    return {
        "state": "Accepted",
        "lastAction": "start",
        "requestId": AUTO_START,
        "lastActionTime": iso(seen.now),
        "generation": cr.metadata.generation,
        "issued": False,
        "force": False,
        "message": "start accepted: startStrategy.autoStart with runStrategy Manual",
    }


def _call(action: str, vm: str, force: bool, grace: int | None) -> VmCall:
    if action == "start":
        return VmCall("start", vm)
    if action == "stop":
        return VmCall("stop", vm, grace_period=0 if force else grace, force=force)
    if action == "restart":
        return VmCall("restart", vm, force=force)
    return VmCall("pause" if action == "suspend" else "unpause", vm)


def facts_for(
    cr: Wukong,
    seen: Observed,
    state: JsonObj,
    *,
    valid: bool,
    ready: bool,
    failed: bool,
    now: datetime,
) -> Facts:
    """What the FSM's guards read, from the cluster and the recorded request."""
    vmi = seen.vmi
    deadline = parse_time(state.get("deadline"))
    return Facts(
        deleting=cr.metadata.deletion_timestamp is not None,
        spec_valid=valid,
        children_ready=ready,
        provisioning_failed=failed,
        vm_exists=seen.vm is not None,
        want_running=want_running(cr, state.get("lastAction")),
        run_strategy=(seen.vm or {}).get("spec", {}).get("runStrategy"),
        vmi_exists=vmi is not None,
        vmi_phase=seen.vmi_phase,
        vmi_ready=seen.vmi_condition("Ready"),
        vmi_paused=seen.vmi_condition("Paused"),
        vmi_restarted=vmi is not None
        and state.get("vmiUid") is not None
        and _vmi_uid(seen) != state.get("vmiUid"),
        stop_deadline_passed=deadline is not None and now >= deadline,
        force_issued=bool(state.get("escalated")) or bool(state.get("force")),
    )


def plan_lifecycle(
    cr: Wukong, seen: Observed, status: JsonObj, *, valid: bool, ready: bool, failed: bool
) -> LifecyclePlan:
    """Feed the FSM; turn its decision into calls and the new lifecycleState."""
    now = seen.now
    vm = names.vm_name(cr.metadata.name)
    state: JsonObj = dict(status.get("lifecycleState") or {})
    started = {} if state else auto_start(cr, seen)
    state = state or started
    action = cr.spec.lifecycle_action
    new_request = action is not None and request_id(action) != state.get("requestId")
    recorded = {"vmiUid": _vmi_uid(seen)} if new_request else state
    facts = facts_for(cr, seen, recorded, valid=valid, ready=ready, failed=failed, now=now)
    step = decide(
        status.get("phase"),
        facts,
        action.action.value if new_request and action else None,
        force=bool(action and action.force),
    )
    actions: list[Action] = []
    requeue: float | None = None
    if new_request and action is not None and step.refused:
        early = _at_creation(cr, action, step, state)
        if early is not None:
            return early
    if new_request and action is not None:
        state["requestId"] = request_id(action)
        state["generation"] = cr.metadata.generation
        if step.refused:
            state |= {"state": "Refused", "message": step.refused}
            actions.append(Emit("Warning", "RequestRefused", step.refused))
        else:
            grace = action.grace_period_seconds
            state = {
                "state": "Accepted",
                "lastAction": action.action.value,
                "requestId": state["requestId"],
                "lastActionTime": iso(now),
                "generation": cr.metadata.generation,
                "issued": False,
                "force": action.force,
                "vmiUid": _vmi_uid(seen),
                "message": f"{action.action.value} accepted",
            }
            # KubeVirt's restart takes no grace period (the VMI's own applies): a restart
            # gets a deadline of ours only when the user asked for one.
            timed = action.action.value == "stop" or grace is not None
            if action.action.value in ("stop", "restart") and not action.force and timed:
                seconds = grace if grace is not None else DEFAULT_GRACE
                state["deadline"] = iso(now + timedelta(seconds=seconds))
                state["gracePeriodSeconds"] = seconds
            verb = action.action.value
            if step.previous in NOT_CREATED and (verb == "stop" or _starts_by_itself(cr)):
                # Creating the VM in the wanted run state is the whole answer: no KubeVirt call
                # (a start on a VM whose runStrategy runs it anyway is refused with a 409).
                how = "running" if verb == "start" else "stopped"
                state |= {"issued": True, "state": "Issued", "message": f"the VM is created {how}"}
            actions.append(Emit("Normal", "RequestAccepted", f"{action.action.value} accepted"))
        return LifecyclePlan(step, tuple(actions), state, requeue_after=None)
    if started:  # recorded in this pass, called in the next: exactly once, like a request
        return LifecyclePlan(step, (), state)
    calling = False
    if state.get("issued") is False and state.get("lastAction") and seen.vm is not None:
        last = str(state["lastAction"])
        if not call_landed(last, state, seen):
            calling = True
            actions.append(
                _call(last, vm, bool(state.get("force")), state.get("gracePeriodSeconds"))
            )
        state |= {"issued": True, "state": "Issued", "message": f"{last} sent to KubeVirt"}
    if Effect.FORCE_STOP_VM in step.effects or Effect.FORCE_RESTART_VM in step.effects:
        verb = "restart" if Effect.FORCE_RESTART_VM in step.effects else "stop"
        actions.append(VmCall(verb, vm, grace_period=0, force=True))  # type: ignore[arg-type]
        state |= {"escalated": True, "message": f"grace period over: forced {verb}"}
        actions.append(
            Emit(
                "Warning",
                "GracePeriodExpired",
                f"the guest did not shut down in time: forcing {verb}",
            )
        )
    deadline = parse_time(state.get("deadline"))
    if deadline and step.phase in (Phase.Stopping, Phase.Restarting) and not state.get("escalated"):
        requeue = max((deadline - now).total_seconds(), 0.0) + 0.05
        state["message"] = f"waiting for the guest to shut down until {iso(deadline)}"
    if step.phase not in IN_PROGRESS and state.get("state") in ("Issued", "Accepted"):
        if state.get("issued"):
            state |= {"state": "Done", "message": f"{state.get('lastAction')} done: {step.phase}"}
            state.pop("deadline", None)
    if not calling and _first_manual_start(cr, seen, step, state):
        calling = True
        actions.append(VmCall("start", vm))
    if not calling:  # the call itself moves runStrategy: align it on a later pass
        actions += _run_strategy(cr, seen, state)
    return LifecyclePlan(step, tuple(actions), state, requeue_after=requeue)


def _first_manual_start(cr: Wukong, seen: Observed, step: Step, state: JsonObj) -> bool:
    """autoStart under runStrategy Manual: KubeVirt creates the VM stopped and starts it only
    when asked, so the operator asks once, while the new VM has never run (else the Wukong
    would wait in Starting for a VMI that never comes)."""
    return (
        seen.vm is not None
        and seen.vmi is None
        and seen.vm.get("spec", {}).get("runStrategy") == "Manual"
        and step.previous in (Phase.Creating, Phase.Starting)
        and step.phase is Phase.Starting
        and not state.get("lastAction")
        and "Start" not in _state_change_requests(seen)
    )


def _starts_by_itself(cr: Wukong) -> bool:
    """The VM's runStrategy starts it without a start call (Manual needs one)."""
    return desired_run_strategy(cr, True) in ("Always", "RerunOnFailure")


def _at_creation(
    cr: Wukong, action: LifecycleAction, step: Step, state: JsonObj
) -> LifecyclePlan | None:
    """The answer to a request the state machine refused only because the VM does not exist
    (or run) yet; None when the refusal stands."""
    verb = action.action.value
    if step.previous in NOT_CREATED and verb in DONE_AT_CREATION:
        message = DONE_AT_CREATION[verb]
        done: JsonObj = {
            "state": "Done",
            "requestId": request_id(action),
            "generation": cr.metadata.generation,
            "message": message,
        }
        return LifecyclePlan(step, (Emit("Normal", "RequestDone", message),), done)
    waiting = state.get("state") == "Waiting" and step.previous is Phase.Starting
    if verb == "suspend" and (step.previous in NOT_CREATED or waiting):
        # The request id is not recorded: each pass asks the state machine again, and once
        # the VM runs the suspend is accepted and runs like any other.
        held: JsonObj = {
            "state": "Waiting",
            "generation": cr.metadata.generation,
            "message": WAIT_FOR_RUNNING,
        }
        first = state.get("state") != "Waiting"
        events = (Emit("Normal", "RequestWaiting", WAIT_FOR_RUNNING),) if first else ()
        return LifecyclePlan(step, events, held)
    return None


def _run_strategy(cr: Wukong, seen: Observed, state: JsonObj) -> list[Action]:
    """Bring the VM's runStrategy back to what the user wants once no call is in flight
    (KubeVirt's start turns Halted into Always; a Manual or RerunOnFailure user wants theirs)."""
    if seen.vm is None or state.get("issued") is False:
        return []
    current = seen.vm.get("spec", {}).get("runStrategy")
    wanted = desired_run_strategy(cr, want_running(cr, state.get("lastAction")))
    if current == wanted:
        return []
    return [
        PatchChild(
            "VirtualMachine",
            names.vm_name(cr.metadata.name),
            {"spec": {"runStrategy": wanted}},
            "run strategy",
        )
    ]
