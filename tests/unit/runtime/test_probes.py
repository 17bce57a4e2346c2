"""Probes over real HTTP on an ephemeral port: health, readiness and metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from wukong.runtime.clock import FakeClock
from wukong.runtime.probes import ProbeServer


class FakeWatch:
    """Stands in for an Informer: a name, a synced event and a stale flag."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.synced = asyncio.Event()
        self.is_stale = False

    def stale(self, now: float) -> bool:
        return self.is_stale


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def fetch(http: aiohttp.ClientSession, server: ProbeServer, path: str) -> tuple[int, str]:
    async with http.get(f"http://127.0.0.1:{server.port}{path}") as response:
        return response.status, await response.text()


def server_for(*watches: FakeWatch, clock: FakeClock, **options: object) -> ProbeServer:
    return ProbeServer(
        watches,
        host="127.0.0.1",
        port=0,
        clock=clock,
        # A beat every hour: in these tests only the clock decides whether it is stale.
        heartbeat_interval=3600,
        heartbeat_stale_after=10,
        **options,  # type: ignore[arg-type]
    )


async def test_healthz_fails_when_the_event_loop_heartbeat_goes_stale(
    http: aiohttp.ClientSession,
) -> None:
    clock = FakeClock()
    async with server_for(clock=clock) as server:
        assert server.port > 0
        assert await fetch(http, server, "/healthz") == (200, "ok\n")
        clock.advance(11)
        status, text = await fetch(http, server, "/healthz")
        assert status == 500 and "heartbeat" in text


async def test_healthz_fails_when_a_watch_is_stuck(http: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    vms = FakeWatch("virtualmachines.kubevirt.io")
    async with server_for(vms, clock=clock) as server:
        vms.is_stale = True
        status, text = await fetch(http, server, "/healthz")
        assert status == 500 and "virtualmachines.kubevirt.io" in text


async def test_readyz_waits_for_every_cache_to_sync(http: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    wukongs, vms = FakeWatch("wukongs.vm.novasphere.dev"), FakeWatch("virtualmachines.kubevirt.io")
    async with server_for(wukongs, vms, clock=clock) as server:
        wukongs.synced.set()
        status, text = await fetch(http, server, "/readyz")
        assert status == 500 and "virtualmachines.kubevirt.io" in text
        assert "wukongs" not in text
        vms.synced.set()
        assert await fetch(http, server, "/readyz") == (200, "ok\n")


async def test_readyz_also_asks_the_extra_check(http: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    leading = False

    def ready() -> tuple[bool, str]:
        return (True, "leading") if leading else (False, "waiting for the lease")

    async with server_for(clock=clock, ready=ready) as server:
        assert await fetch(http, server, "/readyz") == (500, "waiting for the lease\n")
        leading = True
        assert await fetch(http, server, "/readyz") == (200, "leading\n")


async def test_the_probe_port_serves_no_metrics(http: aiohttp.ClientSession) -> None:
    async with server_for(clock=FakeClock()) as server:
        assert (await fetch(http, server, "/metrics"))[0] == 404


async def test_port_is_unknown_until_started() -> None:
    server = server_for(clock=FakeClock())
    with pytest.raises(RuntimeError):
        _ = server.port
    await server.stop()
