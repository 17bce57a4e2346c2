"""Children the API server refused (issue 15 point 1): a PVC over a ResourceQuota (403), a VM
or DataVolume a webhook or admission policy refuses (422). Pure.

Such a refusal can succeed later without a spec change (the quota is raised, the webhook is
fixed), so it is reported and retried: the `ChildrenAdmitted` condition carries the API
server's own message, a Warning Event says so once, and the pass looks again after a delay
that grows with how long the refusal has lasted (1 s up to 60 s). The condition turns True,
with a Normal Event, on the first pass in which every action went through.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from wukong.errors import ApiError, WukongError
from wukong.reconcile.actions import Action, CreateChild, Emit, PatchChild
from wukong.reconcile.conditions import Cond
from wukong.reconcile.observed import JsonObj
from wukong.reconcile.timefmt import parse_time

CHILDREN_ADMITTED = "ChildrenAdmitted"
REFUSED_STATUSES = frozenset({403, 422})
RETRY_CAP = 60.0


def refused(failures: Mapping[Action, WukongError]) -> list[str]:
    """One sentence per create or patch of a child the API server refused."""
    out = []
    for action, error in failures.items():
        if not isinstance(error, ApiError) or error.status not in REFUSED_STATUSES:
            continue
        if isinstance(action, CreateChild):
            what = f"create {action.kind} {action.body.get('metadata', {}).get('name', '')}"
        elif isinstance(action, PatchChild):
            what = f"update {action.kind} {action.name}"
        else:
            continue
        out.append(f"the API server refused to {what.strip()}: {error.message or error}")
    return out


def admission_verdict(
    failures: Mapping[Action, WukongError], old_conditions: list[JsonObj], now: datetime
) -> tuple[Cond | None, list[Emit], float | None]:
    """The ChildrenAdmitted condition after a pass, its Events, and when to try again.
    None when nothing is to be said (no refusal now, none before, or a pass that failed
    for another reason before it could tell)."""
    before = next((c for c in old_conditions if c.get("type") == CHILDREN_ADMITTED), None)
    was_refused = before is not None and before.get("status") == "False"
    sentences = refused(failures)
    if sentences:
        message = "; ".join(sentences)
        cond = Cond(CHILDREN_ADMITTED, False, "Refused", message)
        changed = not was_refused or (before or {}).get("message") != message
        events = [Emit("Warning", "ChildRefused", message)] if changed else []
        since = parse_time((before or {}).get("lastTransitionTime")) if was_refused else None
        age = (now - since).total_seconds() if since else 0.0
        return cond, events, min(max(age, 1.0), RETRY_CAP)
    if was_refused and not failures:
        message = "the API server accepted every child"
        return (
            Cond(CHILDREN_ADMITTED, True, "Admitted", message),
            [Emit("Normal", "ChildrenAdmitted", message)],
            None,
        )
    return None, [], None
