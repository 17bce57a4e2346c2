"""The operator's Prometheus metrics, in a registry of its own (never the global one)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

PhaseCounts = Callable[[], Mapping[str, int]]


class _PhaseCollector(Collector):
    """Reads how many Wukongs are in each phase at scrape time, from a callback."""

    def __init__(self) -> None:
        self.source: PhaseCounts | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield wukong_phase{phase} from the current callback, if any."""
        family = GaugeMetricFamily("wukong_phase", "Wukong objects per phase", labels=["phase"])
        if self.source is not None:
            for phase, count in sorted(self.source().items()):
                family.add_metric([phase], count)
        yield family


class Metrics:
    """Counters, gauges and histograms the runtime, reconciler and adapters update."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.reconcile_total = Counter(
            "wukong_reconcile_total",
            "Reconcile passes by result (success, requeue, error)",
            ["result"],
            registry=self.registry,
        )
        self.reconcile_errors_total = Counter(
            "wukong_reconcile_errors_total",
            "Reconcile passes that raised",
            registry=self.registry,
        )
        self.reconcile_duration_seconds = Histogram(
            "wukong_reconcile_duration_seconds",
            "Time one reconcile pass took",
            registry=self.registry,
        )
        self.workqueue_depth = Gauge(
            "wukong_workqueue_depth",
            "Keys ready in the work queue",
            registry=self.registry,
        )
        self.watch_restarts_total = Counter(
            "wukong_watch_restarts_total",
            "Watches re-established after an error or a 410 Gone",
            ["resource"],
            registry=self.registry,
        )
        self.kube_api_requests_total = Counter(
            "wukong_kube_api_requests_total",
            "Requests to the Kubernetes API by verb and HTTP status code",
            ["verb", "code"],
            registry=self.registry,
        )
        self._phases = _PhaseCollector()
        self.registry.register(self._phases)

    def observe_reconcile(self, result: str, seconds: float) -> None:
        """Count one pass and its duration."""
        self.reconcile_total.labels(result=result).inc()
        if result == "error":
            self.reconcile_errors_total.inc()
        self.reconcile_duration_seconds.observe(max(seconds, 0.0))

    def track_queue_depth(self, depth: Callable[[], int]) -> None:
        """Read the work queue depth at scrape time (e.g. `lambda: len(queue)`)."""
        self.workqueue_depth.set_function(lambda: float(depth()))

    def track_phases(self, counts: PhaseCounts) -> None:
        """Read phase counts at scrape time (e.g. computed from the Wukong cache)."""
        self._phases.source = counts

    def count_api_request(self, verb: str, code: int | str) -> None:
        """Count one request to the Kubernetes API."""
        self.kube_api_requests_total.labels(verb=verb, code=str(code)).inc()

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return bytes(generate_latest(self.registry))
