"""Kubernetes Events: the story `kubectl describe wukong` tells."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from wukong.adapters.kube import Kube, api_path
from wukong.api import JsonObj
from wukong.errors import NotFound, WukongError

log = logging.getLogger(__name__)
EventType = Literal["Normal", "Warning"]
COMPONENT = "wukong-operator"
# How many posted Events the recorder remembers to count repeats of. client-go's remembers
# 4,096 (events_cache.go maxLruCacheEntries); the repeats worth counting are a few Wukongs'
# (a crash loop's hops, a retried pass), and 4,096 cost ~1 MB of an operator bounded at 110
# MiB with 1,000 Wukongs (issue 14): `nox -s bench` of 90e6b53 measured 110.3 (108.9 before).
REMEMBERED = 1024


@dataclass(slots=True)
class _Posted:
    """An Event this recorder posted: its name, and how many times it has been said."""

    name: str
    count: int


MESSAGE_BYTES = 1024
"""The longest message posted, in UTF-8 bytes: events.k8s.io's limit on `note`. The API server
does not check core/v1 messages; the cut keeps `describe` readable."""
ELLIPSIS = "…"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def shortened(message: str, limit: int = MESSAGE_BYTES) -> str:
    """`message` if it fits in `limit` UTF-8 bytes; else as much as fits with "…" on the end,
    cut between characters (a cut by code points let a message of "→" and scheduler words run
    to three times the limit, and said nothing of the cut)."""
    encoded = message.encode("utf-8", "replace")  # a lone surrogate must not fail the post
    if len(encoded) <= limit:
        return message
    room = limit - len(ELLIPSIS.encode())
    # A character cut in two leaves an incomplete sequence at the end only: drop it.
    return encoded[:room].decode("utf-8", "ignore") + ELLIPSIS


class EventRecorder:
    """Posts core/v1 Events about an object; a failed post is logged, never raised."""

    def __init__(self, kube: Kube, *, host: str = "") -> None:
        self.kube = kube
        self.host = host
        self._last = 0
        # By the hash of what makes two Events the same (64 bits: a mix-up of two is as
        # likely as never), so that the 1,024 remembered cost ~0.25 MB (measured), not their text.
        self._posted: OrderedDict[int, _Posted] = OrderedDict()

    def _name(self, obj_name: str) -> str:
        """`<object>.<nanoseconds in hex>`, as client-go's recorder names Events: a list
        comes back in the order they were posted (names sort as the times do), and kubectl
        describe, which sorts on a lastTimestamp of whole seconds, keeps that order for the
        Events of one second. Random names listed a pass's Events in any order (found by a
        user audit, session 37). Strictly increasing within this process."""
        self._last = max(time.time_ns(), self._last + 1)
        return f"{obj_name}.{self._last:x}"

    async def post(self, obj: JsonObj, type_: EventType, reason: str, message: str) -> None:
        """Record one Event (CamelCase `reason`) on `obj` (any object with metadata). The same
        Event said again (same object, type, reason and message) is counted on the one
        posted, `count` and `lastTimestamp`, as client-go's recorder does (events_cache.go
        eventObserve): `kubectl describe` shows "(x5 over 20m)", not five rows, for a crash
        loop's hops or a pass retried after a failed status write (found by a monitoring
        audit, session 42). One the API server no longer has (Events live an hour) is posted
        anew."""
        meta = obj.get("metadata", {})
        namespace = meta.get("namespace") or "default"
        now = _now()
        key = hash((namespace, str(meta.get("uid") or meta.get("name")), type_, reason, message))
        if (posted := self._posted.get(key)) is not None:
            self._posted.move_to_end(key)
            path = api_path("", "v1", "events", namespace, posted.name)
            try:
                await self.kube.merge_patch(path, {"count": posted.count + 1, "lastTimestamp": now})
            except NotFound:
                del self._posted[key]
            except WukongError as exc:
                log.warning("could not count event %s again: %s", reason, exc)
                return
            else:
                posted.count += 1
                return
        event: JsonObj = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": self._name(meta.get("name") or "object"),
                "namespace": namespace,
            },
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": meta.get("name"),
                "namespace": namespace,
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": shortened(message),
            "source": {"component": COMPONENT, "host": self.host},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.host or COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.kube.create(api_path("", "v1", "events", namespace), event)
        except WukongError as exc:  # an Event is worth less than the pass that posts it
            log.warning("could not post event %s: %s", reason, exc)
            return
        self._posted[key] = _Posted(event["metadata"]["name"], 1)
        if len(self._posted) > REMEMBERED:
            self._posted.popitem(last=False)
