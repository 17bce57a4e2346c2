"""Declarative volume hotplug and the RestartRequired rule (pure functions).

Simplified from KubeVirt: hot-pluggable volumes (and their disks) of the VM template are
synced into a running VMI; cpu.sockets and memory.guest are live-updated within the VMI's
maxSockets/maxGuest (vmi_resize.py); any other template change (cpu cores, resources,
interfaces, networks, non-hotplug disks...) only marks the VM RestartRequired. A bridge or
SR-IOV interface added to the template is appended to the running VMI with its network, as
virt-controller's network sync does (`plugged_nics`), and owes no restart; the guest gets it at
once here (no MigrationRequired). Instance types are not simulated.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from ._kube import JsonObj
from .objects import disk_bus, disks, is_hotpluggable
from .vmi_resize import live_resize

VMI_UPDATE_WEBHOOK = "virtualmachineinstances-update-validator.kubevirt.io"


@dataclass(frozen=True)
class HotplugPlan:
    """New VMI volumes/disks, or the admission error that stops KubeVirt from applying them."""

    volumes: list[JsonObj]
    disks: list[JsonObj]
    error: str | None = None


def plan_hotplug(template: JsonObj, vmi_spec: JsonObj) -> HotplugPlan | None:
    """What the VMI spec must become so its hotplug volumes match the template; None if it does."""
    vm_hot = {v["name"]: v for v in template.get("volumes") or [] if is_hotpluggable(v)}
    vm_disks = {d["name"]: d for d in disks(template)}
    current = list(vmi_spec.get("volumes") or [])
    kept = [v for v in current if not is_hotpluggable(v) or v["name"] in vm_hot]
    names = {v["name"] for v in current}
    added = [v for n, v in vm_hot.items() if n not in names and n in vm_disks]
    if len(kept) == len(current) and not added:
        return None
    kept_names = {v["name"] for v in kept}
    new_disks = [d for d in disks(vmi_spec) if d["name"] in kept_names]
    added_disks = [copy.deepcopy(vm_disks[v["name"]]) for v in added]
    for disk in added_disks:
        # The VMI update webhook checks the bus only now, not when the VM template changed.
        bus = disk_bus(disk)
        if "disk" in disk and bus not in ("scsi", "virtio"):
            message = (
                f'admission webhook "{VMI_UPDATE_WEBHOOK}" denied the request: Hotplug '
                f"configuration for disk [{disk['name']}] requires bus to be 'scsi' or "
                f"'virtio'. [{bus}] is not permitted."
            )
            return HotplugPlan([], [], message)
    return HotplugPlan(kept + copy.deepcopy(added), new_disks + added_disks)


def live_updates(template: JsonObj, vmi_spec: JsonObj) -> JsonObj | None:
    """A merge patch for the VMI's cpu.sockets / memory.guest (LiveUpdate rollout), or None.
    Applied at once: the pure simulator has no workload updater to move the VMI to a bigger
    pod first (vmi_resize.py has KubeVirt's rules for what may change live)."""
    domain = live_resize(template, vmi_spec)
    return {"spec": {"domain": domain}} if domain else None


def _comparable(spec: JsonObj) -> JsonObj:
    """The template spec minus everything KubeVirt can change on a running VMI."""
    spec = copy.deepcopy(spec)
    hot = {v["name"] for v in spec.get("volumes") or [] if is_hotpluggable(v)}
    spec["volumes"] = [v for v in spec.get("volumes") or [] if v["name"] not in hot]
    domain = spec.setdefault("domain", {})
    devices = domain.setdefault("devices", {})
    devices["disks"] = [d for d in devices.get("disks") or [] if d["name"] not in hot]
    (domain.get("cpu") or {}).pop("sockets", None)
    (domain.get("memory") or {}).pop("guest", None)
    for key in ("cpu", "memory"):
        if domain.get(key) == {}:
            del domain[key]
    for key in ("nodeSelector", "affinity", "tolerations"):
        spec.pop(key, None)
    return spec


def _hot_pluggable_nic(interface: JsonObj) -> bool:
    return interface.get("state") != "absent" and ("bridge" in interface or "sriov" in interface)


def _interfaces(spec: JsonObj) -> list[JsonObj]:
    return list(((spec.get("domain") or {}).get("devices") or {}).get("interfaces") or [])


def plugged_nics(template: JsonObj, vmi_spec: JsonObj) -> tuple[list[JsonObj], list[JsonObj]]:
    """The VMI's interfaces and networks with the template's new bridge or SR-IOV interfaces
    appended (KubeVirt's controllers/vm.go applyDynamicIfaceRequestOnVMI); ([], []) when
    there are none to add."""
    have = {i.get("name") for i in _interfaces(vmi_spec)}
    networks = {n.get("name"): n for n in template.get("networks") or []}
    added = [
        i for i in _interfaces(template) if i.get("name") not in have and _hot_pluggable_nic(i)
    ]
    if not added:
        return [], []
    nets = list(vmi_spec.get("networks") or [])
    nets += [networks[i["name"]] for i in added if i.get("name") in networks]
    return [*_interfaces(vmi_spec), *added], nets


def restart_required(started_from: JsonObj | None, template: JsonObj) -> bool:
    """A non-live-updatable template field differs from what the running VMI was started with
    (a bridge or SR-IOV interface added since is plugged in, not a restart)."""
    if started_from is None:
        return False
    started = {i.get("name") for i in _interfaces(started_from)}
    added = {
        i.get("name")
        for i in _interfaces(template)
        if i.get("name") not in started and _hot_pluggable_nic(i)
    }
    if added:
        template = copy.deepcopy(template)
        devices = template["domain"]["devices"]
        devices["interfaces"] = [i for i in devices["interfaces"] if i.get("name") not in added]
        template["networks"] = [
            n for n in template.get("networks") or [] if n.get("name") not in added
        ]
    return _comparable(started_from) != _comparable(template)
