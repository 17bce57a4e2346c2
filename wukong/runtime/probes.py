"""HTTP endpoints for the kubelet: /healthz and /readyz (aiohttp). /metrics has its own port
and authentication (wukong.runtime.metrics_server)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from aiohttp import web

from wukong.runtime.clock import Clock, MonotonicClock

logger = logging.getLogger(__name__)

ReadyCheck = Callable[[], tuple[bool, str]]


class WatchHealth(Protocol):
    """What the probes need from an informer."""

    @property
    def name(self) -> str:
        """Resource name, for messages."""
        ...

    @property
    def synced(self) -> asyncio.Event:
        """Set once the first LIST is in the cache."""
        ...

    def stale(self, now: float) -> bool:
        """True if the watch died or has been silent past its deadline."""
        ...


class ProbeServer:
    """Serves the probes; a heartbeat task proves the event loop still turns."""

    def __init__(
        self,
        watches: Sequence[WatchHealth] = (),
        *,
        ready: ReadyCheck | None = None,
        host: str = "0.0.0.0",
        port: int = 8080,
        clock: Clock | None = None,
        heartbeat_interval: float = 1.0,
        heartbeat_stale_after: float = 10.0,
    ) -> None:
        self.watches = list(watches)
        self.host = host
        self._requested_port = port
        self._ready = ready
        self._clock: Clock = clock or MonotonicClock()
        self._interval = heartbeat_interval
        self._stale_after = heartbeat_stale_after
        self._last_beat: float | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful when 0 asked for an ephemeral one)."""
        if self._port is None:
            raise RuntimeError("probe server is not started")
        return self._port

    def healthy(self) -> tuple[bool, str]:
        """Loop responsive (fresh heartbeat) and no watch stuck."""
        now = self._clock.now()
        if self._last_beat is None or now - self._last_beat > self._stale_after:
            return False, "event loop heartbeat is stale"
        stuck = [w.name for w in self.watches if w.stale(now)]
        if stuck:
            return False, "watches stale: " + ", ".join(stuck)
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        """Every cache synced, and the extra check (leadership, ...) passes. The extra
        check's refusal comes first: it may say why a cache is not synced (a watch refused by
        RBAC, an API not served), which "caches not synced" alone does not."""
        extra = self._ready() if self._ready is not None else (True, "ok")
        if not extra[0]:
            return extra
        unsynced = [w.name for w in self.watches if not w.synced.is_set()]
        if unsynced:
            return False, "caches not synced: " + ", ".join(unsynced)
        return extra

    async def start(self) -> None:
        """Start the heartbeat and bind the HTTP server."""
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._beat()
        self._heartbeat = asyncio.get_running_loop().create_task(
            self._run_heartbeat(), name="probe-heartbeat"
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        logger.info("probes listening on %s:%d", self.host, self._port)

    async def stop(self) -> None:
        """Stop serving and end the heartbeat."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None

    async def __aenter__(self) -> ProbeServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _beat(self) -> None:
        self._last_beat = self._clock.now()

    async def _run_heartbeat(self) -> None:
        """Record a beat every interval; a blocked loop stops the beats and /healthz fails."""
        while True:
            # Real asyncio.sleep on purpose: it is the event loop's own progress being measured.
            await asyncio.sleep(self._interval)
            self._beat()

    async def _healthz(self, request: web.Request) -> web.Response:
        return _answer(self.healthy())

    async def _readyz(self, request: web.Request) -> web.Response:
        return _answer(self.readiness())


def _answer(check: tuple[bool, str]) -> web.Response:
    """200 with "ok", or 500 with the reason."""
    ok, message = check
    return web.Response(status=200 if ok else 500, text=message + "\n")
