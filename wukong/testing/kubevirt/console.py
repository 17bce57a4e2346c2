"""The guest's serial console and VNC server, as the websockets virt-api relays.

Both modes share them: with real KubeVirt, virt-api dials virt-handler's console server
(`node.HandlerServer`); with the pure simulator, its own virt-api (`SubresourceServer`) serves
them after the checks virt-api makes (pkg/virt-api/rest console.go, vnc.go). The guest end is
a serial console that echoes every line it is sent, and a VNC server that sends QEMU's RFB
version greeting, then echoes (no real framebuffer).
"""

from __future__ import annotations

import asyncio
from contextlib import suppress

import aiohttp
from aiohttp import web

from ._kube import JsonObj
from .api_errors import Reply, bad_request, conflict, internal
from .objects import condition, phase

PLAIN = "plain.kubevirt.io"  # the websocket subprotocol virtctl and virt-api speak
LOGIN_PROMPT = b"\r\nFedora Linux 40 (Cloud Edition)\r\nlogin: "
RFB_GREETING = b"RFB 003.008\n"  # QEMU's VNC server speaks first
NOT_RUNNING = "VMI is not running"  # virt-api rest/subresource.go vmiNotRunning


async def _echo(request: web.Request, greeting: bytes) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=(PLAIN,))
    await ws.prepare(request)
    await ws.send_bytes(greeting)
    async for message in ws:
        if message.type == aiohttp.WSMsgType.BINARY:
            await ws.send_bytes(message.data)
        elif message.type == aiohttp.WSMsgType.TEXT:
            await ws.send_bytes(message.data.encode())
    return ws


async def serial_console(request: web.Request) -> web.StreamResponse:
    """The serial console: a login prompt, then every byte sent comes back."""
    return await _echo(request, LOGIN_PROMPT)


async def vnc_server(request: web.Request) -> web.StreamResponse:
    """The VNC server: QEMU's RFB version greeting, then it echoes."""
    return await _echo(request, RFB_GREETING)


STREAM_HANDLERS = {"console": serial_console, "vnc": vnc_server}


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


DIAL_SECONDS = 5.0  # the pure simulator's addresses may not route here: fail, do not hang


async def dial_guest(
    vmi: JsonObj, port: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | Reply:
    """virt-api's netDial for `portforward`: the VMI's first interface address, `port`;
    its errors in its words (400 without an interface, 500 when nothing answers)."""
    interfaces = (vmi.get("status") or {}).get("interfaces") or []
    if not interfaces:
        return bad_request("no network interfaces are present")
    address = f"{interfaces[0].get('ipAddress') or ''}:{port}"
    try:
        return await asyncio.wait_for(
            asyncio.open_connection(interfaces[0].get("ipAddress"), int(port)), DIAL_SECONDS
        )
    except TimeoutError:
        return internal(f"dialing VM: dial tcp {address}: i/o timeout")
    except (OSError, ValueError):
        return internal(f"dialing VM: dial tcp {address}: connect: connection refused")


async def forward_port(
    request: web.Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> web.StreamResponse:
    """The upgraded `portforward` websocket: bytes to and from the guest's port until
    either side closes."""
    ws = web.WebSocketResponse(protocols=(PLAIN,))
    await ws.prepare(request)

    async def to_guest() -> None:
        async for message in ws:
            if message.type == aiohttp.WSMsgType.BINARY:
                writer.write(message.data)
                await writer.drain()
            elif message.type != aiohttp.WSMsgType.TEXT:
                return

    async def from_guest() -> None:
        while data := await reader.read(65536):
            await ws.send_bytes(data)

    tasks = [asyncio.create_task(to_guest()), asyncio.create_task(from_guest())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
        with suppress(ConnectionError):
            await ws.close()
    return ws
