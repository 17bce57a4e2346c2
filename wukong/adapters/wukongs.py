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

    async def patch_status(
        self, namespace: str, name: str, uid: str, ops: list[JsonObj]
    ) -> JsonObj:
        """JSON-patch the status subresource with `ops`, pinned to the Wukong of `uid`: a
        `test` of `/metadata/uid` first. A JSON patch on `/status` is applied to the whole
        stored object, so the test sees its uid (a merge patch's `metadata.uid` is not
        checked there: a custom resource's status strategy copies the stored metadata over
        the patch's; docs/decisions.md, sessions 49 and 50).

        A patch that does not apply (another Wukong of the name, or an operation on a key
        the cache had and the stored status has not) is answered 422 `NOT_APPLIED` and
        raised as a Conflict: decide again from the cache. Any other 422 (the status
        refused by the CRD's schema) stays `Invalid`."""
        patch = [{"op": "test", "path": "/metadata/uid", "value": uid}, *ops]
        changed = (
            f"the status patch did not apply: not the Wukong it was decided for (uid {uid}), "
            "or its stored status changed meanwhile"
        )
        return await self.kube.json_patch(
            f"{wukong_path(namespace, name)}/status", patch, changed=changed
        )

    async def set_finalizers(
        self, namespace: str, name: str, finalizers: list[str], expected: list[str]
    ) -> JsonObj:
        """Replace the finalizer list if it still is `expected` (what this pass read).

        The precondition is on the finalizers alone (a JSON patch `test`), not on the
        resourceVersion: another writer's unrelated edit (a label, an annotation, the spec) must
        not fail it, or a busy object would meet a 409 on every pass. The `test` of an absent
        list is against null; a failed test, which the API server answers 422 `NOT_APPLIED`,
        is a Conflict (the finalizers changed meanwhile: decide again from the cache). Any
        other 422 (an admission policy denying the patch) stays `Invalid`."""
        ops: list[JsonObj] = [
            {"op": "test", "path": "/metadata/finalizers", "value": expected or None},
            {"op": "add", "path": "/metadata/finalizers", "value": finalizers},
        ]
        return await self.kube.json_patch(
            wukong_path(namespace, name), ops, changed="finalizers changed"
        )
