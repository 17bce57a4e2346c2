"""`temporary_namespace`: a namespace of its own for one test, deleted afterwards.

async with temporary_namespace(api, "t-") as namespace:
    ...

On leaving, the Wukongs still in it lose the operator's finalizer first, and once the
namespace is deleted its pods go at once: the operator and the simulated kubelet that would
end them have stopped by then, and a namespace stuck Terminating is not free. The
namespace controller sweeps every resource type of a Terminating namespace (a LIST and a
DELETE collection each, ~90 types with KubeVirt's and CDI's) again every few seconds until
it is empty: in session 51, 20-30 such namespaces per API server after four minutes of the
integration tests made 80 % of its requests (~200 a second), more the longer the session ran.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from wukong.api.names import FINALIZER, GROUP, PLURAL, VERSION

__all__ = ["temporary_namespace"]


@asynccontextmanager
async def temporary_namespace(api: ApiClient, prefix: str, digits: int = 10) -> AsyncIterator[str]:
    """Create `prefix` plus `digits` random hex digits; delete it on leaving, unless already
    gone. Deletion only starts: the namespace controller finishes it later."""
    name = f"{prefix}{uuid.uuid4().hex[:digits]}"
    core = client.CoreV1Api(api)
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    await release_wukongs(api, name)
    try:
        await core.delete_namespace(name)
        # What the test's kubelet (its simulator, stopped by now) would do for the pods the
        # deletion ends: a pod left terminating holds its VMI's and VM's finalizers and its
        # claims' protection. Nothing can be made in a Terminating namespace, so this is all.
        await core.delete_collection_namespaced_pod(name, grace_period_seconds=0)
    except ApiException as error:
        if error.status != 404:
            raise


async def release_wukongs(api: ApiClient, namespace: str) -> None:
    """Take the operator's finalizer off every Wukong in `namespace` (none: nothing; no
    Wukong CRD or no namespace: nothing either)."""
    custom = client.CustomObjectsApi(api)
    try:
        found = await custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    except ApiException as error:
        if error.status == 404:
            return
        raise
    for wukong in found["items"]:
        finalizers = wukong["metadata"].get("finalizers") or []
        if FINALIZER not in finalizers:
            continue
        at = finalizers.index(FINALIZER)
        patch = [
            {"op": "test", "path": f"/metadata/finalizers/{at}", "value": FINALIZER},
            {"op": "remove", "path": f"/metadata/finalizers/{at}"},
        ]
        try:
            name = wukong["metadata"]["name"]  # a list body goes as a JSON patch
            await custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, patch
            )
        except ApiException as error:
            # Gone, or its finalizers changed since the list (422): nobody else is left to
            # hold it, so the namespace controller still ends it.
            if error.status not in (404, 409, 422):
                raise
