"""The pure half of the informer: URLs, framing, decoding and what each event means."""

from __future__ import annotations

import json

import pytest

from wukong.runtime._watch_protocol import (
    LineBuffer,
    ResourceRef,
    Step,
    WatchDecodeError,
    WatchEvent,
    classify,
    list_query,
    parse_event,
    parse_list,
    watch_query,
)

VMS = ResourceRef("kubevirt.io", "v1", "virtualmachines")
PVCS = ResourceRef("", "v1", "persistentvolumeclaims", namespace="team-a")


def line(event_type: str, obj: dict[str, object]) -> bytes:
    return json.dumps({"type": event_type, "object": obj}).encode()


def test_resource_urls_and_names_follow_the_api_server_layout() -> None:
    assert VMS.path() == "/apis/kubevirt.io/v1/virtualmachines"
    assert VMS.name == "virtualmachines.kubevirt.io"
    assert VMS.api_version == "kubevirt.io/v1"
    assert PVCS.path() == "/api/v1/namespaces/team-a/persistentvolumeclaims"
    assert PVCS.name == "persistentvolumeclaims"
    assert PVCS.api_version == "v1"


def test_watch_resumes_from_the_last_version_with_bookmarks_and_server_timeout() -> None:
    assert dict(watch_query("42", 300)) == {
        "watch": "true",
        "resourceVersion": "42",
        "allowWatchBookmarks": "true",
        "timeoutSeconds": "300",
    }
    assert dict(list_query(500, None)) == {"limit": "500"}
    assert dict(list_query(500, "tok")) == {"limit": "500", "continue": "tok"}


def test_list_page_gives_items_their_kind_and_the_snapshot_version() -> None:
    body = json.dumps(
        {
            "kind": "PersistentVolumeClaimList",
            "metadata": {"resourceVersion": "100", "continue": "next"},
            "items": [{"metadata": {"name": "a"}}],
        }
    ).encode()
    page = parse_list(body, PVCS)
    assert page.resource_version == "100"
    assert page.continue_token == "next"
    assert page.items[0]["kind"] == "PersistentVolumeClaim"
    assert page.items[0]["apiVersion"] == "v1"


def test_last_list_page_has_no_continue_token() -> None:
    body = b'{"kind":"VirtualMachineList","metadata":{"resourceVersion":"9","continue":""}}'
    page = parse_list(body, VMS)
    assert page.continue_token is None and page.items == []


def test_event_line_is_decoded_with_its_resource_version() -> None:
    event = parse_event(line("MODIFIED", {"metadata": {"name": "a", "resourceVersion": "7"}}))
    assert event.type == "MODIFIED"
    assert event.resource_version == "7"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b'{"type":"ADDED"}', id="no-object"),
        pytest.param(b"[1,2]", id="not-an-object"),
    ],
)
def test_garbled_lines_are_reported_not_swallowed(raw: bytes) -> None:
    with pytest.raises(WatchDecodeError):
        parse_event(raw)


@pytest.mark.parametrize(
    ("event_type", "obj", "step"),
    [
        pytest.param("ADDED", {}, Step.APPLY, id="added"),
        pytest.param("MODIFIED", {}, Step.APPLY, id="modified"),
        pytest.param("DELETED", {}, Step.APPLY, id="deleted"),
        pytest.param("BOOKMARK", {}, Step.BOOKMARK, id="bookmark"),
        pytest.param("ERROR", {"kind": "Status", "code": 410}, Step.RELIST, id="gone-410"),
        pytest.param("ERROR", {"reason": "Expired"}, Step.RELIST, id="expired-reason"),
        pytest.param("ERROR", {"code": 500, "message": "etcd"}, Step.RESTART, id="server-error"),
        pytest.param("SOMETHING", {}, Step.IGNORE, id="unknown-type"),
    ],
)
def test_each_event_type_leads_to_the_right_step(
    event_type: str, obj: dict[str, object], step: Step
) -> None:
    assert classify(WatchEvent(event_type, obj)) is step


def test_lines_are_reassembled_however_the_chunks_fall() -> None:
    big = line("ADDED", {"metadata": {"name": "x" * 300_000}})
    stream = big + b"\n" + line("DELETED", {}) + b"\n\n" + line("BOOKMARK", {})
    buffer = LineBuffer()
    lines: list[bytes] = []
    for start in range(0, len(stream), 7919):
        lines += buffer.feed(stream[start : start + 7919])
    lines += buffer.flush()
    assert [parse_event(x).type for x in lines] == ["ADDED", "DELETED", "BOOKMARK"]
    assert lines[0] == big


def test_blank_remainder_at_end_of_stream_is_not_a_line() -> None:
    buffer = LineBuffer()
    assert buffer.feed(b"{}\n  ") == [b"{}"]
    assert buffer.flush() == []
