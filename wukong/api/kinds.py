"""Every kind of object the operator watches, in one table: API coordinates, the cache's
name for it, and the fields the operator reads (the cache keeps only those)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wukong.api import names

Reads = dict[str, Any]
"""Fields kept, as nested keys: `True` keeps a whole value, a dict keeps those keys of it.
`metadata` is kept whole (without managedFields) unless `reads` names its keys."""
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
        """The name the watch cache files it under (`virtualmachines.kubevirt.io`; with its
        field selector for a kind watched more than once, `events?reason=FailedMount`)."""
        name = f"{self.plural}.{self.group}" if self.group else self.plural
        return f"{name}?{self.field_selector}" if self.field_selector else name

    @property
    def api_version(self) -> str:
        """apiVersion of its objects."""
        return f"{self.group}/{self.version}" if self.group else self.version


_CONDITIONS = {"conditions": ALL}
# A child's metadata as the planners read it: identity, ownership, deletion and our own
# labels. Not its finalizers, annotations or other labels: KubeVirt, CDI and the storage
# provisioner change those as they work (a VM's finalizer, a claim's binding annotations,
# virt-handler's node label), and each such change woke a pass that could not act on it.
_OUR_LABELS = {
    label: ALL
    for label in (
        names.LABEL_MANAGED_BY,
        names.LABEL_WUKONG,
        names.LABEL_RETAINED_FROM,
        names.LABEL_RETAINED_UID,
        names.LABEL_DISK,
        names.LABEL_HELD_BY,
        names.LABEL_REQUEST,
        names.LABEL_RESTORED_FROM_VM,
    )
}
_CHILD_METADATA = {
    "name": ALL,
    "namespace": ALL,
    "uid": ALL,
    "resourceVersion": ALL,
    "creationTimestamp": ALL,
    "deletionTimestamp": ALL,
    "ownerReferences": ALL,
    "labels": _OUR_LABELS,
}

WUKONG = Kind(names.KIND, names.GROUP, names.VERSION, names.PLURAL)
VM = Kind(
    "VirtualMachine",
    names.KUBEVIRT_GROUP,
    names.KUBEVIRT_VERSION,
    "virtualmachines",
    reads={
        "metadata": _CHILD_METADATA,
        "spec": {"runStrategy": ALL, "template": ALL, "instancetype": ALL, "preference": ALL},
        # volumeRequests: hot-plug calls virt-controller has yet to apply (hotplug.py).
        # printableStatus: what stops the VM from running (reconcile/vm_health.py).
        # runStrategy: the one virt-controller last synced (lifecycle._run_strategy).
        # snapshotInProgress: a snapshot is done once KubeVirt unlocks the VM (snapshot.py).
        # desired/observedGeneration: the VMI made before the template's latest change (vm.py).
        # startFailure: a crash loop between its VMIs (vm_health.py).
        "status": {
            **_CONDITIONS,
            "desiredGeneration": ALL,
            "observedGeneration": ALL,
            "printableStatus": ALL,
            # A restore KubeVirt has locked the VM for (the Wukong's own or one made outside
            # it: `reconciler._outside_restores`).
            "restoreInProgress": ALL,
            "runStrategy": ALL,
            "snapshotInProgress": ALL,
            "startFailure": ALL,
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
        # annotations: the instancetype and preference it started with (vm._size_changes).
        "metadata": {**_CHILD_METADATA, "annotations": ALL},
        # What restart_required compares with the template (vm.restart_reasons), and the
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
            # The placement KubeVirt applied to it: a migration's target pod is placed by
            # these (reconcile/migration_placement.py).
            "nodeSelector": ALL,
            "affinity": ALL,
            "tolerations": ALL,
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
        "metadata": _CHILD_METADATA,
        # storage's request: the size CDI made its claim for (disks.claim_target).
        "spec": {"source": ALL, "sourceRef": ALL, "storage": {"resources": {"requests": ALL}}},
        "status": {**_CONDITIONS, "phase": ALL, "progress": ALL, "restartCount": ALL},
    },
)
DATA_SOURCE = Kind(
    "DataSource",
    names.CDI_GROUP,
    names.CDI_VERSION,
    "datasources",
    # Whether the DataSource a disk names exists, and what it points to (a golden image).
    reads={"spec": {"source": ALL}, "status": {**_CONDITIONS, "source": ALL}},
)
"""CDI's names for golden images (`disks[].dataSource`): read, never written."""
PVC = Kind(
    "PersistentVolumeClaim",
    "",
    "v1",
    "persistentvolumeclaims",
    reads={
        # populatedFor: a claim taken back for a new DataVolume holds data already (disks.py);
        # lastRestoreUID: the restore that made the claim (disks.restored_for).
        "metadata": {
            **_CHILD_METADATA,
            "annotations": {
                names.ANNOTATION_POPULATED_FOR: ALL,
                names.ANNOTATION_LAST_RESTORE: ALL,
            },
        },
        "spec": {"resources": ALL, "storageClassName": ALL},
        "status": {**_CONDITIONS, "phase": ALL, "capacity": ALL},
    },
)
NAD = Kind(
    "NetworkAttachmentDefinition",
    names.NAD_GROUP,
    names.NAD_VERSION,
    names.NAD_PLURAL,
    reads={"metadata": _CHILD_METADATA, "spec": {"config": ALL}},
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

CDI_CONFIG = Kind(
    "CDIConfig",
    names.CDI_GROUP,
    names.CDI_VERSION,
    "cdiconfigs",
    namespaced=False,
    # The filesystem overhead CDI's config controller settled on, globally and per class:
    # what CDI pads a DataVolume's claim by and KubeVirt takes off a grown disk's claim.
    reads={"status": {"filesystemOverhead": ALL}},
)
"""CDI's one configuration object ('config'): read, never written."""

SNAPSHOT = Kind(
    "VirtualMachineSnapshot",
    names.SNAPSHOT_GROUP,
    names.SNAPSHOT_VERSION,
    "virtualmachinesnapshots",
    reads={
        "metadata": _CHILD_METADATA,
        "spec": {"source": ALL},
        "status": {
            **_CONDITIONS,
            "phase": ALL,
            "readyToUse": ALL,
            "error": ALL,
            "indications": ALL,
            "snapshotVolumes": ALL,
            "creationTime": ALL,
        },
    },
)
RESTORE = Kind(
    "VirtualMachineRestore",
    names.SNAPSHOT_GROUP,
    names.SNAPSHOT_VERSION,
    "virtualmachinerestores",
    reads={
        "metadata": _CHILD_METADATA,
        "spec": {"virtualMachineSnapshotName": ALL, "target": ALL},
        "status": {**_CONDITIONS, "complete": ALL, "restoreTime": ALL, "restores": ALL},
    },
)
MIGRATION = Kind(
    "VirtualMachineInstanceMigration",
    names.KUBEVIRT_GROUP,
    names.KUBEVIRT_VERSION,
    "virtualmachineinstancemigrations",
    reads={
        "metadata": _CHILD_METADATA,
        "spec": {"vmiName": ALL},
        "status": {**_CONDITIONS, "phase": ALL, "migrationState": ALL},
    },
)


def _size_class(kind: str, plural: str, *, namespaced: bool) -> Kind:
    # Only the annotations KubeVirt copies onto the VMI and from there onto its pod
    # (pkg/instancetype/apply/annotations.go): a Multus one would put the pod on a network
    # spec.networks does not name (reconcile/tenancy.py, `size_class_refusals`).
    return Kind(
        kind,
        names.INSTANCETYPE_GROUP,
        names.INSTANCETYPE_VERSION,
        plural,
        namespaced=namespaced,
        reads={"metadata": {"name": ALL, "namespace": ALL, "uid": ALL, "resourceVersion": ALL},
               "spec": {"annotations": ALL}},
    )  # fmt: skip


INSTANCETYPE = _size_class(
    "VirtualMachineInstancetype", "virtualmachineinstancetypes", namespaced=True
)
PREFERENCE = _size_class("VirtualMachinePreference", "virtualmachinepreferences", namespaced=True)
SIZE_CLASSES = {k.kind: k for k in (INSTANCETYPE, PREFERENCE)}
"""The namespaced instancetypes and preferences a Wukong may name, by `kind`: read, never
written. Not the cluster-wide ones: only whoever may write cluster-scoped objects makes them
(a namespace's `edit`, kubevirt.io:edit included, cannot: a RoleBinding grants nothing
cluster-scoped), an administrator, whose annotation is theirs to set. (Watching them cost
the operator 1.4 MiB with KubeVirt's 109 common instancetypes: session 44's bench.)"""

_EVENT_READS = {"involvedObject": ALL, "reason": ALL, "message": ALL, "lastTimestamp": ALL}
MOUNT_EVENT = Kind(
    "Event",
    "",
    "v1",
    "events",
    # Only the kubelet's "cannot mount" Events: how a missing Secret is named without
    # reading Secrets (wukong/reconcile/access.py).
    field_selector="reason=FailedMount",
    reads=_EVENT_READS,
)
SANDBOX_EVENT = Kind(
    "Event",
    "",
    "v1",
    "events",
    # The kubelet's only word when it cannot make a pod's sandbox, a CNI/Multus ADD that
    # fails above all (reconcile/launcher_trouble.py). A field selector matches one value per
    # field (no set), so this is a watch of its own. firstTimestamp: since when it fails.
    field_selector="reason=FailedCreatePodSandBox",
    reads={**_EVENT_READS, "firstTimestamp": ALL},
)
CLONE_EVENT = Kind(
    "Event",
    "",
    "v1",
    "events",
    # CDI's only word on why a clone waits: a pod uses its source PVC (CDI clones only a
    # PVC no pod writes to), said on the DataVolume or its claim (wukong/reconcile/disks.py).
    field_selector="reason=CloneSourceInUse",
    reads={**_EVENT_READS, "firstTimestamp": ALL},
)

MIGRATION_EVENT = Kind(
    "Event",
    "",
    "v1",
    "events",
    # virt-controller's Warning on a migration whose target pod no node takes, posted at
    # every sync until it deletes the pod, 5 minutes on (migration.go handlePendingPod-
    # Timeout): the only word before the migration fails without a failureReason
    # (reconcile/migration.py). KubeVirt's reason starts with a lower-case m.
    field_selector="reason=migrationTargetPodUnschedulable",
    reads={**_EVENT_READS, "firstTimestamp": ALL},
)

WATCHED = (
    WUKONG,
    VM,
    VMI,
    DATA_VOLUME,
    DATA_SOURCE,
    PVC,
    NAD,
    STORAGE_CLASS,
    NETWORK_POLICY,
    CDI_CONFIG,
    MIGRATION,
    SNAPSHOT,
    RESTORE,
    MOUNT_EVENT,
    SANDBOX_EVENT,
    CLONE_EVENT,
    MIGRATION_EVENT,
    *SIZE_CLASSES.values(),
)
CHILDREN = {k.kind: k for k in (VM, DATA_VOLUME, PVC, NAD, MIGRATION, SNAPSHOT, RESTORE)}
"""The kinds a Wukong makes, by `kind` (all owned by it but its VM snapshots)."""


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
    if meta is not None and "metadata" not in reads:
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
