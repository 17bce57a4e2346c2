"""The Wukong resource itself: status through /status, the finalizer through metadata."""

from __future__ import annotations

from wukong.adapters.kube import Kube, api_path
from wukong.api import JsonObj, names
from wukong.errors import Conflict, Invalid


def wukong_path(namespace: str, name: str | None = None) -> str:
    """REST path of a Wukong (or the collection)."""
    return api_path(names.GROUP, names.VERSION, names.PLURAL, namespace, name)


class Wukongs:
    """Writes the operator makes to its own resource."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def patch_status(self, namespace: str, name: str, uid: str, status: JsonObj) -> JsonObj:
        """Merge-patch `status` via the status subresource. It carries the UID, which the API
        server does not check there: a custom resource's status strategy copies the stored
        object's metadata over the patch's (docs/decisions.md, session 49)."""
        patch = {"metadata": {"uid": uid}, "status": status}
        return await self.kube.merge_patch(f"{wukong_path(namespace, name)}/status", patch)

    async def set_finalizers(
        self, namespace: str, name: str, finalizers: list[str], expected: list[str]
    ) -> JsonObj:
        """Replace the finalizer list if it still is `expected` (what this pass read).

        The precondition is on the finalizers alone (a JSON patch `test`), not on the
        resourceVersion: another writer's unrelated edit (a label, an annotation, the spec) must
        not fail it, or a busy object would meet a 409 on every pass. The `test` of an absent
        list is against null; a failed test, which the API server answers 422, is a Conflict
        (the finalizers changed meanwhile: decide again from the cache)."""
        ops: list[JsonObj] = [
            {"op": "test", "path": "/metadata/finalizers", "value": expected or None},
            {"op": "add", "path": "/metadata/finalizers", "value": finalizers},
        ]
        try:
            return await self.kube.json_patch(wukong_path(namespace, name), ops)
        except Invalid as error:
            raise Conflict(409, "Conflict", f"finalizers changed: {error.message}") from error
