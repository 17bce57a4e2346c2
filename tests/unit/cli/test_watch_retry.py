"""A wait or `status -w` whose watch is cut and whose re-open fails (the API server
restarting, a load balancer's failover, a laptop's network coming back) asks again from the
last resourceVersion seen, with a short capped backoff, until the user's --timeout, as
client-go's RetryWatcher does for `kubectl wait` and `kubectl get -w`; it says once on
stderr that it reconnects. An answer no retry mends (401, 403, 404) ends it at once in one
line. Before, a failed re-open ended every wait in one line, and any refusal of a watch (a
503 too) switched the rest of a wait to polling once a second (CLI audit, session 48).
Against the local API server (tests/unit/cli/apiserver.py)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, cast

import pytest
from typer.testing import CliRunner

from tests.unit.cli.apiserver import ApiServer, Stream
from tests.unit.cli.objects import phase, runs
from wukong.adapters.kube import Kube
from wukong.cli import app
from wukong.console import follow, reconnect
from wukong.console.connect import connect
from wukong.console.errors import CliError
from wukong.errors import ApiError, Forbidden, NotFound, ServerError

JsonObj = dict[str, Any]
# The connection reset before any answer, twice: aiohttp sends a GET again once on its own.
RESET = [Stream(status=0), Stream(status=0)]
UNAVAILABLE, TOO_MANY = Stream(status=503), Stream(status=429)
WUKONG = "/apis/vm.novasphere.dev/v1alpha1/namespaces/demo/wukongs/web-1"


def warnings(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("warning: ")]


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(follow, "POLL_SECONDS", 0.05)  # the pause after a cut
    monkeypatch.setattr(reconnect, "RETRY_FIRST", 0.05)  # the first pause after a failure


async def test_a_wait_reconnects_from_the_last_version_seen_when_the_reopen_fails(
    tmp_path: Path,
) -> None:
    """The audit's case: the stream cut, then the API server not back yet. The wait ended in
    one `cannot reach the cluster` line, exit 1, long before its --timeout."""
    with ApiServer(tmp_path, phase("Stopped", "1")) as server:
        server.watches = [
            Stream([("MODIFIED", phase("Starting", "2"))], "cut"),
            *RESET,
            UNAVAILABLE,
            TOO_MANY,
            Stream([("MODIFIED", phase("Running", "3"))]),
        ]
        said: list[str] = []
        async with connect(server.kubeconfig, None, "demo") as target:
            answer = await follow.wait_for(
                target, "web-1", runs, within=20, what="web-1 to start", say=said.append
            )
    assert answer == "runs"
    assert [w["resourceVersion"] for w in server.watched] == ["1", "2", "2", "2", "2", "2"]
    assert [line for line in said if not line.startswith("warning: ")] == [
        "web-1: Stopped",
        "web-1: Stopped -> Starting",
        "web-1: Starting -> Running",
    ]
    [warning] = warnings(said)  # said once, not at each attempt
    assert warning.startswith(
        f"warning: cannot reach the cluster at http://127.0.0.1:{server.port}"
    )
    assert warning.endswith("; reconnecting")


async def test_a_refused_watch_that_may_mend_is_watched_again_not_polled(tmp_path: Path) -> None:
    """Finding 2: a 503 switched the rest of the wait to a GET a second."""
    with ApiServer(tmp_path, phase("Stopped", "1")) as server:
        server.watches = [UNAVAILABLE, Stream([("MODIFIED", phase("Running", "2"))])]
        async with connect(server.kubeconfig, None, "demo") as target:
            answer = await follow.wait_for(
                target, "web-1", runs, within=20, what="web-1 to start", say=lambda _: None
            )
    assert answer == "runs"
    assert len(server.watched) == 2
    assert server.requests.count(("GET", WUKONG)) == 1  # read once, then watched


async def test_a_read_that_fails_for_a_while_is_read_again(tmp_path: Path) -> None:
    """With no watch allowed (RBAC get, not watch), the GET a second that polls."""
    seen: list[JsonObj | None] = []

    def read_again(cr: JsonObj | None) -> str | None:
        seen.append(cr)
        return "read again" if len(seen) == 2 else None

    with ApiServer(tmp_path, phase("Stopped", "1")) as server:
        server.watches = [Stream(status=403)]
        server.refusals = [200, 0, 0, 502]  # the first read, then a poll reset and a 502
        said: list[str] = []
        async with connect(server.kubeconfig, None, "demo") as target:
            answer = await follow.wait_for(
                target, "web-1", read_again, within=20, what="web-1 to start", say=said.append
            )
    assert answer == "read again"
    assert len(server.watched) == 1  # a 403: it may not watch, and polls
    assert server.requests.count(("GET", WUKONG)) == 5
    assert len(warnings(said)) == 1


async def test_a_wait_that_cannot_reconnect_says_so_once_and_at_its_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(follow, "STILL_EVERY", 0.5)
    with ApiServer(tmp_path, phase("Starting", "1")) as server:
        server.watches = [UNAVAILABLE] * 100
        said: list[str] = []
        async with connect(server.kubeconfig, None, "demo") as target:
            began = time.monotonic()
            with pytest.raises(CliError) as caught:
                await follow.wait_for(
                    target, "web-1", runs, within=1.5, what="web-1 to start", say=said.append
                )
    assert time.monotonic() - began >= 1.5
    outage = r"reconnecting for \ds: the API server failed \(503 ServiceUnavailable\): "
    assert re.fullmatch(
        r"timed out after 1\.5s waiting for web-1 to start \(phase Starting; "
        + outage
        + r"serviceunavailable: GET /apis/\S+/wukongs\); it goes on: "
        r"`wukong status web-1 -w -n demo` follows it",
        caught.value.message,
    ), caught.value.message
    assert len(warnings(said)) == 1
    still = [line for line in said if line.startswith("still waiting")]
    assert still and re.search(outage, still[0]), said
    # A capped backoff, not a request a second nor a hot loop: 0.05, 0.1, 0.2, 0.4, 0.8...
    assert 3 <= len(server.watched) <= 8


@pytest.mark.parametrize(
    ("status", "error"), [(401, ServerError), (404, NotFound)], ids=["401", "404"]
)
async def test_an_answer_no_retry_mends_ends_the_wait_at_once(
    tmp_path: Path, status: int, error: type[ApiError]
) -> None:
    with ApiServer(tmp_path, phase("Stopped", "1")) as server:
        server.watches = [
            Stream([("MODIFIED", phase("Starting", "2"))], "cut"),
            Stream(status=status),
        ]
        async with connect(server.kubeconfig, None, "demo") as target:
            began = time.monotonic()
            with pytest.raises(error):
                await follow.wait_for(
                    target, "web-1", runs, within=20, what="web-1 to start", say=lambda _: None
                )
    assert time.monotonic() - began < 5
    assert len(server.watched) == 2


def delete_wait(server: ApiServer) -> Any:
    argv = ["delete", "web-1", "--yes", "--wait", "--timeout", "20s", "-n", "demo"]
    return CliRunner().invoke(app, [*argv, "--kubeconfig", server.kubeconfig])


def test_rights_revoked_during_a_wait_end_it_in_one_line(tmp_path: Path) -> None:
    """A 403 on the watch is RBAC without `watch` (it polls); the poll's own 403 is not."""
    with ApiServer(tmp_path, phase("Running", "1")) as server:
        server.watches = [Stream(status=403)]
        server.refusals = [200, 200, 200, 403]  # the plan's read and list, the first wait's
        result = delete_wait(server)
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == ["error: forbidden: GET " + WUKONG]


def test_delete_wait_reconnects_and_sees_the_wukong_go(tmp_path: Path) -> None:
    with ApiServer(tmp_path, phase("Running", "1")) as server:
        server.watches = [
            Stream([("MODIFIED", phase("Deleting", "2"))], "cut"),
            *RESET,
            Stream([("DELETED", phase("Deleting", "3"))]),
        ]
        result = delete_wait(server)
    assert result.exit_code == 0, result.output
    assert "wukong web-1 deleted" in result.stdout
    [warning] = warnings(result.stderr.splitlines())
    assert warning.endswith("; reconnecting")


def status_watch(server: ApiServer, timeout: str) -> Any:
    argv = ["status", "-w", "--timeout", timeout, "-n", "demo", "--kubeconfig", server.kubeconfig]
    return CliRunner().invoke(app, argv)


def test_status_watch_reconnects_from_the_last_version_seen(tmp_path: Path) -> None:
    with ApiServer(tmp_path, phase("Stopped", "1")) as server:
        server.watches = [
            Stream([("MODIFIED", phase("Starting", "2"))], "cut"),
            *RESET,
            UNAVAILABLE,
            Stream([("MODIFIED", phase("Running", "3"))]),
        ]
        result = status_watch(server, "4s")
    assert result.exit_code == 0, result.output
    rows = [line.split()[1] for line in result.stdout.splitlines()[1:]]
    assert rows == ["Stopped", "Starting", "Running"]
    assert [w["resourceVersion"] for w in server.watched][:5] == ["1", "2", "2", "2", "2"]
    [warning] = result.stderr.splitlines()
    assert warning.startswith("warning: cannot reach the cluster at ")
    assert warning.endswith("; reconnecting")


def test_status_watch_at_its_timeout_while_reconnecting_says_so(tmp_path: Path) -> None:
    """Rows may be missing: not the quiet exit 0 of a watch that saw every change."""
    with ApiServer(tmp_path, phase("Stopped", "1")) as server:
        server.watches = [UNAVAILABLE] * 100
        result = status_watch(server, "1s")
    assert result.exit_code == 1, result.output
    warning, error = result.stderr.splitlines()
    assert warning.startswith("warning: the API server failed (503 ServiceUnavailable)")
    assert re.match(
        r"error: the watch reached its --timeout while reconnecting for \ds: the API server "
        r"failed \(503 ServiceUnavailable\)",
        error,
    ), error


def test_status_watch_refused_for_good_is_one_line(tmp_path: Path) -> None:
    with ApiServer(tmp_path, phase("Stopped", "1")) as server:
        server.watches = [Stream(status=401)]
        result = status_watch(server, "20s")
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        f"error: unauthorized at http://127.0.0.1:{server.port}: the kubeconfig's "
        "credentials were not accepted"
    ]


@pytest.mark.parametrize(
    ("status", "again"),
    [(0, True), (429, True), (500, True), (502, True), (503, True), (504, True),
     (401, False), (403, False), (404, False), (409, False), (422, False), (501, False)],
)  # fmt: skip
def test_which_failures_are_asked_again(status: int, again: bool) -> None:
    error = ServerError(status, "X", "x") if status not in (403, 404) else None
    error = error or (Forbidden if status == 403 else NotFound)(status, "X", "x")
    assert reconnect.transient(error) is again


def test_a_page_that_is_no_api_servers_is_not_asked_again() -> None:
    assert not reconnect.transient(ServerError(200, "NotKubernetes", "the answer was text/html"))


def test_a_proxys_page_is_said_in_one_short_line() -> None:
    page = "<html>\n<head><title>502 Bad Gateway</title></head>\n" + "<p>x</p>\n" * 100
    said = reconnect.one_line(page)
    assert "\n" not in said
    assert said.startswith("<html> <head><title>502 Bad Gateway</title></head>")
    assert len(said) == reconnect.SAID_CHARACTERS


async def test_the_waits_of_one_command_say_an_outage_once_and_the_next_one_again() -> None:
    """`start -l app=web --wait` follows twenty Wukongs: one line, not twenty."""
    kube, said = cast(Kube, object.__new__(Kube)), list[str]()
    first, second = (reconnect.Reconnect(kube, "https://c", said.append) for _ in range(2))
    down = ServerError(0, "TransportError", "refused")
    down.__cause__ = ConnectionRefusedError()
    await first.after(down)
    await second.after(down)
    assert said == [
        "warning: cannot reach the cluster at https://c: connection refused; reconnecting"
    ]
    assert first.state() == second.state() is not None
    second.answered()
    assert first.state() is None
    await first.after(down)
    assert len(said) == 2


EMPTY = Stream()  # a 200 that ends at once, no event (a broken proxy, a cut stream)


async def test_a_watch_that_said_something_or_lasted_is_opened_again_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only a watch that ended at once having said nothing waits, and the pause starts over
    after one that worked, as client-go's reflector backs off only a "very short watch"."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    kube = cast(Kube, object.__new__(Kube))
    retry = reconnect.Reconnect(kube, "https://c", lambda _: None)
    monkeypatch.setattr(reconnect.asyncio, "sleep", sleep)
    now = reconnect.asyncio.get_running_loop().time()
    for _ in range(9):
        await retry.ended(now, said=False)
    doubling = [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, reconnect.RETRY_CAP]
    assert slept == pytest.approx(doubling)
    await retry.ended(now, said=True)  # it worked: no pause, and the next starts over
    await retry.ended(now - reconnect.SHORT_WATCH, said=False)  # lasted: no pause either
    await retry.ended(now, said=False)
    assert slept[9:] == [0.05]


EXPIRED = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}
GONE = [Stream([("ERROR", EXPIRED)]), Stream(status=410)]  # in the stream, or refused


# Answers that say nothing since the read: an empty 200 (a broken proxy, or an API server's
# stream cut at once), or a 410 in the stream or as the answer (a proxy's stale backend).
NOTHING = [EMPTY, *GONE]
NOTHING_IDS = ["empty", "error-event", "refused"]


@pytest.mark.parametrize("nothing", NOTHING, ids=NOTHING_IDS)
async def test_a_watch_that_says_nothing_after_each_read_is_not_opened_again_in_a_loop(
    tmp_path: Path, nothing: Stream
) -> None:
    """Audit leftovers, session 50: each watch answered 200 and closed at once, or 410 right
    after the GET, made the wait read and watch again with no pause, as fast as the server
    answered (hundreds in 2 s). A 410 with no event since the GET is a watch that ended at
    once."""
    with ApiServer(tmp_path, phase("Starting", "1")) as server:
        server.watches = [nothing] * 10_000
        async with connect(server.kubeconfig, None, "demo") as target:
            with pytest.raises(CliError, match=r"^timed out after 2s waiting for web-1"):
                await follow.wait_for(
                    target, "web-1", runs, within=2, what="web-1 to start", say=lambda _: None
                )
    # A pause that doubles: 0.05, 0.1, 0.2, 0.4, 0.8 (RETRY_FIRST shortened), 1.6.
    assert 3 <= len(server.watched) <= 8, len(server.watched)
    assert server.requests.count(("GET", WUKONG)) == len(server.watched)


@pytest.mark.parametrize("nothing", NOTHING, ids=NOTHING_IDS)
def test_status_watch_that_says_nothing_after_each_list_backs_off(
    tmp_path: Path, nothing: Stream
) -> None:
    with ApiServer(tmp_path, phase("Stopped", "1")) as server:
        server.watches = [nothing] * 10_000
        result = status_watch(server, "2s")
    assert result.exit_code == 0, result.output
    assert 3 <= len(server.watched) <= 8, len(server.watched)


async def test_a_watch_expired_after_it_said_something_is_read_again_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a 410 with no event since the GET waits: one after a change is the ordinary
    "too old to watch from", read again at once (a pause of 30 s would time the wait out)."""
    monkeypatch.setattr(reconnect, "RETRY_FIRST", 30.0)
    with ApiServer(tmp_path, phase("Stopped", "1")) as server:
        server.watches = [
            Stream([("MODIFIED", phase("Starting", "2")), ("ERROR", EXPIRED)]),
            Stream([("MODIFIED", phase("Running", "3"))]),
        ]
        async with connect(server.kubeconfig, None, "demo") as target:
            await follow.wait_for(
                target, "web-1", runs, within=5, what="web-1 to start", say=lambda _: None
            )
    assert len(server.watched) == 2
    assert server.requests.count(("GET", WUKONG)) == 2
