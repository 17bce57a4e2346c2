"""Disks in one place: the rules (bus, serial, hot-plug form), the manifests (DataVolume,
PVC, VM disk and volume), provisioning and growth, and each disk's status. Pure.

Runtime attach/detach (hot-plug) lives in `hotplug.py` and the VM template in `vm.py`;
both take every disk rule from here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from wukong.api import JsonObj, names
from wukong.api.conditions import (
    FILESYSTEM_RESIZE_PENDING,
    VOLUMES_BOUND,
    VOLUMES_RESIZED,
    Cond,
)
from wukong.api.objects import being_deleted
from wukong.api.quantity import format_bytes, parse_quantity, quantity_or_none, readable_bytes
from wukong.api.status import RestoreStatus, VolumeStatus
from wukong.api.v1alpha1 import DiskSpec, Wukong
from wukong.reconcile.actions import (
    Action,
    ChildKind,
    CreateChild,
    DeleteChild,
    Emit,
    ExpandDisk,
    PatchChild,
    uid_of,
)
from wukong.reconcile.children import (
    UNMARK_RESTORED,
    adopt_for_data_volume_patch,
    adopt_patch,
    child_metadata,
    data_volume_reference,
    held_by,
    hold_patch,
    kept_for,
    owned_by,
    pinned,
    retained,
    under_data_volume,
)
from wukong.reconcile.observed import (
    Observed,
    chained_data_source,
    condition_of,
    own_vm_uid,
    pointed_pvc,
)
from wukong.reconcile.restore import in_flight

# A claim name this Wukong derives belongs to another object (another Wukong's disk, a user's
# PVC): a clash between Wukongs, reported as such (like NADConflict for networks).
CLAIM_CONFLICT = "ClaimConflict"
NODE_RESIZE_PENDING = "NodeResizePending"
"""A grown claim's filesystem waits for the kubelet (the PVC's FileSystemResizePending)."""
STORAGE_CLASS_NOT_FOUND = "StorageClassNotFound"
CLONE_SOURCE_NOT_FOUND = "CloneSourceNotFound"
CLONE_SOURCE_TOO_BIG = "CloneSourceTooBig"
DATA_SOURCE_NOT_FOUND = "DataSourceNotFound"
DATA_SOURCE_OUTSIDE = "DataSourceOutsideNamespace"
"""A disk's DataSource points to a PVC, VolumeSnapshot or DataSource of another namespace:
refused (`points_outside`)."""
CLONE_SOURCE_IN_USE = "CloneSourceInUse"
DISK_CLAIM_LOST = "DiskClaimLost"
"""A disk's claim (or DataVolume) deleted outside Wukong: made again, empty or from its
source (`_lost_words`, `_data_volume_lost`)."""
RESTORE_INCOMPLETE = "RestoreIncomplete"
"""A claim gone after a restore that did not complete: not made blank (`_lost_in_restore`)."""
RESTORING = "Restoring"
"""A disk's phase, and VolumesBound's reason, while KubeVirt's restore makes its claim again
(`_being_restored`): no Warning, the restore's own Events tell it."""
# CDI's words (pvc-clone-controller.go sourceInUse, clone/common.go IsSourceClaimReady).
_IN_USE = re.compile(r"pod ([^/\s]+)/(\S+) using PersistentVolumeClaim (\S+)")
_LAUNCHER = re.compile(r"virt-launcher-(.+)-[a-z0-9]{5}")
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
# DataVolume phases that mean "provisioning will go on once a VM uses the disk".
WAITS_FOR_CONSUMER = {"WaitForFirstConsumer", "PendingPopulation"}


# --- the rules --------------------------------------------------------------------------


def disk_bus(disk: DiskSpec) -> str:
    """The bus of a disk, at boot and hot-plugged alike: always explicit (amd64 would default
    to sata, which cannot be hot-plugged); both buses the spec allows can be hot-plugged."""
    return disk.bus.value


def is_hotpluggable(volume: JsonObj) -> bool:
    """Whether a VM template volume was hot-plugged (only those can be hot-unplugged)."""
    source = volume.get("dataVolume") or volume.get("persistentVolumeClaim") or {}
    return bool(source.get("hotpluggable"))


def template_volumes(vm: JsonObj | None) -> dict[str, JsonObj]:
    """The VM template's disk volumes (a claim or DataVolume behind them) by name; the
    cloud-init volume is not a disk of the Wukong and is never plugged or detached."""
    spec = (vm or {}).get("spec", {}).get("template", {}).get("spec", {})
    return {
        v["name"]: v
        for v in spec.get("volumes") or []
        if "name" in v and ("dataVolume" in v or "persistentVolumeClaim" in v)
    }


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
        "serial": names.disk_serial(disk.name),
    }
    if boot:
        device["bootOrder"] = 1
    return device


def volume_source(cr: Wukong, disk: DiskSpec, *, hotpluggable: bool = False) -> JsonObj:
    """The VM volume for a disk: a DataVolume when imported or cloned, else the PVC."""
    claim = names.disk_claim_name(cr.metadata.name, disk.name)
    source: JsonObj = {"name": claim} if disk.populated else {"claimName": claim}
    if hotpluggable:
        source["hotpluggable"] = True
    key = "dataVolume" if disk.populated else "persistentVolumeClaim"
    return {"name": disk.name, key: source}


# --- the claims -------------------------------------------------------------------------


def _storage(disk: DiskSpec) -> JsonObj:
    storage: JsonObj = {"resources": {"requests": {"storage": disk.size}}}
    if disk.access_mode is not None:
        storage["accessModes"] = [disk.access_mode.value]
    if disk.storage_class_name:
        storage["storageClassName"] = disk.storage_class_name
    return storage


def data_volume_origin(cr: Wukong, disk: DiskSpec) -> JsonObj:
    """Where CDI fills a disk from, as DataVolume spec fields: `source` (a registry or http
    import, a PVC clone) or `sourceRef` (a DataSource)."""
    if (ref := disk.data_source_ref(cr.metadata.namespace)) is not None:
        return {"sourceRef": {"kind": "DataSource", "namespace": ref[0], "name": ref[1]}}
    if (ref := disk.clone_source(cr.metadata.namespace)) is not None:
        return {"source": {"pvc": {"namespace": ref[0], "name": ref[1]}}}
    image = disk.image or ""
    kind = "registry" if image.startswith("docker://") else "http"
    return {"source": {kind: {"url": image}}}


def build_data_volume(cr: Wukong, disk: DiskSpec) -> JsonObj:
    """A CDI DataVolume importing `disk.image` (docker:// registry or http(s) URL), cloning
    the PVC `disk.cloneFrom` names, or what the DataSource `disk.dataSource` points to."""
    claim = names.disk_claim_name(cr.metadata.name, disk.name)
    return {
        "apiVersion": f"{names.CDI_GROUP}/{names.CDI_VERSION}",
        "kind": "DataVolume",
        "metadata": child_metadata(cr, claim, **{names.LABEL_DISK: disk.name}),
        "spec": {**data_volume_origin(cr, disk), "storage": _storage(disk)},
    }


def build_pvc(cr: Wukong, disk: DiskSpec) -> JsonObj:
    """A blank PersistentVolumeClaim for a disk without an image."""
    spec: JsonObj = {
        "accessModes": [disk.access_mode.value if disk.access_mode else "ReadWriteOnce"],
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
    reason: Literal["ExpansionNotSupported", "ExpansionRefused", "WaitingForBinding"]
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


def _left_unfilled(pvc: JsonObj) -> bool:
    """A claim with no DataVolume controlling it and not marked filled (populatedFor)."""
    meta = pvc.get("metadata", {})
    refs = meta.get("ownerReferences") or []
    return not any(r.get("kind") == "DataVolume" for r in refs) and (
        names.ANNOTATION_POPULATED_FOR not in (meta.get("annotations") or {})
    )


def _orphaned_words(cr: Wukong, disk: DiskSpec, claim: str, pvc: JsonObj) -> str:
    """ClaimConflict's words for a claim that is not this Wukong's. One of a Wukong of this
    name left without owner (its DataVolume deleted with --cascade=orphan, or the Wukong) was
    said to "already belong to Wukong 'web-1'", this very one (source audit, session 42)."""
    meta = pvc.get("metadata", {})
    mine = (meta.get("labels") or {}).get(names.LABEL_WUKONG) == cr.metadata.name
    if not mine or meta.get("ownerReferences") or retained(pvc):
        return _conflict("PVC", claim, pvc)
    return (
        f"PVC '{claim}' is a disk of a Wukong named '{cr.metadata.name}' left without its owner "
        "(deleted with --cascade=orphan): to keep its data, label it "
        f"{names.LABEL_RETAINED_FROM}={cr.metadata.name} {names.LABEL_DISK}={disk.name} and "
        "this Wukong takes it back; to start anew, delete it"
    )


def _conflict(kind: str, claim: str, obj: JsonObj) -> str:
    labels = obj.get("metadata", {}).get("labels") or {}
    if retained(obj):  # kept from another Wukong, or another disk, of the same claim name
        disk = labels.get(names.LABEL_DISK)
        of = f" (its disk '{disk}')" if disk else ""
        return (
            f"{kind} '{claim}' is a disk kept from Wukong '{labels[names.LABEL_RETAINED_FROM]}'{of}"
        )
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
    if _marked_classes(seen, DEFAULT_CLASS):
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


# CDI's reasons for making no claim for a DataVolume (common/util.go), as it puts them in the
# DataVolume's Bound condition (conditions.go updateBoundCondition), and ours.
_NO_CLAIM = {"ErrClaimNotValid": "ClaimNotValid", "ErrExceededQuota": "QuotaExceeded"}


def _no_claim(dv: JsonObj) -> tuple[str, str] | None:
    """(reason, words) when CDI says why it makes no claim for the DataVolume: a class whose
    StorageProfile gives no access or volume mode (any provisioner CDI does not know, e.g.
    local-path, and no accessMode on the disk), or the namespace's quota. The disk said
    "not provisioned yet" for good (found by a source audit, session 42)."""
    bound = condition_of(dv, "Bound") or {}
    reason = _NO_CLAIM.get(str(bound.get("reason")))
    if reason is None or bound.get("status") != "False":
        return None
    name = dv.get("metadata", {}).get("name")
    return reason, f"CDI makes no claim for DataVolume '{name}': {bound.get('message') or reason}"


def _clone_words(cr: Wukong, disk: DiskSpec, seen: Observed) -> str | None:
    """What a clone's DataVolume without a claim waits for: CDI makes none until its source
    exists, and says so only in an Event."""
    if (ref := disk.data_source_ref(cr.metadata.namespace)) is not None:
        ready = condition_of(seen.data_sources.get("/".join(ref)), "Ready") or {}
        why = (
            f": {ready['message']}"
            if ready.get("status") == "False" and ready.get("message")
            else ""
        )
        return (
            f"Pending: CDI clones what DataSource '{ref[1]}' in namespace '{ref[0]}' points "
            f"to once it is ready{why}"
        )
    if (ref := disk.clone_source(cr.metadata.namespace)) is None:
        return None
    unseen = "/".join(ref) not in seen.clone_sources
    return f"Pending: CDI clones PVC '{ref[1]}' in namespace '{ref[0]}' once it exists" + (
        " (a namespace this operator does not watch)" if unseen else ""
    )


def _in_use_words(dv: JsonObj | None, pvc: JsonObj | None, seen: Observed) -> str | None:
    """Why a clone is still CloneScheduled, when CDI said why: the pods using its source
    (CDI clones only a PVC no running pod mounts, and says so only in `CloneSourceInUse`
    Events on the DataVolume or its claim, repeated while it waits). None otherwise."""
    uids = {o["metadata"].get("uid") for o in (dv, pvc) if o is not None}
    pods: set[str] = set()
    source, since = "", ""
    for event in seen.clone_events:
        if (event.get("involvedObject") or {}).get("uid") not in uids:
            continue
        if (said := _IN_USE.search(str(event.get("message") or ""))) is None:
            continue
        vm = _LAUNCHER.fullmatch(said[2])
        pods.add(f"pod {said[1]}/{said[2]}" + (f" (VM {vm[1]})" if vm else ""))
        source = f"PVC '{said[3]}' in namespace '{said[1]}'"
        first = str(event.get("firstTimestamp") or event.get("lastTimestamp") or "")
        since = min(since, first) if since else first
    if not pods:
        return None
    when = f" since {since.replace('T', ' ')}" if since else ""
    return (
        f"CloneScheduled: CDI clones {source} only while no pod uses it, and "
        f"{', '.join(sorted(pods))} {'does' if len(pods) == 1 else 'do'} (CDI's "
        f"CloneSourceInUse{when}): stop what uses it, or clone another PVC"
    )


def _source_key(spec: JsonObj, namespace: str) -> tuple[str, ...] | None:
    """What a DataVolume reads: the image URL, the cloned PVC or the DataSource (namespace,
    name). Only those fields: CDI may add others (a registry's pullMethod) to what it
    stores."""
    if (ref := spec.get("sourceRef")) and ref.get("kind") == "DataSource":
        return ("DataSource", str(ref.get("namespace") or namespace), str(ref.get("name")))
    source = spec.get("source") or {}
    if pvc := source.get("pvc"):
        return (str(pvc.get("namespace") or namespace), str(pvc.get("name")))
    for kind in ("registry", "http"):
        if url := (source.get(kind) or {}).get("url"):
            return (str(url),)
    return None


def _holds_data(pvc: JsonObj | None, old: VolumeStatus | None) -> bool:
    """Whether the disk's claim holds data already, whatever its DataVolume's phase says: its
    import finished once (the status said so), or it is a kept claim taken back for a new
    DataVolume (populatedFor), which CDI marks Succeeded only a write after it took the claim
    (controller-base.go validatePVC, then updateStatus). Deleting the DataVolume then to
    import a changed image deleted that data (found by a source audit, session 42)."""
    notes = (pvc or {}).get("metadata", {}).get("annotations") or {}
    return (old is not None and old.phase == "Succeeded") or (
        names.ANNOTATION_POPULATED_FOR in notes
    )


def _source_changed(cr: Wukong, disk: DiskSpec, dv: JsonObj) -> bool:
    """The DataVolume imports or clones something other than what the disk names now."""
    ns = cr.metadata.namespace
    had = _source_key(dv.get("spec") or {}, ns)
    return had is not None and had != _source_key(data_volume_origin(cr, disk), ns)


def _changed_words(disk: DiskSpec, namespace: str) -> str:
    if (ref := disk.data_source_ref(namespace)) is not None:
        return f"DataSource changed to {'/'.join(ref)} after the clone finished"
    if (ref := disk.clone_source(namespace)) is not None:
        return f"clone source changed to {'/'.join(ref)} after the clone finished"
    return f"image changed to {disk.image} after the import finished"


# What KubeVirt takes for the filesystem overhead of a claim when the cluster has no CDI
# (pkg/storage/types/cdi.go DefaultFSOverhead). With CDI, both CDI and KubeVirt read it from
# CDIConfig's status: 0.06 unless an administrator set it (CDI v1.65; 0.055 in older CDI).
KUBEVIRT_FILESYSTEM_OVERHEAD = 0.055
VIRT_DEFAULT_CLASS = "storageclass.kubevirt.io/is-default-virt-class"
_MIB, _GIB = 1 << 20, 1 << 30


def _round_up(count: int, unit: int) -> int:
    return -(-count // unit) * unit


def _aligned(size: str) -> int:
    """`size` in bytes, up to whole MiB (CDI's DefaultAlignBlockSize)."""
    return _round_up(math.ceil(parse_quantity(size)), _MIB)


def filesystem_overhead(seen: Observed, storage_class: str | None) -> float:
    """The share of a Filesystem claim of class `storage_class` kept for the filesystem:
    CDIConfig's value for that class, else its global one, as CDI
    (GetFilesystemOverheadForStorageClass) and virt-controller (getFilesystemOverhead) read
    them; KubeVirt's own default where there is no CDIConfig. CDI pads a DataVolume's claim
    by it, and KubeVirt gives a grown disk's guest the claim less it."""
    settled = seen.filesystem_overhead
    if settled is None:
        return KUBEVIRT_FILESYSTEM_OVERHEAD
    by_class = settled.get("storageClass") or {}
    for value in (by_class.get(storage_class or ""), settled.get("global")):
        try:
            share = float(str(value))
        except ValueError:
            continue  # not set (or not a number): CDI's webhook and pattern refuse those
        if 0 <= share < 1:
            return share
    return KUBEVIRT_FILESYSTEM_OVERHEAD


def cdi_storage_class(disk: DiskSpec, seen: Observed) -> str | None:
    """The class CDI makes a DataVolume's claim in: the one the disk names, else the
    cluster's default class for virtual machines, else its default class (CDI's
    GetStorageClassByNameWithVirtFallback; the newest when several say so)."""
    if disk.storage_class_name:
        return str(disk.storage_class_name)
    for annotation in (VIRT_DEFAULT_CLASS, DEFAULT_CLASS):
        if marked := _marked_classes(seen, annotation):
            newest = max(marked, key=lambda m: (m.get("creationTimestamp") or "", m["name"]))
            return str(newest["name"])
    return None


def _marked_classes(seen: Observed, annotation: str) -> list[JsonObj]:
    """The metadata of the StorageClasses annotated `annotation: "true"` (a default)."""
    return [
        sc["metadata"]
        for sc in seen.storage_classes.values()
        if (sc.get("metadata", {}).get("annotations") or {}).get(annotation) == "true"
    ]


def cdi_claim_bytes(size: str, overhead: float) -> int:
    """What CDI's claim for a disk of `size` asks on a Filesystem volume: the size aligned to
    1 MiB, `overhead` bigger (util.go GetRequiredSpace; a 10Gi disk at CDI's default 0.06:
    11381663335 bytes)."""
    return math.ceil(_aligned(size) * (1 + overhead))


def _too_small(size: str, source_request: str, overhead: float) -> bool:
    """CDI refuses a clone whose claim asks less than its source's. A source CDI made asks
    its own size plus the filesystem overhead, which the clone's claim gets too: only a
    source bigger than the disk's claim as CDI makes it refuses. (On a Block volume CDI
    adds nothing, and compares the sizes as they are: left to CDI.)"""
    return parse_quantity(source_request) > cdi_claim_bytes(size, overhead)


def _big_enough(source_request: str) -> str:
    """A size that holds a clone of a source asking `source_request`, on any volume mode:
    the source's own, rounded up to whole GiB (MiB under 1 GiB) when it is a byte count."""
    count = math.ceil(parse_quantity(source_request))
    return format_bytes(_round_up(count, _GIB if count >= _GIB else _MIB))


def _clone_overhead(disk: DiskSpec, seen: Observed) -> float:
    """The overhead CDI pads the disk's clone claim by (that of the class it makes it in)."""
    return filesystem_overhead(seen, cdi_storage_class(disk, seen))


_POINTERS = ("pvc", "snapshot", "dataSource")  # CDI's DataSourceSource


def points_outside(data_source: JsonObj, data_sources: Mapping[str, JsonObj | None]) -> bool:
    """Whether a CDI DataSource reaches outside its own namespace: a PVC, VolumeSnapshot or
    DataSource of another namespace in its spec or in CDI's resolution of it
    (`status.source`), or in those of the DataSource of its namespace that it names (CDI
    follows one such hop; `data_sources` holds it when watched). A reference naming no
    namespace is in the DataSource's.

    CDI authorizes a clone for the DataVolume's creator, the operator, which may clone from
    every namespace; admission checks the Wukong's author on the DataSource only. Through a
    DataSource of their own namespace pointing elsewhere, whoever may write DataSources and
    Wukongs (Kubernetes' `edit` with CDI installed) copied any PVC in the cluster, and the
    disk's status told them whether it existed and its size (source audit, session 48)."""
    home = str((data_source.get("metadata") or {}).get("namespace") or "")
    todo, visited = [data_source], set()
    while todo:
        one = todo.pop()
        meta = one.get("metadata") or {}
        key = (meta.get("namespace"), meta.get("name"))
        if key in visited:
            continue
        visited.add(key)
        for part in ("spec", "status"):
            source = (one.get(part) or {}).get("source") or {}
            for kind in _POINTERS:
                ref = source.get(kind)
                if isinstance(ref, Mapping) and str(ref.get("namespace") or home) != home:
                    return True
        hop = chained_data_source(one)
        if hop is not None and (found := data_sources.get("/".join(hop))) is not None:
            todo.append(found)
    return False


def clone_problem(cr: Wukong, disk: DiskSpec, seen: Observed) -> tuple[str, str] | None:
    """(reason, message) when the PVC a disk clones cannot be cloned into it as things
    stand: it does not exist (CDI would wait for it), or it is bigger than the disk (a clone
    is at least as big as its source). None for any other disk, and for a source this
    operator cannot see. A DataSource that does not exist is the same (CDI refuses its
    DataVolume), and so is one that points outside its namespace (`points_outside`)."""
    if (named := disk.data_source_ref(cr.metadata.namespace)) is not None:
        found = seen.data_sources.get("/".join(named), {})  # {}: not watched
        if found is None:
            return DATA_SOURCE_NOT_FOUND, (
                f"disk '{disk.name}' is made from DataSource '{named[1]}' in namespace "
                f"'{named[0]}', which does not exist: create it (kubectl get datasources -A "
                "lists those there are), or name an existing one in dataSource"
            )
        if found and points_outside(found, seen.data_sources):
            # Nothing of what it points to is said: not its name, existence or size.
            return DATA_SOURCE_OUTSIDE, (
                f"disk '{disk.name}' is made from DataSource '{named[1]}' in namespace "
                f"'{named[0]}', which points outside its namespace: Wukong clones only what a "
                "DataSource points to in its own namespace; name that PVC with cloneFrom, "
                "which admission checks against you"
            )
        pvc = pointed_pvc(found)
        source = seen.clone_sources.get("/".join(pvc)) if pvc is not None else None
        wanted = _requested(source) if source is not None else None
        overhead = _clone_overhead(disk, seen)
        if pvc is not None and wanted and _too_small(disk.size, wanted, overhead):
            return CLONE_SOURCE_TOO_BIG, (
                f"disk '{disk.name}' is {disk.size}, smaller than PVC '{pvc[1]}' in namespace "
                f"'{pvc[0]}' ({readable_bytes(wanted)}) that DataSource '{named[1]}' points "
                f"to: a clone is at least as big as its source; set size to "
                f"{_big_enough(wanted)} or more"
            )
        return None
    if (ref := disk.clone_source(cr.metadata.namespace)) is None:
        return None
    key = "/".join(ref)
    if key not in seen.clone_sources:
        return None  # a namespace this operator does not watch: CDI checks and waits
    source = seen.clone_sources[key]
    where = f"PVC '{ref[1]}' in namespace '{ref[0]}'"
    if source is None:
        return CLONE_SOURCE_NOT_FOUND, (
            f"disk '{disk.name}' clones {where}, which does not exist: create it (the clone "
            "starts when it appears), or name an existing PVC in cloneFrom"
        )
    wanted = _requested(source)
    if wanted is not None and _too_small(disk.size, wanted, _clone_overhead(disk, seen)):
        return CLONE_SOURCE_TOO_BIG, (
            f"disk '{disk.name}' is {disk.size}, smaller than {where} it clones "
            f"({readable_bytes(wanted)}): a clone is at least as big as its source; set size "
            f"to {_big_enough(wanted)} or more"
        )
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


def _still_failing(dv: JsonObj, old: VolumeStatus | None) -> VolumeStatus | None:
    """The disk's last failure while CDI restarts its importer, until the import gets past it.

    CDI copies the importer pod's state into the Running condition at each restart: "Pod is
    running" (True, the error forgotten) while a restarted importer runs, the error again when
    it fails (setAnnotationsFromPodWithPrefix). Read as is, a crash-looping import took the
    Wukong Error -> Creating -> Error at every restart, an Event each way. So a failed import
    stays failed while CDI restarts it (restartCount > 0), until its progress moves (other
    than at the failure, above 0) or it ends; a new DataVolume (restartCount 0) starts over."""
    status = dv.get("status") or {}
    if old is None or old.phase != "Failed" or status.get("phase") == "Succeeded":
        return None
    if int(status.get("restartCount") or 0) == 0:
        return None
    progress = status.get("progress")
    if progress != old.progress and _percent(progress) > 0:
        return None
    return old


def _percent(progress: object) -> float:
    """CDI's progress ("45.10%") as a number; 0 for "N/A" or none."""
    try:
        return float(str(progress).rstrip("%"))
    except ValueError:
        return 0.0


@dataclass(frozen=True)
class _Disk:
    """One disk's verdict: actions, status, what keeps it from being usable, growth."""

    actions: list[Action]
    volume: VolumeStatus
    problem: str | None
    blocked: Blocked | None = None
    refusal: tuple[str, str] | None = None
    """(reason, message) of a disk that cannot be made as the spec says (clone_problem)."""
    source_in_use: bool = False
    """CDI waits to clone: a pod uses the source (`_in_use_words`)."""


def _disk(
    cr: Wukong,
    disk: DiskSpec,
    seen: Observed,
    old: VolumeStatus | None,
    restore: RestoreStatus | None,
) -> _Disk:
    claim = names.disk_claim_name(cr.metadata.name, disk.name)
    uid = cr.metadata.uid
    vm_uid = own_vm_uid(seen, cr)
    pvc = seen.claims.get(claim)
    dv = seen.data_volumes.get(claim) if disk.populated else None
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
    # An imported disk's claim goes back under its DataVolume, as CDI made it: CDI takes a
    # claim its DataVolume does not control for someone else's and never reports the
    # DataVolume done again, so the Wukong stayed Creating for good (review s23 F4).
    ours = dv is not None and (held_by(dv, uid) or kept_for(dv, cr.metadata.name, disk.name))
    claim_owner = data_volume_reference(dv) if dv is not None and ours else None

    kept = bool(cr.spec.delete_options and cr.spec.delete_options.keeps(disk.name))

    def adoption(kind: ChildKind) -> JsonObj:
        if kind == "DataVolume":
            return adopt_patch(cr, disk.name, keep=kept)
        if disk.populated and dv is None:  # its DataVolume was deleted: CDI takes it anew
            return adopt_for_data_volume_patch(cr, disk.name, claim)
        return adopt_patch(cr, disk.name, claim_owner, keep=kept)

    adopt: list[Action] = [
        PatchChild(
            kind, claim, pinned(adoption(kind), obj), "adopt a retained disk", uid=uid_of(obj)
        )
        for kind, obj in pairs
        if obj is not None and kept_for(obj, cr.metadata.name, disk.name)
    ]
    if adopt:  # a kept disk whose claim name this Wukong uses again: take it back
        told = f"disk {disk.name} takes back its kept claim {claim} and the data on it"
        adopt.append(Emit("Normal", "DiskAdopted", told))
        return _Disk(adopt, at("Adopting"), "adopting the retained disk")
    lost = _lost_in_restore(cr, disk, claim, old, restore, restore_snapshot_gone(seen, restore))
    if pvc is None and lost is not None:
        return _Disk([], at("Pending", message=lost), lost, refusal=(RESTORE_INCOMPLETE, lost))
    if (restoring := _being_restored(cr, disk, pvc, seen, restore)) is not None:
        return _Disk([], at(RESTORING, message=restoring), restoring)
    message: str | None = None
    if disk.populated:
        if dv is None:
            gone = _data_volume_lost(disk, claim, old, restore, pvc)
            if pvc is not None and not held_by(pvc, uid):
                return _Disk(gone, at("Conflict"), _orphaned_words(cr, disk, claim, pvc))
            if pvc is not None and _left_unfilled(pvc):
                # This disk's own claim, its DataVolume deleted with --cascade=orphan: CDI's
                # webhook refuses a new DataVolume over a claim it does not control ("Destination
                # PVC already exists"), unless the claim says it is filled (populatedFor). Taken
                # back so first, its data kept (found by a source audit, session 42).
                back = adopt_for_data_volume_patch(cr, disk.name, claim)
                back = pinned(back, pvc)
                take = PatchChild(
                    "PersistentVolumeClaim", claim, back, "take back", uid=uid_of(pvc)
                )
                return _Disk([take, *gone], at("Adopting"), "taking back its claim")
            if (refused := clone_problem(cr, disk, seen)) is not None:
                # Not created yet: CDI's DataVolume cannot change, so one made now would be
                # stuck with a size or a source that cannot work.
                return _Disk(gone, at("Pending", message=refused[1]), refused[1], refusal=refused)
            create = CreateChild("DataVolume", _born_held(build_data_volume(cr, disk), cr, disk))
            return _Disk([create, *gone], at("Pending"), "being created")
        if not held_by(dv, uid):
            return _Disk([], at("Conflict"), _conflict("DataVolume", claim, dv))
        if being_deleted(dv):
            return _Disk([], at("Replacing"), "the previous import is being removed")
        if _source_changed(cr, disk, dv):
            if (dv.get("status") or {}).get("phase") != "Succeeded" and not _holds_data(pvc, old):
                # The way out of a failed import: the user fixes the image, we import again.
                again = DeleteChild("DataVolume", claim, dv["metadata"].get("uid"), foreground=True)
                return _Disk([again], at("Replacing"), "re-importing the new image")
            message = (
                f"{_changed_words(disk, cr.metadata.namespace)}: the disk keeps its data; add "
                "a new disk to use the new one"
            )
        dv_status = dv.get("status", {})
        phase = str(dv_status.get("phase") or "Pending")
        failure = _import_failure(dv)
        if failure:
            failed = at("Failed", progress=dv_status.get("progress"), message=failure)
            return _Disk([], failed, failure)
        if (still := _still_failing(dv, old)) is not None:
            failed = at("Failed", progress=still.progress, message=still.message)
            return _Disk([], failed, still.message or "import failed")
        refilled = _made_anew(disk, claim, old, restore, dv)
        if pvc is None and (no_claim := _no_claim(dv)) is not None:
            said = no_claim[1]
            return _Disk(refilled, at("Pending", message=said), said, refusal=no_claim)
        volume = volume.model_copy(
            update={"phase": phase, "progress": dv_status.get("progress"), "message": message}
        )
        done = phase == "Succeeded" or phase in WAITS_FOR_CONSUMER
    else:
        if pvc is None:
            create = CreateChild("PersistentVolumeClaim", _born_held(build_pvc(cr, disk), cr, disk))
            return _Disk(
                [create, *_lost_words(disk, claim, old, restore)], at("Pending"), "being created"
            )
        # A claim the Wukong's own VM owns is its disk all the same: a VirtualMachineRestore
        # made by hand (volumeOwnershipPolicy unset) gives the claim it makes to the VM.
        # Left a ClaimConflict, it went with the VM whatever deleteOptions said (deletion
        # audit, session 48, finding 1); taken back below (`hold_patch`).
        by_vm = vm_uid is not None and owned_by(pvc, vm_uid)
        if not held_by(pvc, uid) and not restored_for(pvc, cr, restore) and not by_vm:
            return _Disk([], at("Conflict"), _conflict("PVC", claim, pvc))
        phase = str(pvc.get("status", {}).get("phase") or "Pending")
        volume = volume.model_copy(update={"phase": phase})
        done = phase == "Bound" or _binds_late(pvc, seen)
        refilled = []
    actions: list[Action] = [*refilled]
    # The disk's ownership follows deleteOptions (children.hold_patch): the DataVolume of an
    # imported disk (CDI's claim follows it), a blank disk's claim.
    owner_kind: ChildKind = "DataVolume" if disk.populated else "PersistentVolumeClaim"
    held = dv if disk.populated else pvc
    # A claim the restore made, taken back: KubeVirt's labels go in the same write. An
    # imported disk's is CDI's (its DataVolume is what the Wukong holds): they go once CDI
    # has taken it under that DataVolume (populatedFor), from when it goes with it.
    restored = pvc is not None and restored_for(pvc, cr, restore)
    taken = restored and not disk.populated
    hold = None if held is None else hold_patch(held, cr, kept, restored=taken, vm_uid=vm_uid)
    if hold is not None:
        why = "hold a kept disk by label" if kept else "own the disk"
        actions.append(PatchChild(owner_kind, claim, hold, why, uid=uid_of(held)))
    if restored and pvc is not None and dv is not None and under_data_volume(pvc, dv):
        unmark = pinned({"metadata": {"labels": dict(UNMARK_RESTORED)}}, pvc)
        untie = PatchChild("PersistentVolumeClaim", claim, unmark, "take back", uid=uid_of(pvc))
        actions.append(untie)
    blocked: Blocked | None = None
    if pvc is not None:
        volume = volume.model_copy(
            update={
                "bound": pvc.get("status", {}).get("phase") == "Bound",
                "capacity": _capacity(pvc),
            }
        )
        grow, blocked, volume = _grow(disk, claim, pvc, dv, seen, volume, old)
        actions += grow
    if not done and phase == "Pending":
        waits = _clone_words(cr, disk, seen) if pvc is None else None
        phase = waits or _pending_words(disk, pvc, seen)
    busy = _in_use_words(dv, pvc, seen) if phase == "CloneScheduled" else None
    if busy is not None:
        phase, volume = busy, volume.model_copy(update={"message": busy})
    return _Disk(actions, volume, None if done else phase, blocked, source_in_use=bool(busy))


def _lost_in_restore(
    cr: Wukong,
    disk: DiskSpec,
    claim: str,
    old: VolumeStatus | None,
    restore: RestoreStatus | None,
    snapshot_gone: bool = False,
) -> str | None:
    """Why a disk's missing claim is not made now: the last restore did not complete, and
    KubeVirt's in-place restore deletes each claim before making it again from the snapshot.
    Made now, a blank disk would be empty (an imported one imported again) where the guest's
    data was; the data is in the snapshot. A disk the Wukong did not have before (`old`) is
    made as usual, and so is a claim that was still there when the restore ended
    (`lost_claims`: it was deleted since, by someone else; `_lost_words` says so).
    `snapshot_gone`: the snapshot was deleted too (its VolumeSnapshots go with it), so
    restoring it again is no way back (source audit, session 47, finding 3)."""
    if old is None or restore is None or restore.result != "Failed":
        return None
    if restore.lost_claims is not None and claim not in restore.lost_claims:
        return None
    if snapshot_gone:
        return (
            f"claim {claim} is gone after restore {restore.name}, which did not complete "
            f"(KubeVirt deletes a claim before making it again), and snapshot {restore.snapshot} "
            f"is gone too: the data is lost. Remove disk {disk.name} from the spec and add it "
            "back to start it empty"
        )
    again = names.command(
        "restore",
        cr.metadata.name,
        cr.metadata.namespace,
        "--snapshot-name",
        restore.snapshot or "",
    )
    return (
        f"claim {claim} is gone after restore {restore.name}, which did not complete (KubeVirt "
        f"deletes a claim before making it again); the data is in snapshot {restore.snapshot}: "
        f"restore it again ({again}), or remove disk {disk.name} from the spec and add it back to "
        "start it empty"
    )


def _being_restored(
    cr: Wukong, disk: DiskSpec, pvc: JsonObj | None, seen: Observed, restore: RestoreStatus | None
) -> str | None:
    """Why a disk waits while KubeVirt restores it, in words, or None: its claim is gone,
    going, or made again and not bound yet, and the restore in flight (KubeVirt has it) holds
    the disk. KubeVirt deletes each claim and makes it again from the snapshot; the operator
    makes nothing then, and "being created" said it did (source audit, session 47)."""
    running = in_flight(restore)
    if running is None or running.phase != "Restoring":
        return _restored_outside(disk, pvc, seen)
    if pvc is not None and not being_deleted(pvc):
        unbound = (pvc.get("status") or {}).get("phase") != "Bound"
        if not (unbound and restored_for(pvc, cr, running)):
            return None
    shot = seen.snapshots.get(running.snapshot or "") or {}
    held = ((shot.get("status") or {}).get("snapshotVolumes") or {}).get("includedVolumes")
    if held is not None and disk.name not in held:
        return None  # not in the snapshot: KubeVirt leaves it be
    snapshot, name = running.snapshot, running.name
    return f"KubeVirt is restoring its claim from snapshot {snapshot}: restore {name}"


def _restored_outside(disk: DiskSpec, pvc: JsonObj | None, seen: Observed) -> str | None:
    """`_being_restored` for an InPlace restore of the VM made outside Wukong (session 48's
    leftover: the claim it deleted was "being created"). Only InPlace deletes and makes the
    claims again (restore.go, isVolumeRestorePolicyInPlace; the default, RandomizeNames,
    makes new claims and leaves the disk's as it is); a claim it made carries its
    `lastRestoreUID` mark, `<name>-<uid>`."""
    for restore in seen.outside_restores:
        if (restore.get("spec") or {}).get("volumeRestorePolicy") != "InPlace":
            continue
        meta = restore["metadata"]
        if pvc is not None and not being_deleted(pvc):
            marks = pvc.get("metadata", {}).get("annotations") or {}
            unbound = (pvc.get("status") or {}).get("phase") != "Bound"
            ours = marks.get(names.ANNOTATION_LAST_RESTORE) == f"{meta['name']}-{meta.get('uid')}"
            if not (unbound and ours):
                continue
        snapshot = (restore.get("spec") or {}).get("virtualMachineSnapshotName")
        return (
            f"KubeVirt is restoring its claim from snapshot {snapshot}: restore "
            f"{meta['name']}, made outside Wukong"
        )
    return None


def restore_snapshot_gone(seen: Observed, restore: RestoreStatus | None) -> bool:
    """The snapshot of the last restore is not there (the pass looks it up by name)."""
    return restore is not None and bool(restore.snapshot) and restore.snapshot not in seen.snapshots


def _lost_words(
    disk: DiskSpec, claim: str, old: VolumeStatus | None, restore: RestoreStatus | None
) -> list[Action]:
    """A Warning when a blank disk's claim, bound at the last status, is gone and is made
    again: someone deleted it outside Wukong, and the new one is empty. Not while a restore
    runs: KubeVirt deletes the claims it puts back (and the operator makes none then)."""
    if old is None or not old.bound or in_flight(restore):
        return []
    return [
        Emit(
            "Warning",
            DISK_CLAIM_LOST,
            f"claim {claim} of disk {disk.name} was deleted outside Wukong: it is made again, "
            "empty (the data that was on it is gone)",
        )
    ]


# DataVolume phases before its disk is filled: one done before cannot go back to them unless
# its claim went (CDI makes it again and fills it anew: controller-base.go handlePvcCreation).
_NOT_FILLED = frozenset(
    {
        "Pending",
        "PVCBound",
        "ImportScheduled",
        "ImportInProgress",
        "CloneScheduled",
        "CloneInProgress",
        "SnapshotForSmartCloneInProgress",
        "CSICloneInProgress",
        "CloneFromSnapshotSourceInProgress",
        "PrepClaimInProgress",
        "RebindInProgress",
    }
)


def _made_anew(
    disk: DiskSpec,
    claim: str,
    old: VolumeStatus | None,
    restore: RestoreStatus | None,
    dv: JsonObj,
) -> list[Action]:
    """A Warning when an imported or cloned disk done at the last status is being filled
    again: its claim was deleted, and CDI made it again under the DataVolume and imports anew.
    The Wukong said Creating, then booted a pristine image without a word (found by a source
    audit, session 42). Not while a restore runs."""
    phase = str((dv.get("status") or {}).get("phase") or "Pending")
    if old is None or old.phase != "Succeeded" or phase not in _NOT_FILLED or in_flight(restore):
        return []
    how = "imported" if disk.image else "cloned"
    return [
        Emit(
            "Warning",
            DISK_CLAIM_LOST,
            f"claim {claim} of disk {disk.name} was deleted outside Wukong: CDI makes it again "
            f"and it is {how} anew (what the guest wrote on it is gone)",
        )
    ]


def _data_volume_lost(
    disk: DiskSpec,
    claim: str,
    old: VolumeStatus | None,
    restore: RestoreStatus | None,
    pvc: JsonObj | None,
) -> list[Action]:
    """A Warning, in the first pass that finds an imported or cloned disk's DataVolume gone
    though it was done at the last status: someone deleted it, its claim goes with it (CDI
    owns the claim), and the disk is made again from its source. Not for a claim orphaned
    from it (its data stays; ClaimConflict says what to do), nor while a restore runs."""
    if old is None or old.phase != "Succeeded" or in_flight(restore):
        return []
    if pvc is not None:
        refs = pvc.get("metadata", {}).get("ownerReferences") or []
        if not being_deleted(pvc) and not any(r.get("kind") == "DataVolume" for r in refs):
            return []
    how = "imported" if disk.image else "cloned"
    return [
        Emit(
            "Warning",
            DISK_CLAIM_LOST,
            f"DataVolume {claim} of disk {disk.name} was deleted outside Wukong, and its claim "
            f"with it: the disk is made again and {how} anew (what the guest wrote on it is "
            "gone)",
        )
    ]


def restored_for(pvc: JsonObj, cr: Wukong, restore: RestoreStatus | None) -> bool:
    """A claim `restore`, this Wukong's last, made for its VM and that no pass has taken back
    yet. KubeVirt's restore copies the old claim's labels, adds its own (`source-vm-name`)
    and no owner (`volumeOwnershipPolicy: None`), and marks the claim with the restore's
    name and uid (annotation `lastRestoreUID`, `<name>-<uid>`: restore.go
    getRestoreAnnotationValue). A pass takes it back as the disk's (`hold_patch`) and drops
    KubeVirt's labels in the same write, so from then on it is the disk's like any other.
    Read from the labels alone, the claim stayed "the restore's" for good: a deletion with
    `--cascade=orphan` deleted the claims of the VM it left running, and a claim orphaned
    so was taken by a later Wukong of the name once that one had restored anything (source
    audit, session 46). `restore` needs its uid: a claim is never tied by name alone (a
    Wukong made again asks a restore of the same name for the same request)."""
    meta = pvc.get("metadata", {})
    labels = meta.get("labels") or {}
    mark = (meta.get("annotations") or {}).get(names.ANNOTATION_LAST_RESTORE)
    return (
        restore is not None
        and restore.name is not None
        and restore.uid is not None
        and mark == f"{restore.name}-{restore.uid}"
        and labels.get(names.LABEL_RESTORED_FROM_VM) == names.vm_name(cr.metadata.name)
        and labels.get(names.LABEL_WUKONG) == cr.metadata.name
    )


def _born_held(obj: JsonObj, cr: Wukong, disk: DiskSpec) -> JsonObj:
    """A new disk as `hold_patch` wants it at once: one write, not a create and a patch."""
    options = cr.spec.delete_options
    if options is not None and options.keeps(disk.name):
        meta = obj["metadata"]
        meta["ownerReferences"] = []
        meta["labels"] = {**meta.get("labels", {}), names.LABEL_HELD_BY: cr.metadata.uid}
    return obj


def grown_claim_bytes(size: str, overhead: float) -> int:
    """The claim that gives a guest a disk of `size` once KubeVirt grows the disk's image:
    virt-launcher makes it (1 - overhead) x the claim, down to whole MiB (manager.go
    possibleGuestSize), so the claim asks the size aligned to 1 MiB over (1 - overhead), up
    to whole MiB (a 21Gi disk at CDI's default 0.06: 23988273152 bytes, 22877Mi)."""
    return _round_up(math.floor(_aligned(size) / (1 - overhead)) + 1, _MIB)


def claim_target(disk: DiskSpec, pvc: JsonObj, dv: JsonObj | None, overhead: float) -> str:
    """What a disk's claim should ask for its spec size. Grown, a file-backed disk gives the
    guest the claim's capacity less the filesystem overhead (`grown_claim_bytes`), and CDI
    makes an imported or cloned disk's claim for its size plus that overhead: a claim grown
    past the size it was made for asks what gives the guest the size the spec says. Before
    session 39, a 20Gi imported disk grown to 21Gi stayed as it was (its claim already
    asked 21.1Gi) and a disk grown to 40Gi gave the guest 37.8Gi. What a claim was made for:
    its DataVolume's size for an imported or cloned disk (CDI padded it), else its request
    (the operator's blank claim asks the bare size). A Block claim has no filesystem: bare.
    `overhead`: the claim's class's (`filesystem_overhead`)."""
    storage = ((dv or {}).get("spec") or {}).get("storage") or {}
    made_for = (storage.get("resources") or {}).get("requests", {}).get("storage")
    made_for = (made_for if disk.populated else None) or _requested(pvc)
    if pvc.get("spec", {}).get("volumeMode") == "Block" or not made_for:
        return disk.size
    if parse_quantity(disk.size) <= parse_quantity(str(made_for)):
        return disk.size  # the claim as it was made holds it
    return str(grown_claim_bytes(disk.size, overhead))


def _grow(
    disk: DiskSpec,
    claim: str,
    pvc: JsonObj,
    dv: JsonObj | None,
    seen: Observed,
    volume: VolumeStatus,
    old: VolumeStatus | None,
) -> tuple[list[Action], Blocked | None, VolumeStatus]:
    """Expand the PVC when the spec grew (to `claim_target`), unless its class cannot or the
    API refused this size already (`expansionRefused`, set from the failed call: not asked
    again until the spec asks for another size)."""
    requested = _requested(pvc)
    # KubeVirt reads the overhead of the claim's own class (its global one when it has none).
    overhead = filesystem_overhead(seen, pvc.get("spec", {}).get("storageClassName"))
    target = claim_target(disk, pvc, dv, overhead)
    if requested and not disk.populated and _kept_bigger(disk, requested, pvc, overhead):
        # A kept blank disk taken back by a spec that asks less (the CRD refuses a shrink of
        # the spec itself): said, where it was shown SIZE 1Gi CAPACITY 2Gi with no word. Not
        # an imported or cloned disk: CDI asks more than the spec for filesystem overhead.
        said = (
            f"the claim asks {requested}, more than the spec's {disk.size}: a disk never "
            f"shrinks, it stays {requested}"
        )
        return [], None, volume.model_copy(update={"message": said})
    if not requested or parse_quantity(target) <= parse_quantity(requested):
        return [], None, volume  # at its size, or CDI's bigger claim of an imported disk
    sc_name = pvc.get("spec", {}).get("storageClassName") or ""
    sc = seen.storage_classes.get(sc_name)
    if sc is not None and not sc.get("allowVolumeExpansion"):
        message = (
            f"cannot grow to {disk.size}: StorageClass '{sc_name}' does not allow volume expansion"
        )
        blocked = Blocked(disk.name, "ExpansionNotSupported", message)
        return [], blocked, volume.model_copy(update={"message": message})
    if (pvc.get("status") or {}).get("phase") != "Bound":
        # Kubernetes grows bound claims only (422 "spec is immutable ... except
        # resources.requests for bound claims"; the resize admission's 403): a blank disk on
        # a WaitForFirstConsumer class before its first boot, and every imported or cloned
        # disk while CDI's populator fills it on CSI storage. Asked then, the refusal was
        # remembered and the disk never grew (found by a source audit, session 42).
        message = f"grows to {disk.size} once its claim is bound"
        blocked = Blocked(disk.name, "WaitingForBinding", f"{disk.name} to {disk.size}, {message}")
        return [], blocked, volume.model_copy(update={"message": message})
    if old is not None and old.expansion_refused == disk.size:
        message = old.message or f"expansion to {disk.size} refused"
        blocked = Blocked(disk.name, "ExpansionRefused", message)
        kept = volume.model_copy(update={"message": message, "expansion_refused": disk.size})
        return [], blocked, kept
    return [ExpandDisk(claim, disk.size, disk.name, target, uid_of(pvc))], None, volume


def _kept_bigger(disk: DiskSpec, requested: str, pvc: JsonObj, overhead: float) -> bool:
    """Whether a blank disk's claim asks more than its spec would ever have it ask: more than
    the size, and, on a filesystem, more than a claim grown to the size asks
    (`grown_claim_bytes`, which the operator asks itself: a blank disk grown from 1Gi to 2Gi
    asked 2284847104 bytes and was then said to be "more than the spec's 2Gi: a disk never
    shrinks", found by a user's walk through the demo, session 45)."""
    asked = parse_quantity(requested)
    if asked <= parse_quantity(disk.size):
        return False
    if pvc.get("spec", {}).get("volumeMode") == "Block":
        return True
    return asked > grown_claim_bytes(disk.size, overhead)


def resize_conditions(
    volumes: tuple[VolumeStatus, ...],
    blocked: list[Blocked],
    seen: Observed,
    growing: Collection[str] = (),
) -> list[Cond]:
    """VolumesResized (only while a disk is not at its size: `growing` now, its claim asking
    more than it has, or the storage resizing it) and FileSystemResizePending (only while a
    grown disk waits for the guest)."""
    pending_fs: list[str] = []
    resizing: list[str] = []
    for volume in volumes:
        pvc = seen.claims.get(str(volume.pvc_name))
        types = {
            c.get("type")
            for c in (pvc or {}).get("status", {}).get("conditions") or []
            if c.get("status") == "True"
        }
        asked = quantity_or_none(_requested(pvc or {}))
        has = quantity_or_none(_capacity(pvc))
        short = asked is not None and has is not None and has < asked
        if volume.name in growing or short or types & {"Resizing", "FileSystemResizePending"}:
            resizing.append(f"{volume.name} to {volume.size}" if volume.size else volume.name)
        if "FileSystemResizePending" in types:
            pending_fs.append(volume.name)
    # Waiting for its claim to bind is on the way, not refused.
    resizing += [b.message for b in blocked if b.reason == "WaitingForBinding"]
    blocked = [b for b in blocked if b.reason != "WaitingForBinding"]
    conds: list[Cond] = []
    if blocked:
        unsupported = any(b.reason == "ExpansionNotSupported" for b in blocked)
        reason = "ExpansionNotSupported" if unsupported else "ExpansionRefused"
        conds.append(Cond(VOLUMES_RESIZED, False, reason, "; ".join(b.message for b in blocked)))
    elif resizing:
        message = "growing " + ", ".join(resizing)
        conds.append(Cond(VOLUMES_RESIZED, False, "Resizing", message))
    if pending_fs:
        # The claim's own filesystem, which the kubelet grows where the claim is mounted (the
        # VM's pod): not yet the guest's, which sees the bigger disk only after (`grown_events`).
        which = ", ".join(pending_fs)
        if seen.vmi is not None and not seen.vmi_ended:
            message = f"the node grows the filesystem of disk(s) {which} while the VM runs"
        else:
            message = f"the filesystem of disk(s) {which} grows when the VM next starts"
        conds.append(Cond(FILESYSTEM_RESIZE_PENDING, True, NODE_RESIZE_PENDING, message))
    return conds


def grown_events(old: Mapping[str, VolumeStatus], new: Sequence[VolumeStatus]) -> list[Action]:
    """A Normal Event per disk whose claim grew since the last status: what the guest must
    still do. KubeVirt's ExpandDisks grows the VM's disk (online, or at the next boot); the
    partition and filesystem inside are the guest's (docs/reference.md, "PVC expansion")."""
    events: list[Action] = []
    for volume in new:
        before = old.get(volume.name)
        # A status capacity edited by hand to no quantity: no Event, rather than a failed pass.
        was = quantity_or_none(before.capacity if before is not None else None)
        now = quantity_or_none(volume.capacity)
        if was is not None and now is not None and now > was:
            # The spec's size, which the guest gets; the claim's when it says more (CDI's
            # filesystem overhead, or storage that rounds up): "is 22.2Gi" read wrong for 21Gi.
            shown = readable_bytes(volume.capacity)
            size = volume.size or shown
            claim = f" (its claim {shown})" if size != shown else ""
            message = (
                f"disk {volume.name} is {size} now{claim}: the guest sees it bigger where "
                "KubeVirt's ExpandDisks feature is on; grow its partition and filesystem "
                "inside the guest (e.g. growpart, then resize2fs or xfs_growfs)"
            )
            events.append(Emit("Normal", "DiskGrown", message))
    return events


def plan_disks(
    cr: Wukong, seen: Observed, old: dict[str, VolumeStatus], *, restore: RestoreStatus | None
) -> DiskPlan:
    """Create missing PVCs/DataVolumes, grow PVCs, and report each disk's state. `restore`
    is the restore as this pass decided it (ended now, or before)."""
    actions: list[Action] = []
    volumes: list[VolumeStatus] = []
    blocked: list[Blocked] = []
    waiting: list[str] = []
    restoring: list[str] = []  # claims KubeVirt's restore is making again
    failed: list[str] = []
    conflicts: list[str] = []
    no_class: list[str] = []
    refused: list[tuple[str, str]] = []
    busy = False
    usable: set[str] = set()
    for disk in cr.spec.disks:
        one = _disk(cr, disk, seen, old.get(disk.name), restore)
        actions += one.actions
        volume = one.volume
        claim = names.disk_claim_name(cr.metadata.name, disk.name)
        if one.blocked is not None:
            blocked.append(one.blocked)
        if volume.phase == "Failed":
            failed.append(f"disk '{disk.name}': {one.problem}")
        elif volume.phase == "Conflict":
            conflicts.append(f"disk '{disk.name}': {one.problem}")
        elif one.refusal is not None:
            refused.append(one.refusal)
        elif volume.phase == RESTORING:
            restoring.append(f"{disk.name} ({one.problem})")
        elif one.problem and (why := _stuck(disk, seen.claims.get(claim), seen)):
            no_class.append(f"disk '{disk.name}': {why}")
            volume = volume.model_copy(update={"message": why})
        elif one.problem:
            waiting.append(f"{disk.name} ({one.problem})")
            busy = busy or one.source_in_use
        else:
            usable.add(disk.name)
        volumes.append(volume)
    if failed:
        cond = Cond(VOLUMES_BOUND, False, "ImportFailed", "; ".join(failed))
    elif conflicts:
        message = "; ".join(conflicts) + ": rename this Wukong or that disk, or remove the other"
        cond = Cond(VOLUMES_BOUND, False, CLAIM_CONFLICT, message)
    elif refused:
        reason = min(r for r, _ in refused)  # one reason for all: the first alphabetically
        cond = Cond(VOLUMES_BOUND, False, reason, "; ".join(m for _, m in refused))
    elif no_class:
        cond = Cond(VOLUMES_BOUND, False, STORAGE_CLASS_NOT_FOUND, "; ".join(no_class))
    elif waiting or restoring:
        reason = CLONE_SOURCE_IN_USE if busy else "Provisioning" if waiting else RESTORING
        said = ", ".join(waiting + restoring)
        cond = Cond(VOLUMES_BOUND, False, reason, "waiting for " + said)
    else:
        cond = Cond(VOLUMES_BOUND, True, "AllBound", f"{len(volumes)} disk(s) ready")
    growing = {a.disk for a in actions if isinstance(a, ExpandDisk)}
    return DiskPlan(
        tuple(actions),
        tuple(volumes),
        (cond, *resize_conditions(tuple(volumes), blocked, seen, growing)),
        ready=not (waiting or restoring or failed or conflicts or no_class or refused),
        failed="; ".join(failed) or None,
        usable=frozenset(usable),
    )


def holds_as_asked(cr: Wukong, seen: Observed) -> list[Action]:
    """The hold (or own) patch (`hold_patch`) of each disk this Wukong has already, as its
    deleteOptions say now, for a pass that does not plan the disks (the networks not ready,
    the spec invalid). Holding makes nothing, so "networks before disks" does not apply to
    it; without it, a keep written while the networks were not ready left the disk owned for
    as long as that lasted, for a foreground delete to take (found by a source audit,
    session 46). Only a disk that is this Wukong's already (`held_by`) and not being deleted:
    adopting, taking back and every conflict stay the disk planner's."""
    uid = cr.metadata.uid
    vm_uid = own_vm_uid(seen, cr)
    kept: dict[tuple[ChildKind, str], bool] = {}
    for disk in cr.spec.disks:
        kind: ChildKind = "DataVolume" if disk.populated else "PersistentVolumeClaim"
        key = (kind, names.disk_claim_name(cr.metadata.name, disk.name))
        kept[key] = kept.get(key, False) or cr.spec.keeps_on_delete(disk.name)
    actions: list[Action] = []
    for (kind, claim), keep in kept.items():
        held = (seen.data_volumes if kind == "DataVolume" else seen.claims).get(claim)
        if held is None or being_deleted(held) or not held_by(held, uid):
            continue
        if (hold := hold_patch(held, cr, keep, vm_uid=vm_uid)) is not None:
            why = "hold a kept disk by label" if keep else "own the disk"
            actions.append(PatchChild(kind, claim, hold, why, uid=uid_of(held)))
    return actions
