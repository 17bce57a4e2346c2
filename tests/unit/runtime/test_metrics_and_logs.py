"""Metrics read live values at scrape time; log records carry the Wukong they are about."""

from __future__ import annotations

import json
import logging

from wukong.runtime.logs import (
    JsonFormatter,
    TextFormatter,
    WukongKeyFilter,
    configure_logging,
    pass_id,
    wukong_key,
    wukong_uid,
)
from wukong.runtime.metrics import Metrics


class FakeQueue:
    def __init__(self) -> None:
        self.ready, self.delayed, self.in_flight = 0, 0, 0
        self.failed: list[str] = []

    def __len__(self) -> int:
        return self.ready

    def failing(self) -> list[str]:
        return self.failed


def test_queue_depth_and_phases_are_read_when_scraped() -> None:
    metrics = Metrics()
    queue = FakeQueue()
    phases = {("a", "Running"): 2, ("b", "Stopped"): 1}
    metrics.track_queue(queue, lambda: True)
    metrics.track_phases(lambda: phases)
    queue.ready, queue.delayed, queue.in_flight = 7, 3, 2
    queue.failed = ["a/web-1", "a/web-2", "b/db"]
    phases["a", "Running"] = 5
    sample = metrics.registry.get_sample_value
    assert sample("wukong_workqueue_depth") == 7
    assert sample("wukong_workqueue_delayed") == 3
    assert sample("wukong_workqueue_in_flight") == 2
    assert sample("wukong_reconcile_failing", {"namespace": "a"}) == 2
    assert sample("wukong_reconcile_failing", {"namespace": "b"}) == 1
    assert sample("wukong_phase", {"namespace": "a", "phase": "Running"}) == 5
    assert sample("wukong_phase", {"namespace": "b", "phase": "Stopped"}) == 1


def test_a_standby_reports_no_queue_it_does_not_drain() -> None:
    """Its informers fill a standby's queue, but nothing takes from it: `sum` over replicas
    would show a backlog of every Wukong on an idle cluster (review finding, session 22)."""
    metrics = Metrics()
    queue = FakeQueue()
    queue.ready, queue.delayed, queue.failed = 40, 2, ["a/web-1"]
    leading = [False]
    metrics.track_queue(queue, lambda: leading[0])
    sample = metrics.registry.get_sample_value
    assert sample("wukong_workqueue_depth") == 0
    assert sample("wukong_workqueue_delayed") == 0
    assert sample("wukong_reconcile_failing", {"namespace": "a"}) is None
    leading[0] = True
    assert sample("wukong_workqueue_depth") == 40
    assert sample("wukong_reconcile_failing", {"namespace": "a"}) == 1


def test_caches_not_synced_are_0() -> None:
    metrics = Metrics()
    metrics.track_caches(lambda: {("wukongs", ""): True, ("events", "reason=FailedMount"): False})
    sample = metrics.registry.get_sample_value
    assert sample("wukong_cache_synced", {"resource": "wukongs", "selector": ""}) == 1
    labels = {"resource": "events", "selector": "reason=FailedMount"}
    assert sample("wukong_cache_synced", labels) == 0


def test_every_series_a_rule_reads_exists_at_zero_from_the_start() -> None:
    """increase() cannot see a series' first sample: the first Failed answer or the first
    error after a start would count for nothing if its series began at 1."""
    sample = Metrics().registry.get_sample_value
    for result in ("success", "requeue", "conflict", "error"):
        assert sample("wukong_reconcile_total", {"result": result}) == 0
    for action in ("start", "stop", "restart", "suspend", "resume"):
        for outcome in ("Done", "Refused", "Failed"):
            labels = {"action": action, "outcome": outcome}
            assert sample("wukong_lifecycle_requests_total", labels) == 0
    assert sample("wukong_crd_outdated") == 0


def test_process_metrics_are_served_and_no_created_series() -> None:
    text = Metrics().render().decode()
    assert "process_resident_memory_bytes" in text
    assert "process_start_time_seconds" in text
    assert "_created" not in text


def test_each_operator_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.count_watch_restart("persistentvolumeclaims")
    labels = {"resource": "persistentvolumeclaims", "selector": ""}
    assert first.registry.get_sample_value("wukong_watch_restarts_total", labels) == 1
    assert second.registry.get_sample_value("wukong_watch_restarts_total", labels) is None


def record(message: str, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("wukong.reconcile", logging.INFO, __file__, 1, message, None, None)
    for name, value in extra.items():
        setattr(rec, name, value)
    WukongKeyFilter().filter(rec)
    return rec


def test_json_log_lines_carry_the_wukong_key_and_extras() -> None:
    token = wukong_key.set("team-a/web-1")
    try:
        line = JsonFormatter().format(record("disk attached", disk="data"))
    finally:
        wukong_key.reset(token)
    entry = json.loads(line)
    assert entry["wukong"] == "team-a/web-1"
    assert entry["message"] == "disk attached"
    assert entry["level"] == "info"
    assert entry["disk"] == "data"


def test_json_log_lines_of_a_pass_carry_the_wukongs_uid_and_the_pass_id() -> None:
    """New keys only: a line's other keys are as they were (audit, session 48)."""
    tokens = (wukong_key.set("team-a/web-1"), wukong_uid.set("u-1"), pass_id.set("0a1b2c3d"))
    try:
        line = JsonFormatter().format(record("disk attached", disk="data"))
    finally:
        pass_id.reset(tokens[2])
        wukong_uid.reset(tokens[1])
        wukong_key.reset(tokens[0])
    entry = json.loads(line)
    assert entry["wukong"] == "team-a/web-1" and entry["disk"] == "data"
    assert entry["uid"] == "u-1" and entry["pass"] == "0a1b2c3d"
    assert set(entry) == {"time", "level", "logger", "message", "wukong", "uid", "pass", "disk"}


def test_json_log_lines_outside_a_pass_have_no_key() -> None:
    entry = json.loads(JsonFormatter().format(record("starting")))
    assert "wukong" not in entry and "uid" not in entry and "pass" not in entry


def test_text_log_lines_show_the_key_in_brackets() -> None:
    token = wukong_key.set("team-a/web-1")
    try:
        line = TextFormatter().format(record("stopping VM"))
    finally:
        wukong_key.reset(token)
    assert "wukong.reconcile [team-a/web-1]: stopping VM" in line
    tokens = (wukong_key.set("team-a/web-1"), pass_id.set("0a1b2c3d"))
    try:
        line = TextFormatter().format(record("stopping VM"))
    finally:
        pass_id.reset(tokens[1])
        wukong_key.reset(tokens[0])
    assert "wukong.reconcile [team-a/web-1 pass=0a1b2c3d]: stopping VM" in line
    assert "[" not in TextFormatter().format(record("idle")).split("wukong.reconcile")[1]


def test_configure_logging_writes_json_lines_to_stderr(capsys: object) -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    try:
        configure_logging("json", "DEBUG")
        token = wukong_key.set("team-a/web-1")
        try:
            logging.getLogger("wukong.test").debug("hello")
        finally:
            wukong_key.reset(token)
        err = capsys.readouterr().err  # type: ignore[attr-defined]
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
    entry = json.loads(err.strip().splitlines()[-1])
    assert entry["message"] == "hello" and entry["wukong"] == "team-a/web-1"
