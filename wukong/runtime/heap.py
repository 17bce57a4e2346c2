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

Every connection to the API server is TLS, and asyncio gives each one a read buffer of
`SSLProtocol.max_size` bytes, zero-filled (so resident) when the connection opens and kept
until it closes: 256 KiB in CPython 3.11-3.13. The operator holds one connection per watched
kind (17) plus those its workers' requests use at once: 34 when idle and 46 while creating
1,000 Wukongs, by tracemalloc and `ss` (session 45), so 8.5-11.5 MiB of buffers. The API
server sends a watch event or a status answer in a few KiB; a LIST of 1,000 objects arrives
in more reads of a smaller buffer, each one a recv.
"""

from __future__ import annotations

import gc
from asyncio import sslproto
from typing import Final

YOUNG: Final = 20_000
"""Net allocations between young collections (CPython's default: 700)."""

TLS_READ: Final = 64 * 1024
"""Bytes asyncio reads from a TLS socket at once, the size of each connection's read
buffer (CPython's default: 256 KiB): still four full TLS records (16 KiB each)."""


def tune_collector() -> None:
    """Set the thresholds above; the two older generations keep CPython's ratios'
    order (20, 10) so a full collection stays rare."""
    gc.set_threshold(YOUNG, 20, 10)


def small_tls_reads() -> None:
    """Give the TLS connections opened from now on a read buffer of `TLS_READ` bytes.

    `SSLProtocol.max_size` is a class attribute of asyncio's (not a documented setting): if
    a Python version no longer has it, nothing changes."""
    if isinstance(getattr(sslproto.SSLProtocol, "max_size", None), int):
        sslproto.SSLProtocol.max_size = TLS_READ
