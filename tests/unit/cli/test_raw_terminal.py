"""`wukong console` puts the terminal in raw mode; a SIGTERM or SIGHUP (a closed ssh session,
`kill`, a supervisor) must not leave it so: the shell after it would echo nothing and take no
Enter. The process restores the terminal, then ends by the signal as it would have."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import termios

import pytest

SCRIPT = """
import asyncio, sys
from wukong.console.remote import stdin_chunks

async def main():
    async with stdin_chunks():
        print("raw", flush=True)
        await asyncio.sleep(60)

asyncio.run(main())
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_while_raw_restores_the_terminal_and_ends_by_the_signal(sig: int) -> None:
    leader, follower = pty.openpty()
    try:
        before = termios.tcgetattr(follower)
        assert before[3] & termios.ICANON and before[3] & termios.ECHO
        proc = subprocess.Popen(
            [sys.executable, "-c", SCRIPT], stdin=follower, stdout=subprocess.PIPE, text=True
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "raw"
            raw = termios.tcgetattr(follower)
            assert not raw[3] & (termios.ICANON | termios.ECHO), "not raw while it runs"
            proc.send_signal(sig)
            assert proc.wait(timeout=20) == -sig, "it did not end by the signal"
        finally:
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        after = termios.tcgetattr(follower)
        assert after == before, "the terminal was left raw"
    finally:
        os.close(leader)
        os.close(follower)
