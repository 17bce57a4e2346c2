"""Leader election: the pure decisions (expired? may I take it? when to renew?) and the loop,
with time and the Lease API under test control."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any, cast

import pytest
from kubernetes_asyncio.client import ApiClient
from prometheus_client.parser import text_string_to_metric_families

from wukong.controller import Operator
from wukong.errors import AlreadyExists, Conflict, NotFound, ServerError
from wukong.runtime.clock import FakeClock
from wukong.runtime.leader import (
    LeaderElector,
    LeaseRecord,
    Observed,
    campaign_wait,
    claim,
    lease_expired,
    lease_lost,
    may_acquire,
    microtime,
    next_renew,
    observe,
    released,
)
from wukong.settings import Settings
from wukong.testing.eventually import eventually

STAMP = "2026-11-23T10:00:00.000000Z"
LATER = "2026-11-23T10:00:02.000000Z"
HELD_BY_A = LeaseRecord("a", 15, STAMP, STAMP, 3)


# -- pure decisions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds_since_seen", "expired"),
    [
        pytest.param(0.0, False, id="just-renewed"),
        pytest.param(14.9, False, id="within-duration"),
        pytest.param(15.0, True, id="at-duration"),
        pytest.param(60.0, True, id="long-gone"),
    ],
)
def test_a_lease_expires_a_lease_duration_after_it_last_changed(
    seconds_since_seen: float, expired: bool
) -> None:
    assert lease_expired(Observed(HELD_BY_A, at=100.0), 100.0 + seconds_since_seen) is expired


@pytest.mark.parametrize(
    ("observed", "identity", "allowed"),
    [
        pytest.param(None, "b", True, id="no-lease-yet"),
        pytest.param(Observed(LeaseRecord("", 1), 100.0), "b", True, id="released"),
        pytest.param(Observed(HELD_BY_A, 100.0), "a", True, id="mine-already"),
        pytest.param(Observed(HELD_BY_A, 100.0), "b", False, id="held-by-another"),
        pytest.param(Observed(HELD_BY_A, 80.0), "b", True, id="holder-stopped-renewing"),
    ],
)
def test_a_candidate_may_take_a_lease_only_when_free_or_expired(
    observed: Observed | None, identity: str, allowed: bool
) -> None:
    assert may_acquire(observed, identity, now=100.0) is allowed


def test_expiry_counts_from_when_this_process_saw_the_change_not_from_renew_time() -> None:
    seen = observe(None, HELD_BY_A, now=100.0)
    # The same record seen again later: the countdown does not restart.
    assert observe(seen, HELD_BY_A, now=110.0) is seen
    renewed = LeaseRecord("a", 15, STAMP, LATER, 3)
    assert observe(seen, renewed, now=110.0) == Observed(renewed, 110.0)


def test_renewing_keeps_acquire_time_and_transitions() -> None:
    assert claim(HELD_BY_A, "a", 15, LATER) == LeaseRecord("a", 15, STAMP, LATER, 3)


def test_taking_over_counts_a_transition_and_restamps_acquire_time() -> None:
    assert claim(HELD_BY_A, "b", 15, LATER) == LeaseRecord("b", 15, LATER, LATER, 4)


def test_the_first_holder_starts_at_zero_transitions() -> None:
    assert claim(None, "a", 15, STAMP) == LeaseRecord("a", 15, STAMP, STAMP, 0)


def test_release_leaves_no_holder_and_a_one_second_lease() -> None:
    assert released(HELD_BY_A, LATER) == LeaseRecord("", 1, LATER, LATER, 3)


@pytest.mark.parametrize(
    ("observed", "draw", "expected"),
    [
        pytest.param(None, 0.0, 2.0, id="no-lease-retry-period"),
        pytest.param(None, 0.5, 3.2, id="jittered-up-to-2.2x"),
        pytest.param(Observed(HELD_BY_A, 100.0), 0.5, 3.2, id="holder-fresh-jittered-poll"),
        pytest.param(Observed(HELD_BY_A, 86.0), 0.5, 1.1, id="wake-just-after-expiry"),
        pytest.param(Observed(HELD_BY_A, 80.0), 0.5, 0.1, id="already-expired-try-now"),
        pytest.param(Observed(LeaseRecord("b", 15), 86.0), 0.0, 2.0, id="own-lease-no-shortcut"),
    ],
)
def test_a_standby_polls_with_jitter_but_wakes_when_the_lease_expires(
    observed: Observed | None, draw: float, expected: float
) -> None:
    wait = campaign_wait(observed, "b", now=100.0, retry=2.0, draw=draw)
    assert wait == pytest.approx(expected)


@pytest.mark.parametrize(
    ("last_attempt", "last_renew", "expected"),
    [
        pytest.param(100.0, 100.0, 102.0, id="renewed-renew-after-retry-period"),
        pytest.param(106.0, 100.0, 108.0, id="failing-retry-after-retry-period"),
        pytest.param(109.0, 100.0, 110.0, id="failing-wake-at-deadline"),
    ],
)
def test_a_leader_renews_every_retry_period_and_wakes_at_its_deadline(
    last_attempt: float, last_renew: float, expected: float
) -> None:
    assert next_renew(last_attempt, last_renew, retry=2.0, deadline=10.0) == expected


def test_a_leader_gives_up_at_the_renew_deadline_before_the_lease_expires() -> None:
    assert not lease_lost(last_renew=100.0, now=109.9, renew_deadline=10.0)
    assert lease_lost(last_renew=100.0, now=110.0, renew_deadline=10.0)


def test_times_are_written_as_kubernetes_microtime_in_utc() -> None:
    moment = datetime(2026, 11, 23, 10, 0, 3, 4567, tzinfo=timezone(timedelta(hours=2)))
    assert microtime(moment) == "2026-11-23T08:00:03.004567Z"


def test_a_lease_record_round_trips_through_the_lease_spec() -> None:
    spec = HELD_BY_A.to_spec()
    assert spec == {
        "holderIdentity": "a",
        "leaseDurationSeconds": 15,
        "acquireTime": STAMP,
        "renewTime": STAMP,
        "leaseTransitions": 3,
    }
    assert LeaseRecord.from_lease({"spec": spec}) == HELD_BY_A
    assert LeaseRecord.from_lease({"spec": {}}) == LeaseRecord()


@pytest.mark.parametrize(
    ("duration", "deadline", "retry"),
    [
        pytest.param(10, 10, 2, id="deadline-not-below-duration"),
        pytest.param(15, 2, 2, id="retry-not-below-deadline"),
        pytest.param(15, 10, 0, id="no-retry-period"),
    ],
)
def test_inconsistent_timings_are_refused(duration: float, deadline: float, retry: float) -> None:
    with pytest.raises(ValueError, match="lease_duration > renew_deadline"):
        LeaderElector(
            NO_API,
            "ns",
            "lease",
            "a",
            lease_duration=duration,
            renew_deadline=deadline,
            retry_period=retry,
        )


# -- the loop, against an in-memory Lease ----------------------------------------------------

NO_API = cast(ApiClient, object())  # never used: the tests swap in FakeLeases


class LeaseStore:
    """One Lease with a resourceVersion, shared by every elector of a test."""

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.version = 0
        self.broken: set[str] = set()  # identities whose requests fail (a partition)


class FakeLeases:
    """The LeaseApi surface, with optimistic concurrency like the API server's."""

    def __init__(self, store: LeaseStore, identity: str) -> None:
        self.store = store
        self.identity = identity

    def _check(self) -> None:
        if self.identity in self.store.broken:
            raise ServerError(503, "ServiceUnavailable", "partitioned")

    async def get(self) -> tuple[LeaseRecord, str] | None:
        self._check()
        if self.store.record is None:
            return None
        return self.store.record, str(self.store.version)

    async def create(self, record: LeaseRecord) -> str:
        self._check()
        if self.store.record is not None:
            raise AlreadyExists(409, "AlreadyExists", "lease exists")
        return self._store(record)

    async def update(self, record: LeaseRecord, resource_version: str) -> str:
        self._check()
        if self.store.record is None:
            raise NotFound(404, "NotFound", "leases not found")
        if resource_version != str(self.store.version):
            raise Conflict(409, "Conflict", "stale resourceVersion")
        return self._store(record)

    def _store(self, record: LeaseRecord) -> str:
        self.store.record = record
        self.store.version += 1
        return str(self.store.version)


class Candidate:
    """One elector running in a task, recording when it stopped leading."""

    def __init__(self, store: LeaseStore, clock: FakeClock, identity: str) -> None:
        self.clock = clock
        self.elector = LeaderElector(
            NO_API,
            "wukong-system",
            "wukong-operator",
            identity,
            lease_duration=15,
            renew_deadline=10,
            retry_period=2,
            clock=clock,
        )
        self.elector._leases = FakeLeases(store, identity)  # type: ignore[assignment]
        self.stopped_at: float | None = None
        self.task = asyncio.create_task(self.elector.run(self._work, self._stopped))
        self.working = False

    async def _work(self) -> None:
        self.working = True
        try:
            await asyncio.Event().wait()
        finally:
            self.working = False

    def _stopped(self) -> None:
        self.stopped_at = self.clock.now()

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def settle() -> None:
    """Let every ready task run (no time passes)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def advance(clock: FakeClock, seconds: float, step: float = 0.1) -> None:
    """Move time forward in small steps, letting the electors react at each one."""
    for _ in range(round(seconds / step)):
        clock.advance(step)
        await settle()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1000.0)


@pytest.fixture
def store() -> LeaseStore:
    return LeaseStore()


@pytest.fixture
async def pair(store: LeaseStore, clock: FakeClock) -> AsyncIterator[tuple[Candidate, Candidate]]:
    """Two candidates; `a` starts first and therefore leads."""
    a = Candidate(store, clock, "a")
    await settle()
    b = Candidate(store, clock, "b")
    await settle()
    yield a, b
    for candidate in (a, b):
        await candidate.stop()


async def test_of_two_candidates_exactly_one_leads(pair: tuple[Candidate, Candidate]) -> None:
    a, b = pair
    await advance(a.clock, 30)
    assert (a.elector.is_leader, b.elector.is_leader) == (True, False)
    assert a.working and not b.working


async def test_the_leader_renews_so_the_standby_never_takes_over(
    pair: tuple[Candidate, Candidate], store: LeaseStore
) -> None:
    a, _ = pair
    await advance(a.clock, 60)
    assert store.record is not None and store.record.holder == "a"
    assert store.record.transitions == 0


async def test_a_leader_that_cannot_renew_stops_at_its_deadline_before_expiry(
    pair: tuple[Candidate, Candidate], store: LeaseStore, clock: FakeClock
) -> None:
    a, b = pair
    await advance(clock, 1)
    cut_at = clock.now()
    store.broken.add("a")
    await advance(clock, 10.5)
    assert a.stopped_at is not None
    # Renewed at most one retry period before the cut, so stopped at most 10 s after it.
    assert 8.0 <= a.stopped_at - cut_at <= 10.1
    assert not a.working and not a.elector.is_leader
    assert not b.elector.is_leader, "the standby must wait for the lease to expire"


async def test_the_standby_takes_over_once_the_lease_expires(
    pair: tuple[Candidate, Candidate], store: LeaseStore, clock: FakeClock
) -> None:
    a, b = pair
    await advance(clock, 1)
    await a.stop()
    stopped = clock.now()
    while not b.elector.is_leader:
        await advance(clock, 0.1)
    taken = clock.now() - stopped
    # 15 s from when b saw the last renewal (at most one jittered poll after it), +0.1 margin.
    assert 15 - 2 <= taken <= 15 + 2.2 * 2 + 0.1 + 0.1
    assert store.record is not None and store.record.holder == "b"
    assert store.record.transitions == 1
    assert b.working


async def test_release_hands_over_on_the_standbys_next_poll(
    pair: tuple[Candidate, Candidate], store: LeaseStore, clock: FakeClock
) -> None:
    a, b = pair
    await advance(clock, 1)
    await a.elector.release()
    assert not a.elector.is_leader
    assert store.record is not None
    assert (store.record.holder, store.record.duration) == ("", 1)
    released_at = clock.now()
    while not b.elector.is_leader:
        await advance(clock, 0.1)
    assert clock.now() - released_at <= 2.2 * 2 + 0.2, "must not wait for the lease duration"
    assert store.record.holder == "b"
    # run() ends within one retry period of release(), telling the operator it stopped.
    await advance(clock, 2.2)
    assert a.task.done() and a.stopped_at is not None and not a.working


async def test_a_failing_leader_callback_ends_leadership_and_surfaces_its_error(
    store: LeaseStore, clock: FakeClock
) -> None:
    async def crash() -> None:
        raise RuntimeError("reconciler died")

    stopped: list[float] = []
    elector = LeaderElector(NO_API, "ns", "lease", "a", clock=clock)
    elector._leases = FakeLeases(store, "a")  # type: ignore[assignment]
    task = asyncio.create_task(elector.run(crash, lambda: stopped.append(clock.now())))
    await advance(clock, 2.2)
    with pytest.raises(RuntimeError, match="reconciler died"):
        await task
    assert stopped and not elector.is_leader


async def test_release_before_ever_leading_ends_the_campaign(
    store: LeaseStore, clock: FakeClock
) -> None:
    store.record = HELD_BY_A
    store.version = 7
    elector = LeaderElector(NO_API, "ns", "lease", "b", clock=clock)
    elector._leases = FakeLeases(store, "b")  # type: ignore[assignment]
    stopped: list[float] = []
    task = asyncio.create_task(elector.run(None, lambda: stopped.append(clock.now())))
    await advance(clock, 1)
    await elector.release()
    await advance(clock, 5)
    assert task.done() and task.exception() is None
    assert not stopped, "never led, so never stopped leading"
    assert store.record == HELD_BY_A, "release must not touch a Lease held by another"


async def test_a_leader_whose_lease_was_handed_to_another_does_not_take_it_back(
    pair: tuple[Candidate, Candidate], store: LeaseStore, clock: FakeClock
) -> None:
    """An administrator (or a controller) writes another holder into the Lease: the old
    leader's next renew meets a Conflict and reads that record; the renew after must not
    then "renew" the other holder's record as its own (issue 15: found by the fault test)."""
    a, b = pair
    await advance(clock, 1)
    assert store.record is not None
    store.record = LeaseRecord("b", 15, "t", "t", store.record.transitions + 1)
    store.version += 1
    store.broken.add("b")  # the new holder has not polled yet
    await advance(clock, 12)
    assert store.record.holder == "b", "the old leader took the Lease back"
    assert a.stopped_at is not None and not a.elector.is_leader
    store.broken.discard("b")
    await advance(clock, 5)
    assert b.elector.is_leader and b.working


# -- the Lease's requests, counted with the operator's others --------------------------------


class _Answer:
    """What `ApiClient.call_api(..., _preload_content=False)` gives `Kube.request`."""

    content_type = "application/json"

    def __init__(self, status: int, doc: dict[str, Any]) -> None:
        self.status = status
        self.doc = doc

    async def __aenter__(self) -> _Answer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def text(self) -> str:
        return json.dumps(self.doc)


class LeaseServer:
    """An ApiClient serving one Lease with resourceVersions, below `Kube` (which counts)."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0

    async def call_api(self, path: str, method: str, *, body: Any = None, **_: Any) -> _Answer:
        assert "/apis/coordination.k8s.io/v1/namespaces/wukong-system/leases" in path, path
        if method == "GET":
            if self.lease is None:
                return _Answer(404, {"kind": "Status", "reason": "NotFound", "code": 404})
            return _Answer(200, self.lease)
        if method == "PUT" and body["metadata"]["resourceVersion"] != str(self.version):
            return _Answer(409, {"kind": "Status", "reason": "Conflict", "code": 409})
        self.version += 1
        self.lease = {
            **body,
            "metadata": {**body["metadata"], "resourceVersion": str(self.version)},
        }
        return _Answer(201 if method == "POST" else 200, self.lease)


async def test_the_operators_lease_requests_are_counted_with_its_other_requests() -> None:
    """Every replica GETs or PUTs the Lease each retry period (audit s42, finding 4: they were
    missing from wukong_kube_api_requests_total, built without the counting hook)."""
    settings = Settings(leader_election=True, identity="a", lease_namespace="wukong-system")
    operator = Operator(settings, api=cast(ApiClient, LeaseServer()))
    elector = operator._elector()
    assert await elector._try_acquire_or_renew(1.0)  # GET: 404, POST: 201
    assert await elector._try_acquire_or_renew(1.0)  # GET: 200, PUT: 200
    await elector.release()  # PUT: 200
    counted = {
        (labels["verb"], labels["code"]): value
        for name, labels, value in _samples(operator.metrics.render().decode())
        if name == "wukong_kube_api_requests_total" and labels["resource"] == "leases"
    }
    assert counted == {("GET", "404"): 1, ("POST", "201"): 1, ("GET", "200"): 1, ("PUT", "200"): 2}


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


async def test_a_leader_told_to_stop_hands_the_lease_back_once_its_passes_end() -> None:
    """It renewed on while its workers ended normally and waited the whole shutdown grace
    (20 s without reconciles on every rollout, and a false "passes still running ...:
    cancelled"), found by a helper in session 42. A standby stops at once too."""
    fast = {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.2}
    server = LeaseServer()
    leader = Operator(
        Settings(leader_election=True, identity="a", lease_namespace="wukong-system", **fast),
        api=cast(ApiClient, server),
    )
    standby = Operator(
        Settings(leader_election=True, identity="b", lease_namespace="wukong-system", **fast),
        api=cast(ApiClient, server),
    )
    leading = asyncio.create_task(leader._run_elected())
    await eventually(lambda: leader.leading, timeout=5, message="a leads")
    waiting = asyncio.create_task(standby._run_elected())
    await asyncio.sleep(0.5)
    assert not standby.leading
    for operator, task in ((standby, waiting), (leader, leading)):
        started = time.monotonic()
        operator.stop()
        await asyncio.wait_for(task, 10)
        assert time.monotonic() - started < 2, operator.settings.identity
    assert server.lease is not None and not server.lease["spec"].get("holderIdentity")


async def test_a_leader_whose_lease_was_deleted_makes_it_again_and_leads_on(
    store: LeaseStore, clock: FakeClock
) -> None:
    """Its fast-path renew (a PUT on the last resourceVersion) got 404 and was retried as such
    until the renew deadline: the leader gave up and its pod restarted. client-go falls back to
    a GET on any refusal, and makes a missing Lease again (found by a helper, session 42)."""
    a = Candidate(store, clock, "a")
    await advance(clock, 3)
    assert a.elector.is_leader
    store.record = None  # someone deleted the Lease
    await advance(clock, 30)
    assert a.elector.is_leader and a.stopped_at is None
    assert store.record is not None and store.record.holder == "a"
    await a.stop()
