"""The KubeVirt simulator against the real control plane: VM lifecycle and subresources.

Subresources are called through the API server's aggregation layer, as Wukong will call them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient

from wukong.testing.controlplane import ControlPlane
from wukong.testing.eventually import eventually
from wukong.testing.kubevirt import SimConfig, Simulator
from wukong.testing.kubevirt.manifests import persistent_volume_claim, virtual_machine

JsonObj = dict[str, Any]
SUB = "/apis/subresources.kubevirt.io/v1/namespaces"


@dataclass
class Answer:
    """An HTTP answer as the client saw it."""

    status: int
    text: str
    content_type: str

    @property
    def json(self) -> JsonObj:
        """The body decoded as JSON."""
        decoded: JsonObj = json.loads(self.text)
        return decoded


async def call(
    kube: ApiClient,
    method: str,
    path: str,
    body: Any = None,
    content_type: str = "application/json",
) -> Answer:
    """One raw request through the admin client (never raises on HTTP errors)."""
    resp = await kube.call_api(
        path,
        method,
        header_params={"Content-Type": content_type, "Accept": "application/json, */*"},
        body=body,
        auth_settings=["BearerToken"],
        _preload_content=False,
    )
    async with resp:
        return Answer(resp.status, await resp.text(), resp.headers.get("Content-Type", ""))


def vm_path(ns: str, name: str = "") -> str:
    """REST path of a VM (or the collection)."""
    return f"/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachines" + (f"/{name}" if name else "")


def vmi_path(ns: str, name: str) -> str:
    """REST path of a VMI."""
    return f"/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachineinstances/{name}"


async def get(kube: ApiClient, path: str) -> JsonObj | None:
    """The object, or None on 404."""
    answer = await call(kube, "GET", path)
    if answer.status == 404:
        return None
    assert answer.status == 200, answer
    return answer.json


async def create(kube: ApiClient, path: str, obj: JsonObj) -> JsonObj:
    """POST an object."""
    answer = await call(kube, "POST", path, obj)
    assert answer.status == 201, answer
    return answer.json


async def merge_patch(kube: ApiClient, path: str, patch: JsonObj) -> Answer:
    """PATCH with a JSON merge patch."""
    return await call(kube, "PATCH", path, patch, "application/merge-patch+json")


async def until(
    predicate: Callable[[], Awaitable[JsonObj | None]],
    timeout: float = 10,  # noqa: ASYNC109 - a deadline per call, as in eventually()
    interval: float = 0.1,
    message: str = "",
) -> JsonObj:
    """Wait until `predicate` returns an object (not None), and return it."""

    async def check() -> JsonObj:
        found = await predicate()
        assert found is not None, "not yet"
        return found

    return await eventually(check, timeout=timeout, interval=interval, message=message)


async def vm_status(kube: ApiClient, ns: str, name: str) -> JsonObj:
    """status of a VM (empty dict if none yet)."""
    vm = await get(kube, vm_path(ns, name))
    assert vm is not None
    return vm.get("status") or {}


def cond(obj: JsonObj | None, ctype: str) -> JsonObj | None:
    """A condition of an object, or None."""
    return next(
        (
            c
            for c in ((obj or {}).get("status") or {}).get("conditions") or []
            if c["type"] == ctype
        ),
        None,
    )


async def running_vmi(kube: ApiClient, ns: str, name: str) -> JsonObj:
    """Wait for a Running VMI that reports an IP address, and return it."""

    async def ready() -> JsonObj | None:
        vmi = await get(kube, vmi_path(ns, name))
        status = (vmi or {}).get("status") or {}
        ifaces = status.get("interfaces") or [{}]
        ok = status.get("phase") == "Running" and ifaces[0].get("ipAddress")
        return vmi if ok else None

    return await until(ready, timeout=10)


async def printable(kube: ApiClient, ns: str, name: str, wanted: str) -> JsonObj:
    """Wait until the VM's printableStatus is `wanted`; returns the status."""

    async def check() -> JsonObj | None:
        status = await vm_status(kube, ns, name)
        return status if status.get("printableStatus") == wanted else None

    return await until(check, message=f"printableStatus {wanted}")


async def gone(kube: ApiClient, path: str) -> bool:
    """True once the object no longer exists."""
    return await get(kube, path) is None


@pytest.fixture
def control_plane(pure_sim_plane: ControlPlane) -> ControlPlane:
    """These tests exercise the simulator's own imitation of KubeVirt: never beside the real
    virt-controller (real mode), which would act on the same objects."""
    return pure_sim_plane


@pytest.fixture
async def sim(control_plane: ControlPlane, namespace: str) -> AsyncIterator[Simulator]:
    """A simulator watching this test's namespace."""
    async with Simulator(control_plane.kubeconfig, namespace=namespace) as simulator:
        yield simulator


async def test_always_vm_gets_a_running_vmi_with_node_and_ip_and_halted_removes_it(
    kube: ApiClient, namespace: str, sim: Simulator
) -> None:
    vm = await create(kube, vm_path(namespace), virtual_machine("vm1", namespace, "Always"))

    vmi = await running_vmi(kube, namespace, "vm1")
    owner = vmi["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == (
        "VirtualMachine",
        vm["metadata"]["uid"],
        True,
    )
    assert vmi["metadata"]["labels"]["kubevirt.io/vm"] == "vm1"
    assert vmi["status"]["nodeName"] == "node-1"
    iface = vmi["status"]["interfaces"][0]
    assert iface["name"] == "default" and iface["ipAddress"].startswith("10.244.")
    assert "/" not in iface["ipAddress"] and iface["ipAddresses"] == [iface["ipAddress"]]
    assert [p["phase"] for p in vmi["status"]["phaseTransitionTimestamps"]] == [
        "Pending",
        "Scheduling",
        "Scheduled",
        "Running",
    ]
    status = await printable(kube, namespace, "vm1", "Running")
    assert status["ready"] is True and status["created"] is True
    assert status["runStrategy"] == "Always"
    assert cond({"status": status}, "Ready")["status"] == "True"  # type: ignore[index]
    await eventually(lambda: _has_cond(kube, vm_path(namespace, "vm1"), "AgentConnected"))

    await merge_patch(kube, vm_path(namespace, "vm1"), {"spec": {"runStrategy": "Halted"}})
    await eventually(lambda: gone(kube, vmi_path(namespace, "vm1")))

    async def stopped() -> bool:
        status = await vm_status(kube, namespace, "vm1")
        return status.get("printableStatus") == "Stopped" and status.get("created") is False

    await eventually(stopped)
    assert (await vm_status(kube, namespace, "vm1"))["ready"] is False


async def _has_cond(kube: ApiClient, path: str, ctype: str) -> bool:
    found = cond(await get(kube, path), ctype)
    return found is not None and found["status"] == "True"


async def test_start_stop_restart_through_the_api_server_follow_the_run_strategy_table(
    kube: ApiClient, namespace: str, sim: Simulator
) -> None:
    await create(kube, vm_path(namespace), virtual_machine("vm1", namespace, "Halted"))
    base = f"{SUB}/{namespace}/virtualmachines/vm1"
    await printable(kube, namespace, "vm1", "Stopped")

    refused = await call(kube, "PUT", f"{base}/stop", {})
    assert refused.status == 409 and refused.json["reason"] == "Conflict"
    assert refused.json["message"] == (
        'Operation cannot be fulfilled on virtualmachine.kubevirt.io "vm1": VM is not running'
    )
    refused = await call(kube, "PUT", f"{base}/restart", {})
    assert refused.status == 409
    assert refused.json["message"].endswith(
        "RunStategy Halted does not support manual restart requests"
    )

    assert (await call(kube, "PUT", f"{base}/start", {})).status == 202
    vm = await get(kube, vm_path(namespace, "vm1"))
    assert vm is not None and vm["spec"]["runStrategy"] == "Always"  # Halted + start -> Always
    first = await running_vmi(kube, namespace, "vm1")
    again = await call(kube, "PUT", f"{base}/start", {})
    assert again.status == 409 and again.json["message"].endswith("VM is already running")

    assert (await call(kube, "PUT", f"{base}/restart", {})).status == 202

    async def restarted() -> JsonObj | None:
        vmi = await get(kube, vmi_path(namespace, "vm1"))
        new = vmi is not None and vmi["metadata"]["uid"] != first["metadata"]["uid"]
        running = ((vmi or {}).get("status") or {}).get("phase") == "Running"
        return vmi if new and running else None

    await until(restarted)
    status = await vm_status(kube, namespace, "vm1")
    assert not status.get("stateChangeRequests")  # both requests consumed
    vm = await get(kube, vm_path(namespace, "vm1"))
    assert vm is not None and vm["spec"]["runStrategy"] == "Always"

    assert (await call(kube, "PUT", f"{base}/stop", {})).status == 202
    vm = await get(kube, vm_path(namespace, "vm1"))
    assert vm is not None and vm["spec"]["runStrategy"] == "Halted"
    await eventually(lambda: gone(kube, vmi_path(namespace, "vm1")))
    await printable(kube, namespace, "vm1", "Stopped")
    missing = await call(kube, "PUT", f"{SUB}/{namespace}/virtualmachines/nope/start", {})
    assert missing.status == 404
    assert missing.json["message"] == 'virtualmachine.kubevirt.io "nope" not found'
    assert [c.subresource for c in sim.calls][:3] == ["stop", "restart", "start"]
    assert sim.calls[0].user  # the aggregator forwards the caller in X-Remote-User


async def test_manual_vm_is_driven_by_state_change_requests(
    kube: ApiClient, namespace: str, sim: Simulator
) -> None:
    await create(kube, vm_path(namespace), virtual_machine("vm1", namespace, "Manual"))
    base = f"{SUB}/{namespace}/virtualmachines/vm1"
    await printable(kube, namespace, "vm1", "Stopped")

    assert (await call(kube, "PUT", f"{base}/start", {})).status == 202
    await running_vmi(kube, namespace, "vm1")
    vm = await get(kube, vm_path(namespace, "vm1"))
    assert vm is not None and vm["spec"]["runStrategy"] == "Manual"

    async def requests_consumed() -> bool:
        return not (await vm_status(kube, namespace, "vm1")).get("stateChangeRequests")

    await eventually(requests_consumed)

    assert (await call(kube, "PUT", f"{base}/stop", {})).status == 202
    await eventually(lambda: gone(kube, vmi_path(namespace, "vm1")))
    await eventually(requests_consumed)
    refused = await call(kube, "PUT", f"{base}/stop", {})
    assert refused.status == 409 and refused.json["message"].endswith("VM is not running")


async def test_pause_and_unpause_flip_the_paused_condition_and_printable_status(
    kube: ApiClient, namespace: str, sim: Simulator
) -> None:
    await create(kube, vm_path(namespace), virtual_machine("vm1", namespace, "Always"))
    await running_vmi(kube, namespace, "vm1")
    base = f"{SUB}/{namespace}/virtualmachineinstances/vm1"

    paused = await call(kube, "PUT", f"{base}/pause", {})
    assert (paused.status, paused.text) == (200, "")
    vmi = await get(kube, vmi_path(namespace, "vm1"))
    assert cond(vmi, "Paused") is not None
    assert cond(vmi, "Paused")["reason"] == "PausedByUser"  # type: ignore[index]
    status = await printable(kube, namespace, "vm1", "Paused")
    assert status["ready"] is False
    twice = await call(kube, "PUT", f"{base}/pause", {})
    assert twice.status == 409 and twice.json["message"] == (
        'Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io "vm1": '
        "VMI is already paused"
    )

    assert (await call(kube, "PUT", f"{base}/unpause", {})).status == 200
    status = await printable(kube, namespace, "vm1", "Running")
    await eventually(lambda: _vm_ready(kube, namespace))
    twice = await call(kube, "PUT", f"{base}/unpause", {})
    assert twice.status == 409 and twice.json["message"].endswith("VMI is not paused")
    missing = await call(kube, "PUT", f"{SUB}/{namespace}/virtualmachineinstances/nope/pause", {})
    assert missing.status == 404


async def _vm_ready(kube: ApiClient, namespace: str) -> bool:
    return bool((await vm_status(kube, namespace, "vm1")).get("ready"))


async def test_addvolume_and_removevolume_hotplug_through_the_vm_template(
    kube: ApiClient, namespace: str, sim: Simulator
) -> None:
    await create(
        kube,
        f"/api/v1/namespaces/{namespace}/persistentvolumeclaims",
        persistent_volume_claim("data1", namespace, "2Gi"),
    )
    await create(kube, vm_path(namespace), virtual_machine("vm1", namespace, "Always"))
    await running_vmi(kube, namespace, "vm1")
    base = f"{SUB}/{namespace}/virtualmachines/vm1"
    body = {
        "name": "data1",
        "disk": {"disk": {"bus": "scsi"}, "serial": "data1"},
        "volumeSource": {"persistentVolumeClaim": {"claimName": "data1"}},
    }

    assert (await call(kube, "PUT", f"{base}/addvolume", body)).status == 202
    assert sim.calls[-1].subresource == "addvolume" and sim.calls[-1].body == body
    vm = await get(kube, vm_path(namespace, "vm1"))
    assert vm is not None
    template = vm["spec"]["template"]["spec"]
    assert {
        "name": "data1",
        "persistentVolumeClaim": {"claimName": "data1", "hotpluggable": True},
    } in template["volumes"]
    assert {"name": "data1", "disk": {"bus": "scsi"}, "serial": "data1"} in template["domain"][
        "devices"
    ]["disks"]

    async def plugged() -> JsonObj | None:
        vmi = await get(kube, vmi_path(namespace, "vm1"))
        statuses = {
            s["name"]: s for s in ((vmi or {}).get("status") or {}).get("volumeStatus") or []
        }
        data = statuses.get("data1")
        return data if data and data["phase"] == "Ready" else None

    data = await until(plugged)
    assert data["hotplugVolume"]["attachPodName"].startswith("hp-volume-")
    assert data["persistentVolumeClaimInfo"]["claimName"] == "data1"
    assert data["persistentVolumeClaimInfo"]["capacity"] == {"storage": "2Gi"}
    assert data["target"] == "sda" and data["reason"] == "VolumeReady"

    dup = await call(kube, "PUT", f"{base}/addvolume", body)
    assert dup.status == 409 and dup.json["message"].endswith(
        "Unable to add volume [data1] because volume with that name already exists"
    )
    no_disk = await call(kube, "PUT", f"{base}/addvolume", {"name": "x", "volumeSource": {}})
    assert no_disk.status == 400
    assert no_disk.json["message"] == "AddVolumeOptions requires disk to not be nil"
    root = await call(kube, "PUT", f"{base}/removevolume", {"name": "root"})
    assert root.status == 409 and root.json["message"].endswith(
        "Unable to remove volume [root] because it is not hotpluggable"
    )

    assert (await call(kube, "PUT", f"{base}/removevolume", {"name": "data1"})).status == 202

    async def unplugged() -> bool:
        vmi = await get(kube, vmi_path(namespace, "vm1"))
        names = [s["name"] for s in ((vmi or {}).get("status") or {}).get("volumeStatus") or []]
        vols = [v["name"] for v in (vmi or {})["spec"]["volumes"]]
        return "data1" not in names and "data1" not in vols

    await eventually(unplugged)
    again = await call(kube, "PUT", f"{base}/removevolume", {"name": "data1"})
    assert again.status == 409 and again.json["message"].endswith(
        "Unable to remove volume [data1] because it does not exist"
    )


async def test_hotplug_with_a_sata_bus_is_accepted_then_fails_in_the_controller(
    kube: ApiClient, namespace: str, sim: Simulator
) -> None:
    await create(
        kube,
        f"/api/v1/namespaces/{namespace}/persistentvolumeclaims",
        persistent_volume_claim("data1", namespace),
    )
    await create(kube, vm_path(namespace), virtual_machine("vm1", namespace, "Always"))
    await running_vmi(kube, namespace, "vm1")
    body = {
        "name": "data1",
        "disk": {"disk": {"bus": "sata"}},
        "volumeSource": {"persistentVolumeClaim": {"claimName": "data1"}},
    }

    answer = await call(kube, "PUT", f"{SUB}/{namespace}/virtualmachines/vm1/addvolume", body)

    assert answer.status == 202  # declarative mode: not validated when the VM is patched
    failure = await until(lambda: _cond_of(kube, vm_path(namespace, "vm1"), "Failure"))
    assert failure["reason"] == "HotPlugVolumeError"
    assert "requires bus to be 'scsi' or 'virtio'. [sata] is not permitted." in failure["message"]


async def _cond_of(kube: ApiClient, path: str, ctype: str) -> JsonObj | None:
    return cond(await get(kube, path), ctype)


async def test_graceful_stop_is_quick_with_acpi_and_waits_the_grace_period_without(
    kube: ApiClient, namespace: str, sim: Simulator
) -> None:
    ignoring = {"sim.kubevirt.io/ignore-acpi": "true"}
    await create(kube, vm_path(namespace), virtual_machine("polite", namespace, grace_seconds=30))
    await create(
        kube,
        vm_path(namespace),
        virtual_machine("deaf", namespace, grace_seconds=2, annotations=ignoring),
    )
    await running_vmi(kube, namespace, "polite")
    await running_vmi(kube, namespace, "deaf")

    started = time.monotonic()
    for name in ("polite", "deaf"):
        assert (
            await call(kube, "PUT", f"{SUB}/{namespace}/virtualmachines/{name}/stop", {})
        ).status == 202
    await printable(kube, namespace, "deaf", "Stopping")
    await eventually(lambda: gone(kube, vmi_path(namespace, "polite")), timeout=5)
    polite = time.monotonic() - started
    assert await get(kube, vmi_path(namespace, "deaf")) is not None  # still shutting down
    await eventually(lambda: gone(kube, vmi_path(namespace, "deaf")), timeout=10)
    deaf = time.monotonic() - started
    assert polite < 1.5 <= 2.0 <= deaf

    # gracePeriod 0 in the stop body is a power-off, even for a guest ignoring ACPI.
    await merge_patch(kube, vm_path(namespace, "deaf"), {"spec": {"runStrategy": "Always"}})
    await running_vmi(kube, namespace, "deaf")
    started = time.monotonic()
    body = {"gracePeriod": 0}
    assert (
        await call(kube, "PUT", f"{SUB}/{namespace}/virtualmachines/deaf/stop", body)
    ).status == 202
    await eventually(lambda: gone(kube, vmi_path(namespace, "deaf")), timeout=5)
    assert time.monotonic() - started < 1.5


async def test_filesystemlist_reports_guest_mounts_and_fails_as_text_without_agent(
    kube: ApiClient, namespace: str, sim: Simulator
) -> None:
    volumes = [
        {"name": "root", "containerDisk": {"image": "fedora"}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
    ]
    disks: list[JsonObj] = [
        {"name": "root", "disk": {"bus": "virtio"}, "bootOrder": 1},
        {"name": "data", "disk": {"bus": "virtio"}, "serial": "DATA01"},
    ]
    await create(
        kube,
        f"/api/v1/namespaces/{namespace}/persistentvolumeclaims",
        persistent_volume_claim("data", namespace, "5Gi"),
    )
    await create(
        kube, vm_path(namespace), virtual_machine("vm1", namespace, volumes=volumes, disks=disks)
    )
    await running_vmi(kube, namespace, "vm1")
    await eventually(lambda: _has_cond(kube, vmi_path(namespace, "vm1"), "AgentConnected"))
    guest = sim.guest(namespace, "vm1")
    guest.mount("DATA01", "/data", used_bytes=1024)
    url = f"{SUB}/{namespace}/virtualmachineinstances/vm1/filesystemlist"

    answer = await call(kube, "GET", url)

    assert answer.status == 200, answer
    items = {i["mountPoint"]: i for i in answer.json["items"]}
    # A disk without a serial has none in the answer (KubeVirt's `serial` is omitempty).
    assert items["/"]["diskName"] == "vda1" and items["/"]["disk"] == [{"busType": "virtio"}]
    assert items["/data"] == {
        "diskName": "vdb",
        "mountPoint": "/data",
        "fileSystemType": "ext4",
        "usedBytes": 1024,
        "totalBytes": 5 * 2**30,
        "disk": [{"serial": "DATA01", "busType": "virtio"}],
    }
    guest.unmount("/data")
    # virt-launcher answers from its cache of the agent's report: the unmount shows at its
    # next refresh (KubeVirt: 5 minutes; here SimConfig.guest_report_interval).
    answer = await call(kube, "GET", url)
    assert "/data" in {i["mountPoint"] for i in answer.json["items"]}
    await asyncio.sleep(sim.config.guest_report_interval)
    answer = await call(kube, "GET", url)
    assert "/data" not in {i["mountPoint"] for i in answer.json["items"]}

    guest.set_agent(False)
    await eventually(lambda: _no_agent(kube, namespace))
    answer = await call(kube, "GET", url)
    assert answer.status == 500 and answer.content_type.startswith("text/plain")
    assert answer.text == (
        'Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io "vm1": '
        "VMI does not have guest agent connected"
    )
    osinfo = await call(kube, "GET", f"{SUB}/{namespace}/virtualmachineinstances/vm1/guestosinfo")
    assert osinfo.status == 500
    guest.set_agent(True)
    await eventually(lambda: _has_cond(kube, vmi_path(namespace, "vm1"), "AgentConnected"))
    osinfo = await call(kube, "GET", f"{SUB}/{namespace}/virtualmachineinstances/vm1/guestosinfo")
    assert osinfo.status == 200 and osinfo.json["os"]["id"] == "fedora"


async def _no_agent(kube: ApiClient, namespace: str) -> bool:
    vmi = await get(kube, vmi_path(namespace, "vm1"))
    return (
        cond(vmi, "AgentConnected") is None
        and cond(await get(kube, vm_path(namespace, "vm1")), "AgentConnected") is None
    )


async def test_injected_failures_and_latency_of_subresource_calls(
    kube: ApiClient, namespace: str, sim: Simulator
) -> None:
    await create(kube, vm_path(namespace), virtual_machine("vm1", namespace, "Halted"))
    base = f"{SUB}/{namespace}/virtualmachines/vm1"
    sim.faults.fail_next("start", 409)
    sim.faults.fail_next("start", 500, "etcd is sad")

    first = await call(kube, "PUT", f"{base}/start", {})
    second = await call(kube, "PUT", f"{base}/start", {})
    third = await call(kube, "PUT", f"{base}/start", {})

    assert first.status == 409 and first.json["reason"] == "Conflict"
    assert second.status == 500 and second.json["message"] == "Internal error occurred: etcd is sad"
    assert third.status == 202
    await running_vmi(kube, namespace, "vm1")
    sim.faults.slow(0.4, "stop")
    started = time.monotonic()
    assert (await call(kube, "PUT", f"{base}/stop", {})).status == 202
    assert time.monotonic() - started >= 0.4
    assert sim.calls[-1].subresource == "stop" and sim.calls[-1].duration >= 0.4


async def test_fail_annotation_and_unschedulable_vms(
    kube: ApiClient, namespace: str, sim: Simulator
) -> None:
    failing = virtual_machine(
        "crash", namespace, "Once", annotations={"sim.kubevirt.io/fail": "true"}
    )
    stuck = virtual_machine(
        "stuck", namespace, annotations={"sim.kubevirt.io/unschedulable": "true"}
    )
    await create(kube, vm_path(namespace), failing)
    await create(kube, vm_path(namespace), stuck)

    async def failed() -> bool:
        vmi = await get(kube, vmi_path(namespace, "crash"))
        return ((vmi or {}).get("status") or {}).get("phase") == "Failed"

    await eventually(failed)
    status = await printable(kube, namespace, "crash", "CrashLoopBackOff")
    assert status["startFailure"]["consecutiveFailCount"] == 1
    status = await printable(kube, namespace, "stuck", "ErrorUnschedulable")
    vmi = await get(kube, vmi_path(namespace, "stuck"))
    assert vmi is not None and vmi["status"]["phase"] == "Scheduling"
    assert cond(vmi, "PodScheduled")["reason"] == "Unschedulable"  # type: ignore[index]

    await merge_patch(
        kube,
        vm_path(namespace, "stuck"),
        {"metadata": {"annotations": {"sim.kubevirt.io/unschedulable": None}}},
    )
    await running_vmi(kube, namespace, "stuck")


async def test_cpu_cores_change_marks_restart_required_until_restarted(
    kube: ApiClient, namespace: str, sim: Simulator
) -> None:
    await create(kube, vm_path(namespace), virtual_machine("vm1", namespace, cores=1))
    await running_vmi(kube, namespace, "vm1")

    patch = {"spec": {"template": {"spec": {"domain": {"cpu": {"cores": 2}}}}}}
    assert (await merge_patch(kube, vm_path(namespace, "vm1"), patch)).status == 200

    required = await until(lambda: _cond_of(kube, vm_path(namespace, "vm1"), "RestartRequired"))
    assert required["status"] == "True"
    assert (
        await call(kube, "PUT", f"{SUB}/{namespace}/virtualmachines/vm1/restart", {})
    ).status == 202

    async def cleared() -> bool:
        vmi = await get(kube, vmi_path(namespace, "vm1"))
        cores = ((vmi or {}).get("spec") or {}).get("domain", {}).get("cpu", {}).get("cores")
        return (
            cores == 2
            and await _cond_of(kube, vm_path(namespace, "vm1"), "RestartRequired") is None
        )

    await eventually(cleared)


async def test_data_volume_templates_are_provisioned_before_the_vm_runs(
    kube: ApiClient, control_plane: ControlPlane, namespace: str
) -> None:
    config = SimConfig(import_step_delay=0.2)
    templates = [
        {
            "metadata": {"name": "vm1-root"},
            "spec": {
                "source": {"http": {"url": "https://example.test/fedora.qcow2"}},
                "storage": {"resources": {"requests": {"storage": "3Gi"}}},
            },
        }
    ]
    volumes = [{"name": "root", "dataVolume": {"name": "vm1-root"}}]
    async with Simulator(control_plane.kubeconfig, namespace=namespace, config=config):
        vm = await create(
            kube,
            vm_path(namespace),
            virtual_machine("vm1", namespace, volumes=volumes, data_volume_templates=templates),
        )

        await printable(kube, namespace, "vm1", "Provisioning")
        assert await get(kube, vmi_path(namespace, "vm1")) is None
        dv = await get(
            kube, f"/apis/cdi.kubevirt.io/v1beta1/namespaces/{namespace}/datavolumes/vm1-root"
        )
        assert (
            dv is not None and dv["metadata"]["ownerReferences"][0]["uid"] == vm["metadata"]["uid"]
        )
        vmi = await running_vmi(kube, namespace, "vm1")
        root = next(s for s in vmi["status"]["volumeStatus"] if s["name"] == "root")
        # 3Gi with CDI's filesystem overhead (CDIConfig's: 6 %), as CDI asks the claim.
    assert root["persistentVolumeClaimInfo"]["capacity"] == {"storage": "3414499001"}


async def test_rerun_on_failure_restarts_after_a_crash_but_not_after_a_guest_shutdown(
    kube: ApiClient, namespace: str, sim: Simulator
) -> None:
    await create(kube, vm_path(namespace), virtual_machine("vm1", namespace, "RerunOnFailure"))
    first = await running_vmi(kube, namespace, "vm1")

    sim.guest(namespace, "vm1").crash()

    async def replaced(old_uid: str) -> JsonObj | None:
        vmi = await get(kube, vmi_path(namespace, "vm1"))
        status = (vmi or {}).get("status") or {}
        fresh = vmi is not None and vmi["metadata"]["uid"] != old_uid
        return vmi if fresh and status.get("phase") == "Running" else None

    second = await until(lambda: replaced(first["metadata"]["uid"]))
    sim.guest(namespace, "vm1").shutdown()

    async def down() -> bool:
        vmi = await get(kube, vmi_path(namespace, "vm1"))
        return vmi is None or ((vmi.get("status") or {}).get("phase") == "Succeeded")

    await eventually(down)
    await printable(kube, namespace, "vm1", "Stopped")
    vmi = await get(kube, vmi_path(namespace, "vm1"))
    assert vmi is None or vmi["metadata"]["uid"] == second["metadata"]["uid"]


async def test_deleting_a_vm_stops_its_vmi_gracefully_before_the_vm_goes(
    kube: ApiClient, namespace: str, sim: Simulator
) -> None:
    ignoring = {"sim.kubevirt.io/ignore-acpi": "true"}
    await create(
        kube,
        vm_path(namespace),
        virtual_machine("vm1", namespace, grace_seconds=1, annotations=ignoring),
    )
    await running_vmi(kube, namespace, "vm1")

    answer = await call(kube, "DELETE", vm_path(namespace, "vm1"))

    assert answer.status == 200, answer
    await printable(kube, namespace, "vm1", "Terminating")
    vmi = await get(kube, vmi_path(namespace, "vm1"))
    assert vmi is not None and vmi["metadata"].get("deletionTimestamp")
    await eventually(lambda: gone(kube, vmi_path(namespace, "vm1")))
    await eventually(lambda: gone(kube, vm_path(namespace, "vm1")))


async def test_all_delays_zero_still_walks_every_step(
    kube: ApiClient, control_plane: ControlPlane, namespace: str
) -> None:
    zero = SimConfig(
        schedule_delay=0,
        boot_delay=0,
        guest_boot_delay=0,
        agent_delay=0,
        acpi_shutdown_delay=0,
        hotplug_step_delay=0,
        bind_delay=0,
        resize_step_delay=0,
        import_step_delay=0,
        import_retry_delay=0,
        crash_loop_base_delay=0,
    )
    templates = [
        {
            "metadata": {"name": "vm1-root"},
            "spec": {
                "source": {"http": {"url": "https://example.test/os.img"}},
                "storage": {"resources": {"requests": {"storage": "1Gi"}}},
            },
        }
    ]
    volumes = [{"name": "root", "dataVolume": {"name": "vm1-root"}}]
    async with Simulator(control_plane.kubeconfig, namespace=namespace, config=zero) as sim:
        await create(
            kube,
            vm_path(namespace),
            virtual_machine("vm1", namespace, volumes=volumes, data_volume_templates=templates),
        )
        await running_vmi(kube, namespace, "vm1")
        await eventually(lambda: _has_cond(kube, vm_path(namespace, "vm1"), "AgentConnected"))
        sim.guest(namespace, "vm1").agent_connected = False
        await eventually(lambda: _no_agent(kube, namespace))
        answer = await call(kube, "PUT", f"{SUB}/{namespace}/virtualmachines/vm1/stop", {})
        assert answer.status == 202
        await eventually(lambda: gone(kube, vmi_path(namespace, "vm1")))
