"""The VirtualMachine: built from the spec, created once networks and disks are ready,
updated on spec change, with `RestartRequired` instead of a reboot behind the user's back."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wukong.api import JsonObj, names
from wukong.api.conditions import EVICTION_BLOCKED, RESTART_REQUIRED, Cond, find_condition
from wukong.api.guest import CLOUD_INIT_VOLUME
from wukong.api.objects import being_deleted
from wukong.api.status import NetworkStatus
from wukong.api.v1alpha1 import Wukong
from wukong.reconcile.access import (
    EMPTY_CLOUD_CONFIG,
    FIRST_BOOT_ONLY,
    access_credentials,
    cloud_init_volume,
    credentials_of,
    first_boot_words,
    secret_condition,
)
from wukong.reconcile.actions import Action, CreateChild, DeleteChild, Emit, PatchChild, uid_of
from wukong.reconcile.children import (
    labels,
    nad_of,
    network_pairs,
    owner_reference,
    pinned,
)
from wukong.reconcile.disks import (
    is_hotpluggable,
    template_disks,
    template_volumes,
    vm_disk,
    volume_source,
)
from wukong.reconcile.networks import NOTHING_WITHHELD, Withheld, given_macs
from wukong.reconcile.observed import Observed, condition_of, own_view
from wukong.reconcile.resources import (
    ANOTHER_CHANGE,
    Resize,
    migratable,
    plan_resize,
    plan_sized_by_instancetype,
    reason_not_migratable,
)
from wukong.reconcile.timefmt import parse_time


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


def _disks_and_volumes(
    cr: Wukong, seen: Observed, restarting: bool = False
) -> tuple[list[JsonObj], list[JsonObj]]:
    """Template disks and volumes: the system disk first. Disks already hot-plugged keep their
    hot-plug form; new disks of a running VM are left to the hot-plug planner (addvolume).
    `restarting`: this pass asks KubeVirt to restart the VM, after this template."""
    current = _current_volumes(seen.vm)
    running = seen.vmi is not None and not seen.vmi_ended
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
        wanted = vm_disk(disk, boot=disk.name == system.name)
        if existing is not None and (existing[1] or {}).get("serial") == (
            older := names.older_serial(disk.name)
        ):
            wanted["serial"] = older  # 0.1.0's, kept: the guest knows the disk by it
        disks.append(wanted)
        volumes.append(volume_source(cr, disk))
    if running:
        # Disks that left the spec stay until the hot-unplug planner (guest check first)
        # or the next boot removes them: a template edit must never yank a mounted disk.
        in_spec = {d.name for d in cr.spec.disks}
        for name, (volume, device) in current.items():
            if name not in in_spec:
                if restarting and not is_hotpluggable(volume):
                    # Attached at boot, it leaves at this restart: out of the template before
                    # the call, not after the VMI went. KubeVirt makes the new VMI from the
                    # template at once, and a patch after it went raced that (and lost it
                    # whenever the VM changed meanwhile: the patch holds only for the VM it
                    # was computed from): the new VMI kept the disk, RestartRequired again.
                    continue
                volumes.append(volume)
                if device is not None:
                    disks.append(device)
    return disks, volumes


def _domain(cr: Wukong, disks: list[JsonObj], interfaces: list[JsonObj]) -> JsonObj:
    """The domain: sized by cpu/memory, or left to the instancetype (KubeVirt refuses a VM
    whose template sets what its instancetype sets). With `hotplug` the vCPUs are sockets
    (what KubeVirt adds live) and the pod's memory request is KubeVirt's to derive from the
    guest memory and to raise on a hot-plug (a changed request would need a restart)."""
    domain: JsonObj = {"devices": {"disks": disks, "interfaces": interfaces}}
    domain.update(_without_none(sizing(cr)))
    return domain


def _without_none(obj: JsonObj) -> JsonObj:
    out: JsonObj = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            value = _without_none(value)
            if not value:
                continue
        if value is not None:
            out[key] = value
    return out


def _sizing_removals(current_domain: JsonObj, cr: Wukong) -> JsonObj:
    """Merge-patch nulls for the sizing leaves the spec no longer sets (a merge patch of the
    wanted template alone would keep them): e.g. maxSockets when hotplug is dropped."""
    wanted = sizing(cr)
    patch: JsonObj = {}
    for path in SIZING_LEAVES:
        if path[0] not in wanted or _dig(wanted, path) is not None:
            continue
        if _dig(current_domain, path) is None:
            continue
        node = patch
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = None
    return patch


# The domain fields `sizing` owns: a leaf it leaves out (None) is removed from the VM.
SIZING_LEAVES: tuple[tuple[str, ...], ...] = (
    ("cpu", "sockets"),
    ("cpu", "cores"),
    ("cpu", "threads"),
    ("cpu", "maxSockets"),
    ("memory", "guest"),
    ("memory", "maxGuest"),
    ("resources", "requests", "memory"),
)


def sizing(cr: Wukong) -> JsonObj:
    """cpu, memory and resources of the domain for cpu/memory (and hotplug); {} with an
    instancetype. A field left out is None, so that a patch removes it."""
    spec, plug = cr.spec, cr.spec.hotplug
    out: JsonObj = {}
    if spec.cpu is not None:
        if plug is None:
            out["cpu"] = {"cores": spec.cpu, "sockets": 1, "threads": 1, "maxSockets": None}
        else:
            out["cpu"] = {"sockets": spec.cpu, "cores": 1, "threads": 1, "maxSockets": plug.max_cpu}
    if spec.memory is not None:
        out["memory"] = {
            "guest": spec.memory,
            "maxGuest": plug.max_memory if plug is not None else None,
        }
        out["resources"] = {"requests": {"memory": spec.memory if plug is None else None}}
    return out


def placement(cr: Wukong) -> JsonObj:
    """nodeSelector, tolerations, affinity and evictionStrategy, as set in the spec."""
    spec = cr.spec
    out: JsonObj = {}
    if spec.node_selector:
        out["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        # A toleration's strings are omitempty (core/v1): KubeVirt's webhook stores the VM
        # without an empty one, and a template that kept it never covered the VM, patched
        # again on every pass (found in session 42 by spec_parity's seed 777).
        out["tolerations"] = [
            {k: v for k, v in t.to_wire().items() if v != ""} for t in spec.tolerations
        ]
    if spec.affinity is not None and spec.affinity.to_wire():
        out["affinity"] = spec.affinity.to_wire()
    if spec.eviction_strategy is not None:
        out["evictionStrategy"] = spec.eviction_strategy.value
    return out


def _left_out(cr: Wukong, vm: JsonObj | None, withheld: Withheld) -> frozenset[str]:
    """The networks the template does not name: the unsafe ones, and the absent ones but
    those the VM names already with the same NAD (its NAD gone or being made again: taking
    the network out would owe a restart)."""
    if not (withheld.unsafe or withheld.absent):
        return frozenset()
    template = ((vm or {}).get("spec") or {}).get("template") or {}
    has = {
        n.get("name"): (n.get("multus") or {}).get("networkName")
        for n in (template.get("spec") or {}).get("networks") or ()
    }
    kept = {n.name for n in cr.spec.networks if has.get(n.name, False) == nad_of(cr, n)}
    return withheld.unsafe | (withheld.absent - kept)


def _with_macs(
    cr: Wukong, seen: Observed, interfaces: list[JsonObj], restarting: bool = False
) -> list[JsonObj]:
    """`interfaces` with their MAC addresses (session 47). One the VM's template gives an
    interface stays (ours, or one KubeMacPool or an administrator set: the patch replaces
    the list whole, and dropping it would change the guest's address). An interface new to
    the template takes the one the running guest has under its name, if any (a network
    taken out and put back), else gets one `names.mac_address` derives; so does one already
    there without, but only while the VM is stopped for good: no VMI runs (KubeVirt compares
    a running VMI's interfaces with the template's, vmliveupdate/restart.go, and a MAC added
    would owe a restart) and its runStrategy (Halted, Manual) makes none by itself (under
    Always KubeVirt makes the next VMI at once, and a patch landing after it would owe one),
    or when this pass restarts it (`restarting`: the patch lands before the restart call, and
    the next VMI is made from it; session 48). Only networks `given_macs` says: the pod
    network keeps KubeVirt's."""
    template = _dig(seen.vm, ("spec", "template", "spec", "domain", "devices", "interfaces"))
    live = None if seen.vmi is None or seen.vmi_ended else seen.vmi
    stopped = restarting or (live is None and seen.run_strategy in ("Halted", "Manual"))
    guest = _by_name(_dig(live, ("spec", "domain", "devices", "interfaces")))
    current = _by_name(template)
    used = {
        str(i["macAddress"]).lower()
        for i in (*current.values(), *guest.values())
        if i.get("macAddress")
    }
    given = given_macs(cr, seen)
    slots = (names.mac_address(cr.metadata.uid, slot) for slot in itertools.count())
    out = []
    for iface in interfaces:
        name = iface["name"]
        mac = (current.get(name) or {}).get("macAddress")
        if not mac and name in given and (name not in current or stopped):
            mac = (guest.get(name) or {}).get("macAddress") if name not in current else None
            mac = mac or next(m for m in slots if m not in used)
            used.add(str(mac).lower())
        out.append({**iface, "macAddress": mac} if mac else iface)
    return out


def desired_template(
    cr: Wukong, seen: Observed, restarting: bool = False, withheld: Withheld = NOTHING_WITHHELD
) -> JsonObj:
    """The VM's `spec.template` for this spec (`restarting`: as a restart this pass gets it;
    `withheld`: networks whose NAD the VM may not be given, as the network planner says)."""
    interfaces, networks = network_pairs(cr, _left_out(cr, seen.vm, withheld))
    interfaces = _with_macs(cr, seen, interfaces, restarting)
    disks, volumes = _disks_and_volumes(cr, seen, restarting)
    cloud_init = cloud_init_volume(cr.spec)
    if cloud_init is not None:
        disks.append(cloud_init[0])
        volumes.append(cloud_init[1])
    vm = names.vm_name(cr.metadata.name)
    spec: JsonObj = {
        "domain": _domain(cr, disks, interfaces),
        "networks": networks,
        "volumes": volumes,
        **placement(cr),
    }
    if credentials := access_credentials(cr.spec):
        spec["accessCredentials"] = credentials
    return {"metadata": {"labels": labels(cr) | {"kubevirt.io/vm": vm}}, "spec": spec}


def size_refs(cr: Wukong) -> JsonObj:
    """The VM's `instancetype` and `preference` matchers, as set in the spec."""
    out: JsonObj = {}
    if cr.spec.instancetype is not None:
        out["instancetype"] = cr.spec.instancetype.to_wire()
    if cr.spec.preference is not None:
        out["preference"] = cr.spec.preference.to_wire()
    return out


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
        "spec": {
            "runStrategy": run_strategy,
            "template": desired_template(cr, seen),
            **size_refs(cr),
        },
    }


def covers(current: Any, desired: Any) -> bool:
    """Every field `desired` sets has that value in `current`: we compare only the fields we
    set (KubeVirt's webhooks add defaults we must not fight). Lists match item by item."""
    # Loops, not all() over generators, and equal subtrees settled by one C-speed ==: every
    # pass compares the whole VM this way, and this way is ten times faster (50 -> 5 us).
    if isinstance(desired, dict) and isinstance(current, dict):
        if current == desired:
            return True
        found = current.get
        for key, value in desired.items():
            if not covers(found(key), value):
                return False
        return True
    if isinstance(desired, list) and isinstance(current, list) and len(desired) == len(current):
        for have, want in zip(current, desired, strict=True):
            if not covers(have, want):
                return False
        return True
    return bool(current == desired)


# Fields of a running VMI that change only on reboot, with words for the condition message.
# nodeSelector, affinity and tolerations are not here: under KubeVirt's LiveUpdate rollout
# strategy virt-controller patches them into the running VMI (vm.go handleAffinityChange-
# Request, handleTolerationsChangeRequest).
# cpu and memory are resources.py's: KubeVirt hot-plugs them when it can.
# Interfaces and networks are compared by name (`_network_changes`), as KubeVirt does.
REBOOT_FIELDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("evictionStrategy",), "evictionStrategy"),
)
MIGRATION_REQUIRED = "MigrationRequired"
# Template fields the operator owns outright: a key the spec dropped is removed from the VM.
OWNED_TEMPLATE_FIELDS = ("nodeSelector", "tolerations", "affinity", "evictionStrategy")
# KubeVirt records the instance type a VMI was started with in these annotations.
_INSTANCETYPE_ANNOTATIONS = {
    "VirtualMachineClusterInstancetype": "kubevirt.io/cluster-instancetype-name",
    "VirtualMachineInstancetype": "kubevirt.io/instancetype-name",
}
_PREFERENCE_ANNOTATIONS = {
    "VirtualMachineClusterPreference": "kubevirt.io/cluster-preference-name",
    "VirtualMachinePreference": "kubevirt.io/preference-name",
}


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


# No cloud-init disk gives the guest what one with an empty cloud-config would: the disk
# that carries noCloud keys alone (access.EMPTY_CLOUD_CONFIG) is no change to cloudInit.
_NO_CLOUD_INIT = {"name": CLOUD_INIT_VOLUME, "cloudInitNoCloud": {"userData": EMPTY_CLOUD_CONFIG}}


def _cloud_init(spec: JsonObj) -> Any:
    volumes = spec.get("volumes") or []
    return next((v for v in volumes if v.get("name") == CLOUD_INIT_VOLUME), _NO_CLOUD_INIT)


def _size_changes(cr: Wukong, vmi: JsonObj) -> list[str]:
    """instancetype/preference names differing from those the VMI was started with (KubeVirt
    writes the annotations when it makes a VMI only: pkg/instancetype/controller/vm
    annotations.Set, from setupVMIFromVM)."""
    notes = vmi.get("metadata", {}).get("annotations") or {}
    changed = []
    for field, ref, kinds in (
        ("instancetype", cr.spec.instancetype, _INSTANCETYPE_ANNOTATIONS),
        ("preference", cr.spec.preference, _PREFERENCE_ANNOTATIONS),
    ):
        started = {kind: notes[a] for kind, a in kinds.items() if a in notes}
        want = {ref.kind.value: ref.name} if ref is not None else {}
        if started != want:
            changed.append(field)
    return changed


def restart_required(
    template_spec: JsonObj,
    vmi: JsonObj | None,
    cr: Wukong | None = None,
    vm: JsonObj | None = None,
) -> list[str]:
    """What the running VMI lacks from the template and only a restart applies."""
    return [field for field, _ in restart_reasons(template_spec, vmi, cr, vm)[0]]


def restart_reasons(
    template_spec: JsonObj,
    vmi: JsonObj | None,
    cr: Wukong | None = None,
    vm: JsonObj | None = None,
) -> tuple[list[tuple[str, str]], Resize]:
    """(field, why) pairs only a restart applies, in order, and the cpu/memory verdict. A
    change cloud-init applies at the VM's first boot only has why FIRST_BOOT_ONLY: the VM
    owes a restart for it (KubeVirt says so too, and applies nothing live meanwhile), which
    brings the guest the new data but not what cloud-init does once per instance."""
    if vmi is None:
        return [], Resize()
    running = vmi.get("spec", {})
    changed: list[str] = ["networks"] if _network_changes(template_spec, running) else []
    for path, words in REBOOT_FIELDS:
        want = _dig(template_spec, path)
        if want is not None and not covers(_dig(running, path), want) and words not in changed:
            changed.append(words)
    # Compared whole, absence included: removing keys from the spec needs a restart too.
    # The guest agent's keys come with the VMI (its Secrets are mounted in its pod); what
    # cloud-init gives, a restart hands the guest, which takes it at first boot only.
    if not covers(credentials_of(running, agent=True), credentials_of(template_spec, agent=True)):
        changed.append("sshKeys")
    first_boot = []
    # Whole, as KubeVirt compares templates: `networkData` dropped beside a kept `userData`
    # is a change that `covers` (the spec's keys only) would not see.
    if _cloud_init(running) != _cloud_init(template_spec):
        first_boot.append("cloudInit")
    if not covers(credentials_of(running, agent=False), credentials_of(template_spec, agent=False)):
        first_boot.append("sshKeys (noCloud)")
    # A new instancetype or preference is no restart of its own: KubeVirt expands both VM
    # specs and copies the live fields over (vm.go addRestartRequiredIfNeeded), and hot-plugs
    # the CPUs and memory (handleCPUChangeRequest, handleMemoryHotplugRequest); what it cannot
    # apply live it says in its own RestartRequired, passed on below. Only a VMI that cannot
    # migrate has its new one held back in the spec (`_size_patch`), for its restart.
    sizes_held = _size_changes(cr, vmi) if cr is not None and not migratable(vmi) else []
    kubevirt_says = _kubevirt_restart(vm)
    # KubeVirt applies nothing live while the VM owes a restart (vm.go: handle*Request run
    # only without RestartRequired).
    # Held by KubeVirt's own word alone, that word is the reason: the change itself may be
    # what KubeVirt refused live (memory not in 2Mi steps, a cluster without LiveUpdate).
    held = bool(changed or first_boot)
    resize = plan_resize(
        template_spec,
        vmi,
        held=held or kubevirt_says is not None,
        because=ANOTHER_CHANGE if held or kubevirt_says is None else kubevirt_says,
    )
    reasons = [(field, "") for field in changed]
    reasons += [(field, FIRST_BOOT_ONLY) for field in first_boot]
    if "networks" not in changed and (undelivered := _undelivered_networks(vmi)):
        reasons.append(("networks", _undelivered_words(undelivered)))
    dropped = _dropped_eviction(template_spec, vmi, cr, vm)
    if dropped:
        reasons.append(("evictionStrategy", "removed from the spec: the cluster's default applies"))
    reasons += [r for r in resize.restart if r[0] not in changed]
    reasons += [(field, _held_size_words(vmi)) for field in sizes_held]
    if cr is not None and cr.spec.instancetype is not None:
        resize = _with_live(resize, plan_sized_by_instancetype(vmi, cr.spec.instancetype.name))
    if not reasons and kubevirt_says is not None:
        # KubeVirt owes a restart for a field none of the above explains (or for one changed
        # back: its RestartRequired stays until the next start): pass its word on.
        reasons.append(("the VM template", kubevirt_says))
    if changed or first_boot or dropped or kubevirt_says is not None:
        sized = cr is not None and cr.spec.instancetype is not None
        reasons += [(f, PLACEMENT_HELD) for f in placement_behind(template_spec, vmi, sized)]
    return reasons, resize


PLACEMENT_FIELDS = ("nodeSelector", "affinity", "tolerations")
PLACEMENT_HELD = (
    "KubeVirt applies no placement to the running VM while it owes a restart, and a "
    "migration's target pod is placed by the running VM's"
)


def placement_behind(template_spec: JsonObj, vmi: JsonObj, sized: bool = False) -> list[str]:
    """The placement fields of the template the running VMI does not have. KubeVirt copies
    them into the VMI under LiveUpdate (vm.go handleAffinityChangeRequest, handleTolerations-
    ChangeRequest), but not while the VM owes a restart, and a migration's target pod is
    rendered from the VMI's (services/template.go renderLaunchManifest): the VM lands where
    the old ones say (found by a source audit, session 47). `sized`: an instancetype may add
    nodeSelector keys to the VMI (pkg/instancetype/apply/nodeselector.go), so only the keys
    the template sets are compared then."""
    running = vmi.get("spec") or {}
    behind = []
    for field in PLACEMENT_FIELDS:
        want, have = template_spec.get(field) or None, running.get(field) or None
        if field == "nodeSelector" and sized:
            same = covers(have or {}, want or {})
        else:
            same = want == have
        if not same:
            behind.append(field)
    return behind


def _held_size_words(vmi: JsonObj) -> str:
    """Why a new instancetype or preference waits for a restart: the VMI cannot migrate."""
    why = reason_not_migratable(vmi)
    return (
        f"KubeVirt applies a new size to a running VM through a live migration, which this VM "
        f"cannot have ({why}): it waits in the spec until a restart (written into the VM, "
        "KubeVirt would shut the VM down where its CR's workloadUpdateMethods include Evict)"
    )


def _with_live(resize: Resize, more: Resize) -> Resize:
    """`resize` and the live change `more` reports, when `resize` reports none."""
    if resize.live or not more.live:
        return resize
    return Resize(resize.restart, more.live, more.stage, more.detail)


def _by_name(items: Any) -> dict[str, JsonObj]:
    return {str(i.get("name")): i for i in items or [] if isinstance(i, dict)}


def _hot_pluggable(interface: JsonObj) -> bool:
    """An interface KubeVirt plugs into a running VMI by itself (virt-controller's network
    sync, controllers/vm.go applyDynamicIfaceRequestOnVMI): bridge or SR-IOV, not absent."""
    return interface.get("state") != "absent" and ("bridge" in interface or "sriov" in interface)


def _network_changes(template_spec: JsonObj, running: JsonObj) -> bool:
    """Whether the VM's interfaces or networks differ from the running VMI's in a way only
    a restart applies, by name as KubeVirt compares them (vmliveupdate/restart.go): one
    removed or changed. One added is plugged in by KubeVirt when it is a bridge or SR-IOV
    interface (appended to the VMI, so order never counts), else waits for a restart. The
    operator compared the lists item by item: a network inserted before others, or KubeVirt's
    plug not yet landed, read as a restart owed (network audit, session 41)."""
    want_ifaces = _by_name(_dig(template_spec, ("domain", "devices", "interfaces")))
    have_ifaces = _by_name(_dig(running, ("domain", "devices", "interfaces")))
    want_nets, have_nets = (
        _by_name(template_spec.get("networks")),
        _by_name(running.get("networks")),
    )
    for name, have in have_ifaces.items():
        if name not in want_ifaces or not covers(have, want_ifaces[name]):
            return True
    for name, have in have_nets.items():
        if name not in want_nets or not covers(have, want_nets[name]):
            return True
    added = [i for name, i in want_ifaces.items() if name not in have_ifaces]
    return any(not _hot_pluggable(i) for i in added)


def _undelivered_networks(vmi: JsonObj) -> list[str]:
    """The networks KubeVirt plugged into the running VMI but not into its guest, when it
    says so (the VMI's MigrationRequired: the cluster has no dynamic-networks controller to
    plug the NIC in place, evaluator.go)."""
    if (condition_of(vmi, MIGRATION_REQUIRED) or {}).get("status") != "True":
        return []
    reported = {i.get("name") for i in (vmi.get("status") or {}).get("interfaces") or []}
    interfaces = _dig(vmi, ("spec", "domain", "devices", "interfaces")) or []
    return [
        str(i.get("name"))
        for i in interfaces
        if i.get("state") != "absent" and i.get("name") not in reported
    ]


def _undelivered_words(names_: list[str]) -> str:
    return (
        f"{', '.join(names_)} plugged into the running VM, not into its guest: KubeVirt "
        "delivers a new network by a live migration (MigrationRequired), which it starts "
        "itself when the VM can migrate; or restart it"
    )


RESCHEDULING = (
    "the VM's pod, waiting for a node, was made before the spec changed and keeps what it "
    "was made with: its VMI is made again from the VM as it is now"
)


def _unscheduled_behind(seen: Observed) -> str | None:
    """The uid of a VMI no node took that was made before the VM template's latest change,
    under runStrategy Always (KubeVirt makes it again at once); else None. KubeVirt patches
    a new nodeSelector, affinity or tolerations into such a VMI (vm.go
    handleAffinityChangeRequest), but its launcher pod, waiting to be scheduled, keeps the
    old ones, and no restart is asked: the user fixed the selector and the VM stayed
    unschedulable (guest-access and placement audit, session 41). No guest runs in it, so
    nothing is lost by making it again."""
    vmi, vm = seen.vmi, seen.vm
    if vmi is None or vm is None or being_deleted(vmi):
        return None
    status = vmi.get("status") or {}
    if status.get("nodeName") or status.get("phase") not in ("Pending", "Scheduling"):
        return None
    scheduled = condition_of(vmi, "PodScheduled") or {}
    if (scheduled.get("status"), scheduled.get("reason")) != ("False", "Unschedulable"):
        return None
    if (vm.get("spec") or {}).get("runStrategy") != "Always":
        return None
    made = vm.get("status") or {}
    if int(made.get("desiredGeneration") or 0) <= int(made.get("observedGeneration") or 0):
        return None
    uid = (vmi.get("metadata") or {}).get("uid")
    return str(uid) if uid else None


def _kubevirt_restart(vm: JsonObj | None) -> str | None:
    """KubeVirt's own RestartRequired message on the VM, when it says so."""
    for cond in _dig(vm, ("status", "conditions")) or []:
        if cond.get("type") == RESTART_REQUIRED and cond.get("status") == "True":
            return str(cond.get("message") or "")
    return None


def _dropped_eviction(
    template_spec: JsonObj, vmi: JsonObj, cr: Wukong | None, vm: JsonObj | None
) -> bool:
    """An evictionStrategy dropped from the spec while this VMI runs. The VMI alone cannot
    tell: KubeVirt writes the cluster's default into every VMI. So it is seen when the
    operator drops it from the VM template (the VM still has it), and remembered through the
    RestartRequired this operator wrote for this same VMI since."""
    if "evictionStrategy" in template_spec or vmi.get("spec", {}).get("evictionStrategy") is None:
        return False
    if _dig(vm, ("spec", "template", "spec", "evictionStrategy")) is not None:
        return True
    prior = find_condition(cr.status.conditions, RESTART_REQUIRED) if cr is not None else None
    started = parse_time(vmi.get("metadata", {}).get("creationTimestamp"))
    return (
        prior is not None
        and prior.is_true
        and "evictionStrategy" in prior.message
        and (started is None or prior.last_transition_time >= started)
    )


def _template_patch(current: JsonObj | None, template: JsonObj, cr: Wukong) -> JsonObj | None:
    """The merge patch that brings the VM template in line, or None when it is.

    A merge patch merges maps: fields the operator owns outright are diffed, so a node
    selector key (or a whole field) the spec dropped is removed, not left behind."""
    current_spec = (current or {}).get("spec") or {}
    owned = {k: _diff(current_spec.get(k), template["spec"].get(k)) for k in OWNED_TEMPLATE_FIELDS}
    owned = {k: v for k, v in owned.items() if v is not _SAME}
    removals = _sizing_removals(current_spec.get("domain") or {}, cr)
    if covers(current, template) and not owned and not removals:
        return None
    domain = _merged(template["spec"]["domain"], removals)
    return template | {"spec": template["spec"] | owned | {"domain": domain}}


def _merged(base: JsonObj, extra: JsonObj) -> JsonObj:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


_SAME: Any = object()


def _diff(old: Any, new: Any) -> Any:
    """RFC 7386: the patch turning `old` into `new`, or _SAME when they are equal."""
    if old == new:
        return _SAME
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch = {k: None for k in old if k not in new}
    for key, value in new.items():
        part = _diff(old.get(key), value)
        if part is not _SAME:
            patch[key] = part
    return patch


def _size_patch(cr: Wukong, vm: JsonObj, vmi: JsonObj | None) -> JsonObj:
    """instancetype/preference matchers to set, change (dropping the old revision) or drop.
    Not while a VMI that cannot migrate runs (`vmi`): KubeVirt would copy the new sockets
    into it all the same (vm.go handleCPUChangeRequest expands the instancetype), and only a
    live migration brings them to the guest; its workload updater evicts a VMI it cannot
    migrate where the KubeVirt CR lists Evict, a shutdown the user did not ask for. As
    `_sockets_held` for `cpu` (found by a source audit, session 47): the matchers are
    written with the restart that applies them, or once no VMI runs."""
    patch: JsonObj = {}
    if vmi is not None and not migratable(vmi):
        return patch
    wanted = size_refs(cr)
    for field in ("instancetype", "preference"):
        current, want = vm.get("spec", {}).get(field), wanted.get(field)
        if want is None and current is not None:
            patch[field] = None
        elif want is not None and not covers(current, want):
            patch[field] = want | {"revisionName": None}
    return patch


def _nads_changed_since(seen: Observed, networks: Sequence[NetworkStatus]) -> list[str]:
    """Networks whose NAD the operator changed after the running VMI's pod took it in:
    Multus reads a NAD when a pod starts, so that pod keeps the old bridge, VLAN or MTU until
    KubeVirt makes a new one (a restart, or a live migration's target). The VM's template
    does not change (the same NAD name), and KubeVirt says nothing."""
    vmi = None if seen.vmi_ended else seen.vmi
    if vmi is None:
        return []
    uid = vmi.get("metadata", {}).get("uid")
    state = vmi.get("status", {}).get("migrationState") or {}
    moved = None
    if state.get("completed") and not state.get("failed"):
        moved = parse_time(state.get("startTimestamp"))  # its target pod was made before
    return [
        n.name
        for n in networks
        if n.changed_under is not None
        and n.changed_under == uid
        and not (moved is not None and n.config_changed is not None and moved > n.config_changed)
    ]


def _sockets_held(template: JsonObj, vmi: JsonObj | None) -> JsonObj:
    """`template` with the running VMI's sockets while that VMI cannot migrate (found by a
    source audit, session 42). KubeVirt copies a new socket count into the VMI whether it can
    migrate or not (vm.go handleCPUChangeRequest), and only a live migration brings it to the
    guest: the workload updater evicts a VMI it cannot migrate where the KubeVirt CR lists
    Evict (workload-updater.go getUpdateData), a shutdown the user did not ask for, and the
    VMI keeps HotVCPUChange for good otherwise. The count the spec asks is written with the
    restart that applies it (`restarting`), or once no VMI runs (a stop, a crash)."""
    running = _dig(vmi, ("spec", "domain", "cpu")) if vmi is not None else None
    if not isinstance(running, dict) or running.get("maxSockets") is None:
        return template  # not hot-pluggable: KubeVirt copies nothing, it says RestartRequired
    wanted = _dig(template, ("spec", "domain", "cpu"))
    if not isinstance(wanted, dict) or wanted.get("sockets") in (None, running.get("sockets")):
        return template
    if vmi is None or migratable(vmi):
        return template
    spec = template["spec"]
    domain = {**spec["domain"], "cpu": {**wanted, "sockets": running.get("sockets")}}
    return {**template, "spec": {**spec, "domain": domain}}


def name_taken(cr: Wukong, seen: Observed) -> str:
    """SpecValid's words when the Wukong's VM name is a VirtualMachine it does not own, or a
    VirtualMachineInstance no VM controls (`own_view`)."""
    vm = names.vm_name(cr.metadata.name)
    if seen.foreign_vm is None:
        return (
            f"VirtualMachineInstance '{vm}' exists, made without a VirtualMachine and not "
            f"labelled this Wukong's: {cr.metadata.name}'s VM is not made, since KubeVirt "
            "would take that guest into it (and stop it with it); rename this Wukong or "
            "remove that VirtualMachineInstance"
        )
    return (
        f"VirtualMachine '{vm}' exists and this Wukong does not own it: nothing is done to "
        f"that VM (no stop, start, migration or disk), and {cr.metadata.name}'s own VM is not "
        "made; rename this Wukong or remove that VirtualMachine (one left by "
        "`kubectl delete wukong --cascade=orphan` is not taken back)"
    )


def plan_vm(
    cr: Wukong,
    seen: Observed,
    *,
    ready: bool,
    run_strategy: str,
    networks: Sequence[NetworkStatus] = (),
    withheld: Withheld = NOTHING_WITHHELD,
    restarting: bool = False,
) -> VmPlan:
    """Create the VM when children are ready; keep its template in line with the spec.
    `networks`: as the network planner says them now (when their NADs changed); `withheld`:
    networks the VM may not be given (yet); `restarting`: this pass asks KubeVirt to restart
    the VM (its call comes after this plan's patch)."""
    vm_name = names.vm_name(cr.metadata.name)
    seen = own_view(seen, cr)
    if seen.name_taken:
        return VmPlan((), (), conflict=name_taken(cr, seen))
    secrets = secret_condition(cr.spec, seen)
    extra = (secrets,) if secrets is not None else ()
    if seen.vm is None:
        # A NAD made this pass is not yet seen to be ours: the VM is made with it next pass.
        if not ready or withheld.absent:
            return VmPlan((), extra)
        return VmPlan((CreateChild("VirtualMachine", build_vm(cr, seen, run_strategy)),), extra)
    actions: list[Action] = []
    # An ended VMI (Manual leaves it until the next start) runs nothing a restart could fix.
    live_vmi = None if seen.vmi_ended else seen.vmi
    template = desired_template(cr, seen, restarting, withheld)
    written = template if restarting else _sockets_held(template, live_vmi)
    patch = _size_patch(cr, seen.vm, None if restarting else live_vmi)
    if (body := _template_patch(seen.vm.get("spec", {}).get("template"), written, cr)) is not None:
        patch["template"] = body
    if patch:
        # Pinned to the VM as the cache shows it: the patch replaces `volumes`, `disks` and
        # `interfaces` whole, and a volume virt-api put in the template meanwhile (a hot-plug,
        # ours or a user's) must not be dropped by a list computed before it came (409: the
        # pass is made again from the newer VM).
        body = pinned({"spec": patch}, seen.vm)
        changed = PatchChild("VirtualMachine", vm_name, body, "spec changed", uid=uid_of(seen.vm))
        actions.append(changed)
    if (waiting := _unscheduled_behind(seen)) is not None:
        delete = DeleteChild("VirtualMachineInstance", vm_name, waiting)
        actions += [delete, Emit("Normal", "Rescheduling", RESCHEDULING, after=(delete,))]
    reasons, resize = restart_reasons(template["spec"], live_vmi, cr, seen.vm)
    if stale := _nads_changed_since(seen, networks):
        said = ", ".join(stale)
        reasons.append(
            ("networks", f"the NAD of {said} changed after the VM's pod took it in (Multus reads "
             "a NAD when a pod starts): a restart or a live migration applies it")
        )  # fmt: skip
    if (live := resize.condition) is not None:
        extra = (live, *extra)
    if (blocked := eviction_blocked(live_vmi)) is not None:
        extra = (*extra, blocked)
    if not reasons:  # RestartRequired is there only while a restart is owed
        return VmPlan(tuple(actions), extra)
    return VmPlan(tuple(actions), (_restart_condition(cr, reasons), *extra))


def eviction_blocked(vmi: JsonObj | None) -> Cond | None:
    """EvictionBlocked while the running VMI's evictionStrategy (the spec's, or the cluster
    default KubeVirt writes into every VMI: defaults.go) is LiveMigrate and KubeVirt says it
    cannot migrate. Its pod-eviction webhook then answers every eviction of the VM's pod with
    429 (pod-eviction-admitter.go: "configured with an eviction strategy but is not
    live-migratable"), which `kubectl drain` retries for good; KubeVirt's only other word is
    a Prometheus alert (VMCannotBeEvicted). Found by a source audit, session 47: the default
    ReadWriteOnce disks make it the usual case, and the Wukong said nothing."""
    if vmi is None or (vmi.get("spec") or {}).get("evictionStrategy") != "LiveMigrate":
        return None
    if (vmi.get("status") or {}).get("phase") != "Running" or migratable(vmi):
        return None
    node = (vmi.get("status") or {}).get("nodeName") or "its node"
    return Cond(
        EVICTION_BLOCKED,
        True,
        "NotLiveMigratable",
        f"evictionStrategy LiveMigrate, but KubeVirt cannot live-migrate this VM "
        f"({reason_not_migratable(vmi)}): a drain of {node} waits for it until it stops; use "
        "ReadWriteMany disks, or evictionStrategy LiveMigrateIfPossible or None",
    )


def _restart_condition(cr: Wukong, reasons: list[tuple[str, str]]) -> Cond:
    """RestartRequired for these reasons: `SpecChanged` when a restart applies one, else
    `FirstBootOnly`, whose words say what a restart does not do (found by a source audit,
    session 46: "restart it to apply" a cloudInit change, and the restart applied nothing)."""
    name, namespace = cr.metadata.name, cr.metadata.namespace
    owed = [(field, text) for field, text in reasons if text != FIRST_BOOT_ONLY]
    first_boot = [field for field, text in reasons if text == FIRST_BOOT_ONLY]
    said = []
    if owed:
        fields = ", ".join(dict.fromkeys(field for field, _ in owed))
        why = "; ".join(f"{field}: {text}" for field, text in owed if text)
        said.append(
            f"{fields} changed while the VM runs: restart it to apply "
            f"({names.command('restart', name, namespace)})" + (f" ({why})" if why else "")
        )
    if first_boot:
        said.append(first_boot_words(", ".join(first_boot), name, namespace))
    reason = "SpecChanged" if owed else FIRST_BOOT_ONLY
    return Cond(RESTART_REQUIRED, True, reason, "; ".join(said))
