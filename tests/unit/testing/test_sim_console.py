"""The simulated guest's serial console and VNC server serve one session per VMI, as
virt-handler does (pkg/virt-handler/rest/console.go, newStopChan): a new connection closes
the one before. The VNC server served any number (access audit, session 46)."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from wukong.testing.kubevirt.console import (
    LOGIN_PROMPT,
    PLAIN,
    RFB_GREETING,
    serial_console,
    vnc_server,
)
from wukong.testing.kubevirt.serial_log import SerialLog


@pytest.mark.parametrize(
    ("serve", "greeting"), [(vnc_server, RFB_GREETING), (serial_console, LOGIN_PROMPT)]
)
async def test_a_new_session_closes_the_one_before(serve: object, greeting: bytes) -> None:
    log = SerialLog()  # one VMI's

    async def handler(request: web.Request) -> web.StreamResponse:
        return await serve(request, log)  # type: ignore[operator]

    app = web.Application()
    app.router.add_get("/", handler)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        url = str(server.make_url("/"))
        first = await session.ws_connect(url, protocols=(PLAIN,))
        assert (await first.receive_bytes(timeout=5)) == greeting
        second = await session.ws_connect(url, protocols=(PLAIN,))
        assert (await second.receive_bytes(timeout=5)) == greeting
        ended = await first.receive(timeout=5)
        assert ended.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        await second.send_bytes(b"x")
        assert (await second.receive_bytes(timeout=5)) == b"x"  # the newest one goes on
        await second.close()
        await first.close()
