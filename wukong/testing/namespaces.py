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

from wukong.adapters.kube import Kube
from wukong.adapters.wukongs import Wukongs, wukong_path
from wukong.api.names import FINALIZER
from wukong.errors import Conflict, NotFound

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
        # What the test's kubelet would do for the pods the deletion ends: the simulator ends
        # its own when it stops, not a pod the test made itself, which left terminating would
        # hold its claims' protection. Nothing can be made in a Terminating namespace now.
        await core.delete_collection_namespaced_pod(name, grace_period_seconds=0)
    except ApiException as error:
        if error.status != 404:
            raise


async def release_wukongs(api: ApiClient, namespace: str) -> None:
    """Take the operator's finalizer off every Wukong in `namespace`, as the operator itself
    does (`Wukongs.set_finalizers`: only if the list is still what was read). None: nothing;
    no Wukong CRD or no namespace: nothing either."""
    wukongs = Wukongs(Kube(api))
    try:
        found = await wukongs.kube.get(wukong_path(namespace))
    except NotFound:
        return
    for wukong in found["items"]:
        held = wukong["metadata"].get("finalizers") or []
        if FINALIZER not in held:
            continue
        kept = [f for f in held if f != FINALIZER]
        try:
            await wukongs.set_finalizers(namespace, wukong["metadata"]["name"], kept, held)
        except (NotFound, Conflict):
            # Gone, or its finalizers changed since the list: nobody else is left to hold
            # it, so the namespace controller still ends it.
            continue
