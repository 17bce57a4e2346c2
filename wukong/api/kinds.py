"""Every kind of object the operator watches, in one table: API coordinates, the cache's
name for it, and the fields the operator reads (the cache keeps only those)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wukong.api import names

Reads = dict[str, Any]
"""Fields kept, as nested keys: `True` keeps a whole value, a dict keeps those keys of it.
`metadata` is always kept (without managedFields)."""
ALL = True


@dataclass(frozen=True)
class Kind:
    """One resource the operator watches."""

    kind: str
    group: str
    version: str
    plural: str
    namespaced: bool = True
    reads: Reads | None = field(default=None, hash=False)
    """What the operator reads of it; None: everything."""
    field_selector: str | None = None
    """Watch only the objects matching this field selector."""

    @property
    def cache(self) -> str:
        """The name the watch cache files it under (`virtualmachines.kubevirt.io`)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def api_version(self) -> str:
        """apiVersion of its objects."""
        return f"{self.group}/{self.version}" if self.group else self.version


_CONDITIONS = {"conditions": ALL}

WUKONG = Kind(names.KIND, names.GROUP, names.VERSION, names.PLURAL)
VM = Kind(
    "VirtualMachine",
    names.KUBEVIRT_GROUP,
    names.KUBEVIRT_VERSION,
    "virtualmachines",
    reads={
        "spec": {"runStrategy": ALL, "template": ALL, "instancetype": ALL, "preference": ALL},
        # volumeRequests: hot-plug calls virt-controller has yet to apply (hotplug.py).
        # printableStatus: what stops the VM from running (reconcile/vm_health.py).
        "status": {
            **_CONDITIONS,
            "printableStatus": ALL,
            "stateChangeRequests": ALL,
            "volumeRequests": ALL,
        },
    },
)
VMI = Kind(
    "VirtualMachineInstance",
    names.KUBEVIRT_GROUP,
    names.KUBEVIRT_VERSION,
    "virtualmachineinstances",
    reads={
        # What restart_required compares with the template (vm.REBOOT_FIELDS), and the
        # Secrets it references (access.py).
        "spec": {
            "domain": {
                "cpu": ALL,
                "memory": ALL,
                "resources": {"requests": ALL},  # the memory request a hot-plug raises
                "devices": {"interfaces": ALL},
            },
            "networks": ALL,
            "volumes": ALL,
            "accessCredentials": ALL,
            "evictionStrategy": ALL,
        },
        "status": {
            **_CONDITIONS,
            "phase": ALL,
            "nodeName": ALL,
            "interfaces": ALL,
            "volumeStatus": ALL,
            "reason": ALL,  # why a VMI is in phase Unknown (vm_health.py)
            # The virt-launcher pods (uid → node), whose kubelet Events name a missing Secret.
            "activePods": ALL,
            "migrationState": ALL,
            # How far a cpu/memory hot-plug has come (reconcile/resources.py).
            "currentCPUTopology": ALL,
            "memory": ALL,
        },
    },
)
DATA_VOLUME = Kind(
    "DataVolume",
    names.CDI_GROUP,
    names.CDI_VERSION,
    "datavolumes",
    reads={
        "spec": {"source": ALL},
        "status": {**_CONDITIONS, "phase": ALL, "progress": ALL, "restartCount": ALL},
    },
)
PVC = Kind(
    "PersistentVolumeClaim",
    "",
    "v1",
    "persistentvolumeclaims",
    reads={
        "spec": {"resources": ALL, "storageClassName": ALL},
        "status": {**_CONDITIONS, "phase": ALL, "capacity": ALL},
    },
)
NAD = Kind(
    "NetworkAttachmentDefinition",
    names.NAD_GROUP,
    names.NAD_VERSION,
    names.NAD_PLURAL,
    reads={"spec": {"config": ALL}},
)
STORAGE_CLASS = Kind(
    "StorageClass",
    "storage.k8s.io",
    "v1",
    "storageclasses",
    namespaced=False,
    reads={"allowVolumeExpansion": ALL, "volumeBindingMode": ALL, "provisioner": ALL},
)

NETWORK_POLICY = Kind(
    "WukongNetworkPolicy",
    names.GROUP,
    names.VERSION,
    "wukongnetworkpolicies",
    namespaced=False,
    reads={"spec": ALL},
)
"""The administrator's policy of which networks tenants may use (issue 15)."""

MIGRATION = Kind(
    "VirtualMachineInstanceMigration",
    names.KUBEVIRT_GROUP,
    names.KUBEVIRT_VERSION,
    "virtualmachineinstancemigrations",
    reads={
        "spec": {"vmiName": ALL},
        "status": {**_CONDITIONS, "phase": ALL, "migrationState": ALL},
    },
)
EVENT = Kind(
    "Event",
    "",
    "v1",
    "events",
    # Only the kubelet's "cannot mount" Events: how a missing Secret is named without
    # reading Secrets (wukong/reconcile/access.py).
    field_selector="reason=FailedMount",
    reads={"involvedObject": ALL, "reason": ALL, "message": ALL, "lastTimestamp": ALL},
)

WATCHED = (
    WUKONG,
    VM,
    VMI,
    DATA_VOLUME,
    PVC,
    NAD,
    STORAGE_CLASS,
    NETWORK_POLICY,
    MIGRATION,
    EVENT,
)
CHILDREN = {k.kind: k for k in (VM, DATA_VOLUME, PVC, NAD, MIGRATION)}
"""The kinds a Wukong owns, by `kind`."""


def project(obj: dict[str, Any], reads: Reads | None) -> dict[str, Any]:
    """`obj` with only the fields in `reads` (and its identity: kind, apiVersion, metadata
    without managedFields)."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        meta = {k: v for k, v in meta.items() if k != "managedFields"}
    if reads is None:
        if meta is obj.get("metadata"):
            return obj
        return {**obj, "metadata": meta}
    kept: dict[str, Any] = {k: obj[k] for k in ("apiVersion", "kind") if k in obj}
    if meta is not None:
        kept["metadata"] = meta
    return kept | _pick(obj, reads)


def _pick(value: dict[str, Any], reads: Reads) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, want in reads.items():
        if key not in value:
            continue
        item = value[key]
        out[key] = _pick(item, want) if isinstance(want, dict) and isinstance(item, dict) else item
    return out
