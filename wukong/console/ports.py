"""`wukong port-forward`'s port arguments, read as kubectl and virtctl read them: `8080:80`
(local 8080 to the guest's 80), `80` (the same number on both ends), `:80` (a free local
port, as kubectl reads it; virtctl reads it as 80 on both ends), each with virtctl's optional
protocol in front (`udp/5353:53`; TCP by default)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from wukong.console.errors import usage

Protocol = Literal["tcp", "udp"]
PROTOCOLS: Final[tuple[Protocol, ...]] = ("tcp", "udp")


@dataclass(frozen=True)
class Forward:
    """One forwarded port: `local` on this machine (0: any free one) to `remote` in the
    guest, over `protocol`."""

    local: int
    remote: int
    protocol: Protocol = "tcp"

    @property
    def subresource(self) -> str:
        """virt-api's subresource for one connection (or one UDP peer) to this port."""
        return f"portforward/{self.remote}/{self.protocol}"


def _number(text: str, spec: str, *, local: bool) -> int:
    low = 0 if local else 1
    if not text.isdigit() or not low <= int(text) <= 65535:
        end = "local" if local else "guest"
        raise usage(f"{spec}: the {end} port must be a number from {low} to 65535")
    return int(text)


def _protocol(spec: str) -> tuple[Protocol, str]:
    """`udp/5353:53` → ("udp", "5353:53"); no prefix is TCP."""
    prefix, slash, ports = spec.rpartition("/")
    if not slash:
        return "tcp", spec
    for protocol in PROTOCOLS:
        if prefix.lower() == protocol:
            return protocol, ports
    if ports.lower() in PROTOCOLS:  # `53/udp`, as Docker and Services write it
        raise usage(f"{spec}: the protocol goes first, as with virtctl: {ports.lower()}/{prefix}")
    raise usage(f"{spec}: the protocol is tcp or udp (udp/5353:53)")


def forwards(specs: list[str], *, stdio: bool) -> list[Forward]:
    """The ports to forward, or a usage error naming the argument that cannot be one.
    `--stdio` carries one connection, so it takes one TCP port and no local one."""
    if not specs:
        raise usage("name a port to forward: LOCAL:REMOTE, PORT or :REMOTE")
    found: list[Forward] = []
    for spec in specs:
        protocol, ports = _protocol(spec)
        local, colon, remote = ports.rpartition(":")
        guest = _number(remote, spec, local=False)
        here = guest if not colon else _number(local, spec, local=True) if local else 0
        found.append(Forward(here, guest, protocol))
    if stdio and (len(found) != 1 or ":" in specs[0] or found[0].protocol != "tcp"):
        raise usage("--stdio forwards one TCP guest port, given alone: --stdio NAME PORT")
    taken = [(f.local, f.protocol) for f in found if f.local]
    if len(taken) != len(set(taken)):
        raise usage("a local port is named twice")
    return found
