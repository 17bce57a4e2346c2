"""The short error hierarchy every layer speaks.

Permanent errors are problems only a person can fix (an invalid spec, a missing NAD, a
forbidden call): the reconciler sets a condition, posts an Event and waits for a change.
Transient errors (conflicts, 5xx, timeouts) are retried by the work queue with backoff.
"""

from __future__ import annotations

import html
import json
import re
from typing import Final

EXCERPT: Final = 80  # characters of a web page's title (or text), said in one line
TEXT: Final = 200  # characters of a body that is no Status (plain text), said in one line


def one_line(text: str, limit: int = TEXT) -> str:
    """`text` on one line (its runs of white space one space) of at most `limit` characters."""
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def excerpt(page: str) -> str:
    """A web page in a few words: its <title>, else its text without the markup; at most
    EXCERPT characters, one line ('' when it has no text)."""
    title = re.search(r"<title[^>]*>(.*?)</title>", page, re.IGNORECASE | re.DOTALL)
    text = title.group(1) if title else page
    text = re.sub(r"<(script|style)\b.*?</\1\s*>", " ", text, flags=re.IGNORECASE | re.DOTALL)
    return one_line(html.unescape(re.sub(r"<[^>]*>", " ", text)), EXCERPT)


class WukongError(Exception):
    """Base of every error Wukong raises on purpose."""


class TransientError(WukongError):
    """Retry later: the same call may succeed (409 Conflict, 429, 5xx, timeouts)."""


class PermanentError(WukongError):
    """Retrying will not help until someone changes something."""


class ApiError(WukongError):
    """An HTTP error from the Kubernetes API (or an aggregated API), already classified.
    `raw`: `message` is the answer's whole body, which was no JSON Status (an aggregated
    API's plain text, or a proxy's or an ingress's HTML page), not a Status's message.
    Its str (a log line's, a traceback's) says the body as `said` does, not whole."""

    def __init__(
        self, status: int, reason: str, message: str, *, path: str = "", raw: bool = False
    ) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        self.path = path
        self.raw = raw
        super().__init__(f"{status} {reason}: {self.said}" + (f" ({path})" if path else ""))

    @property
    def web_page(self) -> bool:
        """The answer's body was a web page (HTML: a proxy's, an ingress's, a login page),
        not a Status nor an aggregated API's plain text."""
        return self.raw and self.message.lstrip().startswith("<")

    @property
    def said(self) -> str:
        """What the server said, short enough for a log line, a condition or an Event: a
        Status's message as it is; a body that was no Status on one line of at most TEXT
        characters, a web page as `a web page: <its title>`. The operator's log lines, and
        a Wukong's conditions and Events quoting a failed call, carried a proxy's whole HTML
        page (audit leftovers, session 50)."""
        if not self.raw:
            return self.message
        if self.web_page:
            words = excerpt(self.message)
            return f"a web page: {words}" if words else "a web page"
        return one_line(self.message)


class NotFound(ApiError, PermanentError):
    """404: the object (or the API) does not exist."""


class AlreadyExists(ApiError, TransientError):
    """409 AlreadyExists on create: someone (maybe our earlier pass) created it."""


class Conflict(ApiError, TransientError):
    """409 Conflict: stale resourceVersion, or a subresource refusing the current state."""


class Forbidden(ApiError, PermanentError):
    """403: RBAC or an admission rule said no."""


class Invalid(ApiError, PermanentError):
    """400/422: the request itself is wrong (schema, CEL rule, immutable field)."""


class ServerError(ApiError, TransientError):
    """429, 5xx or a transport failure: try again later."""


class Broken(ServerError):
    """A streamed answer's body broke off before its end (status 0): the connection reset or
    closed mid-body, a proxy or an API server going away. `cause` names what the transport
    raised (`ClientPayloadError`)."""

    def __init__(self, cause: BaseException, *, path: str = "") -> None:
        self.cause = type(cause).__name__
        super().__init__(0, "StreamBroken", f"{self.cause}: {cause}", path=path)


NOT_KUBERNETES = "NotKubernetes"
"""The reason of a ServerError for a web page where the API's JSON was expected (a login
page, a proxy, the wrong port)."""


class Expired(ApiError, TransientError):
    """410 Gone/Expired: a watch's resourceVersion (or a list's continue token) is too old."""


def classify(status: int, body: str, path: str = "") -> ApiError:
    """The one mapping from an HTTP error (status and body) to an `ApiError` subclass, for
    every request the operator makes: writes, guest-agent calls, lists and watches."""
    reason, message, raw = "", body.strip(), bool(body.strip())
    try:
        doc = json.loads(body)
        if isinstance(doc, dict):
            reason, message = str(doc.get("reason", "")), str(doc.get("message", message))
            raw = False
    except ValueError:
        pass  # aggregated APIs (KubeVirt's guest-agent calls) answer in plain text
    if status == 404:
        return NotFound(status, reason or "NotFound", message, path=path, raw=raw)
    if status == 409:
        kind = AlreadyExists if reason == "AlreadyExists" else Conflict
        return kind(status, reason or "Conflict", message, path=path, raw=raw)
    if status == 410:
        return Expired(status, reason or "Expired", message, path=path, raw=raw)
    if status == 403:
        return Forbidden(status, reason or "Forbidden", message, path=path, raw=raw)
    if status in (400, 405, 415, 422):
        return Invalid(status, reason or "Invalid", message, path=path, raw=raw)
    return ServerError(status, reason or "ServerError", message, path=path, raw=raw)
