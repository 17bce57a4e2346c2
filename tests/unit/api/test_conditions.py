"""The one module that owns conditions and history: which stay, which go, and the cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from wukong.api.conditions import (
    ALWAYS_PRESENT,
    CLEARED,
    HISTORY_LIMIT,
    OPERATION_CONDITIONS,
    Cond,
    merge_conditions,
    phase_since,
    record_hops,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


def test_operation_conditions_are_there_only_while_a_pass_sets_them() -> None:
    first = merge_conditions(
        [],
        [
            Cond("Ready", True, "VMRunning", "runs"),
            Cond("RestartRequired", True, "SpecChanged", "cpu changed"),
        ],
        NOW,
        1,
    )
    assert [c.type for c in first] == ["Ready", "RestartRequired"]
    second = merge_conditions(first, [Cond("Ready", True, "VMRunning", "runs")], LATER, 2)
    assert [c.type for c in second] == ["Ready"]
    assert second[0].last_transition_time == NOW  # same status: no transition


def test_a_condition_that_always_stays_is_kept_when_a_pass_does_not_set_it() -> None:
    first = merge_conditions([], [Cond("VolumesBound", True, "AllBound", "2 disk(s)")], NOW, 1)
    kept = merge_conditions(first, [Cond("Stalled", False, "Progressing", "deleting")], LATER, 1)
    assert [c.type for c in kept] == ["Stalled", "VolumesBound"]


def test_an_operation_condition_that_stays_keeps_its_transition_time() -> None:
    verdict = Cond("DiskDetach", False, "DiskInUse", "mounted at /var/log")
    first = merge_conditions([], [verdict], NOW, 1)
    again = merge_conditions(first, [verdict], LATER, 1)
    assert again == first


def test_the_two_kinds_do_not_overlap_and_each_operation_says_what_its_absence_means() -> None:
    assert not ALWAYS_PRESENT & OPERATION_CONDITIONS
    assert set(CLEARED) <= OPERATION_CONDITIONS


def test_history_keeps_phase_changes_only_and_is_capped_once() -> None:
    history = record_hops([], [("Stopping", "Stopping", "StopGracePeriodExpired")], NOW)
    assert history == [] and phase_since(history) is None
    for i in range(HISTORY_LIMIT + 2):
        history = record_hops(history, [(f"S{i}", f"S{i + 1}", "step")], NOW + timedelta(i))
    assert len(history) == HISTORY_LIMIT
    assert phase_since(history) == NOW + timedelta(HISTORY_LIMIT + 1)


def test_a_duplicate_type_someone_else_wrote_is_written_back_once() -> None:
    """status.conditions is an atomic list: the API server no longer rejects two of a type,
    so the operator keeps the first (the one it reads) and drops the other."""
    first = merge_conditions([], [Cond("Ready", True, "VMRunning", "runs")], NOW, 1)
    stray = merge_conditions([], [Cond("Ready", False, "Starting", "stray")], NOW, 1)
    after = merge_conditions([*first, *stray], [Cond("Ready", True, "VMRunning", "runs")], LATER, 1)
    assert after == first
    unset = merge_conditions([*first, *stray], [], LATER, 1)
    assert unset == first
