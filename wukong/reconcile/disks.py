"""Disks in one place: the rules (bus, serial, hot-plug form), the manifests (DataVolume,
PVC, VM disk and volume), provisioning and growth, and each disk's status. Pure.

Runtime attach/detach (hot-plug) lives in `hotplug.py` and the VM template in `vm.py`;
both take every disk rule from here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from wukong.api import JsonObj, names
from wukong.api.conditions import (
    FILESYSTEM_RESIZE_PENDING,
    VOLUMES_BOUND,
    VOLUMES_RESIZED,
    Cond,
)
from wukong.api.quantity import parse_quantity
from wukong.api.status import VolumeStatus
from wukong.api.v1alpha1 import DiskSpec, Wukong
from wukong.reconcile.actions import (
    Action,
    ChildKind,
    CreateChild,
    DeleteChild,
    ExpandDisk,
    PatchChild,
)
from wukong.reconcile.children import adopt_patch, child_metadata, owned_by, retained
from wukong.reconcile.observed import Observed

# DataVolume phases that mean "provisioning will go on once a VM uses the disk".
WAITS_FOR_CONSUMER = {"WaitForFirstConsumer", "PendingPopulation"}
# KubeVirt's limit on a disk serial; longer names get a truncated, hashed serial.
SERIAL_MAX = 36
SERIAL_HASH = 8


# --- the rules --------------------------------------------------------------------------


def disk_bus(disk: DiskSpec) -> str:
    """The bus of a disk, at boot and hot-plugged alike: always explicit (amd64 would default
    to sata, which cannot be hot-plugged); both buses the spec allows can be hot-plugged."""
    return disk.bus.value


def disk_serial(name: str) -> str:
    """The serial the guest sees, by which the guest agent names a mounted disk: the disk
    name when it fits KubeVirt's limit; else a prefix and a hash of the whole name, so two
    long names that share their beginning never share a serial."""
    if len(name) <= SERIAL_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:SERIAL_HASH]
    return f"{name[: SERIAL_MAX - SERIAL_HASH - 1]}-{digest}"


def is_hotpluggable(volume: JsonObj) -> bool:
    """Whether a VM template volume was hot-plugged (only those can be hot-unplugged)."""
    source = volume.get("dataVolume") or volume.get("persistentVolumeClaim") or {}
    return bool(source.get("hotpluggable"))


def template_volumes(vm: JsonObj | None) -> dict[str, JsonObj]:
    """The VM template's volumes by name."""
    spec = (vm or {}).get("spec", {}).get("template", {}).get("spec", {})
    return {v["name"]: v for v in spec.get("volumes") or [] if "name" in v}


def template_disks(vm: JsonObj | None) -> dict[str, JsonObj]:
    """The VM template's disk devices by name."""
    spec = (vm or {}).get("spec", {}).get("template", {}).get("spec", {})
    devices = spec.get("domain", {}).get("devices", {}).get("disks") or []
    return {d["name"]: d for d in devices if "name" in d}


def vm_disk(disk: DiskSpec, *, boot: bool = False) -> JsonObj:
    """The VM disk device, at boot or hot-plugged (`addvolume` takes the same one)."""
    device: JsonObj = {
        "name": disk.name,
        "disk": {"bus": disk_bus(disk)},
        "serial": disk_serial(disk.name),
    }
    if boot:
        device["bootOrder"] = 1
    return device


def volume_source(cr: Wukong, disk: DiskSpec, *, hotpluggable: bool = False) -> JsonObj:
    """The VM volume for a disk: a DataVolume when imported, else the PVC."""
    claim = names.disk_claim_name(cr.metadata.name, disk.name)
    source: JsonObj = {"name": claim} if disk.image else {"claimName": claim}
    if hotpluggable:
        source["hotpluggable"] = True
    key = "dataVolume" if disk.image else "persistentVolumeClaim"
    return {"name": disk.name, key: source}


# --- the claims -------------------------------------------------------------------------


def _storage(disk: DiskSpec) -> JsonObj:
    storage: JsonObj = {"resources": {"requests": {"storage": disk.size}}}
    if disk.storage_class_name:
        storage["storageClassName"] = disk.storage_class_name
    return storage


def build_data_volume(cr: Wukong, disk: DiskSpec) -> JsonObj:
    """A CDI DataVolume importing `disk.image` (docker:// registry or http(s) URL)."""
    image = disk.image or ""
    source = (
        {"registry": {"url": image}} if image.startswith("docker://") else {"http": {"url": image}}
    )
    claim = names.disk_claim_name(cr.metadata.name, disk.name)
    return {
        "apiVersion": f"{names.CDI_GROUP}/{names.CDI_VERSION}",
        "kind": "DataVolume",
        "metadata": child_metadata(cr, claim, **{names.LABEL_DISK: disk.name}),
        "spec": {"source": source, "storage": _storage(disk)},
    }


def build_pvc(cr: Wukong, disk: DiskSpec) -> JsonObj:
    """A blank PersistentVolumeClaim for a disk without an image."""
    spec: JsonObj = {
        "accessModes": ["ReadWriteOnce"],
        "volumeMode": "Filesystem",
        "resources": {"requests": {"storage": disk.size}},
    }
    if disk.storage_class_name:
        spec["storageClassName"] = disk.storage_class_name
    claim = names.disk_claim_name(cr.metadata.name, disk.name)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": child_metadata(cr, claim, **{names.LABEL_DISK: disk.name}),
        "spec": spec,
    }


# --- provisioning and growth ------------------------------------------------------------


@dataclass(frozen=True)
class Blocked:
    """Why a disk does not grow to the size the spec asks for."""

    disk: str
    reason: Literal["ExpansionNotSupported", "ExpansionRefused"]
    message: str


@dataclass(frozen=True)
class DiskPlan:
    """What the disk planner decided."""

    actions: tuple[Action, ...]
    volumes: tuple[VolumeStatus, ...]
    conditions: tuple[Cond, ...]
    ready: bool
    failed: str | None = None
    usable: frozenset[str] = frozenset()


def _capacity(pvc: JsonObj | None) -> str | None:
    if pvc is None:
        return None
    value = (pvc.get("status", {}).get("capacity") or {}).get("storage")
    return str(value) if value else None


def _requested(pvc: JsonObj) -> str | None:
    value = pvc.get("spec", {}).get("resources", {}).get("requests", {}).get("storage")
    return str(value) if value else None


def _binds_late(pvc: JsonObj | None, seen: Observed) -> bool:
    """A Pending PVC whose class binds only when a pod (the VM) uses it."""
    if pvc is None:
        return False
    sc = seen.storage_classes.get(pvc.get("spec", {}).get("storageClassName") or "")
    return bool(sc and sc.get("volumeBindingMode") == "WaitForFirstConsumer")


def _source_url(dv: JsonObj) -> str | None:
    """The image a DataVolume imports (registry or http source)."""
    source = dv.get("spec", {}).get("source") or {}
    for kind in ("registry", "http"):
        if url := (source.get(kind) or {}).get("url"):
            return str(url)
    return None


def _import_failure(dv: JsonObj) -> str | None:
    """CDI's message when an import failed (phase Failed, or retrying with an error)."""
    status = dv.get("status", {})
    running: JsonObj = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Running"), {}
    )
    if status.get("phase") == "Failed" or (
        running.get("status") == "False"
        and running.get("reason") not in (None, "", "Completed")
        and int(status.get("restartCount") or 0) > 0
    ):
        return str(running.get("message") or status.get("phase") or "import failed")
    return None


@dataclass(frozen=True)
class _Disk:
    """One disk's verdict: actions, status, what keeps it from being usable, growth."""

    actions: list[Action]
    volume: VolumeStatus
    problem: str | None
    blocked: Blocked | None = None


def _disk(cr: Wukong, disk: DiskSpec, seen: Observed, old: VolumeStatus | None) -> _Disk:
    claim = names.disk_claim_name(cr.metadata.name, disk.name)
    uid = cr.metadata.uid
    pvc = seen.claims.get(claim)
    dv = seen.data_volumes.get(claim) if disk.image else None
    volume = VolumeStatus(
        name=disk.name,
        pvc_name=claim,
        size=disk.size,
        bound=False,
        preserve_data=disk.detach.preserve_data,
        force_detach=disk.detach.force,
    )

    def at(phase: str, **more: object) -> VolumeStatus:
        return volume.model_copy(update={"phase": phase, **more})

    pairs: tuple[tuple[ChildKind, JsonObj | None], ...] = (
        ("DataVolume", dv),
        ("PersistentVolumeClaim", pvc),
    )
    adopt: list[Action] = [
        PatchChild(kind, claim, adopt_patch(cr, disk.name), "adopt a retained disk")
        for kind, obj in pairs
        if obj is not None and retained(obj)
    ]
    if adopt:  # a kept disk whose claim name this Wukong uses again: take it back
        return _Disk(adopt, at("Adopting"), "adopting the retained disk")
    message: str | None = None
    if disk.image:
        if dv is None:
            if pvc is not None and not owned_by(pvc, uid):
                return _Disk([], at("Conflict"), f"PVC '{claim}' exists, not ours")
            create = CreateChild("DataVolume", build_data_volume(cr, disk))
            return _Disk([create], at("Pending"), "being created")
        if not owned_by(dv, uid):
            return _Disk([], at("Conflict"), f"DataVolume '{claim}' is not ours")
        if dv.get("metadata", {}).get("deletionTimestamp"):
            return _Disk([], at("Replacing"), "the previous import is being removed")
        if _source_url(dv) not in (None, disk.image):
            if (dv.get("status") or {}).get("phase") != "Succeeded":
                # The way out of a failed import: the user fixes the image, we import again.
                again = DeleteChild("DataVolume", claim, dv["metadata"].get("uid"), foreground=True)
                return _Disk([again], at("Replacing"), "re-importing the new image")
            message = (
                f"image changed to {disk.image} after the import finished: the disk keeps its "
                "data; add a new disk to use the new image"
            )
        dv_status = dv.get("status", {})
        phase = str(dv_status.get("phase") or "Pending")
        failure = _import_failure(dv)
        if failure:
            failed = at("Failed", progress=dv_status.get("progress"), message=failure)
            return _Disk([], failed, failure)
        volume = volume.model_copy(
            update={"phase": phase, "progress": dv_status.get("progress"), "message": message}
        )
        done = phase == "Succeeded" or phase in WAITS_FOR_CONSUMER
    else:
        if pvc is None:
            create = CreateChild("PersistentVolumeClaim", build_pvc(cr, disk))
            return _Disk([create], at("Pending"), "being created")
        if not owned_by(pvc, uid):
            return _Disk([], at("Conflict"), f"PVC '{claim}' is not ours")
        phase = str(pvc.get("status", {}).get("phase") or "Pending")
        volume = volume.model_copy(update={"phase": phase})
        done = phase == "Bound" or _binds_late(pvc, seen)
    actions: list[Action] = []
    blocked: Blocked | None = None
    if pvc is not None:
        volume = volume.model_copy(
            update={
                "bound": pvc.get("status", {}).get("phase") == "Bound",
                "capacity": _capacity(pvc),
            }
        )
        actions, blocked, volume = _grow(disk, claim, pvc, seen, volume, old)
    return _Disk(actions, volume, None if done else phase, blocked)


def _grow(
    disk: DiskSpec,
    claim: str,
    pvc: JsonObj,
    seen: Observed,
    volume: VolumeStatus,
    old: VolumeStatus | None,
) -> tuple[list[Action], Blocked | None, VolumeStatus]:
    """Expand the PVC when the spec grew, unless its class cannot or the API refused this
    size already (`expansionRefused`, set from the failed call: not asked again until the
    spec asks for another size)."""
    requested = _requested(pvc)
    if not requested or parse_quantity(disk.size) <= parse_quantity(requested):
        return [], None, volume
    sc_name = pvc.get("spec", {}).get("storageClassName") or ""
    sc = seen.storage_classes.get(sc_name)
    if sc is not None and not sc.get("allowVolumeExpansion"):
        message = (
            f"cannot grow to {disk.size}: StorageClass '{sc_name}' does not allow volume expansion"
        )
        blocked = Blocked(disk.name, "ExpansionNotSupported", message)
        return [], blocked, volume.model_copy(update={"message": message})
    if old is not None and old.expansion_refused == disk.size:
        message = old.message or f"expansion to {disk.size} refused"
        blocked = Blocked(disk.name, "ExpansionRefused", message)
        kept = volume.model_copy(update={"message": message, "expansion_refused": disk.size})
        return [], blocked, kept
    return [ExpandDisk(claim, disk.size, disk.name)], None, volume


def resize_conditions(
    volumes: tuple[VolumeStatus, ...], blocked: list[Blocked], seen: Observed
) -> list[Cond]:
    """VolumesResized (only while a disk is not at its size) and FileSystemResizePending
    (only while a grown disk waits for the guest)."""
    pending_fs: list[str] = []
    resizing: list[str] = []
    for volume in volumes:
        pvc = seen.claims.get(str(volume.pvc_name))
        types = {
            c.get("type")
            for c in (pvc or {}).get("status", {}).get("conditions") or []
            if c.get("status") == "True"
        }
        if "FileSystemResizePending" in types:
            pending_fs.append(volume.name)
        elif "Resizing" in types:
            resizing.append(volume.name)
    conds: list[Cond] = []
    if blocked:
        unsupported = any(b.reason == "ExpansionNotSupported" for b in blocked)
        reason = "ExpansionNotSupported" if unsupported else "ExpansionRefused"
        conds.append(Cond(VOLUMES_RESIZED, False, reason, "; ".join(b.message for b in blocked)))
    elif resizing or pending_fs:
        message = "growing " + ", ".join(resizing + pending_fs)
        conds.append(Cond(VOLUMES_RESIZED, False, "Resizing", message))
    if pending_fs:
        message = (
            f"disk(s) {', '.join(pending_fs)} grew: grow the partition and filesystem "
            "inside the guest (e.g. growpart, then resize2fs or xfs_growfs)"
        )
        conds.append(Cond(FILESYSTEM_RESIZE_PENDING, True, "GrowInGuest", message))
    return conds


def plan_disks(cr: Wukong, seen: Observed, old: dict[str, VolumeStatus]) -> DiskPlan:
    """Create missing PVCs/DataVolumes, grow PVCs, and report each disk's state."""
    actions: list[Action] = []
    volumes: list[VolumeStatus] = []
    blocked: list[Blocked] = []
    waiting: list[str] = []
    failed: list[str] = []
    usable: set[str] = set()
    for disk in cr.spec.disks:
        one = _disk(cr, disk, seen, old.get(disk.name))
        actions += one.actions
        volumes.append(one.volume)
        if one.blocked is not None:
            blocked.append(one.blocked)
        if one.volume.phase == "Failed":
            failed.append(f"disk '{disk.name}': {one.problem}")
        elif one.problem:
            waiting.append(f"{disk.name} ({one.problem})")
        else:
            usable.add(disk.name)
    if failed:
        cond = Cond(VOLUMES_BOUND, False, "ImportFailed", "; ".join(failed))
    elif waiting:
        cond = Cond(VOLUMES_BOUND, False, "Provisioning", "waiting for " + ", ".join(waiting))
    else:
        cond = Cond(VOLUMES_BOUND, True, "AllBound", f"{len(volumes)} disk(s) ready")
    return DiskPlan(
        tuple(actions),
        tuple(volumes),
        (cond, *resize_conditions(tuple(volumes), blocked, seen)),
        ready=not waiting and not failed,
        failed="; ".join(failed) or None,
        usable=frozenset(usable),
    )
