"""Creation runs: N Wukongs through the operator, and the same VMs written directly (the floor)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench import apimetrics
from bench.cluster import NAD, PVC, VM, VMI, WUKONG, Cluster, bounded, create_all, path
from bench.manifests import floor_nad, floor_pvc, floor_vm, wukong, wukong_name
from bench.operator import Operator
from bench.tracking import Tracker, vmi_running, wukong_running


@dataclass
class Creation:
    """How long N objects took to run, the curve of how many ran when, and the requests sent."""

    n: int
    seconds: float  # first POST -> last one Running
    posting_seconds: float  # first POST -> last POST answered
    curve: list[tuple[float, int]]  # (seconds since the first POST, how many were Running)
    requests: Counter[apimetrics.Request]  # apiserver_request_total diff, start to settled
    operator_requests: dict[str, int]  # the operator's own count per verb (empty for the floor)
    cpu_seconds: dict[str, float]  # CPU each process used from the first POST to settled
    reconciles: float = 0.0  # the operator's passes (0 for the floor)

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers."""
        per = float(self.n)
        writes = sum(c for v, c in self.operator_requests.items() if v in apimetrics.WRITE_VERBS)
        events = sum(
            c for r, c in self.requests.items() if r.resource == "events" and r.verb == "POST"
        )
        children = sum(
            c
            for r, c in self.requests.items()
            if r.resource in apimetrics.CHILDREN and r.verb == "POST" and not r.subresource
        )
        return {
            "n": self.n,
            "seconds": round(self.seconds, 3),
            "posting_seconds": round(self.posting_seconds, 3),
            "per_second": round(self.n / self.seconds, 1),
            "apiserver_requests_per_wukong_by_verb": {
                v: round(c / per, 2) for v, c in apimetrics.by_verb(self.requests).items()
            },
            "apiserver_requests": apimetrics.table(self.requests, per),
            "operator_requests_per_wukong_by_verb": {
                v: round(c / per, 2) for v, c in self.operator_requests.items()
            },
            "operator_writes_per_wukong": round(writes / per, 2)
            if self.operator_requests
            else None,
            # The target's measure (issue 5): finalizer, status and Events, not NAD/PVC/VM.
            "operator_writes_beyond_children_per_wukong": round((writes - children) / per, 2)
            if self.operator_requests
            else None,
            "event_posts_per_wukong": round(events / per, 2),
            "cpu_seconds_by_process": {k: round(v, 2) for k, v in self.cpu_seconds.items()},
            "cpu_ms_per_wukong_by_process": {
                k: round(v * 1000 / per, 1) for k, v in self.cpu_seconds.items()
            },
            "reconciles_per_wukong": round(self.reconciles / per, 2),
        }


def curve(reached: dict[str, float], began: float, points: int = 100) -> list[tuple[float, int]]:
    """The cumulative count over time, thinned to about `points` points."""
    times = sorted(t - began for t in reached.values())
    step = max(1, len(times) // points)
    picked = [(round(t, 3), i + 1) for i, t in enumerate(times) if i % step == 0]
    if times and picked[-1][1] != len(times):
        picked.append((round(times[-1], 3), len(times)))
    return picked


async def with_operator(
    cluster: Cluster, operator: Operator, n: int, *, in_flight: int, within: float
) -> tuple[Creation, Tracker]:
    """Create N Wukongs and wait until all are Running and the operator has gone quiet.
    Returns the still-watching tracker, which the later phases reuse."""
    ns = operator.namespace
    tracker = Tracker(cluster.api, WUKONG, ns, wukong_running)
    await tracker.__aenter__()
    api_before, op_before = await cluster.apiserver_requests(), await operator.requests()
    docs = [(path(WUKONG, ns), wukong(wukong_name(i))) for i in range(n)]
    pid = operator.pid
    cpu_before, passes_before = cluster.cpu_seconds(operator=pid), await operator.reconciles()
    began = time.monotonic()
    await create_all(cluster.kube, docs, in_flight)
    posted = time.monotonic()
    last = await tracker.all_reached(n, within)
    # Requests after the last Running (Events, the final status) still belong to creation.
    await operator.quiet()
    api_after, op_after = await cluster.apiserver_requests(), await operator.requests()
    cpu_after, passes_after = cluster.cpu_seconds(operator=pid), await operator.reconciles()
    result = Creation(
        n=n,
        seconds=last - began,
        posting_seconds=posted - began,
        curve=curve(tracker.reached, began),
        requests=apimetrics.requests(apimetrics.diff(api_before, api_after)),
        operator_requests=apimetrics.operator_verbs(apimetrics.diff(op_before, op_after)),
        cpu_seconds={k: v - cpu_before[k] for k, v in cpu_after.items()},
        reconciles=passes_after - passes_before,
    )
    return result, tracker


async def floor(
    cluster: Cluster, n: int, *, in_flight: int, within: float, namespace: str | None = None
) -> Creation:
    """The same N VMs written by a plain script: NAD, PVC, VM each, no operator at all (in
    `namespace`, else bench-floor-N)."""
    ns = await cluster.namespace(namespace or f"bench-floor-{n}")
    async with Tracker(cluster.api, VMI, ns, vmi_running) as tracker:
        before, cpu_before = await cluster.apiserver_requests(), cluster.cpu_seconds()

        async def one(index: int) -> None:
            vm = wukong_name(index)
            await cluster.kube.create(path(NAD, ns), floor_nad(vm))
            await cluster.kube.create(path(PVC, ns), floor_pvc(vm))
            await cluster.kube.create(path(VM, ns), floor_vm(vm))

        began = time.monotonic()
        await bounded(range(n), one, in_flight)
        posted = time.monotonic()
        last = await tracker.all_reached(n, within)
        await asyncio.sleep(2.0)  # the simulator's last status writes, as operator.quiet() allows
        after, cpu_after = await cluster.apiserver_requests(), cluster.cpu_seconds()
    return Creation(
        n=n,
        seconds=last - began,
        posting_seconds=posted - began,
        curve=curve(tracker.reached, began),
        requests=apimetrics.requests(apimetrics.diff(before, after)),
        operator_requests={},
        cpu_seconds={k: v - cpu_before[k] for k, v in cpu_after.items()},
    )
