"""A VirtualMachineRestore of the Wukong's VM made outside Wukong (`kubectl create`, a backup
tool) holds the disks and the VM as the Wukong's own restores do (session 48, found by the
deletion helper): KubeVirt's InPlace restore deletes each claim and makes it again from the
snapshot, and the disk planner made an empty one in between, which KubeVirt then took as
restored (it skips a claim that exists)."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from tests.unit.reconcile.test_lifecycle import running_world
from tests.unit.reconcile.world import NOW, NS, decide, wukong
from wukong.api import kinds
from wukong.reconcile.actions import CreateChild

HAND_MADE: dict[str, Any] = {
    "metadata": {"name": "by-hand", "namespace": NS, "uid": "by-hand-uid"},
    "spec": {
        "target": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "web-1-vm"},
        "virtualMachineSnapshotName": "nightly",
    },
    "status": {"complete": False},
}


def test_a_claim_kubevirt_deleted_for_a_restore_made_by_hand_is_not_made_again() -> None:
    """Before the fix the pass made web-1-data again (empty), and said nothing of the
    restore."""
    world = running_world()
    claims = {n: c for n, c in world.claims.items() if n != "web-1-data"}
    during = replace(world, vmi=None, claims=claims, outside_restores=(HAND_MADE,))
    plan = decide(wukong(), {"phase": "Running"}, during)
    assert [a for a in plan.actions if isinstance(a, CreateChild)] == []
    restoring = {c["type"]: c for c in plan.status["conditions"]}["Restoring"]
    assert (restoring["status"], restoring["reason"]) == ("True", "OutsideWukong")
    assert "VirtualMachineRestore by-hand, made outside Wukong" in restoring["message"]
    # Once it ended (not in `outside_restores` any more), the disk planner takes over again.
    after = replace(during, outside_restores=())
    plan = decide(wukong(), plan.status, after)
    assert [a for a in plan.actions if isinstance(a, CreateChild)]
    assert "Restoring" not in {c["type"] for c in plan.status["conditions"]}


def stuck(created: str) -> dict[str, Any]:
    """HAND_MADE, made at `created`, with KubeVirt retrying an error (its Progressing)."""
    restore = copy.deepcopy(HAND_MADE)
    restore["metadata"]["creationTimestamp"] = created
    restore["status"]["conditions"] = [
        {"type": "Progressing", "status": "False", "reason": "Error",
         "message": "StorageClass gone does not exist"},
        {"type": "Ready", "status": "False", "reason": "Error"},
    ]  # fmt: skip
    return restore


def test_a_restore_made_by_hand_that_outlives_the_stall_bound_says_stalled_in_its_words() -> None:
    """It holds the disks and the VM as the Wukong's own does, and one KubeVirt retries for
    ever said `Stalled=False "nothing is stuck"` (session 48's leftover)."""
    world = running_world()
    young = replace(world, vmi=None, outside_restores=(stuck("2026-11-23T11:58:00Z"),))
    plan = decide(wukong(), {"phase": "Stopped"}, young, stall_after=300)
    conds = {c["type"]: c for c in plan.status["conditions"]}
    assert (conds["Stalled"]["status"], conds["Stalled"]["reason"]) == ("False", "Progressing")
    assert plan.requeue_after is not None and plan.requeue_after <= 180.05  # due at 12:03

    old = replace(young, outside_restores=(stuck("2026-11-23T11:50:00Z"),))
    plan = decide(wukong(), {"phase": "Stopped"}, old, stall_after=300)
    stalled = {c["type"]: c for c in plan.status["conditions"]}["Stalled"]
    assert (stalled["status"], stalled["reason"]) == ("True", "RestoreTooLong")
    assert stalled["message"] == (
        "VirtualMachineRestore by-hand, made outside Wukong, since 2026-11-23T11:50:00Z (more "
        "than 300s): KubeVirt: StorageClass gone does not exist"
    )
    warned = [a for a in plan.actions if getattr(a, "reason", None) == "RestoreTooLong"]
    assert [w.type for w in warned] == ["Warning"]


class Store:
    """Watch caches holding the VM `vm` and the namespace's `restores`."""

    def __init__(self, vm: Any, restores: list[Any]) -> None:
        self.vm, self.restores = vm, restores

    def get(self, kind: str, namespace: str, name: str) -> Any:
        if kind == kinds.VM.cache and name == "web-1-vm":
            return self.vm
        if kind == kinds.RESTORE.cache:
            return next((r for r in self.restores if r["metadata"]["name"] == name), None)
        return None

    def by_label(self, kind: str, label: str, value: str) -> list[Any]:
        labelled = [r for r in self.restores if r["metadata"].get("labels")]
        return labelled if kind == kinds.RESTORE.cache else []

    def list(self, kind: str, namespace: str | None = None, selector: Any = None) -> list[Any]:
        return self.restores if kind == kinds.RESTORE.cache else []


OURS = {"metadata": {"name": "web-1-restore-1", "namespace": NS,
                     "labels": {"vm.novasphere.dev/wukong": "web-1"}}}  # fmt: skip


@pytest.mark.parametrize(
    ("locked", "owned", "holds"),
    [
        pytest.param("by-hand", True, True, id="kubevirt-locked-the-vm-for-it"),
        pytest.param(None, True, False, id="not-taken-up-by-kubevirt"),
        pytest.param("web-1-restore-1", True, False, id="the-wukongs-own"),
        pytest.param("by-hand", False, False, id="not-the-wukongs-vm"),
    ],
)
def test_observe_holds_for_a_restore_made_outside_it_only_while_kubevirt_locks_the_vm(
    locked: str | None, owned: bool, holds: bool
) -> None:
    """Session review (s48): held from its creation, a restore KubeVirt never took up (a
    snapshot not ready, a running VM it waits for) held the Wukong for good."""
    from wukong.act.reconciler import observe

    world = running_world()
    vm = copy.deepcopy(world.vm)
    assert vm is not None
    if not owned:
        vm["metadata"]["ownerReferences"] = []
    if locked:
        vm.setdefault("status", {})["restoreInProgress"] = locked
    seen = observe(Store(vm, [HAND_MADE, OURS]), wukong(), NOW)
    assert [r["metadata"]["name"] for r in seen.outside_restores] == (["by-hand"] if holds else [])


def test_a_claim_an_in_place_restore_made_by_hand_deleted_is_said_restored_not_created() -> None:
    """KubeVirt's InPlace restore deletes the claim and makes it again (marked with the
    restore's name and uid); the pass makes nothing meanwhile, and said "being created"."""
    in_place = copy.deepcopy(HAND_MADE)
    in_place["spec"]["volumeRestorePolicy"] = "InPlace"
    world = running_world()
    claims = {n: c for n, c in world.claims.items() if n != "web-1-data"}
    during = replace(world, vmi=None, claims=claims, outside_restores=(in_place,))
    plan = decide(wukong(), {"phase": "Running"}, during)
    bound = {c["type"]: c for c in plan.status["conditions"]}["VolumesBound"]
    said = (
        "KubeVirt is restoring its claim from snapshot nightly: restore by-hand, made outside "
        "Wukong"
    )
    assert (bound["status"], bound["reason"]) == ("False", "Restoring")
    assert said in bound["message"]
    [data] = [v for v in plan.status["volumes"] if v["name"] == "data"]
    assert data["phase"] == "Restoring"
    # Made again by KubeVirt, not bound yet: still its; bound, the disk's as before.
    remade = copy.deepcopy(world.claims["web-1-data"])
    remade["metadata"].setdefault("annotations", {})["restore.kubevirt.io/lastRestoreUID"] = (
        "by-hand-by-hand-uid"
    )
    remade["status"] = {"phase": "Pending"}
    again = replace(during, claims={**claims, "web-1-data": remade})
    plan = decide(wukong(), {"phase": "Running"}, again)
    assert said in {c["type"]: c for c in plan.status["conditions"]}["VolumesBound"]["message"]
    # The default policy (RandomizeNames) makes new claims and leaves the disk's be.
    randomized = replace(world, vmi=None, outside_restores=(HAND_MADE,))
    plan = decide(wukong(), {"phase": "Running"}, randomized)
    assert "restoring its claim" not in str(plan.status["conditions"])
