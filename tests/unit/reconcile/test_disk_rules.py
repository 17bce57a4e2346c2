"""One serial rule, one bus rule, one hot-plug form, at boot and hot-plugged alike."""

from __future__ import annotations

from dataclasses import replace

from tests.unit.reconcile.world import NS, bound_pvc, decide, ready_children, wukong
from wukong.api.names import MAX_SERIAL as SERIAL_MAX
from wukong.api.names import disk_serial
from wukong.reconcile.actions import AddVolume, CreateChild, RemoveVolume
from wukong.reconcile.vm import build_vm

LONG = "d" * 28 + "-logs-for-the-application-server-01"  # 63 characters
assert len(LONG) == 63


def test_a_short_name_is_its_own_serial() -> None:
    assert disk_serial("logs") == "logs"
    assert disk_serial("x" * SERIAL_MAX) == "x" * SERIAL_MAX


def test_long_names_get_distinct_serials_within_the_limit() -> None:
    twin = LONG[:-1] + "2"
    assert LONG[:36] == twin[:36]
    serials = {disk_serial(LONG), disk_serial(twin)}
    assert len(serials) == 2
    assert all(len(s) <= SERIAL_MAX for s in serials)
    assert disk_serial(LONG).startswith(LONG[:20])
    assert disk_serial(LONG) == disk_serial(LONG)  # stable across passes and processes


def _disks(*extra: dict[str, str]) -> list[dict[str, str]]:
    return [
        {"name": "system", "size": "20Gi", "image": "docker://quay.io/containerdisks/fedora:40"},
        *extra,
    ]


def test_a_63_character_disk_has_the_same_device_at_boot_and_when_hot_plugged() -> None:
    long_disk = {"name": LONG, "size": "10Gi", "bus": "scsi"}
    claim = f"web-1-{LONG}"
    cr = wukong(disks=_disks(long_disk), networks=[])
    world = ready_children(nads={}, claims={**ready_children().claims, claim: bound_pvc(claim)})
    boot = decide(cr, {"phase": "Creating"}, world)
    [vm] = [a for a in boot.actions if isinstance(a, CreateChild) and a.kind == "VirtualMachine"]
    at_boot = vm.body["spec"]["template"]["spec"]["domain"]["devices"]["disks"][1]
    assert at_boot == {"name": LONG, "disk": {"bus": "scsi"}, "serial": disk_serial(LONG)}

    # The same disk added to a running VM: addvolume carries the very same device.
    running_cr = wukong(disks=_disks(), networks=[])
    vm_obj = build_vm(running_cr, world, "Always")
    vm_obj["metadata"]["uid"] = "vm-uid"
    vmi = {
        "metadata": {"name": "web-1-vm", "namespace": NS, "uid": "vmi-1"},
        "spec": vm_obj["spec"]["template"]["spec"],
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }
    live = replace(world, vm=vm_obj, vmi=vmi)
    plan = decide(cr, {"phase": "Running"}, live)
    [add] = [a for a in plan.actions if isinstance(a, AddVolume)]
    assert add.device == at_boot

    # Detaching it finds the mount by that serial.
    plugged = replace(
        live,
        vm={
            **vm_obj,
            "spec": {
                **vm_obj["spec"],
                "template": {
                    **vm_obj["spec"]["template"],
                    "spec": {
                        **vm_obj["spec"]["template"]["spec"],
                        "volumes": [
                            *vm_obj["spec"]["template"]["spec"]["volumes"],
                            {
                                "name": LONG,
                                "persistentVolumeClaim": {"claimName": claim, "hotpluggable": True},
                            },
                        ],
                    },
                },
            },
        },
        guest_filesystems=(
            {"diskName": "sdb", "mountPoint": "/srv", "disk": [{"serial": disk_serial(LONG)}]},
        ),
    )
    removed = decide(running_cr, {"phase": "Running"}, plugged)
    assert not [a for a in removed.actions if isinstance(a, RemoveVolume)]
    detach = next(c for c in removed.status["conditions"] if c["type"] == "DiskDetach")
    assert detach["reason"] == "DiskInUse" and "/srv" in detach["message"]
