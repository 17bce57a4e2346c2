"""What the operator and its clients must agree on beyond the schema, so that clients (the
CLI) read it here and never from the operator's internals (`wukong.reconcile`).

tests/unit/api/test_contract.py pins these against the reconciler's own values.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final

from wukong.api.spec import LifecycleAction

DELETE_GRACE_SECONDS: Final = 60
"""How long a deletion waits for the guest to stop when deleteOptions names no grace period."""


def request_id(action: LifecycleAction) -> str:
    """The fingerprint the operator records in status.lifecycleState.requestId for a request
    (the same request is never run twice; a new requestedAt makes a new one)."""
    body = action.model_dump(mode="json", by_alias=True, exclude_none=True)
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


ANSWERED_APART: Final = {"migrate": "migration", "snapshot": "snapshot", "restore": "restore"}
"""Requests the operator answers in a status field of their own, not in lifecycleState."""

_ENDED: Final = {"Succeeded": "Done", "Refused": "Refused", "Failed": "Failed"}


def apart_answers(status: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """slot -> (requestId, how it ended) for each request answered apart that `status`
    holds, in lifecycleState's words: Done, Refused, Failed, or "" while under way. Two
    slots per action (`apart_slots`): the request accepted last, and a later one refused
    while it ran (`refusedRequestId`)."""
    found: dict[str, tuple[str, str]] = {}
    for action, field in ANSWERED_APART.items():
        answer = status.get(field) or {}
        accepted, beside = apart_slots(action)
        if answer.get("requestId"):
            found[accepted] = (str(answer["requestId"]), _ENDED.get(str(answer.get("result")), ""))
        if answer.get("refusedRequestId"):
            found[beside] = (str(answer["refusedRequestId"]), "Refused")
    return found


def apart_slots(action: str) -> tuple[str, str]:
    """The two answers an action answered apart keeps: the request accepted last, and the
    one refused beside it."""
    return action, f"{action} refused beside"
