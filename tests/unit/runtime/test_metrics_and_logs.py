"""Metrics read live values at scrape time; log records carry the Wukong they are about."""

from __future__ import annotations

import json
import logging

from wukong.runtime.logs import (
    JsonFormatter,
    TextFormatter,
    WukongKeyFilter,
    configure_logging,
    wukong_key,
)
from wukong.runtime.metrics import Metrics


def test_queue_depth_and_phases_are_read_when_scraped() -> None:
    metrics = Metrics()
    depth = [0]
    phases = {("a", "Running"): 2, ("b", "Stopped"): 1}
    metrics.track_queue_depth(lambda: depth[0])
    metrics.track_phases(lambda: phases)
    depth[0] = 7
    phases["a", "Running"] = 5
    sample = metrics.registry.get_sample_value
    assert sample("wukong_workqueue_depth") == 7
    assert sample("wukong_phase", {"namespace": "a", "phase": "Running"}) == 5
    assert sample("wukong_phase", {"namespace": "b", "phase": "Stopped"}) == 1


def test_each_operator_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.watch_restarts_total.labels(resource="pvcs").inc()
    assert (
        second.registry.get_sample_value("wukong_watch_restarts_total", {"resource": "pvcs"})
        is None
    )


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


def test_json_log_lines_outside_a_pass_have_no_key() -> None:
    entry = json.loads(JsonFormatter().format(record("starting")))
    assert "wukong" not in entry


def test_text_log_lines_show_the_key_in_brackets() -> None:
    token = wukong_key.set("team-a/web-1")
    try:
        line = TextFormatter().format(record("stopping VM"))
    finally:
        wukong_key.reset(token)
    assert "wukong.reconcile [team-a/web-1]: stopping VM" in line
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
