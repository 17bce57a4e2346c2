"""A claim the Wukong's own VM owns: a VirtualMachineRestore made by hand (or by another tool)
with `volumeRestorePolicy: InPlace` and no `volumeOwnershipPolicy` gives the blank disk's
claim it makes to the VM (KubeVirt restore.go `createRestorePVC`, `Own`: the VM as
controller, blockOwnerDeletion). Left so, the garbage collector deleted it with the VM,
whatever deleteOptions or a detach's preserveData said (deletion audit, session 48,
finding 1). The Wukong's disk all the same: taken back, released, kept as asked."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from tests.unit.reconcile.test_deletion import deleting, world_with_vm
from tests.unit.reconcile.test_disks_at_runtime import running
from tests.unit.reconcile.world import UID, bound_pvc, decide, plan_deletion, wukong
from wukong.api import names
from wukong.reconcile.actions import DeleteChild, PatchChild, VmCall
from wukong.reconcile.observed import Observed

KEEP_DATA = {"preserveDisksList": ["data"]}
VM_UID = "vm-uid"
VM_REF = {
    "apiVersion": "kubevirt.io/v1",
    "kind": "VirtualMachine",
    "name": "web-1-vm",
    "uid": VM_UID,
    "controller": True,
    "blockOwnerDeletion": True,
}


def of_the_vm(pvc: dict[str, Any], *, held: bool) -> dict[str, Any]:
    """`pvc` as KubeVirt's restore makes it again: the snapshot-time claim's labels (held-by
    when deleteOptions kept it then), its own `source-vm-name`, the VM as its owner."""
    out = copy.deepcopy(pvc)
    labels = {names.LABEL_WUKONG: "web-1", names.LABEL_RESTORED_FROM_VM: "web-1-vm"}
    if held:
        labels[names.LABEL_HELD_BY] = UID
    out["metadata"]["labels"] = labels
    out["metadata"]["ownerReferences"] = [dict(VM_REF)]
    out["metadata"]["resourceVersion"] = "7"
    return out


def with_data(world: Observed, pvc: dict[str, Any]) -> Observed:
    return replace(world, claims={**world.claims, "web-1-data": pvc})


def patches(actions: list[Any]) -> dict[str, dict[str, Any]]:
    return {a.name: a.patch for a in actions if isinstance(a, PatchChild)}


def test_retain_releases_a_kept_claim_from_the_wukongs_vm_too() -> None:
    """The audit's probe: Retain's patch kept the VM's controller reference, the next pass
    went on to StopVM and DeleteVM, and the collector took the "kept" claim."""
    world = with_data(world_with_vm(), of_the_vm(bound_pvc("web-1-data"), held=True))
    plan = plan_deletion(deleting(deleteOptions=KEEP_DATA), {}, world)
    assert plan.deletion["step"] == "Retain"
    patch = patches(plan.actions)["web-1-data"]["metadata"]
    assert patch["ownerReferences"] == []
    assert patch["resourceVersion"] == "7"  # pinned, as every release
    assert patch["labels"][names.LABEL_RETAINED_FROM] == "web-1"


def test_retain_takes_a_kept_claim_of_the_vm_not_labelled_held_too() -> None:
    """A claim the restore made from a snapshot taken before the keep was written carries no
    held-by label: it is the VM's alone, and still the Wukong's disk."""
    world = with_data(world_with_vm(), of_the_vm(bound_pvc("web-1-data"), held=False))
    plan = plan_deletion(deleting(deleteOptions=KEEP_DATA), {}, world)
    assert patches(plan.actions)["web-1-data"]["metadata"]["ownerReferences"] == []
    released = copy.deepcopy(world.claims["web-1-data"])
    released["metadata"]["ownerReferences"] = []
    released["metadata"]["labels"] = {names.LABEL_RETAINED_FROM: "web-1", names.LABEL_DISK: "data"}
    after = plan_deletion(
        deleting(deleteOptions=KEEP_DATA),
        {"deletion": plan.deletion},
        with_data(world_with_vm(), released),
    )
    assert after.deletion["step"] == "StopVM"
    assert any(isinstance(a, VmCall) for a in after.actions)


def test_retain_leaves_a_claim_of_a_vm_the_wukong_does_not_own() -> None:
    """Only the Wukong's own VM, by uid: a VM of its name it does not own (another's, or one
    orphaned on purpose) keeps what it owns."""
    world = with_data(world_with_vm(), of_the_vm(bound_pvc("web-1-data"), held=False))
    assert world.vm is not None
    vm = copy.deepcopy(world.vm)
    vm["metadata"]["ownerReferences"] = []
    plan = plan_deletion(deleting(deleteOptions=KEEP_DATA), {}, replace(world, vm=vm))
    assert "web-1-data" not in patches(plan.actions)


def test_the_live_pass_takes_a_kept_claim_back_from_the_vm() -> None:
    """Held by label and owned by the VM: `hold_patch` saw it labelled and changed nothing,
    so the VM's reference stayed for good."""
    world = with_data(world_with_vm(), of_the_vm(bound_pvc("web-1-data"), held=True))
    plan = decide(wukong(deleteOptions=KEEP_DATA), {"phase": "Running"}, world)
    patch = patches(plan.actions)["web-1-data"]["metadata"]
    assert patch["ownerReferences"] == []
    assert patch["labels"][names.LABEL_HELD_BY] == UID
    assert patch["resourceVersion"] == "7"
    [data] = [v for v in plan.status["volumes"] if v["name"] == "data"]
    assert data["phase"] == "Bound"  # not Conflict


def test_the_live_pass_owns_a_claim_of_the_vm_not_kept_instead_of_a_conflict() -> None:
    """Not kept: a ClaimConflict the CLI said it would "leave", which the collector deleted
    with the VM. It is the Wukong's disk: owned by the Wukong in place of the VM."""
    world = with_data(world_with_vm(), of_the_vm(bound_pvc("web-1-data"), held=False))
    plan = decide(wukong(), {"phase": "Running"}, world)
    patch = patches(plan.actions)["web-1-data"]["metadata"]
    assert [r["uid"] for r in patch["ownerReferences"]] == [UID]
    [data] = [v for v in plan.status["volumes"] if v["name"] == "data"]
    assert data["phase"] == "Bound"


def test_a_claim_of_a_vm_the_wukong_does_not_own_stays_a_conflict() -> None:
    world = with_data(world_with_vm(), of_the_vm(bound_pvc("web-1-data"), held=False))
    assert world.vm is not None
    vm = copy.deepcopy(world.vm)
    vm["metadata"]["ownerReferences"] = []
    plan = decide(wukong(), {"phase": "Running"}, replace(world, vm=vm))
    assert "web-1-data" not in patches(plan.actions)
    [data] = [v for v in plan.status["volumes"] if v["name"] == "data"]
    assert data["phase"] == "Conflict"


def test_a_detach_that_keeps_the_data_releases_the_claim_from_the_vm() -> None:
    world = running(**{"web-1-logs": of_the_vm(bound_pvc("web-1-logs", "10Gi"), held=False)})
    assert world.vm is not None
    world.vm["metadata"]["uid"] = VM_UID
    old = {
        "volumes": [{"name": "logs", "pvcName": "web-1-logs", "preserveData": True}],
        "phase": "Running",
    }
    plan = decide(wukong(), old, world)
    patch = patches(plan.actions)["web-1-logs"]["metadata"]
    assert patch["ownerReferences"] == []
    assert patch["labels"][names.LABEL_RETAINED_FROM] == "web-1"
    assert not [a for a in plan.actions if isinstance(a, DeleteChild)]
