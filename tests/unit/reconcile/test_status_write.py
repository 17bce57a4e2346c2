"""The Wukong's status write (session 50): an RFC 6902 patch as small as the change, pinned to
the Wukong it was decided for by a `test` of its uid; one that does not apply is a Conflict."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.reconcile.test_settle import Server, halted_vm_patching, raw_wukong
from tests.unit.reconcile.world import NOW, UID
from wukong.act.executor import Executor
from wukong.act.reconciler import Reconciler, status_ops
from wukong.adapters.kube import Kube
from wukong.adapters.wukongs import Wukongs
from wukong.api import kinds
from wukong.errors import Conflict, Invalid, TransientError, classify
from wukong.testing.jsonpatch import NOT_APPLIED, apply_json_patch

JsonObj = dict[str, Any]


@pytest.mark.parametrize(
    ("old", "new", "ops"),
    [
        (
            {},
            {"phase": "Creating"},
            [{"op": "add", "path": "/status", "value": {"phase": "Creating"}}],
        ),
        (
            {"phase": "Running", "vmName": "web-1-vm", "history": [{"reason": "A"}]},
            {"phase": "Stopping", "vmName": "web-1-vm", "history": [{"reason": "A"}]},
            [{"op": "add", "path": "/status/phase", "value": "Stopping"}],  # only the change
        ),
        (
            {"conditions": [{"type": "Ready", "status": "True"}]},
            {"conditions": [{"type": "Ready", "status": "False"}]},
            [
                {
                    "op": "add",
                    "path": "/status/conditions",
                    "value": [{"type": "Ready", "status": "False"}],
                }
            ],
        ),  # lists whole, as a merge patch sends them
        (
            {"phase": "Running", "lifecycleState": None},
            {"phase": "Running", "restoredFrom": {"name": "r"}},
            [
                {"op": "remove", "path": "/status/lifecycleState"},  # a null is removed
                {"op": "add", "path": "/status/restoredFrom", "value": {"name": "r"}},
            ],
        ),
        (
            {"phase": "Running", "lifecycleState": "odd"},
            {"phase": "Running", "lifecycleState": {"state": "Issued"}},
            [{"op": "add", "path": "/status/lifecycleState", "value": {"state": "Issued"}}],
        ),
        (
            {"phase": "Running", "x": {"a/b": 1, "m~n": {"k": 1}}},
            {"phase": "Running", "x": {"m~n": {"k": 2}, "c/d~": 3}},
            [  # JSON-pointer tokens escaped (RFC 6901): a disk or condition name may hold `/`
                {"op": "remove", "path": "/status/x/a~1b"},
                {"op": "add", "path": "/status/x/m~0n/k", "value": 2},
                {"op": "add", "path": "/status/x/c~1d~0", "value": 3},
            ],
        ),
        (
            {"phase": "Running", "x": {"a": 1}},
            {"phase": "Running"},
            [{"op": "remove", "path": "/status/x"}],
        ),
    ],
)
def test_the_status_patch_is_as_small_as_the_change(
    old: JsonObj, new: JsonObj, ops: list[JsonObj]
) -> None:
    assert status_ops(old, new) == ops
    # The stored status it leaves is the new one, as the merge patch's left it (no nulls).
    stored = apply_json_patch({"metadata": {"uid": UID}, "status": old}, ops)["status"]
    assert stored == new


def _server_with(uid: str, status: JsonObj) -> tuple[Any, Server]:
    """halted_vm_patching's pass (it writes a status: the start is undone), its cached Wukong
    as it was, and a server whose stored Wukong of the name has `uid` and `status`."""
    cache, patching = halted_vm_patching()
    stored = {
        **patching.raw,
        "metadata": {**patching.raw["metadata"], "uid": uid},
        "status": status,
    }
    patching.raw = stored
    return cache, patching


async def test_the_status_write_is_pinned_to_the_wukongs_uid() -> None:
    cache, server = _server_with(
        UID, {"phase": "Running", "vmName": "web-1-vm", "observedGeneration": 1}
    )
    await Reconciler(cache, Executor(server), clock=lambda: NOW).reconcile("demo/web-1")
    [write] = [b for m, p, b in server.writes if p.endswith("/web-1/status")]
    assert write[0] == {"op": "test", "path": "/metadata/uid", "value": UID}
    assert all(op["op"] in ("add", "remove") for op in write[1:]) and len(write) > 1
    assert cache.get(kinds.WUKONG.cache, "demo", "web-1") == server.raw  # written through


async def test_a_status_decided_for_a_wukong_made_anew_under_its_name_is_not_written() -> None:
    """The Wukong of the name was deleted and made again (another uid) after the cache
    showed it: the pass's status (its phase, conditions, volumes, ...) must not land on the
    new one. The patch does not apply (422): a Conflict, and the pass stops there."""
    cache, server = _server_with("uid-of-another", {})
    read = cache.get(kinds.WUKONG.cache, "demo", "web-1")
    with pytest.raises(TransientError) as stopped:
        await Reconciler(cache, Executor(server), clock=lambda: NOW).reconcile("demo/web-1")
    assert isinstance(stopped.value, Conflict)  # a TransientError: the queue's backoff
    assert server.raw["status"] == {} and server.statuses == []
    assert cache.get(kinds.WUKONG.cache, "demo", "web-1") is read  # nothing remembered


async def test_a_status_the_cache_is_behind_on_is_a_conflict_not_a_refusal() -> None:
    """The stored status lacks a key the cached one has (another write took it away): its
    `remove` does not apply. Decide again from the cache, as for a stale resourceVersion."""
    raw = raw_wukong({"phase": "Creating", "message": "waiting"})
    server = Server({**raw, "status": {"phase": "Creating"}})
    with pytest.raises(Conflict):
        await Wukongs(server).patch_status(
            "demo", "web-1", UID, status_ops(raw["status"], {"phase": "Starting"})
        )
    assert server.raw["status"] == {"phase": "Creating"}


class Answering(Kube):
    """Answers every request with the API server's error `status`, `body`."""

    def __init__(self, status: int, body: JsonObj) -> None:
        self.status, self.body = status, body
        self.sent: list[tuple[str, Any, str]] = []

    async def request(self, method: str, path: str, *, body: Any = None, **kw: Any) -> Any:
        self.sent.append((path, body, kw.get("content_type", "")))
        raise classify(self.status, json.dumps(self.body), path)


NOT_APPLIED_ANSWER = {  # kube-apiserver v1.37.2, a JSON patch whose `test` failed (seen)
    "kind": "Status",
    "apiVersion": "v1",
    "status": "Failure",
    "message": NOT_APPLIED,
    "reason": "Invalid",
    "details": {},
    "code": 422,
}
SCHEMA_REFUSAL = {  # the CRD's schema refusing the patched status: names object and field
    "kind": "Status",
    "apiVersion": "v1",
    "status": "Failure",
    "message": 'Wukong.vm.novasphere.dev "web-1" is invalid: status.phase: Unsupported value',
    "reason": "Invalid",
    "details": {"name": "web-1", "kind": "Wukong", "causes": [{"field": "status.phase"}]},
    "code": 422,
}


async def test_a_patch_that_does_not_apply_is_a_conflict() -> None:
    kube = Answering(422, NOT_APPLIED_ANSWER)
    with pytest.raises(Conflict) as conflict:
        await Wukongs(kube).patch_status(
            "demo", "web-1", "u-1", [{"op": "add", "path": "/status/phase", "value": "Running"}]
        )
    assert "uid u-1" in conflict.value.message and NOT_APPLIED in conflict.value.message
    [(path, body, kind)] = kube.sent
    assert path.endswith("/namespaces/demo/wukongs/web-1/status")
    assert kind == "application/json-patch+json"
    assert body == [
        {"op": "test", "path": "/metadata/uid", "value": "u-1"},
        {"op": "add", "path": "/status/phase", "value": "Running"},
    ]


async def test_a_status_the_schema_refuses_stays_a_refusal() -> None:
    """Not a silent conflict tried again for ever: the CRD refusing what was written."""
    kube = Answering(422, SCHEMA_REFUSAL)
    with pytest.raises(Invalid) as refused:
        await Wukongs(kube).patch_status(
            "demo", "web-1", "u-1", [{"op": "add", "path": "/status/phase", "value": "Odd"}]
        )
    assert not isinstance(refused.value, Conflict)
    assert "status.phase" in refused.value.message


async def test_finalizers_changed_meanwhile_are_a_conflict() -> None:
    kube = Answering(422, NOT_APPLIED_ANSWER)
    with pytest.raises(Conflict) as conflict:
        await Wukongs(kube).set_finalizers("demo", "web-1", ["f"], [])
    assert "finalizers changed" in conflict.value.message


async def test_finalizers_a_policy_refuses_stay_a_refusal() -> None:
    """A ValidatingAdmissionPolicy or webhook denying the finalizer patch (422 naming why)
    was taken for a lost race and tried again, at info, for ever."""
    denied = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": 'wukongs.vm.novasphere.dev "web-1" is forbidden: '
        "ValidatingAdmissionPolicy 'no-finalizers' with binding 'b' denied request: no",
        "reason": "Invalid",
        "details": {"name": "web-1", "kind": "wukongs"},
        "code": 422,
    }
    with pytest.raises(Invalid) as refused:
        await Wukongs(Answering(422, denied)).set_finalizers("demo", "web-1", ["f"], [])
    assert not isinstance(refused.value, Conflict)
    assert "denied request" in refused.value.message
