"""--wait: follow one Wukong through a watch and narrate each change on stderr."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

from wukong.adapters.kube import BROKEN, abandon
from wukong.api.conditions import (
    CHILDREN_ADMITTED,
    DISK_DETACH,
    NETWORKS_CONFIGURED,
    SECRET_MISSING,
    SPEC_VALID,
    STALLED,
    VM_HEALTHY,
    VOLUMES_BOUND,
)
from wukong.api.contract import ANSWERED_APART
from wukong.api.durations import format_duration
from wukong.console.connect import CONNECT_SECONDS, Target, kubernetes_object
from wukong.console.errors import CliError
from wukong.console.invocation import typed
from wukong.console.reconnect import Reconnect
from wukong.console.status import SETTLED, unclaimed
from wukong.console.status import phase as status_phase
from wukong.errors import ApiError, NotFound, ServerError, classify

JsonObj = dict[str, Any]
T = TypeVar("T")
WATCH_SECONDS: Final = 60  # the server ends each stream; we resume from the last version
# A watch silent this long is dead (a half-open connection: NAT, VPN, suspend): watch again.
# The server ends a healthy one at WATCH_SECONDS; read at each watch (tests shorten it).
WATCH_READ_SECONDS: float = WATCH_SECONDS + 30
POLL_SECONDS: Final = 1.0  # only when the server cannot watch (RBAC without `watch`)
STILL_EVERY: Final = 15.0  # a wait with nothing new to say says so this often
GONE: Final = 410  # a watch's ERROR code: its resourceVersion is too old
# What a watch is answered when the server cannot watch at all: RBAC with `get` and not
# `watch` (403; a user with neither is told so by the next GET), or no watch on the resource
# (405 MethodNotAllowed). Any other answer is not a reason to give watching up.
UNWATCHABLE: Final = (403, 405)


class CannotWatch(Exception):
    """The server cannot watch (`error`: its answer, UNWATCHABLE): poll instead."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(str(error))
        self.error = error


class Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again, then watch from there."""


class Cut(Exception):
    """The watch stream broke while it was read (the connection reset or closed mid-body, or
    silent past WATCH_READ_SECONDS): watch again from the last version seen, as client-go's
    RetryWatcher does. Not the user's deadline, though aiohttp's read timeout is a
    TimeoutError too."""


def _volumes(cr: JsonObj) -> dict[str, tuple[Any, Any]]:
    volumes = (cr.get("status") or {}).get("volumes") or []
    return {str(v.get("name")): (v.get("phase"), v.get("progress")) for v in volumes}


def _answer(life: JsonObj) -> tuple[Any, ...]:
    """What tells one lifecycle answer from another: which request, where it stands, why."""
    return life.get("requestId"), life.get("state"), life.get("message")


# Conditions that say what holds a Wukong back when they are in this state (docs/reference.md);
# not a disk still provisioning, which the disk lines tell as it goes.
TROUBLE: Final = {
    SPEC_VALID: "False",
    NETWORKS_CONFIGURED: "False",
    VOLUMES_BOUND: "False",
    CHILDREN_ADMITTED: "False",
    VM_HEALTHY: "False",
    SECRET_MISSING: "True",
    # A removed disk that waits: mounted in the guest, no answer from the guest agent, or
    # attached at boot (it leaves at the next restart). `detach --wait` said none of it.
    DISK_DETACH: "False",
    # Past the operator's bound (default 5 min), naming what it still waits for: a stuck
    # restore in a Stopped Wukong says it only here.
    STALLED: "True",
}
# A disk on its way: made, or made again by KubeVirt's restore (VolumesBound `Restoring`).
UNDER_WAY: Final = {"Provisioning", "Restoring"}


def trouble(cr: JsonObj | None) -> str | None:
    """What the operator says holds the Wukong back, newest first: `Type=Status Reason:
    message` of a condition in trouble; None when none is."""
    conditions = [
        c
        for c in ((cr or {}).get("status") or {}).get("conditions") or []
        if TROUBLE.get(str(c.get("type"))) == c.get("status") and c.get("reason") not in UNDER_WAY
    ]
    if not conditions:
        return None
    newest = max(conditions, key=lambda c: str(c.get("lastTransitionTime") or ""))
    text = f"{newest['type']}={newest['status']} {newest.get('reason') or ''}".rstrip()
    return f"{text}: {newest['message']}" if newest.get("message") else text


def held_back(cr: JsonObj | None) -> str | None:
    """What a wait says holds the Wukong back: a condition in trouble, or no status at all
    a while after it was made (no operator watches its namespace)."""
    return trouble(cr) or unclaimed(cr, datetime.now(UTC))


def progress(before: JsonObj | None, after: JsonObj | None, name: str) -> list[str]:
    """What changed between two snapshots, one line each (the first snapshot: its phase)."""
    if after is None:
        return [f"{name}: gone"]
    old: JsonObj = (before or {}).get("status") or {}
    new: JsonObj = after.get("status") or {}
    lines = []
    # No phase yet reads as Pending, on both sides (the operator's first write may say so).
    was, now = old.get("phase") or "Pending", new.get("phase") or "Pending"
    if before is None or was != now:
        lines.append(f"{name}: {was} -> {now}" if before is not None else f"{name}: {now}")
    life_old, life_new = old.get("lifecycleState") or {}, new.get("lifecycleState") or {}
    # The request's id too: a new request refused in the same words as the last one is news.
    if before is not None and _answer(life_old) != _answer(life_new):
        lines.append(f"{name}: {life_new.get('state')}: {life_new.get('message') or ''}".rstrip())
    problem = trouble(after)
    if problem is not None and problem != trouble(before):
        lines.append(f"{name}: {problem}")
    # The first snapshot names only disks still on their way; later ones, every change.
    vols_old = _volumes(before) if before is not None else {}
    for disk, (phase, percent) in _volumes(after).items():
        if before is None and phase in SETTLED:
            continue
        if vols_old.get(disk) != (phase, percent) and (phase or percent):
            lines.append(f"{name}: disk {disk} {' '.join(str(p) for p in (phase, percent) if p)}")
    # A migrate, snapshot or restore under way: KubeVirt's progress and errors, as they
    # change (its end is the request's outcome).
    for key in ANSWERED_APART.values():
        apart_old, apart_new = old.get(key) or {}, new.get(key) or {}
        said = apart_new.get("message")
        if before is not None and said and not apart_new.get("result"):
            if said != apart_old.get("message"):
                lines.append(f"{name}: {key}: {said}")
    step_old = (old.get("deletion") or {}).get("step")
    deletion = new.get("deletion") or {}
    if deletion.get("step") and deletion.get("step") != step_old:
        why = f": {deletion['message']}" if deletion.get("message") else ""
        lines.append(f"{name}: deleting, step {deletion['step']}{why}")
    return lines


async def _watch(
    target: Target, name: str, version: str, answered: Callable[[], None]
) -> AsyncGenerator[JsonObj | None, None]:
    """One watch stream on one Wukong: each new state, None when deleted (as `events`)."""
    selector = [("fieldSelector", f"metadata.name={name}")]
    stream = events(target, target.wukongs(), version, selector, answered=answered)
    async with aclosing(stream) as changes:
        async for kind, obj in changes:
            yield None if kind == "DELETED" else obj


async def events(
    target: Target,
    path: str,
    version: str,
    selectors: list[tuple[str, str]],
    *,
    bookmarks: bool = False,
    answered: Callable[[], None] | None = None,
) -> AsyncGenerator[tuple[str, JsonObj], None]:
    """One watch stream: (ADDED|MODIFIED|DELETED, object) until the server ends it or sends
    an ERROR (e.g. 410 Gone); `answered()` once it opens. Refused: CannotWatch when the
    server cannot watch (UNWATCHABLE), Expired for a 410, else the `ApiError` (a transport
    failure, a 5xx: `reconnect.transient`). Cut when the stream breaks while read.
    `bookmarks`: also ("BOOKMARK", object), whose resourceVersion moves a quiet watch on
    (an ERROR 410 raises Expired too: not a watch that said nothing)."""
    query = [
        ("watch", "true"),
        *selectors,
        ("resourceVersion", version),
        ("timeoutSeconds", str(WATCH_SECONDS)),
        *([("allowWatchBookmarks", "true")] if bookmarks else []),
    ]
    try:
        response = await target.kube.api.call_api(
            path,
            "GET",
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=aiohttp.ClientTimeout(
                connect=30,
                sock_connect=CONNECT_SECONDS,
                sock_read=WATCH_READ_SECONDS,
            ),
        )
    except (ApiException, aiohttp.ClientError, OSError) as error:
        raise ServerError(0, "TransportError", repr(error), path=path) from error
    try:
        if response.status != 200:
            try:
                body = (await response.read()).decode(errors="replace")
            except BROKEN:
                body = ""
            refused = classify(response.status, body, path)
            if response.status in UNWATCHABLE:
                raise CannotWatch(refused)
            if response.status == GONE:
                raise Expired
            raise refused
        if answered is not None:
            answered()
        lines = aiter(response.content)
        while True:
            try:
                line = await anext(lines)
                event = json.loads(line) if line.strip() else None
            except StopAsyncIteration:
                return
            except BROKEN as error:
                raise Cut(type(error).__name__) from error
            except ValueError as error:  # a last line cut short
                raise Cut("a partial line") from error
            if event is None:
                continue
            if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                yield event["type"], event["object"]
            elif event.get("type") == "BOOKMARK" and bookmarks:
                yield event["type"], event["object"]
            elif event.get("type") == "ERROR":  # 410 Gone: Expired; any other: the end
                if (event.get("object") or {}).get("code") == GONE:
                    raise Expired
                return
    finally:
        abandon(response)


async def snapshots(
    target: Target, name: str, retry: Reconnect
) -> AsyncGenerator[JsonObj | None, None]:
    """The Wukong now and after every change; None (and the end) once it is gone. A read or
    a watch that fails for a while is made again after `retry`'s pause (a watch from the last
    version seen); it polls once a second only when the server cannot watch."""
    can_watch = True
    path = target.wukongs(name)
    while True:
        try:
            cr = kubernetes_object(await target.kube.get(path), path)
        except NotFound:
            yield None
            return
        except ApiError as error:
            await retry.after(error)  # raises it when asking again cannot help
            continue
        retry.answered()
        yield cr
        if not can_watch:
            await asyncio.sleep(POLL_SECONDS)
            continue
        version = cr["metadata"]["resourceVersion"]
        moved = False  # an event since the GET
        while True:
            began, said = asyncio.get_running_loop().time(), False
            try:
                async with aclosing(_watch(target, name, version, retry.answered)) as events:
                    async for obj in events:
                        said = moved = True
                        yield obj
                        if obj is None:
                            return
                        version = obj["metadata"].get("resourceVersion") or version
            except Cut:
                # Watch again from the last version seen; after a pause if it said nothing
                # (a proxy that cuts every watch at once is not a loop).
                await retry.ended(began, said)
                continue
            except CannotWatch:
                can_watch = False
            except Expired:
                # Too old to watch from: read it again, and watch from there; at once after
                # a watch that moved on from the GET, but a 410 right after a fresh GET (no
                # event between) is a watch that ended at once having said nothing: a server
                # (or a proxy's stale backend) answering every watch so made GET and WATCH
                # spin with no pause (audit leftovers, session 50).
                await retry.ended(began, moved)
            except ApiError as error:
                await retry.after(error)
                continue  # from the last version seen, as client-go's RetryWatcher does
            else:
                # The server's end: read it again, then watch; after a pause if the watch
                # ended at once with nothing said (an empty 200 was a hot loop).
                await retry.ended(began, said)
            break


def _holding(cr: JsonObj | None, retry: Reconnect) -> str:
    """`; <what holds it back>` and `; reconnecting for …` while the cluster does not answer
    (the phase said is then the last one seen), or nothing."""
    return "".join(f"; {part}" for part in (held_back(cr), retry.state()) if part)


async def wait_for(
    target: Target,
    name: str,
    check: Callable[[JsonObj | None], T | None],
    *,
    within: float,
    what: str,
    say: Callable[[str], None],
    since: JsonObj | None = None,
    still: Callable[[str], None] | None = None,
) -> T:
    """Follow the Wukong until `check` returns an answer; narrate changes through `say`
    (from `since`, a version already seen, when given), and every STILL_EVERY seconds
    without one that it is still waiting, through `still` (default: `say`)."""
    before: JsonObj | None = since
    loop = asyncio.get_running_loop()
    retry = Reconnect(target.kube, target.server, say)
    started = said = loop.time()
    if (held := trouble(since)) is not None:
        # What already holds it back is what the user most needs to hear: say it first,
        # not only in the first "still waiting" line or at the timeout.
        say(f"{name}: {held}")

    async def heartbeat() -> None:
        nonlocal said
        while True:
            await asyncio.sleep(said + STILL_EVERY - loop.time())
            if loop.time() - said >= STILL_EVERY:
                phase = status_phase(before)
                waited = format_duration(round(loop.time() - started))
                held = _holding(before, retry)
                (still or say)(f"still waiting for {what} (phase {phase}, {waited} so far{held})")
                said = loop.time()

    beating = asyncio.create_task(heartbeat())
    deadline = asyncio.timeout(within)
    try:
        async with deadline:
            async with aclosing(snapshots(target, name, retry)) as stream:
                async for cr in stream:
                    for line in progress(before, cr, name):
                        say(line)
                        said = loop.time()
                    answer = check(cr)
                    if answer is not None:
                        return answer
                    before = cr
    except TimeoutError:
        if not deadline.expired():  # not the user's: never said as if it were
            raise
        phase = status_phase(before)
        held = _holding(before, retry)
        # What was asked is written and goes on: say so, or a user runs it again (a create:
        # "already exists") or takes the timeout for a failure of the request.
        raise CliError(
            f"timed out after {within:g}s waiting for {what} (phase {phase}{held}); "
            f"it goes on: `{typed(f'status {name} -w', target.namespace)}` follows it"
        ) from None
    finally:
        beating.cancel()
    raise CliError(f"{name} disappeared while waiting for {what}")
