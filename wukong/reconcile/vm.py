"""The VirtualMachine: built from the spec, created once networks and disks are ready,
updated on spec change, with `RestartRequired` instead of a reboot behind the user's back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wukong.api import JsonObj, names
from wukong.api.conditions import RESTART_REQUIRED, Cond
from wukong.api.v1alpha1 import Wukong
from wukong.reconcile.actions import Action, CreateChild, PatchChild
from wukong.reconcile.children import labels, network_pairs, owned_by, owner_reference
from wukong.reconcile.disks import (
    is_hotpluggable,
    template_disks,
    template_volumes,
    vm_disk,
    volume_source,
)
from wukong.reconcile.observed import Observed


@dataclass(frozen=True)
class VmPlan:
    """What the VM planner decided."""

    actions: tuple[Action, ...]
    conditions: tuple[Cond, ...]
    conflict: str | None = None


def _current_volumes(vm: JsonObj | None) -> dict[str, tuple[JsonObj, JsonObj | None]]:
    """Volumes (and their disks) already in the VM template, by name."""
    devices = template_disks(vm)
    return {name: (v, devices.get(name)) for name, v in template_volumes(vm).items()}


def _disks_and_volumes(cr: Wukong, seen: Observed) -> tuple[list[JsonObj], list[JsonObj]]:
    """Template disks and volumes: the system disk first. Disks already hot-plugged keep their
    hot-plug form; new disks of a running VM are left to the hot-plug planner (addvolume)."""
    current = _current_volumes(seen.vm)
    running = seen.vmi is not None
    system = cr.spec.system_disk
    ordered = [d for d in cr.spec.disks if d.name == system.name] + [
        d for d in cr.spec.disks if d.name != system.name
    ]
    disks: list[JsonObj] = []
    volumes: list[JsonObj] = []
    for disk in ordered:
        existing = current.get(disk.name)
        hotplugged = existing is not None and is_hotpluggable(existing[0])
        if existing is None and running and seen.vm is not None:
            continue  # hot-plugged by the disk planner once its claim is bound
        if hotplugged and existing is not None:
            volumes.append(existing[0])
            disks.append(existing[1] or vm_disk(disk))
            continue
        disks.append(vm_disk(disk, boot=disk.name == system.name))
        volumes.append(volume_source(cr, disk))
    if running:
        # Disks that left the spec stay until the hot-unplug planner (guest check first)
        # or the next boot removes them: a template edit must never yank a mounted disk.
        in_spec = {d.name for d in cr.spec.disks}
        for name, (volume, device) in current.items():
            if name not in in_spec:
                volumes.append(volume)
                if device is not None:
                    disks.append(device)
    return disks, volumes


def desired_template(cr: Wukong, seen: Observed) -> JsonObj:
    """The VM's `spec.template` for this spec."""
    interfaces, networks = network_pairs(cr)
    disks, volumes = _disks_and_volumes(cr, seen)
    vm = names.vm_name(cr.metadata.name)
    return {
        "metadata": {"labels": labels(cr) | {"kubevirt.io/vm": vm}},
        "spec": {
            "domain": {
                "cpu": {"cores": cr.spec.cpu, "sockets": 1, "threads": 1},
                "memory": {"guest": cr.spec.memory},
                "resources": {"requests": {"memory": cr.spec.memory}},
                "devices": {"disks": disks, "interfaces": interfaces},
            },
            "networks": networks,
            "volumes": volumes,
        },
    }


def build_vm(cr: Wukong, seen: Observed, run_strategy: str) -> JsonObj:
    """The whole VirtualMachine manifest."""
    return {
        "apiVersion": f"{names.KUBEVIRT_GROUP}/{names.KUBEVIRT_VERSION}",
        "kind": "VirtualMachine",
        "metadata": {
            "name": names.vm_name(cr.metadata.name),
            "namespace": cr.metadata.namespace,
            "labels": labels(cr),
            "ownerReferences": [owner_reference(cr)],
        },
        "spec": {"runStrategy": run_strategy, "template": desired_template(cr, seen)},
    }


def subset(current: Any, desired: Any) -> Any:
    """The part of `current` that `desired` describes, to compare only fields we set
    (KubeVirt's webhooks add defaults we must not fight)."""
    if isinstance(desired, dict) and isinstance(current, dict):
        return {k: subset(current.get(k), v) for k, v in desired.items()}
    if isinstance(desired, list) and isinstance(current, list) and len(desired) == len(current):
        return [subset(c, d) for c, d in zip(current, desired, strict=True)]
    return current


# Fields of a running VMI that change only on reboot, with words for the condition message.
REBOOT_FIELDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("domain", "cpu", "cores"), "cpu"),
    (("domain", "memory", "guest"), "memory"),
    (("domain", "devices", "interfaces"), "networks"),
    (("networks",), "networks"),
)


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def restart_required(template_spec: JsonObj, vmi: JsonObj | None) -> list[str]:
    """What the running VMI lacks from the template and only a restart applies."""
    if vmi is None:
        return []
    running = vmi.get("spec", {})
    changed: list[str] = []
    for path, words in REBOOT_FIELDS:
        want = _dig(template_spec, path)
        if want is not None and subset(_dig(running, path), want) != want and words not in changed:
            changed.append(words)
    return changed


def plan_vm(cr: Wukong, seen: Observed, *, ready: bool, run_strategy: str) -> VmPlan:
    """Create the VM when children are ready; keep its template in line with the spec."""
    vm_name = names.vm_name(cr.metadata.name)
    if seen.vm is None:
        if not ready:
            return VmPlan((), ())
        return VmPlan((CreateChild("VirtualMachine", build_vm(cr, seen, run_strategy)),), ())
    if not owned_by(seen.vm, cr.metadata.uid):
        return VmPlan((), (), conflict=f"VirtualMachine '{vm_name}' exists and is not ours")
    actions: list[Action] = []
    template = desired_template(cr, seen)
    current = seen.vm.get("spec", {}).get("template")
    if subset(current, template) != template:
        actions.append(
            PatchChild("VirtualMachine", vm_name, {"spec": {"template": template}}, "spec changed")
        )
    changed = restart_required(template["spec"], seen.vmi)
    if not changed:  # RestartRequired is there only while a restart is owed
        return VmPlan(tuple(actions), ())
    message = (
        f"{', '.join(changed)} changed while the VM runs: restart it to apply "
        f"(kubectl wukong restart {cr.metadata.name})"
    )
    return VmPlan(tuple(actions), (Cond(RESTART_REQUIRED, True, "SpecChanged", message),))
