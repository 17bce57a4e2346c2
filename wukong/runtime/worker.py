"""Workers that take keys from a WorkQueue and run the reconciler on them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from wukong.errors import Conflict, WukongError
from wukong.runtime.clock import Clock, MonotonicClock
from wukong.runtime.logs import new_pass_id, pass_id, wukong_key, wukong_uid
from wukong.runtime.metrics import Metrics
from wukong.runtime.queue import QueueShutDown, WorkQueue

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    """What a pass asks for: nothing more (None) or another pass after `requeue_after` s."""

    requeue_after: float | None = None


Handler = Callable[[str], Awaitable[Result | None]]
ErrorHook = Callable[[str, Exception], None]
UidOf = Callable[[str], str | None]
"""The uid of the object a key names, as the cache holds it (None: not there)."""


def conflict(error: BaseException) -> bool:
    """A 409 Conflict, raised or the cause of what was: an optimistic-concurrency race lost
    (a write from a version another write replaced), which the next pass settles."""
    return isinstance(error, Conflict) or isinstance(error.__cause__, Conflict)


def log_error(key: str, error: Exception) -> None:
    """Default error hook: the one line that says a pass failed, and why. A 409 Conflict
    (`conflict`) is a write race the next pass settles: info. Another failure the operator
    knows (an API error it classified, an action that failed and is retried): a warning,
    without a traceback, which would only alarm. Anything else is a bug: an error with its
    traceback."""
    if conflict(error):
        logger.info("reconcile of %s failed, retrying with backoff: %s", key, error)
    elif isinstance(error, WukongError):
        logger.warning("reconcile of %s failed, retrying with backoff: %s", key, error)
    else:
        logger.error("reconcile of %s failed: %s", key, error, exc_info=error)


async def run_workers(
    queue: WorkQueue,
    handler: Handler,
    concurrency: int,
    *,
    on_error: ErrorHook = log_error,
    metrics: Metrics | None = None,
    clock: Clock | None = None,
    uid_of: UidOf = lambda _key: None,
) -> None:
    """Run `concurrency` workers until the queue shuts down and their passes in flight end.

    A pass that returns forgets the key's backoff and, if asked, re-adds it after the
    delay; a pass that raises is re-added with per-key exponential backoff. Each pass's log
    lines carry its key, the uid `uid_of` gives for it as the pass starts, and an id of
    their own (`wukong.runtime.logs`).
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    worker_clock = clock or MonotonicClock()
    async with asyncio.TaskGroup() as group:
        for index in range(concurrency):
            group.create_task(
                _work(queue, handler, on_error, metrics, worker_clock, uid_of),
                name=f"worker-{index}",
            )


async def _work(
    queue: WorkQueue,
    handler: Handler,
    on_error: ErrorHook,
    metrics: Metrics | None,
    clock: Clock,
    uid_of: UidOf,
) -> None:
    """One worker: one key at a time, until the queue says it is shut down."""
    while True:
        try:
            key = await queue.get()
        except QueueShutDown:
            return
        token = wukong_key.set(key)
        uid_token = wukong_uid.set(uid_of(key))
        pass_token = pass_id.set(new_pass_id())
        if metrics is not None:
            metrics.observe_queue_wait(queue.waited(key))
        started = clock.now()
        # Stays "cancelled" only if the pass is cancelled mid-way (shutdown by cancellation).
        outcome = "cancelled"
        try:
            result = await handler(key)
        except Exception as error:
            # A lost write race is routine, not an error: counted apart, so that
            # WukongReconcileErrorsRising reads errors only; retried the same way.
            outcome = "conflict" if conflict(error) else "error"
            queue.add_rate_limited(key)  # the only retry: result="error" or "conflict"
            on_error(key, error)
        else:
            queue.forget(key)
            outcome = "success"
            if result is not None and result.requeue_after is not None:
                outcome = "requeue"
                queue.add_after(key, result.requeue_after)
        finally:
            queue.done(key)
            pass_id.reset(pass_token)
            wukong_uid.reset(uid_token)
            wukong_key.reset(token)
            if metrics is not None and outcome != "cancelled":
                metrics.observe_reconcile(outcome, clock.now() - started)
