"""A controller-runtime style work queue: one pass per key at a time, deduplicated."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod

from ._kube import ApiError

log = logging.getLogger(__name__)


class Controller(ABC):
    """Runs `reconcile(key)` for queued keys; a pass may ask to be requeued after t seconds."""

    name = "controller"
    workers = 4

    def __init__(self) -> None:
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._active: set[str] = set()
        self._dirty: set[str] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._failures: dict[str, int] = {}

    def enqueue(self, key: str, after: float = 0.0) -> None:
        """Schedule a pass for `key`, now or after `after` seconds (the earliest wins)."""
        if after > 0:
            loop = asyncio.get_running_loop()
            timer = self._timers.get(key)
            due = loop.time() + after
            if timer is not None and timer.when() <= due:
                return
            if timer is not None:
                timer.cancel()
            self._timers[key] = loop.call_at(due, self._fire, key)
            return
        if key in self._active:
            self._dirty.add(key)  # re-run once the current pass ends
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.enqueue(key)

    @abstractmethod
    async def reconcile(self, key: str) -> float | None:
        """One pass; return seconds until the next wanted pass, or None."""

    async def run(self) -> None:
        """Work the queue with a few workers until cancelled."""
        workers = [asyncio.create_task(self._work()) for _ in range(self.workers)]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            for timer in self._timers.values():
                timer.cancel()

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._active.add(key)
            try:
                after = await self.reconcile(key)
                self._failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                # Conflicts and races are normal: retry soon, back off on repeats.
                count = self._failures.get(key, 0) + 1
                self._failures[key] = count
                after = min(0.01 * 2**count, 2.0)
                level = logging.DEBUG if isinstance(err, ApiError) else logging.WARNING
                log.log(
                    level,
                    "%s %s: %s (retry in %.2fs)",
                    self.name,
                    key,
                    err,
                    after,
                    exc_info=level == logging.WARNING,
                )
            finally:
                self._active.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self.enqueue(key)
            elif after is not None:
                self.enqueue(key, max(after, 0.001))
