"""Which Wukongs an event on another object wakes, through the handlers the operator wires
on its informers (no API server: the handlers are called as the informers call them)."""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio.client import ApiClient, Configuration

from wukong.api import kinds
from wukong.controller import Operator
from wukong.settings import Settings


async def _woken(operator: Operator) -> set[str]:
    """The keys queued since the last call (each marked done)."""
    keys = set()
    while len(operator.queue):
        key = await operator.queue.get()
        operator.queue.done(key)
        keys.add(key)
    return keys


async def test_a_pvc_a_datasource_points_to_wakes_the_wukongs_made_from_that_datasource() -> None:
    async with ApiClient(Configuration()) as api:
        operator = Operator(Settings(metrics_address="off"), api)

        def tell(kind: kinds.Kind, event: str, obj: dict[str, Any]) -> None:
            operator.informers[kind.cache]._notify(event, obj)

        disks = [{"name": "root", "size": "10Gi", "dataSource": "golden/fedora"}]
        tell(
            kinds.WUKONG,
            "ADDED",
            {"metadata": {"name": "web", "namespace": "team-a"}, "spec": {"disks": disks}},
        )
        tell(
            kinds.WUKONG,
            "ADDED",
            {
                "metadata": {"name": "db", "namespace": "team-a"},
                "spec": {"disks": [{"name": "root", "size": "1Gi"}]},
            },
        )
        pvc = {"source": {"pvc": {"name": "fedora-43", "namespace": "golden"}}}
        tell(
            kinds.DATA_SOURCE,
            "ADDED",
            {"metadata": {"name": "fedora", "namespace": "golden"}, "spec": pvc},
        )
        assert await _woken(operator) >= {"team-a/web"}
        tell(kinds.PVC, "MODIFIED", {"metadata": {"name": "fedora-43", "namespace": "golden"}})
        assert await _woken(operator) == {"team-a/web"}
        tell(kinds.PVC, "MODIFIED", {"metadata": {"name": "other", "namespace": "golden"}})
        assert await _woken(operator) == set()


async def test_wukongs_that_failed_while_the_api_server_was_away_are_tried_on_its_return() -> None:
    """A pass that fails is retried with a per-key backoff doubling from 5 ms: through a 20 s
    API server restart a deletion's passes failed a dozen times, and its next try came about
    20 s after the return (CI: the deletion not done 40 s after it). When the Wukong watch
    is back, every failing Wukong is tried again at once, its backoff forgotten."""
    async with ApiClient(Configuration()) as api:
        operator = Operator(Settings(metrics_address="off"), api)
        queue = operator.queue
        for _ in range(12):
            queue.add_rate_limited("team-a/leaving")
        assert queue.failures("team-a/leaving") == 12 and not len(queue)
        queue.add("team-a/fine")
        assert await _woken(operator) == {"team-a/fine"}
        for handler in operator.informers[kinds.WUKONG.cache]._on_back:
            handler()
        assert await _woken(operator) == {"team-a/leaving"}
        assert queue.failures("team-a/leaving") == 0
        assert queue.delayed == 0  # no second pass when the old backoff would have ended


async def test_a_new_filesystem_overhead_from_cdi_wakes_every_wukong_and_nothing_else_does() -> (
    None
):
    """A clone's size check and a disk's growth follow CDIConfig's overhead: an
    administrator's change wakes every Wukong. CDI's config controller rewrites the object
    as classes come and go, with the same overhead: that wakes none."""
    async with ApiClient(Configuration()) as api:
        operator = Operator(Settings(metrics_address="off"), api)
        for name in ("web", "db"):
            operator.store.upsert(
                kinds.WUKONG.cache, {"metadata": {"name": name, "namespace": "team-a"}}
            )

        def config(overhead: dict[str, Any]) -> dict[str, Any]:
            return {"metadata": {"name": "config"}, "status": {"filesystemOverhead": overhead}}

        def tell(event: str, obj: dict[str, Any]) -> None:
            operator.informers[kinds.CDI_CONFIG.cache]._notify(event, obj)

        tell("ADDED", config({"global": "0.06", "storageClass": {"standard": "0.06"}}))
        assert await _woken(operator) == {"team-a/web", "team-a/db"}
        tell("MODIFIED", config({"global": "0.06", "storageClass": {"standard": "0.06"}}))
        assert await _woken(operator) == set()
        tell("MODIFIED", config({"global": "0.06", "storageClass": {"standard": "0.1"}}))
        assert await _woken(operator) == {"team-a/web", "team-a/db"}
        tell("DELETED", config({"global": "0.06", "storageClass": {"standard": "0.1"}}))
        assert await _woken(operator) == {"team-a/web", "team-a/db"}
