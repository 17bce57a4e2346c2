"""Generic controller machinery: watch cache, work queue, workers, probes, metrics, logs."""

from wukong.runtime._watch_protocol import ResourceRef, WatchEvent
from wukong.runtime.cache import Replaced, Store
from wukong.runtime.clock import Clock, FakeClock, MonotonicClock
from wukong.runtime.logs import configure_logging, pass_id, wukong_key, wukong_uid
from wukong.runtime.metrics import Metrics
from wukong.runtime.probes import ProbeServer
from wukong.runtime.queue import QueueShutDown, WorkQueue
from wukong.runtime.watch import Informer, ResourceMissing
from wukong.runtime.worker import Result, run_workers

__all__ = [
    "Clock",
    "FakeClock",
    "Informer",
    "Metrics",
    "MonotonicClock",
    "ProbeServer",
    "QueueShutDown",
    "Replaced",
    "ResourceMissing",
    "ResourceRef",
    "Result",
    "Store",
    "WatchEvent",
    "WorkQueue",
    "configure_logging",
    "pass_id",
    "run_workers",
    "wukong_key",
    "wukong_uid",
]
