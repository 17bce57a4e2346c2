"""virt-controller's instance types and preferences (KubeVirt v1.7.0 pkg/instancetype).

With the default `reference` policy, a VM that names an instancetype or preference gets each
stored as a ControllerRevision (controller/vm Sync -> revision Store), referenced from
`status.instancetypeRef` / `status.preferenceRef`; from then on the VM is sized by that
revision, not by later edits of the object. A VMI created from the VM has the instancetype
applied (apply/vmi.go: cpu, memory, nodeSelector, schedulerName, annotations) and then the
preference (preferred CPU topology, disk bus, interface model), plus the annotations naming
both. A field the template sets and the instancetype sets too is a conflict: no VMI.

Simplified: GPUs, host devices, IO threads and launch security of an instancetype, and
preference fields beyond those above, are not applied; `inferFromVolume` is not supported.
"""

from __future__ import annotations

import copy

from ._kube import ApiError, JsonObj, Kube, Resource
from .objects import owner_ref, quantity_bytes

GROUP, VERSION = "instancetype.kubevirt.io", "v1beta1"
REVISIONS = Resource("apps", "v1", "controllerrevisions")


def _kinds(noun: str) -> dict[str, Resource]:
    """The names a matcher may give for `noun` ("instancetype"): namespaced and cluster-wide,
    singular and plural, each with its resource."""
    found: dict[str, Resource] = {}
    for prefix, namespaced in (("virtualmachine", True), ("virtualmachinecluster", False)):
        resource = Resource(GROUP, VERSION, f"{prefix}{noun}s", namespaced=namespaced)
        found[f"{prefix}{noun}"] = found[f"{prefix}{noun}s"] = resource
    return found


# matcher field -> {kind (lower case, as find.go compares): resource}
_KINDS: dict[str, dict[str, Resource]] = {
    noun: _kinds(noun) for noun in ("instancetype", "preference")
}

_CLUSTER_DEFAULT = {
    "instancetype": "virtualmachineclusterinstancetype",
    "preference": "virtualmachineclusterpreference",
}
_STATUS_REF = {"instancetype": "instancetypeRef", "preference": "preferenceRef"}
# annotations.Set / preference annotations.Set: (namespaced, cluster-wide)
_ANNOTATIONS = {
    "instancetype": ("kubevirt.io/instancetype-name", "kubevirt.io/cluster-instancetype-name"),
    "preference": ("kubevirt.io/preference-name", "kubevirt.io/cluster-preference-name"),
}
_REVISION_LABELS = (
    "instancetype.kubevirt.io/object-generation",
    "instancetype.kubevirt.io/object-kind",
    "instancetype.kubevirt.io/object-name",
    "instancetype.kubevirt.io/object-uid",
    "instancetype.kubevirt.io/object-version",
)
FAILED_FIND = {"instancetype": "FailedFindInstancetype", "preference": "FailedFindPreference"}
FAILED_CREATE = "FailedCreate"


class SyncError(Exception):
    """A sync error of virt-controller: the VM's Failure condition (reason, message)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def _message(err: Exception) -> str:
    if isinstance(err, ApiError) and isinstance(err.body, dict):
        return str(err.body.get("message") or err)
    return str(err)


def has_matchers(vm: JsonObj) -> bool:
    """The VM names an instancetype or a preference."""
    spec = vm.get("spec") or {}
    return spec.get("instancetype") is not None or spec.get("preference") is not None


def _matcher(vm: JsonObj, field: str) -> JsonObj | None:
    got = (vm.get("spec") or {}).get(field)
    return got if isinstance(got, dict) else None


def _kind(matcher: JsonObj, field: str) -> str:
    return str(matcher.get("kind") or _CLUSTER_DEFAULT[field]).lower()


def _resource(matcher: JsonObj, field: str) -> Resource:
    kind = _kind(matcher, field)
    if kind not in _KINDS[field]:
        raise ValueError(
            f"got unexpected kind in {field.capitalize()}Matcher: {matcher.get('kind')}"
        )
    return _KINDS[field][kind]


def revision_name(vm: JsonObj, obj: JsonObj) -> str:
    """revision.GenerateName: vm, object name, version, object uid, object generation."""
    meta, vm_name = obj["metadata"], vm["metadata"]["name"]
    return f"{vm_name}-{meta['name']}-{VERSION}-{meta['uid']}-{meta.get('generation', 1)}"


def controller_revision(vm: JsonObj, obj: JsonObj) -> JsonObj:
    """revision.CreateControllerRevision: the object (labels, annotations, finalizers, owners
    and managed fields dropped) in a ControllerRevision the VM controls."""
    data = copy.deepcopy(obj)
    meta = data["metadata"]
    for key in ("labels", "annotations", "finalizers", "ownerReferences", "managedFields"):
        meta.pop(key, None)
    data["apiVersion"] = f"{GROUP}/{VERSION}"
    values = (
        str(meta.get("generation", 1)),
        str(obj.get("kind", "")),
        str(meta["name"]),
        str(meta["uid"]),
        VERSION,
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": revision_name(vm, obj),
            "namespace": vm["metadata"]["namespace"],
            "ownerReferences": [owner_ref(vm, "VirtualMachine", "kubevirt.io/v1")],
            "labels": dict(zip(_REVISION_LABELS, values, strict=True)),
        },
        "data": data,
        "revision": 0,
    }


def _conflicts(it: JsonObj, spec: JsonObj) -> list[str]:
    """Template fields the instancetype sets too (apply/*.go validate*), as field paths."""
    domain = spec.get("domain") or {}
    cpu, memory = domain.get("cpu") or {}, domain.get("memory") or {}
    resources = domain.get("resources") or {}
    it_cpu, it_memory = it.get("cpu") or {}, it.get("memory") or {}
    found = []
    if it.get("nodeSelector") and spec.get("nodeSelector"):
        found.append("nodeSelector")
    if it.get("schedulerName") and spec.get("schedulerName"):
        found.append("schedulerName")
    for kind in ("requests", "limits"):
        if "cpu" in (resources.get(kind) or {}):
            found.append(f"domain.resources.{kind}.cpu")
    for key in ("sockets", "cores", "threads"):
        if cpu.get(key):
            found.append(f"domain.cpu.{key}")
    for key in ("model", "dedicatedCPUPlacement", "isolateEmulatorThread", "numa", "realtime"):
        if cpu.get(key) and it_cpu.get(key) is not None:
            found.append(f"domain.cpu.{key}")
    if memory.get("guest") is not None:
        found.append("domain.memory.guest")
    elif memory.get("hugepages") is not None and it_memory.get("hugepages") is not None:
        found.append("domain.memory.hugepages")
    elif memory.get("maxGuest") is not None and it_memory.get("maxGuest") is not None:
        found.append("domain.memory.maxGuest")
    elif "memory" in (resources.get("requests") or {}):
        found.append("domain.resources.requests.memory")
    elif "memory" in (resources.get("limits") or {}):
        found.append("domain.resources.limits.memory")
    return found


def _topology(vcpus: int, preference: JsonObj | None) -> JsonObj:
    """applyGuestCPUTopology: every vCPU a socket unless the preference says otherwise."""
    cpu = {"cores": 1, "sockets": 1, "threads": 1}
    if vcpus == 1:
        return cpu
    pref_cpu = (preference or {}).get("cpu") or {}
    topology = pref_cpu.get("preferredCPUTopology") or "sockets"
    if topology in ("cores", "preferCores"):
        cpu["cores"] = vcpus
    elif topology in ("threads", "preferThreads"):
        cpu["threads"] = vcpus
    elif topology in ("spread", "preferSpread"):
        ratio = int((preference or {}).get("preferSpreadSocketToCoreRatio") or 2)
        across = (pref_cpu.get("spreadOptions") or {}).get("across") or "SocketsCores"
        ratio = int((pref_cpu.get("spreadOptions") or {}).get("ratio") or ratio)
        if across == "CoresThreads":
            cpu.update(threads=ratio, cores=vcpus // ratio)
        elif across == "SocketsCoresThreads":
            cpu.update(threads=2, cores=ratio, sockets=vcpus // 2 // ratio)
        else:
            cpu.update(cores=ratio, sockets=vcpus // ratio)
    else:
        cpu["sockets"] = vcpus
    return cpu


def _apply_instancetype(it: JsonObj, preference: JsonObj | None, vmi: JsonObj) -> None:
    spec = vmi["spec"]
    domain = spec.setdefault("domain", {})
    it_cpu, it_memory = it.get("cpu") or {}, it.get("memory") or {}
    if it.get("nodeSelector"):
        spec["nodeSelector"] = copy.deepcopy(it["nodeSelector"])
    if it.get("schedulerName"):
        spec["schedulerName"] = it["schedulerName"]
    cpu = domain.setdefault("cpu", {})
    for key in ("model", "dedicatedCPUPlacement", "isolateEmulatorThread", "numa", "realtime"):
        if it_cpu.get(key) is not None:
            cpu[key] = copy.deepcopy(it_cpu[key])
    if it_cpu.get("maxSockets") is not None:
        cpu["maxSockets"] = it_cpu["maxSockets"]
    cpu.update(_topology(int(it_cpu.get("guest") or 1), preference))
    memory = domain.setdefault("memory", {})
    guest = it_memory.get("guest")
    memory["guest"] = guest
    overcommit = int(it_memory.get("overcommitPercent") or 0)
    if overcommit > 0 and guest is not None:
        requested = int(quantity_bytes(guest) * (1 - overcommit / 100))
        resources = domain.setdefault("resources", {})
        resources.setdefault("requests", {})["memory"] = str(requested)
    for key in ("hugepages", "maxGuest"):
        if it_memory.get(key) is not None:
            memory[key] = copy.deepcopy(it_memory[key])
    notes = vmi["metadata"].setdefault("annotations", {})
    for key, value in (it.get("annotations") or {}).items():
        notes.setdefault(key, value)


def _apply_preference(preference: JsonObj, vmi: JsonObj) -> None:
    devices = (vmi["spec"].setdefault("domain", {})).setdefault("devices", {})
    prefs = preference.get("devices") or {}
    if prefs:
        for disk in devices.get("disks") or []:
            if not any(k in disk for k in ("disk", "cdrom", "lun")):
                disk["disk"] = {}
            for kind, key in (("disk", "preferredDiskBus"), ("cdrom", "preferredCdromBus"),
                              ("lun", "preferredLunBus")):  # fmt: skip
                if kind in disk and prefs.get(key) and not (disk[kind] or {}).get("bus"):
                    disk[kind] = {**(disk[kind] or {}), "bus": prefs[key]}
        for iface in devices.get("interfaces") or []:
            if prefs.get("preferredInterfaceModel") and not iface.get("model"):
                iface["model"] = prefs["preferredInterfaceModel"]
    notes = vmi["metadata"].setdefault("annotations", {})
    for key, value in (preference.get("annotations") or {}).items():
        notes.setdefault(key, value)


def apply_to_vmi(
    vm: JsonObj, vmi: JsonObj, instancetype: JsonObj | None, preference: JsonObj | None
) -> str | None:
    """Apply the specs to a new VMI (controller/vm ApplyToVMI); the conflict message, if any."""
    if instancetype is None and preference is None:
        return None
    for field in ("instancetype", "preference"):
        matcher = _matcher(vm, field)
        if matcher is not None:
            namespaced, cluster = _ANNOTATIONS[field]
            key = cluster if "cluster" in _kind(matcher, field) else namespaced
            vmi["metadata"].setdefault("annotations", {})[key] = matcher.get("name", "")
    if instancetype is not None:
        found = _conflicts(instancetype, vmi["spec"])
        if found:
            paths = ", ".join(f"spec.template.spec.{p}" for p in found)
            return f"VM field(s) {paths} conflicts with selected instance type"
        _apply_instancetype(instancetype, preference, vmi)
    if preference is not None:
        _apply_preference(preference, vmi)
    return None


class Instancetypes:
    """The I/O half: find instance types and preferences, store their revisions."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def _revision(self, vm: JsonObj, field: str) -> JsonObj | None:
        """revision.go Find: the matcher's revisionName, else the status ref's revision when
        it is of the object the matcher names."""
        matcher = _matcher(vm, field) or {}
        ns = vm["metadata"]["namespace"]
        if matcher.get("revisionName"):
            return await self.kube.get(REVISIONS, ns, str(matcher["revisionName"]))
        ref = (vm.get("status") or {}).get(_STATUS_REF[field]) or {}
        name = (ref.get("controllerRevisionRef") or {}).get("name")
        if not name:
            return None
        revision = await self.kube.get(REVISIONS, ns, str(name))
        labels = revision["metadata"].get("labels") or {}
        return revision if labels.get(_REVISION_LABELS[2]) == matcher.get("name") else None

    async def _object(self, vm: JsonObj, field: str) -> JsonObj:
        matcher = _matcher(vm, field) or {}
        res = _resource(matcher, field)
        ns = vm["metadata"]["namespace"] if res.namespaced else None
        return await self.kube.get(res, ns, str(matcher.get("name", "")))

    async def find(self, vm: JsonObj, field: str) -> JsonObj | None:
        """The spec the VM is sized by (find/spec.go): from its revision, else the object."""
        if _matcher(vm, field) is None:
            return None
        revision = await self._revision(vm, field)
        source = revision["data"] if revision is not None else await self._object(vm, field)
        spec: JsonObj = source.get("spec") or {}
        return spec

    async def specs(self, vm: JsonObj) -> tuple[JsonObj | None, JsonObj | None]:
        """(instancetype spec, preference spec); SyncError when one cannot be found."""
        found: list[JsonObj | None] = []
        for field in ("instancetype", "preference"):
            try:
                found.append(await self.find(vm, field))
            except (ApiError, ValueError) as err:
                raise SyncError(FAILED_FIND[field], _message(err)) from err
        return found[0], found[1]

    async def sync(self, vm: JsonObj) -> JsonObj:
        """controller/vm Sync with the reference policy: check both exist, store a revision of
        each the status does not reference yet; the status patch referencing them (empty when
        nothing changed). SyncError when that fails."""
        await self.specs(vm)
        patch: JsonObj = {}
        for field in ("instancetype", "preference"):
            matcher = _matcher(vm, field)
            if matcher is None:
                continue
            current = (vm.get("status") or {}).get(_STATUS_REF[field]) or {}
            ref = copy.deepcopy(current)
            kind = matcher.get("kind") or ""
            if (matcher.get("name") and matcher["name"] != ref.get("name")) or (
                kind and kind != ref.get("kind")
            ):
                ref.update(name=matcher.get("name"), kind=kind or ref.get("kind"))
                ref.pop("controllerRevisionRef", None)
            if matcher.get("revisionName"):
                ref["controllerRevisionRef"] = {"name": matcher["revisionName"]}
            if not ref.get("controllerRevisionRef"):
                try:
                    stored = await self._store(vm, field)
                except ApiError as err:
                    raise SyncError(
                        FAILED_CREATE,
                        "error encountered while storing instancetype.kubevirt.io "
                        f"controllerRevisions: {_message(err)}",
                    ) from err
                ref["controllerRevisionRef"] = {"name": stored}
            if ref != current:
                patch[_STATUS_REF[field]] = ref
        return patch

    async def _store(self, vm: JsonObj, field: str) -> str:
        obj = await self._object(vm, field)
        body = controller_revision(vm, obj)
        ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
        try:
            await self.kube.create(REVISIONS, ns, body)
        except ApiError as err:
            if err.status != 409:
                raise
            existing = await self.kube.get(REVISIONS, ns, name)
            if existing.get("data") != body["data"]:
                raise ApiError(
                    409, f"found existing ControllerRevision with unexpected data: {name}"
                ) from err
        return str(name)
