"""Lifecycle requests: accepted once, called once, refused with a reason."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from tests.unit.reconcile.world import NOW, NS, decide, ready_children, seen, wukong
from wukong.api.status import LifecycleState, WukongStatus
from wukong.reconcile.actions import Action, CreateChild, Emit, Failed, PatchChild, VmCall
from wukong.reconcile.lifecycle import request_id, waits_for_write
from wukong.reconcile.observed import Observed
from wukong.reconcile.outcome import fold
from wukong.reconcile.vm import build_vm


def running_world(strategy: str = "Always", **vmi_status: Any) -> Any:
    cr = wukong()
    world = ready_children()
    vm = build_vm(cr, world, strategy)
    vm["metadata"]["uid"] = "vm-uid"
    status = {
        "phase": "Running",
        "nodeName": "node-1",
        "conditions": [{"type": "Ready", "status": "True"}],
        **vmi_status,
    }
    vmi = {
        "metadata": {"name": "web-1-vm", "namespace": NS, "uid": "vmi-1"},
        "spec": vm["spec"]["template"]["spec"],
        "status": status,
    }
    return ready_children(vm=vm, vmi=vmi)


def calls(plan: Any) -> list[VmCall]:
    return [a for a in plan.actions if isinstance(a, VmCall)]


def folded(planned: dict[str, Any], old: dict[str, Any], failed: dict[Action, Failed]) -> Any:
    """The status the executor writes when `failed` failed (outcome.fold, on the wire)."""
    return fold(
        WukongStatus.model_validate(planned), WukongStatus.model_validate(old), failed
    ).to_wire()


def test_restart_is_recorded_then_called_once() -> None:
    cr = wukong(lifecycleAction={"action": "restart"})
    world = running_world()
    first = decide(cr, {"phase": "Running"}, world)
    assert first.status["phase"] == "Restarting"
    assert calls(first) == []  # recorded first: a crash now cannot double the call
    state = first.status["lifecycleState"]
    assert state["issued"] is False and state["vmiUid"] == "vmi-1"
    second = decide(cr, first.status, world)
    assert calls(second) == [VmCall("restart", "web-1-vm")]
    third = decide(cr, second.status, world)
    assert calls(third) == []


def test_restart_after_crash_is_not_repeated_when_the_vmi_was_replaced() -> None:
    cr = wukong(lifecycleAction={"action": "restart"})
    world = running_world()
    first = decide(cr, {"phase": "Running"}, world)
    # the call went out, the operator died before writing "issued"; a new VMI booted
    replaced = running_world()
    assert replaced.vmi is not None
    replaced.vmi["metadata"]["uid"] = "vmi-2"
    again = decide(cr, first.status, replaced)
    assert calls(again) == []
    assert again.status["lifecycleState"]["issued"] is True


@pytest.mark.parametrize(
    ("action", "phase", "words"),
    [
        pytest.param("resume", "Running", "resume", id="resume-while-Running"),
        pytest.param("start", "Running", "running", id="start-while-Running"),
    ],
)
def test_invalid_requests_are_refused_and_leave_the_vm_alone(
    action: str, phase: str, words: str
) -> None:
    cr = wukong(lifecycleAction={"action": action})
    plan = decide(cr, {"phase": phase}, running_world())
    assert plan.status["phase"] == phase
    assert calls(plan) == []
    state = plan.status["lifecycleState"]
    assert state["state"] == "Refused" and words in state["message"]
    assert any(isinstance(a, Emit) and a.reason == "RequestRefused" for a in plan.actions)


def test_same_request_after_an_unrelated_edit_does_not_run_again() -> None:
    cr = wukong(lifecycleAction={"action": "restart"})
    world = running_world()
    done = decide(cr, decide(cr, {"phase": "Running"}, world).status, world)
    edited = wukong(cpu=3, lifecycleAction={"action": "restart"})
    plan = decide(edited, done.status, world)
    assert calls(plan) == []


def test_graceful_stop_escalates_to_force_after_the_deadline() -> None:
    cr = wukong(lifecycleAction={"action": "stop", "gracePeriodSeconds": 30})
    world = running_world()
    accepted = decide(cr, {"phase": "Running"}, world)
    issued = decide(cr, accepted.status, world)
    assert calls(issued) == [VmCall("stop", "web-1-vm", grace_period=30)]
    assert issued.status["lifecycleState"]["deadline"] == "2026-11-23T12:00:30Z"
    assert issued.requeue_after is not None and 29 < issued.requeue_after < 31
    later = Observed(**{**world.__dict__, "now": NOW + timedelta(seconds=31)})
    forced = decide(cr, issued.status, later)
    assert VmCall("stop", "web-1-vm", grace_period=0, force=True) in calls(forced)
    assert forced.status["lifecycleState"]["escalated"] is True
    again = decide(cr, forced.status, later)
    assert calls(again) == []


@pytest.mark.parametrize(("verb", "call"), [("stop", True), ("restart", False)])
def test_a_grace_period_longer_than_the_launchers_is_cut_and_said(verb: str, call: bool) -> None:
    """virt-controller deletes the launcher pod at the stop, and virt-launcher destroys the
    guest once its own grace period is over (the VMI's when the pod was made, 30 s by
    default, plus KubeVirt's 15 s): a stop asked with 2 minutes had its guest killed at 45 s
    (VMI Failed) while the status promised the full 2 minutes. Cut to 5 s before, and said.
    Session 38 counted the pod's grace period (15 s more) and cut to 55 s: 10 s too late."""
    cr = wukong(lifecycleAction={"action": verb, "gracePeriodSeconds": 120})
    world = running_world()
    accepted = decide(cr, {"phase": "Running"}, world)
    record = accepted.status["lifecycleState"]
    assert record["gracePeriodSeconds"] == 40
    assert record["message"] == (
        f"{verb} accepted; grace period cut from 120s to 40s: KubeVirt's virt-launcher kills "
        "the guest 45s after a stop (the VMI's grace period, 30s, plus KubeVirt's 15s)"
    )
    issued = decide(cr, accepted.status, world)
    assert issued.status["lifecycleState"]["deadline"] == "2026-11-23T12:00:40Z"
    if call:  # KubeVirt's own shutdown ends in time too (a restart takes no grace period)
        assert calls(issued) == [VmCall("stop", "web-1-vm", grace_period=40)]
    # A VMI whose grace period leaves room keeps what was asked.
    world.vmi["spec"]["terminationGracePeriodSeconds"] = 300
    roomy = decide(cr, {"phase": "Running"}, world).status["lifecycleState"]
    assert roomy["gracePeriodSeconds"] == 120 and roomy["message"] == f"{verb} accepted"
    # One an earlier stop patched (virt-api writes the VMI's, not the launcher's) counts, and
    # so does a template that asks less since the VMI started: the earlier kill, never later.
    world.vm["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 60
    assert decide(cr, {"phase": "Running"}, world).status["lifecycleState"][
        "gracePeriodSeconds"
    ] == (70)


def test_a_stop_of_a_paused_guest_says_it_waits_for_the_deadline_not_the_guest() -> None:
    """KubeVirt signals the shutdown to a paused guest, which cannot act on it: the stop of a
    Suspended Wukong took the whole grace period while the status said it waited for the
    guest to shut down."""
    cr = wukong(lifecycleAction={"action": "stop", "gracePeriodSeconds": 30})
    paused = {"type": "Paused", "status": "True", "reason": "PausedByUser"}
    world = running_world(conditions=[{"type": "Ready", "status": "True"}, paused])
    accepted = decide(cr, {"phase": "Suspended"}, world)
    issued = decide(cr, accepted.status, world)
    assert calls(issued) == [VmCall("stop", "web-1-vm", grace_period=30)]
    waiting = decide(cr, issued.status, world).status["lifecycleState"]["message"]
    assert waiting == (
        "the guest is paused and cannot shut down by itself: it is powered off at "
        "2026-11-23T12:00:30Z, when the grace period ends (--force: now)"
    )
    up = running_world()  # a guest that runs shuts down by itself: it is waited for
    issued = decide(cr, decide(cr, {"phase": "Running"}, up).status, up)
    told = decide(cr, issued.status, up).status["lifecycleState"]["message"]
    assert told == "waiting for the guest to shut down until 2026-11-23T12:00:30Z"


def test_start_of_a_manual_vm_restores_its_run_strategy_after_kubevirt_set_always() -> None:
    cr = wukong(runStrategy="Manual")
    world = running_world(strategy="Always")
    status = {
        "phase": "Running",
        "lifecycleState": {"lastAction": "start", "issued": True, "state": "Issued"},
    }
    plan = decide(cr, status, world)
    patches = [
        a
        for a in plan.actions
        if isinstance(a, PatchChild) and a.patch.get("spec", {}).get("runStrategy")
    ]
    assert patches and patches[0].patch["spec"]["runStrategy"] == "Manual"


def test_a_refused_request_after_a_stop_still_halts_the_stopped_vm() -> None:
    """Found by test_lifecycle_sequences (seed 4259277729, KubeVirt's own virt-api): a forced
    stop of a RerunOnFailure VM, then a suspend and a stop refused (already stopped) before
    the pass that sets Halted. KubeVirt's stop keeps RerunOnFailure; the refusal's record
    says issued: false, and the alignment waited for a call that never comes."""
    stop = {"action": "stop", "force": True, "requestedAt": "t15"}
    cr = wukong(runStrategy="RerunOnFailure", lifecycleAction=stop)
    world = running_world(strategy="RerunOnFailure")
    off = Observed(**{**world.__dict__, "vmi": None})
    issued = {"lastAction": "stop", "call": "FORCE_STOP_VM", "requestId": "t14",
              "state": "Done", "issued": True}  # fmt: skip
    answered = decide(cr, {"phase": "Stopped", "lifecycleState": issued}, off).status
    life = answered["lifecycleState"]
    assert (life["state"], life["issued"], life["lastAction"]) == ("Refused", False, "stop")
    plan = decide(cr, answered, off)  # the pass after the refusal was written
    strategies = [
        a.patch["spec"]["runStrategy"]
        for a in plan.actions
        if isinstance(a, PatchChild) and "runStrategy" in a.patch.get("spec", {})
    ]
    assert strategies == ["Halted"]
    assert calls(plan) == []


def test_halted_waits_for_kubevirt_to_serve_a_pending_start() -> None:
    """virt-controller turns a Halted VM with a Start pending (a restart's, say) and no VMI
    into Always to serve it (vm.go, the "start paused case"): Halted then would start the VM
    and read as a `virtctl start` (RunStrategyReverted, seed 268001540). The patch waits
    until KubeVirt has served the Start; the VMI it makes is then stopped by Halted."""
    stop = {"action": "stop", "force": True, "requestedAt": "t15"}
    cr = wukong(runStrategy="RerunOnFailure", lifecycleAction=stop)
    world = running_world(strategy="RerunOnFailure")
    assert world.vm is not None
    world.vm["status"] = {"stateChangeRequests": [{"action": "Start"}]}
    off = Observed(**{**world.__dict__, "vmi": None})
    issued = {"lastAction": "stop", "call": "FORCE_STOP_VM", "requestId": "t14",
              "state": "Done", "issued": True}  # fmt: skip
    answered = decide(cr, {"phase": "Stopped", "lifecycleState": issued}, off).status
    waiting = decide(cr, answered, off)
    assert _strategy_patches(waiting) == [] and _reverted(waiting) == []
    served = running_world(strategy="RerunOnFailure")
    plan = decide(cr, waiting.status, served)
    assert _strategy_patches(plan) == [{"spec": {"runStrategy": "Halted"}}]
    assert _reverted(plan) == []


def test_rerun_on_failure_waits_for_virt_controller_to_see_kubevirts_always() -> None:
    """virt-controller starts a RerunOnFailure VM that has no VMI only when it comes from
    another runStrategy it has seen (status.runStrategy, vm.go). A start right after a stop
    (test_lifecycle_sequences, seed 268001540): our Halted, virt-api's Always and our
    RerunOnFailure again all came before virt-controller synced the VM, so it saw
    RerunOnFailure as before, started nothing, and the Wukong stayed Starting. The patch
    back waits for virt-controller to have seen Always (it starts the VMI in that sync)."""
    start = {"action": "start", "requestedAt": "t2"}
    cr = wukong(runStrategy="RerunOnFailure", lifecycleAction=start)
    world = running_world(strategy="Always")
    assert world.vm is not None
    world.vm["status"] = {"runStrategy": "RerunOnFailure"}  # virt-controller's last sync
    unseen = Observed(**{**world.__dict__, "vmi": None})
    rid = request_id(cr.spec.lifecycle_action)
    issued = {"lastAction": "start", "call": "START_VM", "requestId": rid,
              "state": "Issued", "issued": True}  # fmt: skip
    status = {"phase": "Starting", "lifecycleState": issued}
    assert _strategy_patches(decide(cr, status, unseen)) == []
    world.vm["status"] = {"runStrategy": "Always"}
    assert _strategy_patches(decide(cr, status, world)) == [
        {"spec": {"runStrategy": "RerunOnFailure"}}
    ]


def test_every_status_field_the_planner_writes_survives_the_crd_schema() -> None:
    from tests.unit.reconcile.world import pruned_fields

    cr = wukong(lifecycleAction={"action": "stop", "gracePeriodSeconds": 30})
    world = running_world()
    status: dict[str, Any] = {"phase": "Running"}
    for seconds in (0, 0, 31):
        moment = Observed(**{**world.__dict__, "now": NOW + timedelta(seconds=seconds)})
        status = decide(cr, status, moment).status
        assert pruned_fields(status) == []


def test_manual_with_auto_start_is_started_once_when_its_vm_is_new() -> None:
    cr = wukong(runStrategy="Manual", startStrategy={"autoStart": True})
    world = running_world(strategy="Manual")
    fresh = ready_children(vm=world.vm)  # the VM exists, KubeVirt started nothing
    first = decide(cr, {"phase": "Starting"}, fresh)
    assert calls(first) == []  # recorded first: a crash now cannot double the call
    state = first.status["lifecycleState"]
    assert (state["lastAction"], state["issued"]) == ("start", False)
    second = decide(cr, first.status, fresh)
    assert calls(second) == [VmCall("start", "web-1-vm")]
    # The cache may not show KubeVirt's Start request yet: still no second call.
    assert calls(decide(cr, second.status, fresh)) == []
    # Later, the guest shut itself down: a Manual VM stays down, nothing starts it again.
    assert calls(decide(cr, {**second.status, "phase": "Stopped"}, fresh)) == []


def test_manual_without_auto_start_is_not_started() -> None:
    cr = wukong(runStrategy="Manual", startStrategy={"autoStart": False})
    fresh = ready_children(vm=running_world(strategy="Manual").vm)
    plan = decide(cr, {"phase": "Stopped"}, fresh)
    assert calls(plan) == [] and not plan.status.get("lifecycleState")


def _past_the_deadline(cr: Any) -> tuple[Any, Any, Observed]:
    """The pass that issues `cr`'s graceful call (30 s grace) on a running guest, the pass a
    second after its deadline, and the world it saw."""
    world = running_world()
    accepted = decide(cr, {"phase": "Running"}, world)
    issued = decide(cr, accepted.status, world)
    later = Observed(**{**world.__dict__, "now": NOW + timedelta(seconds=31)})
    return issued, decide(cr, issued.status, later), later


def test_a_failed_forced_escalation_is_retried_forced() -> None:
    cr = wukong(lifecycleAction={"action": "stop", "gracePeriodSeconds": 30})
    issued, forced, later = _past_the_deadline(cr)
    force = VmCall("stop", "web-1-vm", grace_period=0, force=True)
    assert force in calls(forced)
    failed: dict[Action, Failed] = {force: Failed("transient", "503 the server is busy")}
    written = folded(forced.status, issued.status, failed)
    assert written["lifecycleState"]["escalated"] is False
    again = decide(cr, written, later)
    assert force in calls(again), "the forced stop must be sent again, forced"
    assert VmCall("stop", "web-1-vm", grace_period=30) not in calls(again)
    # One Warning for the grace period's end, not one per try (it was posted on each).
    warned = [a.reason for a in [*forced.actions, *again.actions] if isinstance(a, Emit)]
    assert warned.count("GracePeriodExpired") == 1
    assert again.status["lifecycleState"]["forcedAt"] == forced.status["lifecycleState"]["forcedAt"]


def test_a_resume_done_at_creation_does_not_block_the_auto_start_of_a_manual_vm() -> None:
    # Found by test_spec_parity: the auto start replaced the answered resume's id, so the
    # resume looked new, was refused, and the refusal overwrote the start before its call.
    resume = {"action": "resume", "force": True, "gracePeriodSeconds": 5}
    cr = wukong(runStrategy="Manual", startStrategy={"autoStart": True}, lifecycleAction=resume)
    vm = running_world(strategy="Manual").vm
    created = decide(cr, {}, ready_children())
    assert created.status["lifecycleState"]["state"] == "Done"
    status, made = created.status, list[VmCall]()
    for _ in range(4):
        plan = decide(cr, status, ready_children(vm=vm))
        status, made = plan.status, made + calls(plan)
        assert not [a for a in plan.actions if isinstance(a, Emit) and a.reason == "RequestRefused"]
    assert made == [VmCall("start", "web-1-vm")]


@pytest.mark.parametrize("strategy", ["Always", "Halted", "Manual", "RerunOnFailure"])
@pytest.mark.parametrize("auto_start", [True, False])
@pytest.mark.parametrize("verb", [None, "start", "stop", "restart", "resume", "suspend"])
def test_the_first_spec_makes_a_start_call_only_for_a_vm_created_stopped_that_should_run(
    strategy: str, auto_start: bool, verb: str | None
) -> None:
    # A table over what the first spec can say about the run state: the VM is created in
    # it, and only a Manual VM that should run needs one start call (virt-api refuses a
    # start under Always; a Halted one asked to run is created Always). Found by
    # test_spec_parity in CI: a Manual VM's start in its first spec went Issued with no
    # call, and the Wukong stayed in Starting.
    action = {"lifecycleAction": {"action": verb}} if verb else {}
    cr = wukong(runStrategy=strategy, startStrategy={"autoStart": auto_start}, **action)
    created = decide(cr, {}, ready_children())
    made = [
        a.body for a in created.actions if isinstance(a, CreateChild) and a.kind == "VirtualMachine"
    ]
    assert len(made) == 1, created.actions
    vm = made[0] | {"metadata": made[0]["metadata"] | {"uid": "vm-uid"}}
    status, sent = created.status, calls(created)
    for _ in range(4):
        plan = decide(cr, status, ready_children(vm=vm))
        status, sent = plan.status, sent + calls(plan)
    # A restart or resume has nothing to act on yet, and a suspend waits for the VM to run:
    # the run state is the spec's.
    by_spec = auto_start and strategy != "Halted"
    should_run = verb == "start" or (verb != "stop" and by_spec)
    created_as = vm["spec"]["runStrategy"]
    if should_run:
        assert created_as in ("Always", "Manual", "RerunOnFailure")
        expected = [VmCall("start", "web-1-vm")] if created_as == "Manual" else []
    else:
        assert created_as in ("Halted", "Manual")
        expected = []
    assert sent == expected, f"created {created_as}; lifecycleState {status.get('lifecycleState')}"


def test_a_request_refused_before_an_accepted_call_is_made_does_not_cancel_it() -> None:
    world = running_world()
    stop = wukong(lifecycleAction={"action": "stop"})
    accepted = decide(stop, {"phase": "Running"}, world)
    assert accepted.status["lifecycleState"]["state"] == "Accepted"
    # The user asks to resume before the next pass made the stop call.
    resume = wukong(lifecycleAction={"action": "resume"})
    meta = resume.metadata.model_copy(update={"generation": 2})
    resume = resume.model_copy(update={"metadata": meta})
    plan = decide(resume, accepted.status, world)
    assert [c.verb for c in calls(plan)] == ["stop"]
    # The resume is answered once the stop is out: refused, the VM is not suspended.
    later = decide(resume, plan.status, world)
    assert later.status["lifecycleState"]["state"] == "Refused"
    assert calls(later) == []


def test_a_suspend_waiting_at_creation_does_not_block_the_auto_start_of_a_manual_vm() -> None:
    # Found by test_spec_parity: a suspend waits for the VM to run, but each pass answered
    # it "waiting" before the auto start was considered, so a Manual VM never started.
    cr = wukong(
        runStrategy="Manual",
        startStrategy={"autoStart": True},
        lifecycleAction={"action": "suspend"},
    )
    world = running_world(strategy="Manual")
    created = decide(cr, {}, ready_children())
    assert created.status["lifecycleState"]["state"] == "Waiting"
    status, made = created.status, list[VmCall]()
    for _ in range(4):
        plan = decide(cr, status, ready_children(vm=world.vm))  # the VM exists, not started
        status, made = plan.status, made + calls(plan)
        assert not [a for a in plan.actions if isinstance(a, Emit) and a.reason == "RequestRefused"]
    assert made == [VmCall("start", "web-1-vm")]
    assert status["lifecycleState"]["lastAction"] == "start"  # the suspend waits for the guest
    # The guest runs: the suspend is taken and called once.
    for _ in range(3):
        plan = decide(cr, {**status, "phase": "Running"}, world)
        status, made = plan.status, made + calls(plan)
    assert made == [VmCall("start", "web-1-vm"), VmCall("pause", "web-1-vm")]


def test_a_request_refused_while_a_stop_runs_keeps_its_answer_to_the_end() -> None:
    # Found by test_lifecycle_sequences: the refusal took over the running stop's record, and
    # the stop's deadline then rewrote its message ("waiting for the guest ...") for good.
    world = running_world()
    stop = wukong(lifecycleAction={"action": "stop", "gracePeriodSeconds": 30})
    issued = decide(stop, decide(stop, {"phase": "Running"}, world).status, world)
    assert issued.status["phase"] == "Stopping"
    again = wukong(lifecycleAction={"action": "stop", "requestedAt": "later"})
    again = again.model_copy(
        update={"metadata": again.metadata.model_copy(update={"generation": 2})}
    )
    refused = decide(again, issued.status, world)
    refusal = "cannot stop: the VM is already stopping; use force to power it off now"
    assert refused.status["lifecycleState"]["state"] == "Refused"
    assert refused.status["lifecycleState"]["message"] == refusal
    still = decide(again, refused.status, world)
    assert still.status["lifecycleState"]["message"] == refusal
    # The first stop's grace period still runs out, and it is still forced (once) ...
    late = Observed(**{**world.__dict__, "now": NOW + timedelta(seconds=31)})
    forced = decide(again, still.status, late)
    assert VmCall("stop", "web-1-vm", grace_period=0, force=True) in calls(forced)
    assert any(isinstance(a, Emit) and a.reason == "GracePeriodExpired" for a in forced.actions)
    assert forced.status["lifecycleState"]["message"] == refusal
    assert calls(decide(again, forced.status, late)) == []
    # ... and once the VM is off, the answer is still the refusal, with no deadline left.
    assert world.vm is not None
    halted = {**world.vm, "spec": {**world.vm["spec"], "runStrategy": "Halted"}}
    off = Observed(**{**late.__dict__, "vm": halted, "vmi": None})
    stopped = decide(again, forced.status, off)
    assert stopped.status["phase"] == "Stopped"
    life = stopped.status["lifecycleState"]
    assert (life["state"], life["message"], life.get("deadline")) == ("Refused", refusal, None)


def test_a_start_is_called_while_the_stopped_vmi_still_lingers() -> None:
    # Found by test_lifecycle_sequences with KubeVirt's own components: under Manual, the VM
    # is reported Stopped while its finished VMI still exists for a moment; a start accepted
    # then was taken as already landed (runStrategy not Halted, a VMI present) and never made.
    cr = wukong(runStrategy="Manual", lifecycleAction={"action": "start"})
    world = running_world("Manual")
    assert world.vmi is not None
    world.vmi["status"] = {"phase": "Succeeded", "conditions": []}
    accepted = decide(cr, {"phase": "Stopped"}, world)
    assert accepted.status["lifecycleState"]["state"] == "Accepted"
    assert accepted.status["lifecycleState"]["vmiUid"] == "vmi-1"
    called = decide(cr, accepted.status, world)
    assert calls(called) == [VmCall("start", "web-1-vm")]
    # The start's own VMI is what shows it landed (after a crash before "Issued" was written).

    booted = running_world("Manual")
    assert booted.vmi is not None
    booted.vmi["metadata"]["uid"] = "vmi-2"
    after_crash = decide(cr, accepted.status, Observed(**booted.__dict__))
    assert calls(after_crash) == []
    assert after_crash.status["lifecycleState"]["issued"] is True


def _restart_then_stop(strategy: str) -> tuple[Any, Any, Any]:
    """A restart called, then a forced stop request (generation 2): (stop, status, world)."""
    restart = wukong(
        runStrategy=strategy, lifecycleAction={"action": "restart", "requestedAt": "1"}
    )
    world = running_world(strategy)
    called = decide(restart, decide(restart, {"phase": "Running"}, world).status, world)
    assert calls(called) == [VmCall("restart", "web-1-vm")]
    stop = wukong(
        runStrategy=strategy, lifecycleAction={"action": "stop", "requestedAt": "2", "force": True}
    )
    stop = stop.model_copy(update={"metadata": stop.metadata.model_copy(update={"generation": 2})})
    return stop, called.status, world


def _restarting(strategy: str, *, vmi: bool) -> Observed:
    """KubeVirt mid-restart: (Stop, Start) pending and the old VMI going, or only the Start
    pending and no VMI."""
    world = running_world(strategy)
    assert world.vm is not None and world.vmi is not None
    pending = [{"action": "Stop", "uid": "vmi-1"}] if vmi else []
    world.vm["status"] = {"stateChangeRequests": [*pending, {"action": "Start"}]}
    world.vmi["metadata"]["deletionTimestamp"] = "2026-11-23T12:00:01Z"
    return world if vmi else Observed(**{**world.__dict__, "vmi": None})


def _rebooted(strategy: str) -> Observed:
    world = running_world(strategy)
    assert world.vmi is not None
    world.vmi["metadata"]["uid"] = "vmi-2"
    return world


def test_a_stop_right_after_a_restart_is_called_not_taken_for_the_restarts_stop() -> None:
    # Found by test_lifecycle_sequences with KubeVirt's own components: a stop accepted while
    # a restart's (Stop, Start) requests were pending was taken as already made (a Stop
    # pending, the VMI going); it was never called, and KubeVirt's pending Start then ran
    # the VM the user had just stopped. Under RerunOnFailure (and Manual) virt-api's stop
    # replaces the pending requests: it is called at once.
    stop, status, _ = _restart_then_stop("RerunOnFailure")
    world = _restarting("RerunOnFailure", vmi=True)
    accepted = decide(stop, status, world)
    assert accepted.status["lifecycleState"]["state"] == "Accepted"
    assert [c.verb for c in calls(decide(stop, accepted.status, world))] == ["stop"]


@pytest.mark.parametrize(
    ("strategy", "vmi", "ended"),
    [
        pytest.param("Always", True, False, id="Always-old-vmi-going"),
        pytest.param("Always", False, False, id="Always-no-vmi"),
        pytest.param("RerunOnFailure", False, False, id="RerunOnFailure-no-vmi"),
        pytest.param("RerunOnFailure", True, True, id="RerunOnFailure-old-vmi-ended"),
        pytest.param("Manual", True, True, id="Manual-old-vmi-ended"),
    ],
)
def test_a_stop_waits_for_the_vmi_a_pending_restart_makes(
    strategy: str, vmi: bool, ended: bool
) -> None:
    # With no VMI, or one that has ended (Succeeded: virt-api's IsFinal), virt-api answers a
    # stop 409 "VM is not running"; under Always its stop only sets Halted, and
    # virt-controller turns that back to Always to serve the pending Start. Either way the VM
    # would run again: the stop waits, then stops the new VMI. (Found with an ended VMI by
    # test_lifecycle_sequences, seed 268001540, RerunOnFailure: the 409 left the restart's
    # Start pending; the Halted that followed was turned into Always by virt-controller to
    # serve it, and the Wukong warned that someone outside had started the VM.)
    stop, status, _ = _restart_then_stop(strategy)
    world = _restarting(strategy, vmi=vmi)
    if ended:
        assert world.vmi is not None
        world.vmi["status"]["phase"] = "Succeeded"
    accepted = decide(stop, status, world)
    waiting = decide(stop, accepted.status, world)
    assert calls(waiting) == []
    assert waiting.status["lifecycleState"]["state"] == "Accepted"
    stopping = decide(stop, waiting.status, _rebooted(strategy))
    assert [c.verb for c in calls(stopping)] == ["stop"]


@pytest.mark.parametrize("strategy", ["Manual", "RerunOnFailure"])
def test_a_start_waits_for_kubevirt_to_serve_a_pending_stop(strategy: str) -> None:
    # virt-api adds a start's Start request only to an empty list: while the Stop of an
    # earlier stop is still pending (the VMI gone, virt-controller not yet past it) it
    # answers 500 "stop/start already underway". The start was retried after the queue's
    # backoff; it now waits for virt-controller to clear the Stop (a VM event), then is
    # called once.
    cr = wukong(runStrategy=strategy, lifecycleAction={"action": "start"})
    world = running_world(strategy)
    assert world.vm is not None
    world.vm["status"] = {"stateChangeRequests": [{"action": "Stop", "uid": "vmi-1"}]}
    stopping = Observed(**{**world.__dict__, "vmi": None})
    accepted = decide(cr, {"phase": "Stopped"}, stopping)
    assert accepted.status["lifecycleState"]["state"] == "Accepted"
    waiting = decide(cr, accepted.status, stopping)
    assert calls(waiting) == []
    assert waiting.status["lifecycleState"]["state"] == "Accepted"
    served = running_world(strategy)
    gone = Observed(**{**served.__dict__, "vmi": None})
    assert calls(decide(cr, waiting.status, gone)) == [VmCall("start", "web-1-vm")]


def test_a_vm_deleted_outside_wukong_is_made_again_with_a_warning_and_started_under_manual() -> (
    None
):
    """`kubectl delete vm`: the Wukong said only "VMIStopped" (Normal) and made the VM again
    without a word, and under Manual the new VM stayed stopped for good although nobody
    stopped it: the auto start was only for a Wukong that had never made a request."""
    cr = wukong(runStrategy="Manual", startStrategy={"autoStart": True})
    earlier = NOW - timedelta(hours=1)
    old_vm = running_world(strategy="Manual").vm
    assert old_vm is not None
    status: dict[str, Any] = {"phase": "Starting"}
    for world in (ready_children(vm=old_vm), ready_children(vm=old_vm), running_world("Manual")):
        status = decide(cr, status, Observed(**{**world.__dict__, "now": earlier})).status
    assert status["phase"] == "Running"
    assert status["lifecycleState"]["lastAction"] == "start"
    gone = decide(cr, status, ready_children())
    assert gone.status["phase"] == "Creating"
    warned = [a for a in gone.actions if isinstance(a, Emit) and a.type == "Warning"]
    assert [a.reason for a in warned] == ["VMDeleted"]
    assert "deleted outside Wukong" in warned[0].message
    assert [a.kind for a in gone.actions if isinstance(a, CreateChild)] == ["VirtualMachine"]
    new_vm = {**old_vm, "metadata": {**old_vm["metadata"], "uid": "vm-2"}}
    status, made = gone.status, list[VmCall]()
    for _ in range(3):
        plan = decide(cr, status, ready_children(vm=new_vm))
        status, made = plan.status, made + calls(plan)
    assert status["phase"] == "Starting"
    assert made == [VmCall("start", "web-1-vm")]


def test_a_manual_vm_started_by_a_request_is_not_started_again_before_its_vmi_shows() -> None:
    """The guard of the rule above: only the pass that first sees a new VM starts it. Here a
    start asked of this VM has landed, and the cache shows neither KubeVirt's Start request
    nor the VMI yet: no second start."""
    cr = wukong(
        runStrategy="Manual",
        startStrategy={"autoStart": False},
        lifecycleAction={"action": "start"},
    )
    vm = running_world(strategy="Manual").vm
    assert vm is not None
    pending = {**vm, "status": {"stateChangeRequests": [{"action": "Start"}]}}
    status: dict[str, Any] = {"phase": "Stopped"}
    made = list[VmCall]()
    for world in (vm, vm, pending, vm, vm):
        plan = decide(cr, status, ready_children(vm=world))
        status, made = plan.status, made + calls(plan)
    assert status["phase"] == "Starting"
    assert status["lifecycleState"]["state"] == "Issued"  # in flight until the guest runs
    assert made == [VmCall("start", "web-1-vm")]


def _reverted(plan: Any) -> list[str]:
    return [a.message for a in plan.actions if isinstance(a, Emit) and a.type == "Warning"]


def _strategy_patches(plan: Any) -> list[Any]:
    return [
        a.patch for a in plan.actions if isinstance(a, PatchChild) and a.kind == "VirtualMachine"
    ]


def test_a_virtctl_stop_is_undone_with_a_warning_not_silently() -> None:
    """`virtctl stop` sets runStrategy Halted; the Wukong (runStrategy Always, no request)
    sets it back, and the guest comes back up. That was silent."""
    world = running_world()
    assert world.vm is not None
    world.vm["spec"]["runStrategy"] = "Halted"
    plan = decide(wukong(), {"phase": "Running", "observedGeneration": 1}, world)
    assert _strategy_patches(plan) == [{"spec": {"runStrategy": "Always"}}]
    [warning] = _reverted(plan)
    assert "web-1-vm was stopped outside Wukong (runStrategy Halted" in warning
    assert "set back to Always" in warning


def test_a_virtctl_start_after_a_wukong_stop_is_undone_with_a_warning() -> None:
    cr = wukong(lifecycleAction={"action": "stop"})
    world = running_world()
    status: dict[str, Any] = {"phase": "Running"}
    for _ in range(2):
        status = decide(cr, status, world).status
    assert world.vm is not None
    halted = {**world.vm, "spec": {**world.vm["spec"], "runStrategy": "Halted"}}
    stopped = ready_children(vm=halted)
    status = decide(cr, status, stopped).status
    assert status["phase"] == "Stopped"
    started = running_world()  # `virtctl start`: Always, and a guest
    plan = decide(cr, status, started)
    assert _strategy_patches(plan) == [{"spec": {"runStrategy": "Halted"}}]
    assert "web-1-vm was started outside Wukong (runStrategy Always" in _reverted(plan)[0]


def test_a_spec_edit_or_kubevirts_answer_to_our_start_is_aligned_without_a_warning() -> None:
    world = running_world()
    assert world.vm is not None
    world.vm["spec"]["runStrategy"] = "Halted"
    edited = wukong()  # generation 1, not yet observed: the runStrategy edit is the spec's
    plan = decide(edited, {"phase": "Stopped", "observedGeneration": 0}, world)
    assert _strategy_patches(plan) == [{"spec": {"runStrategy": "Always"}}]
    assert _reverted(plan) == []
    # KubeVirt's start turns Halted into Always; a RerunOnFailure user wants theirs back.
    rerun = wukong(runStrategy="RerunOnFailure")
    done = {"lastAction": "start", "state": "Done", "issued": True, "requestId": "x"}
    ran = running_world()
    status = {"phase": "Running", "observedGeneration": 1, "lifecycleState": done}
    plan = decide(rerun, status, ran)
    assert _strategy_patches(plan) == [{"spec": {"runStrategy": "RerunOnFailure"}}]
    assert _reverted(plan) == []


def _io_paused() -> Any:
    world = running_world()
    world.vmi["status"]["conditions"] = [
        {"type": "Ready", "status": "False", "reason": "PausedIOError"},
        {
            "type": "Paused",
            "status": "True",
            "reason": "PausedIOError",
            "message": "VMI was paused, low-level IO error detected",
        },
    ]
    return world


def test_a_suspend_of_a_guest_qemu_paused_is_refused_not_taken_for_made() -> None:
    """QEMU paused the guest on a disk error. A suspend took that pause for its own call: it
    said "suspend sent to KubeVirt" without a call, and the Wukong stayed Suspending for
    good, even once KubeVirt had resumed the guest."""
    cr = wukong(lifecycleAction={"action": "suspend"})
    status: dict[str, Any] = {"phase": "Running"}
    for _ in range(3):
        plan = decide(cr, status, _io_paused())
        status = plan.status
        assert calls(plan) == []
    assert status["phase"] == "Running"
    state = status["lifecycleState"]
    assert state["state"] == "Refused"
    assert state["message"].startswith("cannot suspend: KubeVirt has paused the guest itself")


@pytest.mark.parametrize(("verb", "phase"), [("restart", "Restarting"), ("suspend", "Suspending")])
def test_a_call_kubevirt_refuses_brings_the_phase_back_with_a_warning(
    verb: str, phase: str
) -> None:
    """A restart or pause KubeVirt answers 409 (e.g. a snapshot in progress) changes nothing;
    the Wukong stayed Restarting or Suspending for good, and a graceful restart's deadline
    would later force a restart KubeVirt had refused."""
    cr = wukong(lifecycleAction={"action": verb})
    world = running_world()
    written = _refused(cr, world)
    assert written["phase"] == phase
    back = decide(cr, written, world)
    assert back.status["phase"] == "Running"
    assert calls(back) == []
    [event] = [a for a in back.actions if isinstance(a, Emit) and a.reason == "CallRefused"]
    assert event.type == "Warning"
    assert "VM snapshot is in progress" in event.message
    later = Observed(**{**world.__dict__, "now": NOW + timedelta(minutes=10)})
    assert calls(decide(cr, back.status, later)) == []


def _terminating(obj: Any) -> Any:
    gone = copy.deepcopy(obj)
    gone["metadata"]["deletionTimestamp"] = "2026-11-23T12:00:00Z"
    return gone


def _owned(vmi: Any, vm_uid: str) -> Any:
    owned = copy.deepcopy(vmi)
    owner = {"kind": "VirtualMachine", "name": "web-1-vm", "uid": vm_uid, "controller": True}
    owned["metadata"]["ownerReferences"] = [{"apiVersion": "kubevirt.io/v1", **owner}]
    return owned


@pytest.mark.parametrize("verb", ["restart", "suspend"])
def test_a_request_in_flight_when_the_vm_is_deleted_ends_and_the_new_manual_vm_starts(
    verb: str,
) -> None:
    """Found by review: a restart or suspend Issued on the old VM stayed in flight through the
    VMDeleted hop, and the new Manual VM was never started (Starting for good)."""
    cr = wukong(runStrategy="Manual", lifecycleAction={"action": verb})
    world = running_world("Manual")
    status = decide(cr, {"phase": "Running"}, world).status
    status = decide(cr, status, world).status  # the call
    assert status["lifecycleState"]["state"] == "Issued"
    old = Observed(**{**world.__dict__, "vm": _terminating(world.vm)})
    status = decide(cr, status, old).status
    assert status["phase"] == "Creating"
    state = status["lifecycleState"]
    assert (state["state"], state["message"]) == (
        "Done",
        f"{verb} ended: the VM was deleted outside Wukong",
    )
    new_vm = {**world.vm, "metadata": {**world.vm["metadata"], "uid": "vm-2"}}  # type: ignore[index]
    made: list[VmCall] = []
    for _ in range(3):
        plan = decide(cr, status, ready_children(vm=new_vm))
        status, made = plan.status, made + calls(plan)
    assert made == [VmCall("start", "web-1-vm")]


def test_no_call_goes_to_a_vm_being_deleted() -> None:
    cr = wukong(lifecycleAction={"action": "restart"})
    world = running_world()
    accepted = decide(cr, {"phase": "Running"}, world).status
    plan = decide(cr, accepted, Observed(**{**world.__dict__, "vm": _terminating(world.vm)}))
    assert calls(plan) == []


def test_the_old_vmi_lingering_in_the_cache_is_not_the_new_vms() -> None:
    """The VM and VMI caches come from two watch streams: the pass that first sees the VM
    made again may still see the old VM's VMI. It was taken for the new VM's guest: the
    Wukong went Running on it, then Stopped, and a Manual VM was never started."""
    from wukong.act.reconciler import observe

    world = running_world("Manual")
    assert world.vm is not None and world.vmi is not None
    new_vm = {**world.vm, "metadata": {**world.vm["metadata"], "uid": "vm-2"}}
    cached = {
        ("virtualmachines", "web-1-vm"): new_vm,
        ("virtualmachineinstances", "web-1-vm"): _terminating(_owned(world.vmi, "vm-uid")),
    }

    class Store:
        def get(self, kind: str, namespace: str, name: str) -> Any:
            return cached.get((kind.split(".")[0], name))

        def by_label(self, kind: str, label: str, value: str) -> list[Any]:
            return []

        def list(self, kind: str, namespace: str | None = None, selector: Any = None) -> list[Any]:
            return []

        def remember(self, kind: str, obj: Any) -> None:
            pass

    seen = observe(Store(), wukong(), NOW)
    assert seen.vm is new_vm and seen.vmi is None
    cached[("virtualmachineinstances", "web-1-vm")] = _owned(world.vmi, "vm-2")
    assert observe(Store(), wukong(), NOW).vmi is not None


def test_our_own_calls_and_spec_edits_are_never_reported_as_done_outside_wukong() -> None:
    """Found by review: a plain stop of a RerunOnFailure Wukong (KubeVirt leaves
    RerunOnFailure with a Stop request; the operator then sets Halted), one update setting
    runStrategy Manual with a restart, and a pass that sees the VM before our own call shows
    in the cache, each posted RunStrategyReverted."""
    rerun = wukong(runStrategy="RerunOnFailure", lifecycleAction={"action": "stop"})
    world = running_world("RerunOnFailure")
    warnings: list[str] = []
    status: dict[str, Any] = {"phase": "Running", "observedGeneration": 0}
    for _ in range(3):
        plan = decide(rerun, status, world)
        status, warnings = plan.status, warnings + _reverted(plan)
    manual = wukong(runStrategy="Manual", lifecycleAction={"action": "restart"})
    status = {"phase": "Running", "observedGeneration": 0}
    for _ in range(3):
        plan = decide(manual, status, running_world())
        status, warnings = plan.status, warnings + _reverted(plan)
    stop = wukong(lifecycleAction={"action": "stop"})
    status = {"phase": "Running", "observedGeneration": 0}
    for _ in range(3):  # the VM still shows Always after our stop: the cache is behind
        plan = decide(stop, status, running_world())
        status, warnings = plan.status, warnings + _reverted(plan)
    assert warnings == []


def test_a_request_that_arrives_with_the_vm_deletion_makes_no_call_and_the_manual_vm_starts() -> (
    None
):
    """Found by the second review: a suspend first seen in the pass that sees the VM being
    deleted kept its call; it went to the VM made again, and a Manual one never started."""
    cr = wukong(runStrategy="Manual", lifecycleAction={"action": "suspend"})
    world = running_world("Manual")
    assert world.vm is not None
    running = {"phase": "Running", "vmName": "web-1-vm"}
    plan = decide(cr, running, Observed(**{**world.__dict__, "vm": _terminating(world.vm)}))
    status = plan.status
    assert status["phase"] == "Creating"
    assert status["lifecycleState"]["state"] == "Done"
    assert status["lifecycleState"]["message"] == "suspend ended: the VM was deleted outside Wukong"
    new_vm = {**world.vm, "metadata": {**world.vm["metadata"], "uid": "vm-2"}}
    made: list[VmCall] = []
    for _ in range(3):
        plan = decide(cr, status, ready_children(vm=new_vm))
        status, made = plan.status, made + calls(plan)
    assert made == [VmCall("start", "web-1-vm")]


def _refused(cr: Any, world: Any) -> Any:
    """The status after KubeVirt refused the request's call with a 409."""
    accepted = decide(cr, {"phase": "Running"}, world)
    called = decide(cr, accepted.status, world)
    [call] = calls(called)
    return folded(
        called.status, accepted.status, {call: Failed("refused", "VM snapshot is in progress", 409)}
    )


def test_a_refusal_is_not_hidden_by_a_new_request_and_its_deadline_forces_nothing() -> None:
    """Found by the second review: the refusal was read from the record a new request
    makes, so a request sent meanwhile kept the phase Restarting, and the refused graceful
    restart's deadline then forced that very restart."""
    graceful = {"action": "restart", "gracePeriodSeconds": 30}
    world = running_world()
    status = _refused(wukong(lifecycleAction=graceful), world)
    assert status["lifecycleState"].get("deadline") is None
    start = wukong(lifecycleAction={"action": "start"})  # refused: the VM runs
    plan = decide(start, status, world)
    assert plan.status["phase"] == "Running"
    later = Observed(**{**world.__dict__, "now": NOW + timedelta(minutes=10)})
    assert calls(decide(start, plan.status, later)) == []


def test_a_refused_forced_escalation_of_a_graceful_restart_is_not_a_refused_restart() -> None:
    """Found by the second review: the graceful restart was made; its forced escalation got
    KubeVirt's 409 "VM is not running" while the old VMI went, and the request was recorded
    "KubeVirt refused restart", with a false CallRefused Warning and phase Running."""
    cr = wukong(lifecycleAction={"action": "restart", "gracePeriodSeconds": 30})
    issued, forced, later = _past_the_deadline(cr)
    force = VmCall("restart", "web-1-vm", grace_period=0, force=True)
    assert force in calls(forced)
    written = folded(
        forced.status, issued.status, {force: Failed("refused", "VM is not running", 409)}
    )
    state = written["lifecycleState"]
    assert (state["state"], state["escalated"]) == ("Issued", True)
    assert state["message"] == "forced restart refused: VM is not running"
    after = decide(cr, written, later)
    assert after.status["phase"] == "Restarting"
    assert not [a for a in after.actions if isinstance(a, Emit) and a.reason == "CallRefused"]


def _user_paused() -> Any:
    world = running_world()
    world.vmi["status"]["conditions"] = [
        {"type": "Ready", "status": "False"},
        {"type": "Paused", "status": "True", "reason": "PausedByUser"},
    ]
    return world


@pytest.mark.parametrize(
    ("first", "then", "phase", "call", "ends"),
    [
        ("suspend", "resume", "Running", "unpause", "Resuming"),
        ("resume", "suspend", "Suspended", "pause", "Suspending"),
    ],
)
def test_a_suspend_or_resume_sent_before_the_other_shows_is_called_once_it_shows(
    first: str, then: str, phase: str, call: str, ends: str
) -> None:
    """A resume sent while our pause was made but not yet in the cache found the guest "not
    paused" and counted its unpause as made: the record said "resume done", and the guest
    stayed paused once the pause showed. A suspend right after a resume the same way left
    the guest running. The later request now waits for the earlier call's effect."""
    before, after = (running_world(), _user_paused())
    if first == "resume":
        before, after = after, before
    cr = wukong(lifecycleAction={"action": first, "requestedAt": "2026-11-23T11:59:00Z"})
    accepted = decide(cr, {"phase": phase, "vmName": "web-1-vm"}, before)
    issued = decide(cr, accepted.status, before)
    assert [c.verb for c in calls(issued)] == [{"suspend": "pause", "resume": "unpause"}[first]]
    cr = wukong(lifecycleAction={"action": then, "requestedAt": "2026-11-23T12:00:01Z"})
    status = issued.status
    for _ in range(2):  # the cache still shows the guest as before the first call
        plan = decide(cr, status, before)
        assert calls(plan) == []
        status = plan.status
        assert status["lifecycleState"]["lastAction"] == first
    # The first call's effect shows: that pass settles its record and the phase, and the
    # later request is taken on the next pass, from the phase the guest is in.
    shown = decide(cr, status, after)
    assert shown.status["lifecycleState"]["lastAction"] == first
    assert shown.requeue_after == 0  # settled: the next pass follows at once
    taken = decide(cr, shown.status, after)
    assert taken.status["lifecycleState"]["lastAction"] == then
    made = decide(cr, taken.status, after)
    assert [c.verb for c in calls(made)] == [call]
    assert made.status["phase"] == ends
    assert made.status["lifecycleState"]["state"] == "Issued"


@pytest.mark.parametrize("between", ["start", "restart"])
def test_a_request_sent_before_a_pause_shows_waits_for_it(between: str) -> None:
    """Found by test_lifecycle_sequences (seed 1019735738, Manual): suspend, then start,
    start and resume within a tenth of a second. The start, refused at once, replaced the
    suspend's record (its pause made, not yet in the cache), so the resume no longer waited
    for the pause: it found the guest "not paused", counted its unpause as made, and the
    guest stayed paused with the resume "done". Start and restart now wait too."""
    world = running_world("Manual")
    cr = wukong(lifecycleAction={"action": "suspend", "requestedAt": "2026-11-23T11:59:00Z"})
    accepted = decide(cr, {"phase": "Running", "vmName": "web-1-vm"}, world)
    issued = decide(cr, accepted.status, world)
    assert [c.verb for c in calls(issued)] == ["pause"]
    other = wukong(lifecycleAction={"action": between, "requestedAt": "2026-11-23T12:00:01Z"})
    held = decide(other, issued.status, world)  # the cache does not show the pause yet
    assert calls(held) == []
    assert held.status["lifecycleState"]["lastAction"] == "suspend"
    assert held.requeue_after is not None and held.requeue_after <= 10
    resume = wukong(lifecycleAction={"action": "resume", "requestedAt": "2026-11-23T12:00:02Z"})
    still = decide(resume, held.status, world)
    assert calls(still) == [] and still.status["lifecycleState"]["lastAction"] == "suspend"
    settled = decide(resume, still.status, _user_paused())
    assert settled.status["phase"] == "Suspended"
    taken = decide(resume, settled.status, _user_paused())
    made = decide(resume, taken.status, _user_paused())
    assert [c.verb for c in calls(made)] == ["unpause"]


def test_a_restart_sent_before_a_resume_shows_is_taken_once_the_guest_runs() -> None:
    """Found by the review of the fix above: the restart, let through in the pass that saw
    the unpause, was judged in Resuming and refused ("the VM is still resuming") while that
    same pass moved the Wukong to Running."""
    cr = wukong(lifecycleAction={"action": "resume", "requestedAt": "2026-11-23T11:59:00Z"})
    accepted = decide(cr, {"phase": "Suspended", "vmName": "web-1-vm"}, _user_paused())
    issued = decide(cr, accepted.status, _user_paused())
    assert [c.verb for c in calls(issued)] == ["unpause"]
    restart = wukong(lifecycleAction={"action": "restart", "requestedAt": "2026-11-23T12:00:01Z"})
    held = decide(restart, issued.status, _user_paused())
    assert held.status["lifecycleState"]["lastAction"] == "resume"
    settled = decide(restart, held.status, running_world())
    assert settled.status["phase"] == "Running"
    assert settled.status["lifecycleState"]["lastAction"] == "resume"
    taken = decide(restart, settled.status, running_world())
    state = taken.status["lifecycleState"]
    assert (state["lastAction"], state["state"]) == ("restart", "Accepted"), state
    assert [c.verb for c in calls(decide(restart, taken.status, running_world()))] == ["restart"]


def test_a_stop_is_not_held_by_a_pause_that_has_not_shown() -> None:
    """A stop's effect does not depend on the pause (every phase a pause leaves takes it),
    and a forced stop of a guest whose pause never shows (QEMU had paused it) waited 10 s."""
    world = running_world()
    cr = wukong(lifecycleAction={"action": "suspend", "requestedAt": "2026-11-23T11:59:00Z"})
    issued = decide(cr, decide(cr, {"phase": "Running"}, world).status, world)
    stop = wukong(lifecycleAction={"action": "stop", "force": True, "requestedAt": "b"})
    taken = decide(stop, issued.status, world)
    assert taken.status["lifecycleState"]["lastAction"] == "stop"


def test_the_hold_is_never_longer_than_the_window_whatever_the_clock() -> None:
    """A pass whose clock is behind the one that made the call (another replica after a
    failover, an NTP step) held for the difference plus 10 s."""
    world = running_world()
    cr = wukong(lifecycleAction={"action": "suspend", "requestedAt": "2026-11-23T11:59:00Z"})
    issued = decide(cr, decide(cr, {"phase": "Running"}, world).status, world)
    behind = Observed(**{**world.__dict__, "now": NOW - timedelta(seconds=120)})
    resume = wukong(lifecycleAction={"action": "resume", "requestedAt": "b"})
    held = decide(resume, issued.status, behind)
    assert held.status["lifecycleState"]["lastAction"] == "suspend"
    assert held.requeue_after is not None and held.requeue_after <= 10


def _restart_skew(world: Any, printable: str, vmi: Any) -> Observed:
    """The VM cache ahead of the VMI cache: the VM's status says `printable` with no request
    pending, the VMI cache still shows `vmi`."""
    vm = copy.deepcopy(world.vm)
    vm.setdefault("status", {})["stateChangeRequests"] = []
    vm["status"]["printableStatus"] = printable
    return Observed(**{**world.__dict__, "vm": vm, "vmi": vmi})


@pytest.mark.parametrize("force", [False, True], ids=["graceful", "forced"])
@pytest.mark.parametrize("printable", ["Running", "Starting"])
@pytest.mark.parametrize("old_vmi", ["deleting", "gone"])
def test_a_stop_right_after_a_restart_is_made_whatever_the_vmi_cache_still_shows(
    printable: str, old_vmi: str, force: bool
) -> None:
    """Found by test_lifecycle_sequences (seed 1019735738, Manual): restart, then stop 20 ms
    later. The VM's cache showed the restart done (the new VMI, no request pending) while the
    VMI cache still showed the old VMI deleting or gone: the stop counted that as its own
    effect, was never made, and the guest ran on with the stop "done". The same for a forced
    stop (seed 542946708, CI of 9a72901: Stopping for good), where "no VMI" passed for its
    effect whatever the VM said."""
    world = running_world("Manual")
    restart = wukong(lifecycleAction={"action": "restart", "requestedAt": "a"})
    accepted = decide(restart, {"phase": "Running", "vmName": "web-1-vm"}, world)
    issued = decide(restart, accepted.status, world)
    assert [c.verb for c in calls(issued)] == ["restart"]
    old = copy.deepcopy(world.vmi)
    old["metadata"]["deletionTimestamp"] = "2026-11-23T12:00:00Z"
    skewed = _restart_skew(world, printable, old if old_vmi == "deleting" else None)
    stop = wukong(lifecycleAction={"action": "stop", "requestedAt": "b", "force": force})
    taken = decide(stop, issued.status, skewed)
    assert taken.status["lifecycleState"]["lastAction"] == "stop"
    made = decide(stop, taken.status, skewed)
    assert [c.verb for c in calls(made)] == ["stop"]


def test_a_stop_during_a_restarts_gap_stays_stopping_and_stops_the_vmi_that_comes() -> None:
    """Found by test_lifecycle_sequences (seed 1019735738, Manual): restart, then stop 20 ms
    later. The stop met the gap between the restart's two steps (old VMI gone, its Start
    pending): virt-api answered 409 "VM is not running", and while the call waited to be
    made again the Wukong went Stopping -> Stopped on "no VMI", which settled the stop as
    done. The restart's Start then ran the guest again, Running, with the stop "done"."""
    world = running_world("Manual")
    restart = wukong(lifecycleAction={"action": "restart", "requestedAt": "a"})
    issued = decide(restart, decide(restart, {"phase": "Running"}, world).status, world)
    stop = wukong(lifecycleAction={"action": "stop", "requestedAt": "b"})
    taken = decide(stop, issued.status, world)
    assert taken.status["lifecycleState"]["lastAction"] == "stop"
    gap = copy.deepcopy(world.vm)
    gap.setdefault("status", {})["stateChangeRequests"] = [{"action": "Start"}]
    gap["status"]["printableStatus"] = "Starting"
    between = Observed(**{**world.__dict__, "vm": gap, "vmi": None})
    waiting = decide(stop, taken.status, between)
    assert calls(waiting) == []  # no VMI to stop: virt-api would answer 409
    assert waiting.status["phase"] == "Stopping"
    assert waiting.status["lifecycleState"]["state"] == "Accepted"
    new = copy.deepcopy(world.vmi)
    new["metadata"]["uid"] = "vmi-2"
    done = copy.deepcopy(world.vm)
    done.setdefault("status", {})["stateChangeRequests"] = []
    done["status"]["printableStatus"] = "Running"
    back = Observed(**{**world.__dict__, "vm": done, "vmi": new})
    made = decide(stop, waiting.status, back)
    assert [c.verb for c in calls(made)] == ["stop"]
    assert made.status["phase"] == "Stopping"


@pytest.mark.parametrize("printable", ["Stopping", "Stopped"])
def test_a_stop_whose_effect_kubevirt_shows_is_not_made_again(printable: str) -> None:
    """The other side: the operator made the stop and crashed before writing so; the VMI
    goes (or is gone) and KubeVirt says the VM stops: the call is not made twice."""
    world = running_world("Manual")
    stop = wukong(lifecycleAction={"action": "stop", "requestedAt": "b"})
    accepted = decide(stop, {"phase": "Running", "vmName": "web-1-vm"}, world)
    going = copy.deepcopy(world.vmi)
    going["metadata"]["deletionTimestamp"] = "2026-11-23T12:00:00Z"
    for vmi in (going, None):
        after_crash = decide(stop, accepted.status, _restart_skew(world, printable, vmi))
        assert calls(after_crash) == []


def _refused_call(cr: Any, status: dict[str, Any], world: Any, failure: Failed) -> Any:
    """The status after the request in `cr` was accepted and its call failed with `failure`."""
    accepted = decide(cr, status, world)
    called = decide(cr, accepted.status, world)
    [call] = calls(called)
    return folded(called.status, accepted.status, {call: failure})


def test_a_start_kubevirt_refuses_leaves_the_vm_stopped_with_a_warning() -> None:
    """It stayed Starting for good (StartingTooLong after 5 min), and under Halted the
    run strategy was then set to Always: the VM started although KubeVirt had refused."""
    stopped = Observed(**{**running_world("Halted").__dict__, "vmi": None})
    cr = wukong(lifecycleAction={"action": "start"})
    done_stop = {"state": "Done", "lastAction": "stop", "requestId": "x"}
    before = {"phase": "Stopped", "vmName": "web-1-vm", "lifecycleState": done_stop}
    failure = Failed("refused", "VM needs manual recovery after a failed volume migration", 409)
    written = _refused_call(cr, before, stopped, failure)
    back = decide(cr, written, stopped)
    assert back.status["phase"] == "Stopped"
    [event] = [a for a in back.actions if isinstance(a, Emit) and a.reason == "CallRefused"]
    assert event.type == "Warning" and "manual recovery" in event.message
    later = Observed(**{**stopped.__dict__, "now": NOW + timedelta(minutes=10)})
    again = decide(cr, back.status, later)
    assert calls(again) == [] and again.status["phase"] == "Stopped"
    assert not [a for a in again.actions if isinstance(a, PatchChild)]


def test_a_stop_refused_for_good_leaves_the_guest_running_and_its_run_strategy_alone() -> None:
    """A stop the API refused (403, an admission policy) stayed Stopping for good, and the
    run strategy was set to Halted: the VM stopped by another way than the one refused."""
    world = running_world()
    cr = wukong(lifecycleAction={"action": "stop"})
    failure = Failed("permanent", "denied by policy", 403)
    written = _refused_call(cr, {"phase": "Running", "vmName": "web-1-vm"}, world, failure)
    back = decide(cr, written, world)
    assert back.status["phase"] == "Running"
    assert [a.reason for a in back.actions if isinstance(a, Emit)] == ["CallRefused"]
    assert not [a for a in back.actions if isinstance(a, PatchChild)]


def test_a_restart_after_a_refused_call_is_not_taken_back_at_once() -> None:
    """The refusal of the suspend before made the new restart hop Restarting -> Running in
    the pass that accepted it, with a false CallRefused Warning."""
    world = running_world()
    suspend = wukong(lifecycleAction={"action": "suspend", "requestedAt": "a"})
    failure = Failed("refused", "VM snapshot is in progress", 409)
    back = decide(suspend, _refused_call(suspend, {"phase": "Running"}, world, failure), world)
    assert back.status["phase"] == "Running"
    restart = wukong(lifecycleAction={"action": "restart", "requestedAt": "b"})
    accepted = decide(restart, back.status, world)
    assert accepted.status["phase"] == "Restarting"
    assert "CallRefused" not in [a.reason for a in accepted.actions if isinstance(a, Emit)]
    assert calls(decide(restart, accepted.status, world)) == [VmCall("restart", "web-1-vm")]


def _serving_restart(world: Any, *, grace: int = 180, **changes: Any) -> Observed:
    """KubeVirt serving a restart: its Stop and Start pending, the old VMI shutting down."""
    vm = copy.deepcopy(world.vm)
    vm.setdefault("status", {})["stateChangeRequests"] = [
        {"action": "Stop", "uid": "vmi-1"},
        {"action": "Start"},
    ]
    vmi = _terminating(world.vmi)
    vmi["spec"]["terminationGracePeriodSeconds"] = grace
    return Observed(**{**world.__dict__, "vm": vm, "vmi": vmi, **changes})


def _off(world: Any, strategy: str, **changes: Any) -> Observed:
    """After a forced stop under `strategy`: the old VMI gone, nothing pending."""
    vm = copy.deepcopy(world.vm)
    vm["spec"]["runStrategy"] = strategy
    vm.setdefault("status", {})["stateChangeRequests"] = []
    vm["status"]["printableStatus"] = "Stopped"
    return Observed(**{**world.__dict__, "vm": vm, "vmi": None, **changes})


def _new_vmi(world: Any, **changes: Any) -> Observed:
    """The guest started again: a new VMI, running."""
    vmi = copy.deepcopy(world.vmi)
    vmi["metadata"]["uid"] = "vmi-2"
    return Observed(**{**world.__dict__, "vmi": vmi, **changes})


@pytest.mark.parametrize("strategy", ["Always", "Manual", "RerunOnFailure"])
def test_a_restart_kubevirt_serves_is_forced_at_its_deadline_by_a_forced_stop(
    strategy: str,
) -> None:
    """virt-api takes no second restart while it serves one (500 "stop/start already
    underway" until the old VMI is gone): the forced restart at the deadline was refused on
    every retry. A forced stop cuts the old VMI's grace period. Under Always
    virt-controller then starts the new VMI for the pending Start; under Manual and
    RerunOnFailure the stop replaced that Start, and the restart's start is ours to make
    (before, the restart was asked again until the old VMI was gone: its whole grace
    period, 180 s by default, with a GracePeriodExpired Warning on every retry)."""
    world = running_world(strategy)
    asked = {"action": "restart", "gracePeriodSeconds": 5}
    cr = wukong(runStrategy=strategy, lifecycleAction=asked)
    accepted = decide(cr, {"phase": "Running", "vmName": "web-1-vm"}, world)
    called = decide(cr, accepted.status, world)
    assert calls(called) == [VmCall("restart", "web-1-vm")]
    waiting = decide(cr, called.status, _serving_restart(world, now=NOW + timedelta(seconds=2)))
    assert calls(waiting) == []
    late = decide(cr, waiting.status, _serving_restart(world, now=NOW + timedelta(seconds=10)))
    assert calls(late) == [VmCall("stop", "web-1-vm", grace_period=0, force=True)]
    assert late.status["lifecycleState"]["escalated"] is True
    cut = decide(cr, late.status, _serving_restart(world, grace=0, now=NOW + timedelta(seconds=11)))
    assert calls(cut) == [] and cut.status["phase"] == "Restarting"
    off = decide(cr, cut.status, _off(world, strategy, now=NOW + timedelta(seconds=12)))
    assert calls(off) == [] and off.status["phase"] == "Restarting"
    if strategy == "Always":  # virt-controller starts it: nothing of ours to add
        assert off.status["lifecycleState"]["state"] == "Issued"
        return
    assert off.status["lifecycleState"]["state"] == "Accepted"  # recorded before it is made
    assert off.status["lifecycleState"]["call"] == "START_VM"
    start = decide(cr, off.status, _off(world, strategy, now=NOW + timedelta(seconds=12)))
    assert calls(start) == [VmCall("start", "web-1-vm")]
    assert start.status["lifecycleState"]["state"] == "Issued"
    up = decide(cr, start.status, _new_vmi(world, now=NOW + timedelta(seconds=14)))
    assert calls(up) == [] and up.status["phase"] == "Running"
    assert up.status["lifecycleState"]["state"] == "Done"
    assert not [a for a in up.actions if isinstance(a, PatchChild)]  # runStrategy untouched


@pytest.mark.parametrize("strategy", ["Manual", "RerunOnFailure"])
def test_a_forced_restart_during_a_graceful_one_under_manual_stops_then_starts_once(
    strategy: str,
) -> None:
    """`restart --force` while KubeVirt served a graceful restart under Manual was asked
    again until the old VMI was gone (500s for its whole grace period). It is a forced stop
    now, then a start once the old VMI is gone; each is made once, also across a crash."""
    world = running_world(strategy)
    first = {"action": "restart", "requestedAt": "a"}
    graceful = wukong(runStrategy=strategy, lifecycleAction=first)
    called = decide(graceful, decide(graceful, {"phase": "Running"}, world).status, world)
    forced = wukong(
        runStrategy=strategy,
        lifecycleAction={"action": "restart", "force": True, "requestedAt": "b"},
    )
    serving = _serving_restart(world)
    accepted = decide(forced, called.status, serving)
    made = decide(forced, accepted.status, serving)
    assert calls(made) == [VmCall("stop", "web-1-vm", grace_period=0, force=True)]
    # The stop replaced the pending Start; while KubeVirt still holds it, nothing to start.
    stopping = _off(world, strategy)
    stopping.vm["status"]["stateChangeRequests"] = [{"action": "Stop", "uid": "vmi-1"}]
    held = decide(forced, made.status, stopping)
    assert calls(held) == [] and held.status["lifecycleState"]["state"] == "Issued"
    owed = decide(forced, held.status, _off(world, strategy))
    assert calls(owed) == [] and owed.status["lifecycleState"]["call"] == "START_VM"
    start = decide(forced, owed.status, _off(world, strategy))
    assert calls(start) == [VmCall("start", "web-1-vm")]
    # A crash before `Issued` was written: the Start pending (or the new VMI) shows it landed.
    pending = _off(world, strategy)
    pending.vm["status"]["stateChangeRequests"] = [{"action": "Start"}]
    assert calls(decide(forced, owed.status, pending)) == []
    assert calls(decide(forced, owed.status, _new_vmi(world))) == []
    # Made and not yet shown: not owed again.
    assert calls(decide(forced, start.status, _off(world, strategy))) == []
    assert (
        decide(forced, start.status, _off(world, strategy)).status["lifecycleState"]["state"]
        == "Issued"
    )
    up = decide(forced, start.status, _new_vmi(world))
    assert up.status["phase"] == "Running" and up.status["lifecycleState"]["state"] == "Done"


def test_a_refused_start_after_a_forced_restart_leaves_it_stopped() -> None:
    """The forced stop is done and KubeVirt refused the start after it: the guest is off,
    and the Wukong says Stopped rather than Restarting for good."""
    world = running_world("Manual")
    forced = wukong(runStrategy="Manual", lifecycleAction={"action": "restart", "force": True})
    serving = _serving_restart(world)  # review: a plain forced restart is KubeVirt's to start
    accepted = decide(forced, {"phase": "Restarting", "vmName": "web-1-vm"}, serving)
    made = decide(forced, accepted.status, serving)
    owed = decide(forced, made.status, _off(world, "Manual"))
    failure = Failed("refused", "the VM needs manual recovery", 409)
    start = decide(forced, owed.status, _off(world, "Manual"))
    [call] = calls(start)
    written = folded(start.status, owed.status, {call: failure})
    assert written["lifecycleState"]["state"] == "Failed"
    back = decide(forced, written, _off(world, "Manual"))
    assert back.status["phase"] == "Stopped"
    assert [a.reason for a in back.actions if isinstance(a, Emit)] == ["CallRefused"]
    assert calls(back) == []


def test_a_forced_restart_during_a_graceful_one_is_made_and_known_once_it_lands() -> None:
    """`restart --force` while KubeVirt served a graceful restart made no call: the pending
    requests passed for its own. It is now a forced stop (Always), made once: the old VMI's
    grace period cut to 0 shows that it landed."""
    world = running_world()
    graceful = wukong(lifecycleAction={"action": "restart", "requestedAt": "a"})
    called = decide(graceful, decide(graceful, {"phase": "Running"}, world).status, world)
    forced = wukong(lifecycleAction={"action": "restart", "force": True, "requestedAt": "b"})
    serving = _serving_restart(world)
    accepted = decide(forced, called.status, serving)
    assert accepted.status["phase"] == "Restarting" and calls(accepted) == []
    made = decide(forced, accepted.status, serving)
    assert calls(made) == [VmCall("stop", "web-1-vm", grace_period=0, force=True)]
    # A crash before `Issued` was written: the next pass sees the grace period cut.
    assert calls(decide(forced, accepted.status, _serving_restart(world, grace=0))) == []


def test_the_halted_of_our_forced_stop_for_a_restart_is_ours_under_a_refusal() -> None:
    """Found by test_lifecycle_sequences (seed 1384427838, session 37): a forced restart
    made as a forced stop (Always: runStrategy Halted until virt-controller serves the
    pending Start), then a suspend refused while it restarted. The refusal replaced the
    record's state, and that Halted read as `virtctl stop`: a RunStrategyReverted Warning
    'stopped outside Wukong' for the operator's own call."""
    world = running_world()
    graceful = wukong(lifecycleAction={"action": "restart", "requestedAt": "a"})
    called = decide(graceful, decide(graceful, {"phase": "Running"}, world).status, world)
    forced = wukong(lifecycleAction={"action": "restart", "force": True, "requestedAt": "b"})
    serving = _serving_restart(world)
    made = decide(forced, decide(forced, called.status, serving).status, serving)
    assert calls(made) == [VmCall("stop", "web-1-vm", grace_period=0, force=True)]
    suspend = wukong(lifecycleAction={"action": "suspend", "requestedAt": "c"})
    refused = decide(suspend, made.status, serving)
    assert refused.status["lifecycleState"]["state"] == "Refused"
    halted = _serving_restart(world, grace=0)
    assert halted.vm is not None
    halted.vm["spec"]["runStrategy"] = "Halted"  # what virt-api's stop under Always writes
    after = decide(suspend, refused.status, halted)
    said = [a.reason for a in after.actions if isinstance(a, Emit)]
    assert "RunStrategyReverted" not in said, after.actions


def test_a_pause_that_never_shows_holds_the_next_request_only_a_while() -> None:
    """QEMU paused the guest on a disk error just before our pause landed (which then did
    nothing): the user's pause never shows, and the resume sent next was held for good."""
    world = running_world()
    cr = wukong(lifecycleAction={"action": "suspend", "requestedAt": "a"})
    issued = decide(cr, decide(cr, {"phase": "Running"}, world).status, world)
    resume = wukong(lifecycleAction={"action": "resume", "requestedAt": "b"})
    io = _io_paused()
    held = decide(resume, issued.status, Observed(**{**io.__dict__, "now": NOW}))
    assert held.status["lifecycleState"]["lastAction"] == "suspend"
    assert held.requeue_after is not None and held.requeue_after <= 10
    later = Observed(**{**io.__dict__, "now": NOW + timedelta(seconds=11)})
    taken = decide(resume, held.status, later)
    assert taken.status["lifecycleState"]["lastAction"] == "resume"


def test_a_call_meeting_no_vm_ends_the_request_and_keeps_its_run_state() -> None:
    """A 404 (the VM deleted meanwhile) was a refusal: since a refused stop means "keep
    running", the VM made again would have run although the user had stopped it."""
    world = running_world()
    cr = wukong(lifecycleAction={"action": "stop"})
    gone = Failed("permanent", 'virtualmachines "web-1-vm" not found', 404)
    written = _refused_call(cr, {"phase": "Running", "vmName": "web-1-vm"}, world, gone)
    state = written["lifecycleState"]
    assert state["state"] == "Done" and state["message"].startswith("stop ended")
    plan = decide(cr, written, Observed(**{**world.__dict__, "vm": None, "vmi": None}))
    [vm] = [a for a in plan.actions if isinstance(a, CreateChild) and a.kind == "VirtualMachine"]
    assert vm.body["spec"]["runStrategy"] == "Halted"


@pytest.mark.parametrize(
    "answer", ["VM is already running", "Always does not support manual start requests"]
)
def test_a_start_answered_already_running_is_not_a_refusal(answer: str) -> None:
    """Someone started the VM between (or our own start landed before the cache showed
    Always): the 409 was a refusal, and a refused start now means "stay stopped": the VM
    would have been set Halted."""
    stopped = Observed(**{**running_world("Halted").__dict__, "vmi": None})
    cr = wukong(lifecycleAction={"action": "start"})
    done_stop = {"state": "Done", "lastAction": "stop", "requestId": "x"}
    before = {"phase": "Stopped", "vmName": "web-1-vm", "lifecycleState": done_stop}
    running = Failed("refused", answer, 409)
    written = _refused_call(cr, before, stopped, running)
    assert written["lifecycleState"]["state"] == "Issued"
    assert written["lifecycleState"]["message"] == "start: the VM already runs"
    up = decide(cr, written, running_world())
    assert up.status["phase"] == "Running"
    assert not [a for a in up.actions if isinstance(a, PatchChild)]


def test_an_old_refused_start_does_not_speak_for_a_vmi_started_since() -> None:
    """A start KubeVirt refused, then `virtctl start`: the new VMI's end was reported as
    "KubeVirt refused start" again."""
    stopped = Observed(**{**running_world("Halted").__dict__, "vmi": None})
    cr = wukong(lifecycleAction={"action": "start"})
    done_stop = {"state": "Done", "lastAction": "stop", "requestId": "x"}
    before = {"phase": "Stopped", "vmName": "web-1-vm", "lifecycleState": done_stop}
    failure = Failed("refused", "VM needs manual recovery", 409)
    written = _refused_call(cr, before, stopped, failure)
    back = decide(cr, written, stopped)
    assert back.status["phase"] == "Stopped"
    ended = running_world()
    ended.vmi["metadata"]["uid"] = "vmi-new"
    ended.vmi["status"]["phase"] = "Failed"
    plan = decide(cr, {**back.status, "phase": "Starting"}, ended)
    assert "CallRefused" not in [a.reason for a in plan.actions if isinstance(a, Emit)]


def test_a_forced_stop_during_a_graceful_one_is_made() -> None:
    """Under Always the graceful stop's Halted passed for the forced stop's effect: no call,
    and the graceful stop's deadline and escalation were dropped."""
    world = running_world()
    graceful = wukong(lifecycleAction={"action": "stop", "requestedAt": "a"})
    called = decide(graceful, decide(graceful, {"phase": "Running"}, world).status, world)
    vm = copy.deepcopy(world.vm)
    vm["spec"]["runStrategy"] = "Halted"
    vmi = _terminating(world.vmi)
    halting = Observed(**{**world.__dict__, "vm": vm, "vmi": vmi})
    forced = wukong(lifecycleAction={"action": "stop", "force": True, "requestedAt": "b"})
    accepted = decide(forced, called.status, halting)
    made = decide(forced, accepted.status, halting)
    assert calls(made) == [VmCall("stop", "web-1-vm", grace_period=0, force=True)]


def test_a_404_that_is_not_the_vm_gone_is_a_refusal() -> None:
    """Only a 404 naming the VM or VMI ends a request; KubeVirt's subresource API not being
    served is a refusal the user must see, not a request done."""
    world = running_world()
    cr = wukong(lifecycleAction={"action": "restart"})
    missing = Failed("permanent", "the server could not find the requested resource", 404)
    written = _refused_call(cr, {"phase": "Running", "vmName": "web-1-vm"}, world, missing)
    assert written["lifecycleState"]["state"] == "Failed"
    assert decide(cr, written, world).status["phase"] == "Running"


def test_a_refused_stop_goes_back_to_running_whichever_vmi_runs() -> None:
    """The refusal of a stop was dropped once the VMI was another (a crash restarted it
    under Always), and the Wukong stayed Stopping for good while the new VMI ran."""
    world = running_world()
    cr = wukong(lifecycleAction={"action": "stop"})
    failure = Failed("permanent", "denied by policy", 403)
    written = _refused_call(cr, {"phase": "Running", "vmName": "web-1-vm"}, world, failure)
    replaced = running_world()
    replaced.vmi["metadata"]["uid"] = "vmi-2"
    assert decide(cr, written, replaced).status["phase"] == "Running"


def test_a_forced_restart_from_error_with_no_vmi_under_manual_starts_the_guest() -> None:
    """The restart found nothing to stop (the failed VMI was gone): it was taken as made,
    and under Manual nothing started the guest, so the Wukong stayed Restarting."""
    world = running_world("Manual")
    forced = wukong(runStrategy="Manual", lifecycleAction={"action": "restart", "force": True})
    off = _off(world, "Manual")
    accepted = decide(forced, {"phase": "Error", "vmName": "web-1-vm"}, off)
    assert accepted.status["phase"] == "Restarting"
    made = decide(forced, accepted.status, off)
    owed = decide(forced, made.status, off)
    assert owed.status["lifecycleState"]["call"] == "START_VM"
    start = decide(forced, owed.status, off)
    assert calls(start) == [VmCall("start", "web-1-vm")]
    # No VMI was recorded at acceptance: the VMI the start brings is the restarted one.
    up = decide(forced, start.status, _new_vmi(world))
    assert up.status["phase"] == "Running" and up.status["lifecycleState"]["state"] == "Done"


@pytest.mark.parametrize("other", ["start", "suspend", "resume", "restart"])
def test_a_request_refused_during_a_forced_restart_does_not_lose_its_start(other: str) -> None:
    """Review s19 F1: a request refused while the restart ran rewrote the record to Refused,
    and the start owed after the escalation's forced stop (Manual) was never made: the guest
    stayed off, the Wukong Restarting for good."""
    world = running_world("Manual")
    asked = {"action": "restart", "gracePeriodSeconds": 5, "requestedAt": "a"}
    graceful = wukong(runStrategy="Manual", lifecycleAction=asked)
    status = decide(graceful, {"phase": "Running", "vmName": "web-1-vm"}, world).status
    called = decide(graceful, status, world)
    cr = wukong(runStrategy="Manual", lifecycleAction={"action": other, "requestedAt": "b"})
    refused = decide(cr, called.status, _serving_restart(world, now=NOW + timedelta(seconds=2)))
    assert refused.status["lifecycleState"]["state"] == "Refused"
    late = decide(cr, refused.status, _serving_restart(world, now=NOW + timedelta(seconds=10)))
    assert calls(late) == [VmCall("stop", "web-1-vm", grace_period=0, force=True)]
    owed = decide(cr, late.status, _off(world, "Manual", now=NOW + timedelta(seconds=12)))
    assert owed.status["lifecycleState"]["call"] == "START_VM"
    start = decide(cr, owed.status, _off(world, "Manual", now=NOW + timedelta(seconds=12)))
    assert calls(start) == [VmCall("start", "web-1-vm")]
    # Made once: the pass after it, KubeVirt's Start not in the cache yet, calls nothing.
    assert (
        calls(decide(cr, start.status, _off(world, "Manual", now=NOW + timedelta(seconds=13))))
        == []
    )
    up = decide(cr, start.status, _new_vmi(world))
    assert up.status["phase"] == "Running"
    # The record still answers the refused request (seed 3924625094 read "restart done"
    # under its id): the latest request's answer is its refusal.
    record = up.status["lifecycleState"]
    assert record["state"] == "Refused" and record["message"].startswith(f"cannot {other}")
    assert record["generation"] == refused.status["lifecycleState"]["generation"]


def test_a_start_recorded_beside_a_refusal_is_made_by_the_pass_right_after_its_write() -> None:
    """As a request's own recorded call: the reconciler looks again at once after the write
    (not on the next event), and not once the start is made."""
    owed = LifecycleState(state="Refused", last_action="restart", call="START_VM", issued=False)
    assert waits_for_write(WukongStatus(lifecycle_state=owed))
    made = owed.model_copy(update={"issued": True})
    assert not waits_for_write(WukongStatus(lifecycle_state=made))


def test_a_start_made_beside_a_refusal_that_failed_on_its_way_is_made_again() -> None:
    """A 503 or a timeout: the start is owed again; a 409 leaves it (and the refusal stays
    the answer either way)."""
    refusal = {"state": "Refused", "lastAction": "restart", "message": "cannot suspend: …"}
    made = {"phase": "Restarting", "lifecycleState": refusal | {"call": "START_VM", "issued": True}}
    start = VmCall("start", "web-1-vm")
    lost = folded(made, made, {start: Failed("transient", "service unavailable", 503)})
    assert lost["lifecycleState"] == refusal | {"call": "START_VM", "issued": False}
    said = folded(made, made, {start: Failed("permanent", "VM is already running", 409)})
    assert said["lifecycleState"] == made["lifecycleState"]


@pytest.mark.parametrize("strategy", ["Manual", "RerunOnFailure"])
def test_a_forced_restart_kubevirt_serves_itself_owes_no_start(strategy: str) -> None:
    """Review s19 F2: a plain `restart --force` is virt-api's restart (its Stop and Start
    pending, the launcher pod deleted): KubeVirt starts the new VMI. A VM cache showing the
    Start trimmed before the VMI cache shows the new VMI was read as "the guest is off", and
    a start of ours was recorded and made."""
    world = running_world(strategy)
    cr = wukong(runStrategy=strategy, lifecycleAction={"action": "restart", "force": True})
    accepted = decide(cr, {"phase": "Running", "vmName": "web-1-vm"}, world)
    made = decide(cr, accepted.status, world)
    assert calls(made) == [VmCall("restart", "web-1-vm", grace_period=0, force=True)]
    skewed = decide(cr, made.status, _off(world, strategy))
    assert skewed.status["lifecycleState"]["call"] != "START_VM"
    assert calls(decide(cr, skewed.status, _off(world, strategy))) == []


def test_a_refused_forced_stop_while_kubevirt_starts_the_guest_stays_restarting() -> None:
    """Review s19 F4: the forced stop made for a forced restart met no VMI (409 "VM is not
    running") while KubeVirt's own Start was about to run the new one: the Wukong hopped
    Restarting -> Stopped with a false CallRefused Warning. (The test once fed the planners
    that 409 as a refusal, which the executor never reports for a stop.)"""
    world = running_world("Manual")
    graceful = wukong(
        runStrategy="Manual", lifecycleAction={"action": "restart", "requestedAt": "a"}
    )
    called = decide(graceful, decide(graceful, {"phase": "Running"}, world).status, world)
    forced = wukong(
        runStrategy="Manual",
        lifecycleAction={"action": "restart", "force": True, "requestedAt": "b"},
    )
    serving = _serving_restart(world)
    accepted = decide(forced, called.status, serving)
    made = decide(forced, accepted.status, serving)
    [call] = calls(made)
    # A stop's 409 is never a refusal: the executor retries it (test_executor pins that).
    gone = Failed("transient", "VM is not running", 409)
    written = folded(made.status, accepted.status, {call: gone})
    starting = _off(world, "Manual")
    starting.vm["status"]["stateChangeRequests"] = [{"action": "Start"}]
    after = decide(forced, written, starting)
    assert after.status["phase"] == "Restarting"
    assert not [a for a in after.actions if isinstance(a, Emit) and a.reason == "CallRefused"]
    assert decide(forced, after.status, _new_vmi(world)).status["phase"] == "Running"


@pytest.mark.parametrize("strategy", ["Always", "Manual"])
def test_a_forced_restart_when_kubevirts_restart_is_past_its_stop_is_not_called(
    strategy: str,
) -> None:
    """Review s21: `restart --force` while KubeVirt serves a graceful restart, seen when the
    VM's cache shows only its Start left and the VMI's cache the old VMI still going. The
    forced restart went out as a restart; virt-api, finding no VMI, answered 409 "VM is not
    running: Halted" (a refusal), and the Wukong ran again with its request Failed."""
    world = running_world(strategy)
    graceful = wukong(
        runStrategy=strategy, lifecycleAction={"action": "restart", "requestedAt": "a"}
    )
    called = decide(graceful, decide(graceful, {"phase": "Running"}, world).status, world)
    vm = copy.deepcopy(world.vm)
    vm.setdefault("status", {})["stateChangeRequests"] = [{"action": "Start"}]
    assert world.vmi is not None
    lagging = Observed(**{**world.__dict__, "vm": vm, "vmi": _terminating(world.vmi)})
    forced = wukong(
        runStrategy=strategy,
        lifecycleAction={"action": "restart", "force": True, "requestedAt": "b"},
    )
    accepted = decide(forced, called.status, lagging)
    made = decide(forced, accepted.status, lagging)
    assert calls(made) == []
    assert made.status["lifecycleState"]["state"] == "Issued"
    up = decide(forced, made.status, _new_vmi(world))
    assert up.status["phase"] == "Running" and up.status["lifecycleState"]["state"] == "Done"


def test_a_pause_retried_past_the_window_still_holds_the_resume_sent_after_it() -> None:
    """The hold on a resume was timed from the suspend's acceptance: a pause retried on 503s
    for over 10 s let a resume sent right after it through, unheld, and the resume counted
    its unpause as made while the pause had not shown yet (the guest stayed paused). It is
    timed from the call that was made now (lastActionTime)."""
    world = running_world()
    cr = wukong(lifecycleAction={"action": "suspend", "requestedAt": "a"})
    status = decide(cr, {"phase": "Running", "vmName": "web-1-vm"}, world).status
    busy = Failed("transient", "service unavailable", 503)
    for second in range(0, 12, 3):  # 503s for 12 s
        at = Observed(**{**world.__dict__, "now": NOW + timedelta(seconds=second)})
        tried = decide(cr, status, at)
        [call] = calls(tried)
        status = folded(tried.status, status, {call: busy})
        assert status["lifecycleState"]["state"] == "Accepted"
    made = decide(cr, status, Observed(**{**world.__dict__, "now": NOW + timedelta(seconds=12)}))
    assert [c.verb for c in calls(made)] == ["pause"]
    resume = wukong(lifecycleAction={"action": "resume", "requestedAt": "b"})
    soon = Observed(**{**world.__dict__, "now": NOW + timedelta(seconds=13)})
    held = decide(resume, made.status, soon)
    assert held.status["lifecycleState"]["lastAction"] == "suspend"  # the pause not shown yet
    assert calls(held) == [] and held.requeue_after is not None


@pytest.mark.parametrize("strategy", ["Manual", "RerunOnFailure"])
def test_a_restart_stopped_outside_wukong_ends_stopped(strategy: str) -> None:
    """`virtctl stop` while KubeVirt served our restart replaced its Start: the guest was off
    for good and the Wukong said Restarting for good (review s19, p7)."""
    world = running_world(strategy)
    cr = wukong(runStrategy=strategy, lifecycleAction={"action": "restart"})
    accepted = decide(cr, {"phase": "Running", "vmName": "web-1-vm"}, world)
    called = decide(cr, accepted.status, world)
    off = decide(cr, called.status, _off(world, strategy))
    assert off.status["phase"] == "Stopped" and calls(off) == []
    assert off.status["lifecycleState"]["state"] == "Done"
    # Said as what happened, not as a restart that did its work.
    assert off.status["lifecycleState"]["message"] == (
        "restart ended: the VM was stopped outside Wukong"
    )
    [warned] = [a for a in off.actions if isinstance(a, Emit) and a.type == "Warning"]
    assert warned.reason == "VMStoppedOutside" and "virtctl stop" in warned.message
    # Not while KubeVirt has not said so: its VM status written before the VMI was made.
    between = _off(world, strategy)
    between.vm["status"]["printableStatus"] = "Starting"
    assert decide(cr, called.status, between).status["phase"] == "Restarting"


@pytest.mark.parametrize("phase", ["Pending", "Creating"])
def test_a_stop_before_the_vm_exists_has_no_grace_deadline(phase: str) -> None:
    """Session 26's note: a stop of a Wukong whose VM is not made yet (a network refused, disks
    binding) was Issued with a grace deadline 30 s away that nothing would ever reach: there
    is no guest to wait for, the VM is created stopped."""
    cr = wukong(lifecycleAction={"action": "stop", "gracePeriodSeconds": 30})
    world = seen() if phase == "Pending" else ready_children()
    plan = decide(cr, {"phase": phase}, world)
    state = plan.status["lifecycleState"]
    assert (state["state"], state["message"]) == ("Issued", "the VM is created stopped")
    assert "deadline" not in state and "gracePeriodSeconds" not in state, state
    assert calls(plan) == []


def _patches_of_the_vm(plan: Any) -> list[Any]:
    return [
        a.patch for a in plan.actions if isinstance(a, PatchChild) and a.kind == "VirtualMachine"
    ]


@pytest.mark.parametrize("strategy", ["Always", "Manual", "RerunOnFailure"])
def test_editing_auto_start_later_stops_no_vm_that_runs(strategy: str) -> None:
    # autoStart says what happens when the Wukong is created (SPEC §1). Read on every pass,
    # an edit of it to false stopped a VM nobody had asked to stop (runStrategy Halted)
    # and said "started outside Wukong" (found by review, session 37).
    cr = wukong(runStrategy=strategy)
    world = running_world(strategy=strategy)
    first = decide(cr, {"phase": "Running"}, world)  # a status from before the record
    assert first.status["autoStart"] is True
    edited = wukong(runStrategy=strategy, startStrategy={"autoStart": False})
    status = first.status
    for _ in range(3):
        plan = decide(edited, status, world)
        assert _patches_of_the_vm(plan) == [] and calls(plan) == [], plan.actions
        assert not [a for a in plan.actions if isinstance(a, Emit) and a.type == "Warning"]
        status = plan.status
        assert (status["phase"], status["autoStart"]) == ("Running", True)


def test_editing_auto_start_later_starts_no_vm_created_stopped() -> None:
    cr = wukong(startStrategy={"autoStart": False})
    created = decide(cr, {}, ready_children())
    made = [a.body for a in created.actions if isinstance(a, CreateChild)][-1]
    assert made["spec"]["runStrategy"] == "Halted"
    assert "autoStart" not in created.status  # recorded once the VM is seen
    vm = made | {"metadata": made["metadata"] | {"uid": "vm-uid"}}
    world = ready_children(vm=vm)
    seen_once = decide(cr, created.status, world)
    assert (seen_once.status["phase"], seen_once.status["autoStart"]) == ("Stopped", False)
    edited = wukong(startStrategy={"autoStart": True})
    plan = decide(edited, seen_once.status, world)
    assert _patches_of_the_vm(plan) == [] and calls(plan) == [], plan.actions
    assert (plan.status["phase"], plan.status["autoStart"]) == ("Stopped", False)
    # The user's word still counts: a start runs it.
    started = wukong(startStrategy={"autoStart": True}, lifecycleAction={"action": "start"})
    accepted = decide(started, plan.status, world)
    issued = decide(started, accepted.status, world)
    assert calls(accepted) + calls(issued) == [VmCall("start", "web-1-vm")]


@pytest.mark.parametrize("verb", ["stop", "restart"])
def test_a_grace_period_of_0_is_a_forced_call_with_no_deadline_to_pass(verb: str) -> None:
    # `wukong stop web-1 --grace-period 0` was a graceful stop with a deadline of now: virt-api
    # answered 409s on the way, and a Warning said the guest "did not shut down in time"
    # (found by a user audit, session 37). virtctl's --force --grace-period=0 is the same.
    for action in ({"gracePeriodSeconds": 0}, {"gracePeriodSeconds": 0, "force": True}):
        cr = wukong(lifecycleAction={"action": verb, **action})
        world = running_world()
        accepted = decide(cr, {"phase": "Running"}, world)
        life = accepted.status["lifecycleState"]
        assert (life["force"], life.get("deadline")) == (True, None), action
        issued = decide(cr, accepted.status, world)
        late = Observed(**{**world.__dict__, "now": NOW + timedelta(seconds=60)})
        later = decide(cr, issued.status, late)
        made = calls(issued) + calls(later)
        assert made == [VmCall(verb, "web-1-vm", grace_period=0, force=True)], action
        warned = [a for p in (accepted, issued, later) for a in p.actions if isinstance(a, Emit)]
        assert not [a for a in warned if a.type == "Warning"], action


@pytest.mark.parametrize("strategy", ["Manual", "RerunOnFailure"])
def test_kubevirts_own_restart_under_manual_is_starting_not_stopped(strategy: str) -> None:
    """virtctl restart, or a crash under RerunOnFailure: the old VMI gone, KubeVirt's Start
    pending until it makes the new one. Read as Stopped, it wrote a false VMIStopped, and a
    stop sent then was refused "already stopped" while the VM came back (audit, s43)."""
    world = running_world(strategy)
    vm = copy.deepcopy(world.vm)
    vm["status"] = {
        "stateChangeRequests": [{"action": "Start"}],
        "printableStatus": "Stopped",
        "runStrategy": strategy,
    }
    gap = replace(world, vm=vm, vmi=None)
    status = {
        "phase": "Running",
        "vmName": "web-1-vm",
        "autoStart": True,
        "lifecycleState": {"state": "Done", "lastAction": "start", "requestId": "r0"},
    }
    plan = decide(wukong(runStrategy=strategy), status, gap)
    assert plan.status["phase"] == "Starting"
    said = [a.reason for a in plan.actions if isinstance(a, Emit)]
    assert "VMIStopped" not in said and "VMIRestarting" in said
    stop = wukong(runStrategy=strategy, lifecycleAction={"action": "stop"})
    stopping = decide(stop, plan.status, replace(gap, now=gap.now + timedelta(seconds=1)))
    assert stopping.status["lifecycleState"]["state"] == "Accepted"
    assert stopping.status["phase"] == "Stopping"


def _crash_loop(now_offset: float, *, vmi: bool = False) -> Observed:
    """RerunOnFailure in KubeVirt's crash-loop back-off: no VMI, its Start held (vm.go
    startFailureBackoffTimeLeft, up to 300 s); with `vmi`, the VMI that Start made at last."""
    world = running_world("RerunOnFailure")
    vm = copy.deepcopy(world.vm)
    retry = "2026-11-23T12:04:00Z"
    vm["status"] = {
        "printableStatus": "CrashLoopBackOff",
        "runStrategy": "RerunOnFailure",
        "stateChangeRequests": [] if vmi else [{"action": "Start"}],
        "startFailure": {"consecutiveFailCount": 4, "retryAfterTimestamp": retry},
    }
    new = copy.deepcopy(world.vmi)
    new["metadata"]["uid"] = "vmi-2"
    new["status"]["phase"] = "Scheduling"
    return replace(world, vm=vm, vmi=new if vmi else None, now=NOW + timedelta(seconds=now_offset))


def test_a_stop_during_a_crash_loop_back_off_waits_for_the_vmi_and_gives_it_its_grace() -> None:
    """There is no guest to force while KubeVirt holds its Start: the stop was forced at the
    deadline, virt-api answered 409 "VM is not running" on every try, a GracePeriodExpired
    blamed a guest that did not exist, and the status said it waited for the guest to shut
    down (audit, session 43)."""
    running = wukong(runStrategy="RerunOnFailure")
    status = decide(running, {"phase": "Starting", "vmName": "web-1-vm"}, _crash_loop(0)).status
    stop = wukong(runStrategy="RerunOnFailure", lifecycleAction={"action": "stop"})
    status = decide(stop, status, _crash_loop(0)).status
    for later in (1, 31, 120):  # past the 30 s grace: still no call, no Warning
        plan = decide(stop, status, _crash_loop(later))
        assert calls(plan) == []
        assert not [a for a in plan.actions if isinstance(a, Emit) and a.type == "Warning"]
        # The VM's update wakes it, not the passed deadline (it woke every 50 ms).
        assert plan.requeue_after is None or plan.requeue_after > 60
        record = plan.status["lifecycleState"]
        assert record["message"] == (
            "KubeVirt starts the VM again after its crash-loop back-off, at "
            "2026-11-23T12:04:00Z: the stop is made on the VMI it starts"
        )
        status = plan.status
    # KubeVirt makes the VMI: one graceful stop, its grace period counted from now.
    plan = decide(stop, status, _crash_loop(240, vmi=True))
    assert [(c.verb, c.grace_period, c.force) for c in calls(plan)] == [("stop", 30, False)]
    assert plan.status["lifecycleState"]["deadline"] == "2026-11-23T12:04:30Z"
    # A guest that does not shut down in that grace period is forced off, as any other.
    late = decide(stop, plan.status, _crash_loop(271, vmi=True))
    assert [(c.verb, c.force) for c in calls(late)] == [("stop", True)]
    assert [a.reason for a in late.actions if isinstance(a, Emit)] == ["GracePeriodExpired"]


def _paused_world(**vm_status: Any) -> Observed:
    paused = {"type": "Paused", "status": "True", "reason": "PausedByUser"}
    world = running_world(conditions=[{"type": "Ready", "status": "True"}, paused])
    vm = copy.deepcopy(world.vm)
    vm["status"] = vm_status
    return replace(world, vm=vm)


def test_a_resume_waits_for_a_snapshot_that_holds_the_vm() -> None:
    """virt-api answers an unpause 409 "VM snapshot is in progress" while a snapshot holds
    the VM: read as KubeVirt's refusal, the resume was answered Failed for good, where start
    and stop in the same window were retried (audit, session 43)."""
    resume = wukong(lifecycleAction={"action": "resume"})
    locked = _paused_world(snapshotInProgress="web-1-snap")
    accepted = decide(resume, {"phase": "Suspended"}, locked)
    waiting = decide(resume, accepted.status, locked)
    assert calls(waiting) == [] and waiting.status["lifecycleState"]["state"] == "Accepted"
    unlocked = decide(resume, waiting.status, _paused_world())
    assert calls(unlocked) == [VmCall("unpause", "web-1-vm")]


@pytest.mark.parametrize(
    ("verb", "call", "answer", "phase"),
    [
        ("suspend", "pause", "VMI is already paused", "Suspending"),
        ("resume", "unpause", "VMI is not paused", "Resuming"),
    ],
)
def test_a_pause_made_again_after_it_landed_is_not_a_refusal(
    verb: str, call: str, answer: str, phase: str
) -> None:
    """Made again after a 5xx on its way back (the cache not showing it yet), virt-api's
    answer says what the first one did: it was recorded Failed beside the right phase, and
    `--wait` reported a failure for a suspend that worked (audit, session 43)."""
    cr = wukong(lifecycleAction={"action": verb})
    world = running_world() if verb == "suspend" else _paused_world()
    start = "Running" if verb == "suspend" else "Suspended"
    accepted = decide(cr, {"phase": start}, world)
    made = decide(cr, accepted.status, world)
    [vm_call] = calls(made)
    assert vm_call.verb == call
    message = f'Operation cannot be fulfilled on virtualmachineinstance "web-1-vm": {answer}'
    after = folded(made.status, accepted.status, {vm_call: Failed("refused", message, 409)})
    record = after["lifecycleState"]
    assert record["state"] == "Issued" and record["message"].startswith(f"{verb}: the guest")
    assert after["phase"] == phase


def test_a_stop_right_after_our_start_waits_for_the_start_to_show() -> None:
    """test_lifecycle_sequences, seed 2706951415 (KubeVirt's own virt-api): a start, then a
    forced stop 20 ms later. The VM cache still showed the Stopped VM of before the start
    (Halted, no VMI): the forced stop passed for landed and was never made, and the VM the
    start ran was then taken for one started outside Wukong (RunStrategyReverted)."""
    world = running_world("Halted")
    vm = copy.deepcopy(world.vm)
    vm["status"] = {"printableStatus": "Stopped", "runStrategy": "Halted"}
    stopped = replace(world, vm=vm, vmi=None)
    start = wukong(lifecycleAction={"action": "start", "requestedAt": "t1"})
    accepted = decide(start, {"phase": "Stopped", "vmName": "web-1-vm"}, stopped)
    made = decide(start, accepted.status, stopped)
    assert [c.verb for c in calls(made)] == ["start"]
    stop = wukong(lifecycleAction={"action": "stop", "force": True, "requestedAt": "t2"})
    later = replace(stopped, now=stopped.now + timedelta(seconds=0.02))
    held = decide(stop, made.status, later)
    assert calls(held) == []
    assert held.status["lifecycleState"]["lastAction"] == "start"  # the stop not taken yet
    assert held.requeue_after is not None and held.requeue_after <= 10
    # The start shows (runStrategy Always, its VMI): the stop is taken, and made.
    vm = copy.deepcopy(world.vm)
    vm["spec"]["runStrategy"] = "Always"
    vm["status"] = {"printableStatus": "Starting", "runStrategy": "Always"}
    vmi = copy.deepcopy(world.vmi)
    vmi["metadata"]["uid"] = "vmi-2"
    vmi["status"]["phase"] = "Scheduling"
    shown = replace(world, vm=vm, vmi=vmi, now=stopped.now + timedelta(seconds=0.1))
    status = held.status
    made_calls: list[VmCall] = []
    for _ in range(3):
        plan = decide(stop, status, shown)
        made_calls += calls(plan)
        status = plan.status
    assert [(c.verb, c.force) for c in made_calls] == [("stop", True)]


def _older_record(verb: str, state: str = "Accepted", **fields: Any) -> dict[str, Any]:
    """A lifecycleState as 0.1.0 (a5667a9) wrote it: no `call`, `issued: false` until it
    made the call (Accepted), or again after the call failed transiently (Issued)."""
    return {
        "state": state,
        "lastAction": verb,
        "lastActionTime": "2026-11-23T11:59:50Z",
        "generation": 2,
        "issued": False,
        "force": False,
        "vmiUid": "vmi-1",
        "message": f"{verb} accepted" if state == "Accepted" else f"{verb} sent to KubeVirt",
        **fields,
    }


def _stopped_world() -> Observed:
    world = running_world("Halted")
    vm = copy.deepcopy(world.vm)
    vm["status"] = {"printableStatus": "Stopped", "runStrategy": "Halted"}
    return replace(world, vm=vm, vmi=None)


@pytest.mark.parametrize("state", ["Accepted", "Issued"], ids=["accepted", "retried"])
def test_a_restart_an_older_operator_accepted_is_called_not_marked_sent(state: str) -> None:
    """Upgrade audit, session 47, finding 2: 0.1.0 recorded no `call`; its record was read as
    one with nothing to call and marked "restart sent to KubeVirt" without a call, and the
    Wukong stayed Restarting (Stalled), refusing the next restart as already under way."""
    cr = wukong(lifecycleAction={"action": "restart", "requestedAt": "r1"})
    asked = cr.spec.lifecycle_action
    record = _older_record("restart", state, requestId=request_id(asked))
    world = running_world()
    made = decide(cr, {"phase": "Restarting", "lifecycleState": record}, world)
    assert calls(made) == [VmCall("restart", "web-1-vm")]
    life = made.status["lifecycleState"]
    assert (life["state"], life["issued"], life["call"]) == ("Issued", True, "RESTART_VM")
    assert calls(decide(cr, made.status, world)) == []  # once


def test_a_start_an_older_operator_accepted_is_called() -> None:
    cr = wukong(lifecycleAction={"action": "start", "requestedAt": "s1"})
    record = _older_record("start", requestId=request_id(cr.spec.lifecycle_action), vmiUid=None)
    world = _stopped_world()
    made = decide(cr, {"phase": "Starting", "vmName": "web-1-vm", "lifecycleState": record}, world)
    assert calls(made) == [VmCall("start", "web-1-vm")]
    assert made.status["lifecycleState"]["state"] == "Issued"


@pytest.mark.parametrize("state", ["Accepted", "Issued"], ids=["accepted", "retried"])
def test_a_stop_an_older_operator_accepted_is_the_stop_call_with_its_grace_period(
    state: str,
) -> None:
    """Not a runStrategy Halted patch, which stops the guest with the VMI's own grace period
    while the status counts down the one accepted."""
    cr = wukong(lifecycleAction={"action": "stop", "gracePeriodSeconds": 20, "requestedAt": "p1"})
    record = _older_record(
        "stop",
        state,
        requestId=request_id(cr.spec.lifecycle_action),
        deadline="2026-11-23T12:00:10Z",
        gracePeriodSeconds=20,
    )
    made = decide(cr, {"phase": "Stopping", "lifecycleState": record}, running_world())
    assert calls(made) == [VmCall("stop", "web-1-vm", grace_period=20)]
    assert _strategy_patches(made) == []


@pytest.mark.parametrize(
    ("verb", "phase", "call"),
    [
        ("stop", "Stopping", VmCall("stop", "web-1-vm", grace_period=0, force=True)),
        ("restart", "Restarting", VmCall("restart", "web-1-vm", grace_period=0, force=True)),
    ],
)
def test_a_forced_request_an_older_operator_accepted_is_called_forced(
    verb: str, phase: str, call: VmCall
) -> None:
    cr = wukong(lifecycleAction={"action": verb, "force": True, "requestedAt": "f1"})
    record = _older_record(verb, requestId=request_id(cr.spec.lifecycle_action), force=True)
    made = decide(cr, {"phase": phase, "lifecycleState": record}, running_world())
    assert calls(made) == [call]


def test_a_forced_stop_an_older_operator_failed_to_make_is_forced_again() -> None:
    """0.1.0 put `issued: false` back on any call that failed transiently, its escalation's
    too: the forced stop is made again as this operator's failed escalations are."""
    cr = wukong(lifecycleAction={"action": "stop", "gracePeriodSeconds": 20, "requestedAt": "p1"})
    record = _older_record(
        "stop",
        "Issued",
        requestId=request_id(cr.spec.lifecycle_action),
        deadline="2026-11-23T11:59:55Z",
        gracePeriodSeconds=20,
        escalated=True,
        message="grace period over: forced stop",
    )
    made = decide(cr, {"phase": "Stopping", "lifecycleState": record}, running_world())
    assert calls(made) == [VmCall("stop", "web-1-vm", grace_period=0, force=True)]
