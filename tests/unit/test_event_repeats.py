"""The same Event said again is counted on the one posted (`EventRecorder.post`), as
client-go's recorder does: `kubectl describe` shows "(x3 over 20m)", not three rows."""

from __future__ import annotations

from typing import Any

import pytest

from wukong.adapters.events import REMEMBERED, EventRecorder
from wukong.errors import NotFound, ServerError

WEB = {
    "apiVersion": "vm.novasphere.dev/v1alpha1",
    "kind": "Wukong",
    "metadata": {"name": "web-1", "namespace": "ns", "uid": "u1"},
}


class Api:
    """Records the recorder's requests; `gone`: Event names the API server no longer has."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.gone: set[str] = set()
        self.failing = False

    async def create(self, path: str, obj: Any) -> Any:
        if self.failing:
            raise ServerError(500, "InternalError", "etcd is down")
        self.calls.append(("POST", path, obj))
        return obj

    async def merge_patch(self, path: str, patch: Any) -> Any:
        if path.rpartition("/")[2] in self.gone:
            raise NotFound(404, "NotFound", "events not found")
        self.calls.append(("PATCH", path, patch))
        return patch


async def test_a_repeated_event_is_counted_not_posted_again() -> None:
    api = Api()
    recorder = EventRecorder(api)  # type: ignore[arg-type]
    for _ in range(3):
        await recorder.post(WEB, "Normal", "VMIRestarting", "Error → Starting")
    await recorder.post(WEB, "Warning", "VMIFailed", "Starting → Error")
    verbs = [verb for verb, _, _ in api.calls]
    assert verbs == ["POST", "PATCH", "PATCH", "POST"]
    name = api.calls[0][2]["metadata"]["name"]
    assert api.calls[1][1].endswith(f"/namespaces/ns/events/{name}")
    assert [c[2]["count"] for c in api.calls[1:3]] == [2, 3]
    assert all("lastTimestamp" in c[2] for c in api.calls[1:3])
    # Another object's same words are its own Event.
    other = {**WEB, "metadata": {**WEB["metadata"], "name": "web-2", "uid": "u2"}}
    await recorder.post(other, "Normal", "VMIRestarting", "Error → Starting")
    assert api.calls[-1][0] == "POST"


async def test_an_event_the_api_server_dropped_is_posted_anew() -> None:
    api = Api()
    recorder = EventRecorder(api)  # type: ignore[arg-type]
    await recorder.post(WEB, "Normal", "Running", "Starting → Running")
    api.gone.add(api.calls[0][2]["metadata"]["name"])  # its hour is over
    await recorder.post(WEB, "Normal", "Running", "Starting → Running")
    assert [verb for verb, _, _ in api.calls] == ["POST", "POST"]
    assert api.calls[1][2]["count"] == 1


@pytest.mark.parametrize("fail_first", [True, False])
async def test_only_what_was_posted_is_counted_and_memory_is_bounded(fail_first: bool) -> None:
    api = Api()
    recorder = EventRecorder(api)  # type: ignore[arg-type]
    api.failing = fail_first
    await recorder.post(WEB, "Warning", "X", "one")  # lost (logged): not remembered
    api.failing = False
    await recorder.post(WEB, "Warning", "X", "one")
    assert [verb for verb, _, _ in api.calls] == (["POST"] if fail_first else ["POST", "PATCH"])
    for i in range(REMEMBERED + 10):
        await recorder.post(WEB, "Normal", "Y", str(i))
    assert len(recorder._posted) == REMEMBERED
