"""Ports for child processes come from below the kernel's ephemeral range: a port bind(0)
returned was taken by an outgoing connection before an operator replica bound it, and the
replica failed "address already in use" (session 23)."""

from __future__ import annotations

import socket

import pytest

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


def test_each_xdist_worker_takes_ports_from_a_share_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two workers picking at random from one range could both pick a port before either
    binds it."""
    low = _processes._ephemeral_low()
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    shares = []
    for worker in ("gw0", "gw1"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        shares.append(_processes._port_range(low))
    (a_start, a_end), (b_start, b_end) = shares
    assert a_start == _processes._PORT_FLOOR and a_end == b_start and b_end <= low
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    assert all(b_start <= port < b_end for port in _processes.free_ports(5))
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert _processes._port_range(low) == (_processes._PORT_FLOOR, low)
