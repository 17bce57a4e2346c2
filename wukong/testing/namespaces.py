"""`temporary_namespace`: a namespace of its own for one test, deleted afterwards.

async with temporary_namespace(api, "t-") as namespace:
    ...
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

__all__ = ["temporary_namespace"]


@asynccontextmanager
async def temporary_namespace(api: ApiClient, prefix: str, digits: int = 10) -> AsyncIterator[str]:
    """Create `prefix` plus `digits` random hex digits; delete it on leaving, unless already
    gone. Deletion only starts: the namespace controller finishes it later."""
    name = f"{prefix}{uuid.uuid4().hex[:digits]}"
    core = client.CoreV1Api(api)
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    try:
        await core.delete_namespace(name)
    except ApiException as error:
        if error.status != 404:
            raise
