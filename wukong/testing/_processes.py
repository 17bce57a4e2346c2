"""The control plane's child processes: start with a log file, stop for sure, read the tail."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

_TAIL_LINES = 25


# Ports this process handed out: never handed out twice, even once their probe is closed.
_HANDED_OUT: set[int] = set()
# Below the kernel's ephemeral range, above the well-known and registered-service crowd.
_PORT_FLOOR = 20000


def _ephemeral_low() -> int:
    """The first port the kernel may give an outgoing connection (Linux: 32768 by default)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _port_range(low: int) -> tuple[int, int]:
    """[_PORT_FLOOR, low), or this pytest-xdist worker's share of it: each worker picks
    ports at random, and two could pick the same one before the process it is for binds it
    (an API server takes a second or two)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "").removeprefix("gw")
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if not (worker.isdigit() and workers.isdigit()) or int(workers) < 2:
        return _PORT_FLOOR, low
    span = (low - _PORT_FLOOR) // int(workers)
    start = _PORT_FLOOR + span * int(worker)
    return start, start + span


def free_ports(count: int) -> list[int]:
    """Return `count` distinct loopback TCP ports that were free a moment ago.

    Taken below the kernel's ephemeral range: a port bind(0) returns comes from that range,
    and any outgoing connection of any process (a test's API client) could take it before
    the child binds it, which failed an operator replica with "address already in use"
    (session 23). Where the range leaves no room below it, bind(0) it is. Under
    pytest-xdist, each worker takes from a share of its own (`_port_range`)."""
    low = _ephemeral_low()
    start, end = _port_range(low)
    with contextlib.ExitStack() as stack:  # held open until all are bound: no port twice
        ports: list[int] = []
        for _ in range(count * 50):
            if len(ports) == count:
                break
            port = random.randrange(start, end) if end - start >= 1000 else 0
            if port in _HANDED_OUT:
                continue
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            ports.append(int(sock.getsockname()[1]))
        if len(ports) < count:
            raise RuntimeError(f"no {count} free loopback ports below {low}")
        _HANDED_OUT.update(ports)
        return ports


class Process:
    """One binary running in the background, its stdout and stderr going to `log`."""

    def __init__(self, name: str, argv: Sequence[str], log: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The process id while started, else None."""
        return self._popen.pid if self._popen else None

    def start(self) -> None:
        """Spawn the process; returns at once."""
        with self.log.open("ab") as log:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own process group: a Ctrl-C aimed at pytest must not kill the control plane
                # before stop() has had the chance to shut it down in order and clean up.
                start_new_session=True,
            )

    def exited(self) -> int | None:
        """The exit code if the process has ended, else None."""
        return self._popen.poll() if self._popen else None

    def stop(self, grace: float = 10) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds (at once if 0); always reaps the child."""
        if self._popen is None:
            return
        if self._popen.poll() is None:
            if grace > 0:
                self._popen.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._popen.wait(grace)
            if self._popen.poll() is None:
                self._popen.kill()
            self._popen.wait()
        self._popen = None

    def tail(self, lines: int = _TAIL_LINES) -> str:
        """The last lines of the log, for error messages."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def describe_failure(self) -> str:
        """A paragraph naming the process, how it ended and what it last logged."""
        code = self.exited()
        state = "running" if code is None else f"exited with {code}"
        return f"--- {self.name} ({state}), log {self.log}:\n{self.tail()}"
