"""The operator process's garbage-collector settings.

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
"""

from __future__ import annotations

import gc
from typing import Final

YOUNG: Final = 20_000
"""Net allocations between young collections (CPython's default: 700)."""


def tune_collector() -> None:
    """Set the thresholds above; the two older generations keep CPython's ratios'
    order (20, 10) so a full collection stays rare."""
    gc.set_threshold(YOUNG, 20, 10)
