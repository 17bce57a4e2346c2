"""The fake API servers' RFC 6902 applier (wukong.testing.jsonpatch) applies as
kube-apiserver's json-patch v4 does: RFC 6902's own examples, and what it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from wukong.errors import Invalid
from wukong.testing.jsonpatch import (
    NOT_APPLIED,
    NotApplied,
    apply_json_patch,
    json_patched,
    pointer,
)


@pytest.mark.parametrize(
    ("doc", "ops", "result"),
    [
        # RFC 6902 appendix A.1, A.2, A.3, A.4, A.5, A.10, A.16
        (
            {"foo": "bar"},
            [{"op": "add", "path": "/baz", "value": "qux"}],
            {"foo": "bar", "baz": "qux"},
        ),
        (
            {"foo": ["bar", "baz"]},
            [{"op": "add", "path": "/foo/1", "value": "qux"}],
            {"foo": ["bar", "qux", "baz"]},
        ),
        ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
        (
            {"foo": ["bar", "qux", "baz"]},
            [{"op": "remove", "path": "/foo/1"}],
            {"foo": ["bar", "baz"]},
        ),
        (
            {"baz": "qux", "foo": "bar"},
            [{"op": "replace", "path": "/baz", "value": "boo"}],
            {"baz": "boo", "foo": "bar"},
        ),
        (
            {"foo": "bar"},
            [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
            {"foo": "bar", "child": {"grandchild": {}}},
        ),
        (
            {"foo": ["bar"]},
            [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
            {"foo": ["bar", ["abc", "def"]]},
        ),
        # `add` of a key that is there replaces it; the whole document by the empty pointer.
        ({"a": {"b": 1}}, [{"op": "add", "path": "/a", "value": [1]}], {"a": [1]}),
        ({"a": 1}, [{"op": "add", "path": "", "value": {"b": 2}}], {"b": 2}),
        # Escaped tokens: `~1` is `/`, `~0` is `~` (RFC 6901).
        (
            {"a/b": 1, "m~n": 2},
            [{"op": "remove", "path": "/a~1b"}, {"op": "remove", "path": "/m~0n"}],
            {},
        ),
        ({}, [{"op": "add", "path": "/~01", "value": 1}], {"~1": 1}),
        # Tests that pass: a value, a list, a missing key against null (json-patch v4).
        (
            {"metadata": {"uid": "u"}, "l": [1, {"x": True}]},
            [
                {"op": "test", "path": "/metadata/uid", "value": "u"},
                {"op": "test", "path": "/l", "value": [1, {"x": True}]},
                {"op": "test", "path": "/metadata/finalizers", "value": None},
            ],
            {"metadata": {"uid": "u"}, "l": [1, {"x": True}]},
        ),
    ],
)
def test_applies_as_rfc_6902_says(doc: Any, ops: list[dict[str, Any]], result: Any) -> None:
    before = repr(doc)
    assert apply_json_patch(doc, ops) == result
    assert repr(doc) == before  # a copy: the caller's document is left as it was


@pytest.mark.parametrize(
    ("doc", "ops"),
    [
        ({"metadata": {"uid": "a"}}, [{"op": "test", "path": "/metadata/uid", "value": "b"}]),
        ({"metadata": {}}, [{"op": "test", "path": "/metadata/uid", "value": "b"}]),
        ({"a": 1}, [{"op": "test", "path": "/a", "value": True}]),  # JSON: 1 is not true
        ({"a": 1}, [{"op": "test", "path": "/a", "value": None}]),
        ({}, [{"op": "test", "path": "/a/b", "value": None}]),  # its parent is missing
        ({"a": 1}, [{"op": "remove", "path": "/b"}]),  # RFC 6902 4.2: must exist
        ({"a": 1}, [{"op": "replace", "path": "/b", "value": 2}]),
        ({"a": 1}, [{"op": "add", "path": "/b/c", "value": 2}]),  # 4.1: the parent must exist
        ({"a": [1]}, [{"op": "add", "path": "/a/2", "value": 2}]),  # past the end
        ({"a": [1]}, [{"op": "remove", "path": "/a/1"}]),
        ({"a": [1]}, [{"op": "add", "path": "/a/x", "value": 2}]),
        ({"a": 1}, [{"op": "move", "from": "/a", "path": "/b"}]),  # not used, not applied
        ({"a": 1}, [{"op": "add", "path": "a", "value": 2}]),  # not a pointer
    ],
)
def test_what_does_not_apply_is_refused(doc: Any, ops: list[dict[str, Any]]) -> None:
    with pytest.raises(NotApplied):
        apply_json_patch(doc, ops)


def test_all_or_nothing() -> None:
    """A patch whose last operation fails changes nothing (the caller's copy is kept)."""
    doc = {"metadata": {"uid": "a"}, "status": {"phase": "Running"}}
    ops = [
        {"op": "add", "path": "/status/phase", "value": "Stopped"},
        {"op": "test", "path": "/metadata/uid", "value": "b"},
    ]
    with pytest.raises(NotApplied):
        apply_json_patch(doc, ops)
    assert doc["status"] == {"phase": "Running"}


def test_pointer_tokens() -> None:
    assert pointer("") == []
    assert pointer("/status/conditions/0") == ["status", "conditions", "0"]
    assert pointer("/a~1b/~0~1") == ["a/b", "~/"]
    assert pointer("/") == [""]


def test_a_patch_that_does_not_apply_is_answered_as_the_api_server_answers_it() -> None:
    with pytest.raises(Invalid) as refused:
        json_patched({"metadata": {"uid": "a"}}, [UID_B], path="/x/status")
    assert (refused.value.status, refused.value.reason) == (422, "Invalid")
    assert refused.value.message == NOT_APPLIED
    assert NOT_APPLIED == "the server rejected our request due to an error in our request"


UID_B = {"op": "test", "path": "/metadata/uid", "value": "b"}
