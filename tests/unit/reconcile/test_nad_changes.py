"""A NAD the operator changes under a running VM (session 42): Multus reads a NAD when a pod
starts, so the running guest keeps the old bridge, VLAN or MTU until KubeVirt makes a new pod
(a restart, or a live migration's target). The VM's template does not change (the same NAD
name) and KubeVirt says nothing: the Wukong said nothing either."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.unit.reconcile.test_lifecycle import running_world
from tests.unit.reconcile.world import NOW, decide, wukong
from wukong.reconcile.actions import PatchChild
from wukong.reconcile.timefmt import iso

ON_VLAN_150 = [
    {"name": "storage-net", "nadName": "existing-nad"},
    {"name": "vlan100", "type": "bridge", "bridge": "br-vlan100", "vlan": 150},
]
STARTED = iso(NOW - timedelta(hours=1))


def _restart(status: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in status["conditions"] if c["type"] == "RestartRequired"), None)


def test_a_nad_changed_under_a_running_vm_owes_it_a_restart_until_a_new_pod() -> None:
    world = running_world()
    world.vmi["metadata"]["creationTimestamp"] = STARTED
    cr = wukong(networks=ON_VLAN_150)
    plan = decide(cr, {"phase": "Running"}, world)
    assert any(
        isinstance(a, PatchChild) and a.kind == "NetworkAttachmentDefinition" for a in plan.actions
    )
    [net] = [n for n in plan.status["networks"] if n["name"] == "vlan100"]
    assert (net["configChanged"], net["changedUnder"]) == (iso(NOW), "vmi-1")
    said = _restart(plan.status)
    assert said is not None and said["status"] == "True"
    assert "the NAD of vlan100 changed after the VM's pod took it in" in said["message"]
    # Later passes (the NAD is as the spec says now) remember it from the status.
    nad = world.nads["demo/web-1-vlan100"]
    nad["spec"]["config"] = nad["spec"]["config"].replace('"vlan":100', '"vlan":150')
    later = decide(cr, plan.status, world)
    assert not [a for a in later.actions if isinstance(a, PatchChild)]
    assert _restart(later.status) is not None
    # A live migration under way then kept its target pod's old config; one started after
    # the change brought a new pod: nothing owed.
    moved = {"completed": True, "startTimestamp": iso(NOW), "endTimestamp": iso(NOW)}
    world.vmi["status"]["migrationState"] = moved
    assert _restart(decide(cr, plan.status, world).status) is not None
    moved["startTimestamp"] = iso(NOW + timedelta(seconds=5))
    assert _restart(decide(cr, plan.status, world).status) is None
    # So does a restart (another VMI, whenever it was made).
    del world.vmi["status"]["migrationState"]
    world.vmi["metadata"]["uid"] = "vmi-2"
    assert _restart(decide(cr, plan.status, world).status) is None


def test_a_stopped_vm_owes_nothing_for_a_changed_nad() -> None:
    world = running_world()
    world.vmi["metadata"]["creationTimestamp"] = STARTED
    world.vmi["status"]["phase"] = "Succeeded"
    plan = decide(wukong(networks=ON_VLAN_150), {"phase": "Stopped"}, world)
    assert _restart(plan.status) is None
