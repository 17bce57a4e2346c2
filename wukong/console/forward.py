"""`wukong port-forward`: local ports to the guest's, through virt-api's `portforward`
websocket (as `virtctl port-forward`), with the user's own rights.

TCP: a local listener; each connection gets its own websocket. UDP: one local socket; each
peer (address and port) that sends a datagram gets its own websocket, and each datagram is
one binary message both ways (virt-api dials the guest's port over UDP and copies each
datagram it reads into one message). A UDP peer has no end to wait for, so its tunnel closes
after `UDP_IDLE_SECONDS` without a datagram either way; the next datagram opens a new one.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from contextlib import suppress
from typing import Final, cast

import aiohttp

from wukong.console.connect import Target, connect
from wukong.console.errors import FAILED, OK, CliError
from wukong.console.invocation import Cluster, Console
from wukong.console.ports import Forward
from wukong.console.remote import (
    LINGER_SECONDS,
    Forwarder,
    LostCluster,
    cannot_listen,
    first_to_end,
    open_stream,
    pump,
    running_vmi,
    stdin_chunks,
)

UDP_IDLE_SECONDS: Final = 60.0  # as conntrack forgets a UDP flow (30 s one way, 120 s both)
UDP_BACKLOG: Final = 64  # datagrams a peer's tunnel holds while it opens; more are dropped

Peer = tuple[str, int]


async def carry(
    ws: aiohttp.ClientWebSocketResponse,
    outgoing: asyncio.Queue[bytes],
    send_back: Callable[[bytes], None],
    idle: float,
) -> None:
    """Datagrams from `outgoing` to the guest and the guest's back, one message each, until
    the guest's side closes or `idle` seconds pass without a datagram either way."""
    loop = asyncio.get_running_loop()
    with suppress(TimeoutError):
        async with asyncio.timeout(idle) as quiet:

            def heard() -> None:
                quiet.reschedule(loop.time() + idle)

            async def upstream() -> None:
                while True:
                    await ws.send_bytes(await outgoing.get())
                    heard()

            async def downstream() -> None:
                async for message in ws:
                    if message.type is aiohttp.WSMsgType.BINARY:
                        send_back(message.data)
                        heard()
                    elif message.type is not aiohttp.WSMsgType.TEXT:
                        return

            await first_to_end(upstream(), downstream())


class UdpRelay(asyncio.DatagramProtocol):
    """One local UDP port: a tunnel to the guest's port per peer that sends to it. An API
    error while one opens (`LostCluster`) is said once and sets `lost`."""

    def __init__(
        self,
        target: Target,
        io: Console,
        name: str,
        forward: Forward,
        lost: asyncio.Event | None = None,
    ) -> None:
        self.target, self.io, self.name, self.forward = target, io, name, forward
        self.lost = asyncio.Event() if lost is None else lost
        self.transport: asyncio.DatagramTransport | None = None
        self.peers: dict[Peer, asyncio.Queue[bytes]] = {}
        self.tunnels: set[asyncio.Task[None]] = set()
        # The error last printed: a refused tunnel is tried again with the peer's next
        # datagram (a DNS client retries every second), and the same line once is enough.
        self.said: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's UDP transport is one, though not a subclass of it before Python 3.12.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Peer) -> None:
        outgoing = self.peers.get(addr)
        if outgoing is None:
            outgoing = self.peers[addr] = asyncio.Queue(UDP_BACKLOG)
            tunnel = asyncio.create_task(self._tunnel(addr, outgoing))
            self.tunnels.add(tunnel)
            tunnel.add_done_callback(self.tunnels.discard)
        with suppress(asyncio.QueueFull):  # UDP's way: what cannot be carried is dropped
            outgoing.put_nowait(data)

    async def _tunnel(self, peer: Peer, outgoing: asyncio.Queue[bytes]) -> None:
        def send_back(data: bytes) -> None:
            if self.transport is not None:
                self.transport.sendto(data, peer)

        try:
            async with open_stream(self.target, self.name, self.forward.subresource) as ws:
                self.said = None
                await carry(ws, outgoing, send_back, UDP_IDLE_SECONDS)
        except LostCluster as error:
            if not self.lost.is_set():
                self.io.say(f"error: {error.message}")
            self.lost.set()
        except CliError as error:
            if error.message != self.said:
                self.io.say(f"error: {error.message}")
                self.said = error.message
        finally:
            self.peers.pop(peer, None)

    async def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        for tunnel in list(self.tunnels):
            tunnel.cancel()
        await asyncio.gather(*self.tunnels, return_exceptions=True)


async def _udp(
    target: Target, io: Console, name: str, forward: Forward, address: str, lost: asyncio.Event
) -> tuple[UdpRelay, int]:
    """A local UDP port relayed to the guest's, and the port it got."""
    relay = UdpRelay(target, io, name, forward, lost)
    loop = asyncio.get_running_loop()
    try:
        transport, _ = await loop.create_datagram_endpoint(
            lambda: relay, local_addr=(address, forward.local)
        )
    except OSError as error:
        raise cannot_listen(address, forward.local, error) from None
    return relay, int(transport.get_extra_info("sockname")[1])


async def port_forward(
    cluster: Cluster,
    io: Console,
    name: str,
    ports: list[Forward],
    *,
    address: str = "127.0.0.1",
    stdio: bool = False,
) -> int:
    """`wukong port-forward NAME 8080:80 udp/5353:53`: local ports that forward to the
    guest's ports through virt-api, until interrupted, or until a new connection finds the
    cluster lost (an API error: kubectl's port-forward ends when it loses its connection to
    the API server, "lost connection to pod"); with `stdio`, one TCP connection on stdin and
    stdout (ssh's ProxyCommand)."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        await running_vmi(target, name, io.say)
        if stdio:
            async with open_stream(target, name, ports[0].subresource) as ws:
                out = sys.stdout.buffer

                async def write(data: bytes) -> None:
                    out.write(data)
                    out.flush()

                async with stdin_chunks(raw=False) as read:
                    # However it ended, 0: virt-api closes the websocket the same way when
                    # the guest's program closes its connection and when the network fails,
                    # and ssh (the ProxyCommand's user) says itself how the connection ended.
                    await pump(ws, read, write, linger=LINGER_SECONDS)
                    return OK
        forwarders: list[Forwarder] = []
        relays: list[UdpRelay] = []
        lost = asyncio.Event()  # a connection's API error, said by the one that met it
        try:
            for forward in ports:
                if forward.protocol == "udp":
                    relay, bound = await _udp(target, io, name, forward, address, lost)
                    relays.append(relay)
                    io.out(f"Forwarding from {address}:{bound} -> {forward.remote}/udp")
                    continue
                forwarders.append(Forwarder(target, io, name, forward.subresource, lost=lost))
                bound = await forwarders[-1].listen(address, forward.local)
                io.out(f"Forwarding from {address}:{bound} -> {forward.remote}")
            io.say(f"to {name}'s guest through KubeVirt (Ctrl-C ends)")
            await lost.wait()  # or interrupted
        finally:
            # The open connections end here, before the client they use closes (Ctrl-C).
            await asyncio.gather(
                *(forwarder.close() for forwarder in forwarders),
                *(relay.close() for relay in relays),
            )
    return FAILED
