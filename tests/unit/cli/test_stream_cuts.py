"""A watch or a log stream that breaks while it is read: cut mid-body (a killed proxy or API
server, a load balancer's failover) or silent with the connection open (a half-open
connection, past aiohttp's read bound). Waits watched again from the last version seen and
keep the user's deadline; `status -w` goes on; `logs` ends in one line. Each of these ended
in a traceback, or in a wait said to have timed out after the user's --timeout when it had
not (CLI audit, session 48). Against the local API server (tests/unit/cli/apiserver.py),
which cuts the stream as a reset connection does."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.unit.cli.apiserver import SCREEN, ApiServer, Stream, pod, vmi
from tests.unit.cli.objects import phase, running, runs
from wukong.cli import app
from wukong.console import follow, reconnect
from wukong.console.connect import connect
from wukong.console.errors import CliError

JsonObj = dict[str, Any]


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(follow, "POLL_SECONDS", 0.05)  # the pause between polls
    # The pause before watching again after a watch that ended at once having said nothing
    # (a silent one, at a read bound shortened to 0.3 s, is one): 0.05 s, doubling.
    monkeypatch.setattr(reconnect, "RETRY_FIRST", 0.05)


async def test_a_wait_watches_again_from_the_last_version_seen_after_a_cut(
    tmp_path: Path,
) -> None:
    with ApiServer(tmp_path, phase("Stopped", "1")) as server:
        server.watches = [
            Stream([("MODIFIED", phase("Starting", "2"))], "cut"),
            Stream([("MODIFIED", phase("Running", "3"))]),
        ]
        said: list[str] = []
        async with connect(server.kubeconfig, None, "demo") as target:
            answer = await follow.wait_for(
                target, "web-1", runs, within=20, what="web-1 to start", say=said.append
            )
    assert answer == "runs"
    assert said == ["web-1: Stopped", "web-1: Stopped -> Starting", "web-1: Starting -> Running"]
    assert [w["resourceVersion"] for w in server.watched] == ["1", "2"]


async def test_a_silent_watch_is_watched_again_not_taken_for_the_users_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(follow, "WATCH_READ_SECONDS", 0.3)
    with ApiServer(tmp_path, phase("Stopped", "1")) as server:
        server.watches = [Stream(end="silent"), Stream([("MODIFIED", phase("Running", "3"))])]
        async with connect(server.kubeconfig, None, "demo") as target:
            answer = await follow.wait_for(
                target, "web-1", runs, within=600, what="web-1 to start", say=lambda _: None
            )
    assert answer == "runs"
    assert len(server.watched) == 2


async def test_only_the_users_deadline_says_the_wait_timed_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It said "timed out after 600s" when aiohttp's 90 s read bound passed."""
    monkeypatch.setattr(follow, "WATCH_READ_SECONDS", 0.3)
    with ApiServer(tmp_path, phase("Stopped", "1")) as server:  # every watch silent
        async with connect(server.kubeconfig, None, "demo") as target:
            began = time.monotonic()
            with pytest.raises(CliError, match=r"^timed out after 1\.5s waiting for web-1"):
                await follow.wait_for(
                    target, "web-1", runs, within=1.5, what="web-1 to start", say=lambda _: None
                )
    assert time.monotonic() - began >= 1.5
    assert len(server.watched) >= 3


def status_watch(server: ApiServer, timeout: str) -> Any:
    argv = ["status", "-w", "--timeout", timeout, "-n", "demo", "--kubeconfig", server.kubeconfig]
    return CliRunner().invoke(app, argv)


def test_status_watch_goes_on_past_a_cut_from_the_last_version_seen(tmp_path: Path) -> None:
    with ApiServer(tmp_path, phase("Stopped", "1")) as server:
        server.watches = [
            Stream([("MODIFIED", phase("Starting", "2"))], "cut"),
            Stream([("MODIFIED", phase("Running", "3"))]),
        ]
        result = status_watch(server, "3s")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    rows = [line.split()[1] for line in result.stdout.splitlines()[1:]]
    assert rows == ["Stopped", "Starting", "Running"]
    assert [w["resourceVersion"] for w in server.watched][:3] == ["1", "2", "3"]


def test_status_watch_outlasts_a_silent_watch_until_its_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It ended at aiohttp's read bound, exit 0 and nothing said, before its --timeout (or
    with none, the documented "until Ctrl-C")."""
    monkeypatch.setattr(follow, "WATCH_READ_SECONDS", 0.3)
    with ApiServer(tmp_path, phase("Stopped", "1")) as server:
        began = time.monotonic()
        result = status_watch(server, "2s")
    assert result.exit_code == 0, result.output
    assert time.monotonic() - began >= 2
    assert len(server.watched) >= 2


def test_a_log_cut_mid_way_ends_in_one_line(tmp_path: Path) -> None:
    launcher = pod("virt-launcher-web-1-vm-abcde")
    with ApiServer(tmp_path, running("web-1"), vmi("web-1"), launcher) as server:
        server.log = Stream([b"boot line 1\n"], "cut")
        argv = ["logs", "web-1", "-f", "-n", "demo", "--kubeconfig", server.kubeconfig]
        result = CliRunner().invoke(app, argv)
    assert result.exit_code == 1, result.output
    assert result.stdout == "boot line 1\n"
    assert result.stderr.splitlines() == [
        "error: the connection broke while reading the log of web-1 (ClientPayloadError): "
        "`wukong logs web-1 -f -n demo` reads it again (--since 1m: the last minute only)"
    ]


def test_a_screenshot_cut_mid_way_ends_in_one_line(tmp_path: Path) -> None:
    """The PNG's first bytes, then the connection reset (a proxy or an API server going
    away): a ClientPayloadError traceback (CLI access audit, session 48, finding 2)."""
    shot = tmp_path / "shot.png"
    with ApiServer(tmp_path, running("web-1"), vmi("web-1")) as server:
        server.screenshot = Stream([SCREEN[:40]], "cut")
        argv = ["screenshot", "web-1", "--file", str(shot), "-n", "demo"]
        result = CliRunner().invoke(app, [*argv, "--kubeconfig", server.kubeconfig])
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: the connection broke while reading the screenshot of web-1 "
        "(ClientPayloadError): run it again"
    ]
    assert not shot.exists()
