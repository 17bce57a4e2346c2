"""The short error hierarchy every layer speaks.

Permanent errors are problems only a person can fix (an invalid spec, a missing NAD, a
forbidden call): the reconciler sets a condition, posts an Event and waits for a change.
Transient errors (conflicts, 5xx, timeouts) are retried by the work queue with backoff.
"""

from __future__ import annotations


class WukongError(Exception):
    """Base of every error Wukong raises on purpose."""


class TransientError(WukongError):
    """Retry later: the same call may succeed (409 Conflict, 429, 5xx, timeouts)."""


class PermanentError(WukongError):
    """Retrying will not help until someone changes something."""


class ApiError(WukongError):
    """An HTTP error from the Kubernetes API (or an aggregated API), already classified."""

    def __init__(self, status: int, reason: str, message: str, *, path: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}" + (f" ({path})" if path else ""))
        self.status = status
        self.reason = reason
        self.message = message
        self.path = path


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
