"""The CSI snapshotter's part of a VolumeSnapshot: a snapshot of a bound claim is taken at once.

KubeVirt's snapshot controller (virt-controller, pkg/storage/snapshot) makes a VolumeSnapshot
per volume of a VirtualMachineSnapshot and waits for `status.readyToUse` and
`status.creationTime` (it reads `restoreSize` at restore, `error.message` while not ready;
it never reads the VolumeSnapshotContent). Here a snapshot of a Bound claim is ready on the
first pass, as a CSI driver that snapshots in place is: `boundVolumeSnapshotContentName`
`snapcontent-<uid>` (the external-snapshotter's name; no content object is made, nothing
reads it), `restoreSize` the claim's capacity. A claim that does not exist (or is not Bound)
gets the external-snapshotter's error and a look again each second. No data is copied: the
simulator has none.

KubeVirt picks the VolumeSnapshotClass whose driver is the StorageClass's provisioner:
`install_snapshot_class` makes one for the simulated provisioner, the cluster's default.
"""

from __future__ import annotations

import logging

from ._informer import Informer
from ._kube import PVCS, ApiError, JsonObj, Kube, Resource, key_of
from ._queue import Controller
from .objects import deleting, now_iso, phase
from .storage import PROVISIONER

log = logging.getLogger(__name__)

VOLUMESNAPSHOTS = Resource("snapshot.storage.k8s.io", "v1", "volumesnapshots")
VOLUMESNAPSHOTCLASSES = Resource(
    "snapshot.storage.k8s.io", "v1", "volumesnapshotclasses", namespaced=False
)
SNAPSHOT_CLASS = "sim-snapshots"
DEFAULT_SNAPSHOT_CLASS_ANN = "snapshot.storage.kubernetes.io/is-default-class"


def snapshot_class_manifest() -> JsonObj:
    """The VolumeSnapshotClass of the simulated CSI driver (the default one)."""
    return {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshotClass",
        "metadata": {
            "name": SNAPSHOT_CLASS,
            "annotations": {DEFAULT_SNAPSHOT_CLASS_ANN: "true"},
            "labels": {"app.kubernetes.io/managed-by": "kubevirt-sim"},
        },
        "driver": PROVISIONER,
        "deletionPolicy": "Delete",
    }


async def install_snapshot_class(kube: Kube) -> bool:
    """Create the VolumeSnapshotClass; False when the cluster has no snapshot CRDs (the
    simulator then takes no snapshots, as a cluster without a CSI snapshotter)."""
    try:
        await kube.create(VOLUMESNAPSHOTCLASSES, None, snapshot_class_manifest())
    except ApiError as err:
        if err.status == 404:
            log.info("no VolumeSnapshot CRDs: the simulator takes no snapshots")
            return False
        if err.status != 409:
            raise
    return True


class SnapshotController(Controller):
    """Readies VolumeSnapshots of bound claims, as a CSI driver and the external-snapshotter
    together do."""

    name = "snapshots"

    def __init__(self, kube: Kube, snapshots: Informer, pvcs: Informer) -> None:
        super().__init__()
        self.kube, self.snapshots, self.pvcs = kube, snapshots, pvcs
        snapshots.handlers.append(lambda obj: self.enqueue(key_of(obj)))

    async def reconcile(self, key: str) -> float | None:
        ns, _, name = key.partition("/")
        snap = self.snapshots.get(ns, name)
        if snap is None or deleting(snap) or (snap.get("status") or {}).get("readyToUse"):
            return None
        claim = ((snap.get("spec") or {}).get("source") or {}).get("persistentVolumeClaimName")
        if not claim:  # a pre-provisioned snapshot (volumeSnapshotContentName): not simulated
            return None
        pvc = self.pvcs.get(ns, claim) or await self.kube.get_or_none(PVCS, ns, claim)
        if pvc is None or phase(pvc) != "Bound":
            # The external-snapshotter's words (pkg/common-controller snapshot_controller.go).
            message = f"Failed to check and update snapshot content: PVC {claim} is not bound"
            if pvc is None:
                message = (
                    "Failed to check and update snapshot content: failed to get input parameters "
                    f'to create snapshot {name}: "persistentvolumeclaim \\"{claim}\\" not found"'
                )
            error = {"message": message, "time": now_iso()}
            if ((snap.get("status") or {}).get("error") or {}).get("message") != message:
                await self._status(snap, {"readyToUse": False, "error": error})
            return 1.0
        capacity = ((pvc.get("status") or {}).get("capacity") or {}).get("storage")
        status = {
            "boundVolumeSnapshotContentName": f"snapcontent-{snap['metadata']['uid']}",
            "creationTime": now_iso(),
            "readyToUse": True,
            "error": None,
        }
        if capacity:
            status["restoreSize"] = capacity
        await self._status(snap, status)
        return None

    async def _status(self, snap: JsonObj, status: JsonObj) -> None:
        meta = snap["metadata"]
        patched = await self.kube.merge_patch(
            VOLUMESNAPSHOTS, meta["namespace"], meta["name"], {"status": status}, "status"
        )
        self.snapshots.apply(patched)
