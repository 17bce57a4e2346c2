"""A watchdog that outlives its owner: when the process that started the control plane dies,
however it dies (SIGTERM, SIGHUP, SIGKILL, a crash), it stops the control plane's processes and
removes their directories (etcd's data in /dev/shm above all).

The owner holds the write end of a pipe that is the watchdog's stdin and tells it, one line at a
time, what to guard (`pid <pid> <start-time>`, `dir <path>`) and what it has cleaned up itself
(`release`). The kernel closes that pipe when the owner dies, so the watchdog reads EOF and
cleans up whatever is still guarded. It runs in a session of its own (no terminal's SIGHUP, no
Ctrl-C aimed at the owner's group) and uses the standard library only: it is started as a
script, `python -I _watchdog.py`, not imported into the owner.

A parent-death signal (prctl PR_SET_PDEATHSIG) was the other candidate; it fires when the
*thread* that forked dies (the demo starts the plane from a worker thread) and cannot remove
a directory, so the watchdog does both jobs in one place.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

# The owner is dead and the cluster with it: nothing of it is kept, so there is no shutdown
# worth waiting for (kube-apiserver, etcd and virt-api took the whole 5 s this was before,
# waiting for clients' watches that would never end). SIGTERM first all the same, for a
# process that cleans up something outside its directories on the way out.
_GRACE = 1.0


def start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot ("" if it is gone): a pid plus its
    start time names one process, so a reused pid is never killed by mistake."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # Field 22; the command (field 2) may hold spaces, so count from its closing parenthesis.
    return stat.rsplit(")", 1)[1].split()[19]


class Watchdog:
    """The owner's side: start the watchdog, tell it what to guard, release on a clean stop."""

    def __init__(self) -> None:
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The watchdog's process id while it runs."""
        return self._popen.pid if self._popen else None

    def guard_process(self, pid: int) -> None:
        """Stop this process (its whole process group) if the owner dies."""
        self._send(f"pid {pid} {start_time(pid)}")

    def guard_dir(self, path: Path) -> None:
        """Remove this directory if the owner dies."""
        self._send(f"dir {path}")

    def release(self) -> None:
        """The owner cleaned up itself: forget everything and let the watchdog exit."""
        if self._popen is None:
            return
        with contextlib.suppress(OSError):
            self._send("release")
        with contextlib.suppress(OSError):
            assert self._popen.stdin is not None
            self._popen.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(10)
        self._popen = None

    def _send(self, line: str) -> None:
        if self._popen is None:
            self._popen = subprocess.Popen(
                [sys.executable, "-I", __file__],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
        assert self._popen.stdin is not None
        self._popen.stdin.write(f"{line}\n".encode())
        self._popen.stdin.flush()


def _alive(pid: int, started: str) -> bool:
    return bool(started) and start_time(pid) == started


def _stop(processes: dict[int, str]) -> None:
    """SIGTERM each live process group, SIGKILL what is left after the grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        live = [pid for pid, started in processes.items() if _alive(pid, started)]
        for pid in live:
            with contextlib.suppress(OSError):
                os.killpg(pid, sig)  # each child leads its own session and group
        deadline = time.monotonic() + _GRACE
        while live and time.monotonic() < deadline:
            live = [pid for pid in live if _alive(pid, processes[pid]) and not _zombie(pid)]
            time.sleep(0.05)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def main() -> None:
    """Read orders until EOF; then clean up what is still guarded."""
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)  # only the owner's death ends the watch
    processes: dict[int, str] = {}
    dirs: list[str] = []
    for raw in sys.stdin.buffer:
        verb, _, rest = raw.decode().rstrip("\n").partition(" ")
        if verb == "pid":
            pid, _, started = rest.partition(" ")
            processes[int(pid)] = started
        elif verb == "dir":
            dirs.append(rest)
        elif verb == "release":
            processes.clear()
            dirs.clear()
    _stop(processes)
    for directory in dirs:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
