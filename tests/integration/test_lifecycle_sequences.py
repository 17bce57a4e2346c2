"""Random sequences of lifecycle requests on one VM: each is answered, none is called twice.

Each run draws a new sequence and runStrategy; the seed is printed, WUKONG_LIFECYCLE_SEED=<n>
replays it (and WUKONG_LIFECYCLE_STEPS=<n> makes it longer, to search further).
Most requests wait for the answer to the one before; some overwrite a request still in flight
(a user who changes their mind), which must not leave the last one unanswered or make a call
twice. KubeVirt's calls are counted from the API server's audit log, so the same checks hold
with the simulator and with KubeVirt's own virt-api.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from typing import Any

from tests.integration.conftest import kubevirt_mode
from tests.integration.scenario import (
    OPERATOR_USER,
    create,
    get,
    k,
    operator,
    sim,
    wait_for,
    wait_phase,
    wukong,
    wukong_events,
)
from tests.integration.test_lifecycle import request
from tests.integration.test_snapshots import vm_restores
from wukong.adapters.kube import Kube
from wukong.api.contract import request_id
from wukong.api.spec import LifecycleAction
from wukong.reconcile.story import OUTSIDE_HOPS
from wukong.testing import audit
from wukong.testing.controlplane import ControlPlane
from wukong.testing.eventually import eventually
from wukong.testing.operator import InProcessOperator

__all__ = ["k", "operator", "sim"]  # fixtures

SEED = int(os.environ.get("WUKONG_LIFECYCLE_SEED") or random.randrange(2**32))
STEPS = int(os.environ.get("WUKONG_LIFECYCLE_STEPS") or 16)
OVERWRITE = 0.25  # how often the next request does not wait for this one's answer
# How long a user who changes their mind waits before the next request: at once (the
# operator may never see this one), or while it is being accepted, called or carried out.
CHANGE_OF_MIND = (0.0, 0.02, 0.1, 0.5)
VERBS = ("start", "stop", "restart", "suspend", "resume")
# Where a request that is Done leaves the Wukong, and the KubeVirt call it makes.
LANDS_IN = {
    "start": "Running",
    "stop": "Stopped",
    "restart": "Running",
    "suspend": "Suspended",
    "resume": "Running",
}
CALL = {
    "start": "virtualmachines/start",
    "stop": "virtualmachines/stop",
    "restart": "virtualmachines/restart",
    "suspend": "virtualmachineinstances/pause",
    "resume": "virtualmachineinstances/unpause",
}
SETTLED = ("Running", "Stopped", "Suspended")
ANSWERS = ("Done", "Refused", "Failed")


def forced_restart(strategy: str) -> Counter[str]:
    """The calls a forced restart may be made as instead of a restart: while KubeVirt still
    serves a restart, virt-api takes no second one, so it is a forced stop, and under Manual
    and RerunOnFailure (where that stop replaces KubeVirt's pending Start) a start after it
    (docs/decisions.md, "Forcing a restart KubeVirt is serving")."""
    calls = Counter({CALL["stop"]: 1})
    if strategy != "Always":
        calls[CALL["start"]] += 1
    return calls


def life(cr: dict[str, Any]) -> dict[str, Any]:
    return dict((cr.get("status") or {}).get("lifecycleState") or {})


def settled_answer(generation: int) -> Any:
    """A check: the request of `generation` (or a later one) is answered and the phase rests."""

    def check(cr: dict[str, Any]) -> bool:
        state = life(cr)
        phase = (cr.get("status") or {}).get("phase")
        return (
            (state.get("generation") or 0) >= generation
            and state.get("state") in ANSWERS
            and phase in SETTLED
        )

    return check


def kubevirt_calls(
    plane: ControlPlane, namespace: str, since: int, codes: range = range(200, 300)
) -> Counter[str]:
    """The operator's calls of KubeVirt's subresources answered with one of `codes` (by
    default those KubeVirt took, 2xx), since byte `since` of the audit log."""
    return Counter(
        f"{r.resource}/{r.subresource}"
        for r in audit.read(plane.audit_log, since=since)
        if r.group == "subresources.kubevirt.io"
        and r.user == OPERATOR_USER
        and r.namespace == namespace
        and r.subresource
        and r.code in codes
    )


KUBEVIRT_API_USER = "system:serviceaccount:kubevirt:kubevirt-apiserver"
VM_REQUESTS = ("virtualmachines/start", "virtualmachines/stop", "virtualmachines/restart")


def lost_races(plane: ControlPlane, namespace: str, since: int) -> int:
    """How often virt-api lost a race with virt-controller since byte `since` of the audit
    log; it answers the caller 500 each time, and the operator retries it like any 5xx.

    - Its write of a VM's stateChangeRequests: virt-api (v1.7.0) writes a start, stop or
      restart request as a JSON patch that first tests the requests it read; when
      virt-controller serves the one before in between (a stop 0.1 s after a start), the API
      server answers 422 and virt-api answers 500, not the 409 it means: its conflict check
      looks for words the API server's 422 does not carry (pkg/virt-api/rest/lifecycle.go).
    - A stop's grace period: virt-api reads the VMI, then patches its
      terminationGracePeriodSeconds; a VMI that a restart was removing is gone by then (404)
      and virt-api answers 500. The stop is called on that VMI on purpose: it replaces the
      restart's pending Start, so the guest the user stopped does not boot again.
    Nothing the operator could wait for would prevent either."""
    return sum(
        1
        for r in audit.read(plane.audit_log, since=since)
        if r.user == KUBEVIRT_API_USER
        and r.namespace == namespace
        and r.verb == "patch"
        and (
            (r.resource, r.subresource, r.code) == ("virtualmachines", "status", 422)
            or (r.resource, r.subresource, r.code) == ("virtualmachineinstances", "", 404)
        )
    )


async def vmi_uid(k: Kube, namespace: str) -> str | None:
    vmi = await get(k, "vmi", namespace, "seq-vm")
    return None if vmi is None else str(vmi["metadata"]["uid"])


async def test_a_random_sequence_of_requests_is_answered_and_called_once_each(
    k: Kube,
    namespace: str,
    control_plane: ControlPlane,
    operator: InProcessOperator,
) -> None:
    await _sequence(k, namespace, control_plane, VERBS)


async def _restores_in_a_random_sequence_stop_and_start_the_vm_through_its_requests(
    k: Kube,
    namespace: str,
    control_plane: ControlPlane,
    operator: InProcessOperator,
) -> None:
    """Restores mixed in (KubeVirt's own restore controller: real KubeVirt only). A restore
    of a running VM stops it and starts it again through the same requests, so the same
    checks hold: each answered, no call twice, none refused by KubeVirt, nothing read as
    done outside Wukong; and no restore is ever made under a running guest (KubeVirt would
    fail it)."""
    await _sequence(k, namespace, control_plane, (*VERBS, RESTORE))


if kubevirt_mode() == "real":
    test_restores_in_a_random_sequence_stop_and_start_the_vm_through_its_requests = (
        _restores_in_a_random_sequence_stop_and_start_the_vm_through_its_requests
    )

RESTORE = "restore"
SNAPSHOT = "seq-snap"
# The calls a restore of a running VM makes: the stop before it, the start after it.
RESTORE_CALLS = Counter({CALL["stop"]: 1, CALL["start"]: 1})


async def _snapshot(k: Kube, namespace: str) -> None:
    """A snapshot of the running VM for the restores to put back, and KubeVirt done with it."""
    await request(k, namespace, "seq", "snapshot", snapshotName=SNAPSHOT)

    def ready(cr: dict[str, Any]) -> bool:
        return ((cr.get("status") or {}).get("snapshot") or {}).get("result") == "Succeeded"

    await wait_for(k, namespace, "seq", ready, within=60, what="the snapshot to restore")


async def _ask_restore(k: Kube, namespace: str) -> str:
    """`wukong restore seq --snapshot-name seq-snap`; its fingerprint (status.restore
    answers it under that)."""
    await request(k, namespace, "seq", RESTORE, snapshotName=SNAPSHOT)
    cr = await get(k, "wukong", namespace, "seq")
    assert cr is not None
    return request_id(LifecycleAction.model_validate(cr["spec"]["lifecycleAction"]))


def restore_settled(fingerprint: str) -> Any:
    """A check: the restore `fingerprint` is answered (refused, or ended and, when it
    stopped a running VM, the start after it answered too) and the phase rests."""

    def check(cr: dict[str, Any]) -> bool:
        status = cr.get("status") or {}
        back, state = status.get("restore") or {}, life(cr)
        if back.get("refusedRequestId") != fingerprint and not (
            back.get("requestId") == fingerprint and back.get("result")
        ):
            return False
        return status.get("phase") in SETTLED and state.get("state") not in IN_FLIGHT

    return check


IN_FLIGHT = ("Accepted", "Issued")


def restore_over(fingerprint: str) -> Any:
    """A check: the overwritten restore `fingerprint` is not running (ended, or never
    taken: the spec no longer asks it, so no later pass can)."""

    def check(cr: dict[str, Any]) -> bool:
        back = (cr.get("status") or {}).get("restore") or {}
        return back.get("requestId") != fingerprint or bool(back.get("result"))

    return check


def both(*checks: Any) -> Any:
    return lambda cr: all(check(cr) for check in checks)


async def _sequence(
    k: Kube, namespace: str, control_plane: ControlPlane, verbs: tuple[str, ...]
) -> None:
    """A random sequence of `verbs` on one VM, each answered and called once (above)."""
    rng = random.Random(SEED)
    print(f"\nlifecycle sequence seed {SEED} (WUKONG_LIFECYCLE_SEED replays it)")
    strategy = rng.choice(("Always", "RerunOnFailure", "Manual"))
    start = {"startStrategy": {"autoStart": True}} if strategy == "Manual" else {}
    await create(k, "wukong", namespace, wukong("seq", runStrategy=strategy, **start))
    phase = "Running"
    await wait_phase(k, namespace, "seq", phase, within=60)
    if RESTORE in verbs:
        await _snapshot(k, namespace)
    story: list[str] = []
    overwritten: Counter[str] = Counter()  # calls the overwritten requests may have made
    replaced: str | None = None  # an overwritten restore's fingerprint, until settled
    since = audit.size(control_plane.audit_log)
    for step in range(STEPS):
        verb = rng.choice(verbs)
        if verb == RESTORE and overwritten:
            # Asked only on a settled VM: what an overwritten request left is not known here
            # (unit tests cover a restore beside requests in flight).
            verb = rng.choice(VERBS)
        overwrite = step < STEPS - 1 and rng.random() < OVERWRITE
        # A short grace period, or force: a guest that cannot shut down (it is paused) is
        # forced after it, and KubeVirt's default of 30 s would only make the test slow.
        options = rng.choice(({"gracePeriodSeconds": 2}, {"force": True}))
        before = await vmi_uid(k, namespace)
        if verb == RESTORE:
            fingerprint = await _ask_restore(k, namespace)
        else:
            # The snapshot name a snapshot or restore left goes, as the CLI's patch does.
            unnamed = {"snapshotName": None} if RESTORE in verbs else {}
            shutdown = options if verb in ("stop", "restart") else {}
            generation = await request(k, namespace, "seq", verb, **shutdown, **unnamed)
        if overwrite:
            # The next request replaces this one, answered or not: it may or may not have
            # made its call by then, but never twice.
            pause = rng.choice(CHANGE_OF_MIND)
            story.append(f"{verb} (overwritten after {pause} s)")
            if verb == RESTORE:
                # It may have stopped the VM for itself and start it after, or never have
                # been seen; a later request is taken or refused beside it (below).
                replaced = fingerprint
                overwritten += RESTORE_CALLS
            else:
                overwritten[CALL[verb]] += 1
            if verb == "restart":  # forced, or graceful and forced at its deadline later
                overwritten += forced_restart(strategy)
            await asyncio.sleep(pause)  # the user's pace, not a wait for the operator
            continue
        settled = restore_settled(fingerprint) if verb == RESTORE else settled_answer(generation)
        if replaced is not None:
            settled = both(settled, restore_over(replaced))
        cr = await wait_for(
            k,
            namespace,
            "seq",
            settled,
            within=60,
            what=f"seed {SEED}, {strategy}, step {step} ({verb}) answered; "
            f"so far: {', '.join(story)}",
        )
        state = life(cr)
        now = cr["status"]["phase"]
        made = kubevirt_calls(control_plane, namespace, since)
        allowed = overwritten.copy()
        superseded = False  # the overwritten restore's start replaced this request's answer
        if replaced is not None:
            back = cr["status"].get("restore") or {}
            where = f"seed {SEED}, {strategy}, step {step}: {', '.join(story)}"
            if back.get("requestId") != replaced:
                story.append("(the overwritten restore never seen)")
            else:
                # Taken: KubeVirt must not fail it (no restore under a running guest); the
                # operator gives it up only when a request to run the VM came first.
                said = str(back.get("message"))
                assert back["result"] == "Succeeded" or (
                    back["result"] == "Failed" and "was not made" in said
                ), f"{where}: the overwritten restore {back['result']}: {said}"
                story.append(f"(the overwritten restore: {back['result']})")
                # It started the VM after this request was answered (refused while it ran):
                # lifecycleState is that start's, under this request's id.
                superseded = said.endswith(" again") and state.get("lastAction") == "start"
        if verb == RESTORE:
            back = cr["status"]["restore"]
            answer = "Refused" if back.get("refusedRequestId") == fingerprint else back["result"]
            story.append(f"restore: {answer} -> {now}")
            where = f"seed {SEED}, {strategy}, step {step}: {', '.join(story)}; calls {dict(made)}"
            # Asked only on a settled VM (nothing overwritten before it):
            # nothing to refuse, and KubeVirt must never fail it.
            assert answer == "Succeeded", f"{where}: {back.get('refusal') or back.get('message')}"
            if phase == "Stopped":  # nothing to stop or start
                assert now == "Stopped" and not back.get("startAfter"), where
            else:  # stopped for it (a paused guest powered off), started again after it
                assert back.get("startAfter") and now == "Running", where
                assert (state["lastAction"], state["state"]) == ("start", "Done"), where
                assert await vmi_uid(k, namespace) not in (None, before), where
                allowed += RESTORE_CALLS
        elif superseded:
            # Refused while the restore ran (once: the start keeps its id), then the
            # restore's start after it: that start is what lifecycleState answers now. Or
            # asked after that start was recorded: refused while it runs (the record keeps
            # the start's action: docs/decisions.md, "A request refused while another one runs").
            story.append(f"{verb}, the restore's start: {state['state']} -> {now}")
            where = f"seed {SEED}, {strategy}, step {step}: {', '.join(story)}; calls {dict(made)}"
            said = f"{where}; lifecycleState {state}; restore {cr['status'].get('restore')}"
            assert state["lastAction"] == "start" and now == "Running", said
            if state["state"] == "Refused":
                assert str(state.get("message")).startswith(f"cannot {verb}"), said
            else:
                assert state["state"] == "Done", said
        else:
            story.append(f"{verb}: {state['state']} -> {now}")
            where = f"seed {SEED}, {strategy}, step {step}: {', '.join(story)}; calls {dict(made)}"
            assert state["generation"] == generation, where
            assert state["state"] != "Failed", f"{where}: {state.get('message')}"
            if state["state"] == "Refused":
                assert str(state.get("message", "")).startswith("cannot "), where
                if not overwritten:  # a refusal leaves the VM as the last answer left it
                    assert now == phase, where
            else:
                assert now == LANDS_IN[verb], where
                allowed[CALL[verb]] += 1  # one call, or none when the VM already was there
                if verb == "restart" and options.get("force"):
                    allowed += forced_restart(strategy)
                if verb == "restart":  # Running before and after: only a new VMI says so
                    assert await vmi_uid(k, namespace) not in (None, before), where
            if state.get("escalated"):  # a guest that did not shut down in time: forced, once
                allowed[CALL[state["lastAction"]]] += 1
                if state["lastAction"] == "restart":
                    allowed += forced_restart(strategy)
        assert all(n <= allowed[call] for call, n in made.items()), where
        # Nor a call KubeVirt could not take yet (500 "stop/start already underway" to a
        # start while the stop before it was pending): the planner waits for it instead.
        # Only virt-api's own lost race is not the operator's to avoid (`lost_races`).
        failed = kubevirt_calls(control_plane, namespace, since, range(500, 600))
        raced = lost_races(control_plane, namespace, since)
        on_vm = sum(n for call, n in failed.items() if call in VM_REQUESTS)
        others = [call for call in failed if call not in VM_REQUESTS]
        assert not others and on_vm <= raced, f"{where}; answered 5xx: {dict(failed)}, {raced=}"
        phase, overwritten, replaced = now, Counter(), None
        since = audit.size(control_plane.audit_log)
    print(f"runStrategy {strategy}: " + "; ".join(story))
    if RESTORE in verbs:  # KubeVirt failed none of the restores the operator made
        failed = [
            f"{r['metadata']['name']}: {c.get('reason')}: {c.get('message')}"
            for r in (await k.get(vm_restores(namespace))).get("items", [])
            for c in (r.get("status") or {}).get("conditions") or []
            if c.get("type") == "Failure" and c.get("status") == "True"
        ]
        assert not failed, f"seed {SEED}, {strategy}: {', '.join(story)}; {failed}"

    # A stopped VM never starts behind the user's back, and one that runs is back on the
    # spec's runStrategy (docs/decisions.md, "runStrategy and stop agree").
    wanted = "Halted" if phase == "Stopped" and strategy != "Manual" else strategy

    async def agrees() -> bool:
        vm = await get(k, "vm", namespace, "seq-vm")
        return (vm or {}).get("spec", {}).get("runStrategy") == wanted

    await eventually(agrees, timeout=20, message=f"seed {SEED}: the VM's runStrategy {wanted}")
    # Nobody but the Wukong touched the VM: no Warning may say someone did.
    outside = [
        f"{e['reason']}: {e.get('message')}"
        for reason in (*OUTSIDE_HOPS, "RunStrategyReverted")
        for e in await wukong_events(k, namespace, reason)
    ]
    assert not outside, f"seed {SEED}, {strategy}: {', '.join(story)}; {outside}"
