"""The guests' own TCP and UDP services, where this machine can reach them.

virt-api's `portforward` dials the VMI's first interface address itself (`netDial`), so a
forwarded port needs something listening there. The default pod network (10.244.x.y) does
not route on this machine; with `SimConfig.pod_cidr_prefix` in 127/8 (all of it is this
machine's loopback) each Running VMI's guest listens on its address, on each of its
`Guest.ports`: a banner, then every byte sent back, as a stand-in for sshd or a web server;
and on each of its `Guest.udp_ports`: every datagram answered with itself (DNS, NTP).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable
from typing import cast

from ._informer import Informer
from ._kube import JsonObj, key_of
from ._queue import Controller
from .guest import Guest
from .objects import deleting, phase

log = logging.getLogger(__name__)


def reachable_address(vmi: JsonObj | None) -> str | None:
    """The address virt-api would dial, when the VMI runs and it is on this machine."""
    if vmi is None or phase(vmi) != "Running" or deleting(vmi):
        return None
    interfaces = (vmi.get("status") or {}).get("interfaces") or []
    address = str((interfaces[0] if interfaces else {}).get("ipAddress") or "")
    try:
        return address if ipaddress.ip_address(address).is_loopback else None
    except ValueError:
        return None


class _Port:
    """One guest port: its listener and the connections it accepted, which end with it (a
    guest that stops takes its connections along)."""

    def __init__(self, banner: bytes) -> None:
        self.banner = banner
        self.server: asyncio.Server | None = None
        self.connections: set[asyncio.StreamWriter] = set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.add(writer)
        try:
            writer.write(self.banner)
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self.connections.discard(writer)
            writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in list(self.connections):
            writer.close()


class _Echo(asyncio.DatagramProtocol):
    """One guest UDP port: each datagram goes back to its sender."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's UDP transport is one, though not a subclass of it before Python 3.12.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(data, addr)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class GuestNetwork(Controller):
    """Listeners for the guests' ports, opened when a VMI runs on a reachable address and
    closed when it stops, moves or goes."""

    name = "guest-network"
    workers = 1

    def __init__(self, vmis: Informer, guest: Callable[[str, str], Guest]) -> None:
        super().__init__()
        self.vmis, self.guest = vmis, guest
        self._open: dict[str, tuple[str, dict[int, _Port]]] = {}
        self._udp: dict[str, dict[int, _Echo]] = {}
        vmis.handlers.append(lambda obj: self.enqueue(key_of(obj)))

    async def reconcile(self, key: str) -> float | None:
        ns, _, name = key.partition("/")
        address = reachable_address(self.vmis.get(ns, name))
        held = self._open.get(key)
        if held is not None and held[0] != address:
            self._close(key)
        if address is None:
            return None
        listening = self._open.setdefault(key, (address, {}))[1]
        ports = self.guest(ns, name).ports
        for port in set(listening) - set(ports):
            listening.pop(port).close()
        for port, banner in ports.items():
            if port in listening:
                continue
            listening[port] = served = _Port(banner)
            try:
                served.server = await asyncio.start_server(served.serve, address, port)
            except OSError as error:  # a port below 1024 without root, or one taken
                log.warning("guest %s cannot listen on %s:%d: %s", key, address, port, error)
        await self._serve_udp(key, address, self.guest(ns, name).udp_ports)
        return None

    async def _serve_udp(self, key: str, address: str, ports: set[int]) -> None:
        serving = self._udp.setdefault(key, {})
        for port in set(serving) - ports:
            serving.pop(port).close()
        loop = asyncio.get_running_loop()
        for port in ports - set(serving):
            try:
                _, serving[port] = await loop.create_datagram_endpoint(
                    _Echo, local_addr=(address, port)
                )
            except OSError as error:
                serving[port] = _Echo()  # tried once, as a TCP port is
                log.warning("guest %s cannot serve udp %s:%d: %s", key, address, port, error)

    def _close(self, key: str) -> None:
        _, listening = self._open.pop(key)
        for served in listening.values():
            served.close()
        for echo in self._udp.pop(key, {}).values():
            echo.close()

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            for key in list(self._open):
                self._close(key)
