"""The operator's collector thresholds and TLS read buffers (runtime/heap.py)."""

from __future__ import annotations

import asyncio
import gc
import ssl
import tracemalloc
import weakref
from asyncio import sslproto
from collections.abc import Iterator
from pathlib import Path

import pytest

from wukong.runtime.heap import (
    MIDDLE,
    OLD,
    PAUSES,
    TLS_READ,
    YOUNG,
    freeze_heap,
    small_tls_reads,
    tune_collector,
)
from wukong.runtime.metrics import Metrics
from wukong.testing._certs import write_pki
from wukong.testing.eventually import eventually


@pytest.fixture
def thresholds() -> Iterator[None]:
    """The test process's collector as it was: thresholds, callbacks, nothing frozen."""
    saved, callbacks = gc.get_threshold(), list(gc.callbacks)
    yield
    gc.set_threshold(*saved)
    gc.callbacks[:] = callbacks
    gc.unfreeze()


@pytest.mark.usefixtures("thresholds")
def test_the_young_generation_outlives_a_pass_and_the_middle_one_stays_small() -> None:
    tune_collector()
    young, middle, old = gc.get_threshold()
    assert young == YOUNG and young > 700  # CPython's default collected mid-pass
    # Survivors of 20 young collections took 200-282 ms to walk at 1,000 Wukongs.
    assert (middle, old) == (MIDDLE, OLD) and middle < 10
    assert gc.isenabled()  # reference cycles are still collected
    tune_collector()
    assert gc.callbacks.count(PAUSES) == 1  # a second call counts nothing twice


class Cached(dict[str, object]):
    """A cached object, as the watch caches hold (tracked by the collector, unlike a dict
    of only strings)."""


@pytest.mark.usefixtures("thresholds")
def test_what_a_full_collection_leaves_is_frozen_and_later_ones_walk_only_the_new() -> None:
    gc.unfreeze()
    tune_collector()
    caches = [Cached(spec=[i]) for i in range(50_000)]
    freeze_heap()  # the caches have synced
    assert gc.get_freeze_count() >= len(caches)
    walked = {id(o) for o in gc.get_objects()}  # what a full collection walks
    assert gc.is_tracked(caches[0]) and not any(id(c) in walked for c in caches)
    # A frozen object the cache replaces is still freed at once (reference counting) ...
    gone = weakref.ref(caches.pop())
    assert gone() is None
    # ... and a cycle made after the freeze is still collected.
    cycle = Cached()
    cycle["self"] = cycle
    collected = weakref.ref(cycle)
    del cycle
    gc.collect()
    assert collected() is None
    assert gc.get_freeze_count() >= len(caches)


@pytest.mark.usefixtures("thresholds")
def test_every_collection_pause_is_counted_by_generation_on_metrics() -> None:
    tune_collector()
    before = [sum(counts) for counts in PAUSES.counts]
    gc.collect(0)
    gc.collect(1)
    gc.collect(2)
    after = [sum(counts) for counts in PAUSES.counts]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]
    text = Metrics().render().decode()
    for generation, seen in enumerate(after):
        count = f'wukong_gc_pause_seconds_count{{generation="{generation}"}} {float(seen)}'
        inf = f'wukong_gc_pause_seconds_bucket{{generation="{generation}",le="+Inf"}} {float(seen)}'
        assert count in text and inf in text
    assert PAUSES.sums[2] > 0


@pytest.mark.usefixtures("thresholds")
def test_an_untuned_process_is_never_frozen() -> None:
    """An operator run inside a test process calls freeze_heap too: nothing happens."""
    gc.unfreeze()
    gc.callbacks[:] = [c for c in gc.callbacks if c is not PAUSES]
    freeze_heap()
    gc.collect()
    assert gc.get_freeze_count() == 0


@pytest.fixture
def tls_reads() -> Iterator[None]:
    saved = sslproto.SSLProtocol.max_size
    yield
    sslproto.SSLProtocol.max_size = saved


async def connection_bytes(tmp_path: Path) -> int:
    """Bytes allocated, and still held, by one open TLS connection's two ends."""
    pair = write_pki(tmp_path).serving
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(pair.cert, pair.key)
    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    accepted: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=serving)
    port = server.sockets[0].getsockname()[1]
    tracing = tracemalloc.is_tracing()  # PYTHONTRACEMALLOC: leave it on
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        await eventually(lambda: bool(accepted))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        if not tracing:
            tracemalloc.stop()
    writer.close()
    for end in accepted:
        end.close()
    server.close()
    await server.wait_closed()
    return held


@pytest.mark.usefixtures("tls_reads")
async def test_a_tls_connection_holds_a_read_buffer_of_64_kib_not_256(tmp_path: Path) -> None:
    """asyncio zero-fills a 256 KiB read buffer for each TLS connection and keeps it while
    the connection is open: the operator's 17 watches and its requests' connections held
    8.5-11.5 MiB of them (runtime/heap.py)."""
    # asyncio's own size, whatever an earlier test left (`wukong run` in-process sets ours).
    sslproto.SSLProtocol.max_size = 256 * 1024
    default = await connection_bytes(tmp_path / "default")
    small_tls_reads()
    assert sslproto.SSLProtocol.max_size == TLS_READ == 64 * 1024
    small = await connection_bytes(tmp_path / "small")
    assert default >= 2 * 256 * 1024  # both ends, as asyncio makes them
    assert default - small >= 2 * (256 - 64) * 1024
    assert small < 2 * 128 * 1024
