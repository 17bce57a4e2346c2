"""Binding the simulated node's HTTPS servers (virt-handler's, the kubelet's)."""

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
