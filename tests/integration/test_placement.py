"""Placing and sizing VMs (issue 16): placement fields and instancetype matchers reach the VM
KubeVirt receives; the live-updatable ones are applied live, the rest raise RestartRequired."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.integration.conftest import kubevirt_mode
from tests.integration.scenario import (
    IMAGE,
    condition,
    create,
    get,
    k,
    operator,
    patch_spec,
    refused,
    sim,
    wait_for,
    wait_phase,
    wukong,
    wukong_events,
)
from wukong.adapters.kube import Kube, api_path
from wukong.errors import ServerError
from wukong.testing.eventually import eventually
from wukong.testing.operator import InProcessOperator

__all__ = ["k", "operator", "sim"]  # fixtures

TOLERATIONS = [
    {"key": "dedicated", "operator": "Equal", "value": "vms", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 60},
]  # fmt: skip
AFFINITY = {
    "nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 50,
                "preference": {
                    "matchExpressions": [
                        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}
                    ]
                },
            }
        ]
    }
}
INSTANCETYPE_GROUP = ("instancetype.kubevirt.io", "v1beta1")
REAL = kubevirt_mode() == "real"
# KubeVirt moves a VMI by live migration (to hot-plug, or asked): its disks must be shared.
SHARED = [{"name": "system", "size": "10Gi", "image": IMAGE, "accessMode": "ReadWriteMany"}]


async def test_placement_fields_reach_the_vm_and_the_running_vmi(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    # `key: ""` with Exists is every taint, as Kubernetes has it; KubeVirt drops the empty key.
    every_taint = {"key": "", "operator": "Exists", "effect": "PreferNoSchedule"}
    spec = {
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [*TOLERATIONS, every_taint],
        "affinity": AFFINITY,
        "evictionStrategy": "LiveMigrateIfPossible",
    }
    await create(k, "wukong", namespace, wukong("place-1", **spec))
    await wait_phase(k, namespace, "place-1", "Running", within=60)
    vm = await get(k, "vm", namespace, "place-1-vm")
    assert vm is not None
    tmpl = vm["spec"]["template"]["spec"]
    assert tmpl["nodeSelector"] == {"kubernetes.io/os": "linux"}
    tolerated = [*TOLERATIONS, {"operator": "Exists", "effect": "PreferNoSchedule"}]
    assert tmpl["tolerations"] == tolerated
    assert tmpl["affinity"] == AFFINITY
    assert tmpl["evictionStrategy"] == "LiveMigrateIfPossible"
    vmi = await get(k, "vmi", namespace, "place-1-vm")
    assert vmi is not None
    assert vmi["spec"]["nodeSelector"] == tmpl["nodeSelector"]
    assert vmi["spec"]["tolerations"] == tolerated


async def test_node_selector_and_tolerations_apply_live_and_eviction_strategy_needs_a_restart(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    await create(k, "wukong", namespace, wukong("place-2"))
    await wait_phase(k, namespace, "place-2", "Running", within=60)
    selector = {"kubernetes.io/arch": "amd64"}
    await patch_spec(
        k, namespace, "place-2", {"nodeSelector": selector, "tolerations": TOLERATIONS}
    )

    async def applied_live() -> dict[str, Any] | None:
        vmi = await get(k, "vmi", namespace, "place-2-vm")
        spec = (vmi or {}).get("spec") or {}
        if spec.get("nodeSelector") == selector and spec.get("tolerations") == TOLERATIONS:
            return vmi
        return None

    await eventually(applied_live, timeout=30, message="KubeVirt patched the running VMI")
    cr = await get(k, "wukong", namespace, "place-2")
    assert cr is not None
    assert condition(cr, "RestartRequired") == {}  # present only while a restart is owed
    assert cr["status"]["phase"] == "Running"
    # Dropping a key removes it from the VM (a merge patch alone would keep it).
    await patch_spec(k, namespace, "place-2", {"nodeSelector": None})

    async def dropped() -> bool:
        vm = await get(k, "vm", namespace, "place-2-vm")
        return "nodeSelector" not in ((vm or {}).get("spec", {}).get("template", {}).get("spec"))

    await eventually(dropped, timeout=20, message="nodeSelector removed from the VM")
    # The running VMI has the cluster default (KubeVirt writes it into the VMI): ask another.
    await patch_spec(k, namespace, "place-2", {"evictionStrategy": "External"})
    cr = await wait_for(
        k,
        namespace,
        "place-2",
        lambda c: "evictionStrategy" in condition(c, "RestartRequired").get("message", ""),
        within=30,
        what="RestartRequired names evictionStrategy",
    )
    assert condition(cr, "RestartRequired")["status"] == "True"


async def test_live_migrate_on_a_vm_kubevirt_cannot_migrate_says_a_drain_would_wait(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    # KubeVirt's pod-eviction webhook answers every eviction of such a VM's pod with 429, which
    # `kubectl drain` retries for good: the Wukong says so (`EvictionBlocked`), from the VMI
    # KubeVirt made (its evictionStrategy) and what the node said of it (LiveMigratable).
    await create(k, "wukong", namespace, wukong("evict-1", evictionStrategy="LiveMigrate"))
    await create(
        k, "wukong", namespace, wukong("evict-2", evictionStrategy="LiveMigrate", disks=SHARED)
    )
    cr = await wait_for(
        k,
        namespace,
        "evict-1",
        lambda c: condition(c, "EvictionBlocked").get("status") == "True",
        within=60,
        what="EvictionBlocked on a VM with a ReadWriteOnce disk",
    )
    blocked = condition(cr, "EvictionBlocked")
    assert blocked["reason"] == "NotLiveMigratable"
    assert blocked["message"].startswith("evictionStrategy LiveMigrate, but KubeVirt cannot ")
    node = cr["status"]["nodeName"]
    assert f"a drain of {node} waits for it until it stops" in blocked["message"]
    vmi = await get(k, "vmi", namespace, "evict-1-vm")
    assert vmi is not None and vmi["spec"]["evictionStrategy"] == "LiveMigrate"
    [said] = [c for c in vmi["status"]["conditions"] if c["type"] == "LiveMigratable"]
    assert said["status"] == "False" and said["message"] in blocked["message"]
    warned = await wukong_events(k, namespace, "NotLiveMigratable")
    assert [e["type"] for e in warned if e["involvedObject"]["name"] == "evict-1"] == ["Warning"]
    if REAL:  # KubeVirt's own pod-eviction webhook (virt-api) answers a drain's eviction so
        [pod] = [
            p
            for p in (await k.get(f"/api/v1/namespaces/{namespace}/pods"))["items"]
            if (p["metadata"].get("annotations") or {}).get("kubevirt.io/domain") == "evict-1-vm"
        ]
        name = pod["metadata"]["name"]
        eviction = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
        }
        with pytest.raises(ServerError) as said_no:
            await k.create(f"/api/v1/namespaces/{namespace}/pods/{name}/eviction", eviction)
        assert said_no.value.status == 429
        assert "is configured with an eviction strategy but is not live-migratable" in (
            said_no.value.message
        )
    # Shared disks: KubeVirt can move it, a drain does; nothing to say.
    shared = await wait_phase(k, namespace, "evict-2", "Running", within=60)
    assert condition(shared, "EvictionBlocked") == {}


async def test_a_required_node_affinity_no_node_has_is_reported_unschedulable(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    zone = {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["mars-1"]}
    required = {"nodeSelectorTerms": [{"matchExpressions": [zone]}]}
    spec = {
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}}
    }
    await create(k, "wukong", namespace, wukong("place-3", **spec))
    cr = await wait_for(
        k,
        namespace,
        "place-3",
        lambda c: condition(c, "VMHealthy").get("reason") == "ErrorUnschedulable",
        within=60,
        what="VMHealthy=False ErrorUnschedulable",
    )
    assert cr["status"]["phase"] == "Starting"
    assert "didn't match Pod's node affinity/selector" in condition(cr, "VMHealthy")["message"]
    # The user drops the affinity. KubeVirt patches it out of the VMI, but the launcher pod
    # waiting to be scheduled keeps the one it was made with, and no restart is asked: the
    # VM stayed unschedulable for good (guest-access and placement audit, session 41).
    await patch_spec(k, namespace, "place-3", {"affinity": None})
    await wait_phase(k, namespace, "place-3", "Running", within=60)


async def test_instancetype_and_preference_become_the_vm_matchers(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    group, version = INSTANCETYPE_GROUP
    await k.create(
        api_path(group, version, "virtualmachineinstancetypes", namespace),
        {
            "apiVersion": f"{group}/{version}",
            "kind": "VirtualMachineInstancetype",
            "metadata": {"name": "small", "namespace": namespace},
            "spec": {"cpu": {"guest": 2}, "memory": {"guest": "1Gi"}},
        },
    )
    await k.create(
        api_path(group, version, "virtualmachinepreferences", namespace),
        {
            "apiVersion": f"{group}/{version}",
            "kind": "VirtualMachinePreference",
            "metadata": {"name": "linux", "namespace": namespace},
            "spec": {"devices": {"preferredDiskBus": "virtio"}},
        },
    )
    body = wukong(
        "sized-1",
        instancetype={"kind": "VirtualMachineInstancetype", "name": "small"},
        preference={"kind": "VirtualMachinePreference", "name": "linux"},
    )
    del body["spec"]["cpu"], body["spec"]["memory"]
    await create(k, "wukong", namespace, body)
    await wait_phase(k, namespace, "sized-1", "Running", within=60)
    cr = await wait_for(
        k,
        namespace,
        "sized-1",
        lambda c: bool((c["status"].get("interfaces") or [{}])[0].get("ipAddress")),
        within=30,
        what="sized-1 with an IP",
    )
    assert condition(cr, "RestartRequired") == {}  # the VMI runs the instancetype asked for
    vm = await get(k, "vm", namespace, "sized-1-vm")
    assert vm is not None
    assert vm["spec"]["instancetype"]["name"] == "small"
    assert vm["spec"]["instancetype"]["kind"] == "VirtualMachineInstancetype"
    assert vm["spec"]["preference"]["name"] == "linux"
    domain = vm["spec"]["template"]["spec"]["domain"]
    assert "cpu" not in domain and "memory" not in domain  # the instancetype sizes it
    vmi = await get(k, "vmi", namespace, "sized-1-vm")
    assert vmi is not None
    assert vmi["spec"]["domain"]["cpu"]["sockets"] * vmi["spec"]["domain"]["cpu"]["cores"] == 2
    assert vmi["spec"]["domain"]["memory"]["guest"] == "1Gi"


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        pytest.param(
            {"instancetype": {"name": "u1.small"}},
            "instancetype sets CPU and memory: remove cpu and memory, or remove instancetype",
            id="instancetype-and-cpu",
        ),
        pytest.param(
            {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]},
            "value must be empty when operator is Exists",
            id="toleration-exists-with-value",
        ),
        pytest.param(
            {"tolerations": [{"key": "", "operator": "Equal", "value": "v"}]},
            "a toleration without key matches every taint and needs operator: Exists",
            id="toleration-empty-key-equal",
        ),
        pytest.param(
            {"tolerations": [{"key": "k", "effect": "NoSchedul"}]},
            'spec.tolerations[0].effect: Unsupported value: "NoSchedul"',
            id="toleration-misspelt-effect",
        ),
        pytest.param(
            {"tolerations": [{"key": "k", "value": "v", "tolerationSeconds": 30}]},
            "tolerationSeconds is only for effect NoExecute",
            id="toleration-seconds-without-no-execute",
        ),
        pytest.param(
            {"nodeSelector": {"bad key!": "x"}},
            "every key must be a label key",
            id="node-selector-bad-key",
        ),
        pytest.param(
            {
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {"matchExpressions": [{"key": "zone", "operator": "In"}]}
                            ]
                        }
                    }
                }
            },
            "values must be specified when `operator` is 'In' or 'NotIn'",
            id="affinity-in-without-values",
        ),
        pytest.param(
            {"evictionStrategy": "Migrate"},
            'spec.evictionStrategy: Unsupported value: "Migrate"',
            id="unknown-eviction-strategy",
        ),
    ],
)
async def test_bad_placement_is_refused_by_the_api_server_in_plain_words(
    k: Kube, namespace: str, spec: dict[str, Any], words: str
) -> None:
    assert words in await refused(k, namespace, wukong("bad-place", **spec))


async def test_neither_instancetype_nor_cpu_is_refused(k: Kube, namespace: str) -> None:
    body = wukong("unsized")
    del body["spec"]["cpu"]
    message = await refused(k, namespace, body)
    assert "cpu and memory are required unless an instancetype is named" in message


async def _instancetype(k: Kube, namespace: str, name: str, cpu: int, memory: str) -> None:
    group, version = INSTANCETYPE_GROUP
    await k.create(
        api_path(group, version, "virtualmachineinstancetypes", namespace),
        {
            "apiVersion": f"{group}/{version}",
            "kind": "VirtualMachineInstancetype",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"cpu": {"guest": cpu}, "memory": {"guest": memory}},
        },
    )


async def test_a_new_instancetype_is_applied_live_not_a_restart(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    """Found by a source audit (session 47): KubeVirt hot-plugs a new instancetype's CPUs and
    memory through a live migration, and the Wukong said "restart it to apply" until the
    next restart."""
    await _instancetype(k, namespace, "one", 1, "1Gi")
    await _instancetype(k, namespace, "two", 2, "2Gi")
    ref = {"kind": "VirtualMachineInstancetype", "name": "one"}
    body = wukong("sized-2", disks=SHARED, instancetype=ref)
    del body["spec"]["cpu"], body["spec"]["memory"]
    await create(k, "wukong", namespace, body)
    await wait_phase(k, namespace, "sized-2", "Running", within=60)
    before = await get(k, "vmi", namespace, "sized-2-vm")
    assert before is not None
    await patch_spec(k, namespace, "sized-2", {"instancetype": {**ref, "name": "two"}})
    if not REAL:
        # The pure simulator plays no instancetype hot-plug (kubevirt-fidelity S3): the
        # operator's part is shown, the VM given the new instancetype and no restart said.
        async def given() -> bool:
            vm = await get(k, "vm", namespace, "sized-2-vm")
            return ((vm or {}).get("spec") or {}).get("instancetype", {}).get("name") == "two"

        await eventually(given, timeout=30, message="the VM given instancetype two")
        for _ in range(10):
            cr = await get(k, "wukong", namespace, "sized-2")
            assert condition(cr or {}, "RestartRequired") == {}, cr
            await asyncio.sleep(0.3)
        vmi = await get(k, "vmi", namespace, "sized-2-vm")
        assert vmi is not None and vmi["metadata"]["uid"] == before["metadata"]["uid"]
        return
    said: list[str] = []

    async def plugged() -> dict[str, Any] | None:
        cr = await get(k, "wukong", namespace, "sized-2")
        said.append(condition(cr or {}, "RestartRequired").get("message", ""))
        vmi = await get(k, "vmi", namespace, "sized-2-vm")
        status = (vmi or {}).get("status") or {}
        if (status.get("currentCPUTopology") or {}).get("sockets") != 2:
            return None
        return vmi if (status.get("memory") or {}).get("guestRequested") == "2Gi" else None

    vmi = await eventually(plugged, timeout=90, message="2 sockets and 2Gi in the running VMI")
    assert vmi["metadata"]["uid"] == before["metadata"]["uid"]  # the same VMI: no restart
    assert not any(said), said
    cr = await wait_for(
        k,
        namespace,
        "sized-2",
        lambda c: not condition(c, "CPUMemoryHotplug") and c["status"]["phase"] == "Running",
        within=30,
        what="the hot-plug done",
    )
    assert condition(cr, "RestartRequired") == {}
