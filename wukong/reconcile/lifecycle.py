"""Lifecycle requests (SPEC §4): accept or refuse, then call KubeVirt exactly once.

A request is identified by its content (action, force, grace period, requestedAt); it runs
once, when that identity differs from the one `status.lifecycleState` last answered, so an
unrelated spec edit never repeats a restart. Exactly once across operator crashes takes two
steps: the pass that accepts a request only records it with the call the state machine
asked for (`call`, `issued: false`); the next pass makes that call unless the cluster
already shows its effect (the call went out before a crash), then marks it issued. The
answer moves only along `wukong.fsm.requests.PROTOCOL`; every KubeVirt call of a lifecycle
hop is an `Effect` of the state machine, made through `CALLS`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from wukong.api import names
from wukong.api.objects import being_deleted
from wukong.api.status import LifecycleState, WukongStatus
from wukong.api.v1alpha1 import LifecycleAction, Wukong
from wukong.fsm.facts import Facts
from wukong.fsm.machine import Effect, Phase, Step, decide
from wukong.fsm.requests import ISSUED, Answer, Happened, answer
from wukong.reconcile.actions import Action, Emit, PatchChild, VmCall, uid_of
from wukong.reconcile.observed import Observed
from wukong.reconcile.timefmt import iso

DEFAULT_GRACE = 30
# KubeVirt's v1.DefaultGracePeriodSeconds (a VMI without terminationGracePeriodSeconds),
# and the 15 s padding it adds for virt-launcher's own grace period (template.go
# gracePeriodSeconds, passed as --grace-period-seconds): the launcher kills the guest that
# long after its pod is deleted. The pod's grace period has a second 15 s padding
# (gracePeriodKillAfter), for the kubelet: the guest is gone by then.
KUBEVIRT_GRACE = 30
LAUNCHER_PADDING = 15
# A grace period the launcher would cut short ends this long before: the operator's forced
# stop (grace 0) powers the guest off, instead of virt-launcher destroying it (a VMI with
# ACPI and a grace period destroyed ends Failed: virt-handler's
# calculateVmPhaseForStatusReason).
BEFORE_LAUNCHER_KILLS = 5
AUTO_START = "autoStart"  # lifecycleState.requestId of the start autoStart makes under Manual
RUNNING_ACTIONS = {"start", "restart", "resume", "suspend"}
PAUSE_VERBS = ("suspend", "resume")  # each undoes the other's call
# The VM's printableStatus while its VMI goes or once it is gone and nothing starts it
# (virt-controller's setPrintableStatus: Stopping while the VMI goes, Stopped once gone;
# Terminating is the VM itself being deleted, which takes its VMI too).
STOPPING_STATUSES = frozenset({"Terminating", "Stopping", "Stopped"})
PAUSE_REPORT_WINDOW = 10.0  # seconds a pause or unpause made may take to show in the VMI
# A request held until the pass after the one that settles the record, which then follows
# at once; while the effect shows but the record is not settled yet (a resume's phase waits
# for the VMI's Ready too, whose update wakes the pass), look again this much later.
SETTLE_PASS = 1.0
# Before the VM exists (docs/decisions.md, "Lifecycle requests at creation"): start and stop
# are answered by creating the VM running or stopped; restart and resume have nothing to act
# on and are done; suspend waits until the VM runs, then runs like any suspend.
NOT_CREATED = (Phase.Pending, Phase.Creating)
DONE_AT_CREATION = {
    "restart": "restart: nothing to restart, the VM is being created and boots fresh",
    "resume": "resume: nothing is suspended, the VM is being created",
}
WAIT_FOR_RUNNING = "suspend waits until the VM runs: it is still being created or starting"
# Phases in which a request is still on its way (a start, stop or suspend waiting for the VM
# too); outside them an issued request is done.
IN_FLIGHT = (Answer.Accepted, Answer.Issued)  # a request whose call is to make or under way
STARTS = ("start", "restart")  # the requests that boot a new guest (and plug in its networks)
VM_DELETED = "VMDeleted"  # the hop of a VM deleted outside Wukong (fsm/table.py)
# The hop of a restart whose guest someone stopped for good (`virtctl stop` under Manual).
STOPPED_OUTSIDE = "VMStoppedOutside"
IN_FLIGHT_PHASES = (
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
    state: LifecycleState | None
    requeue_after: float | None = None


def request_id(action: Any) -> str:
    """A short fingerprint of a lifecycleAction: the same request is never run twice."""
    body = action.model_dump(mode="json", by_alias=True, exclude_none=True)
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def want_running(cr: Wukong, last_action: str | None, *, refused: bool = False) -> bool:
    """The run state the user asked for: the last accepted request wins over the spec.
    `refused`: KubeVirt refused that request's call (lifecycleState Failed), so the VM stays
    as it was: stopped after a start (taken only from Stopped), running after a stop."""
    if refused and last_action in ("start", "stop"):
        return last_action == "stop"
    if last_action == "stop":
        return False
    if last_action in RUNNING_ACTIONS:
        return True
    return cr.spec.start_strategy.auto_start and cr.spec.run_strategy.value != "Halted"


def runs_wanted(cr: Wukong, state: LifecycleState | None) -> bool:
    """`want_running` for the request `state` answers."""
    state = state or LifecycleState()
    return want_running(cr, state.last_action, refused=state.state == Answer.Failed)


def desired_run_strategy(cr: Wukong, running: bool) -> str:
    """The VM runStrategy that keeps it in the wanted state without restarting it behind
    the user's back: a stopped VM is Halted unless Manual already keeps it down."""
    strategy = cr.spec.run_strategy.value
    if running:
        return "Always" if strategy == "Halted" else strategy
    return "Manual" if strategy == "Manual" else "Halted"


def _vmi_uid(seen: Observed) -> str | None:
    return None if seen.vmi is None else seen.vmi.get("metadata", {}).get("uid")


def call_landed(action: str, state: LifecycleState, seen: Observed) -> bool:
    """Whether the cluster already shows the effect of `action` (so it was called)."""
    strategy = seen.run_strategy
    pending = seen.pending_requests
    vmi_terminating = being_deleted(seen.vmi)
    if action == "start":
        # Only a VMI the start made: the stopped one can linger a moment after the VM is
        # reported Stopped (it is the one recorded at acceptance), and under Manual the
        # runStrategy does not move.
        started = seen.vmi is not None and _vmi_uid(seen) != state.vmi_uid and not vmi_terminating
        return strategy not in (None, "Halted") and ("Start" in pending or started)
    printable = ((seen.vm or {}).get("status") or {}).get("printableStatus")
    if action == "stop":
        if state.force:  # a graceful stop's Halted or Stop must not pass for the forced one
            # No VMI, or one that ended, only where KubeVirt says the VM stops: as below, a
            # restart's old VMI gone from the VMI cache beside a VM that shows the new one
            # passed for this stop, never made (seed 542946708: Stopping for good).
            off = seen.vmi is None or seen.vmi_ended
            return (off and printable in STOPPING_STATUSES) or grace_cut(seen)
        if "Start" in pending:
            # A restart's (Stop, Start) is under way: its VMI goes, then a new one comes. That
            # is not our stop; calling it replaces KubeVirt's pending requests with a Stop.
            return False
        # A VMI going or gone is a stop only where KubeVirt says the VM stops: the VM and VMI
        # caches are separate watches, and a restart's old VMI still deleting (or already
        # gone) in the VMI cache, beside a VM that shows the new one and no request left,
        # passed for this stop, which was then never made (test_lifecycle_sequences, seed
        # 1019735738: restart, then stop 20 ms later, under Manual).
        going = (seen.vmi is None or vmi_terminating) and printable in STOPPING_STATUSES
        return strategy == "Halted" or "Stop" in pending or going or seen.vmi_ended
    if action == "restart":
        if state.force:  # pending requests may be a graceful restart's it is to force
            # Or KubeVirt's restart is past its stop: virt-controller trims the Stop only
            # once the old VMI is gone (isTrimFirstChangeRequestNeeded), which our VMI cache
            # may still show going. Nothing is left to force, and virt-api would answer 409
            # "VM is not running: Halted" (no VMI), a refusal of a restart that happens.
            past_stop = pending == ["Start"] and vmi_terminating
            return _forced_off(seen) or past_stop or _vmi_uid(seen) != state.vmi_uid
        return bool(pending) or vmi_terminating or _vmi_uid(seen) != state.vmi_uid
    # Only a pause for the user is a suspend's: KubeVirt pauses a guest on a disk error or for a
    # migration by itself, and taking that for the call made once left it never made.
    if action == "suspend":
        return seen.vmi_paused_by_user()
    if action == "resume":
        return not seen.vmi_paused_by_user()
    return True


def _same_guest(seen: Observed, state: LifecycleState) -> bool:
    """A refused start still speaks of this guest: no VMI, or the one recorded with the
    request (a VMI started since, by virtctl say, is not the refused start's). Any other
    refused call left a guest running, whichever VMI that is now."""
    if state.last_action != "start":
        return True
    return seen.vmi is None or _vmi_uid(seen) == state.vmi_uid


def _serving_restart(seen: Observed) -> bool:
    """KubeVirt is serving a restart: its Stop and Start requests are pending while the old
    VMI shuts down. virt-api takes no second restart, forced or not, until the new VMI
    exists: 500 "stop/start already underway" (lifecycle.go, getChangeRequestJson)."""
    pending = seen.pending_requests
    return pending[:1] == ["Stop"] and "Start" in pending and seen.vmi is not None


def launcher_kills_after(seen: Observed) -> int | None:
    """Seconds after a stop (or a restart) at which KubeVirt's virt-launcher kills the guest:
    virt-controller deletes the launcher pod as the VMI goes, and the launcher, on that
    SIGTERM, destroys the domain once its own grace period is over (monitor.go
    isGracePeriodExpired, finalShutdownCallback): the VMI's grace period when the pod was
    made (KubeVirt's default, 30 s, unless set) plus 15 s, whatever grace the stop asked for
    (virt-api patches the VMI's, which virt-handler follows, not the launcher's). The VMI's
    may have been patched by an earlier stop and the VM's template may have changed since
    the VMI started: the smaller of the two, never a later kill than the real one. None
    without a running guest."""
    if seen.vmi is None or seen.vmi_ended:
        return None
    template = (((seen.vm or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
    graces = [
        g
        for g in (
            (seen.vmi.get("spec") or {}).get("terminationGracePeriodSeconds"),
            template.get("terminationGracePeriodSeconds"),
        )
        if isinstance(g, int) and not isinstance(g, bool)
    ]
    return (min(graces) if graces else KUBEVIRT_GRACE) + LAUNCHER_PADDING


def within_launcher(seconds: int, seen: Observed) -> tuple[int, str]:
    """A stop's grace period, cut to end `BEFORE_LAUNCHER_KILLS` before virt-launcher would
    kill the guest (see `launcher_kills_after`), and the words saying why ("" when it fits)."""
    ends = launcher_kills_after(seen)
    if ends is None or seconds <= ends - BEFORE_LAUNCHER_KILLS:
        return seconds, ""
    cut = max(ends - BEFORE_LAUNCHER_KILLS, 0)
    return cut, cut_words(seconds, cut)


def cut_words(asked: int, cut: int) -> str:
    """Why a grace period of `asked` seconds became `cut` (`within_launcher`)."""
    ends = cut + BEFORE_LAUNCHER_KILLS
    return (
        f"grace period cut from {asked}s to {cut}s: KubeVirt's virt-launcher kills the guest "
        f"{ends}s after a stop (the VMI's grace period, {ends - LAUNCHER_PADDING}s, plus "
        f"KubeVirt's {LAUNCHER_PADDING}s)"
    )


def grace_cut(seen: Observed) -> bool:
    """A forced stop reached the VMI: virt-api cut its grace period to 0 before anything."""
    grace = ((seen.vmi or {}).get("spec") or {}).get("terminationGracePeriodSeconds")
    return grace == 0


def _forced_off(seen: Observed) -> bool:
    """A forced stop of a restart KubeVirt serves landed: the grace period cut, or Halted
    (which nothing else sets while a restart is served), or the VMI gone."""
    return seen.vmi is None or grace_cut(seen) or seen.run_strategy == "Halted"


def forcing(effect: Effect, seen: Observed) -> Effect:
    """The call that forces `effect` now. A restart KubeVirt is still serving cannot be
    forced by another restart (`_serving_restart`); a forced stop does it: virt-api cuts the
    old VMI's grace period to 0 at once.
    - Under Always it also sets Halted, and virt-controller, with the restart's Start still
      pending once that VMI is gone, sets Always back and starts the new one
      (watch/vm/vm.go, RunStrategyHalted).
    - Under Manual and RerunOnFailure the stop replaces the pending Start
      (getChangeRequestJson): the guest stays off, and the restart's start is a second call
      once the old VMI is gone (`_owes_start`)."""
    if effect is Effect.FORCE_RESTART_VM and _serving_restart(seen):
        if seen.run_strategy in ("Always", *STARTED_BY_CALL):
            return Effect.FORCE_STOP_VM
    return effect


def _forced(effect: Effect, seen: Observed) -> tuple[Effect, dict[str, object]]:
    """The call forcing `effect` now (`forcing`), and what the record keeps of it: a restart
    made as a forced stop records that stop, as the start it then owes is ours
    (`_owes_start`)."""
    call = forcing(effect, seen)
    return call, ({"call": call.value} if call is not effect else {})


STARTED_BY_CALL = ("Manual", "RerunOnFailure")
"""runStrategies under which a stopped VM runs again only on a start call."""


def _owes_start(state: LifecycleState, seen: Observed) -> bool:
    """A forced restart left the guest off and nothing will start it: it was made as a
    forced stop (`forcing`; recorded as `call: FORCE_STOP_VM`), which replaced KubeVirt's
    pending Start under Manual or RerunOnFailure, or it found no VMI to restart (Error). The
    old VMI is gone (or over) and KubeVirt has nothing pending. Only the recorded call tells
    this from virt-api's own forced restart, which KubeVirt starts again itself (its Start
    can leave the VM's cache before the new VMI shows in the VMI's). The record may also be
    a later request's refusal made while the restart ran: its call is still the restart's."""
    if not (
        state.last_action == "restart"
        and state.state in (Answer.Issued, Answer.Refused)
        and (state.force or state.escalated)
        and state.call == Effect.FORCE_STOP_VM.value
    ):
        return False
    old_over = seen.vmi is None or (_vmi_uid(seen) == state.vmi_uid and seen.vmi_ended)
    return seen.run_strategy in STARTED_BY_CALL and not seen.pending_requests and old_over


def start_beside_refusal(state: LifecycleState) -> bool:
    """A record that answers a request refused while a forced restart ran, and carries the
    start that restart owes (`_owes_start`): the refusal stays the answer, the start is made
    beside it (`issued` says whether it was). Found by test_lifecycle_sequences (seed
    3924625094, RerunOnFailure: a suspend refused while a restart ran read "restart done"
    under the suspend's id once the owed start had moved the record on)."""
    return (
        state.state == Answer.Refused
        and state.last_action == "restart"
        and state.call == Effect.START_VM.value
    )


def _call_to_make(state: LifecycleState) -> bool:
    """The record holds a call not made yet: a request's own (Accepted), or the start a
    forced restart owes beside a later refusal (`start_beside_refusal`, not `issued`)."""
    if state.state == Answer.Accepted:
        return True
    return start_beside_refusal(state) and state.issued is False


# The call an operator before issue 14 (0.1.0, a5667a9) made for a request, from what its
# record keeps (its `_call`): the verb's, forced when the record says `force`.
OLDER_CALLS = {
    "start": (Effect.START_VM, Effect.START_VM),
    "stop": (Effect.STOP_VM, Effect.FORCE_STOP_VM),
    "restart": (Effect.RESTART_VM, Effect.FORCE_RESTART_VM),
    "suspend": (Effect.PAUSE_VMI, Effect.PAUSE_VMI),
    "resume": (Effect.UNPAUSE_VMI, Effect.UNPAUSE_VMI),
}


def owed_by_older_operator(state: LifecycleState | None) -> LifecycleState | None:
    """A record an operator before issue 14 left with its call still to make, read as this
    operator records one (Accepted, with the call); any other record as it is.

    0.1.0 wrote no `call`: `issued: false` meant "call `lastAction` next pass", as Accepted
    when it had just taken the request, as Issued again once the call failed transiently.
    This operator never writes either shape: every Accepted record carries its call (the
    requests answered without one, a VM created running or stopped, are Issued in the pass
    that takes them; a VM deleted meanwhile, Done), and `issued` follows `state` (an Issued
    record is issued; a transient failure moves it back to Accepted). Read as "a recorded
    request with nothing to call", such a record was marked sent and never called (source
    audit, session 47). 0.1.0's forced escalation failed transiently is left as this
    operator leaves its own (`escalated` cleared): the state machine forces again once the
    deadline has passed. To be dropped once 0.1.0 is past its deprecation window
    (docs/decisions.md, "Reading what an older operator or CRD left")."""
    if (
        state is None
        or state.issued is not False
        or state.state not in (Answer.Accepted, Answer.Issued)
        or (state.state == Answer.Accepted and state.call)
    ):
        return state
    if state.state == Answer.Issued and state.escalated:
        return state.model_copy(update={"issued": True, "escalated": False})
    calls = OLDER_CALLS.get(state.last_action or "")
    if calls is None:
        return state
    call = state.call or calls[bool(state.force)].value
    return state.model_copy(update={"state": Answer.Accepted.value, "call": call})


def _left_off(seen: Observed, state: LifecycleState) -> bool:
    """The VM is off and stays off: KubeVirt reports it Stopped with nothing pending under a
    runStrategy that starts it only on a call, and no start of ours follows (`_owes_start`).
    virt-controller trims a restart's Start only once it sees the new VMI, and writes
    printableStatus from that VMI in the same update, so a restart KubeVirt still serves is
    never read as this, even from a VMI cache behind the VM's."""
    printable = ((seen.vm or {}).get("status") or {}).get("printableStatus")
    ours = state.call in (Effect.FORCE_STOP_VM.value, Effect.START_VM.value)
    off = seen.vmi is None or seen.vmi_ended
    return (
        printable == "Stopped"
        and seen.run_strategy in STARTED_BY_CALL
        and not seen.pending_requests
        and off
        and state.state != Answer.Accepted  # its call still to make
        and not (state.last_action == "restart" and ours)
    )


def _calling(state: LifecycleState) -> str | None:
    """The verb of the call a request makes next: its own, or the start a forced restart
    owes (`_owes_start`)."""
    return "start" if state.call == Effect.START_VM.value else state.last_action


def _kubevirt_busy(action: str | None, seen: Observed) -> bool:
    """A call KubeVirt would not take now, but will once what it has under way is done; the
    VM's events wake the pass that makes it.

    - A stop while a restart's Start is still pending would not stick: with no VMI, or one
      that has ended (Succeeded or Failed, virt-api's IsFinal), virt-api answers 409 "VM is
      not running"; under Always its stop only sets Halted, which virt-controller turns back
      to Always to serve the pending Start. The stop waits for the VMI that Start makes and
      stops that one. Under Manual and RerunOnFailure a VMI still running (if going) is
      stopped at once: virt-api replaces the pending requests with its Stop.
    - A start under Manual or RerunOnFailure while a stop is still pending: virt-api adds
      its Start only to an empty list, and answers 500 "stop/start already underway"
      (lifecycle.go, getChangeRequestJson). It waits for virt-controller to serve the Stop.
      (Under Halted virt-api moves runStrategy instead; a pending Start is the call landed.)
    - A resume while a snapshot holds the VM: virt-api answers 409 "VM snapshot is in
      progress" (lifecycle.go Unpause), which read as KubeVirt's refusal answered the resume
      Failed for good; start and stop were retried (audit, session 43). The snapshot ends
      by itself, and its unlock of the VM wakes the pass.
    """
    pending = seen.pending_requests
    if action == "stop":
        no_guest = seen.vmi is None or seen.vmi_ended
        return "Start" in pending and (no_guest or seen.run_strategy in ("Always", "Once"))
    if action == "start":
        manual = seen.run_strategy in ("Manual", "RerunOnFailure")
        return manual and bool(pending) and "Start" not in pending
    if action == "resume":
        return bool(((seen.vm or {}).get("status") or {}).get("snapshotInProgress"))
    return False


def _held_words(seen: Observed) -> str:
    """Why a stop waits while KubeVirt has a Start pending, in its words where it has some."""
    failure = ((seen.vm or {}).get("status") or {}).get("startFailure") or {}
    retry = failure.get("retryAfterTimestamp")
    why = (
        f"after its crash-loop back-off, at {retry}"
        if retry
        else "to serve the start it has pending"
    )
    return f"KubeVirt starts the VM again {why}: the stop is made on the VMI it starts"


def _vm_call(effect: Effect, vm: str, grace: int | None) -> VmCall:
    """The KubeVirt call for one of the state machine's effects."""
    return CALLS[effect](vm, grace)


CALLS = {
    Effect.START_VM: lambda vm, grace: VmCall("start", vm),
    Effect.STOP_VM: lambda vm, grace: VmCall("stop", vm, grace_period=grace),
    Effect.FORCE_STOP_VM: lambda vm, grace: VmCall("stop", vm, grace_period=0, force=True),
    Effect.RESTART_VM: lambda vm, grace: VmCall("restart", vm),
    Effect.FORCE_RESTART_VM: lambda vm, grace: VmCall("restart", vm, grace_period=0, force=True),
    Effect.PAUSE_VMI: lambda vm, grace: VmCall("pause", vm),
    Effect.UNPAUSE_VMI: lambda vm, grace: VmCall("unpause", vm),
}
"""Each effect of the state machine, as the call the executor makes."""
ESCALATIONS = (Effect.FORCE_STOP_VM, Effect.FORCE_RESTART_VM)


def waits_for_write(status: WukongStatus) -> bool:
    """Once `status` is written, the next pass acts on it at once: a request recorded as
    `Accepted` (or a forced restart's start recorded beside a refusal) is called (or
    settled) by the pass after the one that wrote the record, so an operator killed in
    between never calls twice (docs/decisions.md, "Exactly once")."""
    life = status.lifecycle_state
    return life is not None and _call_to_make(life)


def moved(state: LifecycleState, event: Happened, **fields: object) -> LifecycleState:
    """The request's state after `event` (PROTOCOL), with `fields`; unchanged when no row
    moves it."""
    to = answer(state.state, event)
    if to is None:
        return state
    return state.model_copy(update={"state": to.value, "issued": to in ISSUED, **fields})


def facts_for(
    cr: Wukong,
    seen: Observed,
    state: LifecycleState,
    *,
    valid: bool,
    ready: bool,
    failed: bool,
    now: datetime,
    vm_was_seen: bool,
    refused: bool,
) -> Facts:
    """What the FSM's guards read, from the cluster and the recorded request;
    `vm_was_seen`: the last status named a VM (status.vmName); `refused`: KubeVirt refused
    the call of the stored request (lifecycleState Failed)."""
    vmi = seen.vmi
    deadline = state.deadline
    return Facts(
        deleting=cr.metadata.deletion_timestamp is not None,
        spec_valid=valid,
        children_ready=ready,
        provisioning_failed=failed,
        # A VM being deleted (not by the Wukong's own deletion, which is Deleting) is going:
        # someone deleted it, and the Wukong says so at once rather than once it is gone.
        vm_exists=seen.vm is not None and not being_deleted(seen.vm),
        vm_was_seen=vm_was_seen,
        want_running=want_running(cr, state.last_action, refused=refused),
        run_strategy=seen.run_strategy,
        vmi_exists=vmi is not None,
        vmi_phase=seen.vmi_phase,
        vmi_ready=seen.vmi_condition("Ready"),
        vmi_paused=seen.vmi_paused_by_user(),
        vmi_paused_otherwise=seen.vmi_pause() is not None and not seen.vmi_paused_by_user(),
        vmi_restarted=vmi is not None
        and (state.vmi_uid is not None or state.last_action == "restart")
        and _vmi_uid(seen) != state.vmi_uid,
        stop_deadline_passed=deadline is not None and now >= deadline,
        force_issued=bool(state.escalated) or bool(state.force),
        call_refused=refused,
        start_refused=refused and state.call == Effect.START_VM.value,
        left_off=_left_off(seen, state),
        start_pending="Start" in seen.pending_requests,
    )


def plan_lifecycle(
    cr: Wukong,
    seen: Observed,
    status: WukongStatus,
    *,
    valid: bool,
    ready: bool,
    failed: bool,
    no_start: str | None = None,
    because: str | None = None,
    unstorable: str | None = None,
) -> LifecyclePlan:
    """Feed the FSM; turn its decision into calls and the new lifecycleState. `no_start`: why
    nothing may start a new guest now (the network policy refuses the spec): a start or
    restart is refused with it, and the VM's runStrategy is not moved to run it. `because`:
    why a request the operator makes itself (a restore's stop and start) is made, said in
    its answer. `unstorable`: why the status cannot hold the record of a call (the Wukong
    CRD is older than the operator and the API server drops `lifecycleState.call`): a call
    recorded Accepted is not made but answered Failed with it, as exactly once needs the
    record stored before the call."""
    now = seen.now
    vm = names.vm_name(cr.metadata.name)
    state = status.lifecycle_state or LifecycleState()
    action = cr.spec.lifecycle_action
    # A grace period of 0 is a forced call, as virt-api takes it (`virtctl stop --force
    # --grace-period=0`): no deadline to pass, no GracePeriodExpired to warn of.
    at_once = bool(action and (action.force or action.grace_period_seconds == 0))
    # A call accepted on the last pass is made before a newer request is looked at: deciding
    # the newer one first would overwrite the recorded call, and it would never be made.
    live_vm = seen.vm is not None and not being_deleted(seen.vm)  # a deleted one gets no call
    call_pending = _call_to_make(state) and bool(state.call) and live_vm
    # A suspend waits for the guest to run; while the start autoStart makes under Manual is
    # under way, that start is the creation's and the suspend is looked at once it is done.
    auto_starting = state.request_id == AUTO_START and state.state in IN_FLIGHT
    crossing = _crosses_earlier_call(action, state, seen)
    later = (
        call_pending
        or crossing is not None
        or (auto_starting and action is not None and action.action.value == "suspend")
    )
    new_request = action is not None and not later and request_id(action) != state.request_id
    barred = new_request and action is not None and no_start and action.action.value in STARTS
    recorded = LifecycleState(vmi_uid=_vmi_uid(seen)) if new_request else state
    facts = facts_for(
        cr,
        seen,
        recorded,
        valid=valid,
        ready=ready,
        failed=failed,
        now=now,
        vm_was_seen=status.vm_name is not None,
        # From the stored record: a new request in the same pass must not hide that KubeVirt
        # refused the last call (the phase would stay where that call left it).
        refused=state.state == Answer.Failed and _same_guest(seen, state),
    )
    step = decide(
        status.phase,
        facts,
        action.action.value if new_request and action and not barred else None,
        force=at_once,
    )
    if barred and action is not None:
        verb = action.action.value
        why = f"cannot {verb}: {no_start}"
        refused = moved(state, Happened.refused, message=why)
        refused = refused.model_copy(
            update={"request_id": request_id(action), "generation": cr.metadata.generation}
        )
        return LifecyclePlan(step, (Emit("Warning", "RequestRefused", why),), refused)
    vm_deleted = VM_DELETED in (reason for _, _, reason in step.hops)
    actions: list[Action] = []
    requeue: float | None = None
    if new_request and action is not None and step.refused:
        early = _at_creation(cr, action, step, state)
        deferred = early.state if early is not None else None
        waits = deferred is not None and deferred.state == Answer.Waiting
        if waits and _first_manual_start(cr, seen, step, state):
            # The suspend waits for a guest that only this start brings: start it first.
            return LifecyclePlan(step, (), _auto_start(cr, state, now))
        if early is not None:
            return early
    if new_request and action is not None:
        rid = request_id(action)
        if step.refused:
            refused = moved(state, Happened.refused, message=step.refused)
            refused = refused.model_copy(
                update={"request_id": rid, "generation": cr.metadata.generation}
            )
            actions.append(Emit("Warning", "RequestRefused", step.refused))
            return LifecyclePlan(step, tuple(actions), refused)
        verb = action.action.value
        grace = action.grace_period_seconds
        # KubeVirt's restart takes no grace period (the VMI's own applies): a restart
        # gets a deadline of ours only when the user asked for one.
        timed = verb == "stop" or grace is not None
        seconds = grace if grace is not None else DEFAULT_GRACE
        at_creation = step.previous in NOT_CREATED and (verb == "stop" or _starts_by_itself(cr))
        # A VM created stopped has no guest to wait for: no grace period, no deadline.
        escalates = verb in ("stop", "restart") and not at_once and timed and not at_creation
        cut = ""
        if escalates:
            # Kubernetes would kill the guest's pod first: said, and ended before it.
            seconds, why = within_launcher(seconds, seen)
            cut = f"; {why}" if why else ""
        calls = [e for e in step.effects if e not in ESCALATIONS or at_once]
        if at_creation:
            # Creating the VM in the wanted run state is the whole answer: no KubeVirt call
            # (a start on a VM whose runStrategy runs it anyway is refused with a 409).
            calls = []
        elif step.previous in NOT_CREATED and verb == "start" and _created_stopped(cr):
            # Under Manual KubeVirt creates the VM stopped whatever was asked: the start is
            # a call, made by the pass that first sees the VM (the state machine has no
            # START_VM while there is no VM to start).
            calls = [Effect.START_VM]
        accepted = LifecycleState(
            last_action=verb,
            request_id=rid,
            last_action_time=now,
            generation=cr.metadata.generation,
            force=at_once,
            vmi_uid=_vmi_uid(seen),
            message=f"{verb} accepted" + (f": {because}" if because else "") + cut,
            call=calls[0].value if calls else None,
            deadline=now + timedelta(seconds=seconds) if escalates else None,
            grace_period_seconds=seconds if escalates else None,
        )
        actions.append(Emit("Normal", "RequestAccepted", str(accepted.message)))
        accepted = moved(accepted, Happened.accepted)
        if at_creation:
            how = "running" if verb == "start" else "stopped"
            accepted = moved(accepted, Happened.called, message=f"the VM is created {how}")
        elif vm_deleted:
            # Its VM is being deleted in this very pass: nothing to call; the VM made again
            # follows the run state this request leaves (a stop: stopped; else running).
            why = f"{verb} ended: the VM was deleted outside Wukong"
            accepted = moved(accepted, Happened.moot, message=why, call=None, deadline=None)
        return LifecyclePlan(step, tuple(actions), accepted)
    if vm_deleted and state.state in IN_FLIGHT:
        # The request's VM is gone: its call made nothing the new VM will show, and one still
        # to make has nothing to go to. The new VM starts as a new one does.
        why = f"{state.last_action} ended: the VM was deleted outside Wukong"
        state = moved(state, Happened.moot, message=why, call=None, deadline=None)
    calling = False
    verb_next = _calling(state)
    if unstorable and state.state == Answer.Accepted and verb_next and live_vm:
        # Its record came back without the call: a call made now could not be told from one
        # never made after a crash, and the next request would lose it. Not made, and said.
        why = f"{verb_next} not made: {unstorable}"
        state = moved(state, Happened.call_refused, message=why, deadline=None)
        requeue = 0.0  # the phase follows the refusal on the next pass, at once
    elif _call_to_make(state) and verb_next and live_vm and not _kubevirt_busy(verb_next, seen):
        effect = Effect(state.call) if state.call else None  # None: a recorded request
        # lastActionTime is when the call was made: for a retried one, the last try.
        made: dict[str, object] = {}
        if effect is not None and not call_landed(verb_next, state, seen):
            calling = True
            call, recorded_call = _forced(effect, seen)
            actions.append(_vm_call(call, vm, state.grace_period_seconds))
            made = {"last_action_time": now, **recorded_call}
            if call is Effect.STOP_VM and state.deadline and state.grace_period_seconds:
                # The grace period is the guest's from when it is asked: a stop held while
                # KubeVirt served a pending Start was forced off at once otherwise.
                asked = now + timedelta(seconds=state.grace_period_seconds)
                made["deadline"] = max(state.deadline, asked)
        elif (
            effect is Effect.FORCE_RESTART_VM
            and (seen.vmi is None or grace_cut(seen))
            and "Start" not in seen.pending_requests
        ):
            # Landed as a stop (ours, made before a crash: the grace cut), or nothing was
            # left to restart: no Start of KubeVirt's follows, the start is ours.
            made = {"call": Effect.FORCE_STOP_VM.value}
        if state.state == Answer.Refused:  # the refusal stays the answer; the start is made
            state = state.model_copy(update={"issued": True, **made})
        else:
            state = moved(state, Happened.called, message=f"{verb_next} sent to KubeVirt", **made)
    elif live_vm and step.phase == Phase.Restarting and _owes_start(state, seen):
        # Recorded first, called by the next pass: exactly once, as the request's own call.
        if state.state == Answer.Refused:
            # A later request refused while the restart ran: `lifecycleState` answers the
            # latest request, so its refusal stays the record's answer (a `--wait` or a
            # status read later must not find "restart done" under the refused request's
            # id); the start is recorded beside it (`start_beside_refusal`).
            state = state.model_copy(update={"call": Effect.START_VM.value, "issued": False})
        else:
            state = moved(
                state,
                Happened.stopped_to_restart,
                call=Effect.START_VM.value,
                message="restart: the guest is off, starting it again",
            )
    # The record answers the request in flight, or a later one refused while it runs: then
    # its deadline still times the earlier call, but its message stays the refusal.
    in_flight = state.state in IN_FLIGHT
    escalation = next((e for e in step.effects if e in ESCALATIONS), None)
    # A stop held while KubeVirt has a Start pending is not forced either: there is no guest
    # to force (virt-api answers 409 "VM is not running" on every try) until the Start is
    # served, a crash loop's back-off up to 5 minutes; the stop is made on the VMI it makes,
    # with its grace period then (audit, session 43).
    held = state.last_action == "stop" and in_flight and _kubevirt_busy("stop", seen)
    asked_now = calling and state.deadline is not None and state.deadline > now
    if escalation is Effect.FORCE_STOP_VM and (held or asked_now):
        escalation = None
    if escalation is not None:
        verb = _vm_call(escalation, vm, 0).verb
        call, recorded_call = _forced(escalation, seen)
        actions.append(_vm_call(call, vm, 0))
        forced = {"message": f"grace period over: forced {verb}"} if in_flight else {}
        if state.forced_at is None:  # not a forced call made again after it failed
            actions.append(
                Emit(
                    "Warning",
                    "GracePeriodExpired",
                    f"the guest did not shut down in time: forcing {verb}",
                )
            )
        first = state.forced_at or now
        state = state.model_copy(
            update={"escalated": True, "forced_at": first, **forced, **recorded_call}
        )
    deadline = state.deadline
    if held and step.phase == Phase.Stopping and not state.escalated:
        # No deadline to wake for: the VM's update when KubeVirt serves its Start does.
        state = state.model_copy(update={"message": _held_words(seen)})
    elif deadline and step.phase in (Phase.Stopping, Phase.Restarting) and not state.escalated:
        requeue = max((deadline - now).total_seconds(), 0.0) + 0.05
        if in_flight:
            waiting = f"waiting for the guest to shut down until {iso(deadline)}"
            if seen.vmi_pause() is not None:
                # KubeVirt signals the shutdown to a paused guest too (virt-launcher's
                # SignalShutdownVMI), which cannot act on it: only the deadline ends it.
                waiting = (
                    f"the guest is paused and cannot shut down by itself: it is powered off "
                    f"at {iso(deadline)}, when the grace period ends (--force: now)"
                )
            state = state.model_copy(update={"message": waiting})
    if step.phase not in IN_FLIGHT_PHASES:
        message = f"{state.last_action} done: {step.phase}"
        if STOPPED_OUTSIDE in (reason for _, _, reason in step.hops):
            message = f"{state.last_action} ended: the VM was stopped outside Wukong"
        state = moved(state, Happened.settled, message=message, deadline=None)
        if not in_flight and state.deadline is not None:
            state = state.model_copy(update={"deadline": None})  # the earlier call's is over
    if not calling and _first_manual_start(cr, seen, step, state):
        # Recorded now, called by the next pass once this status is written: exactly once,
        # like a user's request (a second call before KubeVirt's Start request shows in the
        # cache gets virt-api's 500 "stop/start already underway").
        return LifecyclePlan(step, tuple(actions), _auto_start(cr, state, now))
    if not calling:  # the call itself moves runStrategy: align it on a later pass
        aligned = _run_strategy(cr, seen, state, status.observed_generation)
        if no_start and RUNS.get(desired_run_strategy(cr, runs_wanted(cr, state))):
            aligned = _held_off(cr, seen)  # it would start the guest on the refused networks
        actions += aligned
    empty = state == LifecycleState()
    if crossing is not None:  # look at the held request again once the hold is over
        if crossing == SETTLE_PASS and state.state != Answer.Issued:
            crossing = 0.0  # settled by this pass: the held request is taken right after it
        requeue = crossing if requeue is None else min(requeue, crossing)
    return LifecyclePlan(step, tuple(actions), None if empty else state, requeue_after=requeue)


def _crosses_earlier_call(
    action: LifecycleAction | None, state: LifecycleState, seen: Observed
) -> float | None:
    """Seconds a new request waits for the pause, unpause or start made before it; None when
    it need not wait. A resume sent while our suspend's pause is made but not yet in the
    cache, or a suspend while our resume's unpause is: the cache still shows the guest as
    the new request wants it, so `call_landed` would count its call as made and it would
    never be (the guest then ends as the earlier request left it, the record saying the
    later one is done). A start or restart waits too: refused at once ("the VM is running
    and being suspended"), it would replace the record that says the call was made, and a
    resume after it would no longer wait. A stop need not wait for a pause: every phase a
    pause leaves takes it, and whether it landed does not read the pause. It waits for a
    start: whether it landed reads the runStrategy and the VMI the start changes.

    The new request waits for the VMI update that shows the earlier call, and one pass
    more: the pass that sees it settles the record and moves the phase (Suspending ->
    Suspended), and the request is judged in the phase the guest is in, not refused for
    the one it just left. At most PAUSE_REPORT_WINDOW after the call was made (and never
    longer, whatever this pass's clock says): virt-handler reports a pause within a second,
    and a pause that never shows (the domain was already paused by QEMU, or stopped) must
    not hold the Wukong's requests for good."""
    if action is None:
        return None
    verb = action.action.value
    # A stop after our start is the same (not a pause): the start's runStrategy or Start
    # request not in the VM cache yet, the stale Stopped VM passed for the stop landed, the
    # stop was never made, and the VM the start ran was then taken for one started outside
    # Wukong (test_lifecycle_sequences, seed 2706951415: start, forced stop 20 ms later).
    crosses = (state.last_action in PAUSE_VERBS and verb != "stop") or (
        state.last_action == "start" and verb == "stop"
    )
    if (
        not crosses
        or state.last_action is None
        or request_id(action) == state.request_id
        or state.state != Answer.Issued
        or state.last_action_time is None
    ):
        return None
    left = (state.last_action_time - seen.now).total_seconds() + PAUSE_REPORT_WINDOW
    if left <= 0:
        return None
    if call_landed(state.last_action, state, seen):
        if state.last_action == "start":
            return None  # shows now: the stop reads what the start did (its record stays
            # Issued until the guest runs: settling it first would hold the stop till then)
        return SETTLE_PASS  # shows now: taken on the next pass, once the record is settled
    return min(left, PAUSE_REPORT_WINDOW)


def _auto_start(cr: Wukong, state: LifecycleState, now: datetime) -> LifecycleState:
    """The start autoStart makes under Manual, recorded as accepted (called by the next
    pass, exactly once)."""
    auto = LifecycleState(
        last_action="start",
        # The user's request answered before (a resume or restart is done at creation)
        # stays answered: its id is kept, or it would look new and be asked again.
        request_id=state.request_id or AUTO_START,
        last_action_time=now,
        generation=cr.metadata.generation,
        force=False,
        call=Effect.START_VM.value,
        message="start accepted: startStrategy.autoStart with runStrategy Manual",
    )
    return moved(auto, Happened.accepted)


def _first_manual_start(cr: Wukong, seen: Observed, step: Step, state: LifecycleState) -> bool:
    """autoStart under runStrategy Manual: KubeVirt creates the VM stopped and starts it only
    when asked, so the operator asks once, while the new VM has never run (else the Wukong
    would wait in Starting for a VMI that never comes). A VM made again after someone
    deleted it is new too: the pass that first sees it (Creating -> Starting: the user's
    last word was to run it, or it would be Stopped) starts it unless a call is in flight.
    Only that pass: later ones cannot tell a start not yet shown in the cache from none."""
    settled = state.state not in IN_FLIGHT
    new_vm = not state.last_action or (step.previous is Phase.Creating and settled)
    return (
        seen.vm is not None
        and seen.vmi is None
        and seen.run_strategy == "Manual"
        and step.previous in (Phase.Creating, Phase.Starting)
        and step.phase is Phase.Starting
        and new_vm
        and "Start" not in seen.pending_requests
    )


def _starts_by_itself(cr: Wukong) -> bool:
    """The VM's runStrategy starts it without a start call (Manual needs one)."""
    return desired_run_strategy(cr, True) in ("Always", "RerunOnFailure")


def _created_stopped(cr: Wukong) -> bool:
    """The VM is created stopped even when it should run: Manual runs it only on a start
    call. (Always and RerunOnFailure run it themselves; virt-api refuses a start under
    Always.)"""
    return desired_run_strategy(cr, True) == "Manual"


def _at_creation(
    cr: Wukong, action: LifecycleAction, step: Step, state: LifecycleState
) -> LifecyclePlan | None:
    """The answer to a request the state machine refused only because the VM does not exist
    (or run) yet; None when the refusal stands."""
    verb = action.action.value
    if step.previous in NOT_CREATED and verb in DONE_AT_CREATION:
        message = DONE_AT_CREATION[verb]
        done = moved(
            LifecycleState(),
            Happened.moot,
            request_id=request_id(action),
            generation=cr.metadata.generation,
            message=message,
        )
        return LifecyclePlan(step, (Emit("Normal", "RequestDone", message),), done)
    waiting = state.state == Answer.Waiting and step.previous is Phase.Starting
    if verb == "suspend" and (step.previous in NOT_CREATED or waiting):
        # The request id is not recorded: each pass asks the state machine again, and once
        # the VM runs the suspend is accepted and runs like any other.
        held = moved(
            LifecycleState(),
            Happened.deferred,
            generation=cr.metadata.generation,
            message=WAIT_FOR_RUNNING,
        )
        first = state.state != Answer.Waiting
        events = (Emit("Normal", "RequestWaiting", WAIT_FOR_RUNNING),) if first else ()
        return LifecyclePlan(step, events, held)
    return None


def _run_strategy(
    cr: Wukong, seen: Observed, state: LifecycleState, observed: int | None
) -> list[Action]:
    """Bring the VM's runStrategy back to what the user wants once no call is in flight
    (KubeVirt's start turns Halted into Always; a Manual or RerunOnFailure user wants theirs).
    A refused request calls nothing, and the request before it made its call first (see
    `call_pending`): under a refusal the earlier request's run state holds. Without that, a
    stop refused right after a stop left a RerunOnFailure VM stopped but not Halted (found
    by test_lifecycle_sequences, seed 4259277729)."""
    waiting = state.issued is False and state.state != Answer.Refused
    if seen.vm is None or being_deleted(seen.vm) or waiting:
        return []
    current = seen.run_strategy
    wanted = desired_run_strategy(cr, runs_wanted(cr, state))
    if current == wanted:
        return []
    if wanted == "Halted" and "Start" in seen.pending_requests:
        # virt-controller turns a Halted VM with a Start pending and no VMI into Always to
        # serve it (vm.go, the "start paused case"): the VM would start, and read as started
        # outside Wukong. Halted waits for KubeVirt to serve the Start (a VM event wakes the
        # pass), then stops the VMI it made.
        return []
    if wanted == "RerunOnFailure" and seen.synced_run_strategy not in (None, current):
        # virt-controller starts a RerunOnFailure VM with no VMI only when it comes from
        # another runStrategy it has seen (status.runStrategy, vm.go): moved back before it
        # saw Halted or Always, the VM would stay off for good. The VM's status update
        # after virt-controller's sync wakes the pass.
        return []
    vm = names.vm_name(cr.metadata.name)
    body = {"spec": {"runStrategy": wanted}}
    moved_back = PatchChild("VirtualMachine", vm, body, "run strategy", uid=uid_of(seen.vm))
    patch: list[Action] = [moved_back]
    # Neither the spec nor a request of ours moved it (a spec edit is a generation not yet
    # observed; KubeVirt's answer to our start is Always, a running strategy like the one
    # wanted): someone ran `virtctl stop` or `start`, or edited the VM. Undone, not silently.
    runs, want = RUNS.get(current or ""), RUNS.get(wanted)
    ours = (
        state.state in IN_FLIGHT  # our call's effect may not be in the cache yet
        or cr.metadata.generation != observed  # the spec changed: the patch is its
        or (current, state.last_action) in KUBEVIRTS_ANSWERS
        or _forced_stop_of_a_restart(current, state)
    )
    if not ours and runs is not None and want is not None and runs != want:
        verb = "started" if runs else "stopped"
        patch.append(
            Emit(
                "Warning",
                "RunStrategyReverted",
                f"{vm} was {verb} outside Wukong (runStrategy {current}, e.g. virtctl); set "
                f"back to {wanted} as the Wukong asks: use its lifecycleAction or "
                f"spec.runStrategy (wukong start/stop) to change that",
                after=(moved_back,),
            )
        )
    return patch


def _held_off(cr: Wukong, seen: Observed) -> list[Action]:
    """While nothing may start a new guest (its networks refused): KubeVirt's own starts are
    held too. Under Always or RerunOnFailure virt-controller makes a new VMI when the guest
    stops or crashes (vm.go syncRunStrategy), on the refused networks; Manual keeps a running
    guest running and starts none (source audit, session 42). The runStrategy the spec asks
    comes back through `_run_strategy` once the networks are allowed again."""
    if seen.vm is None or being_deleted(seen.vm) or not RUNS.get(seen.run_strategy or ""):
        return []
    vm = names.vm_name(cr.metadata.name)
    body = {"spec": {"runStrategy": "Manual"}}
    return [PatchChild("VirtualMachine", vm, body, "held off", uid=uid_of(seen.vm))]


def _forced_stop_of_a_restart(current: str | None, state: LifecycleState) -> bool:
    """A forced restart KubeVirt was already serving is made as a forced stop, which sets
    Halted until virt-controller serves the restart's pending Start (docs/decisions.md,
    "Forcing a restart KubeVirt is serving"). A request refused since replaces the record's
    state, not its call: that Halted is still ours, not a `virtctl stop` (found by
    test_lifecycle_sequences, seed 1384427838: a RunStrategyReverted Warning for it)."""
    return (
        current == "Halted"
        and state.last_action == "restart"
        and state.call == Effect.FORCE_STOP_VM.value
    )


# What a runStrategy does to the guest by itself: run it, keep it down, or neither (Manual).
RUNS: dict[str, bool | None] = {
    "Always": True,
    "RerunOnFailure": True,
    "Halted": False,
    "Manual": None,
}
# What KubeVirt leaves after our own calls (virt-api lifecycle.go): its start turns Halted
# into Always, its stop of a RerunOnFailure VM keeps RerunOnFailure (a Stop request).
KUBEVIRTS_ANSWERS = {
    ("Always", "start"),
    ("Always", "restart"),
    ("RerunOnFailure", "stop"),
}
