"""PersistentVolumeClaims: blank disks, expansion, keeping disks after their Wukong."""

from __future__ import annotations

from wukong.adapters.kube import Kube, api_path
from wukong.api import JsonObj


def pvc_path(namespace: str, name: str | None = None) -> str:
    """REST path of a PVC (or the collection)."""
    return api_path("", "v1", "persistentvolumeclaims", namespace, name)


class Storage:
    """PVC create/expand/relabel/delete."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def create_pvc(self, namespace: str, pvc: JsonObj) -> JsonObj:
        """Create a PVC."""
        return await self.kube.create(pvc_path(namespace), pvc)

    async def expand_pvc(
        self, namespace: str, name: str, size: str, *, uid: str | None = None
    ) -> JsonObj:
        """Raise a PVC's storage request (the only resize a PVC allows); with `uid`, only
        that incarnation (`Kube.merge_patch`)."""
        patch = {"spec": {"resources": {"requests": {"storage": size}}}}
        return await self.kube.merge_patch(pvc_path(namespace, name), patch, uid=uid)

    async def patch_pvc_metadata(
        self, namespace: str, name: str, patch: JsonObj, *, uid: str | None = None
    ) -> JsonObj:
        """Merge-patch a PVC's metadata (labels, ownerReferences); with `uid`, only that
        incarnation (`Kube.merge_patch`)."""
        path = pvc_path(namespace, name)
        return await self.kube.merge_patch(path, {"metadata": patch}, uid=uid)

    async def delete_pvc(self, namespace: str, name: str, *, uid: str | None = None) -> None:
        """Delete a PVC (404 is success)."""
        await self.kube.delete(pvc_path(namespace, name), uid=uid)
