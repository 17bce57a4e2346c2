"""The operator process's memory settings: its garbage collector and its TLS read buffers.

Nearly all of the operator's heap is its watch caches: JSON objects without reference
cycles, freed by reference counting the moment the cache replaces them, and a pass's
temporaries, gone when the pass ends. CPython's cyclic collector at its default thresholds
(700, 10, 10) still runs a young collection every 700 net allocations, moves whatever a pass
holds at that moment to the older generations, and every so often walks the whole heap.
Measured with `gc.callbacks` over a 1,000-Wukong create (`bench --creation-only`): 843
collections, 1.6 s of the operator's ~28 s of CPU, and six full collections that each held
the event loop 66-157 ms. With a young generation of 20,000 objects a pass's temporaries are
freed before a collection looks at them: 14 collections, 0.16 s, the longest pause 42 ms,
the same RSS (104.7 MiB). Reference cycles still get collected, a little later.

Those were averages; what a pass waits for is each pause (session 50, every collection
logged): at 1,000 Wukongs a young collection of 20,000 objects held the loop
22-55 ms (98 ms under load), a middle one, the survivors of 20 young ones, 200-282 ms, a full
one 256-706 ms, walking every cached object each time. So the caches as they are once synced,
and whatever survives a full collection, are frozen (`gc.freeze()`): a later collection
walks only what was made since, and reference counting still frees a frozen object the
moment the cache replaces it (only a reference cycle among frozen objects would stay). The
middle generation collects after `MIDDLE` young collections instead of 20. Every pause is
counted by generation for `wukong_gc_pause_seconds`.

Every connection to the API server is TLS, and asyncio gives each one a read buffer of
`SSLProtocol.max_size` bytes, zero-filled (so resident) when the connection opens and kept
until it closes: 256 KiB in CPython 3.11-3.13. The operator holds one connection per watched
kind (17) plus those its workers' requests use at once: 34 when idle and 46 while creating
1,000 Wukongs, by tracemalloc and `ss` (session 45), so 8.5-11.5 MiB of buffers. The API
server sends a watch event or a status answer in a few KiB; a LIST of 1,000 objects arrives
in more reads of a smaller buffer, each one a recv.
"""

from __future__ import annotations

import bisect
import gc
import time
from asyncio import sslproto
from typing import Any, Final

YOUNG: Final = 20_000
"""Net allocations between young collections (CPython's default: 700)."""
MIDDLE: Final = 5
"""Young collections between middle ones (CPython's default: 10; ours was 20)."""
OLD: Final = 10
"""Middle collections between full ones, when enough has reached the old generation
(CPython's rule: a quarter more than the last full collection left)."""
PAUSE_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
"""Seconds; the lifecycle target is 50 ms in all (docs/benchmark.md)."""

TLS_READ: Final = 64 * 1024
"""Bytes asyncio reads from a TLS socket at once, the size of each connection's read
buffer (CPython's default: 256 KiB): still four full TLS records (16 KiB each)."""


class Pauses:
    """How long each collection held the process, by generation (a `gc.callbacks` entry):
    per generation, how many fell in each of `PAUSE_BUCKETS` (and past the last) and their
    sum. After a full collection it freezes what survived (see the module's docstring)."""

    def __init__(self) -> None:
        self.counts = [[0] * (len(PAUSE_BUCKETS) + 1) for _ in range(3)]
        self.sums = [0.0, 0.0, 0.0]
        self._began = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        pause = time.perf_counter() - self._began
        generation = info["generation"]
        self.counts[generation][bisect.bisect_left(PAUSE_BUCKETS, pause)] += 1
        self.sums[generation] += pause
        if generation == 2:
            # The collection is over (this is its "stop"): only moves lists of objects.
            gc.freeze()


PAUSES: Final = Pauses()
"""The operator process's collections, once `tune_collector()` ran (else all 0)."""


def tune_collector() -> None:
    """Set the thresholds above and count (and, after a full one, freeze) each collection."""
    gc.set_threshold(YOUNG, MIDDLE, OLD)
    if PAUSES not in gc.callbacks:
        gc.callbacks.append(PAUSES)


def freeze_heap() -> None:
    """A full collection now, after which whatever is alive (the synced caches) is frozen:
    once, when the caches have synced, before any pass. Without `tune_collector()` (an
    operator inside a test process) it does nothing."""
    if PAUSES in gc.callbacks:
        gc.collect()  # a full one: PAUSES freezes what survives


def small_tls_reads() -> None:
    """Give the TLS connections opened from now on a read buffer of `TLS_READ` bytes.

    `SSLProtocol.max_size` is a class attribute of asyncio's (not a documented setting): if
    a Python version no longer has it, nothing changes."""
    if isinstance(getattr(sslproto.SSLProtocol, "max_size", None), int):
        sslproto.SSLProtocol.max_size = TLS_READ
