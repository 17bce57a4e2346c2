"""The operator's collector thresholds and TLS read buffers (runtime/heap.py)."""

from __future__ import annotations

import asyncio
import gc
import ssl
import tracemalloc
from asyncio import sslproto
from collections.abc import Iterator
from pathlib import Path

import pytest

from wukong.runtime.heap import TLS_READ, YOUNG, small_tls_reads, tune_collector
from wukong.testing._certs import write_pki
from wukong.testing.eventually import eventually


@pytest.fixture
def thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


@pytest.mark.usefixtures("thresholds")
def test_the_young_generation_outlives_a_pass_and_full_collections_stay_rare() -> None:
    tune_collector()
    young, middle, old = gc.get_threshold()
    assert young == YOUNG and young > 700  # CPython's default collected mid-pass
    assert (middle, old) == (20, 10)
    assert gc.isenabled()  # reference cycles are still collected


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
