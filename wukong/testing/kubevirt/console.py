"""The guest's serial console and VNC server, as the websockets virt-api relays.

Both modes share them: with real KubeVirt, virt-api dials virt-handler's console server
(`node.HandlerServer`); with the pure simulator, its own virt-api (`SubresourceServer`) serves
them after the checks virt-api makes (pkg/virt-api/rest console.go, vnc.go). The guest end is
a serial console that echoes every line it is sent, and a VNC server that sends QEMU's RFB
version greeting, then echoes (no real framebuffer).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import aiohttp
from aiohttp import web

from ._kube import JsonObj
from .api_errors import Reply, bad_request, conflict
from .guest import Guest
from .objects import condition, phase
from .serial_log import SerialLog

PLAIN = "plain.kubevirt.io"  # the websocket subprotocol virtctl and virt-api speak
LOGIN_PROMPT = b"\r\nFedora Linux 40 (Cloud Edition)\r\nlogin: "
RFB_GREETING = b"RFB 003.008\n"  # QEMU's VNC server speaks first
NOT_RUNNING = "VMI is not running"  # virt-api rest/subresource.go vmiNotRunning


async def _echo(
    request: web.Request,
    greeting: bytes,
    echoed: Callable[[bytes], None] | None = None,
    opened: Callable[[web.WebSocketResponse], None] | None = None,
) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=(PLAIN,))
    await ws.prepare(request)
    if opened is not None:
        opened(ws)
    await ws.send_bytes(greeting)
    async for message in ws:
        if message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
            data = message.data if isinstance(message.data, bytes) else message.data.encode()
            await ws.send_bytes(data)
            if echoed is not None:
                echoed(data)
    return ws


# The console open on each VMI (keyed by its serial log): virt-handler serves one and closes
# the one before when another connects (pkg/virt-handler/rest/console.go).
_OPEN: weakref.WeakKeyDictionary[SerialLog, web.WebSocketResponse] = weakref.WeakKeyDictionary()


async def serial_console(request: web.Request, log: SerialLog | None = None) -> web.StreamResponse:
    """The serial console: a login prompt, then every byte sent comes back, and into the
    VMI's serial `log` (when given) as the guest's tty echo writes it to the port. One per
    VMI, as virt-handler's: a new connection closes the one before."""
    if log is None:
        return await _echo(request, LOGIN_PROMPT)
    before = _OPEN.pop(log, None)
    if before is not None:
        await before.close()

    def opened(ws: web.WebSocketResponse) -> None:
        _OPEN[log] = ws

    return await _echo(request, LOGIN_PROMPT, log.typed, opened)


# The VNC session open on each VMI (keyed by its serial log, the VMI pod's own): virt-handler
# serves one and closes the one before when another connects (VNCHandler, newStopChan), unless
# the new one asks `preserveSession`, which no client here does.
_VNC_OPEN: weakref.WeakKeyDictionary[SerialLog, web.WebSocketResponse] = weakref.WeakKeyDictionary()


async def vnc_server(request: web.Request, log: SerialLog | None = None) -> web.StreamResponse:
    """The VNC server: QEMU's RFB version greeting, then it echoes. One per VMI (`log`, when
    given, names it), as virt-handler's: a new connection closes the one before."""
    if log is None:
        return await _echo(request, RFB_GREETING)
    before = _VNC_OPEN.pop(log, None)
    if before is not None:
        await before.close()

    def opened(ws: web.WebSocketResponse) -> None:
        _VNC_OPEN[log] = ws

    return await _echo(request, RFB_GREETING, opened=opened)


def serial_of(guest: Guest, vmi: JsonObj) -> SerialLog:
    """The serial log of the VMI's pod, which the console's echo writes to."""
    return guest.serial(vmi["metadata"]["uid"])


def stream_refusal(vmi: JsonObj, sub: str) -> Reply | None:
    """virt-api's answer before it dials the node (validateVMIForConsole, vmiHasDisplay,
    validateVMIForPortForward), or None when the stream may open."""
    if sub == "portforward":
        if condition(vmi, "Paused") is not None:
            return conflict("virtualmachineinstance", vmi["metadata"]["name"], "VMI is paused")
        return None
    devices = ((vmi.get("spec") or {}).get("domain") or {}).get("devices") or {}
    if sub == "console":
        if devices.get("autoattachSerialConsole") is False:
            return bad_request("No serial consoles are present.")
        if phase(vmi) == "Failed":
            return conflict(
                "virtualmachineinstance", vmi["metadata"]["name"], "VMI is in failed status"
            )
    elif devices.get("autoattachGraphicsDevice") is False:  # vnc, vnc/screenshot
        return bad_request("No graphics devices are present.")
    if phase(vmi) != "Running":
        return bad_request(NOT_RUNNING)
    return None
