"""WorkQueue: dedupe, ordering, delays, backoff and shutdown, with time under test control."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from wukong.runtime._ratelimit import ExponentialBackoff, TokenBucket
from wukong.runtime.clock import FakeClock
from wukong.runtime.queue import QueueShutDown, WorkQueue


async def settle() -> None:
    """Let every ready task run (no real time passes)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def take(queue: WorkQueue) -> str:
    """Next key; the timeout is only a guard against a hung test."""
    return await asyncio.wait_for(queue.get(), 5)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def queue(clock: FakeClock) -> AsyncIterator[WorkQueue]:
    q = WorkQueue(clock=clock)
    yield q
    # Tests may leave keys in flight on purpose; do not wait for them.
    await q.drain(0)


async def test_a_burst_of_events_for_one_wukong_gives_one_pass(queue: WorkQueue) -> None:
    for _ in range(50):
        queue.add("ns/web-1")
    assert len(queue) == 1
    assert await take(queue) == "ns/web-1"
    assert len(queue) == 0


async def test_wukongs_are_handed_out_first_in_first_out(queue: WorkQueue) -> None:
    for key in ("ns/a", "ns/b", "ns/c", "ns/a"):
        queue.add(key)
    assert [await take(queue) for _ in range(3)] == ["ns/a", "ns/b", "ns/c"]


async def test_change_during_a_pass_gives_one_more_pass_after_it(queue: WorkQueue) -> None:
    queue.add("ns/a")
    key = await take(queue)
    queue.add("ns/a")
    queue.add("ns/a")
    assert len(queue) == 0, "must not be handed out while its pass runs"
    queue.done(key)
    assert len(queue) == 1
    assert await take(queue) == "ns/a"
    queue.done("ns/a")
    assert len(queue) == 0


async def test_the_wait_of_a_key_counts_from_ready_to_handed_out(
    queue: WorkQueue, clock: FakeClock
) -> None:
    """wukong_workqueue_queue_duration_seconds: a requeue delay is not waiting in the queue,
    nor is the pass during which the key was added again."""
    queue.add("ns/a")
    clock.advance(2)
    key = await take(queue)
    assert queue.waited(key) == 2
    assert queue.waited(key) == 0  # read once
    queue.add("ns/a")  # while its pass runs
    clock.advance(5)
    queue.done(key)
    clock.advance(0.5)
    assert await take(queue) == "ns/a" and queue.waited("ns/a") == 0.5
    queue.done("ns/a")
    queue.add_after("ns/a", 10)
    await settle()
    clock.advance(10)
    key = await take(queue)
    assert queue.waited(key) == 0


async def test_requeue_after_arrives_only_when_due(queue: WorkQueue, clock: FakeClock) -> None:
    queue.add_after("ns/a", 10)
    await settle()
    clock.advance(9.9)
    await settle()
    assert len(queue) == 0
    clock.advance(0.1)
    assert await take(queue) == "ns/a"


async def test_delayed_wukongs_come_due_in_deadline_order(
    queue: WorkQueue, clock: FakeClock
) -> None:
    queue.add_after("ns/late", 3)
    queue.add_after("ns/early", 1)
    queue.add_after("ns/middle", 2)
    await settle()
    clock.advance(5)
    assert [await take(queue) for _ in range(3)] == ["ns/early", "ns/middle", "ns/late"]


async def test_earlier_requeue_wins_over_a_later_one(queue: WorkQueue, clock: FakeClock) -> None:
    queue.add_after("ns/a", 1)
    queue.add_after("ns/a", 60)
    await settle()
    clock.advance(1)
    assert await take(queue) == "ns/a"
    queue.done("ns/a")
    clock.advance(100)
    await settle()
    assert len(queue) == 0 and queue.delayed == 0


async def test_shorter_requeue_moves_a_pending_one_forward(
    queue: WorkQueue, clock: FakeClock
) -> None:
    queue.add_after("ns/a", 60)
    await settle()
    queue.add_after("ns/a", 1)
    await settle()
    clock.advance(1)
    assert await take(queue) == "ns/a"


async def test_zero_delay_queues_at_once(queue: WorkQueue) -> None:
    queue.add_after("ns/a", 0)
    assert len(queue) == 1


def test_retry_delay_doubles_from_5ms_and_is_capped() -> None:
    backoff = ExponentialBackoff(base=0.005, cap=1.0)
    delays = [backoff.when("ns/a") for _ in range(10)]
    assert delays[:4] == pytest.approx([0.005, 0.010, 0.020, 0.040])
    assert delays[-1] == 1.0
    assert backoff.when("ns/b") == pytest.approx(0.005), "backoff is per key"


def test_long_failing_wukong_stays_at_the_default_cap() -> None:
    backoff = ExponentialBackoff()
    for _ in range(5000):
        delay = backoff.when("ns/a")
    assert delay == 1000.0


async def test_failed_wukong_is_retried_after_its_backoff(
    queue: WorkQueue, clock: FakeClock
) -> None:
    queue.add_rate_limited("ns/a")
    await settle()
    clock.advance(0.004)
    await settle()
    assert len(queue) == 0
    clock.advance(0.001)
    assert await take(queue) == "ns/a"
    queue.done("ns/a")
    queue.add_rate_limited("ns/a")
    await settle()
    clock.advance(0.009)
    await settle()
    assert len(queue) == 0, "second failure waits 10 ms"
    clock.advance(0.001)
    assert await take(queue) == "ns/a"


async def test_success_resets_the_backoff(queue: WorkQueue, clock: FakeClock) -> None:
    for _ in range(3):
        queue.add_rate_limited("ns/a")
    assert queue.failures("ns/a") == 3
    queue.forget("ns/a")
    assert queue.failures("ns/a") == 0
    queue.add_rate_limited("ns/b")
    queue.forget("ns/a")
    queue.add_rate_limited("ns/a")
    await settle()
    clock.advance(0.005)
    assert {await take(queue), await take(queue)} == {"ns/a", "ns/b"}


def test_global_limit_spaces_out_a_mass_of_retries(clock: FakeClock) -> None:
    bucket = TokenBucket(qps=10, burst=2, clock=clock)
    assert [bucket.reserve() for _ in range(4)] == pytest.approx([0, 0, 0.1, 0.2])
    clock.advance(1)
    assert bucket.reserve() == pytest.approx(0.0)


async def test_global_limit_applies_to_rate_limited_adds(clock: FakeClock) -> None:
    queue = WorkQueue(clock=clock, global_qps=1, global_burst=1)
    queue.add_rate_limited("ns/a")
    queue.add_rate_limited("ns/b")
    await settle()
    clock.advance(0.5)
    assert await take(queue) == "ns/a"
    await settle()
    assert len(queue) == 0, "ns/b waits for the global bucket, not just its 5 ms"
    clock.advance(0.5)
    assert await take(queue) == "ns/b"
    await queue.drain(0)


async def test_waiting_worker_is_released_by_shutdown(queue: WorkQueue) -> None:
    getter = asyncio.create_task(queue.get())
    await settle()
    queue.shutdown()
    with pytest.raises(QueueShutDown):
        await asyncio.wait_for(getter, 5)


async def test_nothing_is_handed_out_or_queued_after_shutdown(
    queue: WorkQueue, clock: FakeClock
) -> None:
    queue.add("ns/a")
    queue.add_after("ns/b", 1)
    queue.shutdown()
    queue.add("ns/c")
    queue.add_rate_limited("ns/d")
    clock.advance(10)
    assert len(queue) == 0 and queue.delayed == 0
    with pytest.raises(QueueShutDown):
        await queue.get()


async def test_drain_waits_for_the_pass_in_flight(queue: WorkQueue) -> None:
    queue.add("ns/a")
    key = await take(queue)
    drained = asyncio.create_task(queue.drain(5))
    await settle()
    assert not drained.done()
    queue.done(key)
    assert await drained is True


async def test_drain_returns_at_once_when_nothing_is_in_flight(queue: WorkQueue) -> None:
    assert await queue.drain(0) is True


async def test_drain_gives_up_when_a_pass_hangs(queue: WorkQueue) -> None:
    queue.add("ns/a")
    await take(queue)
    assert await queue.drain(0) is False


async def test_retry_now_gives_one_pass_now_and_none_when_the_old_backoff_ends(
    queue: WorkQueue, clock: FakeClock
) -> None:
    for _ in range(12):
        queue.add_rate_limited("ns/a")
    await settle()
    assert len(queue) == 0 and queue.delayed == 1
    queue.retry_now("ns/a")
    assert queue.failures("ns/a") == 0 and queue.delayed == 0
    assert await take(queue) == "ns/a"
    queue.done("ns/a")
    clock.advance(1000)
    await settle()
    assert len(queue) == 0
