"""What the operator logs of one pass: the Wukong's uid and the pass's id on each line
(audit, session 48)."""

from __future__ import annotations

import asyncio

from kubernetes_asyncio.client import ApiClient, Configuration

from wukong.api import kinds
from wukong.controller import Operator
from wukong.runtime.logs import pass_id, wukong_key, wukong_uid
from wukong.settings import Settings
from wukong.testing.eventually import eventually

KEY = "demo/web-1"


async def test_the_operators_passes_carry_the_cached_wukongs_uid() -> None:
    async with ApiClient(Configuration()) as api:
        operator = Operator(Settings(metrics_address="off"), api)
        meta = {"namespace": "demo", "name": "web-1", "uid": "u-1", "resourceVersion": "1"}
        operator.store.upsert(kinds.WUKONG.cache, {"metadata": meta})
        seen: list[tuple[str | None, ...]] = []

        async def reconcile(key: str) -> float | None:
            seen.append((wukong_key.get(), wukong_uid.get(), pass_id.get()))
            return None

        operator.reconciler.reconcile = reconcile  # type: ignore[method-assign]
        work = asyncio.create_task(operator._work())
        operator.queue.add(KEY)
        operator.queue.add("demo/gone")  # not in the cache: no uid, still a pass id
        await eventually(lambda: len(seen) == 2, timeout=5)
        operator.queue.shutdown()
        await asyncio.wait_for(work, 5)
    [(key, uid, one), (other, none, two)] = seen
    assert (key, uid, other, none) == (KEY, "u-1", "demo/gone", None)
    assert one and two and one != two
