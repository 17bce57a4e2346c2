"""run_workers: one pass per Wukong at a time, retries with backoff, requeues, clean shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import pytest

from wukong.errors import Conflict, TransientError
from wukong.runtime.clock import FakeClock
from wukong.runtime.logs import pass_id, wukong_key, wukong_uid
from wukong.runtime.metrics import Metrics
from wukong.runtime.queue import WorkQueue
from wukong.runtime.worker import Result, run_workers


async def settle() -> None:
    """Let every ready task run (no real time passes)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def eventually(predicate: object, rounds: int = 200) -> None:
    """Yield to the loop until predicate() holds; fail after `rounds` turns."""
    for _ in range(rounds):
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def test_one_wukong_is_never_reconciled_twice_at_once_with_many_workers() -> None:
    queue = WorkQueue(clock=FakeClock())
    running: Counter[str] = Counter()
    passes: Counter[str] = Counter()
    overlaps: list[str] = []

    async def reconcile(key: str) -> None:
        running[key] += 1
        if running[key] > 1:
            overlaps.append(key)
        # Events keep arriving for the key while its pass runs.
        queue.add(key)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        running[key] -= 1
        passes[key] += 1

    workers = asyncio.create_task(run_workers(queue, reconcile, concurrency=8))
    for _ in range(10):
        for key in ("ns/a", "ns/b", "ns/c"):
            queue.add(key)
        await asyncio.sleep(0)
    await eventually(lambda: min(passes[k] for k in ("ns/a", "ns/b", "ns/c")) >= 5)
    queue.shutdown()
    await asyncio.wait_for(workers, 5)
    assert overlaps == []


async def test_failed_pass_is_retried_after_backoff_and_reported() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock=clock)
    calls: list[str] = []
    errors: list[tuple[str, str]] = []

    async def reconcile(key: str) -> Result | None:
        calls.append(key)
        if len(calls) < 3:
            raise RuntimeError("API server said 500")
        return None

    workers = asyncio.create_task(
        run_workers(queue, reconcile, 2, on_error=lambda k, e: errors.append((k, str(e))))
    )
    queue.add("ns/a")
    await eventually(lambda: len(calls) == 1)
    await settle()
    clock.advance(0.005)
    await eventually(lambda: len(calls) == 2)
    await settle()
    clock.advance(0.009)
    await settle()
    assert len(calls) == 2, "second retry waits 10 ms"
    clock.advance(0.001)
    await eventually(lambda: len(calls) == 3)
    await settle()
    assert errors == [("ns/a", "API server said 500")] * 2
    assert queue.failures("ns/a") == 0, "success forgets the backoff"
    queue.shutdown()
    await asyncio.wait_for(workers, 5)


async def test_requeue_after_brings_the_wukong_back_when_due() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock=clock)
    calls: list[float] = []

    async def reconcile(key: str) -> Result:
        calls.append(clock.now())
        return Result(requeue_after=30)

    workers = asyncio.create_task(run_workers(queue, reconcile, 1))
    queue.add("ns/a")
    await eventually(lambda: len(calls) == 1)
    await settle()
    clock.advance(29)
    await settle()
    assert len(calls) == 1
    clock.advance(1)
    await eventually(lambda: len(calls) == 2)
    assert calls == [0, 30]
    queue.shutdown()
    await asyncio.wait_for(workers, 5)


async def test_shutdown_lets_the_pass_in_flight_finish_then_workers_exit() -> None:
    queue = WorkQueue(clock=FakeClock())
    release = asyncio.Event()
    finished: list[str] = []

    async def reconcile(key: str) -> None:
        await release.wait()
        finished.append(key)

    workers = asyncio.create_task(run_workers(queue, reconcile, 4))
    queue.add("ns/a")
    queue.add("ns/b")
    await eventually(lambda: queue.in_flight == 2)
    queue.add("ns/c")
    queue.shutdown()
    await settle()
    assert not workers.done(), "passes in flight are not abandoned"
    release.set()
    await asyncio.wait_for(workers, 5)
    assert sorted(finished) == ["ns/a", "ns/b"], "queued work is dropped at shutdown"


async def test_logs_during_a_pass_name_the_wukong(caplog: pytest.LogCaptureFixture) -> None:
    queue = WorkQueue(clock=FakeClock())
    seen: list[str | None] = []

    async def reconcile(key: str) -> None:
        seen.append(wukong_key.get())

    workers = asyncio.create_task(run_workers(queue, reconcile, 1))
    queue.add("ns/web-1")
    await eventually(lambda: bool(seen))
    queue.shutdown()
    await asyncio.wait_for(workers, 5)
    assert seen == ["ns/web-1"]
    assert wukong_key.get() is None


async def test_a_passes_log_lines_carry_the_wukongs_uid_and_an_id_of_their_own() -> None:
    """Logs said only namespace/name (audit, session 48): a Wukong deleted and made again
    under its name, or two passes of one Wukong among many others' lines, could not be told
    apart. The uid (as the cache holds it when the pass starts) and a pass id are in the
    context of the pass, of the tasks it starts, and of the line that reports its failure."""
    queue = WorkQueue(clock=FakeClock())
    seen: list[tuple[str | None, str | None]] = []
    failed: list[tuple[str | None, str | None]] = []
    uids = {"ns/web-1": "uid-1"}

    async def reconcile(key: str) -> None:
        async def started_by_the_pass() -> None:
            seen.append((wukong_uid.get(), pass_id.get()))

        await asyncio.gather(started_by_the_pass())
        if len(seen) == 2:
            raise TransientError("409 Conflict: the object has been modified")

    def on_error(key: str, error: Exception) -> None:
        failed.append((wukong_uid.get(), pass_id.get()))

    workers = asyncio.create_task(
        run_workers(queue, reconcile, 1, on_error=on_error, uid_of=uids.get)
    )
    queue.add("ns/web-1")
    await eventually(lambda: len(seen) == 1)
    uids["ns/web-1"] = "uid-2"  # deleted and made again under its name
    queue.add("ns/web-1")
    await eventually(lambda: bool(failed))
    queue.shutdown()
    await asyncio.wait_for(workers, 5)
    (first_uid, first_pass), (second_uid, second_pass) = seen
    assert (first_uid, second_uid) == ("uid-1", "uid-2")
    assert first_pass and second_pass and first_pass != second_pass
    assert len(first_pass) == 8 and int(first_pass, 16) >= 0
    assert failed == [("uid-2", second_pass)]
    assert (wukong_uid.get(), pass_id.get()) == (None, None), "nothing left after the pass"


async def _one_failed_pass(error: Exception, caplog: pytest.LogCaptureFixture, level: int) -> None:
    """Run one pass of `ns/a` that raises `error`, capturing logs from `level` up."""
    queue = WorkQueue(clock=FakeClock())

    async def reconcile(key: str) -> None:
        raise error

    workers = asyncio.create_task(run_workers(queue, reconcile, 1))
    with caplog.at_level(level):
        queue.add("ns/a")
        await eventually(lambda: queue.delayed == 1)
    queue.shutdown()
    await asyncio.wait_for(workers, 5)


async def test_failed_pass_is_logged_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    await _one_failed_pass(ValueError("bad disk"), caplog, logging.ERROR)
    assert "reconcile of ns/a failed: bad disk" in caplog.text
    assert caplog.records[0].exc_info is not None


async def test_a_known_failure_is_one_warning_line_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    await _one_failed_pass(TransientError("1 action(s) failed; retrying"), caplog, logging.WARNING)
    [record] = caplog.records
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "reconcile of ns/a failed, retrying with backoff: 1 action(s)" in record.getMessage()


async def test_passes_are_counted_in_metrics() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock=clock)
    metrics = Metrics()
    outcomes = iter([None, Result(requeue_after=5)])

    async def reconcile(key: str) -> Result | None:
        if key == "ns/bad":
            raise RuntimeError("boom")
        return next(outcomes)

    workers = asyncio.create_task(run_workers(queue, reconcile, 1, metrics=metrics, clock=clock))
    for key in ("ns/a", "ns/b", "ns/bad"):
        queue.add(key)
    await eventually(lambda: queue.delayed == 2 and queue.in_flight == 0)
    queue.shutdown()
    await asyncio.wait_for(workers, 5)
    sample = metrics.registry.get_sample_value
    assert sample("wukong_reconcile_total", {"result": "success"}) == 1
    assert sample("wukong_reconcile_total", {"result": "requeue"}) == 1
    assert sample("wukong_reconcile_total", {"result": "error"}) == 1
    assert sample("wukong_reconcile_duration_seconds_count") == 3
    assert sample("wukong_workqueue_queue_duration_seconds_count") == 3
    # A pass that raised is the only one re-queued with backoff: no second name for it.
    assert sample("wukong_workqueue_retries_total") is None


async def test_a_pass_that_lost_a_write_race_is_counted_as_a_conflict_and_retried() -> None:
    """A 409 Conflict (raised, or the cause of the TransientError a failed action raises) is
    an optimistic-concurrency race the next pass settles: counted as result="error" it fed
    WukongReconcileErrorsRising (audit leftovers, session 50). Retried as before."""
    clock = FakeClock()
    queue = WorkQueue(clock=clock)
    metrics = Metrics()
    race = Conflict(409, "Conflict", "the object has been modified")

    async def reconcile(key: str) -> None:
        if key == "ns/raised":
            raise race
        if key == "ns/caused":
            raise TransientError(f"PatchChild failed: {race}") from race
        raise RuntimeError("boom")

    workers = asyncio.create_task(run_workers(queue, reconcile, 1, metrics=metrics, clock=clock))
    for key in ("ns/raised", "ns/caused", "ns/bad"):
        queue.add(key)
    await eventually(lambda: queue.delayed == 3 and queue.in_flight == 0)  # all retried
    queue.shutdown()
    await asyncio.wait_for(workers, 5)
    sample = metrics.registry.get_sample_value
    assert sample("wukong_reconcile_total", {"result": "conflict"}) == 2
    assert sample("wukong_reconcile_total", {"result": "error"}) == 1
    assert sorted(queue.failing()) == ["ns/bad", "ns/caused", "ns/raised"]


async def test_zero_workers_is_refused() -> None:
    async def reconcile(key: str) -> None:
        return None

    with pytest.raises(ValueError, match="at least 1"):
        await run_workers(WorkQueue(), reconcile, 0)
