"""Time as the runtime sees it: a monotonic clock in production, a hand-driven one in tests."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    """Reads the time and sleeps; injected so tests decide when time passes."""

    def now(self) -> float:
        """Seconds on a monotonic scale."""
        ...

    async def sleep(self, delay: float) -> None:
        """Return once `delay` seconds have passed on this clock."""
        ...


class MonotonicClock:
    """The real clock: time.monotonic and asyncio.sleep."""

    def now(self) -> float:
        """Seconds since an arbitrary, fixed point."""
        return time.monotonic()

    async def sleep(self, delay: float) -> None:
        """Sleep on the event loop."""
        await asyncio.sleep(max(delay, 0.0))


class FakeClock:
    """A clock that only moves when a test calls `advance`; sleepers wake in deadline order."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._seq = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []

    def now(self) -> float:
        """The time the test last set."""
        return self._now

    async def sleep(self, delay: float) -> None:
        """Wait until the test advances the clock past now + delay."""
        if delay <= 0:
            # Still yield, as asyncio.sleep(0) would, so loops cannot starve the event loop.
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + delay, next(self._seq), future))
        await future

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has passed."""
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    @property
    def sleepers(self) -> int:
        """How many sleeps are still waiting (cancelled ones included until their deadline)."""
        return sum(1 for _, _, future in self._sleepers if not future.done())
