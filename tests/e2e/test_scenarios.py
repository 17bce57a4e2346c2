"""What a user does with Wukong on a real cluster (kind + KubeVirt + CDI + Multus): create,
stop and start, hot-plug a disk, delete keeping a disk. Run by tests/e2e/run.sh."""

from __future__ import annotations

import pytest
from kubernetes_asyncio.client import ApiClient

from tests.e2e.scenarios import BOOT_TIMEOUT, JsonObj, User, volume, wukong
from wukong.api import names

# Emulated VMs boot in minutes, not seconds.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3 * BOOT_TIMEOUT)]


@pytest.fixture
def user(kube: ApiClient, namespace: str) -> User:
    return User(kube, namespace)


async def test_a_new_wukong_runs_a_virtual_machine(user: User) -> None:
    await user.create(wukong("web-1"))
    cr = await user.wait_phase("web-1", "Running")
    status = cr["status"]
    assert status["vmName"] == "web-1-vm"
    assert status.get("nodeName"), status
    vm = await user.vm("web-1")
    assert vm is not None
    (owner,) = vm["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "Wukong",
        "web-1",
        cr["metadata"]["uid"],
    )
    assert vm["metadata"]["labels"][names.LABEL_WUKONG] == "web-1"
    vmi = await user.vmi("web-1")
    assert vmi is not None and vmi["status"]["phase"] == "Running"


async def test_a_stopped_wukong_stays_stopped_until_started(user: User) -> None:
    await user.create(wukong("web-2"))
    await user.wait_phase("web-2", "Running")

    await user.request("web-2", "stop", gracePeriodSeconds=10)
    await user.wait_phase("web-2", "Stopped")

    async def no_instance() -> bool:
        return await user.vmi("web-2") is None

    await user.until(no_instance, "VMI gone")
    vm = await user.vm("web-2")
    assert vm is not None and vm["spec"].get("runStrategy") in ("Halted", "Manual")

    await user.request("web-2", "start")
    cr = await user.wait_phase("web-2", "Running")
    assert cr["status"]["lifecycleState"]["lastAction"] == "start"


async def test_a_disk_added_to_a_running_wukong_is_hot_plugged(user: User) -> None:
    await user.create(wukong("db-1"))
    cr = await user.wait_phase("db-1", "Running")
    disks = [*cr["spec"]["disks"], {"name": "data", "size": "1Gi"}]
    await user.patch_spec("db-1", {"disks": disks})

    async def plugged() -> bool:
        vmi = await user.vmi("db-1")
        statuses = (vmi or {}).get("status", {}).get("volumeStatus") or []
        return any(
            v["name"] == "data" and v.get("hotplugVolume") is not None and v.get("phase") == "Ready"
            for v in statuses
        )

    await user.until(plugged, "data hot-plugged")

    async def reported() -> JsonObj | None:  # the operator reports what KubeVirt did next
        cr = await user.get("db-1")
        data = volume(cr or {}, "data")
        return cr if data.get("attached") and data.get("hotplugged") else None

    cr = await user.until(reported, "status says data is attached and hot-plugged")
    assert cr["status"]["phase"] == "Running"
    # Still the same instance: hot-plug never restarts the VM.
    assert (await user.vmi("db-1")) is not None


async def test_deleting_a_wukong_keeps_the_disk_the_user_listed(user: User) -> None:
    disks = [{"name": "system", "size": "1Gi"}, {"name": "data", "size": "1Gi"}]
    await user.create(wukong("db-2", disks=disks, deleteOptions={"preserveDisksList": ["data"]}))
    cr = await user.wait_phase("db-2", "Running")
    uid = cr["metadata"]["uid"]

    await user.delete("db-2")
    await user.wait_gone("db-2")

    async def vm_gone() -> bool:
        return await user.vm("db-2") is None

    await user.until(vm_gone, "VM deleted")

    async def system_gone() -> bool:
        return await user.claim("db-2", "system") is None

    await user.until(system_gone, "system PVC deleted")
    kept = await user.claim("db-2", "data")
    assert kept is not None, "the listed disk must survive the Wukong"
    owners = kept.metadata.owner_references or []
    assert all(o.uid != uid for o in owners), "garbage collection would take a disk still owned"
    assert kept.metadata.labels[names.LABEL_RETAINED_FROM] == "db-2"
