"""What the operator and its clients must agree on beyond the schema, so that clients (the
CLI) read it here and never from the operator's internals (`wukong.reconcile`).

tests/unit/api/test_contract.py pins these against the reconciler's own values.
"""

from __future__ import annotations

import hashlib
import json
from typing import Final

from wukong.api.spec import LifecycleAction

DELETE_GRACE_SECONDS: Final = 60
"""How long a deletion waits for the guest to stop when deleteOptions names no grace period."""


def request_id(action: LifecycleAction) -> str:
    """The fingerprint the operator records in status.lifecycleState.requestId for a request
    (the same request is never run twice; a new requestedAt makes a new one)."""
    body = action.model_dump(mode="json", by_alias=True, exclude_none=True)
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
