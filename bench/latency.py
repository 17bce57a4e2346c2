"""Latency from a `lifecycleAction` write to the KubeVirt call it causes, idle and under load.

Each sample is a `restart` of a Running Wukong: time from just before our PATCH is sent to
the moment the simulator's virt-api received `restart` for that VM (both `time.monotonic()`
in this process). Idle, requests go one at a time: the next waits until the last one is Done
and its VM Running again. Under load, requests rotate over a pool and only wait for their
own Wukong to be Running.

The restarts are the probe, not the load: by default one is sent a second (`interval`). A
restart is ~33 API writes by KubeVirt's parts (the VMI deleted and made again, its pod, VM
and VMI status), ~270 ms of the API server's CPU at 1,000 Wukongs. Sent back to back they
were ~4 a second: ~1 core of API server, twice what the 20 spec changes a second of the load
cost, and each idle sample queued behind the writes the last restart was still causing
(no watch event shows them; waiting 0.3 s / 0.6 s after the last one settled took the idle
p99 from 60 to 50 / 35 ms, the p50 stayed 26 ms). `interval=0` measures that saturated
case, still reported beside (docs/benchmark.md).
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from bench.cluster import WUKONG, Cluster, path
from bench.tracking import Obj, Tracker
from wukong.api import names
from wukong.testing.kubevirt import SubresourceCall

ACTION = "restart"
# Spec changes for the load: "grace" needs a reconcile pass and a status write; "cpu" also
# patches the VM template and raises RestartRequired (several times the API server's work).
LOAD_CHANGES = ("grace", "cpu")
# Open loop at a fixed rate, but bounded: past this many unanswered patches the API server is
# saturated and piling on more would only measure its queue.
MAX_LOAD_IN_FLIGHT = 64
_nonce = itertools.count()


@dataclass
class Latencies:
    """Samples in seconds from just before our PATCH: to our own watch seeing the change (the
    API server's floor), to the operator's first status write answering it, to the call.
    `after_watch`, per sample, is the call's time after our own watch saw the request: the
    part the operator (two passes, its `Accepted` write and the call) adds to the floor;
    `after_accepted`, after our watch saw the `Accepted` record (the call's own trip)."""

    to_call: list[float] = field(default_factory=list)
    to_accepted: list[float] = field(default_factory=list)
    to_watch: list[float] = field(default_factory=list)
    after_watch: list[float] = field(default_factory=list)
    after_accepted: list[float] = field(default_factory=list)
    timeouts: int = 0
    load_rate: float | None = None  # spec changes per second actually sent meanwhile
    load_skipped: int = 0  # changes not sent: too many still unanswered (open loop, bounded)
    load_failed: int = 0  # changes the API server failed or timed out

    def summary(self) -> dict[str, Any]:
        """p50/p90/p99/max in milliseconds."""
        return {
            "n": len(self.to_call),
            "timeouts": self.timeouts,
            "to_call_ms": percentiles(self.to_call),
            "to_accepted_ms": percentiles(self.to_accepted),
            "to_watch_ms": percentiles(self.to_watch),
            "watch_to_call_ms": percentiles(self.after_watch),
            "accepted_to_call_ms": percentiles(self.after_accepted),
            "load_changes_per_second": self.load_rate,
            "load_skipped": self.load_skipped,
            "load_failed": self.load_failed,
        }


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p90, p99, max and mean of seconds, in ms."""
    if len(values) < 2:
        return {}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    ms = {"p50": cuts[49], "p90": cuts[89], "p99": cuts[98], "max": max(values)}
    ms["mean"] = statistics.fmean(values)
    return {k: round(v * 1000, 1) for k, v in ms.items()}


def settled(obj: Obj | None, generation: int) -> bool:
    """Running, and the request of `generation` (if any) is Done."""
    if obj is None:
        return False
    status = obj.get("status") or {}
    life = status.get("lifecycleState") or {}
    if generation and (life.get("generation") or 0) < generation:
        return False
    return status.get("phase") == "Running" and life.get("state") in (None, "Done")


async def wait_call(cluster: Cluster, start: int, vm: str, within: float) -> SubresourceCall:
    """The first `restart` of `vm` the simulator received from index `start` of its calls."""
    deadline = time.monotonic() + within
    while True:
        calls = cluster.sim.calls
        for call in calls[start:]:
            if call.name == vm and call.subresource == ACTION:
                return call
        start = len(calls)
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {ACTION} of {vm} within {within}s")
        await asyncio.sleep(0.002)  # only paces this loop: the sample is the call's own time


class _Probe:
    """Sends restarts and notes, from watch events and the simulator, when each one landed."""

    def __init__(self, cluster: Cluster, tracker: Tracker, within: float) -> None:
        self.cluster, self.tracker, self.within = cluster, tracker, within
        self.result = Latencies()
        self.generations: dict[str, int] = {}
        self.now: dict[str, Any] = {}  # the request in flight: name, generation, milestones
        self.sent = 0.0  # when the last request was sent (monotonic)
        tracker.informer.add_handler(self.on_event)

    def on_event(self, event_type: str, obj: Obj) -> None:
        """Note when our own watch saw the request, and when the operator answered it."""
        now = self.now
        if obj["metadata"]["name"] != now.get("name") or "generation" not in now:
            return
        life = (obj.get("status") or {}).get("lifecycleState") or {}
        if "watch" not in now and obj["metadata"].get("generation", 0) >= now["generation"]:
            now["watch"] = time.monotonic()
        if "accepted" not in now and life.get("generation") == now["generation"]:
            now["accepted"] = time.monotonic()

    async def settled(self, name: str) -> None:
        """Wait until `name` runs and its last request (if any) is Done."""
        gen = self.generations.get(name, 0)
        await self.tracker.until(lambda: settled(self.tracker.get(name), gen), 60)

    async def one(self, name: str, interval: float = 0.0) -> None:
        """One restart of `name`, timed, sent once `name` is settled and at least `interval`
        seconds after the last one was sent."""
        await self.settled(name)
        await asyncio.sleep(max(0.0, self.sent + interval - time.monotonic()))
        self.now.clear()
        self.now["name"] = name
        mark = len(self.cluster.sim.calls)
        body = {"action": ACTION, "requestedAt": f"bench-{next(_nonce)}"}
        ns = self.tracker.ref.namespace or ""
        self.sent = sent = time.monotonic()
        patch = {"spec": {"lifecycleAction": body}}
        cr = await self.cluster.kube.merge_patch(path(WUKONG, ns, name), patch)
        self.generations[name] = self.now["generation"] = int(cr["metadata"]["generation"])
        if (cached := self.tracker.get(name)) is not None:
            self.on_event("MODIFIED", cached)  # the watch may have beaten our PATCH's reply
        try:
            call = await wait_call(self.cluster, mark, names.vm_name(name), self.within)
        except TimeoutError:
            self.result.timeouts += 1
            return
        result = self.result
        result.to_call.append(call.started - sent)
        for key, samples in (("accepted", result.to_accepted), ("watch", result.to_watch)):
            if key in self.now:
                samples.append(float(self.now[key]) - sent)
        for key, samples in (("watch", result.after_watch), ("accepted", result.after_accepted)):
            if key in self.now:
                samples.append(call.started - float(self.now[key]))


async def measure(
    cluster: Cluster,
    tracker: Tracker,
    pool: list[str],
    actions: int,
    *,
    budget: float,
    interval: float = 1.0,
    serial: bool = True,
    within: float = 30,
) -> Latencies:
    """`actions` restarts over `pool`, one per `interval` seconds at most (0: back to back),
    stopping after `budget` seconds (a saturated machine must not stretch the run past its
    time box). `serial`: each request waits until the previous restart is over; else only
    until its own Wukong is Running again."""
    probe = _Probe(cluster, tracker, within)
    try:
        async with asyncio.timeout(budget):
            for i in range(actions):
                name = pool[i % len(pool)]
                await probe.one(name, interval)
                if serial:
                    await probe.settled(name)
    except TimeoutError:
        pass  # out of time: report the samples taken (their count is in the summary)
    return probe.result


def load_patch(change: str, flip: bool) -> dict[str, Any]:
    """One spec change of the load; `flip` alternates it so every patch changes something."""
    if change == "cpu":
        return {"spec": {"cpu": 2 if flip else 1}}
    return {"spec": {"deleteOptions": {"gracePeriodSeconds": 61 if flip else 60}}}


async def under_load(
    cluster: Cluster,
    tracker: Tracker,
    pool: list[str],
    others: list[str],
    actions: int,
    rate: float,
    *,
    budget: float,
    interval: float = 1.0,
    change: str = "grace",
) -> Latencies:
    """`measure` while `rate` spec changes per second hit the `others`, round robin."""
    ns = tracker.ref.namespace or ""
    counts = {"sent": 0, "skipped": 0, "failed": 0}
    pending: set[asyncio.Task[Any]] = set()

    def finished(task: asyncio.Task[Any]) -> None:
        pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            counts["failed"] += 1

    async def load() -> None:
        began = time.monotonic()
        for k in itertools.count():
            await asyncio.sleep(max(0.0, began + k / rate - time.monotonic()))
            if len(pending) >= MAX_LOAD_IN_FLIGHT:
                counts["skipped"] += 1
                continue
            name = others[k % len(others)]
            patch = load_patch(change, (k // len(others)) % 2 == 0)
            task = asyncio.create_task(cluster.kube.merge_patch(path(WUKONG, ns, name), patch))
            pending.add(task)
            task.add_done_callback(finished)
            counts["sent"] += 1

    began = time.monotonic()
    loader = asyncio.create_task(load())
    try:
        result = await measure(
            cluster, tracker, pool, actions, budget=budget, interval=interval, serial=False
        )
    finally:
        # Patches still unanswered are the API server's backlog, not ours to wait for.
        for task in (loader, *pending):
            task.cancel()
        await asyncio.gather(loader, *pending, return_exceptions=True)
    result.load_rate = round(counts["sent"] / (time.monotonic() - began), 2)
    result.load_skipped, result.load_failed = counts["skipped"], counts["failed"]
    return result
