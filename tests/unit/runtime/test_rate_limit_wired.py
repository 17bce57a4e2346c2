"""The global retry limit of the work queue is wired from Settings."""

from __future__ import annotations

from wukong.controller import Operator
from wukong.settings import Settings


async def test_the_operator_queue_limits_retries_globally() -> None:
    operator = Operator(Settings(retry_qps=2.5, retry_burst=3), api=None)  # type: ignore[arg-type]
    bucket = operator.queue._bucket
    assert bucket is not None
    assert (bucket.qps, bucket.burst) == (2.5, 3)
