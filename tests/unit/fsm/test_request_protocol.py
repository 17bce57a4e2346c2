"""The answer to a request, as a table: every row, and what no row allows."""

from __future__ import annotations

import pytest

from wukong.fsm.requests import ANY, ISSUED, PROTOCOL, Answer, Happened, answer

A, H = Answer, Happened

ROWS = [
    (None, H.accepted, A.Accepted),
    (A.Done, H.accepted, A.Accepted),
    (A.Failed, H.accepted, A.Accepted),
    (A.Issued, H.refused, A.Refused),
    (A.Accepted, H.called, A.Issued),
    (A.Issued, H.settled, A.Done),
    (A.Issued, H.call_failed, A.Accepted),
    (A.Issued, H.stopped_to_restart, A.Accepted),
    (A.Issued, H.call_refused, A.Failed),
    (A.Accepted, H.call_refused, A.Failed),
    (None, H.moot, A.Done),
    (None, H.deferred, A.Waiting),
    (A.Waiting, H.deferred, A.Waiting),
    (A.Waiting, H.accepted, A.Accepted),
]
STAYS = [
    (A.Accepted, H.settled),  # not called yet: never Done
    (A.Done, H.called),
    (A.Refused, H.called),
    (A.Failed, H.settled),
    (A.Done, H.call_failed),
    (None, H.called),
    (A.Accepted, H.stopped_to_restart),  # the stop it follows not made yet
    # A request refused while a forced restart ran stays the answer; the restart's owed start
    # is recorded beside it (lifecycle.start_beside_refusal).
    (A.Refused, H.stopped_to_restart),
]


@pytest.mark.parametrize(("state", "event", "to"), ROWS)
def test_each_row_moves_the_answer(state: str | None, event: Happened, to: Answer) -> None:
    assert answer(state, event) is to


@pytest.mark.parametrize(("state", "event"), STAYS)
def test_no_row_means_the_answer_stays(state: str | None, event: Happened) -> None:
    assert answer(state, event) is None


def test_the_rows_above_are_the_whole_table() -> None:
    covered = {
        (ANY if e in (H.accepted, H.refused, H.moot, H.deferred) else s, e) for s, e, _ in ROWS
    }
    assert covered == set(PROTOCOL)


def test_issued_means_the_call_was_made() -> None:
    assert ISSUED == {A.Issued, A.Done, A.Failed}
