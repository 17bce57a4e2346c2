"""A wait whose requests fail for a while (an API server restarting, a load balancer's
failover, a laptop's network coming back) asks again, as client-go's RetryWatcher does for
`kubectl wait` and `kubectl get -w`: from the last resourceVersion seen, after a short pause
that doubles up to RETRY_CAP, until the user's --timeout. It says so once on stderr. An
answer no retry mends (401, 403, 404, a server that is not an API server) ends the wait at
once, in one line. A failed re-open ended every wait in one line before, and a 5xx switched
the rest of it to polling (CLI audit, session 48)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final
from weakref import WeakKeyDictionary

from wukong.adapters.kube import Kube
from wukong.api.durations import format_duration
from wukong.console.errors import explain
from wukong.errors import NOT_KUBERNETES, TEXT, ApiError, one_line

RETRY_FIRST: float = 1.0  # the first pause before asking again (tests shorten it)
RETRY_CAP: Final = 8.0  # the longest pause: a cluster back is seen within seconds
SAID_CHARACTERS: Final = TEXT  # of an error's text in a line (one_line: wukong.errors's)
# A watch that ends sooner than this after it opened, having said nothing, is a broken one
# (a proxy, or an API server answering 200 and closing at once): client-go's reflector calls
# it a "very short watch" and backs off before the next.
SHORT_WATCH: Final = 1.0


def transient(error: ApiError) -> bool:
    """Worth asking again: no answer at all (status 0: refused, reset, timed out), 429 Too
    Many Requests, or a 5xx (an API server restarting, etcd electing a leader, a proxy's 502,
    503 or 504), not 501 Not Implemented. Not an answer in a server's own words that the
    cluster holds it otherwise: 401, 403, 404, or a page that is no API server's."""
    if error.reason == NOT_KUBERNETES:
        return False
    return error.status in (0, 429) or (500 <= error.status < 600 and error.status != 501)


@dataclass
class Outage:
    """The cluster not answering the waits of one command (one client), since `since` (the
    loop's time), `error` the last failure; `told`: the `say`s that said it (the waits over
    a selection say it once, not once per Wukong)."""

    since: float | None = None
    error: ApiError | None = None
    told: set[Callable[[str], None]] = field(default_factory=set)


_OUTAGES: WeakKeyDictionary[Kube, Outage] = WeakKeyDictionary()


class Reconnect:
    """One wait's pauses between failed requests, through `say` the line that says so."""

    def __init__(self, kube: Kube, server: str, say: Callable[[str], None]) -> None:
        self._outage = _OUTAGES.setdefault(kube, Outage())
        self._server, self._say = server, say
        self._pause = RETRY_FIRST
        self._short = RETRY_FIRST  # the pause after the next watch that ends at once

    async def after(self, error: ApiError) -> None:
        """Pause before asking again after `error`; raise it when asking again cannot help."""
        if not transient(error):
            raise error
        outage, loop = self._outage, asyncio.get_running_loop()
        if outage.since is None:
            outage.since = loop.time()
        outage.error = error
        if self._say not in outage.told:
            outage.told.add(self._say)
            self._say(f"warning: {one_line(explain(error, self._server))}; reconnecting")
        await asyncio.sleep(self._pause)
        self._pause = min(2 * self._pause, RETRY_CAP)

    async def ended(self, began: float, said: bool) -> None:
        """A watch opened at `began` (the loop's time) ended (the server's end, an ERROR, a
        cut): one that `said` something or lasted SHORT_WATCH is watched again at once; one
        that ended sooner having said nothing, after a pause that doubles from RETRY_FIRST
        to RETRY_CAP, and starts over after a watch that worked. A wait behind a proxy that
        answers every watch with an empty 200 asked again without a pause, a GET and a
        WATCH each time, as fast as the proxy answered (audit leftovers, session 50)."""
        if said or asyncio.get_running_loop().time() - began >= SHORT_WATCH:
            self._short = RETRY_FIRST
            return
        await asyncio.sleep(self._short)
        self._short = min(2 * self._short, RETRY_CAP)

    def answered(self) -> None:
        """The cluster answered: the outage, if any, is over."""
        self._pause = RETRY_FIRST
        self._outage.since, self._outage.error = None, None
        self._outage.told.clear()

    def state(self) -> str | None:
        """`reconnecting for 40s: <the last failure>` while the cluster does not answer."""
        outage = self._outage
        if outage.since is None or outage.error is None:
            return None
        lasted = format_duration(round(asyncio.get_running_loop().time() - outage.since))
        return f"reconnecting for {lasted}: {one_line(explain(outage.error, self._server))}"
