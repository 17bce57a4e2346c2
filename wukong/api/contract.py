"""What the operator and its clients must agree on beyond the schema, so that clients (the
CLI) read it here and never from the operator's internals (`wukong.reconcile`).

tests/unit/api/test_contract.py pins these against the reconciler's own values.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Final

from wukong.api.spec import LifecycleAction

DELETE_GRACE_SECONDS: Final = 60
"""How long a deletion waits for the guest to stop when deleteOptions names no grace period."""


CONFLICT_PHASE: Final = "Conflict"
"""status.volumes[].phase of a disk whose claim (or DataVolume) is someone else's: the
operator neither uses it nor, at deletion, deletes or keeps it."""
CLAIM_CONFLICT: Final = "ClaimConflict"
"""The VolumesBound reason that says so."""


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


DELETE_BUMP: Final = 1
"""What a delete adds to `metadata.generation`: the API server bumps it once as it sets the
deletionTimestamp of an object that has finalizers (k8s.io/apiserver registry/generic/
registry/store.go `markAsDeleting`), and a Wukong the operator tears down has its finalizer."""

UNSEEN_GAP: Final = 2
"""Spec generations past `observedGeneration` from which the operator may not have seen a
removed disk's last detach options: one edit may have set them, the next removed the disk."""


def unseen_removals(
    generation: int | None,
    observed: int | None,
    volumes: Iterable[tuple[str, str | None, bool | None]],
    in_spec: Collection[str],
    *,
    deleting: bool = False,
) -> list[str]:
    """The disks (of `volumes`: status.volumes as (name, phase, preserveData)) that left the
    spec in an edit the operator did not see, whose data is kept whatever their detach
    options said (docs/decisions.md, "Detach options outlive the spec entry"; review s23 F3).

    A removed disk's detach options are the ones the operator recorded in status.volumes
    while the disk was in the spec. When the spec is `UNSEEN_GAP` or more generations past
    the last one the operator saw, an edit it did not see may have changed them just before
    the removal: in doubt, keep. One `Detaching` left the spec in a generation the operator
    saw (its options were known then); one that keeps its data already needs no doubt.
    `deleting`: `generation` is a deleted Wukong's, which counts the delete's own bump."""
    if generation is None or observed is None:
        return []
    spec_generation = generation - (DELETE_BUMP if deleting else 0)
    if spec_generation - observed < UNSEEN_GAP:
        return []
    return [
        name
        for name, phase, preserve in volumes
        if name not in in_spec and phase != "Detaching" and not preserve
    ]
