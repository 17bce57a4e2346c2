"""`eventually`: poll a condition with a deadline instead of sleeping in tests."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast, overload

T = TypeVar("T")

__all__ = ["eventually"]


@overload
async def eventually(
    predicate: Callable[[], Awaitable[T]],
    *,
    timeout: float = ...,  # noqa: ASYNC109 - a deadline per call reads better in tests
    interval: float = ...,
    retry_on: tuple[type[BaseException], ...] = ...,
    message: str = ...,
) -> T: ...


@overload
async def eventually(
    predicate: Callable[[], T],
    *,
    timeout: float = ...,  # noqa: ASYNC109
    interval: float = ...,
    retry_on: tuple[type[BaseException], ...] = ...,
    message: str = ...,
) -> T: ...


async def eventually(
    predicate: Callable[[], Awaitable[T] | T],
    *,
    timeout: float = 10,  # noqa: ASYNC109
    interval: float = 0.1,
    retry_on: tuple[type[BaseException], ...] = (AssertionError,),
    message: str = "",
) -> T:
    """Call `predicate` (sync or async) until it returns a truthy value, and return that value.

    An exception in `retry_on` (by default AssertionError, so a predicate may use `assert`) counts
    as "not yet"; any other exception propagates at once. On timeout, raises AssertionError with
    the last value or exception, so the failure says what was last seen.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: object = None
    while True:
        remaining = deadline - loop.time()
        try:
            outcome = predicate()
            if inspect.isawaitable(outcome):
                # Bounded: a predicate that hangs (a stuck request) must not outlive the deadline.
                outcome = await asyncio.wait_for(outcome, max(remaining, interval))
            result = cast(T, outcome)
            if result:
                return result
            last = result
        except retry_on as error:
            last = error
        except TimeoutError as error:
            last = error
        if loop.time() >= deadline:
            what = message or getattr(predicate, "__qualname__", repr(predicate))
            raise AssertionError(
                f"{what}: not true within {timeout:g}s; last result: {last!r}"
            ) from (last if isinstance(last, BaseException) else None)
        await asyncio.sleep(min(interval, max(deadline - loop.time(), 0)))
