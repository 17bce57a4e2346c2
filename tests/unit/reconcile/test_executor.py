"""The executor: actions in order, Events beside them, and what a pass created."""

from __future__ import annotations

import asyncio
from typing import Any

from wukong.act.executor import Executor
from wukong.adapters.kube import Kube
from wukong.errors import AlreadyExists, ServerError
from wukong.reconcile.actions import Action, CreateChild, Emit

OWNER = {
    "apiVersion": "vm.novasphere.dev/v1alpha1",
    "kind": "Wukong",
    "metadata": {"name": "web-1", "namespace": "demo", "uid": "u-1", "resourceVersion": "7"},
}


class RecordingKube(Kube):
    """Answers POSTs without a server; a path may be made to fail; each POST takes `delay`."""

    def __init__(self, *, delay: float = 0.0, fail: dict[str, Exception] | None = None) -> None:
        self.delay, self.fail = delay, fail or {}
        self.started: list[str] = []
        self.finished: list[str] = []

    async def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> Any:
        what = body.get("reason") or body["metadata"]["name"]
        self.started.append(what)
        await asyncio.sleep(self.delay)
        for fragment, error in self.fail.items():
            if fragment in path:
                raise error
        self.finished.append(what)
        return {**body, "metadata": {**body["metadata"], "resourceVersion": "8"}}


def child(kind: Any, name: str) -> CreateChild:
    return CreateChild(kind, {"kind": kind, "metadata": {"name": name, "namespace": "demo"}})


async def test_events_go_out_beside_the_actions_not_after_them() -> None:
    kube = RecordingKube(delay=0.05)
    actions: list[Action] = [
        child("NetworkAttachmentDefinition", "web-1-net"),
        child("PersistentVolumeClaim", "web-1-data"),
        Emit("Normal", "SpecAccepted", "Pending → Creating"),
    ]
    outcome = await Executor(kube).run(OWNER, actions)
    # The Event went out while the first create was in flight; the creates stay in order.
    assert kube.started == ["web-1-net", "SpecAccepted", "web-1-data"]
    assert [o["metadata"]["name"] for o in outcome.created] == ["web-1-net", "web-1-data"]
    assert not outcome.failures


async def test_a_transient_failure_stops_the_actions_but_not_the_events() -> None:
    down = ServerError(503, "ServiceUnavailable", "etcd leader changed")
    kube = RecordingKube(fail={"persistentvolumeclaims": down})
    actions: list[Action] = [
        child("PersistentVolumeClaim", "web-1-data"),
        child("VirtualMachine", "web-1-vm"),
        Emit("Normal", "SpecAccepted", "Pending → Creating"),
    ]
    outcome = await Executor(kube).run(OWNER, actions)
    assert outcome.transient and list(outcome.failures) == [actions[0]]
    assert "web-1-vm" not in kube.started  # later actions wait for the retry
    assert "SpecAccepted" in kube.finished  # the status this pass writes still gets its Event
    assert outcome.created == []


async def test_a_child_that_already_exists_is_not_reported_as_created() -> None:
    exists = AlreadyExists(409, "AlreadyExists", "web-1-vm exists")
    kube = RecordingKube(fail={"virtualmachines": exists})
    outcome = await Executor(kube).run(OWNER, [child("VirtualMachine", "web-1-vm")])
    assert not outcome.failures and outcome.created == []


async def test_deletion_keeps_events_in_line_with_its_steps() -> None:
    down = ServerError(503, "ServiceUnavailable", "try again")
    kube = RecordingKube(fail={"virtualmachines": down})
    actions: list[Action] = [
        child("VirtualMachine", "web-1-vm"),
        Emit("Normal", "VMDeleted", "the VM is gone"),
    ]
    outcome = await Executor(kube).run(OWNER, actions, stop_on_failure=True)
    assert outcome.transient
    assert kube.started == ["web-1-vm"]  # a step that failed is not announced


def test_kubevirts_409_is_an_answer_except_to_a_stop_which_is_looked_at_again() -> None:
    # A stop answered 409 "VM is not running" may be between a restart's two steps, whose
    # pending Start would run the VM again (found by test_lifecycle_sequences): retried.
    from wukong.act.executor import classify
    from wukong.errors import Conflict
    from wukong.reconcile.actions import VmCall

    busy = Conflict(409, "Conflict", "Operation cannot be fulfilled: VM is not running")
    assert classify(VmCall("stop", "web-1-vm"), busy).kind == "transient"
    assert classify(VmCall("stop", "web-1-vm", grace_period=0, force=True), busy).kind == (
        "transient"
    )
    running = Conflict(409, "Conflict", "Operation cannot be fulfilled: VM is already running")
    assert classify(VmCall("start", "web-1-vm"), running).kind == "refused"
    assert classify(
        VmCall("pause", "web-1-vm"), Conflict(409, "Conflict", "VMI is already paused")
    ).kind == ("refused")
    # virt-api's own lost race (its JSON-patch test of stateChangeRequests failed): retried.
    raced = Conflict(
        409,
        "Conflict",
        'Operation cannot be fulfilled on virtualmachine.kubevirt.io "web-1-vm": '
        "testing value /status/stateChangeRequests failed: jsonpatch test operation does not "
        "apply: doc is missing path",
    )
    for verb in ("start", "stop", "restart"):
        assert classify(VmCall(verb, "web-1-vm"), raced).kind == "transient"


def test_the_authorizer_refusing_the_operator_is_retried_kubevirts_own_403_is_an_answer() -> None:
    """A 403 on a lifecycle call from kube-apiserver's authorizer is about the operator's
    rights (seen after an API server restart, while its RBAC informers sync), not KubeVirt
    refusing the user's request: made again. virt-api's own 403 answers the request."""
    from wukong.act.executor import classify
    from wukong.errors import Forbidden
    from wukong.reconcile.actions import VmCall

    denied = Forbidden(
        403,
        "Forbidden",
        'virtualmachines.subresources.kubevirt.io "web-1-vm" is forbidden: User '
        '"system:serviceaccount:wukong-system:wukong" cannot update resource '
        '"virtualmachines/stop" in API group "subresources.kubevirt.io" in the namespace '
        '"demo": RBAC: clusterrole.rbac.authorization.k8s.io "wukong-operator" not found',
    )
    assert classify(VmCall("stop", "web-1-vm"), denied).kind == "transient"
    liveness = Forbidden(
        403,
        "Forbidden",
        'virtualmachineinstance.kubevirt.io "web-1-vm" is forbidden: Pausing VMIs with '
        "LivenessProbe is currently not supported",
    )
    assert classify(VmCall("pause", "web-1-vm"), liveness).kind == "permanent"
