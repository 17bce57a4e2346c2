"""Watch one resource in a namespace and note when each object first reaches a wanted state.

A watch, not polling: LISTing 1,000 Wukongs twice a second would load the API server the
benchmark is measuring.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from kubernetes_asyncio.client import ApiClient

from wukong.runtime import Informer, ResourceRef, Store
from wukong.testing._background import Background

Obj = dict[str, Any]
Predicate = Callable[[Obj], bool]


def condition_true(obj: Obj, type_: str) -> bool:
    """Whether status.conditions has `type_` with status True."""
    conds = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == type_ and c.get("status") == "True" for c in conds)


def wukong_running(obj: Obj) -> bool:
    """What the user waits for: the Wukong's phase is Running."""
    return (obj.get("status") or {}).get("phase") == "Running"


def vmi_running(obj: Obj) -> bool:
    """The floor's equivalent of a Running Wukong (the operator's `vmi_up`): Running and Ready."""
    return (obj.get("status") or {}).get("phase") == "Running" and condition_true(obj, "Ready")


class Tracker(Background):
    """An informer plus the monotonic time at which each object first satisfied `done`."""

    def __init__(
        self, api: ApiClient, kind: tuple[str, str, str], namespace: str, done: Predicate
    ) -> None:
        self.ref = ResourceRef(*kind, namespace)
        self.store = Store()
        self.informer = Informer(api, self.ref, self.store)
        self.informer.add_handler(self._on_event)
        self.done = done
        self.reached: dict[str, float] = {}
        self._changed = asyncio.Event()

    async def start(self) -> None:
        """Watch; returns once the informer has listed."""
        self.informer.start()
        await asyncio.wait_for(self.informer.synced.wait(), 30)

    async def stop(self) -> None:
        """Stop watching."""
        await self.informer.stop()

    def _on_event(self, event_type: str, obj: Obj) -> None:
        name = str(obj["metadata"]["name"])
        if event_type != "DELETED" and name not in self.reached and self.done(obj):
            self.reached[name] = time.monotonic()
        self._changed.set()

    def get(self, name: str) -> Obj | None:
        """The cached object."""
        return self.store.get(self.ref.name, self.ref.namespace or "", name)

    def count(self) -> int:
        """Objects in the cache."""
        return self.store.count(self.ref.name)

    async def until(self, check: Callable[[], bool], within: float) -> None:
        """Wait, woken by watch events, until `check()`; TimeoutError after `within` s."""
        deadline = time.monotonic() + within
        while not check():
            self._changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.ref.name} in {self.ref.namespace}: not there in time")
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 1.0))
            except TimeoutError:
                continue

    async def all_reached(self, n: int, within: float) -> float:
        """Wait until `n` objects reached the state; the time the last one did."""
        await self.until(lambda: len(self.reached) >= n, within)
        return max(self.reached.values())
