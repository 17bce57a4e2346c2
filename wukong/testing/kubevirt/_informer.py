"""List+watch caches that survive expired resource versions and dropped connections."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from ._kube import ApiError, JsonObj, Kube, Resource, key_of

log = logging.getLogger(__name__)

Handler = Callable[[JsonObj], None]


def _rv(obj: JsonObj) -> int:
    try:
        return int(obj.get("metadata", {}).get("resourceVersion", "0"))
    except ValueError:
        return 0


class Informer:
    """An in-memory copy of one resource, kept current by a watch."""

    def __init__(self, kube: Kube, resource: Resource, namespace: str | None = None) -> None:
        self.kube = kube
        self.resource = resource
        self.namespace = namespace if resource.namespaced else None
        self.store: dict[str, JsonObj] = {}
        self.handlers: list[Handler] = []
        self.synced = asyncio.Event()
        # uids seen deleted: a late write-through must not resurrect them
        self._dead: set[str] = set()

    def get(self, namespace: str | None, name: str) -> JsonObj | None:
        """The cached object, or None."""
        return self.store.get(f"{namespace}/{name}" if namespace else name)

    def list(self, namespace: str | None = None) -> list[JsonObj]:
        """Cached objects, optionally of one namespace."""
        objs = list(self.store.values())
        if namespace is None:
            return objs
        return [o for o in objs if o["metadata"].get("namespace") == namespace]

    def apply(self, obj: JsonObj) -> None:
        """Write-through of our own write, so the next pass does not act on stale data."""
        if obj.get("metadata", {}).get("uid") in self._dead:
            return
        key = key_of(obj)
        old = self.store.get(key)
        if old is not None and _rv(old) > _rv(obj):
            return
        self.store[key] = obj
        self._notify(obj)

    def forget(self, obj: JsonObj) -> None:
        """Drop an object we just saw deleted."""
        self._dead.add(str(obj.get("metadata", {}).get("uid", "")))
        if self.store.pop(key_of(obj), None) is not None:
            self._notify(obj)

    def _notify(self, obj: JsonObj) -> None:
        for handler in self.handlers:
            handler(obj)

    async def run(self) -> None:
        """List, then watch from the list's resourceVersion; relist on 410 or errors."""
        backoff = 0.05
        while True:
            try:
                rv = await self._relist()
                backoff = 0.05
                await self._watch(rv)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # a broken watch must never kill the simulator
                log.debug("watch %s failed: %s", self.resource.plural, err)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _relist(self) -> str:
        listing = await self.kube.request("GET", self.resource.path(self.namespace))
        fresh = {key_of(o): o for o in listing.get("items", [])}
        gone = [o for k, o in self.store.items() if k not in fresh]
        self.store = fresh
        for obj in gone:
            self._dead.add(str(obj["metadata"].get("uid", "")))
            self._notify(obj)
        for obj in fresh.values():
            self._notify(obj)
        self.synced.set()
        return str(listing.get("metadata", {}).get("resourceVersion", ""))

    async def _watch(self, rv: str) -> None:
        query = {
            "watch": "true",
            "resourceVersion": rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "240",
        }
        while True:
            query["resourceVersion"] = rv
            async with self.kube.stream(self.resource.path(self.namespace), query) as resp:
                async for line in resp.content:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    kind, obj = event.get("type"), event.get("object", {})
                    if kind == "ERROR":
                        # 410 Gone: our resourceVersion is too old; the caller relists.
                        raise ApiError(int(obj.get("code", 500)), obj)
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if kind == "BOOKMARK":
                        continue
                    if kind == "DELETED":
                        self.forget(obj)
                    else:
                        self.apply(obj)


async def set_finalizers(
    kube: Kube, cache: Informer, res: Resource, obj: JsonObj, add: str = "", remove: str = ""
) -> JsonObj:
    """Add or remove one finalizer with a test-guarded JSON patch; returns the new object."""
    meta = obj.get("metadata", {})
    current = list(meta.get("finalizers") or [])
    wanted = [f for f in current if f != remove] + ([add] if add and add not in current else [])
    if wanted == current:
        return obj
    ops: list[JsonObj] = []
    if "finalizers" in meta:
        ops.append({"op": "test", "path": "/metadata/finalizers", "value": current})
    ops.append({"op": "add", "path": "/metadata/finalizers", "value": wanted})
    try:
        got = await kube.json_patch(res, meta.get("namespace"), meta["name"], ops)
    except ApiError as err:
        if err.status == 404:
            return obj
        raise
    cache.apply(got)
    return got
