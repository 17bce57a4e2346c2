"""A node lost under a running Wukong (SPEC §8, "failures are visible"), with KubeVirt's own
virt-controller deciding what becomes of its VMI: the simulator plays the machine going away
(`Simulator.lose_node`) and the pods ending (`Simulator.fence_node`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.integration.scenario import (
    condition,
    create,
    get,
    k,
    operator,
    wait_for,
    wait_ready,
    wukong,
    wukong_events,
)
from wukong.adapters.kube import Kube, api_path
from wukong.api import names
from wukong.errors import NotFound
from wukong.reconcile.vm_health import NOT_READY_LASTING
from wukong.testing.controlplane import ControlPlane
from wukong.testing.eventually import eventually
from wukong.testing.kubevirt import SimConfig, Simulator
from wukong.testing.kubevirt.plane import KubeVirtPlane
from wukong.testing.operator import InProcessOperator

__all__ = ["k", "operator"]  # fixtures
SMALL = {"name": "system", "size": "1Gi"}


@pytest.fixture
async def sim(
    control_plane: ControlPlane, kubevirt: KubeVirtPlane | None, namespace: str, k: Kube
) -> AsyncIterator[Simulator]:
    """Two nodes of this test's own: a lost node stays lost for whoever schedules there."""
    endpoints = kubevirt.endpoints if kubevirt is not None else None
    nodes = (f"{namespace}-a", f"{namespace}-b")
    config = SimConfig(node_name=nodes[0], nodes=nodes)
    try:
        async with Simulator(
            control_plane.kubeconfig, namespace=namespace, config=config, kubevirt=endpoints
        ) as simulator:
            yield simulator
    finally:
        if endpoints is not None:
            for node in nodes:
                with contextlib.suppress(NotFound):
                    await k.delete(
                        api_path("", "v1", "pods", endpoints.namespace, f"virt-handler-{node}")
                    )
                with contextlib.suppress(NotFound):
                    await k.delete(api_path("", "v1", "nodes", None, node))


def running_off(node: str) -> Callable[[dict[str, Any]], bool]:
    """The Wukong runs, Ready, on a node other than `node`."""

    def check(c: dict[str, Any]) -> bool:
        status = c.get("status") or {}
        return (
            status.get("phase") == "Running"
            and status.get("nodeName") not in (None, node)
            and condition(c, "Ready").get("status") == "True"
        )

    return check


async def test_a_lost_node_is_a_warning_and_the_vm_runs_elsewhere_once_its_pod_is_gone(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    """The machine under a running VM goes away. KubeVirt keeps the VMI Running, not Ready,
    for as long as its pod exists, evicted or not: the Wukong says so, once, and what would
    let KubeVirt move it. Once the pod is gone KubeVirt fails the VMI (real virt-controller:
    NodeUnresponsive, or no reason when its VMI controller gets there first) and starts the
    VM on the other node."""
    await create(k, "wukong", namespace, wukong("far", disks=[SMALL]))
    cr = await wait_ready(k, namespace, "far", within=60)
    node = cr["status"]["nodeName"]
    # The pods were marked not Ready a while ago: the operator must wake by itself (no watch
    # event comes) when that has lasted long enough to count.
    await sim.lose_node(node, ago=NOT_READY_LASTING - 4)

    def unready(c: dict[str, object]) -> bool:
        return condition(c, "Ready").get("status") == "False"

    cr = await wait_for(k, namespace, "far", unready, within=20, what="Ready=False")
    assert cr["status"]["phase"] == "Running" and cr["status"]["nodeName"] == node
    assert condition(cr, "VMHealthy") == {}, "not trouble yet: a pod is not Ready for a moment"
    assert f"the VMI on {node} is not Ready" in condition(cr, "Ready")["message"]

    def unhealthy(c: dict[str, object]) -> bool:
        return condition(c, "VMHealthy").get("reason") == "VMINotReady"

    cr = await wait_for(k, namespace, "far", unhealthy, within=20, what="VMHealthy VMINotReady")
    health = condition(cr, "VMHealthy")
    assert health["status"] == "False" and f"VMI not Ready on {node} since" in health["message"]
    assert "node.kubernetes.io/out-of-service" in health["message"]
    warnings = await wukong_events(k, namespace, "VMINotReady")
    assert [e["type"] for e in warnings] == ["Warning"]
    vmi = await get(k, "vmi", namespace, "far-vm")
    assert vmi is not None and vmi["status"]["phase"] == "Running"  # KubeVirt waits too

    # Evicted, the pods stay Terminating: KubeVirt's Ready says so, with its clock started
    # again. The Wukong's trouble goes on: the same condition, no second Warning, no NoError.
    await sim.evict_node_pods(node)

    def terminating(c: dict[str, object]) -> bool:
        return "virt-launcher pod is terminating" in condition(c, "VMHealthy").get("message", "")

    cr = await wait_for(k, namespace, "far", terminating, within=20, what="pod terminating")
    assert cr["status"]["phase"] == "Running" and cr["status"]["nodeName"] == node
    assert len(await wukong_events(k, namespace, "VMINotReady")) == 1
    assert not await wukong_events(k, namespace, "NoError")

    await sim.fence_node(node)

    cr = await wait_for(k, namespace, "far", running_off(node), within=60, what="Running elsewhere")
    assert condition(cr, "VMHealthy") == {}
    hops = [(h["from"], h["to"]) for h in cr["status"]["history"]]
    assert ("Running", "Error") in hops or ("Running", "Starting") in hops, hops
    assert await wukong_events(k, namespace, "NoError"), "the trouble's end is told too"


async def test_a_source_node_lost_in_the_middle_of_a_migration_is_a_warning_too(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    """The machine under a migrating VM goes away once the domain is on its way. Its
    virt-handler neither sends the rest nor gives up, so the migration never ends, and the
    VMI, still on the lost node, is not Ready. The Wukong showed only the migration's phase,
    for good; now it says what it says of any VMI on a lost node, and names the migration."""
    sim.config.migration_step_delay = 3.0  # a moment to lose the node while it runs
    shared = {**SMALL, "accessMode": "ReadWriteMany"}
    await create(k, "wukong", namespace, wukong("mover", disks=[shared]))
    cr = await wait_ready(k, namespace, "mover", within=60)
    node = cr["status"]["nodeName"]
    await k.merge_patch(
        api_path(names.GROUP, names.VERSION, names.PLURAL, namespace, "mover"),
        {"spec": {"lifecycleAction": {"action": "migrate", "requestedAt": "2026-12-04T01:00:00Z"}}},
    )

    async def sending() -> dict[str, Any] | None:
        vmi = await get(k, "vmi", namespace, "mover-vm")
        state = ((vmi or {}).get("status") or {}).get("migrationState") or {}
        return state if state.get("startTimestamp") else None

    state = await eventually(sending, timeout=30, message="the migration running")
    assert not state.get("targetNodeDomainReadyTimestamp"), "too late to lose the source"
    target = state["targetNode"]
    await sim.lose_node(node, ago=NOT_READY_LASTING - 4)

    def unhealthy(c: dict[str, object]) -> bool:
        return condition(c, "VMHealthy").get("reason") == "VMINotReady"

    cr = await wait_for(k, namespace, "mover", unhealthy, within=30, what="VMHealthy VMINotReady")
    message = condition(cr, "VMHealthy")["message"]
    assert f"VMI not Ready on {node} since" in message, message
    assert f"(the migration to {target} cannot finish then)" in message, message
    assert cr["status"]["nodeName"] == node
    assert cr["status"]["migration"].get("result") is None, cr["status"]["migration"]
    assert [e["type"] for e in await wukong_events(k, namespace, "VMINotReady")] == ["Warning"]
    vmi = await get(k, "vmi", namespace, "mover-vm")
    assert vmi is not None and not vmi["status"]["migrationState"].get("completed")

    await sim.fence_node(node)

    cr = await wait_for(
        k, namespace, "mover", running_off(node), within=60, what="Running elsewhere"
    )
    assert condition(cr, "VMHealthy") == {}

    def failed(c: dict[str, Any]) -> bool:
        return bool(c["status"].get("migration", {}).get("result") == "Failed")

    # KubeVirt fails the migration with its VMI (v1.7.0: "see its Events"); it never moved.
    cr = await wait_for(k, namespace, "mover", failed, within=20, what="the migration Failed")
    assert cr["status"]["migration"]["sourceNode"] == node
