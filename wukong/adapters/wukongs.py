"""The Wukong resource itself: status through /status, the finalizer through metadata."""

from __future__ import annotations

from wukong.adapters.kube import Kube, api_path
from wukong.api import JsonObj, names


def wukong_path(namespace: str, name: str | None = None) -> str:
    """REST path of a Wukong (or the collection)."""
    return api_path(names.GROUP, names.VERSION, names.PLURAL, namespace, name)


class Wukongs:
    """Writes the operator makes to its own resource."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def patch_status(self, namespace: str, name: str, uid: str, status: JsonObj) -> JsonObj:
        """Merge-patch `status` via the status subresource, pinned to one incarnation by UID."""
        patch = {"metadata": {"uid": uid}, "status": status}
        return await self.kube.merge_patch(f"{wukong_path(namespace, name)}/status", patch)

    async def set_finalizers(
        self, namespace: str, name: str, finalizers: list[str], resource_version: str
    ) -> JsonObj:
        """Replace the finalizer list; a stale `resource_version` gives 409 (retry next pass)."""
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": resource_version}}
        return await self.kube.merge_patch(wukong_path(namespace, name), patch)
