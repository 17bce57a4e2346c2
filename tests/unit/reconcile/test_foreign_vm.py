"""A VirtualMachine of the Wukong's VM name that it does not own is never acted on, nor
reported as the Wukong's (source audit, session 47, finding 1): only the VM planner looked at
the owner, and every other planner had already planned on that VM and its running guest."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.unit.reconcile.world import (
    NOW,
    NS,
    UID,
    decide,
    plan_deletion,
    ready_children,
    wukong,
)
from wukong.api import kinds, names
from wukong.reconcile.actions import (
    AddVolume,
    CreateChild,
    DeleteChild,
    Emit,
    PatchChild,
    RemoveVolume,
    VmCall,
)
from wukong.reconcile.observed import Observed
from wukong.reconcile.vm import build_vm

ORPHANED: list[dict[str, Any]] = []  # `kubectl delete wk --cascade=orphan` took the reference
OURS = [{"apiVersion": "v1", "kind": "Wukong", "name": "web-1", "uid": UID}]
ANOTHERS = [{"apiVersion": "v1", "kind": "Wukong", "name": "web-1", "uid": "an-earlier-web-1"}]


def foreign_world(owners: list[dict[str, Any]]) -> Observed:
    """web-1's disks and networks ready, and a VM `web-1-vm` it does not own, running on
    node-7 with the system disk only (web-1 asks for a data disk too: a hot-plug)."""
    theirs = wukong(disks=[{"name": "system", "size": "20Gi"}])
    vm = build_vm(theirs, ready_children(), "Always")
    vm["metadata"].update(uid="their-vm", ownerReferences=copy.deepcopy(owners))
    vmi = {
        "metadata": {
            "name": "web-1-vm",
            "namespace": NS,
            "uid": "their-vmi",
            "ownerReferences": [
                {
                    "kind": "VirtualMachine",
                    "name": "web-1-vm",
                    "uid": "their-vm",
                    "controller": True,
                }
            ],
        },
        "spec": vm["spec"]["template"]["spec"],
        "status": {
            "phase": "Running",
            "nodeName": "node-7",
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "LiveMigratable", "status": "True"},
            ],
            "interfaces": [{"name": "default", "ipAddress": "10.0.0.9"}],
            "volumeStatus": [{"name": "system", "target": "vda"}],
        },
    }
    return ready_children(vm=vm, vmi=vmi)


def touching(actions: list[Any]) -> list[Any]:
    """The actions that would act on a VM (or its guest, or make something of it)."""
    made = ("VirtualMachine", "VirtualMachineInstanceMigration", "VirtualMachineSnapshot",
            "VirtualMachineRestore")  # fmt: skip
    return [
        a
        for a in actions
        if isinstance(a, PatchChild | VmCall | AddVolume | RemoveVolume)
        or (isinstance(a, DeleteChild) and a.kind.startswith("VirtualMachine"))
        or (isinstance(a, CreateChild) and a.kind in made)
    ]


@pytest.mark.parametrize(
    "owners", [pytest.param(ORPHANED, id="orphaned"), pytest.param(ANOTHERS, id="anothers")]
)
@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({"lifecycleAction": {"action": "migrate", "requestedAt": "a"}}, id="migrate"),
        pytest.param({"lifecycleAction": {"action": "stop"}}, id="stop"),
        pytest.param({"lifecycleAction": {"action": "restart"}}, id="restart"),
        pytest.param({"runStrategy": "Halted"}, id="halted"),
        pytest.param({"startStrategy": {"autoStart": False}}, id="no-auto-start"),
        pytest.param({"cpu": 4}, id="template-edit"),
        pytest.param(
            {"lifecycleAction": {"action": "snapshot", "requestedAt": "b"}}, id="snapshot"
        ),
        pytest.param(
            {"lifecycleAction": {"action": "restore", "snapshotName": "s1", "requestedAt": "c"}},
            id="restore",
        ),
    ],
)
def test_a_vm_of_its_name_it_does_not_own_is_never_touched_nor_reported(
    spec: dict[str, Any], owners: list[dict[str, Any]]
) -> None:
    """Before the fix: a VirtualMachineInstanceMigration of that VMI and addvolume calls
    into it (migrate); a stop call then a Halted patch (stop); a Halted patch every pass
    with a Warning RunStrategyReverted (Halted, autoStart false); and a status saying
    Running on node-7, its address, Ready=True."""
    cr, world = wukong(**spec), foreign_world(owners)
    status: dict[str, Any] = {}
    warnings: list[str] = []
    for _ in range(4):  # accepted, called, followed: each pass after the status it wrote
        plan = decide(cr, status, world)
        assert touching(plan.actions) == []
        status = plan.status
        warnings += [a.reason for a in plan.actions if isinstance(a, Emit) and a.type == "Warning"]
    assert "nodeName" not in status and not status.get("interfaces")
    assert "vmName" not in status
    assert status["phase"] == "Creating"  # where a VM not yet made leaves it
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] != "True"
    said = conditions["SpecValid"]
    assert (said["status"], said["reason"]) == ("False", "NameConflict")
    assert "VirtualMachine 'web-1-vm' exists and this Wukong does not own it" in said["message"]
    assert "nothing is done to that VM" in said["message"]
    assert warnings.count("NameConflict") == 1  # said once, not every pass
    assert "RunStrategyReverted" not in warnings


def test_the_vm_planner_still_makes_no_vm_of_a_name_taken() -> None:
    """The other planners see no VM: the VM planner must not take that for "not made yet"."""
    plan = decide(wukong(), {}, foreign_world(ORPHANED))
    assert not [a for a in plan.actions if isinstance(a, CreateChild)]


def test_once_that_vm_is_gone_the_wukong_makes_its_own() -> None:
    status = decide(wukong(), {}, foreign_world(ORPHANED)).status
    plan = decide(wukong(), status, ready_children())
    assert [a.kind for a in plan.actions if isinstance(a, CreateChild)] == ["VirtualMachine"]
    assert "NameConflict" not in str(plan.status["conditions"])


@pytest.mark.parametrize("owners", [ORPHANED, ANOTHERS], ids=["orphaned", "anothers"])
def test_a_deleting_wukong_does_not_report_that_vms_node_or_addresses(
    owners: list[dict[str, Any]],
) -> None:
    """The teardown already left that VM alone (s23 F5); its status still said the VM's
    node and address, and its health."""
    cr = wukong()
    meta = cr.metadata.model_copy(update={"deletion_timestamp": "2026-11-23T12:00:00Z"})
    plan = plan_deletion(cr.model_copy(update={"metadata": meta}), {}, foreign_world(owners))
    assert touching(plan.actions) == []
    assert "nodeName" not in plan.status and not plan.status.get("interfaces")
    assert "vmName" not in plan.status


class Store:
    """Watch caches holding `objects` by (cache, name), and the migrations labelled web-1."""

    def __init__(self, objects: dict[tuple[str, str], Any], migrations: list[Any]) -> None:
        self.objects, self.migrations = objects, migrations

    def get(self, kind: str, namespace: str, name: str) -> Any:
        return self.objects.get((kind, name))

    def by_label(self, kind: str, label: str, value: str) -> list[Any]:
        return self.migrations if kind == kinds.MIGRATION.cache else []

    def list(self, kind: str, namespace: str | None = None, selector: Any = None) -> list[Any]:
        return []

    def remember(self, kind: str, obj: Any) -> None:
        pass


def _migration(name: str, owners: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "kind": "VirtualMachineInstanceMigration",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {names.LABEL_WUKONG: "web-1"},
            "ownerReferences": owners,
        },
        "spec": {"vmiName": "web-1-vm"},
        "status": {"phase": "Succeeded"},
    }


def test_observe_shows_neither_that_vm_nor_its_guest() -> None:
    """What a pass reads from the caches: the VM of another owner is only `foreign_vm`, and
    its VMI is not read; the Wukong's own VM and guest are read as ever."""
    from wukong.act.reconciler import observe

    world = foreign_world(ORPHANED)
    assert world.vm is not None
    objects = {(kinds.VM.cache, "web-1-vm"): world.vm, (kinds.VMI.cache, "web-1-vm"): world.vmi}
    seen = observe(Store(objects, []), wukong(), NOW)
    assert seen.vm is None and seen.vmi is None and seen.foreign_vm is world.vm
    mine = copy.deepcopy(world.vm)
    mine["metadata"]["ownerReferences"] = OURS
    objects[(kinds.VM.cache, "web-1-vm")] = mine
    seen = observe(Store(objects, []), wukong(), NOW)
    assert seen.vm is mine and seen.vmi is world.vmi and seen.foreign_vm is None


def test_a_migration_an_earlier_wukong_of_the_name_made_is_not_this_ones() -> None:
    """Migrations were read by the Wukong's label alone: one an earlier web-1 made (orphaned
    with its VM by `--cascade=orphan`, the label stays) was "followed" when the same request
    came again (a lifecycleAction without requestedAt has the same fingerprint), and its old
    result reported as this request's."""
    from wukong.act.reconciler import observe

    migrations = [_migration("web-1-migrate-1", OURS), _migration("web-1-migrate-0", ORPHANED)]
    seen = observe(Store({}, migrations), wukong(), NOW)
    assert list(seen.migrations) == ["web-1-migrate-1"]


GONE_VM = {"kind": "VirtualMachine", "name": "web-1-vm", "uid": "its-gone-vm", "controller": True}


def bare_vmi(**metadata: Any) -> dict[str, Any]:
    """A VMI `web-1-vm` with no VM beside it, running on node-7; `metadata` added."""
    vmi = copy.deepcopy(foreign_world(ORPHANED).vmi)
    assert vmi is not None
    del vmi["metadata"]["ownerReferences"]
    vmi["metadata"].update(metadata)
    return vmi


def test_a_vmi_of_its_name_made_without_a_vm_is_neither_taken_nor_reported() -> None:
    """Before the fix (session 48): the Wukong made its VM, whose controller KubeVirt then
    gave the other user's VMI (`ClaimVirtualMachineInstanceByName` adopts a VMI of the VM's
    name that no one controls), so a later stop of the Wukong deleted that guest; meanwhile
    the status showed the VMI's node and address as the Wukong's."""
    world = ready_children(vmi=bare_vmi())
    status: dict[str, Any] = {}
    for _ in range(3):
        plan = decide(wukong(lifecycleAction={"action": "stop"}), status, world)
        assert touching(plan.actions) == []
        status = plan.status
    assert "nodeName" not in status and not status.get("interfaces")
    said = {c["type"]: c for c in status["conditions"]}["SpecValid"]
    assert (said["status"], said["reason"]) == ("False", "NameConflict")
    made = "VirtualMachineInstance 'web-1-vm' exists, made without a VirtualMachine"
    assert made in said["message"]


def test_a_deleting_wukong_does_not_wait_for_a_vmi_made_without_a_vm() -> None:
    """Before the fix the teardown waited at StopVM for a guest no VM of its runs."""
    cr = wukong()
    meta = cr.metadata.model_copy(update={"deletion_timestamp": "2026-11-23T12:00:00Z"})
    plan = plan_deletion(cr.model_copy(update={"metadata": meta}), {}, ready_children(
        vmi=bare_vmi()))  # fmt: skip
    assert touching(plan.actions) == []
    assert "VirtualMachineInstance" not in str(plan.status.get("deletion"))


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param(
            {"labels": {names.LABEL_WUKONG: "web-1", names.LABEL_MANAGED_BY: names.MANAGED_BY}},
            id="its-vm-orphaned-it",
        ),
        pytest.param({"ownerReferences": [GONE_VM]}, id="its-vm-deleted"),
    ],
)
def test_its_own_guest_without_its_vm_is_still_its_guest(metadata: dict[str, Any]) -> None:
    """A VMI of its own VM (`kubectl delete vm --cascade=orphan`: labelled the Wukong's; or
    its VM deleted, the guest still going) is the Wukong's guest as before."""
    seen = ready_children(vmi=bare_vmi(**metadata))
    plan = decide(wukong(), {}, seen)
    assert "NameConflict" not in str(plan.status["conditions"])
    assert plan.status.get("nodeName") == "node-7"
