"""`wukong port-forward`'s port arguments, read as kubectl and virtctl read them: `8080:80`
(local 8080 to the guest's 80), `80` (the same number on both ends), `:80` (a free local
port)."""

from __future__ import annotations

from dataclasses import dataclass

from wukong.console.errors import usage


@dataclass(frozen=True)
class Forward:
    """One forwarded port: `local` on this machine (0: any free one) to `remote` in the
    guest."""

    local: int
    remote: int


def _number(text: str, spec: str, *, local: bool) -> int:
    low = 0 if local else 1
    if not text.isdigit() or not low <= int(text) <= 65535:
        end = "local" if local else "guest"
        raise usage(f"{spec}: the {end} port must be a number from {low} to 65535")
    return int(text)


def forwards(specs: list[str], *, stdio: bool) -> list[Forward]:
    """The ports to forward, or a usage error naming the argument that cannot be one.
    `--stdio` carries one connection, so it takes one port and no local one."""
    if not specs:
        raise usage("name a port to forward: LOCAL:REMOTE, PORT or :REMOTE")
    found: list[Forward] = []
    for spec in specs:
        if "/" in spec:
            raise usage(f"{spec}: only TCP ports are forwarded (no /udp)")
        local, colon, remote = spec.rpartition(":")
        guest = _number(remote, spec, local=False)
        if not colon:
            found.append(Forward(guest, guest))
        else:
            found.append(Forward(_number(local, spec, local=True) if local else 0, guest))
    if stdio and (len(found) != 1 or ":" in specs[0]):
        raise usage("--stdio forwards one guest port, given alone: --stdio NAME PORT")
    taken = [f.local for f in found if f.local]
    if len(taken) != len(set(taken)):
        raise usage("a local port is named twice")
    return found
