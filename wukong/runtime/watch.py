"""Informers: LIST then WATCH one resource into the Store, resuming, relisting and backing off."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
from collections.abc import Callable
from typing import Any

import aiohttp

from wukong.errors import ApiError, Expired, Forbidden, NotFound, ServerError
from wukong.errors import classify as classify_http
from wukong.runtime._watch_protocol import (
    DELETED,
    LineBuffer,
    ResourceRef,
    Step,
    WatchEvent,
    classify,
    list_query,
    parse_event,
    parse_list,
    watch_query,
)
from wukong.runtime.cache import Obj, Store, object_name
from wukong.runtime.clock import Clock, MonotonicClock
from wukong.runtime.metrics import Metrics

logger = logging.getLogger(__name__)

EventHandler = Callable[[str, Obj], None]


class ResourceMissing(Exception):
    """The API server does not serve this resource (its CRD is not installed)."""


# Status codes of an API server that is starting, stopping or shedding load: not a fault of
# this stream, so retried at the reconnect pace, not with a growing backoff.
UNAVAILABLE = frozenset({429, 503})


def server_away(error: BaseException) -> bool:
    """True if the API server is not there (restarting, overloaded) rather than refusing us.

    Like client-go's reflector, which retries a refused connection or a 429 after a second
    instead of backing off: the server comes back as a whole, and every informer should be
    watching again within a second or two of its return, not after a doubled backoff."""
    if isinstance(error, ApiError):
        return error.status in UNAVAILABLE
    return isinstance(error, aiohttp.ClientConnectionError | ConnectionError)


# TCP keepalive on a watch's connection: an idle watch may carry no byte for minutes (the API
# server's bookmarks come only while its watch cache moves on), so without probes a peer gone
# without a FIN (a node lost, a NAT or load balancer dropping an idle flow) is noticed only at
# the silence deadline. Probes after 30 s idle, every 10 s, 3 unanswered: about 60 s, as
# client-go's HTTP/2 pings notice it in about 45 s (session 44's measurement,
# docs/decisions.md "Watch timeouts spread, dead connections noticed").
_PROBES = (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3))
KEEPALIVE = (
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
    *((socket.IPPROTO_TCP, getattr(socket, name), value)
      for name, value in _PROBES if hasattr(socket, name)),
)  # fmt: skip


def keep_alive(response: aiohttp.ClientResponse) -> bool:
    """Turn TCP keepalive on for `response`'s connection; False where it cannot be."""
    connection = response.connection
    transport = connection.transport if connection is not None else None
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return False
    try:
        for level, option, value in KEEPALIVE:
            sock.setsockopt(level, option, value)
    except OSError:
        return False
    return True


def watch_seconds(minimum: int, rng: Callable[[], float] = random.random) -> int:
    """The server-side timeout of one WATCH: between `minimum` and twice it, as client-go's
    reflector draws it, so that informers (and replicas) opened together do not all end and
    open again in the same instant, every time, for good."""
    return minimum + int(minimum * rng()) if minimum > 1 else minimum


def jittered(delay: float, rng: Callable[[], float] = random.random) -> float:
    """`delay` spread over [delay/2, delay]: informers that failed together (a restarted API
    server) must not all retry in the same instant."""
    return delay * (0.5 + rng() / 2)


def apply_event(store: Store, kind: str, event: WatchEvent) -> Obj:
    """Put an ADDED/MODIFIED object into the store or remove a DELETED one; return it. The
    DELETED of an earlier incarnation (another uid) leaves the one cached alone: our write
    made it after that one went."""
    if event.type == DELETED:
        cached = store.get(kind, *object_name(event.object))
        uid = (event.object.get("metadata") or {}).get("uid")
        held = (cached or {}).get("metadata", {}).get("uid")
        if not (uid and held and uid != held):
            store.bury(kind, event.object)
        return event.object
    store.upsert(kind, event.object)
    return store.get(kind, *object_name(event.object)) or event.object


def same_but_version(old: Obj, new: Obj) -> bool:
    """Whether two cached versions of an object differ in their resourceVersion at most."""
    if old is new:
        return True
    if old.keys() != new.keys():
        return False
    for key, value in new.items():
        if key != "metadata":
            if old[key] != value:
                return False
            continue
        before = old[key]
        if before.keys() != value.keys():
            return False
        if any(before[k] != v for k, v in value.items() if k != "resourceVersion"):
            return False
    return True


class Informer:
    """Keeps the Store's copy of one resource current and tells handlers what changed."""

    def __init__(
        self,
        api_client: Any,
        resource: ResourceRef,
        store: Store,
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        timeout_seconds: int = 300,
        silence_deadline: float | None = None,
        request_timeout: float = 60.0,
        page_size: int = 500,
        backoff_initial: float = 1.0,
        backoff_cap: float = 60.0,
        missing_retry: float = 30.0,
        skip_unchanged: bool = False,
        reconnect: float = 1.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.resource = resource
        # Do not wake handlers for an update that changed nothing the cache keeps (the
        # Store keeps only what the operator reads) but the resourceVersion.
        self.skip_unchanged = skip_unchanged
        self.synced = asyncio.Event()
        self.last_event_time: float | None = None
        self.restarts = 0
        self.installed: bool | None = None
        # The API server's last 403 on this resource's LIST or WATCH, until one is allowed
        # again: RBAC taken away after the cache synced (another install's apply rewrote the
        # binding) leaves `synced` set and the cache frozen, so readiness says this instead.
        self.refused: str | None = None
        self.timeout_seconds = timeout_seconds
        # No bytes for this long past a watch's own timeout means a dead connection: the
        # server would have closed it (each watch's deadline is its drawn timeout + 30 s).
        self._silence_given = silence_deadline
        self.silence_deadline = silence_deadline or float(2 * timeout_seconds + 30)
        """The longest a healthy watch may say nothing (for /healthz)."""
        self._rng = rng
        self._api = api_client
        self._store = store
        self._clock: Clock = clock or MonotonicClock()
        self._metrics = metrics
        if metrics is not None:  # a series from the start, so rate() and alerts see 0
            metrics.watch_restarts_total.labels(**self.watched)
        self._request_timeout = request_timeout
        self._page_size = page_size
        self._backoff_initial = backoff_initial
        self._backoff_cap = backoff_cap
        self._missing_retry = missing_retry
        self._reconnect = reconnect
        self._away = False  # in a streak of "API server not there" failures
        self._failed = False  # the last stream failed: the next one that opens is a return
        self._handlers: list[tuple[EventHandler, bool]] = []
        self._on_back: list[Callable[[], None]] = []
        self._resource_version: str | None = None
        self._last_activity: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._stream_lines = 0
        # Events of the current stream that were progress (an object's change, a bookmark):
        # an ERROR line is a line but no progress, and does not reset the backoff.
        self._stream_events = 0
        self._deadline = self.silence_deadline

    @property
    def name(self) -> str:
        """The resource's name, also its kind in the Store."""
        return self.resource.name

    @property
    def watched(self) -> dict[str, str]:
        """Its labels on the watch families: `resource` the plural, as every request to it
        is counted under, and `selector` what tells apart a resource watched more than once
        (events of one reason), else empty. The cache name (`virtualmachines.kubevirt.io`,
        `events?reason=FailedMount`) made `resource` mean two things (monitoring audit,
        session 42, finding 8)."""
        return {"resource": self.resource.plural, "selector": self.resource.field_selector or ""}

    def add_handler(self, handler: EventHandler, *, every_event: bool = False) -> None:
        """Call `handler(event_type, obj)` after each change is in the store; with
        `every_event`, also for an update `skip_unchanged` keeps from the others (one that
        our own write-through already put in the cache: a counter must still see it)."""
        self._handlers.append((handler, every_event))

    def add_back_handler(self, handler: Callable[[], None]) -> None:
        """Call `handler()` each time a watch opens again after its stream failed (the API
        server restarted, or a connection broke): what failed meanwhile may now succeed."""
        self._on_back.append(handler)

    def stale(self, now: float) -> bool:
        """True if the informer died or has been silent past its deadline (for /healthz)."""
        if self._task is not None and self._task.done():
            return True
        if self._last_activity is None or self.installed is False:
            return False
        return now - self._last_activity > self.silence_deadline + self._backoff_cap

    def start(self) -> asyncio.Task[None]:
        """Run the informer in a task of its own."""
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self.run(), name=f"informer-{self.name}")
        return self._task

    async def stop(self) -> None:
        """Cancel the informer's task and wait for it to end."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def run(self) -> None:
        """LIST, then WATCH from the list's resourceVersion, forever; recover from every error."""
        backoff = self._backoff_initial
        expired = 0  # 410s in a row, with no event between them
        while True:
            self._stream_lines = 0
            self._stream_events = 0
            try:
                if self._resource_version is None:
                    await self._relist()
                if await self._watch():
                    backoff = self._backoff_initial
                    expired = 0
                    continue
                raise ServerError(200, "EmptyWatch", "watch ended at once without any event")
            except Expired:
                self._resource_version = None
                self._count_restart()
                expired = expired + 1 if not self._stream_events else 1
                if expired == 1:
                    logger.info("%s: resourceVersion expired, relisting", self.name)
                    continue
                # A watch that expires again right after its LIST (an API server behind a
                # load balancer restarted with a newer cache than the one that listed): each
                # LIST reads every object (a consistent read, from the watch cache since
                # 1.34), and they went on without a pause (runtime audit, session 43). Backed
                # off as client-go's reflector does every restart.
                delay = jittered(backoff)
                logger.warning(
                    "%s: resourceVersion expired again at once; relisting in %.1fs",
                    self.name,
                    delay,
                )
                await self._clock.sleep(delay)
                backoff = min(backoff * 2, self._backoff_cap)
            except ResourceMissing:
                if self.installed is not False:
                    logger.warning("%s is not served by the API server; retrying", self.name)
                self.installed = False
                self.synced.clear()
                self._resource_version = None
                await self._clock.sleep(self._missing_retry)
            except Exception as error:  # any failure of one stream: back off and restart
                self._failed = True
                if self._stream_events:
                    # The stream worked for a while; this is a fresh failure, not a streak.
                    # Only an event is progress: a watch answered with one ERROR line (a 500
                    # Status in the stream) reset the pause every time, and was opened again
                    # every 0.5-1 s for good (audit leftovers, session 50).
                    backoff = self._backoff_initial
                self._count_restart()
                self._touch()
                if server_away(error):
                    await self._wait_for_server(error)
                    continue
                self._away = False
                delay = jittered(backoff)
                logger.warning("%s: watch failed (%s); retrying in %.1fs", self.name, error, delay)
                await self._clock.sleep(delay)
                backoff = min(backoff * 2, self._backoff_cap)

    async def _wait_for_server(self, error: Exception) -> None:
        """The API server is away: retry at a steady, jittered pace; say so once per outage."""
        delay = jittered(self._reconnect)
        if isinstance(error, aiohttp.ServerTimeoutError) and self._stream_lines:
            # The stream was open and then said nothing past its deadline: this connection
            # is taken for dead (its server would have ended it), not the server for away.
            logger.warning(
                "%s: the watch said nothing for %.0fs, past its timeout: taking the "
                "connection for dead and watching again",
                self.name,
                self._deadline,
            )
        elif not self._away:
            logger.warning(
                "%s: API server unavailable (%s); retrying every ~%.1fs",
                self.name,
                error or type(error).__name__,
                self._reconnect,
            )
        self._away = True
        await self._clock.sleep(delay)

    async def _relist(self) -> None:
        """Read every page of a consistent LIST and replace the cache with it."""
        items: list[Obj] = []
        resource_version: str | None = None
        token: str | None = None
        while True:
            timeout = aiohttp.ClientTimeout(total=self._request_timeout)
            query = list_query(self._page_size, token) + self._selector()
            response = await self._open("list", query, timeout)
            try:
                body = await response.read()
            finally:
                response.release()
            page = parse_list(body, self.resource)
            # Every page of one LIST shares the first page's snapshot.
            resource_version = resource_version or page.resource_version
            items.extend(page.items)
            token = page.continue_token
            if token is None:
                break
        self.apply_list(items, resource_version)
        logger.debug("%s: listed %d objects at %s", self.name, len(items), resource_version)

    def apply_list(self, items: list[Obj], resource_version: str) -> None:
        """Replace the cache with a full LIST, notify what changed, and mark the informer synced."""
        replaced = self._store.replace(self.name, items, resource_version)
        self._resource_version = resource_version
        self.installed = True
        self._touch()
        for obj in replaced.deleted:
            self._notify(DELETED, obj)
        for obj in replaced.added:
            self._notify("ADDED", obj)
        for obj in replaced.updated:
            self._notify("MODIFIED", obj)
        for obj in replaced.unsure:  # a pass looks again; no new answer to count
            self._notify("MODIFIED", obj, only_handlers=True)
        self.synced.set()

    async def _watch(self) -> bool:
        """Follow one WATCH stream to its end; False if it ended at once and said nothing."""
        assert self._resource_version is not None
        started = self._clock.now()
        seconds = watch_seconds(self.timeout_seconds, self._rng)
        self._deadline = self._silence_given or float(seconds + 30)
        timeout = aiohttp.ClientTimeout(connect=self._request_timeout, sock_read=self._deadline)
        query = watch_query(self._resource_version, seconds) + self._selector()
        response = await self._open("watch", query, timeout)
        keep_alive(response)
        self._away = False
        self._touch()
        if self._failed:
            self._failed = False
            for handler in self._on_back:
                handler()
        buffer = LineBuffer()
        self._stream_lines = 0
        self._stream_events = 0
        try:
            async for chunk in response.content.iter_any():
                for line in buffer.feed(chunk):
                    self._stream_lines += 1
                    self.process(parse_event(line))
            for line in buffer.flush():
                self._stream_lines += 1
                self.process(parse_event(line))
        finally:
            # Abort, then close: a half-read stream must not go back to the pool, and a TLS
            # close handshake still pending when the loop stops would leak the transport.
            connection = response.connection
            if connection is not None and connection.transport is not None:
                connection.transport.abort()
            response.close()
        return self._stream_lines > 0 or self._clock.now() - started >= 1.0

    @property
    def resource_version(self) -> str | None:
        """Where the next WATCH resumes; None means the next step is a full LIST."""
        return self._resource_version

    def process(self, event: WatchEvent) -> None:
        """Apply one watch event and advance the resourceVersion; raise to end the stream."""
        self._touch()
        self.last_event_time = self._last_activity
        step = classify(event)
        if step is Step.RELIST or step is Step.RESTART:
            # A Status in the stream: the same mapping as any HTTP error (410 is Expired).
            status = event.object
            error = classify_http(int(status.get("code") or 0), json.dumps(status))
            if step is Step.RELIST and not isinstance(error, Expired):
                error = Expired(410, "Expired", error.message)
            raise error
        if step is Step.IGNORE:
            logger.debug("%s: ignoring watch event of type %r", self.name, event.type)
            return
        self._stream_events += 1  # an object's change or a bookmark: the stream works
        resource_version = event.resource_version
        if (
            step is Step.APPLY
            and event.type != DELETED
            and self._store.has_newer(self.name, event.object)
        ):
            # Our own later write is in the cache already (write-through): going back to this
            # version would wake a pass to decide again from a status since replaced. Only a
            # handler of every event (a counter of answers) hears of it.
            self._notify(event.type, event.object, only_every_event=True)
            ours = self._store.ours(self.name, event.object)
            self._store.caught_up(self.name, event.object)
            if not ours:
                # Not our echo: someone's change our later write carried into the cache (a
                # user's stop or delete committed just before our status patch). Nothing else
                # would wake a pass for it, nor tell the indexes (runtime audit, session 43).
                current = self._store.get(self.name, *object_name(event.object))
                self._notify(event.type, current or event.object, only_handlers=True)
        elif step is Step.APPLY:
            before = self._store.get(self.name, *object_name(event.object))
            obj = apply_event(self._store, self.name, event)
            self._store.caught_up(self.name, event.object)
            quiet = self.skip_unchanged and event.type == "MODIFIED" and before is not None
            unchanged = quiet and before is not None and same_but_version(before, obj)
            self._notify(event.type, obj, only_every_event=unchanged)
        if resource_version:
            self._resource_version = resource_version
            self._store.set_resource_version(self.name, resource_version)

    def _selector(self) -> list[tuple[str, str]]:
        selector = self.resource.field_selector
        return [("fieldSelector", selector)] if selector else []

    async def _open(
        self, verb: str, query: list[tuple[str, str]], client_timeout: aiohttp.ClientTimeout
    ) -> aiohttp.ClientResponse:
        """Send a raw GET (no model decoding); return the open response or raise by status.
        Counted in wukong_kube_api_requests_total either way: code 0 when no answer came (a
        refused connection, a timeout), as `Kube` counts its own requests, so an API server
        outage shows the informers' retries there too (monitoring audit, session 48)."""
        try:
            response: aiohttp.ClientResponse = await self._api.call_api(
                self.resource.path(),
                "GET",
                query_params=query,
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=client_timeout,
            )
        except Exception:
            if self._metrics is not None:
                self._metrics.count_api_request(verb, 0, self.resource.plural)
            raise
        if self._metrics is not None:
            self._metrics.count_api_request(verb, response.status, self.resource.plural)
        if response.status == 200:
            if self.refused is not None:
                logger.warning("%s: %s allowed again; the cache catches up", self.name, verb)
                self.refused = None
            return response
        try:
            body = (await response.read()).decode("utf-8", "replace")[:500]
        finally:
            response.release()
        error = classify_http(response.status, body, self.resource.path())
        if isinstance(error, NotFound):
            raise ResourceMissing(body) from error
        if isinstance(error, Forbidden):
            if self.refused is None:
                logger.error(
                    "%s: %s refused (403 Forbidden: %s): the operator's RBAC does not allow "
                    "it; this cache is not kept current and /readyz fails until it does",
                    self.name,
                    verb,
                    error.said,
                )
            self.refused = f"{verb}: {error.said}"
        raise error

    def _notify(
        self,
        event_type: str,
        obj: Obj,
        *,
        only_every_event: bool = False,
        only_handlers: bool = False,
    ) -> None:
        """Call every handler (or only those of every event, or only the others); one failing
        handler must not stop the informer or the others."""
        for handler, every_event in self._handlers:
            if (only_every_event and not every_event) or (only_handlers and every_event):
                continue
            try:
                handler(event_type, obj)
            except Exception:
                logger.exception("%s: event handler failed", self.name)

    def _touch(self) -> None:
        self._last_activity = self._clock.now()

    def _count_restart(self) -> None:
        self.restarts += 1
        if self._metrics is not None:
            self._metrics.count_watch_restart(**self.watched)
