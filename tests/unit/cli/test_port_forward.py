"""`wukong port-forward`'s port arguments, read as kubectl and virtctl read them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import struct
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import pytest
import typer

from wukong.console import forward, remote
from wukong.console.errors import CliError
from wukong.console.forward import UdpRelay, carry
from wukong.console.invocation import Cluster, Console
from wukong.console.options import run
from wukong.console.ports import Forward, forwards
from wukong.console.remote import ESCAPE, cannot_listen, listen, pump, stdin_chunks
from wukong.testing.eventually import eventually


def test_ports_name_the_local_end_the_guest_end_or_both() -> None:
    assert forwards(["8080:80", "22", ":5432"], stdio=False) == [
        Forward(8080, 80),
        Forward(22, 22),
        Forward(0, 5432),  # a free local port, as kubectl's ":5432"
    ]
    assert forwards(["22"], stdio=True) == [Forward(22, 22)]


def test_a_protocol_goes_in_front_as_virtctls() -> None:
    assert forwards(["udp/5353:53", "UDP/:123", "tcp/22", "udp/22"], stdio=False) == [
        Forward(5353, 53, "udp"),
        Forward(0, 123, "udp"),
        Forward(22, 22, "tcp"),
        Forward(22, 22, "udp"),  # the same local number, another protocol: both bind
    ]
    assert [f.subresource for f in forwards(["udp/53", "8080:80"], stdio=False)] == [
        "portforward/53/udp",
        "portforward/80/tcp",
    ]


@pytest.mark.parametrize(
    ("specs", "stdio", "said"),
    [
        ([], False, "name a port to forward: LOCAL:REMOTE, PORT or :REMOTE"),
        (["abc"], False, "abc: the guest port must be a number from 1 to 65535"),
        (["0"], False, "0: the guest port must be a number from 1 to 65535"),
        (["8080:0"], False, "8080:0: the guest port must be a number from 1 to 65535"),
        (["x:80"], False, "x:80: the local port must be a number from 0 to 65535"),
        (["70000:80"], False, "70000:80: the local port must be a number from 0 to 65535"),
        (["53/udp"], False, "53/udp: the protocol goes first, as with virtctl: udp/53"),
        (["sctp/9"], False, "sctp/9: the protocol is tcp or udp (udp/5353:53)"),
        (["udp/x"], False, "udp/x: the guest port must be a number from 1 to 65535"),
        (["udp/53", "udp/53"], False, "a local port is named twice"),
        (["8080:80", "8080:81"], False, "a local port is named twice"),
        (["22", "80"], True, "--stdio forwards one TCP guest port, given alone: --stdio NAME PORT"),
        (["2222:22"], True, "--stdio forwards one TCP guest port, given alone: --stdio NAME PORT"),
        (["udp/53"], True, "--stdio forwards one TCP guest port, given alone: --stdio NAME PORT"),
    ],
)
def test_a_port_that_cannot_be_one_is_a_usage_error(
    specs: list[str], stdio: bool, said: str
) -> None:
    with pytest.raises(CliError) as refused:
        forwards(specs, stdio=stdio)
    assert (refused.value.message, refused.value.code) == (said, 2)


class GuestSocket:
    """The websocket's client end: records what is sent; the guest says nothing."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)

    def __aiter__(self) -> GuestSocket:
        return self

    async def __anext__(self) -> object:
        await asyncio.Event().wait()  # no message, ever
        raise StopAsyncIteration

    async def receive(self) -> object:
        return await self.__anext__()


async def sent_through(chunks: list[bytes], *, escape: bytes | None) -> list[bytes]:
    ws = GuestSocket()
    pending = iter([*chunks, b""])

    async def next_chunk() -> bytes:
        return next(pending)

    async def discard(_: bytes) -> None:
        return None

    await pump(ws, lambda: asyncio.ensure_future(next_chunk()), discard, escape=escape)  # type: ignore[arg-type]
    return ws.sent


async def test_forwarded_bytes_pass_0x1d_which_ends_only_a_console() -> None:
    # A VNC pointer event at x = 29 carries 0x1d: it must not end the session (it did,
    # before port-forward shared the pump with the console).
    pointer = b"\x05\x00\x00\x1d\x00\x40"
    assert await sent_through([pointer, b"more"], escape=None) == [pointer, b"more"]
    assert await sent_through([b"ls\r", b"x\x1dy"], escape=ESCAPE) == [b"ls\r", b"x"]


async def test_a_local_port_already_taken_is_one_line() -> None:
    async def nothing(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.close()

    taken = await listen(nothing, "127.0.0.1", 0)
    port = taken.sockets[0].getsockname()[1]
    try:
        with pytest.raises(CliError) as refused:
            await listen(nothing, "127.0.0.1", port)
        assert refused.value.message == f"cannot listen on 127.0.0.1:{port}: address already in use"
    finally:
        taken.close()


def test_an_address_that_does_not_resolve_is_said_so() -> None:
    """`--address nosuch.invalid` said "cannot listen on nosuch.invalid:8080: unknown error
    -2": a resolver's error number is negative (EAI_NONAME), which os.strerror does not know
    (CLI access audit, session 48)."""
    unknown = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert cannot_listen("nosuch.invalid", 8080, unknown).message == (
        "cannot resolve nosuch.invalid: name or service not known"
    )
    again = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    assert cannot_listen("vpn.example", 0, again).message == (
        "cannot resolve vpn.example: temporary failure in name resolution"
    )


class DatagramSocket:
    """The websocket of one UDP tunnel: records what is sent; yields what `guest` puts,
    until it puts None (the guest's side closed)."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.guest: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)

    def __aiter__(self) -> DatagramSocket:
        return self

    async def __anext__(self) -> aiohttp.WSMessage:
        data = await self.guest.get()
        if data is None:
            return aiohttp.WSMessage(aiohttp.WSMsgType.CLOSE, None, None)
        return aiohttp.WSMessage(aiohttp.WSMsgType.BINARY, data, None)

    async def receive(self) -> aiohttp.WSMessage:
        return await self.__anext__()


async def test_a_udp_tunnel_carries_each_datagram_as_one_message_both_ways() -> None:
    ws, outgoing, back = DatagramSocket(), asyncio.Queue[bytes](), list[bytes]()
    for datagram in (b"query-1", b"query-2"):
        outgoing.put_nowait(datagram)
    for answer in (b"answer-1", b"answer-2", None):
        ws.guest.put_nowait(answer)
    await asyncio.wait_for(carry(ws, outgoing, back.append, idle=5), 5)  # type: ignore[arg-type]
    assert (ws.sent, back) == ([b"query-1", b"query-2"], [b"answer-1", b"answer-2"])


async def test_a_udp_tunnel_closes_when_quiet_and_not_while_datagrams_flow() -> None:
    ws, outgoing, back = DatagramSocket(), asyncio.Queue[bytes](), list[bytes]()
    loop = asyncio.get_running_loop()
    for delay in (0.1, 0.2, 0.3):  # each datagram within `idle` of the last
        loop.call_later(delay, outgoing.put_nowait, b"q")
    started = loop.time()
    await asyncio.wait_for(carry(ws, outgoing, back.append, idle=0.15), 5)  # type: ignore[arg-type]
    assert ws.sent == [b"q", b"q", b"q"]
    assert 0.45 <= loop.time() - started < 1.0  # the last datagram, then 0.15 s quiet


class Said:
    """A Console that keeps what is said on stderr."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def say(self, line: str) -> None:
        self.lines.append(line)


async def test_a_refused_udp_tunnel_is_said_once_not_once_per_datagram(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each datagram of a peer without a tunnel tries to open one: a VM that stopped printed
    the same error for every retry of a DNS client."""
    answers = iter(["a", "a", "a", "b", "ok", "a"])

    @contextlib.asynccontextmanager
    async def open_stream(*_: object) -> AsyncIterator[DatagramSocket]:
        answer = next(answers)
        if answer != "ok":
            raise CliError(f"refused {answer}")
        ws = DatagramSocket()
        ws.guest.put_nowait(None)  # opened, then closed by the guest's side
        yield ws

    monkeypatch.setattr(forward, "open_stream", open_stream)
    io = Said()
    relay = UdpRelay(None, io, "web-1", Forward(5353, 53, "udp"))  # type: ignore[arg-type]
    for _ in range(6):
        relay.datagram_received(b"q", ("127.0.0.1", 40000))
        await asyncio.gather(*relay.tunnels)
    assert io.lines == ["error: refused a", "error: refused b", "error: refused a"]


@pytest.fixture
def stdin_from(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """Make a file this process's stdin, as `< FILE` does."""
    opened: list[BinaryIO] = []

    def use(path: Path) -> None:
        opened.append(path.open("rb"))
        monkeypatch.setattr(sys, "stdin", opened[-1])

    yield use
    for stdin in opened:
        stdin.close()


@pytest.mark.parametrize("content", [None, b"", b"root\nls /\n"])  # None: /dev/null
async def test_stdin_from_a_file_or_dev_null_is_read_to_its_end(
    content: bytes | None, tmp_path: Path, stdin_from: Callable[[Path], None]
) -> None:
    """`wukong console NAME < /dev/null` (or a file) was a traceback: epoll cannot wait on
    a regular file. Such a stdin is read as it is, to its end, as virtctl's console does."""
    source = Path(os.devnull) if content is None else tmp_path / "typed"
    if content is not None:
        source.write_bytes(content)
    stdin_from(source)
    got = b""
    async with stdin_chunks() as read:
        while chunk := await read():
            got += chunk
    assert got == (content or b"")


class TunnelToGuest:
    """The websocket of one forwarded connection, carried over TCP to a local server that
    stands in for the guest's port: what is sent reaches it, what it sends comes back as
    binary messages, and its end as a CLOSE."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send_bytes(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def __aiter__(self) -> TunnelToGuest:
        return self

    async def __anext__(self) -> aiohttp.WSMessage:
        if data := await self.reader.read(65536):
            return aiohttp.WSMessage(aiohttp.WSMsgType.BINARY, data, None)
        return aiohttp.WSMessage(aiohttp.WSMsgType.CLOSE, None, None)

    async def receive(self) -> aiohttp.WSMessage:
        return await self.__anext__()


GuestAt = Callable[[tuple[str, int]], None]


@pytest.fixture
def guest_at(monkeypatch: pytest.MonkeyPatch) -> GuestAt:
    """Point port-forward and vnc at a local TCP server standing in for the guest's port:
    the cluster, the running VM and its websockets are faked at `connect`, `running_vmi` and
    `open_stream`."""

    def use(address: tuple[str, int]) -> None:
        @contextlib.asynccontextmanager
        async def connect(*_: object) -> AsyncIterator[None]:
            yield None

        async def running_vmi(_target: object, name: str, *_: object) -> str:
            return f"{name}-vm"

        @contextlib.asynccontextmanager
        async def open_stream(*_: object) -> AsyncIterator[TunnelToGuest]:
            reader, writer = await asyncio.open_connection(*address)
            try:
                yield TunnelToGuest(reader, writer)
            finally:
                writer.close()

        for module in (forward, remote):
            monkeypatch.setattr(module, "connect", connect)
            monkeypatch.setattr(module, "running_vmi", running_vmi)
            monkeypatch.setattr(module, "open_stream", open_stream)

    return use


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The guest's side: each byte back, until the other end closes. Cancelled (the test's
    loop ends), it ends quietly: on Python 3.11 a cancelled connection handler is itself a
    traceback, the one this file's Ctrl-C test looks for in the command."""
    with contextlib.suppress(asyncio.CancelledError, ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


Command = Callable[[Console], Coroutine[Any, Any, int]]


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(
            lambda io: forward.port_forward(Cluster(), io, "web-1", [Forward(0, 22)]),
            id="port-forward",
        ),
        pytest.param(
            lambda io: remote.vnc(Cluster(), io, "web-1", proxy_only=True),
            id="vnc-proxy-only",
        ),
    ],
)
def test_ctrl_c_with_a_connection_open_says_interrupted_and_nothing_else(
    command: Command,
    guest_at: GuestAt,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Ctrl-C on `wukong port-forward NAME 22` (or `vnc NAME --proxy-only`) while a local
    connection was open printed three chained tracebacks ("Exception in callback
    StreamReaderProtocol.connection_made.<locals>.callback", CancelledError) before
    "interrupted": the connection's handler ended cancelled, and Python 3.11's streams ask a
    cancelled task for its exception. Run as the command runs, in asyncio.run, and
    interrupted by a real SIGINT, which asyncio turns into cancelling the command's task."""
    problems: list[dict[str, Any]] = []
    steps: list[str] = []
    users: list[asyncio.Task[None]] = []  # held, as asyncio wants; the loop's end ends it

    async def interrupted_while_connected() -> int:
        loop = asyncio.get_running_loop()

        def keep(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            problems.append(context)
            loop.default_exception_handler(context)  # and logged, as it would be

        loop.set_exception_handler(keep)
        guest = await asyncio.start_server(echo, "127.0.0.1", 0)
        guest_at(guest.sockets[0].getsockname()[:2])
        listening: asyncio.Queue[str] = asyncio.Queue()

        async def user() -> None:
            port = int((await listening.get()).split(":")[-1].split()[0].strip("}"))
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(b"ping")
                assert await reader.readexactly(4) == b"ping"
                steps.append("echoed")
                signal.raise_signal(signal.SIGINT)  # Ctrl-C, the connection still open
                await reader.read()
            finally:
                writer.close()

        users.append(asyncio.create_task(user()))
        io = Console(out=listening.put_nowait, say=lambda line: typer.echo(line, err=True))
        try:
            return await command(io)
        finally:
            guest.close()

    # asyncio.run turns SIGINT into cancelling the main task only where Python's own handler
    # is in place, as it is in the command (a test runner may have another).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(typer.Exit) as ended:
            run(asyncio.wait_for(interrupted_while_connected(), 30), writes=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert steps == ["echoed"]
    assert problems == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Exception in callback" not in err, err
    assert ended.value.exit_code == 130
    assert err.splitlines()[-1] == "interrupted"


SSHD_BANNER = b"SSH-2.0-OpenSSH_9.6\r\n"
KEXINIT = b"\x00\x00\x01\x0c\x06\x14 key exchange offer"


async def sshd(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The guest's sshd, as far as these tests go: its version at once; the client's, then a
    moment later its key exchange offer; then it waits for the client (it never ends first)."""
    with contextlib.suppress(asyncio.CancelledError, ConnectionError):
        writer.write(SSHD_BANNER)
        await reader.readline()
        await asyncio.sleep(0.1)  # the answer comes after the client's input has ended
        writer.write(KEXINIT)
        await writer.drain()
        await reader.read()
    writer.close()


async def test_port_forward_stdio_shows_the_guests_answer_after_the_end_of_input(
    guest_at: GuestAt,
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    """`printf 'SSH-2.0-x\\r\\n' | wukong port-forward NAME 22 --stdio` printed nothing: the
    end of stdin cancelled the copy the other way, and the guest's answer with it. virt-api's
    websocket cannot be half-closed, so the answer is waited for until the guest is quiet."""
    guest = await asyncio.start_server(sshd, "127.0.0.1", 0)
    guest_at(guest.sockets[0].getsockname()[:2])
    monkeypatch.setattr(forward, "LINGER_SECONDS", 0.5)
    typed, piped = os.pipe()  # printf's pipe: stdin is one the event loop can wait on
    os.write(piped, b"SSH-2.0-x\r\n")
    os.close(piped)
    said: list[str] = []
    try:
        with os.fdopen(typed, "rb") as stdin:
            monkeypatch.setattr(sys, "stdin", stdin)
            io = Console(out=said.append, say=said.append)
            forwarding = forward.port_forward(Cluster(), io, "web-1", [Forward(22, 22)], stdio=True)
            assert await asyncio.wait_for(forwarding, 10) == 0
    finally:
        guest.close()
    assert capsysbinary.readouterr().out == SSHD_BANNER + KEXINIT
    assert said == []


@pytest.mark.parametrize(
    ("guest", "linger", "took"),
    [
        # (seconds after the end of input, what the guest sends; None: its side closes)
        pytest.param([(0.1, b"bye"), (0.2, None)], 30.0, (0.2, 1.0), id="guest-closes"),
        pytest.param([(0.1, b"a"), (0.3, b"b")], 0.4, (0.7, 1.5), id="guest-goes-quiet"),
    ],
)
async def test_after_the_end_of_input_the_answer_comes_until_the_guest_closes_or_is_quiet(
    guest: list[tuple[float, bytes | None]], linger: float, took: tuple[float, float]
) -> None:
    """The end of input is not the end of the guest's answer: its side closing ends the
    forward at once; else it ends once the guest has been quiet `linger` seconds, counted
    again from each of its answers."""
    ws, chunks, got = DatagramSocket(), iter([b"quit\r\n", b""]), list[bytes]()
    loop = asyncio.get_running_loop()
    for delay, data in guest:
        loop.call_later(delay, ws.guest.put_nowait, data)

    async def next_chunk() -> bytes:
        return next(chunks)

    async def keep(data: bytes) -> None:
        got.append(data)

    started = loop.time()
    forwarding = pump(ws, lambda: asyncio.ensure_future(next_chunk()), keep, linger=linger)  # type: ignore[arg-type]
    await asyncio.wait_for(forwarding, 5)
    assert (ws.sent, got) == ([b"quit\r\n"], [data for _, data in guest if data is not None])
    assert took[0] <= loop.time() - started < took[1]


async def test_a_local_client_that_resets_its_connection_ends_it_quietly(
    guest_at: GuestAt,
) -> None:
    """A local client that closes with bytes unread (or SO_LINGER 0) resets the connection:
    the read's ConnectionResetError left the connection's handler, and asyncio printed it as
    "Unhandled exception in client_connected_cb" with its traceback."""
    problems: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: problems.append(context))
    guest = await asyncio.start_server(echo, "127.0.0.1", 0)
    guest_at(guest.sockets[0].getsockname()[:2])
    said: list[str] = []
    io = Console(out=said.append, say=said.append)
    forwarder = remote.Forwarder(None, io, "web-1", "portforward/22/tcp")  # type: ignore[arg-type]
    try:
        async with forwarder:
            port = await forwarder.listen("127.0.0.1", 0)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"ping")
            assert await reader.readexactly(4) == b"ping"
            reset = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close sends RST
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, reset)
            writer.close()
            await eventually(lambda: not forwarder.connections, timeout=10)
    finally:
        loop.set_exception_handler(None)
        guest.close()
    assert problems == []
    assert said == []


async def test_a_local_client_that_half_closes_still_gets_the_guests_answer(
    guest_at: GuestAt, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`printf 'SSH-2.0-x\\r\\n' | nc -N localhost PORT` sends its line, then its end (a
    half-close) and reads on: the guest's answer after that end was lost, as with --stdio."""
    guest = await asyncio.start_server(sshd, "127.0.0.1", 0)
    guest_at(guest.sockets[0].getsockname()[:2])
    monkeypatch.setattr(remote, "LINGER_SECONDS", 0.5)
    said: list[str] = []
    io = Console(out=said.append, say=said.append)
    forwarder = remote.Forwarder(None, io, "web-1", "portforward/22/tcp")  # type: ignore[arg-type]
    try:
        async with forwarder:
            port = await forwarder.listen("127.0.0.1", 0)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"SSH-2.0-x\r\n")
            writer.write_eof()
            assert await asyncio.wait_for(reader.read(), 10) == SSHD_BANNER + KEXINIT
            writer.close()
    finally:
        guest.close()
    assert said == []
