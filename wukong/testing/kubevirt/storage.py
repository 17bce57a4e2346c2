"""A CSI driver + PV controller stand-in: storage classes, PVC binding and expansion.

No PersistentVolumes are created: a bound PVC points at a made-up `pvc-<uid>` volume name.
Refusing to grow a claim of a class without allowVolumeExpansion is not done here: the API
server's own PersistentVolumeClaimResize admission plugin does it (403, the real message).
"""

from __future__ import annotations

import asyncio
import copy

from ._informer import Informer
from ._kube import PVCS, STORAGECLASSES, ApiError, JsonObj, Kube, key_of
from ._queue import Controller
from .config import SimConfig
from .objects import (
    CLAIMS,
    annotation,
    claim_keys,
    claim_of,
    condition,
    deleting,
    drop_condition,
    is_final,
    phase,
    quantity_bytes,
    set_condition,
)

PROVISIONER = "sim.kubevirt.io/hostpath"
DEFAULT_CLASS_ANN = "storageclass.kubernetes.io/is-default-class"
SELECTED_NODE_ANN = "volume.kubernetes.io/selected-node"
BIND_IMMEDIATE_ANN = "cdi.kubevirt.io/storage.bind.immediate.requested"
FS_RESIZE_MESSAGE = (
    "Waiting for user to (re-)start a pod to finish file system resize of volume on node."
)


def storage_class_manifest(name: str, mode: str, expandable: bool, default: bool) -> JsonObj:
    """A StorageClass served by the simulated provisioner."""
    meta: JsonObj = {"name": name, "labels": {"app.kubernetes.io/managed-by": "kubevirt-sim"}}
    if default:
        meta["annotations"] = {DEFAULT_CLASS_ANN: "true"}
    sc: JsonObj = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": meta,
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": mode,
    }
    if expandable:
        sc["allowVolumeExpansion"] = True
    return sc


async def install_storage_classes(kube: Kube, cfg: SimConfig) -> None:
    """Create the configured classes; existing ones are left alone (they are cluster-wide)."""
    for name, (mode, expandable, default) in cfg.storage_classes.items():
        try:
            await kube.create(
                STORAGECLASSES, None, storage_class_manifest(name, mode, expandable, default)
            )
        except ApiError as err:
            if err.status != 409:
                raise


class StorageController(Controller):
    """Binds PVCs of known classes and carries expansions through their conditions."""

    name = "storage"

    def __init__(
        self, kube: Kube, cfg: SimConfig, pvcs: Informer, classes: Informer, vmis: Informer
    ) -> None:
        super().__init__()
        self.kube, self.cfg = kube, cfg
        self.pvcs, self.classes, self.vmis = pvcs, classes, vmis
        self._marks: dict[tuple[str, str], float] = {}
        pvcs.handlers.append(lambda obj: self.enqueue(key_of(obj)))
        if CLAIMS not in vmis.indexes:
            vmis.add_index(CLAIMS, claim_keys)
        vmis.handlers.append(self._on_vmi)
        classes.handlers.append(self._on_class)

    def _on_class(self, _sc: JsonObj) -> None:
        for pvc in self.pvcs.list():
            self.enqueue(key_of(pvc))

    def _on_vmi(self, vmi: JsonObj) -> None:
        ns = vmi["metadata"]["namespace"]
        for volume in (vmi.get("spec") or {}).get("volumes") or []:
            claim = claim_of(volume)
            if claim:
                self.enqueue(f"{ns}/{claim}")

    def _since(self, uid: str, stage: str) -> float:
        now = asyncio.get_running_loop().time()
        return now - self._marks.setdefault((uid, stage), now)

    def _storage_class(self, pvc: JsonObj) -> JsonObj | None:
        name = (pvc.get("spec") or {}).get("storageClassName")
        if name:
            return self.classes.get(None, name)
        return None

    def _default_class(self) -> str | None:
        for sc in self.classes.list():
            if annotation(sc, DEFAULT_CLASS_ANN) == "true":
                return str(sc["metadata"]["name"])
        return None

    def _consumers(self, pvc: JsonObj, running_only: bool = False) -> list[JsonObj]:
        users = self.vmis.indexed(CLAIMS, key_of(pvc))
        return [
            vmi
            for vmi in users
            if not is_final(vmi) and not (running_only and phase(vmi) != "Running")
        ]

    async def reconcile(self, key: str) -> float | None:
        """Bind, then follow expansion requests of one PVC."""
        ns, _, name = key.partition("/")
        pvc = self.pvcs.get(ns, name)
        if pvc is None or deleting(pvc):
            return None
        spec = pvc.get("spec") or {}
        if not spec.get("storageClassName") and "storageClassName" not in spec:
            # Retroactive default class assignment, as the PV controller does since 1.28.
            default = self._default_class()
            if default:
                patched = await self.kube.merge_patch(
                    PVCS, ns, name, {"spec": {"storageClassName": default}}
                )
                self.pvcs.apply(patched)
                return None
        if phase(pvc) != "Bound":
            return await self._bind(pvc)
        return await self._expand(pvc)

    async def _bind(self, pvc: JsonObj) -> float | None:
        sc = self._storage_class(pvc)
        if sc is None:
            return None  # unknown class: nobody provisions it, it stays Pending like for real
        uid = pvc["metadata"]["uid"]
        if sc.get("volumeBindingMode") == "WaitForFirstConsumer":
            wanted = (
                annotation(pvc, BIND_IMMEDIATE_ANN) is not None
                or annotation(pvc, SELECTED_NODE_ANN) is not None
                or bool(self._consumers(pvc))
            )
            if not wanted:
                return None
            waited = self._since(uid, "consumer")
        else:
            waited = self._since(uid, "seen")
        if waited < self.cfg.bind_delay:
            return self.cfg.bind_delay - waited
        ns, name = pvc["metadata"]["namespace"], pvc["metadata"]["name"]
        spec = pvc.get("spec") or {}
        request = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        annotations = {
            "pv.kubernetes.io/bind-completed": "yes",
            "pv.kubernetes.io/bound-by-controller": "yes",
            "volume.kubernetes.io/storage-provisioner": PROVISIONER,
        }
        patch: JsonObj = {"metadata": {"annotations": annotations}}
        if not spec.get("volumeName"):
            patch["spec"] = {"volumeName": f"pvc-{uid}"}
        await self.kube.merge_patch(PVCS, ns, name, patch)
        status = {
            "phase": "Bound",
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "capacity": {"storage": request},
        }
        self.pvcs.apply(await self.kube.merge_patch(PVCS, ns, name, {"status": status}, "status"))
        return None

    async def _expand(self, pvc: JsonObj) -> float | None:
        spec, status = pvc.get("spec") or {}, copy.deepcopy(pvc.get("status") or {})
        request = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        capacity = (status.get("capacity") or {}).get("storage")
        if request is None or quantity_bytes(request) <= quantity_bytes(capacity):
            return None
        uid, step = pvc["metadata"]["uid"], self.cfg.resize_step_delay
        conds = list(status.get("conditions") or [])
        if condition(pvc, "FileSystemResizePending") is not None:
            waited = self._since(uid, f"fs-{request}")
            if waited < step:
                return step - waited
            block = spec.get("volumeMode") == "Block"
            if self.cfg.expansion_waits_for_consumer and not block:
                if not self._consumers(pvc, running_only=True):
                    return None  # a VMI event wakes us up
            status["capacity"] = {**(status.get("capacity") or {}), "storage": request}
            status["conditions"] = drop_condition(conds, "FileSystemResizePending") or None
            status["allocatedResourceStatuses"] = None
            status["allocatedResources"] = {"storage": request}
        elif condition(pvc, "Resizing") is not None:
            waited = self._since(uid, f"ctrl-{request}")
            if waited < step:
                return step - waited
            self._since(uid, f"fs-{request}")
            conds = set_condition(
                drop_condition(conds, "Resizing"),
                "FileSystemResizePending",
                "True",
                message=FS_RESIZE_MESSAGE,
            )
            status["conditions"] = conds
            status["allocatedResourceStatuses"] = {"storage": "NodeResizePending"}
        else:
            self._since(uid, f"ctrl-{request}")
            status["conditions"] = set_condition(conds, "Resizing", "True")
            status["allocatedResources"] = {"storage": request}
            status["allocatedResourceStatuses"] = {"storage": "ControllerResizeInProgress"}
        ns, name = pvc["metadata"]["namespace"], pvc["metadata"]["name"]
        self.pvcs.apply(await self.kube.merge_patch(PVCS, ns, name, {"status": status}, "status"))
        return step
