"""A work queue of keys in the manner of client-go's rate-limited delaying workqueue."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections import deque
from collections.abc import Coroutine
from typing import Any

from wukong.runtime._ratelimit import ExponentialBackoff, TokenBucket
from wukong.runtime.clock import Clock, MonotonicClock


class QueueShutDown(Exception):
    """Raised by `WorkQueue.get` once the queue is shut down."""


class WorkQueue:
    """Keys waiting for a pass: deduped, never handed out twice at once, delayed or backed off.

    A key is in at most one of three places: the ready FIFO, "dirty while processing"
    (re-queued by `done`), or neither. Delayed keys wait in a heap until they come due.
    After `shutdown`, queued keys are dropped (the next pass after a restart relists
    everything anyway) and `get` raises `QueueShutDown`; keys in flight may finish.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        backoff_base: float = 0.005,
        backoff_cap: float = 1000.0,
        global_qps: float | None = None,
        global_burst: int = 100,
    ) -> None:
        self._clock: Clock = clock or MonotonicClock()
        self._backoff = ExponentialBackoff(backoff_base, backoff_cap)
        self._bucket = (
            TokenBucket(global_qps, global_burst, self._clock) if global_qps is not None else None
        )
        self._ready: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._available = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._shutting_down = False
        # Delayed keys: heap of (due, seq, key); `_due` holds each key's earliest due time
        # so a later add_after never postpones an earlier one, and stale heap rows are skipped.
        self._heap: list[tuple[float, int, str]] = []
        self._due: dict[str, float] = {}
        self._seq = itertools.count()
        self._heap_changed = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None
        # When each ready key became ready, and how long each key handed out had waited.
        self._ready_at: dict[str, float] = {}
        self._waited: dict[str, float] = {}

    def __len__(self) -> int:
        """Keys ready to be handed out (not delayed, not in flight)."""
        return len(self._ready)

    @property
    def shutting_down(self) -> bool:
        """True once `shutdown` was called."""
        return self._shutting_down

    @property
    def in_flight(self) -> int:
        """Keys handed out and not yet `done`."""
        return len(self._processing)

    @property
    def delayed(self) -> int:
        """Keys waiting for their delay to pass."""
        return len(self._due)

    def add(self, key: str) -> None:
        """Queue `key` now unless it is already queued; if in flight, re-queue it after done."""
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return
        self._make_ready(key)

    def add_after(self, key: str, delay: float) -> None:
        """Queue `key` once `delay` seconds have passed; an earlier pending delay wins."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        due = self._clock.now() + delay
        current = self._due.get(key)
        if current is not None and current <= due:
            return
        self._due[key] = due
        heapq.heappush(self._heap, (due, next(self._seq), key))
        self._heap_changed.set()
        if self._timer is None:
            self._timer = asyncio.get_running_loop().create_task(
                self._run_timer(), name="workqueue-timer"
            )

    def add_rate_limited(self, key: str) -> None:
        """Queue `key` after its backoff (doubling per failure) and the global limit allow."""
        delay = self._backoff.when(key)
        if self._bucket is not None:
            delay = max(delay, self._bucket.reserve())
        self.add_after(key, delay)

    def retry_now(self, key: str) -> None:
        """Queue `key` at once, its backoff forgotten and its pending delay dropped (its heap
        entry goes stale and is skipped): a pass now, not one now and another when the old
        backoff ends. A pass that succeeds sets its own next delay again."""
        self._backoff.forget(key)
        self._due.pop(key, None)
        self.add(key)

    def forget(self, key: str) -> None:
        """Reset the backoff of `key` (after a successful pass)."""
        self._backoff.forget(key)

    def failures(self, key: str) -> int:
        """How many rate-limited re-adds `key` has had since it was last forgotten."""
        return self._backoff.failures(key)

    def failing(self) -> list[str]:
        """Keys whose last pass failed: re-added rate-limited and not forgotten since."""
        return self._backoff.failing()

    async def get(self) -> str:
        """Wait for a ready key and mark it in flight; raise QueueShutDown once shut down."""
        while True:
            if self._shutting_down:
                raise QueueShutDown
            if self._ready:
                key = self._ready.popleft()
                now = self._clock.now()
                self._waited[key] = now - self._ready_at.pop(key, now)
                self._dirty.discard(key)
                self._processing.add(key)
                self._idle.clear()
                return key
            self._available.clear()
            await self._available.wait()

    def waited(self, key: str) -> float:
        """Seconds the key `get` last handed out had waited ready (client-go's queue
        duration: from being added, or re-added after its pass, not counting a delay)."""
        return self._waited.pop(key, 0.0)

    def done(self, key: str) -> None:
        """Mark the pass over `key` finished; re-queue it if it was added meanwhile."""
        self._processing.discard(key)
        self._waited.pop(key, None)
        if key in self._dirty and not self._shutting_down:
            self._make_ready(key)
        if not self._processing:
            self._idle.set()

    def shutdown(self) -> None:
        """Stop handing out keys, drop queued and delayed ones, wake every waiting getter."""
        self._shutting_down = True
        self._ready.clear()
        self._ready_at.clear()
        self._dirty.clear()
        self._heap.clear()
        self._due.clear()
        self._available.set()
        if self._timer is not None:
            self._timer.cancel()

    # A plain timeout argument, like client-go's ShutDownWithDrain, reads best at call sites.
    async def drain(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Shut down and wait until keys in flight are done; False if `timeout` ran out first."""
        self.shutdown()
        if self._timer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        if self._idle.is_set():
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _make_ready(self, key: str) -> None:
        self._ready.append(key)
        self._ready_at[key] = self._clock.now()
        self._available.set()

    async def _run_timer(self) -> None:
        """Move delayed keys to the ready FIFO as they come due."""
        while True:
            now = self._clock.now()
            while self._heap and self._heap[0][0] <= now:
                due, _, key = heapq.heappop(self._heap)
                if self._due.get(key) == due:
                    del self._due[key]
                    self.add(key)
            self._heap_changed.clear()
            if not self._heap:
                await self._heap_changed.wait()
                continue
            await _first_of(self._clock.sleep(self._heap[0][0] - now), self._heap_changed.wait())


async def _first_of(*coroutines: Coroutine[Any, Any, Any]) -> None:
    """Wait until one of the coroutines finishes, then cancel and reap the others."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
