"""The client-facing contract in wukong.api equals what the reconciler does, so the CLI can
read it from the API package alone (import-linter: `console` imports no reconcile)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wukong.api import contract
from wukong.api.spec import Action, LifecycleAction
from wukong.reconcile import deletion, disks, lifecycle


def test_the_default_deletion_grace_is_the_reconcilers() -> None:
    assert contract.DELETE_GRACE_SECONDS == deletion.DEFAULT_GRACE


def test_a_disk_not_the_wukongs_is_said_in_the_reconcilers_words() -> None:
    from tests.unit.reconcile.world import ready_children, wukong

    world = ready_children()
    theirs = world.claims["web-1-data"]
    theirs["metadata"]["ownerReferences"] = [{"uid": "someone-else", "kind": "Wukong"}]
    plan = disks.plan_disks(wukong(), world, {}, restore=None)
    [data] = [v for v in plan.volumes if v.name == "data"]
    [bound] = [c for c in plan.conditions if c.type == "VolumesBound"]
    assert (data.phase, bound.reason) == (contract.CONFLICT_PHASE, contract.CLAIM_CONFLICT)
    assert contract.CLAIM_CONFLICT == disks.CLAIM_CONFLICT


@given(
    action=st.sampled_from(list(Action)),
    force=st.booleans(),
    grace=st.none() | st.integers(min_value=0, max_value=3600),
    micros=st.integers(min_value=0, max_value=999_999),
)
def test_request_ids_match_the_reconcilers(
    action: Action, force: bool, grace: int | None, micros: int
) -> None:
    request = LifecycleAction(
        action=action,
        force=force,
        grace_period_seconds=grace,
        # The actions about a snapshot name one (restore must).
        snapshot_name="good" if action in (Action.SNAPSHOT, Action.RESTORE) else None,
        requested_at=f"2026-05-01T12:00:00.{micros:06d}Z",
    )
    assert contract.request_id(request) == lifecycle.request_id(request)


def test_requests_answered_apart_are_the_status_fields_the_reconciler_writes() -> None:
    from wukong.api.status import WukongStatus

    fields = set(WukongStatus.model_fields)
    assert set(contract.ANSWERED_APART.values()) <= fields
    assert set(contract.ANSWERED_APART) == {
        a.value for a in Action if a.value in ("migrate", "snapshot", "restore")
    }


def test_an_answer_apart_reads_as_lifecycle_states_words() -> None:
    beside = {"refusedRequestId": "r2", "refusal": "a restore is in progress"}
    status = {
        "migration": {"requestId": "m", "result": "Succeeded"},
        "snapshot": {"requestId": "s", "phase": "InProgress"},
        "restore": {"requestId": "r", "result": None, **beside},
    }
    # The restore running is still answered under its own id; the one refused beside it too.
    assert contract.apart_answers(status) == {
        "migrate": ("m", "Done"),
        "snapshot": ("s", ""),
        "restore": ("r", ""),
        "restore refused beside": ("r2", "Refused"),
    }
    refused = {"restore": {"requestId": "r", "result": "Refused", "refusal": "no such snapshot"}}
    assert contract.apart_answers(refused) == {"restore": ("r", "Refused")}
    assert contract.apart_answers({"snapshot": {"result": "Failed"}}) == {}  # no request
