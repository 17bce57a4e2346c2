"""The pure simulator's virt-api `portforward`: it dials the guest's port itself, as virt-api's
`netDial` does (the VMI's first interface address, TCP or UDP), before the websocket is
upgraded, then copies bytes (TCP) or datagrams, one message each (UDP), until either side
ends. With real KubeVirt, virt-api does this and `guest_net.py` is what it reaches."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Protocol, cast

import aiohttp
from aiohttp import web

from ._kube import JsonObj
from .api_errors import Reply, bad_request, internal
from .console import PLAIN

DIAL_SECONDS = 5.0  # the pure simulator's addresses may not route here: fail, do not hang


class Line(Protocol):
    """A dialled guest port: carried over the upgraded websocket, or closed unused."""

    async def carry(self, request: web.Request) -> web.StreamResponse: ...

    def close(self) -> None: ...


async def _carry(
    request: web.Request,
    to_guest: Callable[[bytes], Awaitable[None]],
    from_guest: Callable[[], Awaitable[bytes | None]],
    close: Callable[[], None],
) -> web.WebSocketResponse:
    """Upgrade, then binary messages to the guest and what it sends back as messages, until
    either side ends (`from_guest` answers None when the guest's side has); then `close`
    the guest's end and the websocket."""
    ws = web.WebSocketResponse(protocols=(PLAIN,))
    await ws.prepare(request)

    async def up() -> None:
        async for message in ws:
            if message.type == aiohttp.WSMsgType.BINARY:
                await to_guest(message.data)
            elif message.type != aiohttp.WSMsgType.TEXT:
                return

    async def down() -> None:
        while (data := await from_guest()) is not None:
            await ws.send_bytes(data)

    tasks = [asyncio.create_task(up()), asyncio.create_task(down())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        close()
        with suppress(ConnectionError):
            await ws.close()
    return ws


class _Stream:
    """A TCP connection to the guest's port."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def carry(self, request: web.Request) -> web.StreamResponse:
        async def to_guest(data: bytes) -> None:
            self.writer.write(data)
            await self.writer.drain()

        async def from_guest() -> bytes | None:
            return await self.reader.read(65536) or None

        return await _carry(request, to_guest, from_guest, self.close)

    def close(self) -> None:
        self.writer.close()


class _Datagrams(asyncio.DatagramProtocol):
    """A connected UDP socket to the guest's port: its answers, then None once a send was
    refused (ICMP port unreachable ends virt-api's copy, as a failed read does in Go)."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.answers: asyncio.Queue[bytes | None] = asyncio.Queue()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's UDP transport is one, though not a subclass of it before Python 3.12.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.answers.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        self.answers.put_nowait(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.answers.put_nowait(None)

    async def carry(self, request: web.Request) -> web.StreamResponse:
        async def to_guest(data: bytes) -> None:
            if self.transport is not None:
                self.transport.sendto(data)

        return await _carry(request, to_guest, self.answers.get, self.close)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def dial_guest(vmi: JsonObj, port: str, protocol: str = "tcp") -> Line | Reply:
    """virt-api's netDial for `portforward`: the VMI's first interface address, `port`;
    its errors in its words (400 without an interface, 500 when the dial fails)."""
    interfaces = (vmi.get("status") or {}).get("interfaces") or []
    if not interfaces:
        return bad_request("no network interfaces are present")
    ip = interfaces[0].get("ipAddress") or ""
    address = f"{ip}:{port}"
    if protocol == "udp":  # connectionless: Go's Dial fails only on the address itself
        try:
            _, line = await asyncio.get_running_loop().create_datagram_endpoint(
                _Datagrams, remote_addr=(ip, int(port))
            )
        except (OSError, ValueError) as error:
            return internal(f"dialing VM: dial udp {address}: {error}")
        return line
    if protocol != "tcp":
        return internal(f"dialing VM: dial {protocol}: unknown network {protocol}")
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(ip, int(port)), DIAL_SECONDS
        )
    except TimeoutError:
        return internal(f"dialing VM: dial tcp {address}: i/o timeout")
    except (OSError, ValueError):
        return internal(f"dialing VM: dial tcp {address}: connect: connection refused")
    return _Stream(reader, writer)
