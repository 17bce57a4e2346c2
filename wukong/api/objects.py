"""Reading raw API objects of any kind (the JSON the watch caches and the CLI hold)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def being_deleted(obj: Mapping[str, Any] | None) -> bool:
    """metadata.deletionTimestamp is set: the object is going (finalizers may hold it)."""
    return bool(((obj or {}).get("metadata") or {}).get("deletionTimestamp"))


def controlled_by(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    """Whether `owner` is `obj`'s controller (an object without a controller is taken to be
    its)."""
    refs = [r for r in obj.get("metadata", {}).get("ownerReferences") or [] if r.get("controller")]
    uid = owner.get("metadata", {}).get("uid")
    return not refs or uid is None or any(r.get("uid") == uid for r in refs)
