"""The pure simulator doing what KubeVirt v1.7.0 does where the operator's tests need it:
console/VNC checks, live placement updates, instance types, virt-launcher pods and Secrets."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient

from tests.integration.test_simulator import (
    SUB,
    call,
    cond,
    create,
    get,
    merge_patch,
    running_vmi,
    until,
    vm_path,
    vmi_path,
)
from wukong.testing.controlplane import ControlPlane
from wukong.testing.kubevirt import Simulator
from wukong.testing.kubevirt.manifests import virtual_machine

JsonObj = dict[str, Any]
IT = "/apis/instancetype.kubevirt.io/v1beta1/namespaces"


@pytest.fixture
def control_plane(pure_sim_plane: ControlPlane) -> ControlPlane:
    """The simulator's own imitation of KubeVirt: never beside the real virt-controller."""
    return pure_sim_plane


@pytest.fixture
async def sim(control_plane: ControlPlane, namespace: str) -> AsyncIterator[Simulator]:
    """A simulator watching this test's namespace."""
    async with Simulator(control_plane.kubeconfig, namespace=namespace) as simulator:
        yield simulator


def pods_path(ns: str) -> str:
    """REST path of the namespace's pods."""
    return f"/api/v1/namespaces/{ns}/pods"


async def launchers(kube: ApiClient, ns: str) -> list[JsonObj]:
    """The namespace's virt-launcher pods."""
    listing = await get(kube, pods_path(ns) + "?labelSelector=kubevirt.io%3Dvirt-launcher")
    assert listing is not None
    items: list[JsonObj] = listing["items"]
    return items


async def test_console_and_vnc_of_a_vmi_that_does_not_run_are_refused_like_virt_api(
    kube: ApiClient, namespace: str, sim: Simulator
) -> None:
    for sub in ("console", "vnc"):
        missing = await call(kube, "GET", f"{SUB}/{namespace}/virtualmachineinstances/none/{sub}")
        assert missing.status == 404, missing
        assert missing.json["message"] == 'virtualmachineinstance.kubevirt.io "none" not found'
    await create(kube, vm_path(namespace), virtual_machine("vm1", namespace, "Always"))
    await running_vmi(kube, namespace, "vm1")
    # A running VMI: no websocket upgrade asked for, so virt-api's upgrader says no.
    plain = await call(kube, "GET", f"{SUB}/{namespace}/virtualmachineinstances/vm1/vnc")
    assert plain.status == 400 and "websocket" in plain.json["message"], plain
    unschedulable = {"sim.kubevirt.io/unschedulable": "true"}
    vm2 = virtual_machine("vm2", namespace, "Always", annotations=unschedulable)
    await create(kube, vm_path(namespace), vm2)

    async def pending() -> JsonObj | None:
        return await get(kube, vmi_path(namespace, "vm2"))

    await until(pending)
    answer = await call(kube, "GET", f"{SUB}/{namespace}/virtualmachineinstances/vm2/console")
    assert answer.status == 400 and answer.json["message"] == "VMI is not running", answer


async def test_placement_is_patched_into_the_running_vmi_unless_a_restart_is_owed(
    kube: ApiClient, namespace: str, sim: Simulator
) -> None:
    await create(kube, vm_path(namespace), virtual_machine("vm1", namespace, "Always"))
    await running_vmi(kube, namespace, "vm1")
    tolerations = [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]
    placement = {"nodeSelector": {"kubernetes.io/arch": "amd64"}, "tolerations": tolerations}
    patch = {"spec": {"template": {"spec": placement}}}
    assert (await merge_patch(kube, vm_path(namespace, "vm1"), patch)).status == 200

    async def live() -> JsonObj | None:
        vmi = await get(kube, vmi_path(namespace, "vm1"))
        spec = (vmi or {}).get("spec") or {}
        return vmi if all(spec.get(k) == v for k, v in placement.items()) else None

    vmi = await until(live)
    assert vmi["status"]["phase"] == "Running"
    vm = await get(kube, vm_path(namespace, "vm1"))
    assert cond(vm, "RestartRequired") is None
    # Dropped from the template: removed from the VMI.
    drop = {"spec": {"template": {"spec": {"tolerations": None}}}}
    assert (await merge_patch(kube, vm_path(namespace, "vm1"), drop)).status == 200

    async def removed() -> JsonObj | None:
        vmi = await get(kube, vmi_path(namespace, "vm1"))
        return vmi if "tolerations" not in ((vmi or {}).get("spec") or {}) else None

    await until(removed)
    # A non-live field changed: RestartRequired, and nothing is live-updated any more.
    cores = {"spec": {"template": {"spec": {"domain": {"cpu": {"cores": 2}}}}}}
    assert (await merge_patch(kube, vm_path(namespace, "vm1"), cores)).status == 200

    async def required() -> JsonObj | None:
        vm = await get(kube, vm_path(namespace, "vm1"))
        got = cond(vm, "RestartRequired")
        return got if got is not None and got["status"] == "True" else None

    assert (await until(required))["message"] == (
        "a non-live-updatable field was changed in the template spec"
    )
    selector = {"spec": {"template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}}}}}
    assert (await merge_patch(kube, vm_path(namespace, "vm1"), selector)).status == 200

    async def synced() -> JsonObj | None:
        vm = await get(kube, vm_path(namespace, "vm1"))
        seen = ((vm or {}).get("status") or {}).get("desiredGeneration")
        return vm if vm is not None and seen == vm["metadata"]["generation"] else None

    await until(synced)  # the VM controller has been through the new template
    later = await get(kube, vmi_path(namespace, "vm1"))
    assert later is not None and later["spec"]["nodeSelector"] == {"kubernetes.io/arch": "amd64"}
    # Changed back: KubeVirt still owes the restart (it clears RestartRequired only when it
    # stops or starts the VMI).
    back = {"spec": {"template": {"spec": {"domain": {"cpu": {"cores": 1}}}}}}
    assert (await merge_patch(kube, vm_path(namespace, "vm1"), back)).status == 200
    await until(synced)
    assert cond(await get(kube, vm_path(namespace, "vm1")), "RestartRequired") is not None


async def test_instancetype_and_preference_are_stored_as_revisions_and_size_the_vmi(
    kube: ApiClient, namespace: str, sim: Simulator
) -> None:
    await create(
        kube,
        f"{IT}/{namespace}/virtualmachineinstancetypes",
        {
            "apiVersion": "instancetype.kubevirt.io/v1beta1",
            "kind": "VirtualMachineInstancetype",
            "metadata": {"name": "small"},
            "spec": {"cpu": {"guest": 2}, "memory": {"guest": "1Gi"}},
        },
    )
    await create(
        kube,
        f"{IT}/{namespace}/virtualmachinepreferences",
        {
            "apiVersion": "instancetype.kubevirt.io/v1beta1",
            "kind": "VirtualMachinePreference",
            "metadata": {"name": "linux"},
            "spec": {"devices": {"preferredDiskBus": "virtio"}},
        },
    )
    body = virtual_machine("vm1", namespace, "Always")
    domain = body["spec"]["template"]["spec"]["domain"]
    del domain["cpu"], domain["memory"]
    domain["devices"]["disks"] = [{"name": "root"}]  # the preference picks the bus
    body["spec"]["instancetype"] = {"kind": "VirtualMachineInstancetype", "name": "small"}
    body["spec"]["preference"] = {"kind": "VirtualMachinePreference", "name": "linux"}
    await create(kube, vm_path(namespace), body)
    vmi = await running_vmi(kube, namespace, "vm1")
    cpu = vmi["spec"]["domain"]["cpu"]
    assert (cpu["sockets"], cpu["cores"], cpu["threads"]) == (2, 1, 1)  # preferSockets
    assert vmi["spec"]["domain"]["memory"]["guest"] == "1Gi"
    assert vmi["spec"]["domain"]["devices"]["disks"] == [
        {"name": "root", "disk": {"bus": "virtio"}}
    ]
    notes = vmi["metadata"]["annotations"]
    assert notes["kubevirt.io/instancetype-name"] == "small"
    assert notes["kubevirt.io/preference-name"] == "linux"
    vm = await get(kube, vm_path(namespace, "vm1"))
    assert vm is not None
    ref = vm["status"]["instancetypeRef"]
    assert (ref["name"], ref["kind"]) == ("small", "VirtualMachineInstancetype")
    revision = await get(
        kube,
        f"/apis/apps/v1/namespaces/{namespace}/controllerrevisions/"
        + ref["controllerRevisionRef"]["name"],
    )
    assert revision is not None
    assert revision["data"]["spec"] == {"cpu": {"guest": 2}, "memory": {"guest": "1Gi"}}
    assert revision["metadata"]["labels"]["instancetype.kubevirt.io/object-name"] == "small"
    assert revision["metadata"]["ownerReferences"][0]["uid"] == vm["metadata"]["uid"]
    assert vm["status"]["preferenceRef"]["controllerRevisionRef"]["name"].startswith(
        "vm1-linux-v1beta1-"
    )
    # An instancetype that does not exist: virt-controller's sync error, no VMI.
    other = virtual_machine("vm2", namespace, "Always")
    del other["spec"]["template"]["spec"]["domain"]["cpu"]
    del other["spec"]["template"]["spec"]["domain"]["memory"]
    other["spec"]["instancetype"] = {"kind": "VirtualMachineInstancetype", "name": "huge"}
    await create(kube, vm_path(namespace), other)

    async def failed() -> JsonObj | None:
        return cond(await get(kube, vm_path(namespace, "vm2")), "Failure")

    failure = await until(failed)
    assert failure["reason"] == "FailedFindInstancetype"
    assert failure["message"] == (
        'virtualmachineinstancetypes.instancetype.kubevirt.io "huge" not found'
    )
    assert await get(kube, vmi_path(namespace, "vm2")) is None


async def test_a_vmi_runs_in_a_launcher_pod_that_waits_for_its_secrets(
    kube: ApiClient, namespace: str, sim: Simulator
) -> None:
    body = virtual_machine("vm1", namespace, "Always")
    body["spec"]["template"]["spec"]["accessCredentials"] = [
        {
            "sshPublicKey": {
                "source": {"secret": {"secretName": "keys"}},
                "propagationMethod": {"noCloud": {}},
            }
        }
    ]
    await create(kube, vm_path(namespace), body)

    async def waiting() -> JsonObj | None:
        pods = await launchers(kube, namespace)
        vmi = await get(kube, vmi_path(namespace, "vm1"))
        status = (vmi or {}).get("status") or {}
        if pods and status.get("phase") == "Scheduling" and status.get("activePods"):
            return {"pod": pods[0], "vmi": vmi}
        return None

    got = await until(waiting)
    pod, vmi = got["pod"], got["vmi"]
    assert list(vmi["status"]["activePods"]) == [pod["metadata"]["uid"]]
    assert pod["metadata"]["ownerReferences"][0]["uid"] == vmi["metadata"]["uid"]
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod["spec"]["volumes"]}
    assert secrets == {"keys-access-cred": "keys"}  # rendervolumes.go's name for it

    async def failed_mount() -> JsonObj | None:
        events = await get(kube, f"/api/v1/namespaces/{namespace}/events")
        return next(
            (
                e
                for e in (events or {}).get("items", [])
                if e["reason"] == "FailedMount"
                and e["involvedObject"]["uid"] == pod["metadata"]["uid"]
            ),
            None,
        )

    event = await until(failed_mount)
    assert event["type"] == "Warning" and event["message"] == (
        'MountVolume.SetUp failed for volume "keys-access-cred" : secret "keys" not found'
    )
    key = base64.b64encode(b"ssh-ed25519 AAAA me@laptop").decode()
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys"}}
    await create(kube, f"/api/v1/namespaces/{namespace}/secrets", secret | {"data": {"k": key}})
    vmi = await running_vmi(kube, namespace, "vm1")
    pods = await launchers(kube, namespace)
    assert [p["status"]["phase"] for p in pods] == ["Running"]
    assert vmi["status"]["nodeName"] == pods[0]["spec"]["nodeName"]
    # The guest stops: its launcher ends with it.
    await merge_patch(kube, vm_path(namespace, "vm1"), {"spec": {"runStrategy": "Halted"}})

    async def ended() -> JsonObj | None:
        pods = await launchers(kube, namespace)
        live = [p for p in pods if p["status"].get("phase") in ("Pending", "Running")]
        return {"ended": [p["status"]["phase"] for p in pods]} if not live else None

    await until(ended, timeout=20)
