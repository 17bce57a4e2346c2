"""`--wait` follows one Wukong through a watch, falls back to polling, and gives up in time."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from tests.unit.cli.objects import phase, running
from wukong.adapters.kube import Kube
from wukong.console import follow
from wukong.console.connect import Target
from wukong.console.errors import CliError
from wukong.errors import NotFound

JsonObj = dict[str, Any]


class Stream:
    """An aiohttp response as far as the watch reads it."""

    def __init__(self, status: int, events: list[tuple[str, JsonObj]]) -> None:
        self.status = status
        self.lines = [json.dumps({"type": t, "object": o}).encode() + b"\n" for t, o in events]
        self.connection = None
        self.closed = False

    @property
    def content(self) -> AsyncIterator[bytes]:
        async def lines() -> AsyncIterator[bytes]:
            for line in self.lines:
                yield line

        return lines()

    async def read(self) -> bytes:
        """The body of a refusal (the watch reads it to say why)."""
        return b"".join(self.lines)

    def close(self) -> None:
        self.closed = True


class Cluster:
    """GETs answer from `reads` in turn (NotFound when None); watches from `streams`."""

    def __init__(self, reads: list[JsonObj | None], streams: list[Stream]) -> None:
        self.reads, self.streams = reads, streams
        self.opened: list[dict[str, str]] = []
        self.api = self

    async def get(self, path: str) -> JsonObj:
        cr = self.reads.pop(0) if len(self.reads) > 1 else self.reads[0]
        if cr is None:
            raise NotFound(404, "NotFound", "gone", path=path)
        return cr

    async def call_api(self, path: str, method: str, **options: Any) -> Stream:
        self.opened.append(dict(options["query_params"]))
        return self.streams.pop(0)


def target(cluster: Cluster) -> Target:
    return Target(cast(Kube, cluster), "demo", "https://test")


def stopped(cr: JsonObj | None) -> str | None:
    return "stopped" if cr and cr["status"]["phase"] == "Stopped" else None


async def test_changes_arrive_through_one_watch_from_the_version_read() -> None:
    stream = Stream(
        200, [("MODIFIED", phase("Stopping", "2")), ("MODIFIED", phase("Stopped", "3"))]
    )
    cluster = Cluster([phase("Running", "1")], [stream])
    said: list[str] = []
    answer = await follow.wait_for(
        target(cluster), "web-1", stopped, within=5, what="web-1 to stop", say=said.append
    )
    assert answer == "stopped"
    assert said == ["web-1: Running", "web-1: Running -> Stopping", "web-1: Stopping -> Stopped"]
    assert cluster.opened[0]["fieldSelector"] == "metadata.name=web-1"
    assert cluster.opened[0]["resourceVersion"] == "1"
    assert stream.closed


async def test_a_change_made_before_the_first_look_is_told_from_the_version_our_patch_left() -> (
    None
):
    # The operator moved to Stopping before the CLI's first GET (seen in CI): the first line
    # still says where the Wukong came from.
    stream = Stream(200, [("MODIFIED", phase("Stopped", "3"))])
    cluster = Cluster([phase("Stopping", "2")], [stream])
    said: list[str] = []
    await follow.wait_for(
        target(cluster),
        "web-1",
        stopped,
        within=5,
        what="web-1 to stop",
        say=said.append,
        since=phase("Running", "1"),
    )
    assert said == ["web-1: Running -> Stopping", "web-1: Stopping -> Stopped"]


async def test_what_already_holds_the_wukong_back_is_said_first() -> None:
    """`wukong stop evil-1 --wait` on a Wukong whose network the policy refuses said only
    "Issued" until the first "still waiting" line, 15 s later."""
    held = phase("Pending", "1")
    held["status"]["conditions"] = [
        {
            "type": "SpecValid",
            "status": "False",
            "reason": "NetworkNotAllowed",
            "message": "network 'lan' may not use bridge 'br-mgmt'",
        }
    ]
    stopping = copy.deepcopy(held) | {"metadata": held["metadata"] | {"resourceVersion": "2"}}
    stream = Stream(200, [("MODIFIED", phase("Stopped", "3"))])
    said: list[str] = []
    await follow.wait_for(
        target(Cluster([stopping], [stream])),
        "web-1",
        stopped,
        within=5,
        what="web-1 to stop",
        say=said.append,
        since=held,
    )
    assert said[0] == (
        "web-1: SpecValid=False NetworkNotAllowed: network 'lan' may not use bridge 'br-mgmt'"
    )
    assert said[1:] == ["web-1: Pending -> Stopped"]


async def test_an_expired_watch_reads_the_object_again() -> None:
    expired = Stream(200, [("ERROR", {"code": 410, "reason": "Expired"})])
    cluster = Cluster([phase("Running", "1"), phase("Stopped", "9")], [expired])
    answer = await follow.wait_for(
        target(cluster), "web-1", stopped, within=5, what="x", say=lambda _: None
    )
    assert answer == "stopped"


async def test_without_watch_permission_it_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(follow, "POLL_SECONDS", 0.0)
    cluster = Cluster([phase("Running", "1"), phase("Running", "1"), phase("Stopped", "2")], [
        Stream(403, [])
    ])  # fmt: skip
    answer = await follow.wait_for(
        target(cluster), "web-1", stopped, within=5, what="x", say=lambda _: None
    )
    assert answer == "stopped"
    assert len(cluster.opened) == 1  # refused once, never asked again


async def test_a_deleted_wukong_is_reported_to_the_check() -> None:
    cluster = Cluster(
        [phase("Deleting", "1")], [Stream(200, [("DELETED", phase("Deleting", "2"))])]
    )
    answer = await follow.wait_for(
        target(cluster),
        "web-1",
        lambda cr: "gone" if cr is None else None,
        within=5,
        what="x",
        say=lambda _: None,
    )
    assert answer == "gone"


async def test_waiting_ends_at_the_timeout_with_the_last_phase(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(follow, "POLL_SECONDS", 0.01)
    cluster = Cluster([phase("Stopping", "1")], [Stream(403, [])])
    with pytest.raises(
        CliError,
        match=r"timed out after 0.2s waiting for web-1 to stop \(phase Stopping\); "
        r"it goes on: `wukong status web-1 -w -n demo` follows it$",
    ):
        await follow.wait_for(
            target(cluster), "web-1", stopped, within=0.2, what="web-1 to stop", say=lambda _: None
        )


async def test_a_wait_on_a_wukong_no_operator_picked_up_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Namespaced-install audit, session 48, finding 6: `create --wait` in a namespace no
    operator watches waited out its timeout saying only "phase Pending"."""
    monkeypatch.setattr(follow, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(follow, "STILL_EVERY", 0.05)
    nobody = running()
    nobody["status"] = {}
    nobody["metadata"]["creationTimestamp"] = "2020-01-01T00:00:00Z"
    cluster = Cluster([nobody], [Stream(403, [])])
    still: list[str] = []
    hint = "no operator has picked it up yet: is one watching namespace demo?"
    with pytest.raises(CliError) as caught:
        await follow.wait_for(
            target(cluster),
            "web-1",
            lambda cr: None,
            within=0.2,
            what="web-1 to run",
            say=lambda _: None,
            still=still.append,
        )
    assert str(caught.value).startswith(f"timed out after 0.2s waiting for web-1 to run "
                                        f"(phase Pending; {hint}); ")  # fmt: skip
    assert still and still[0].endswith(f"so far; {hint})"), still
