"""The simulator's TLS subresource server closes every connection it accepted when it stops.

The API server's aggregation proxy and availability checks open connections at any moment, so
`stop()` can meet one that is still in its TLS handshake or idling in keep-alive. Any transport
left open is reported by the garbage collector as a ResourceWarning in whichever test runs next
(pytest turns that into a failure), so these tests collect garbage and look for it.
"""

from __future__ import annotations

import asyncio
import gc
import ssl
import warnings

from wukong.testing.kubevirt.faults import Faults
from wukong.testing.kubevirt.subresources import SubresourceServer


def _server() -> SubresourceServer:
    def no_guest(ns: str, name: str) -> object:
        raise AssertionError("no guest in this test")

    return SubresourceServer(kube=None, guest=no_guest, faults=Faults())  # type: ignore[arg-type]


def _leaks() -> list[str]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        gc.collect()
    return [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)]


def _client_ctx() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def test_stop_closes_a_connection_still_in_its_handshake() -> None:
    server = _server()
    await server.start()
    # A client that connected but has not sent its ClientHello yet.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    await asyncio.sleep(0.05)  # the server has accepted it
    await asyncio.wait_for(server.stop(), timeout=10)
    assert await asyncio.wait_for(reader.read(), timeout=5) == b""  # the server hung up
    writer.close()
    await writer.wait_closed()
    del reader, writer
    assert _leaks() == []


async def test_stop_closes_an_idle_keep_alive_connection() -> None:
    server = _server()
    await server.start()
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.port, ssl=_client_ctx(), server_hostname="localhost"
    )
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n")
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    await asyncio.wait_for(server.stop(), timeout=10)
    writer.close()
    try:
        await writer.wait_closed()
    except (ConnectionError, ssl.SSLError):
        pass  # the server already went away
    del reader, writer
    assert _leaks() == []
