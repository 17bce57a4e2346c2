"""Multus NetworkAttachmentDefinitions (k8s.cni.cncf.io/v1)."""

from __future__ import annotations

from wukong.adapters.kube import Kube, api_path
from wukong.api import JsonObj, names


def nad_path(namespace: str, name: str | None = None) -> str:
    """REST path of a NAD (or the collection)."""
    return api_path(names.NAD_GROUP, names.NAD_VERSION, names.NAD_PLURAL, namespace, name)


class Multus:
    """NAD create/update/delete; only NADs the operator owns are ever changed."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def create_nad(self, namespace: str, nad: JsonObj) -> JsonObj:
        """Create a NAD."""
        return await self.kube.create(nad_path(namespace), nad)

    async def set_config(
        self, namespace: str, name: str, config: str, *, uid: str | None = None
    ) -> JsonObj:
        """Replace an owned NAD's CNI config (a JSON string); with `uid`, only that
        incarnation (`Kube.merge_patch`)."""
        patch = {"spec": {"config": config}}
        return await self.kube.merge_patch(nad_path(namespace, name), patch, uid=uid)

    async def delete_nad(self, namespace: str, name: str, *, uid: str | None = None) -> None:
        """Delete an owned NAD (404 is success)."""
        await self.kube.delete(nad_path(namespace, name), uid=uid)
