"""RFC 6902 JSON patches applied as kube-apiserver applies them, for fake API servers in tests.

kube-apiserver applies a JSON patch with evanphx/json-patch (v4) to the whole stored object
(a `/status` patch too) and answers any operation that does not apply (a failed `test`, a
`remove` of a key that is not there, an `add` under a parent that is not there) 422 Invalid,
with the same words whatever went wrong (`NOT_APPLIED`: the library's own message is lost,
apimachinery `NewGenericServerResponse`). `add`, `remove`, `replace` and `test` on objects
and lists; `move` and `copy` are not used by Wukong and refused here.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from wukong.adapters.kube import NOT_APPLIED
from wukong.errors import Invalid

__all__ = ["NOT_APPLIED", "NotApplied", "apply_json_patch", "json_patched", "pointer"]


class NotApplied(ValueError):
    """An operation of the patch does not apply to the document (says which, and why)."""


def apply_json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """`doc` with `ops` applied in order, all or nothing (a copy: `doc` is left as it was)."""
    out = copy.deepcopy(doc)
    for op in ops:
        out = _apply(out, op)
    return out


def json_patched(doc: Any, ops: list[dict[str, Any]], path: str = "") -> Any:
    """`apply_json_patch`, or the API server's answer when it does not apply: `Invalid`
    (422, `NOT_APPLIED`), as `Kube.request` raises it."""
    try:
        return apply_json_patch(doc, ops)
    except NotApplied:
        raise Invalid(422, "Invalid", NOT_APPLIED, path=path) from None


def pointer(path: str) -> list[str]:
    """The reference tokens of a JSON pointer (`~1` is `/`, `~0` is `~`)."""
    if path == "":
        return []
    if not path.startswith("/"):
        raise NotApplied(f"not a JSON pointer: {path!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _apply(doc: Any, op: dict[str, Any]) -> Any:
    kind, tokens = op.get("op"), pointer(str(op.get("path", "")))
    if kind not in ("add", "remove", "replace", "test"):
        raise NotApplied(f"operation {kind!r} is not supported here")
    if not tokens:  # the whole document
        if kind == "test":
            if not _same(doc, op.get("value")):
                raise NotApplied("testing the whole document failed")
            return doc
        if kind == "remove":
            raise NotApplied("cannot remove the whole document")
        return copy.deepcopy(op.get("value"))
    parent = _parent(doc, tokens[:-1], op)
    key = tokens[-1]
    if isinstance(parent, dict):
        _on_object(parent, key, op)
    elif isinstance(parent, list):
        _on_list(parent, key, op)
    else:
        raise NotApplied(f"{kind} operation does not apply: doc is missing path: {op['path']}")
    return doc


def _parent(doc: Any, tokens: list[str], op: dict[str, Any]) -> Any:
    node = doc
    for token in tokens:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise NotApplied(
                f"{op['op']} operation does not apply: doc is missing path: {op['path']}"
            )
    return node


def _on_object(parent: dict[str, Any], key: str, op: dict[str, Any]) -> None:
    kind = op["op"]
    if kind == "add":
        parent[key] = copy.deepcopy(op.get("value"))
    elif kind == "test" and key not in parent:
        # json-patch v4 reads a missing key as null: a `test` against null passes.
        if op.get("value") is not None:
            raise NotApplied(f"testing value {op['path']} failed")
    elif key not in parent:
        raise NotApplied(f"{kind} operation does not apply: doc is missing key: {op['path']}")
    elif kind == "remove":
        del parent[key]
    elif kind == "replace":
        parent[key] = copy.deepcopy(op.get("value"))
    elif not _same(parent[key], op.get("value")):
        raise NotApplied(f"testing value {op['path']} failed")


def _on_list(parent: list[Any], key: str, op: dict[str, Any]) -> None:
    kind = op["op"]
    if kind == "add" and key == "-":
        parent.append(copy.deepcopy(op.get("value")))
        return
    if not key.isdigit():
        raise NotApplied(f"not a list index: {key!r} ({op['path']})")
    index, size = int(key), len(parent)
    if index > size or (kind != "add" and index == size):
        raise NotApplied(f"{kind}: invalid index {index} ({op['path']})")
    if kind == "add":
        parent.insert(index, copy.deepcopy(op.get("value")))
    elif kind == "remove":
        del parent[index]
    elif kind == "replace":
        parent[index] = copy.deepcopy(op.get("value"))
    elif not _same(parent[index], op.get("value")):
        raise NotApplied(f"testing value {op['path']} failed")


def _same(mine: Any, theirs: Any) -> bool:
    """Equal as JSON (unlike Python's ==, `true` is not `1`)."""
    return json.dumps(mine, sort_keys=True) == json.dumps(theirs, sort_keys=True)
