"""Saying what is wrong (issue 15 points 1-4), on the real API server with the simulator: a
disk over a ResourceQuota, a launcher pod or a VMI over one, a VM no node can take, a forced
stop that fails once, a Manual VM that should start once, and a network the node cannot
attach."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.scenario import (
    condition,
    create,
    get,
    items,
    k,
    patch_spec,
    path,
    sim,
    user_nad,
    wait_for,
    wait_phase,
    wait_ready,
    wukong,
    wukong_events,
)
from wukong.adapters.kube import Kube
from wukong.testing.eventually import eventually
from wukong.testing.kubevirt import Simulator
from wukong.testing.operator import InProcessOperator

__all__ = ["k", "sim"]  # fixtures
DATA = {"name": "data", "size": "10Gi"}
SMALL = {"name": "system", "size": "1Gi"}


@pytest.fixture
async def operator(
    operator_kubeconfig: Path, namespace: str, sim: Simulator
) -> AsyncIterator[InProcessOperator]:
    """The operator as its ServiceAccount, calling a phase stalled after 3 s. As scenario's
    `operator`, a 403 fails the test (its RBAC must be enough), but for a claim's create: a
    ResourceQuota's refusal is a 403 too, and these tests make them (the other tests' fixture
    counts every 403, claim creates included). Webhook refusals are what these tests are
    about, so they are not counted."""
    async with InProcessOperator(operator_kubeconfig, namespace=namespace, stall_after=3) as op:
        yield op
        assert op.operator is not None
        forbidden = [
            (s.labels["verb"], s.labels.get("resource"), s.value)
            for metric in op.operator.metrics.kube_api_requests_total.collect()
            for s in metric.samples
            if s.labels.get("code") == "403"
            and s.value
            and (s.labels["verb"], s.labels.get("resource")) != QUOTA_REFUSED
        ]
        assert forbidden == [], f"the operator was refused (403): {forbidden}"


QUOTA_REFUSED = ("POST", "persistentvolumeclaims")


def quota(name: str, hard: dict[str, str]) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": name},
        "spec": {"hard": hard},
    }


async def test_a_disk_over_the_quota_is_reported_with_the_servers_message_and_retried(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    quotas = f"/api/v1/namespaces/{namespace}/resourcequotas"
    await k.create(quotas, quota("disks", {"requests.storage": "5Gi"}))
    await set_quota(k, quotas, "disks", {"requests.storage": "5Gi"})
    await create(k, "wukong", namespace, wukong("big", disks=[DATA]))
    cr = await wait_for(
        k,
        namespace,
        "big",
        lambda c: condition(c, "ChildrenAdmitted").get("status") == "False",
        what="ChildrenAdmitted=False",
    )
    message = condition(cr, "ChildrenAdmitted")["message"]
    assert "create PersistentVolumeClaim big-data" in message and "exceeded quota" in message

    # Events go out beside the status write (docs/decisions.md): wait for it, do not race it.
    async def refused_once() -> bool:
        events = [e for e in await items(k, "event", namespace) if e["reason"] == "ChildRefused"]
        assert [e["type"] for e in events] in ([], ["Warning"]), events
        return bool(events)

    await eventually(refused_once, timeout=10)
    # The administrator raises the quota: the operator's retry gets the disk through.
    await raise_quota(k, quotas, "disks", {"requests.storage": "50Gi"})
    cr = await wait_phase(k, namespace, "big", "Running", within=60)
    assert condition(cr, "ChildrenAdmitted") == {}  # present only while a child is refused
    events = [e for e in await items(k, "event", namespace) if e["involvedObject"]["name"] == "big"]
    assert ("Normal", "ChildrenAdmitted") in [(e["type"], e["reason"]) for e in events]


async def set_quota(k: Kube, quotas: str, name: str, hard: dict[str, str]) -> None:
    """Wait for the controller manager's resourcequota controller to take the quota's limits
    into its status: quota admission enforces a quota only from then on."""

    async def enforced() -> bool:
        status = (await k.get(f"{quotas}/{name}")).get("status") or {}
        return status.get("hard") == hard and set(status.get("used") or {}) == set(hard)

    await eventually(enforced, timeout=30, message=f"quota {name} enforced")


async def raise_quota(k: Kube, quotas: str, name: str, hard: dict[str, str]) -> None:
    """The administrator raises the limits (and the quota controller's status follows)."""
    await k.merge_patch(f"{quotas}/{name}", {"spec": {"hard": hard}})
    await set_quota(k, quotas, name, hard)


async def refused_until_the_quota_is_raised(
    k: Kube, namespace: str, name: str, resource: str, reason: str
) -> dict[str, object]:
    """A quota of 0 `resource` keeps the Wukong `name` from starting: VMHealthy=False with
    `reason` and the API server's words while it says Starting. Then the administrator
    raises it to 10: virt-controller's retry gets through, the VM runs, the condition goes,
    and the Warning stays among its Events. Returns the VMHealthy condition seen."""
    quotas = f"/api/v1/namespaces/{namespace}/resourcequotas"
    await k.create(quotas, quota(name, {resource: "0"}))
    await set_quota(k, quotas, name, {resource: "0"})
    await create(k, "wukong", namespace, wukong(name, disks=[SMALL]))
    cr = await wait_for(
        k,
        namespace,
        name,
        lambda c: condition(c, "VMHealthy").get("status") == "False",
        within=60,
        what="VMHealthy=False",
    )
    health = condition(cr, "VMHealthy")
    assert health["reason"] == reason
    assert "exceeded quota" in health["message"], health
    assert cr["status"]["phase"] == "Starting"
    await raise_quota(k, quotas, name, {resource: "10"})
    cr = await wait_phase(k, namespace, name, "Running", within=120)
    assert condition(cr, "VMHealthy") == {}
    events = [
        (e["type"], e["reason"])
        for e in await items(k, "event", namespace)
        if e["involvedObject"]["name"] == name
    ]
    assert ("Warning", reason) in events, events
    return health


async def test_a_launcher_pod_over_the_quota_says_so_and_the_vm_runs_once_allowed(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    """A pods quota refuses the VMI's virt-launcher pod: virt-controller records it only on the
    VMI (Synchronized=False, FailedCreate), the VM's printableStatus stays Starting, so the
    Wukong said nothing until Stalled. Now VMHealthy=False carries the API server's words."""
    await refused_until_the_quota_is_raised(k, namespace, "crowded", "pods", "LauncherPodRefused")


async def test_a_vmi_over_the_quota_says_so_once_it_lasts_and_the_vm_runs_once_allowed(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    """A quota on VMIs refuses every VMI virt-controller makes: only the VM's Failure
    condition says so (FailedCreate, the same reason a passing conflict has), so it is the
    Wukong's VMHealthy=False once it has lasted LASTING seconds."""
    count = "count/virtualmachineinstances.kubevirt.io"
    health = await refused_until_the_quota_is_raised(k, namespace, "capped", count, "FailedCreate")
    assert count in str(health["message"]), health


async def test_a_vm_no_node_can_take_says_so_and_stalled_names_it(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    await create(k, "wukong", namespace, wukong("nowhere", disks=[SMALL], runStrategy="Halted"))
    await wait_phase(k, namespace, "nowhere", "Stopped", within=30)
    await k.merge_patch(
        path("vm", namespace, "nowhere-vm"),
        {"metadata": {"annotations": {"sim.kubevirt.io/unschedulable": "true"}}},
    )
    await patch_spec(k, namespace, "nowhere", {"lifecycleAction": {"action": "start"}})
    cr = await wait_for(
        k,
        namespace,
        "nowhere",
        lambda c: (
            condition(c, "Stalled").get("status") == "True"
            and condition(c, "VMHealthy").get("status") == "False"
        ),
        within=30,
        what="VMHealthy=False and Stalled",
    )
    health = condition(cr, "VMHealthy")
    assert health["reason"] == "ErrorUnschedulable"
    assert health["message"].startswith("VM ErrorUnschedulable: 0/")
    stalled = condition(cr, "Stalled")["message"]
    assert "VM ErrorUnschedulable: 0/" in stalled
    for healthy in ("FileSystemResizePending", "RestartRequired", "NetworksConfigured"):
        assert healthy not in stalled, stalled


async def test_a_forced_stop_that_fails_once_is_sent_again_forced(
    k: Kube, namespace: str, sim: Simulator, operator: InProcessOperator
) -> None:
    await create(k, "wukong", namespace, wukong("stubborn", disks=[SMALL]))
    await wait_phase(k, namespace, "stubborn", "Running", within=30)
    await k.merge_patch(  # a guest that ignores ACPI: the graceful stop runs out its grace
        path("vm", namespace, "stubborn-vm"),
        {"metadata": {"annotations": {"sim.kubevirt.io/ignore-acpi": "true"}}},
    )
    action = {"action": "stop", "gracePeriodSeconds": 2}
    await patch_spec(k, namespace, "stubborn", {"lifecycleAction": action})
    await eventually(lambda: _stops(sim) >= 1, timeout=20)
    sim.faults.fail_next("stop", 503, "virt-api is restarting")  # the forced escalation fails
    await wait_phase(k, namespace, "stubborn", "Stopped", within=40)
    bodies = [c.body for c in sim.calls if c.subresource == "stop" and c.name == "stubborn-vm"]
    assert bodies[0] == {"gracePeriod": 2}
    assert bodies[1:] == [{"gracePeriod": 0}, {"gracePeriod": 0}], bodies


def _stops(sim: Simulator) -> int:
    return sum(1 for c in sim.calls if c.subresource == "stop" and c.name == "stubborn-vm")


async def test_a_manual_vm_with_auto_start_is_started_once(
    k: Kube, namespace: str, sim: Simulator, operator: InProcessOperator
) -> None:
    spec = {"runStrategy": "Manual", "startStrategy": {"autoStart": True}}
    await create(k, "wukong", namespace, wukong("manual", disks=[SMALL], **spec))
    await wait_phase(k, namespace, "manual", "Running", within=30)
    starts = [c for c in sim.calls if c.subresource == "start" and c.name == "manual-vm"]
    assert len(starts) == 1
    vm = await get(k, "vm", namespace, "manual-vm")
    assert vm is not None and vm["spec"]["runStrategy"] == "Manual"


async def test_a_guest_with_many_nics_of_its_own_keeps_answering(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    """A guest running containers: the agent reports docker0 and a veth per container, and
    KubeVirt lists them in the VMI without a network name. More than 16 once made every pass
    of the Wukong fail (status frozen, a stop never called)."""
    await create(k, "wukong", namespace, wukong("nics", disks=[SMALL]))
    await wait_phase(k, namespace, "nics", "Running", within=60)
    sim.guest(namespace, "nics-vm").add_nics("docker0", *(f"veth{i:02d}" for i in range(20)))

    async def listed() -> bool:
        vmi = await get(k, "vmi", namespace, "nics-vm")
        return len(((vmi or {}).get("status") or {}).get("interfaces") or []) > 16

    await eventually(listed, timeout=30, message="the guest's NICs in the VMI's status")
    cr = await get(k, "wukong", namespace, "nics")
    assert cr is not None
    assert [i["name"] for i in cr["status"]["interfaces"]] == ["default"]
    stop = {"action": "stop", "requestedAt": "2026-01-01T00:00:00.000001Z"}
    await patch_spec(k, namespace, "nics", {"lifecycleAction": stop})
    cr = await wait_phase(k, namespace, "nics", "Stopped", within=60)
    assert [i["name"] for i in cr["status"].get("interfaces") or []] == []


async def test_a_guest_paused_on_a_disk_error_says_so_and_runs_on_once_the_disk_answers(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    """QEMU pauses a guest whose storage fails (errorPolicy stop, KubeVirt's default) and
    virt-handler keeps trying to resume it. That is trouble, not a suspend: the Wukong stays
    Running, not Ready, VMHealthy False with a Warning. Once the disk answers, KubeVirt's next
    try resumes the same guest, and the Wukong is Ready again without a restart."""
    sim.config.io_error_retry_delay = 1.0
    await create(k, "wukong", namespace, wukong("flaky", disks=[SMALL]))
    await wait_phase(k, namespace, "flaky", "Running", within=60)
    vmi = await get(k, "vmi", namespace, "flaky-vm")
    assert vmi is not None
    sim.guest(namespace, "flaky-vm").disk_error()
    cr = await wait_for(
        k,
        namespace,
        "flaky",
        lambda c: condition(c, "VMHealthy").get("reason") == "PausedIOError",
        within=30,
        what="VMHealthy says the guest is paused on a disk error",
    )
    assert cr["status"]["phase"] == "Running"
    assert condition(cr, "VMHealthy")["status"] == "False"
    assert condition(cr, "Ready")["status"] == "False"
    assert condition(cr, "Ready")["reason"] == "PausedIOError"

    async def warned() -> bool:
        events = await wukong_events(k, namespace, "PausedIOError")
        return any(e.get("type") == "Warning" for e in events)

    await eventually(warned, timeout=20, message="a Warning Event on the Wukong")
    # A suspend now is refused: the pause is KubeVirt's, not one the Wukong could answer.
    suspend = {"action": "suspend", "requestedAt": "2026-01-01T00:00:00.000001Z"}
    await patch_spec(k, namespace, "flaky", {"lifecycleAction": suspend})
    cr = await wait_for(
        k,
        namespace,
        "flaky",
        lambda c: ((c.get("status") or {}).get("lifecycleState") or {}).get("state") == "Refused",
        within=30,
        what="the suspend refused",
    )
    assert cr["status"]["phase"] == "Running"
    assert "KubeVirt has paused the guest itself" in cr["status"]["lifecycleState"]["message"]
    sim.guest(namespace, "flaky-vm").disk_repaired()
    cr = await wait_for(
        k,
        namespace,
        "flaky",
        lambda c: condition(c, "Ready").get("status") == "True",
        within=30,
        what="flaky Ready again",
    )
    assert condition(cr, "VMHealthy").get("status") != "False"
    assert cr["status"]["phase"] == "Running"
    after = await get(k, "vmi", namespace, "flaky-vm")
    assert after is not None and after["metadata"]["uid"] == vmi["metadata"]["uid"]
    hops = [(h.get("from"), h.get("to")) for h in cr["status"].get("history") or []]
    assert all("Suspended" not in hop for hop in hops), hops
    assert not [c for c in sim.calls if c.name == "flaky-vm" and c.subresource != "start"]


async def test_a_vm_deleted_outside_wukong_is_made_again_with_a_warning_and_runs(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    """`kubectl delete vm` behind the Wukong's back: it is made again from the spec, and a
    Warning says so. Under Manual the new VM is started too: nobody asked for it to stop."""
    spec = {"runStrategy": "Manual", "startStrategy": {"autoStart": True}}
    await create(k, "wukong", namespace, wukong("again", disks=[SMALL], **spec))
    await wait_phase(k, namespace, "again", "Running", within=60)
    old = await get(k, "vm", namespace, "again-vm")
    assert old is not None
    await k.delete(path("vm", namespace, "again-vm"))

    async def replaced() -> bool:
        vm = await get(k, "vm", namespace, "again-vm")
        return vm is not None and vm["metadata"]["uid"] != old["metadata"]["uid"]

    await eventually(replaced, timeout=60, message="a new again-vm")
    cr = await wait_ready(k, namespace, "again", within=60)
    hops = [(h.get("from"), h.get("to"), h.get("reason")) for h in cr["status"]["history"]]
    assert ("Running", "Creating", "VMDeleted") in hops, hops
    warnings = await wukong_events(k, namespace, "VMDeleted")
    assert [e["type"] for e in warnings] == ["Warning"]
    assert "deleted outside Wukong" in warnings[0]["message"]
    starts = [c for c in sim.calls if c.subresource == "start" and c.name == "again-vm"]
    assert len(starts) == 2  # the first VM's auto start, and the new one's


async def test_a_virtctl_stop_behind_the_wukongs_back_is_undone_with_a_warning(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    """`virtctl stop` on a Wukong's VM (runStrategy Always, no request of the Wukong's): the
    Wukong still asks for it to run, so it sets runStrategy back and the guest comes back up,
    with a Warning that says why and how to stop it for good."""
    await create(k, "wukong", namespace, wukong("undone", disks=[SMALL]))
    await wait_phase(k, namespace, "undone", "Running", within=60)
    stop = (
        f"/apis/subresources.kubevirt.io/v1/namespaces/{namespace}/virtualmachines/undone-vm/stop"
    )
    await k.request("PUT", stop, body={})

    [event] = await eventually(
        lambda: wukong_events(k, namespace, "RunStrategyReverted"),
        timeout=30,
        message="a RunStrategyReverted Event",
    )
    assert event["type"] == "Warning"
    assert "undone-vm was stopped outside Wukong (runStrategy Halted" in event["message"]
    await wait_ready(k, namespace, "undone", within=60)
    vm = await get(k, "vm", namespace, "undone-vm")
    assert vm is not None and vm["spec"]["runStrategy"] == "Always"


async def test_a_network_the_node_cannot_attach_says_so_and_the_vm_runs_once_it_can(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    """Audit s46 networks #2: when a network's CNI ADD fails (here a NAD the simulated node's
    Multus fails on: `sim.kubevirt.io/fail-attach`), the pod gets no sandbox and the kubelet
    says why only in a FailedCreatePodSandBox Event on it; virt-controller turns it into
    nothing. The Wukong said NetworksConfigured=True and Stalled "waiting for KubeVirt"."""
    why = '"br-x" already exists but is not a bridge'
    nad = user_nad("flaky-net")
    nad["metadata"]["annotations"] = {"sim.kubevirt.io/fail-attach": why}
    await create(k, "nad", namespace, nad)
    nets = [{"name": "storage", "nadName": "flaky-net"}]
    await create(k, "wukong", namespace, wukong("unplugged", disks=[SMALL], networks=nets))
    cr = await wait_for(
        k,
        namespace,
        "unplugged",
        lambda c: (
            condition(c, "VMHealthy").get("reason") == "PodSandboxFailed"
            and why in condition(c, "Stalled").get("message", "")
        ),
        within=60,
        what="VMHealthy=False PodSandboxFailed, named by Stalled",
    )
    health = condition(cr, "VMHealthy")
    assert health["status"] == "False" and cr["status"]["phase"] == "Starting"
    assert "cannot create the sandbox of pod virt-launcher-unplugged-vm-" in health["message"]
    assert 'error adding container to network "flaky-net": ' + why in health["message"]
    assert "A network of the VM cannot be attached" in health["message"]
    assert "waiting for KubeVirt" not in condition(cr, "Stalled")["message"]
    # The kubelet's own word, on the pod the VMI lists.
    vmi = await get(k, "vmi", namespace, "unplugged-vm")
    assert vmi is not None and vmi["status"]["phase"] in ("Pending", "Scheduling")
    pods = set((vmi["status"].get("activePods") or {}).keys())
    said = [
        e
        for e in await items(k, "event", namespace)
        if e["reason"] == "FailedCreatePodSandBox" and e["involvedObject"]["uid"] in pods
    ]
    assert [e["type"] for e in said] == ["Warning"]
    # Its words, but for the sandbox's id, new at each kubelet retry (session 47).
    sandbox = re.search(r'sandbox "([0-9a-f]{64})"', said[0]["message"])
    assert sandbox is not None and sandbox[1] not in health["message"]
    assert said[0]["message"].replace(sandbox[1], "…") in health["message"]

    async def warned() -> bool:
        return any(
            e.get("type") == "Warning"
            for e in await wukong_events(k, namespace, "PodSandboxFailed")
        )

    await eventually(warned, timeout=20, message="a Warning Event on the Wukong")
    # The node's network fixed: the kubelet's next try makes the sandbox, and the VM runs.
    annotations = {"sim.kubevirt.io/fail-attach": None}
    await k.merge_patch(
        path("nad", namespace, "flaky-net"), {"metadata": {"annotations": annotations}}
    )
    cr = await wait_phase(k, namespace, "unplugged", "Running", within=60)
    assert condition(cr, "VMHealthy") == {}
    assert await wukong_events(k, namespace, "NoError")
