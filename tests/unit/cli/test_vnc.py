"""`wukong vnc`: one local connection, as `virtctl vnc` accepts one, and on 127.0.0.1 unless
--proxy-only. virt-handler gives a VMI's display to the newest connection and closes the one
before (pkg/virt-handler/rest/console.go VNCHandler), and the local port asks no password: a
second connection took the display over, the owner's viewer cut off (access audit, session
46)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.cli.test_port_forward import GuestAt, echo, guest_at
from wukong.console import remote
from wukong.console.errors import CliError
from wukong.console.invocation import Cluster, Console

__all__ = ["guest_at"]  # the fixture


@pytest.fixture
async def guest(guest_at: GuestAt, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[str]]:
    """The VM's VNC, faked as a local echo server; the list of streams opened to it (one
    per websocket virt-api would have been asked for)."""
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    guest_at(server.sockets[0].getsockname()[:2])
    opened: list[str] = []
    to_guest = remote.open_stream  # guest_at's: a TCP connection to the echo server

    def counted(*args: Any) -> Any:
        opened.append(args[-1])
        return to_guest(*args)

    monkeypatch.setattr(remote, "open_stream", counted)
    try:
        yield opened
    finally:
        server.close()


async def round_trip(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping")
    assert await asyncio.wait_for(reader.readexactly(4), 10) == b"ping"
    return reader, writer


async def test_proxy_only_serves_one_connection_and_ends_with_it(guest: list[str]) -> None:
    printed: asyncio.Queue[str] = asyncio.Queue()
    said: list[str] = []
    io = Console(out=printed.put_nowait, say=said.append)
    serving = asyncio.create_task(remote.vnc(Cluster(), io, "web-1", proxy_only=True))
    try:
        port = json.loads(await asyncio.wait_for(printed.get(), 10))["port"]
        _, writer = await round_trip(port)
        # The first connection holds the display: the port no longer listens.
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        assert guest == ["vnc"]  # the second never reached virt-api
        writer.close()
        assert await asyncio.wait_for(serving, 10) == 0  # the connection's end ends it
    finally:
        serving.cancel()
    assert said == [f"VNC of web-1 on 127.0.0.1:{port}: connect a VNC viewer there "
                    "(for one connection; Ctrl-C ends)"]  # fmt: skip


async def test_with_a_viewer_the_port_is_on_localhost_whatever_address_says(
    guest: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """virtctl listens on 127.0.0.1 whenever it opens a viewer; `--address 0.0.0.0` opened
    the unauthenticated display to the network while the viewer showed it."""
    seen = tmp_path / "seen"
    viewer_script = (
        "import socket, sys\n"
        "host, port = sys.argv[1].rsplit(':', 1)\n"
        "with socket.create_connection((host, int(port)), timeout=10) as c:\n"
        "    c.sendall(b'ping')\n"
        "    got = c.recv(4)\n"
        f"open({str(seen)!r}, 'w').write(host + ' ' + got.decode())\n"
    )
    asked: list[tuple[str, int]] = []

    def viewer(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return [sys.executable, "-c", viewer_script, f"{host}:{port}"]

    monkeypatch.setattr(remote, "viewer", viewer)
    said: list[str] = []
    io = Console(out=said.append, say=said.append)
    done = remote.vnc(Cluster(), io, "web-1", address="0.0.0.0")
    assert await asyncio.wait_for(done, 30) == 0
    assert seen.read_text() == "127.0.0.1 ping"
    ((host, port),) = asked
    assert host == "127.0.0.1"
    assert said == [
        "--address is for --proxy-only, as virtctl's: the VNC of web-1 listens on 127.0.0.1",
        f"VNC of web-1 on 127.0.0.1:{port}: opening {Path(sys.executable).name}",
    ]
    assert guest == ["vnc"]


async def test_proxy_only_honours_address(guest: list[str]) -> None:
    printed: asyncio.Queue[str] = asyncio.Queue()
    said: list[str] = []
    io = Console(out=printed.put_nowait, say=said.append)
    serving = asyncio.create_task(
        remote.vnc(Cluster(), io, "web-1", address="127.0.0.2", proxy_only=True)
    )
    try:
        port = json.loads(await asyncio.wait_for(printed.get(), 10))["port"]
        reader, writer = await asyncio.open_connection("127.0.0.2", port)
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 10) == b"ping"
        writer.close()
        assert await asyncio.wait_for(serving, 10) == 0
    finally:
        serving.cancel()
    assert said[0].startswith("VNC of web-1 on 127.0.0.2:")


async def test_a_refused_connection_ends_proxy_only_with_an_error(
    guest_at: GuestAt, monkeypatch: pytest.MonkeyPatch
) -> None:
    guest_at(("127.0.0.1", 9))  # connect and running_vmi faked; open_stream refuses below

    @contextlib.asynccontextmanager
    async def refused(*_: object) -> AsyncIterator[None]:
        raise CliError("the vnc of wukong web-1 refused the connection: 400 No graphics")
        yield

    monkeypatch.setattr(remote, "open_stream", refused)
    printed: asyncio.Queue[str] = asyncio.Queue()
    said: list[str] = []
    io = Console(out=printed.put_nowait, say=said.append)
    serving = asyncio.create_task(remote.vnc(Cluster(), io, "web-1", proxy_only=True))
    try:
        port = json.loads(await asyncio.wait_for(printed.get(), 10))["port"]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed at once
        writer.close()
        assert await asyncio.wait_for(serving, 10) == 1
    finally:
        serving.cancel()
    assert said[-1] == "error: the vnc of wukong web-1 refused the connection: 400 No graphics"
