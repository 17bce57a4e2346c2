"""List+watch caches that survive expired resource versions and dropped connections."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable

from ._kube import ApiError, JsonObj, Kube, Resource, key_of

log = logging.getLogger(__name__)

Handler = Callable[[JsonObj], None]
IndexFn = Callable[[JsonObj], Iterable[str]]


def controller_uids(obj: JsonObj) -> list[str]:
    """uids of the object's controlling owners (at most one, by the API's rules)."""
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return [str(r["uid"]) for r in refs if r.get("controller") and r.get("uid")]


def uid_of(obj: JsonObj) -> list[str]:
    """The object's own uid, as an index key."""
    uid = obj.get("metadata", {}).get("uid")
    return [str(uid)] if uid else []


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
        # Lookups by uid and by controlling owner without a scan of the whole store: with
        # thousands of VMIs a scan per event made the simulator quadratic (the 5,000-Wukong
        # bench spent 60 % of the simulator's CPU in them).
        self._index_fns: dict[str, IndexFn] = {"uid": uid_of, "owner": controller_uids}
        self._indexes: dict[str, defaultdict[str, set[str]]] = {
            name: defaultdict(set) for name in self._index_fns
        }

    @property
    def indexes(self) -> frozenset[str]:
        """Names of the indexes kept."""
        return frozenset(self._index_fns)

    def add_index(self, name: str, fn: IndexFn) -> None:
        """Keep objects findable by the keys `fn` gives (before the informer runs)."""
        self._index_fns[name] = fn
        index = self._indexes[name] = defaultdict(set)
        for key, obj in self.store.items():
            for value in fn(obj):
                index[value].add(key)

    def indexed(self, name: str, value: str) -> list[JsonObj]:
        """Cached objects whose index `name` holds `value`."""
        keys = self._indexes[name].get(value) or ()
        return [self.store[k] for k in sorted(keys) if k in self.store]

    def by_uid(self, uid: str | None) -> JsonObj | None:
        """The cached object with this uid, or None."""
        found = self.indexed("uid", uid) if uid else []
        return found[0] if found else None

    def owned_by(self, uid: str | None) -> list[JsonObj]:
        """Cached objects whose controlling owner has this uid."""
        return self.indexed("owner", uid) if uid else []

    def _put(self, key: str, obj: JsonObj) -> None:
        self._drop(key)
        self.store[key] = obj
        for name, fn in self._index_fns.items():
            for value in fn(obj):
                self._indexes[name][value].add(key)

    def _drop(self, key: str) -> JsonObj | None:
        old = self.store.pop(key, None)
        if old is not None:
            for name, fn in self._index_fns.items():
                index = self._indexes[name]
                for value in fn(old):
                    keys = index.get(value)
                    if keys is not None:
                        keys.discard(key)
                        if not keys:
                            del index[value]
        return old

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
        self._put(key, obj)
        self._notify(obj)

    def forget(self, obj: JsonObj) -> None:
        """Drop an object we just saw deleted."""
        self._dead.add(str(obj.get("metadata", {}).get("uid", "")))
        if self._drop(key_of(obj)) is not None:
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
        for key in [*self.store]:
            self._drop(key)
        for key, obj in fresh.items():
            self._put(key, obj)
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
