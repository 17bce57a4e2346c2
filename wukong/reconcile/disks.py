"""Disks: a DataVolume per image disk, a PVC per blank disk, expansion, and their status."""

from __future__ import annotations

from dataclasses import dataclass

from wukong.api import names
from wukong.api.quantity import parse_quantity
from wukong.api.v1alpha1 import DiskSpec, Wukong
from wukong.reconcile.actions import (
    Action,
    ChildKind,
    CreateChild,
    DeleteChild,
    ExpandDisk,
    PatchChild,
)
from wukong.reconcile.children import (
    adopt_patch,
    build_data_volume,
    build_pvc,
    owned_by,
    retained,
)
from wukong.reconcile.conditions import Cond
from wukong.reconcile.observed import JsonObj, Observed

VOLUMES_BOUND = "VolumesBound"
RESIZE = "VolumesResized"
# A claim name this Wukong derives belongs to another object (another Wukong's disk, a user's
# PVC): a clash between Wukongs, reported as such (like NADConflict for networks).
CLAIM_CONFLICT = "ClaimConflict"
STORAGE_CLASS_NOT_FOUND = "StorageClassNotFound"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
# DataVolume phases that mean "provisioning will go on once a VM uses the disk".
WAITS_FOR_CONSUMER = {"WaitForFirstConsumer", "PendingPopulation"}


@dataclass(frozen=True)
class DiskPlan:
    """What the disk planner decided."""

    actions: tuple[Action, ...]
    volumes: tuple[JsonObj, ...]
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


def _owner_words(obj: JsonObj) -> str:
    """Who holds a claim that is not ours, in words: "Wukong 'x'", or "someone else"."""
    meta = obj.get("metadata", {})
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == names.KIND and ref.get("name"):
            return f"Wukong '{ref['name']}'"
    labels = meta.get("labels") or {}
    if holder := labels.get(names.LABEL_WUKONG) or labels.get(names.LABEL_RETAINED_FROM):
        return f"Wukong '{holder}'"
    return "someone else (not this Wukong)"


def _conflict(kind: str, claim: str, obj: JsonObj) -> str:
    return f"{kind} '{claim}' already belongs to {_owner_words(obj)}"


def storage_problem(disk: DiskSpec, claim: JsonObj | None, seen: Observed) -> str | None:
    """Why the claim of `disk` cannot be provisioned as things stand: its StorageClass does
    not exist, or it names none and the cluster has no default. None when that is not it."""
    spec = (claim or {}).get("spec") or {}
    wanted = disk.storage_class_name or spec.get("storageClassName")
    if wanted:
        if wanted in seen.storage_classes:
            return None
        known = ", ".join(sorted(seen.storage_classes)) or "none"
        return (
            f"StorageClass '{wanted}' does not exist (classes in the cluster: {known}): create "
            "it, or replace the disk with one whose storageClassName exists"
        )
    defaults = [
        sc
        for sc in seen.storage_classes.values()
        if (sc.get("metadata", {}).get("annotations") or {}).get(DEFAULT_CLASS) == "true"
    ]
    if defaults:
        return None
    known = ", ".join(sorted(seen.storage_classes)) or "none"
    return (
        "the disk names no storageClassName and the cluster has no default StorageClass "
        f"(classes: {known}): set storageClassName, or mark a class as the default"
    )


def _stuck(disk: DiskSpec, pvc: JsonObj | None, seen: Observed) -> str | None:
    """`storage_problem` for a claim that exists and is Pending (one being created, or
    importing, is not stuck on its class)."""
    if pvc is None or (pvc.get("status") or {}).get("phase", "Pending") != "Pending":
        return None
    return storage_problem(disk, pvc, seen)


def _pending_words(disk: DiskSpec, claim: JsonObj | None, seen: Observed) -> str:
    """What a Pending claim waits for, with what it asks: size, class and provisioner."""
    spec = (claim or {}).get("spec") or {}
    name = disk.storage_class_name or spec.get("storageClassName")
    sc = seen.storage_classes.get(name or "")
    provisioner = f", provisioner {sc.get('provisioner')}" if sc and sc.get("provisioner") else ""
    where = f"StorageClass '{name}'{provisioner}" if name else "the default StorageClass"
    return f"Pending: {disk.size} from {where} not provisioned yet"


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


def _disk(
    cr: Wukong, disk: DiskSpec, seen: Observed, old: JsonObj
) -> tuple[list[Action], JsonObj, str | None]:
    """(actions, volume status, problem) for one disk; problem None means usable."""
    claim = names.disk_claim_name(cr.metadata.name, disk.name)
    uid = cr.metadata.uid
    pvc = seen.claims.get(claim)
    dv = seen.data_volumes.get(claim) if disk.image else None
    volume: JsonObj = {
        "name": disk.name,
        "pvcName": claim,
        "size": disk.size,
        "bound": False,
        "preserveData": disk.detach.preserve_data,
        "forceDetach": disk.detach.force,
    }
    actions: list[Action] = []
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
        return adopt, volume | {"phase": "Adopting"}, "adopting the retained disk"
    if disk.image:
        if dv is None:
            if pvc is not None and not owned_by(pvc, uid):
                return [], volume | {"phase": "Conflict"}, _conflict("PVC", claim, pvc)
            actions.append(CreateChild("DataVolume", build_data_volume(cr, disk)))
            return actions, volume | {"phase": "Pending"}, "being created"
        if not owned_by(dv, uid):
            return [], volume | {"phase": "Conflict"}, _conflict("DataVolume", claim, dv)
        if dv.get("metadata", {}).get("deletionTimestamp"):
            return [], volume | {"phase": "Replacing"}, "the previous import is being removed"
        if _source_url(dv) not in (None, disk.image):
            if (dv.get("status") or {}).get("phase") != "Succeeded":
                # The way out of a failed import: the user fixes the image, we import again.
                replace = DeleteChild(
                    "DataVolume", claim, dv["metadata"].get("uid"), foreground=True
                )
                return [replace], volume | {"phase": "Replacing"}, "re-importing the new image"
            volume["message"] = (
                f"image changed to {disk.image} after the import finished: the disk keeps its "
                "data; add a new disk to use the new image"
            )
        dv_status = dv.get("status", {})
        phase = str(dv_status.get("phase") or "Pending")
        volume |= {"phase": phase, "progress": dv_status.get("progress")}
        failure = _import_failure(dv)
        if failure:
            return actions, volume | {"phase": "Failed", "message": failure}, failure
        done = phase == "Succeeded" or phase in WAITS_FOR_CONSUMER
    else:
        if pvc is None:
            actions.append(CreateChild("PersistentVolumeClaim", build_pvc(cr, disk)))
            return actions, volume | {"phase": "Pending"}, "being created"
        if not owned_by(pvc, uid):
            return [], volume | {"phase": "Conflict"}, _conflict("PVC", claim, pvc)
        phase = str(pvc.get("status", {}).get("phase") or "Pending")
        volume["phase"] = phase
        done = phase == "Bound" or _binds_late(pvc, seen)
    if pvc is not None:
        volume |= {"bound": pvc.get("status", {}).get("phase") == "Bound"}
        if capacity := _capacity(pvc):
            volume["capacity"] = capacity
        actions += _grow(disk, claim, pvc, seen, volume, old)
    if not done and phase == "Pending":
        phase = _pending_words(disk, pvc, seen)
    return actions, {k: v for k, v in volume.items() if v is not None}, None if done else phase


def _grow(
    disk: DiskSpec, claim: str, pvc: JsonObj, seen: Observed, volume: JsonObj, old: JsonObj
) -> list[Action]:
    """Expand the PVC when the spec grew, unless its class cannot or the API refused it."""
    requested = _requested(pvc)
    if not requested or parse_quantity(disk.size) <= parse_quantity(requested):
        return []
    sc_name = pvc.get("spec", {}).get("storageClassName") or ""
    sc = seen.storage_classes.get(sc_name)
    if sc is not None and not sc.get("allowVolumeExpansion"):
        volume["message"] = (
            f"cannot grow to {disk.size}: StorageClass '{sc_name}' does not allow volume expansion"
        )
        return []
    refused = refusal_message(disk.size)
    if str(old.get("message") or "").startswith(refused):
        volume["message"] = old["message"]  # refused for this size already: wait for a change
        return []
    return [ExpandDisk(claim, disk.size, disk.name)]


def refusal_message(size: str) -> str:
    """Start of the volume message recording that growing to `size` was refused."""
    return f"expansion to {size} refused"


def resize_conditions(volumes: list[JsonObj], seen: Observed) -> list[Cond]:
    """VolumesResized and FileSystemResizePending from the PVCs and the messages above."""
    blocked = [
        v
        for v in volumes
        if "cannot grow" in str(v.get("message"))
        or str(v.get("message", "")).startswith("expansion to")
    ]
    pending_fs: list[str] = []
    resizing: list[str] = []
    for volume in volumes:
        pvc = seen.claims.get(str(volume.get("pvcName")))
        types = {
            c.get("type")
            for c in (pvc or {}).get("status", {}).get("conditions") or []
            if c.get("status") == "True"
        }
        if "FileSystemResizePending" in types:
            pending_fs.append(volume["name"])
        elif "Resizing" in types:
            resizing.append(volume["name"])
    if blocked:
        reason = (
            "ExpansionNotSupported"
            if any("cannot grow" in str(v.get("message")) for v in blocked)
            else "ExpansionRefused"
        )
        cond = Cond(RESIZE, False, reason, "; ".join(str(v["message"]) for v in blocked))
    elif resizing or pending_fs:
        cond = Cond(RESIZE, False, "Resizing", "growing " + ", ".join(resizing + pending_fs))
    else:
        cond = Cond(RESIZE, True, "UpToDate", "every disk has the size the spec asks for")
    if pending_fs:
        fs = Cond(
            "FileSystemResizePending",
            True,
            "GrowInGuest",
            f"disk(s) {', '.join(pending_fs)} grew: grow the partition and filesystem "
            "inside the guest (e.g. growpart, then resize2fs or xfs_growfs)",
        )
    else:
        fs = Cond("FileSystemResizePending", False, "NothingPending", "no filesystem to grow")
    return [cond, fs]


def plan_disks(
    cr: Wukong, seen: Observed, old_volumes: dict[str, JsonObj] | None = None
) -> DiskPlan:
    """Create missing PVCs/DataVolumes, grow PVCs, and report each disk's state."""
    old_volumes = old_volumes or {}
    actions: list[Action] = []
    volumes: list[JsonObj] = []
    waiting: list[str] = []
    failed: list[str] = []
    conflicts: list[str] = []
    no_class: list[str] = []
    usable: set[str] = set()
    for disk in cr.spec.disks:
        disk_actions, volume, problem = _disk(cr, disk, seen, old_volumes.get(disk.name, {}))
        actions += disk_actions
        claim = names.disk_claim_name(cr.metadata.name, disk.name)
        if volume.get("phase") == "Failed":
            failed.append(f"disk '{disk.name}': {problem}")
        elif volume.get("phase") == "Conflict":
            conflicts.append(f"disk '{disk.name}': {problem}")
        elif problem and (why := _stuck(disk, seen.claims.get(claim), seen)):
            no_class.append(f"disk '{disk.name}': {why}")
            volume = volume | {"message": why}
        elif problem:
            waiting.append(f"{disk.name} ({problem})")
        else:
            usable.add(disk.name)
        volumes.append(volume)
    if failed:
        message = "; ".join(failed)
        cond = Cond(VOLUMES_BOUND, False, "ImportFailed", message)
    elif conflicts:
        message = "; ".join(conflicts) + ": rename this Wukong or that disk, or remove the other"
        cond = Cond(VOLUMES_BOUND, False, CLAIM_CONFLICT, message)
    elif no_class:
        cond = Cond(VOLUMES_BOUND, False, STORAGE_CLASS_NOT_FOUND, "; ".join(no_class))
    elif waiting:
        cond = Cond(VOLUMES_BOUND, False, "Provisioning", "waiting for " + ", ".join(waiting))
    else:
        cond = Cond(VOLUMES_BOUND, True, "AllBound", f"{len(volumes)} disk(s) ready")
    return DiskPlan(
        tuple(actions),
        tuple(volumes),
        (cond, *resize_conditions(volumes, seen)),
        ready=not (waiting or failed or conflicts or no_class),
        failed="; ".join(failed) or None,
        usable=frozenset(usable),
    )
