"""The pure half of an informer: URLs, query parameters, JSON-line framing and event triage."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

# Event types the API server sends on a watch stream.
ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"
BOOKMARK = "BOOKMARK"
ERROR = "ERROR"
_OBJECT_EVENTS = frozenset({ADDED, MODIFIED, DELETED})


@dataclass(frozen=True)
class ResourceRef:
    """One API resource to watch; namespace None means all namespaces."""

    group: str
    version: str
    plural: str
    namespace: str | None = None
    field_selector: str | None = None
    """Only objects matching this field selector (e.g. Events of one reason)."""

    @property
    def name(self) -> str:
        """Resource name as kubectl spells it (`virtualmachines.kubevirt.io`), with the field
        selector if it has one (`events?reason=FailedMount`); the cache kind."""
        name = f"{self.plural}.{self.group}" if self.group else self.plural
        return f"{name}?{self.field_selector}" if self.field_selector else name

    @property
    def api_version(self) -> str:
        """apiVersion of its objects (`kubevirt.io/v1`, or `v1` for the core group)."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self) -> str:
        """Collection URL path, e.g. /apis/kubevirt.io/v1/namespaces/ns/virtualmachines."""
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespace:
            prefix += f"/namespaces/{self.namespace}"
        return f"{prefix}/{self.plural}"


def list_query(limit: int, continue_token: str | None) -> list[tuple[str, str]]:
    """Query for one page of a consistent LIST (no resourceVersion: read from etcd)."""
    query = [("limit", str(limit))]
    if continue_token:
        query.append(("continue", continue_token))
    return query


def watch_query(resource_version: str, timeout_seconds: int) -> list[tuple[str, str]]:
    """Query for a WATCH resuming after `resource_version`, with bookmarks and a server timeout."""
    return [
        ("watch", "true"),
        ("resourceVersion", resource_version),
        ("allowWatchBookmarks", "true"),
        ("timeoutSeconds", str(timeout_seconds)),
    ]


@dataclass(frozen=True)
class ListPage:
    """One page of a LIST response."""

    items: list[Obj]
    resource_version: str
    continue_token: str | None


def parse_list(body: bytes, ref: ResourceRef, kind: str | None = None) -> ListPage:
    """Decode a LIST page; items get apiVersion and kind, which lists of built-ins omit."""
    try:
        data = json.loads(body)
    except ValueError as error:
        raise WatchDecodeError(f"LIST of {ref.name} is not JSON: {error}") from error
    if not isinstance(data, dict):
        raise WatchDecodeError(f"LIST of {ref.name} is not an object")
    item_kind = kind or str(data.get("kind", "")).removesuffix("List")
    items: list[Obj] = data.get("items") or []
    for item in items:
        item.setdefault("apiVersion", ref.api_version)
        if item_kind:
            item.setdefault("kind", item_kind)
    meta = data.get("metadata") or {}
    return ListPage(
        items=items,
        resource_version=str(meta.get("resourceVersion", "")),
        continue_token=meta.get("continue") or None,
    )


class WatchDecodeError(ValueError):
    """A line or body from the API server that is not the JSON we expect."""


@dataclass(frozen=True)
class WatchEvent:
    """One decoded watch event."""

    type: str
    object: Obj

    @property
    def resource_version(self) -> str | None:
        """metadata.resourceVersion of the event's object."""
        return resource_version_of(self.object)


def resource_version_of(obj: Obj) -> str | None:
    """metadata.resourceVersion of an object, or None."""
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    return str(rv) if rv else None


def parse_event(line: bytes) -> WatchEvent:
    """Decode one JSON line of a watch stream."""
    try:
        data = json.loads(line)
    except ValueError as error:
        raise WatchDecodeError(f"watch line is not JSON: {line[:200]!r}") from error
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise WatchDecodeError(f"watch line has no object: {line[:200]!r}")
    return WatchEvent(type=str(data.get("type", "")), object=data["object"])


class Step(enum.Enum):
    """What an informer does with one event."""

    APPLY = "apply"  # put into / remove from the cache, notify, advance resourceVersion
    BOOKMARK = "bookmark"  # only advance resourceVersion
    RELIST = "relist"  # our resourceVersion is too old (410 Gone): list again
    RESTART = "restart"  # some other error: back off and watch again from our resourceVersion
    IGNORE = "ignore"  # an unknown event type: skip it rather than fail the stream


def classify(event: WatchEvent) -> Step:
    """Decide what to do with an event."""
    if event.type in _OBJECT_EVENTS:
        return Step.APPLY
    if event.type == BOOKMARK:
        return Step.BOOKMARK
    if event.type == ERROR:
        return Step.RELIST if is_gone(event.object) else Step.RESTART
    return Step.IGNORE


def is_gone(status: Obj) -> bool:
    """True for a metav1.Status saying the requested resourceVersion is too old."""
    return status.get("code") == 410 or status.get("reason") in ("Expired", "Gone")


@dataclass
class LineBuffer:
    """Splits a byte stream into lines however the chunks fall, with no line-length limit."""

    _partial: bytearray = field(default_factory=bytearray)

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add a chunk; return the complete, non-blank lines it finished."""
        self._partial += chunk
        if b"\n" not in chunk:
            return []
        *lines, rest = bytes(self._partial).split(b"\n")
        self._partial = bytearray(rest)
        return [line for line in lines if line.strip()]

    def flush(self) -> list[bytes]:
        """At end of stream: whatever is left, if it is not blank."""
        rest = bytes(self._partial)
        self._partial.clear()
        return [rest] if rest.strip() else []
