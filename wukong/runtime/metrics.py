"""The operator's Prometheus metrics, in a registry of its own (never the global one).

Every family is listed in `DOCUMENTED` (and docs/reference.md): the alert rules and the
dashboard in manifests/prometheus/ may only use these names, which a unit test checks.
`wukong_reconcile_errors_total` and `wukong_workqueue_retries_total` are gone: each was
`wukong_reconcile_total{result="error"}` under a second name (the retries are now
`result=~"error|conflict"`).
"""

from __future__ import annotations

import itertools
import platform
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Final, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from wukong import __version__
from wukong.api.spec import Action
from wukong.runtime.heap import PAUSE_BUCKETS, PAUSES

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

PhaseCounts = Callable[[], Mapping[tuple[str, str], int]]
"""(namespace, phase) -> how many Wukongs."""
NamespaceCounts = Callable[[], Mapping[str, int]]
"""namespace -> how many Wukongs."""

RESULTS: Final = ("success", "requeue", "conflict", "error")
"""wukong_reconcile_total's results: "conflict" a pass that raised a 409 Conflict (a write
race lost, which the next pass settles), "error" one that raised anything else."""
OUTCOMES: Final = ("Done", "Refused", "Failed")
"""wukong_lifecycle_requests_total's outcomes (lifecycleState.state values that end one)."""
QUEUE_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
"""Seconds; past 60 s a backlog is an incident whatever its exact size."""


class QueueView(Protocol):
    """What the metrics read from the work queue at scrape time."""

    def __len__(self) -> int: ...

    @property
    def delayed(self) -> int: ...

    @property
    def in_flight(self) -> int: ...

    def failing(self) -> Iterable[str]: ...


# name -> (type, labels, help): what /metrics exposes, the contract of the monitoring bundle.
DOCUMENTED: Final[dict[str, tuple[str, tuple[str, ...], str]]] = {
    "wukong_build_info": ("gauge", ("version", "python"), "Always 1; the running build"),
    "wukong_phase": ("gauge", ("namespace", "phase"), "Wukongs per namespace and phase"),
    "wukong_stalled": (
        "gauge",
        ("namespace",),
        "Wukongs whose Stalled condition is True (a phase or deletion step overran)",
    ),
    "wukong_unhealthy": (
        "gauge",
        ("namespace",),
        "Wukongs whose VMHealthy condition is False (KubeVirt reports the VM in trouble: a "
        "crash loop, a guest paused on a disk error, no node to run it)",
    ),
    "wukong_leader": ("gauge", (), "1 while this replica holds the leader Lease, else 0"),
    "wukong_leader_changes_total": ("counter", (), "Times this replica took the Lease"),
    "wukong_lease_transitions": (
        "gauge",
        (),
        "The leader Lease's leaseTransitions, as this replica last saw it (changes of holder "
        "over every replica's life, so none is missed between scrapes)",
    ),
    "wukong_reconcile_total": (
        "counter",
        ("result",),
        "Reconcile passes by result: success, requeue, conflict (a 409 write race, retried), error",
    ),
    "wukong_reconcile_duration_seconds": ("histogram", (), "Time one reconcile pass took"),
    "wukong_reconcile_failing": (
        "gauge",
        ("namespace",),
        "Wukongs whose last reconcile pass raised (retried with backoff); leader only",
    ),
    "wukong_workqueue_depth": ("gauge", (), "Keys ready in the work queue; leader only"),
    "wukong_workqueue_delayed": (
        "gauge",
        (),
        "Keys waiting in the work queue for a backoff or a requeue delay; leader only",
    ),
    "wukong_workqueue_in_flight": ("gauge", (), "Keys being reconciled now; leader only"),
    "wukong_workqueue_queue_duration_seconds": (
        "histogram",
        (),
        "Seconds a key waited in the work queue, ready, before a worker took it (a backoff or "
        "requeue delay not counted); leader only",
    ),
    "wukong_cache_synced": (
        "gauge",
        ("resource", "selector"),
        "1 once this replica's watch cache of the resource has listed, 0 while it waits (a "
        "resource the API server does not serve: KubeVirt, CDI or Multus missing); resource "
        "is the plural as on wukong_kube_api_requests_total, selector the field selector of "
        "a resource watched more than once (events), else empty",
    ),
    "wukong_watch_restarts_total": (
        "counter",
        ("resource", "selector"),
        "Watches re-established after an error or a 410 Gone (resource and selector as on "
        "wukong_cache_synced)",
    ),
    "wukong_kube_api_requests_total": (
        "counter",
        ("verb", "resource", "code"),
        "Requests to the Kubernetes API by verb (upper case, as the API server counts them), "
        "resource and HTTP status code (0: no answer)",
    ),
    "wukong_lifecycle_requests_total": (
        "counter",
        ("action", "outcome"),
        "Lifecycle requests answered by the leader: outcome Done, Refused or Failed",
    ),
    "wukong_gc_pause_seconds": (
        "histogram",
        ("generation",),
        "How long each of Python's garbage collections held the operator's process (its event "
        "loop: every pass and watch waits meanwhile), by generation 0-2; after a full one "
        "(2) what survived is frozen, out of later collections (runtime/heap.py)",
    ),
    "wukong_crd_outdated": (
        "gauge",
        (),
        "1 while this replica's status writes show the Wukong CRD in the cluster older than "
        "the operator (the API server dropped fields they wrote; lifecycle calls whose record "
        "it dropped are not made), else 0; leader only",
    ),
}


class _PhaseCollector(Collector):
    """Reads how many Wukongs are in each phase, how many are Stalled and how many have a VM
    in trouble, at scrape time."""

    def __init__(self) -> None:
        self.source: PhaseCounts | None = None
        self.stalled: NamespaceCounts | None = None
        self.unhealthy: NamespaceCounts | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield wukong_phase{namespace, phase}, wukong_stalled{namespace} and
        wukong_unhealthy{namespace}."""
        _, labels, text = DOCUMENTED["wukong_phase"]
        family = GaugeMetricFamily("wukong_phase", text, labels=list(labels))
        if self.source is not None:
            for (namespace, phase), count in sorted(self.source().items()):
                family.add_metric([namespace, phase], count)
        yield family
        for name, counts in (
            ("wukong_stalled", self.stalled),
            ("wukong_unhealthy", self.unhealthy),
        ):
            _, labels, text = DOCUMENTED[name]
            per_namespace = GaugeMetricFamily(name, text, labels=list(labels))
            for namespace, count in sorted((counts or dict)().items()):
                per_namespace.add_metric([namespace], count)
            yield per_namespace


class _QueueCollector(Collector):
    """Reads the work queue at scrape time, on the leader only. A standby's informers fill
    its queue (so it starts with every key when it takes over), but nothing takes from it:
    its depth would show a backlog that is not there, and `sum` over replicas would count it.
    """

    def __init__(self) -> None:
        self.queue: QueueView | None = None
        self.leading: Callable[[], bool] = lambda: False

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the queue's gauges and wukong_reconcile_failing{namespace}."""
        queue = self.queue if self.queue is not None and self.leading() else None
        for name, value in (
            ("wukong_workqueue_depth", len(queue) if queue is not None else 0),
            ("wukong_workqueue_delayed", queue.delayed if queue is not None else 0),
            ("wukong_workqueue_in_flight", queue.in_flight if queue is not None else 0),
        ):
            yield GaugeMetricFamily(name, _help(name), value=value)
        _, labels, text = DOCUMENTED["wukong_reconcile_failing"]
        failing = GaugeMetricFamily("wukong_reconcile_failing", text, labels=list(labels))
        counts: dict[str, int] = {}
        for key in queue.failing() if queue is not None else ():
            namespace = key.partition("/")[0]
            counts[namespace] = counts.get(namespace, 0) + 1
        for namespace, count in sorted(counts.items()):
            failing.add_metric([namespace], count)
        yield failing


Watched = tuple[str, str]
"""A watch's labels: (resource, selector), its plural and its field selector or ""."""


class _CacheCollector(Collector):
    """Reads whether each watch cache has synced, at scrape time."""

    def __init__(self) -> None:
        self.synced: Callable[[], Mapping[Watched, bool]] = dict

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield wukong_cache_synced{resource, selector}."""
        _, labels, text = DOCUMENTED["wukong_cache_synced"]
        family = GaugeMetricFamily("wukong_cache_synced", text, labels=list(labels))
        for (resource, selector), synced in sorted(self.synced().items()):
            family.add_metric([resource, selector], 1 if synced else 0)
        yield family


class _LeaseCollector(Collector):
    """Reads the Lease's transitions at scrape time; nothing before the Lease was seen."""

    def __init__(self) -> None:
        self.transitions: Callable[[], int | None] = lambda: None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield wukong_lease_transitions."""
        family = GaugeMetricFamily("wukong_lease_transitions", _help("wukong_lease_transitions"))
        seen = self.transitions()
        if seen is not None:
            family.add_metric([], seen)
        yield family


class _PauseCollector(Collector):
    """Reads runtime/heap.py's count of collection pauses at scrape time: 0 in a process
    whose collector was not tuned (an operator inside a test process)."""

    def collect(self) -> Iterator[HistogramMetricFamily]:
        """Yield wukong_gc_pause_seconds{generation}."""
        _, labels, text = DOCUMENTED["wukong_gc_pause_seconds"]
        family = HistogramMetricFamily("wukong_gc_pause_seconds", text, labels=list(labels))
        for generation, (counts, total) in enumerate(zip(PAUSES.counts, PAUSES.sums, strict=True)):
            cumulative = list(itertools.accumulate(counts))
            buckets = [(repr(le), n) for le, n in zip(PAUSE_BUCKETS, cumulative, strict=False)]
            family.add_metric(
                [str(generation)], [*buckets, ("+Inf", cumulative[-1])], sum_value=total
            )
        yield family


def _help(name: str) -> str:
    return DOCUMENTED[name][2]


class Metrics:
    """Counters, gauges and histograms the runtime, reconciler and adapters update."""

    def __init__(self) -> None:
        # Text format 0.0.4 has no created timestamps: a `_created` series per counter would
        # only double the series count (a process-wide switch of prometheus_client).
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)  # process_resident_memory_bytes, _cpu_seconds_total, ...
        PlatformCollector(registry=r)
        self.build_info = Gauge(
            "wukong_build_info", _help("wukong_build_info"), ["version", "python"], registry=r
        )
        self.build_info.labels(version=__version__, python=platform.python_version()).set(1)
        self.leader = Gauge("wukong_leader", _help("wukong_leader"), registry=r)
        self.leader_changes_total = Counter(
            "wukong_leader_changes", _help("wukong_leader_changes_total"), registry=r
        )
        self.reconcile_total = Counter(
            "wukong_reconcile_total", _help("wukong_reconcile_total"), ["result"], registry=r
        )
        self.reconcile_duration_seconds = Histogram(
            "wukong_reconcile_duration_seconds",
            _help("wukong_reconcile_duration_seconds"),
            registry=r,
        )
        self.queue_duration_seconds = Histogram(
            "wukong_workqueue_queue_duration_seconds",
            _help("wukong_workqueue_queue_duration_seconds"),
            buckets=QUEUE_BUCKETS,
            registry=r,
        )
        self.watch_restarts_total = Counter(
            "wukong_watch_restarts_total",
            _help("wukong_watch_restarts_total"),
            ["resource", "selector"],
            registry=r,
        )
        self.kube_api_requests_total = Counter(
            "wukong_kube_api_requests_total",
            _help("wukong_kube_api_requests_total"),
            ["verb", "resource", "code"],
            registry=r,
        )
        self.lifecycle_requests_total = Counter(
            "wukong_lifecycle_requests_total",
            _help("wukong_lifecycle_requests_total"),
            ["action", "outcome"],
            registry=r,
        )
        # Every series a rule or panel reads exists from the start at 0: increase() and
        # rate() cannot see a series' first sample, so the first error or the first Failed
        # answer after a start or a failover would otherwise count for nothing.
        for result in RESULTS:
            self.reconcile_total.labels(result=result)
        for action in Action:
            for outcome in OUTCOMES:
                self.lifecycle_requests_total.labels(action=action.value, outcome=outcome)
        # No label for the dropped fields: the log line, the CRDOutdated Event and /readyz
        # name them; a series per set of fields would only come and go with each upgrade.
        self.crd_outdated = Gauge("wukong_crd_outdated", _help("wukong_crd_outdated"), registry=r)
        self._phases = _PhaseCollector()
        self.registry.register(self._phases)
        self._queue = _QueueCollector()
        self.registry.register(self._queue)
        self._lease = _LeaseCollector()
        self.registry.register(self._lease)
        self._caches = _CacheCollector()
        self.registry.register(self._caches)
        self.registry.register(_PauseCollector())

    def observe_reconcile(self, result: str, seconds: float) -> None:
        """Count one pass and its duration."""
        self.reconcile_total.labels(result=result).inc()
        self.reconcile_duration_seconds.observe(max(seconds, 0.0))

    def observe_queue_wait(self, seconds: float) -> None:
        """A key waited this long in the work queue before a worker took it."""
        self.queue_duration_seconds.observe(max(seconds, 0.0))

    def count_watch_restart(self, resource: str, selector: str = "") -> None:
        """A watch of `resource` (its plural), with this field selector, was re-established."""
        self.watch_restarts_total.labels(resource=resource, selector=selector).inc()

    def track_queue(self, queue: QueueView, leading: Callable[[], bool]) -> None:
        """Read the work queue at scrape time while `leading()`; 0 and none failing else."""
        self._queue.queue = queue
        self._queue.leading = leading

    def track_caches(self, synced: Callable[[], Mapping[Watched, bool]]) -> None:
        """Read (resource, selector) -> whether its watch cache has synced, at scrape time."""
        self._caches.synced = synced

    def track_lease(self, transitions: Callable[[], int | None]) -> None:
        """Read the leader Lease's leaseTransitions at scrape time."""
        self._lease.transitions = transitions

    def track_crd(self, outdated: Callable[[], bool]) -> None:
        """Read at scrape time whether this replica's status writes showed the Wukong CRD
        older than the operator."""
        self.crd_outdated.set_function(lambda: 1.0 if outdated() else 0.0)

    def track_phases(self, counts: PhaseCounts) -> None:
        """Read (namespace, phase) counts at scrape time (computed from the Wukong cache)."""
        self._phases.source = counts

    def track_stalled(self, counts: NamespaceCounts) -> None:
        """Read Stalled Wukongs per namespace at scrape time."""
        self._phases.stalled = counts

    def track_unhealthy(self, counts: NamespaceCounts) -> None:
        """Read Wukongs whose VM is in trouble (VMHealthy False) per namespace at scrape
        time."""
        self._phases.unhealthy = counts

    def count_api_request(self, verb: str, code: int | str, resource: str = "") -> None:
        """Count one request to the Kubernetes API (`verb` in any case: stored upper case)."""
        self.kube_api_requests_total.labels(
            verb=verb.upper(), resource=resource, code=str(code)
        ).inc()

    def set_leader(self, leading: bool) -> None:
        """This replica took (True) or left (False) the leader Lease."""
        if leading:
            self.leader_changes_total.inc()
        self.leader.set(1 if leading else 0)

    def count_lifecycle(self, action: str, outcome: str) -> None:
        """One lifecycle request answered."""
        self.lifecycle_requests_total.labels(action=action, outcome=outcome).inc()

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return bytes(generate_latest(self.registry))
