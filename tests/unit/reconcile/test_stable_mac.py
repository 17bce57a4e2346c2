"""Stable MAC addresses (session 47): a Wukong's bridge NICs keep their MAC address across
restarts and migrations, derived by the operator, never chosen by the tenant. Without one in
the VM's template, each new launcher pod's bridge CNI gave the guest a new random address,
and its DHCP lease and MAC-matched configuration went with it."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any

import pytest

from tests.unit.reconcile.test_lifecycle import running_world
from tests.unit.reconcile.world import NS, UID, decide, ready_children, wukong
from wukong.api import names
from wukong.reconcile.actions import CreateChild, PatchChild
from wukong.reconcile.children import build_nad, nad_config
from wukong.reconcile.networks import takes_mac
from wukong.reconcile.observed import Observed
from wukong.reconcile.vm import build_vm

MAC0, MAC1 = names.mac_address(UID, 0), names.mac_address(UID, 1)


def _admin_nad(**plugin: Any) -> dict[str, Any]:
    """existing-nad, an administrator's bridge NAD with these plugin keys."""
    config = {"cniVersion": "0.3.1", "plugins": [{"type": "bridge", "bridge": "br-s", **plugin}]}
    return {
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "existing-nad", "namespace": NS, "uid": "existing-nad-uid"},
        "spec": {"config": json.dumps(config)},
    }


def _world(**plugin: Any) -> Observed:
    """web-1's children ready, its administrator's NAD a bridge with these plugin keys."""
    world = ready_children()
    world.nads[f"{NS}/existing-nad"] = _admin_nad(**plugin)
    return world


def _macs(template: dict[str, Any]) -> dict[str, str | None]:
    """Interface name -> macAddress of a VM template (or a VMI's spec)."""
    spec = template.get("spec", template)
    return {i["name"]: i.get("macAddress") for i in spec["domain"]["devices"]["interfaces"]}


def _created_vm(plan: Any) -> dict[str, Any]:
    [vm] = [a for a in plan.actions if isinstance(a, CreateChild) and a.kind == "VirtualMachine"]
    return dict(vm.body)


def _vm_patches(plan: Any) -> list[PatchChild]:
    return [a for a in plan.actions if isinstance(a, PatchChild) and a.kind == "VirtualMachine"]


def _restart(plan: Any) -> dict[str, Any] | None:
    return next((c for c in plan.status["conditions"] if c["type"] == "RestartRequired"), None)


def _without_macs(world: Observed) -> Observed:
    """`world` as an operator before session 47 left it: no MAC in the VM or its VMI."""
    for obj in (world.vm, world.vmi):
        if obj is None:
            continue
        spec = obj["spec"]["template"]["spec"] if obj is world.vm else obj["spec"]
        for iface in spec["domain"]["devices"]["interfaces"]:
            iface.pop("macAddress", None)
    return world


def test_the_derived_address_is_stable_local_and_unicast() -> None:
    assert names.mac_address("u-1", 0) == names.mac_address("u-1", 0)
    addresses = {names.mac_address(f"u-{n}", slot) for n in range(200) for slot in range(8)}
    assert len(addresses) == 1600
    for mac in addresses:
        octets = [int(part, 16) for part in mac.split(":")]
        assert len(octets) == 6 and mac == mac.lower()
        assert octets[0] & 0x02, mac  # locally administered: no vendor's address
        assert not octets[0] & 0x01, mac  # unicast


def test_a_new_vm_gets_a_mac_on_each_bridge_network_and_none_on_the_pod_network() -> None:
    plan = decide(wukong(), {"phase": "Creating"}, _world())
    assert _macs(_created_vm(plan)["spec"]["template"]) == {
        "default": None,
        "storage-net": MAC0,
        "vlan100": MAC1,
    }


def test_the_address_comes_from_the_wukongs_uid_not_from_anything_the_tenant_writes() -> None:
    """A network's name is the tenant's: were it hashed in, a tenant could search offline for
    a name whose address is a neighbour's on the shared bridge (46 bits: hours on a GPU).
    Renaming both networks gives the same addresses; another Wukong (uid) others."""
    renamed = wukong(
        networks=[
            {"name": "san", "nadName": "existing-nad"},
            {"name": "lan", "type": "bridge", "bridge": "br-vlan100", "vlan": 100},
        ]
    )
    world = _world()
    world.nads[f"{NS}/web-1-lan"] = build_nad(renamed, renamed.spec.networks[1])
    plan = decide(renamed, {"phase": "Creating"}, world)
    assert _macs(_created_vm(plan)["spec"]["template"])["san"] == MAC0
    assert names.mac_address("uid-web-2", 0) != MAC0


def test_an_administrators_nad_that_would_drop_the_guests_frames_gets_no_mac() -> None:
    """macspoofchk lets through only the pod interface's address; the plugin sets it to the
    one asked for only with the `mac` capability (Multus's runtimeConfig.mac)."""
    plan = decide(wukong(), {"phase": "Creating"}, _world(macspoofchk=True))
    assert _macs(_created_vm(plan)["spec"]["template"]) == {
        "default": None,
        "storage-net": None,
        "vlan100": MAC0,
    }


@pytest.mark.parametrize(
    ("plugin", "takes"),
    [
        pytest.param({}, True, id="no-spoof-check"),
        pytest.param({"macspoofchk": False}, True, id="spoof-check-off"),
        pytest.param({"macspoofchk": True, "capabilities": {"mac": True}}, True, id="capability"),
        pytest.param({"macspoofchk": True}, False, id="spoof-check"),
        pytest.param({"MacSpoofChk": True}, False, id="spoof-check-any-case"),
        pytest.param({"macspoofchk": True, "capabilities": {"mac": False}}, False, id="mac-off"),
        pytest.param({"macspoofchk": True, "capabilities": {"ips": True}}, False, id="other-cap"),
    ],
)
def test_which_administrators_nads_take_a_mac(plugin: dict[str, Any], takes: bool) -> None:
    assert takes_mac(_admin_nad(**plugin)) is takes


def test_nads_of_other_plugins_take_no_mac() -> None:
    for config in ('{"type":"ovs","bridge":"br1"}', "{}", "not json", '{"plugins":[]}'):
        assert not takes_mac({"spec": {"config": config}}), config


def test_a_restart_keeps_the_addresses() -> None:
    """The template keeps them; KubeVirt makes each new VMI (and pod) from it."""
    world = running_world()
    before = _macs(world.vm["spec"]["template"])
    assert before["vlan100"] == MAC0
    assert not _vm_patches(decide(wukong(), {"phase": "Running"}, world))
    restarted = copy.deepcopy(world.vmi)
    restarted["metadata"]["uid"] = "vmi-2"
    world = replace(world, vmi=restarted)
    plan = decide(wukong(), {"phase": "Running"}, world)
    assert not _vm_patches(plan) and _restart(plan) is None


def test_a_template_patch_keeps_every_mac_the_template_has() -> None:
    """The patch replaces the interface list whole: a MAC the template has (ours, or one
    KubeMacPool or an administrator set, on any interface) was lost at the next spec change,
    and the guest's address changed with it."""
    world = running_world()
    interfaces = world.vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]
    interfaces[0]["macAddress"] = "02:aa:00:00:00:01"  # the pod network, by KubeMacPool
    world.vmi["spec"] = copy.deepcopy(world.vm["spec"]["template"]["spec"])
    [patch] = _vm_patches(decide(wukong(cpu=4), {"phase": "Running"}, world))
    assert _macs(patch.patch["spec"]["template"]) == {
        "default": "02:aa:00:00:00:01",
        "storage-net": None,
        "vlan100": MAC0,
    }


def test_a_running_vm_without_macs_is_left_as_it_is() -> None:
    """A VM made before session 47: a MAC added to its template owes a restart (KubeVirt
    compares the running VMI's interfaces with the template's). It waits for a stop."""
    world = _without_macs(running_world())
    plan = decide(wukong(), {"phase": "Running"}, world)
    assert not _vm_patches(plan)
    assert _restart(plan) is None


def test_a_restart_gives_a_vm_made_before_its_macs() -> None:
    """Session 48: only a stop did; a restart (the usual way to apply a change) made the next
    VMI from a template without them, a new random address again. The patch comes before the
    call, in the pass that makes it, and the next VMI is made from the patched template."""
    cr = wukong(lifecycleAction={"action": "restart"})
    world = _without_macs(running_world())
    recorded = decide(cr, {"phase": "Running"}, world)
    assert not _vm_patches(recorded)  # recorded first, nothing written to the VM yet
    called = decide(cr, recorded.status, world)
    [patch] = _vm_patches(called)
    assert _macs(patch.patch["spec"]["template"])["vlan100"] == MAC0
    kinds = [type(a).__name__ for a in called.actions]
    assert kinds.index("PatchChild") < kinds.index("VmCall")


@pytest.mark.parametrize("strategy", ["Halted", "Manual"])
def test_a_stopped_vm_without_macs_gets_them(strategy: str) -> None:
    world = replace(_without_macs(running_world(strategy)), vmi=None)
    cr = wukong(runStrategy="Manual") if strategy == "Manual" else wukong()
    state = {"lifecycleState": {"lastAction": "stop", "state": "Done"}}
    plan = decide(cr, {"phase": "Stopped", **state}, world)
    [patch] = _vm_patches(plan)
    assert _macs(patch.patch["spec"]["template"])["vlan100"] == MAC0


def test_a_vm_that_kubevirt_starts_again_by_itself_is_not_patched_between_two_vmis() -> None:
    """Under Always, a VMI that ended is made again at once from the template: a patch landing
    after it would owe the new one a restart. The MAC waits for a stop."""
    world = _without_macs(running_world())
    world.vmi["status"]["phase"] = "Failed"
    assert not _vm_patches(decide(wukong(), {"phase": "Running"}, world))
    world = replace(world, vmi=None)
    assert not _vm_patches(decide(wukong(), {"phase": "Running"}, world))


def test_a_network_added_to_a_running_vm_gets_its_mac_and_owes_no_restart() -> None:
    world = running_world()
    lan = {"name": "lan", "type": "bridge", "bridge": "br-vlan100", "vlan": 120}
    cr = wukong(networks=[*[n.to_wire() for n in wukong().spec.networks], lan])
    world.nads[f"{NS}/web-1-lan"] = build_nad(cr, cr.spec.networks[2])
    plan = decide(cr, {"phase": "Running"}, world)
    [patch] = _vm_patches(plan)
    assert _macs(patch.patch["spec"]["template"]) == {
        "default": None,
        "storage-net": None,
        "vlan100": MAC0,
        "lan": MAC1,
    }
    assert _restart(plan) is None


def test_a_network_put_back_into_a_running_vm_takes_the_mac_its_guest_has() -> None:
    """Taken out (a restart owed) and put back before it: the guest still has the NIC, and
    the same address ends the restart owed."""
    world = running_world()
    interfaces = world.vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]
    world.vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"] = interfaces[:2]
    plan = decide(wukong(), {"phase": "Running"}, world)
    [patch] = _vm_patches(plan)
    assert _macs(patch.patch["spec"]["template"])["vlan100"] == MAC0
    assert _restart(plan) is None


def test_a_new_nad_has_the_mac_capability() -> None:
    cr = wukong()
    [plugin] = json.loads(nad_config(cr, cr.spec.networks[1]))["plugins"]
    assert plugin["capabilities"] == {"mac": True} and plugin["macspoofchk"] is True


def test_a_nad_made_before_gets_the_capability_at_once_and_owes_no_restart() -> None:
    """Only the capability is new: it changes nothing for the running pod, and a pod made
    later gets a MAC only where its VMI asks one. Not a NAD changed under a running VM
    (session 42), which a restart must apply."""
    world = running_world()
    cr = wukong()
    nad = world.nads[f"{NS}/web-1-vlan100"]
    nad["spec"]["config"] = nad_config(cr, cr.spec.networks[1], mac=False)
    plan = decide(cr, {"phase": "Running"}, world)
    [patch] = [
        a
        for a in plan.actions
        if isinstance(a, PatchChild) and a.kind == "NetworkAttachmentDefinition"
    ]
    assert patch.patch == {"spec": {"config": nad_config(cr, cr.spec.networks[1])}}
    assert patch.why == "mac capability added"
    [net] = [n for n in plan.status["networks"] if n["name"] == "vlan100"]
    assert net.get("changedUnder") is None
    assert _restart(plan) is None


def test_the_vm_built_for_a_new_wukong_names_the_same_addresses_as_its_plan() -> None:
    world = _world()
    assert _macs(build_vm(wukong(), world, "Always")["spec"]["template"])["storage-net"] == MAC0
