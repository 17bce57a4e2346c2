"""`wukong port-forward`'s port arguments, read as kubectl and virtctl read them."""

from __future__ import annotations

import asyncio

import pytest

from wukong.console.errors import CliError
from wukong.console.ports import Forward, forwards
from wukong.console.remote import ESCAPE, listen, pump


def test_ports_name_the_local_end_the_guest_end_or_both() -> None:
    assert forwards(["8080:80", "22", ":5432"], stdio=False) == [
        Forward(8080, 80),
        Forward(22, 22),
        Forward(0, 5432),  # a free local port, as kubectl's ":5432"
    ]
    assert forwards(["22"], stdio=True) == [Forward(22, 22)]


@pytest.mark.parametrize(
    ("specs", "stdio", "said"),
    [
        ([], False, "name a port to forward: LOCAL:REMOTE, PORT or :REMOTE"),
        (["abc"], False, "abc: the guest port must be a number from 1 to 65535"),
        (["0"], False, "0: the guest port must be a number from 1 to 65535"),
        (["8080:0"], False, "8080:0: the guest port must be a number from 1 to 65535"),
        (["x:80"], False, "x:80: the local port must be a number from 0 to 65535"),
        (["70000:80"], False, "70000:80: the local port must be a number from 0 to 65535"),
        (["53/udp"], False, "53/udp: only TCP ports are forwarded (no /udp)"),
        (["8080:80", "8080:81"], False, "a local port is named twice"),
        (["22", "80"], True, "--stdio forwards one guest port, given alone: --stdio NAME PORT"),
        (["2222:22"], True, "--stdio forwards one guest port, given alone: --stdio NAME PORT"),
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
