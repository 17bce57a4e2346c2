"""Lifecycle operations (issue 6): each action through KubeVirt's subresources, once."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from tests.integration.scenario import (
    OPERATOR_USER,
    condition,
    create,
    get,
    k,
    let_the_guest_go,
    operator,
    path,
    sim,
    took_over,
    wait_for,
    wait_phase,
    wukong,
    wukong_events,
)
from wukong.adapters.kube import Kube
from wukong.testing.eventually import eventually
from wukong.testing.kubevirt import Simulator
from wukong.testing.operator import InProcessOperator, OperatorProcess

__all__ = ["k", "operator", "sim"]  # fixtures
_nonce = itertools.count()


async def request(k: Kube, namespace: str, name: str, action: str, **options: Any) -> int:
    """Write spec.lifecycleAction the way the CLI does (a fresh requestedAt each time);
    returns the generation that carries it."""
    body = {"action": action, "requestedAt": f"t{next(_nonce)}", **options}
    cr = await k.merge_patch(path("wukong", namespace, name), {"spec": {"lifecycleAction": body}})
    return int(cr["metadata"]["generation"])


def answered(generation: int, state: str) -> Any:
    """A check: lifecycleState answers `generation` and is in `state`."""

    def check(cr: dict[str, Any]) -> bool:
        life = (cr.get("status") or {}).get("lifecycleState") or {}
        return life.get("generation") == generation and life.get("state") == state

    return check


def calls(sim: Simulator, verb: str, name: str) -> int:
    """How many times the simulator's virt-api saw `verb` on `name`."""
    return sum(
        1 for c in sim.calls if c.subresource == verb and c.name == name and c.user == OPERATOR_USER
    )


async def running(k: Kube, namespace: str, name: str) -> dict[str, Any]:
    """Create a Wukong and wait until it runs."""
    await create(k, "wukong", namespace, wukong(name))
    return await wait_phase(k, namespace, name, "Running")


async def vm_strategy(k: Kube, namespace: str, name: str) -> str:
    vm = await get(k, "vm", namespace, f"{name}-vm")
    assert vm is not None
    return str(vm["spec"]["runStrategy"])


async def _vmi_gone(k: Kube, namespace: str, name: str) -> bool:
    return await get(k, "vmi", namespace, name) is None


async def test_stop_then_start_follow_run_strategy_and_vmi(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    await running(k, namespace, "vm1")
    await request(k, namespace, "vm1", "stop")
    cr = await wait_phase(k, namespace, "vm1", "Stopped")
    # Real KubeVirt reports the VM Stopped once the guest is off; the VMI object goes a moment
    # later, when its launcher pod is gone (docs/kubevirt-fidelity.md).
    await eventually(lambda: _vmi_gone(k, namespace, "vm1-vm"), timeout=10)
    assert cr["status"]["lifecycleState"]["lastAction"] == "stop"
    assert await vm_strategy(k, namespace, "vm1") == "Halted"
    await request(k, namespace, "vm1", "start")
    await wait_phase(k, namespace, "vm1", "Running")
    assert await vm_strategy(k, namespace, "vm1") == "Always"
    assert calls(sim, "stop", "vm1-vm") == 1 and calls(sim, "start", "vm1-vm") == 1


async def test_editing_auto_start_later_leaves_a_running_vm_running(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    """autoStart says what happens at creation (SPEC §1): an edit of it later (a GitOps
    template changed) set runStrategy Halted on a VM nobody asked to stop (session 37)."""
    cr = await running(k, namespace, "as-1")
    assert cr["status"]["autoStart"] is True
    edited = await k.merge_patch(
        path("wukong", namespace, "as-1"), {"spec": {"startStrategy": {"autoStart": False}}}
    )
    generation = edited["metadata"]["generation"]
    cr = await wait_for(
        k,
        namespace,
        "as-1",
        lambda c: (c.get("status") or {}).get("observedGeneration") == generation,
        what="the edit seen",
    )
    assert (cr["status"]["phase"], cr["status"]["autoStart"]) == ("Running", True)
    assert await vm_strategy(k, namespace, "as-1") == "Always"
    assert await wukong_events(k, namespace, "RunStrategyReverted") == []


async def test_restart_twice_means_two_restarts_and_a_new_vmi_each_time(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    await running(k, namespace, "vm2")
    uids = []
    for expected in (1, 2):
        vmi = await get(k, "vmi", namespace, "vm2-vm")
        assert vmi is not None
        uids.append(vmi["metadata"]["uid"])
        generation = await request(k, namespace, "vm2", "restart")
        await wait_for(k, namespace, "vm2", answered(generation, "Done"), within=20)
        assert calls(sim, "restart", "vm2-vm") == expected
    vmi = await get(k, "vmi", namespace, "vm2-vm")
    assert vmi is not None and vmi["metadata"]["uid"] not in uids


async def test_suspend_and_resume_pause_the_vmi(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    await running(k, namespace, "vm3")
    await request(k, namespace, "vm3", "suspend")
    await wait_phase(k, namespace, "vm3", "Suspended")
    vmi = await get(k, "vmi", namespace, "vm3-vm")
    assert vmi is not None
    assert any(c["type"] == "Paused" and c["status"] == "True" for c in vmi["status"]["conditions"])
    await request(k, namespace, "vm3", "resume")
    await wait_phase(k, namespace, "vm3", "Running")
    assert calls(sim, "pause", "vm3-vm") == 1 and calls(sim, "unpause", "vm3-vm") == 1


async def test_a_resume_sent_as_soon_as_the_suspend_is_made_resumes_the_guest(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    """The resume comes while the pause may not be in the cache yet: it must still unpause
    (it once took "not paused" for its own call made, and the guest stayed paused)."""
    await running(k, namespace, "vm3b")
    suspend = await request(k, namespace, "vm3b", "suspend")
    made = (answered(suspend, "Issued"), answered(suspend, "Done"))
    await wait_for(k, namespace, "vm3b", lambda cr: any(c(cr) for c in made), within=20)
    resume = await request(k, namespace, "vm3b", "resume")
    cr = await wait_for(k, namespace, "vm3b", answered(resume, "Done"), within=20)
    assert cr["status"]["phase"] == "Running"
    vmi = await get(k, "vmi", namespace, "vm3b-vm")
    assert vmi is not None
    assert not any(c["type"] == "Paused" for c in vmi["status"].get("conditions", []))
    assert calls(sim, "pause", "vm3b-vm") == 1 and calls(sim, "unpause", "vm3b-vm") == 1


@pytest.mark.parametrize(
    ("setup", "action", "phase", "words"),
    [
        pytest.param(None, "resume", "Running", "resume", id="resume-while-Running"),
        pytest.param("stop", "suspend", "Stopped", "suspend", id="suspend-while-Stopped"),
        pytest.param("stop", "restart", "Stopped", "restart", id="restart-while-Stopped"),
        pytest.param(None, "start", "Running", "running", id="start-while-Running"),
    ],
)
async def test_invalid_requests_are_refused_and_leave_the_vm_untouched(
    k: Kube,
    namespace: str,
    operator: InProcessOperator,
    sim: Simulator,
    setup: str | None,
    action: str,
    phase: str,
    words: str,
) -> None:
    await running(k, namespace, "vm4")
    if setup:
        await request(k, namespace, "vm4", setup)
        await wait_phase(k, namespace, "vm4", phase)
    before = len(sim.calls)
    strategy = await vm_strategy(k, namespace, "vm4")
    generation = await request(k, namespace, "vm4", action)
    cr = await wait_for(k, namespace, "vm4", answered(generation, "Refused"))
    assert words in cr["status"]["lifecycleState"]["message"]
    assert cr["status"]["phase"] == phase
    assert len(sim.calls) == before
    assert await vm_strategy(k, namespace, "vm4") == strategy


async def test_guest_ignoring_acpi_is_forced_off_after_the_grace_period(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    await running(k, namespace, "vm5")
    # virt-handler kills a guest that ignores ACPI at the end of the grace period too: late
    # here, so the operator's own escalation is what ends it (under load the kill came first
    # once, and the forced stop found the VM stopped).
    late = {"sim.kubevirt.io/ignore-acpi": "true", "sim.kubevirt.io/kill-late": "true"}
    await k.merge_patch(path("vm", namespace, "vm5-vm"), {"metadata": {"annotations": late}})
    await request(k, namespace, "vm5", "stop", gracePeriodSeconds=2)
    cr = await wait_phase(k, namespace, "vm5", "Stopping")
    assert "deadline" in cr["status"]["lifecycleState"]  # the countdown users see
    cr = await wait_phase(k, namespace, "vm5", "Stopped", within=15)
    assert cr["status"]["lifecycleState"].get("escalated") is True
    stops = [c.body for c in sim.calls if c.subresource == "stop"]
    assert stops == [{"gracePeriod": 2}, {"gracePeriod": 0}]


async def test_a_grace_period_longer_than_the_launchers_ends_before_it_kills_the_guest(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    """virt-controller deletes the launcher pod at the stop, and virt-launcher destroys the
    guest once its own grace period is over (the VMI's 30 s plus KubeVirt's 15 s), whatever
    grace the stop asked for: a guest that ignores ACPI, stopped with 2 minutes, was killed
    at 45 s (VMI Failed) while the status promised 2 minutes. The grace period is cut to
    40 s and said; the guest is powered off by the operator's forced stop then."""
    await _ignoring_acpi(k, namespace, "gp-1")
    generation = await request(k, namespace, "gp-1", "stop", gracePeriodSeconds=120)
    await wait_for(k, namespace, "gp-1", answered(generation, "Issued"), within=10)
    assert (
        "grace period cut from 120s to 40s: KubeVirt's virt-launcher kills the guest 45s after "
        "a stop"
    ) in str((await wukong_events(k, namespace, "RequestAccepted"))[-1]["message"])
    await wait_phase(k, namespace, "gp-1", "Stopped", within=60)
    assert next(c.body for c in sim.calls if c.subresource == "stop") == {"gracePeriod": 40}
    # Before (session 38's 55 s): the launcher destroyed the guest at 45 s, VMIFailed.
    failed = [e["message"] for e in await wukong_events(k, namespace, "VMIFailed")]
    assert failed == [], failed


async def _new_vmi_running(k: Kube, namespace: str, name: str, old_uid: str) -> bool:
    vmi = await get(k, "vmi", namespace, f"{name}-vm")
    if vmi is None or vmi["metadata"]["uid"] == old_uid:
        return False
    return bool(vmi["status"].get("phase") == "Running")


async def _ignoring_acpi(k: Kube, namespace: str, name: str, strategy: str = "Always") -> str:
    """A running Wukong whose guest ignores the power button; its VMI's uid."""
    await create(k, "wukong", namespace, wukong(name, runStrategy=strategy))
    await wait_phase(k, namespace, name, "Running")
    await k.merge_patch(
        path("vm", namespace, f"{name}-vm"),
        {"metadata": {"annotations": {"sim.kubevirt.io/ignore-acpi": "true"}}},
    )
    vmi = await get(k, "vmi", namespace, f"{name}-vm")
    assert vmi is not None
    return str(vmi["metadata"]["uid"])


# Under Manual the guest runs on a start call (autoStart makes the first); under Always and
# RerunOnFailure KubeVirt starts it.
FIRST_STARTS = {"Always": 0, "Manual": 1, "RerunOnFailure": 0}


@pytest.mark.parametrize("strategy", ["Always", "Manual", "RerunOnFailure"])
async def test_a_restart_the_guest_ignores_is_forced_at_its_deadline(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator, strategy: str
) -> None:
    """KubeVirt takes no second restart while it serves one (500 "stop/start already
    underway" until the old VMI is gone): the forced restart at the deadline was refused
    on every retry, and the guest waited out its VMI's whole grace period (180 s). A forced
    stop is taken; under Manual and RerunOnFailure it replaces the restart's pending Start,
    so the restart's start is a call of ours."""
    name = f"vm5b-{strategy.lower()}"
    old = await _ignoring_acpi(k, namespace, name, strategy)
    generation = await request(k, namespace, name, "restart", gracePeriodSeconds=2)
    cr = await wait_for(k, namespace, name, answered(generation, "Done"), within=20)
    assert cr["status"]["phase"] == "Running"
    assert cr["status"]["lifecycleState"].get("escalated") is True
    assert await _new_vmi_running(k, namespace, name, old)
    assert calls(sim, "restart", f"{name}-vm") == 1
    assert [c.body for c in sim.calls if c.subresource == "stop"] == [{"gracePeriod": 0}]
    restart_starts = 0 if strategy == "Always" else 1
    assert calls(sim, "start", f"{name}-vm") == FIRST_STARTS[strategy] + restart_starts
    assert await vm_strategy(k, namespace, name) == strategy
    expired = await wukong_events(k, namespace, "GracePeriodExpired")
    assert [e["involvedObject"]["name"] for e in expired].count(name) == 1


@pytest.mark.parametrize("strategy", ["Always", "Manual"])
async def test_a_forced_restart_during_a_graceful_one_takes_effect(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator, strategy: str
) -> None:
    """`restart --force` while KubeVirt serves a graceful restart made no call at all (the
    pending requests passed for it): the guest kept the old restart's pace. Under Manual it
    was then asked again until the old VMI was gone (its whole grace period)."""
    name = f"vm5c-{strategy.lower()}"
    old = await _ignoring_acpi(k, namespace, name, strategy)
    await request(k, namespace, name, "restart")
    await wait_phase(k, namespace, name, "Restarting")
    generation = await request(k, namespace, name, "restart", force=True)
    cr = await wait_for(k, namespace, name, answered(generation, "Done"), within=20)
    assert cr["status"]["phase"] == "Running"
    assert await _new_vmi_running(k, namespace, name, old)
    assert await vm_strategy(k, namespace, name) == strategy


async def test_a_restart_stopped_with_virtctl_under_manual_ends_stopped(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    """`virtctl stop` while KubeVirt serves the Wukong's restart under Manual replaces the
    restart's Start: the guest is off for good, and the Wukong said Restarting for good."""
    name = "vm5d"
    await _ignoring_acpi(k, namespace, name, "Manual")
    generation = await request(k, namespace, name, "restart")
    await wait_phase(k, namespace, name, "Restarting")
    # Phase Restarting is stored just before the call (exactly once). A stop meeting the
    # restart's own status patch fails its jsonpatch test, which v1.7.0's virt-api answers
    # with 500, not 409 (docs/kubevirt-fidelity.md): stop once KubeVirt has the restart.
    await eventually(lambda: calls(sim, "restart", f"{name}-vm") == 1, message="restart called")
    stop = (
        f"/apis/subresources.kubevirt.io/v1/namespaces/{namespace}/virtualmachines/{name}-vm/stop"
    )
    await k.request("PUT", stop, body={"gracePeriod": 0})
    cr = await wait_for(k, namespace, name, answered(generation, "Done"), within=20)
    assert cr["status"]["phase"] == "Stopped"
    assert cr["status"]["lifecycleState"]["message"] == (
        "restart ended: the VM was stopped outside Wukong"
    )
    # Events go out beside the status write that they describe.
    [warned] = await eventually(
        lambda: wukong_events(k, namespace, "VMStoppedOutside"), message="VMStoppedOutside"
    )
    assert warned["type"] == "Warning" and warned["involvedObject"]["name"] == name
    await eventually(lambda: _vmi_gone(k, namespace, f"{name}-vm"), timeout=20, message="no VMI")
    assert calls(sim, "start", f"{name}-vm") == FIRST_STARTS["Manual"]  # no start of ours
    assert await vm_strategy(k, namespace, name) == "Manual"


async def test_force_stop_is_immediate(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    await running(k, namespace, "vm6")
    await request(k, namespace, "vm6", "stop", force=True)
    await wait_phase(k, namespace, "vm6", "Stopped")
    assert [c.body for c in sim.calls if c.subresource == "stop"] == [{"gracePeriod": 0}]


@pytest.mark.timeout(90)
async def test_operator_killed_while_restarting_restarts_exactly_once(
    k: Kube, namespace: str, operator_kubeconfig: Path, sim: Simulator
) -> None:
    await create(k, "wukong", namespace, wukong("vm7"))
    first = OperatorProcess(operator_kubeconfig, namespace=namespace)
    first.start()
    # The next operator loads its modules meanwhile, and starts the moment the first is killed.
    second = OperatorProcess(operator_kubeconfig, namespace=namespace)
    second.prepare()
    try:
        await wait_phase(k, namespace, "vm7", "Running", within=30)
        # A guest slow to power off keeps the restart in flight long enough to kill us and
        # for the next operator to take over in the middle of it; let go once it has.
        sim.config.acpi_shutdown_delay = 8.0
        await request(k, namespace, "vm7", "restart")
        await wait_phase(k, namespace, "vm7", "Restarting", within=15)
        await eventually(lambda: calls(sim, "restart", "vm7-vm") == 1, timeout=10)
    except BaseException:
        second.kill()
        raise
    finally:
        first.kill()
    second.start()
    try:
        await eventually(lambda: took_over(second), timeout=30)
        let_the_guest_go(sim, namespace, "vm7-vm")
        cr = await wait_for(
            k,
            namespace,
            "vm7",
            lambda c: (
                c["status"]["phase"] == "Running"
                and c["status"]["lifecycleState"].get("state") == "Done"
            ),
            within=60,
        )
    finally:
        assert second.terminate() == 0
    assert calls(sim, "restart", "vm7-vm") == 1
    assert condition(cr, "Ready")["status"] == "True"


async def test_a_start_written_with_a_new_manual_vm_starts_it_once(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    # Found by test_spec_parity in CI with KubeVirt's own virt-api: a start in the Wukong's
    # first spec was taken as "the VM is created running", but KubeVirt creates a Manual VM
    # stopped. The request was answered with no call and the Wukong stayed in Starting.
    manual = wukong(
        "vm8",
        runStrategy="Manual",
        startStrategy={"autoStart": False},
        lifecycleAction={"action": "start"},
    )
    await create(k, "wukong", namespace, manual)

    def started(cr: dict[str, Any]) -> bool:
        status = cr.get("status") or {}
        life = status.get("lifecycleState") or {}
        return status.get("phase") == "Running" and life.get("state") == "Done"

    await wait_for(k, namespace, "vm8", started, within=30, what="vm8 Running, its start Done")
    assert calls(sim, "start", "vm8-vm") == 1
    assert await vm_strategy(k, namespace, "vm8") == "Manual"
