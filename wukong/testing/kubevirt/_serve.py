"""Binding and stopping the simulator's HTTPS servers (virt-handler's, the kubelet's, CDI's
webhook)."""

from __future__ import annotations

import asyncio
import ssl

from aiohttp import web

BIND_TRIES = 50
BIND_PAUSE = 0.1  # seconds between tries


async def serve(runner: web.AppRunner, host: str, port: int, ssl_context: ssl.SSLContext) -> None:
    """Start `runner`'s app on host:port, a fixed port a KubeVirt component or a Node object
    names: the previous test's simulator may still hold it for a moment, so try again for up
    to 5 s before giving up."""
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_address=True)
    for attempt in range(BIND_TRIES):
        try:
            await site.start()
            return
        except OSError:
            if attempt == BIND_TRIES - 1:
                raise
            await asyncio.sleep(BIND_PAUSE)


async def stop_serving(runner: web.AppRunner) -> None:
    """Stop `runner`'s app and abort the connections it held.

    `runner.cleanup()` only starts a graceful TLS close of each connection (a close_notify,
    then waiting for the client's): the socket closes once the client answers. The clients
    here are the API server and KubeVirt's components, in processes of their own; a test's
    event loop that ended before one answered left the socket open, found by a later test's
    garbage collection as "unclosed transport" (a fresh-clone CI run of session 44, the CDI
    webhook's socket). Nothing is lost by not waiting: the server is going away."""
    server = runner.server
    if server is None:  # never set up
        await runner.cleanup()
        return
    held = [c.transport for c in server.connections]
    await runner.cleanup()
    # And one accepted while cleanup() ran (aiohttp's shutdown forgets the connections it
    # knew, then registers one whose accept was under way as it began).
    held += [c.transport for c in server.connections]
    for transport in held:
        if transport is not None:
            transport.abort()
    await asyncio.sleep(0)  # an abort closes the socket on the loop's next step
