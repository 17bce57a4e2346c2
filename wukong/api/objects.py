"""Reading raw API objects of any kind (the JSON the watch caches and the CLI hold)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def being_deleted(obj: Mapping[str, Any] | None) -> bool:
    """metadata.deletionTimestamp is set: the object is going (finalizers may hold it)."""
    return bool(((obj or {}).get("metadata") or {}).get("deletionTimestamp"))
