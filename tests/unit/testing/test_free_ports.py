"""Ports for child processes come from below the kernel's ephemeral range: a port bind(0)
returned was taken by an outgoing connection before an operator replica bound it, and the
replica failed "address already in use" (session 23)."""

from __future__ import annotations

import socket

from wukong.testing import _processes


def test_ports_are_below_the_ephemeral_range_distinct_and_never_handed_out_twice() -> None:
    low = _processes._ephemeral_low()
    first = _processes.free_ports(5)
    second = _processes.free_ports(5)
    assert len(set(first + second)) == 10
    assert all(port < low for port in first + second)
    for port in first:  # and free: each can be bound
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
