"""Stopping the simulator's HTTPS servers (testing/kubevirt/_serve.py)."""

from __future__ import annotations

import asyncio
import gc
import socket
import ssl
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from wukong.testing.kubevirt._serve import stop_serving
from wukong.testing.kubevirt._tls import self_signed


def served_then_stopped(
    tmp_path: Path, stop: Callable[[web.AppRunner], Awaitable[None]]
) -> list[str]:
    """An HTTPS server on a socket of our own (as CDI's webhook), one keep-alive client in
    another thread that has had its answer and does not answer the server's close_notify
    (as the API server, another process, may not before the test's loop ends), `stop`, the
    loop ended: the ResourceWarnings the garbage collector then raised."""
    cert, key = self_signed(tmp_path, "127.0.0.1")
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(cert, key)
    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    kept: list[socket.socket] = []

    async def main() -> None:
        async def ok(_: web.Request) -> web.Response:
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/", ok)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        await web.SockSite(runner, sock, ssl_context=serving).start()

        def ask() -> None:
            conn = client.wrap_socket(socket.create_connection(("127.0.0.1", port)))
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            conn.recv(4096)
            kept.append(conn)

        await asyncio.to_thread(ask)
        await stop(runner)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        asyncio.run(main())
        gc.collect()
    for conn in kept:
        conn.close()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def test_a_stopped_server_leaves_no_socket_to_a_client_that_did_not_say_goodbye(
    tmp_path: Path,
) -> None:
    """`runner.cleanup()` alone leaves each TLS connection waiting for the client's
    close_notify; the loop ended first, and a later test's garbage collection raised
    `unclosed transport <_SelectorSocketTransport>` and `unclosed <socket.socket ... proto=0>`
    (a fresh-clone CI run of session 44: the sim CDI webhook's socket to the API server)."""
    assert served_then_stopped(tmp_path, stop_serving) == []
