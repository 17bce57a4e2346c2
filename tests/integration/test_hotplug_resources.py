"""CPU and memory of a running VM (issue 16 point 2): with `hotplug`, a cpu or memory change is
applied live where KubeVirt hot-plugs it (virt-controller copies it into the VMI and moves the
VMI to a bigger pod by live migration; the simulated target node plugs it), and the Wukong
says how far it has come; a change KubeVirt cannot apply live, or a dropped evictionStrategy,
raises RestartRequired naming the field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.conftest import kubevirt_mode
from tests.integration.scenario import (
    IMAGE,
    condition,
    create,
    get,
    items,
    k,
    operator,
    patch_spec,
    refused,
    sim,
    wait_for,
    wait_phase,
    wukong,
)
from wukong.adapters.kube import Kube
from wukong.testing.eventually import eventually
from wukong.testing.operator import InProcessOperator

__all__ = ["k", "operator", "sim"]  # fixtures

# KubeVirt moves a VMI to a bigger pod by live migration: its disks must be shared.
SHARED = [{"name": "system", "size": "10Gi", "image": IMAGE, "accessMode": "ReadWriteMany"}]
REAL = kubevirt_mode() == "real"


def _vmi_domain(vmi: dict[str, Any] | None) -> dict[str, Any]:
    return ((vmi or {}).get("spec") or {}).get("domain") or {}


def _events(events: list[dict[str, Any]], reason: str) -> list[str]:
    return [
        e["message"]
        for e in events
        if e["reason"] == reason and e["involvedObject"]["kind"] == "Wukong"
    ]


async def _restart_required(k: Kube, namespace: str, name: str) -> tuple[dict[str, Any], str]:
    """The Wukong once it says RestartRequired, and what it says."""
    cr = await wait_for(
        k,
        namespace,
        name,
        lambda c: condition(c, "RestartRequired").get("status") == "True",
        within=30,
        what="RestartRequired",
    )
    return cr, condition(cr, "RestartRequired")["message"]


async def _plugged_live(
    k: Kube, namespace: str, name: str, uid: str, done: Callable[[dict[str, Any]], bool], what: str
) -> list[dict[str, Any]]:
    """Wait until the running VMI shows the change, still the same VMI (no restart), and the
    Wukong is Running with the hot-plug over and nothing to restart for; the namespace's Events."""

    async def plugged() -> dict[str, Any] | None:
        vmi = await get(k, "vmi", namespace, f"{name}-vm")
        return vmi if vmi is not None and done(vmi) else None

    vmi = await eventually(plugged, timeout=60, message=f"{what} in the running VMI")
    assert vmi["metadata"]["uid"] == uid  # the same VMI: no restart
    cr = await wait_for(
        k,
        namespace,
        name,
        lambda c: not condition(c, "CPUMemoryHotplug"),
        within=30,
        what="the hot-plug done",
    )
    assert condition(cr, "RestartRequired") == {}
    assert cr["status"]["phase"] == "Running"
    return await items(k, "event", namespace)


async def test_cpu_added_live_reaches_the_guest_without_a_restart(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    body = wukong("hot-cpu", disks=SHARED, cpu=1, hotplug={"maxCpu": 4})
    await create(k, "wukong", namespace, body)
    await wait_phase(k, namespace, "hot-cpu", "Running", within=60)
    vm = await get(k, "vm", namespace, "hot-cpu-vm")
    assert vm is not None
    cpu = vm["spec"]["template"]["spec"]["domain"]["cpu"]
    assert cpu == {"sockets": 1, "cores": 1, "threads": 1, "maxSockets": 4}
    before = await get(k, "vmi", namespace, "hot-cpu-vm")
    assert before is not None
    uid = before["metadata"]["uid"]
    await patch_spec(k, namespace, "hot-cpu", {"cpu": 3})

    def three_sockets(vmi: dict[str, Any]) -> bool:
        topology = (vmi.get("status") or {}).get("currentCPUTopology") or {}
        return _vmi_domain(vmi).get("cpu", {}).get("sockets") == 3 and (
            not REAL or topology.get("sockets") == 3
        )

    events = await _plugged_live(k, namespace, "hot-cpu", uid, three_sockets, "3 sockets")
    assert any("cpu 1 → 3" in m for m in _events(events, "Resized"))
    if REAL:
        # KubeVirt's workload updater moved it to a pod with room for the new CPUs.
        assert any("cpu 1 → 3" in m for m in _events(events, "HotplugMigrating"))


async def test_memory_added_live_reaches_the_guest_without_a_restart(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    body = wukong("hot-mem", disks=SHARED, memory="1Gi", hotplug={"maxMemory": "4Gi"})
    await create(k, "wukong", namespace, body)
    await wait_phase(k, namespace, "hot-mem", "Running", within=60)
    vm = await get(k, "vm", namespace, "hot-mem-vm")
    assert vm is not None
    domain = vm["spec"]["template"]["spec"]["domain"]
    assert domain["memory"] == {"guest": "1Gi", "maxGuest": "4Gi"}
    # No memory request of our own: KubeVirt sizes the pod, and grows it on a hot-plug.
    assert "memory" not in (domain.get("resources") or {}).get("requests", {}), domain
    before = await get(k, "vmi", namespace, "hot-mem-vm")
    assert before is not None
    await patch_spec(k, namespace, "hot-mem", {"memory": "2Gi"})

    def two_gi(vmi: dict[str, Any]) -> bool:
        memory = (vmi.get("status") or {}).get("memory") or {}
        return _vmi_domain(vmi).get("memory", {}).get("guest") == "2Gi" and (
            not REAL or memory.get("guestRequested") == "2Gi"
        )

    uid = before["metadata"]["uid"]
    events = await _plugged_live(k, namespace, "hot-mem", uid, two_gi, "2Gi")
    assert any("memory 1Gi → 2Gi" in m for m in _events(events, "Resized"))


async def test_cpu_beyond_the_maximum_needs_a_restart_naming_cpu(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    # No maxCpu: KubeVirt's default maximum, 4 x the sockets the VM started with.
    await create(k, "wukong", namespace, wukong("hot-max", disks=SHARED, cpu=1, hotplug={}))
    await wait_phase(k, namespace, "hot-max", "Running", within=60)
    vmi = await get(k, "vmi", namespace, "hot-max-vm")
    assert _vmi_domain(vmi)["cpu"]["maxSockets"] == 4
    await patch_spec(k, namespace, "hot-max", {"cpu": 6})
    cr, message = await _restart_required(k, namespace, "hot-max")
    assert message.startswith("cpu changed while the VM runs"), message
    assert "6 is above the 4 vCPUs the VM can have live" in message
    assert not condition(cr, "CPUMemoryHotplug")
    vmi = await get(k, "vmi", namespace, "hot-max-vm")
    assert _vmi_domain(vmi)["cpu"]["sockets"] == 1  # KubeVirt did not apply it either


async def test_cpu_of_a_vm_that_cannot_migrate_waits_for_a_restart_not_an_eviction(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    """Found by a source audit (session 42): KubeVirt copies new sockets into a VMI it cannot
    migrate too, and its workload updater then evicts that VMI where the KubeVirt CR lists
    Evict: the guest shut down unasked. The template keeps the running count; the restart
    the Wukong asks for writes the new one first."""
    await create(k, "wukong", namespace, wukong("hot-rwo", cpu=1, hotplug={}))  # ReadWriteOnce
    await wait_phase(k, namespace, "hot-rwo", "Running", within=60)
    before = await get(k, "vmi", namespace, "hot-rwo-vm")
    assert before is not None
    await patch_spec(k, namespace, "hot-rwo", {"cpu": 2})
    _, message = await _restart_required(k, namespace, "hot-rwo")
    assert message.startswith("cpu changed while the VM runs"), message
    assert "waits in the spec until a restart" in message
    vm = await get(k, "vm", namespace, "hot-rwo-vm")
    assert vm is not None and vm["spec"]["template"]["spec"]["domain"]["cpu"]["sockets"] == 1
    vmi = await get(k, "vmi", namespace, "hot-rwo-vm")
    assert vmi is not None and vmi["metadata"]["uid"] == before["metadata"]["uid"]
    assert _vmi_domain(vmi)["cpu"]["sockets"] == 1  # KubeVirt was given nothing to copy
    await patch_spec(
        k, namespace, "hot-rwo", {"lifecycleAction": {"action": "restart", "requestedAt": "r1"}}
    )

    async def restarted() -> dict[str, Any] | None:
        vmi = await get(k, "vmi", namespace, "hot-rwo-vm")
        if vmi is None or vmi["metadata"]["uid"] == before["metadata"]["uid"]:
            return None
        return vmi if _vmi_domain(vmi)["cpu"]["sockets"] == 2 else None

    await eventually(restarted, timeout=60, message="a new VMI with 2 sockets")
    await wait_for(
        k,
        namespace,
        "hot-rwo",
        lambda c: c["status"].get("phase") == "Running" and not condition(c, "RestartRequired"),
        within=60,
        what="Running with nothing to restart for",
    )


async def test_without_hotplug_a_memory_change_needs_a_restart(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    await create(k, "wukong", namespace, wukong("cold-mem", disks=SHARED))
    await wait_phase(k, namespace, "cold-mem", "Running", within=60)
    await patch_spec(k, namespace, "cold-mem", {"memory": "2Gi"})
    cr = await wait_for(
        k,
        namespace,
        "cold-mem",
        lambda c: "memory" in condition(c, "RestartRequired").get("message", ""),
        within=30,
        what="RestartRequired names memory",
    )
    assert condition(cr, "RestartRequired")["message"].startswith("memory changed")
    vmi = await get(k, "vmi", namespace, "cold-mem-vm")
    assert _vmi_domain(vmi)["memory"]["guest"] == "1Gi"


async def test_removing_eviction_strategy_needs_a_restart_naming_it(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    body = wukong("evict-gone", evictionStrategy="External")
    await create(k, "wukong", namespace, body)
    await wait_phase(k, namespace, "evict-gone", "Running", within=60)
    await patch_spec(k, namespace, "evict-gone", {"evictionStrategy": None})

    async def dropped() -> bool:
        vm = await get(k, "vm", namespace, "evict-gone-vm")
        template = ((vm or {}).get("spec") or {}).get("template", {}).get("spec") or {}
        return "evictionStrategy" not in template

    await eventually(dropped, timeout=20, message="evictionStrategy removed from the VM")
    cr = await wait_for(
        k,
        namespace,
        "evict-gone",
        lambda c: "evictionStrategy" in condition(c, "RestartRequired").get("message", ""),
        within=30,
        what="RestartRequired names evictionStrategy",
    )
    assert condition(cr, "RestartRequired")["status"] == "True"
    assert condition(cr, "RestartRequired")["message"].startswith("evictionStrategy changed")


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        pytest.param(
            {"cpu": 8, "hotplug": {"maxCpu": 4}},
            "cpu is above hotplug.maxCpu",
            id="cpu-above-max",
        ),
        pytest.param(
            {"memory": "8Gi", "hotplug": {"maxMemory": "4Gi"}},
            "memory is above hotplug.maxMemory",
            id="memory-above-max",
        ),
        pytest.param(
            {"memory": "512Mi", "hotplug": {"maxMemory": "4Gi"}},
            "Memory hotplug is only available for VMs with at least 1Gi of guest memory",
            id="memory-too-small",
        ),
        pytest.param(
            {"memory": "1025Mi", "hotplug": {"maxMemory": "4Gi"}},
            "Guest memory and maxMemory must be 2Mi aligned",
            id="memory-unaligned",
        ),
    ],
)
async def test_bad_hotplug_is_refused_by_the_api_server(
    k: Kube, namespace: str, spec: dict[str, Any], words: str
) -> None:
    assert words in await refused(k, namespace, wukong("bad-hot", **spec))


async def test_hotplug_with_an_instancetype_is_refused(k: Kube, namespace: str) -> None:
    body = wukong("bad-hot-it", instancetype={"name": "u1.small"}, hotplug={"maxCpu": 4})
    del body["spec"]["cpu"], body["spec"]["memory"]
    assert "hotplug needs cpu and memory" in await refused(k, namespace, body)
