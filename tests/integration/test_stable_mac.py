"""Stable MAC addresses (session 47): a Wukong's bridge NICs keep their address across
restarts. With KubeVirt's own virt-controller (real mode) the launcher pod it makes asks Multus
for the VM template's address (the `k8s.v1.cni.cncf.io/networks` element's `mac`), and a
network plugged into the running VM with one owes it no restart."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.scenario import (
    condition,
    create,
    get,
    k,
    operator,
    patch_spec,
    sim,
    user_nad,
    wait_for,
    wait_phase,
    wukong,
)
from tests.integration.test_lifecycle import answered, request
from wukong.adapters.kube import Kube
from wukong.api import names
from wukong.testing.eventually import eventually
from wukong.testing.kubevirt import Simulator
from wukong.testing.operator import InProcessOperator

__all__ = ["k", "operator", "sim"]  # fixtures

SMALL = [{"name": "system", "size": "1Gi"}]
NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"


def _spoof_checked(name: str) -> dict[str, Any]:
    """An administrator's bridge NAD with macspoofchk and no `mac` capability: its plugin
    would not give the pod's interface the address asked, and drop the guest's frames."""
    nad = user_nad(name)
    config = json.loads(nad["spec"]["config"])
    config["plugins"][0]["macspoofchk"] = True
    nad["spec"]["config"] = json.dumps(config)
    return nad


def _template_macs(vm: dict[str, Any]) -> dict[str, str | None]:
    interfaces = vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]
    return {i["name"]: i.get("macAddress") for i in interfaces}


def _reported_macs(vmi: dict[str, Any]) -> dict[str, str]:
    """The MAC KubeVirt reports for each interface of the VMI (virt-handler's status)."""
    return {i["name"]: i["mac"] for i in vmi["status"].get("interfaces") or [] if i.get("name")}


async def _launcher_networks(k: Kube, namespace: str, vmi: dict[str, Any]) -> list[Any]:
    """The Multus networks annotation of the VMI's launcher pod, as virt-controller made it."""
    pods = await k.get(f"/api/v1/namespaces/{namespace}/pods")
    [pod] = [
        p
        for p in pods.get("items") or []
        if (p["metadata"].get("labels") or {}).get("kubevirt.io/created-by")
        == vmi["metadata"]["uid"]
    ]
    return list(json.loads(pod["metadata"]["annotations"][NETWORKS_ANNOTATION]))


async def _running_vmi(k: Kube, namespace: str, vm: str, not_uid: str | None = None) -> Any:
    async def running() -> dict[str, Any] | None:
        vmi = await get(k, "vmi", namespace, vm)
        if vmi is None or vmi["metadata"]["uid"] == not_uid:
            return None
        status = vmi.get("status") or {}
        named = [i for i in status.get("interfaces") or [] if i.get("name")]
        return vmi if status.get("phase") == "Running" and len(named) == 4 else None

    return await eventually(running, timeout=60, message=f"{vm}'s VMI running, NICs reported")


async def test_the_guests_addresses_survive_a_restart(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    await create(k, "nad", namespace, user_nad("san-net"))
    await create(k, "nad", namespace, _spoof_checked("checked-net"))
    networks = [
        {"name": "lan", "type": "bridge", "bridge": "br-lan"},
        {"name": "san", "nadName": "san-net"},
        {"name": "checked", "nadName": "checked-net"},
    ]
    cr = await create(k, "wukong", namespace, wukong("macs", disks=SMALL, networks=networks))
    uid = cr["metadata"]["uid"]
    await wait_phase(k, namespace, "macs", "Running", within=60)
    vm = await get(k, "vm", namespace, "macs-vm")
    assert vm is not None
    lan, san = names.mac_address(uid, 0), names.mac_address(uid, 1)
    assert _template_macs(vm) == {"default": None, "lan": lan, "san": san, "checked": None}
    nad = await get(k, "nad", namespace, "macs-lan")
    assert nad is not None
    [plugin] = json.loads(nad["spec"]["config"])["plugins"]
    assert plugin["capabilities"] == {"mac": True} and plugin["macspoofchk"] is True

    first = await _running_vmi(k, namespace, "macs-vm")
    reported = _reported_macs(first)
    assert (reported["lan"], reported["san"]) == (lan, san)
    asked = {e["name"]: e.get("mac") for e in await _launcher_networks(k, namespace, first)}
    assert asked == {"macs-lan": lan, "san-net": san, "checked-net": None}

    generation = await request(k, namespace, "macs", "restart")
    await wait_for(k, namespace, "macs", answered(generation, "Done"), within=60)
    second = await _running_vmi(k, namespace, "macs-vm", not_uid=first["metadata"]["uid"])
    again = _reported_macs(second)
    assert (again["lan"], again["san"]) == (lan, san)
    asked = {e["name"]: e.get("mac") for e in await _launcher_networks(k, namespace, second)}
    assert asked == {"macs-lan": lan, "san-net": san, "checked-net": None}
    cr = await wait_for(
        k,
        namespace,
        "macs",
        lambda c: (
            {i["name"]: i.get("mac") for i in c["status"].get("interfaces") or []}.get("lan") == lan
        ),
        what="status.interfaces says lan's MAC",
    )
    assert condition(cr, "RestartRequired") == {}


async def test_a_network_plugged_into_a_running_vm_keeps_its_address_and_owes_no_restart(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    """KubeVirt's virt-controller copies the new interface, its address with it, into the
    running VMI (applyDynamicIfaceRequestOnVMI) and compares the two by name: no restart."""
    await create(k, "wukong", namespace, wukong("plug", disks=SMALL))
    await wait_phase(k, namespace, "plug", "Running", within=60)
    uid = (await get(k, "wukong", namespace, "plug") or {})["metadata"]["uid"]
    await patch_spec(k, namespace, "plug", {"networks": [{"name": "lan", "bridge": "br-lan"}]})

    async def plugged() -> dict[str, Any] | None:
        vmi = await get(k, "vmi", namespace, "plug-vm")
        interfaces = ((vmi or {}).get("spec") or {}).get("domain", {}).get("devices", {})
        found = [i for i in interfaces.get("interfaces") or [] if i["name"] == "lan"]
        return vmi if found else None

    vmi = await eventually(plugged, timeout=30, message="lan plugged into the running VMI")
    [lan] = [i for i in vmi["spec"]["domain"]["devices"]["interfaces"] if i["name"] == "lan"]
    assert lan["macAddress"] == names.mac_address(uid, 0)
    cr = await wait_for(
        k,
        namespace,
        "plug",
        lambda c: any(i.get("name") == "lan" for i in c["status"].get("interfaces") or []),
        what="lan in status.interfaces",
    )
    assert condition(cr, "RestartRequired") == {}
    vm = await get(k, "vm", namespace, "plug-vm")
    assert vm is not None
    said = (vm.get("status") or {}).get("conditions") or []  # KubeVirt's own word
    assert "RestartRequired" not in [c["type"] for c in said if c.get("status") == "True"]
