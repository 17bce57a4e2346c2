"""CDI DataVolumes: import a disk image into a PVC of the same name."""

from __future__ import annotations

from wukong.adapters.kube import Kube, api_path
from wukong.api import JsonObj, names


def dv_path(namespace: str, name: str | None = None) -> str:
    """REST path of a DataVolume (or the collection)."""
    return api_path(names.CDI_GROUP, names.CDI_VERSION, "datavolumes", namespace, name)


class Cdi:
    """DataVolume create/patch/delete. The DV spec is immutable: resize its PVC instead."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def create_dv(self, namespace: str, dv: JsonObj) -> JsonObj:
        """Create a DataVolume."""
        return await self.kube.create(dv_path(namespace), dv)

    async def patch_dv_metadata(
        self, namespace: str, name: str, patch: JsonObj, *, uid: str | None = None
    ) -> JsonObj:
        """Merge-patch a DataVolume's metadata (labels, ownerReferences); with `uid`, only
        that incarnation (`Kube.merge_patch`)."""
        path = dv_path(namespace, name)
        return await self.kube.merge_patch(path, {"metadata": patch}, uid=uid)

    async def delete_dv(
        self,
        namespace: str,
        name: str,
        *,
        uid: str | None = None,
        orphan: bool = False,
        foreground: bool = False,
    ) -> None:
        """Delete a DataVolume; `orphan` leaves its PVC behind for the user, `foreground`
        keeps the DataVolume until its PVC is gone (so a new one can take the name)."""
        propagation = "Orphan" if orphan else "Foreground" if foreground else "Background"
        await self.kube.delete(dv_path(namespace, name), uid=uid, propagation=propagation)
