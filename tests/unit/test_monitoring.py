"""manifests/prometheus/: every alert and dashboard expression names only metric families
and labels that /metrics exposes (a promtool-free check: a PromQL rule that names a metric
nobody exports never fires, and nothing else would say so)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from wukong.runtime.metrics import DOCUMENTED, Metrics

BUNDLE = Path(__file__).resolve().parents[2] / "manifests" / "prometheus"
# Series Prometheus makes itself, and labels every scraped target gets.
PROMETHEUS_SERIES = {"up": {"job", "instance", "namespace", "pod", "service", "endpoint"}}
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "endpoint", "container"}
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "inf", "nan",
}  # fmt: skip
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def exposed() -> dict[str, set[str]]:
    """Family name -> label names, from the text a live registry serves."""
    families: dict[str, set[str]] = {}
    text = Metrics().render().decode()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            families.setdefault(line.split()[2], set())
    for name, (_kind, labels, _help) in DOCUMENTED.items():
        families.setdefault(name, set()).update(labels)
    return families


def rule_expressions() -> list[tuple[str, str]]:
    doc = yaml.safe_load((BUNDLE / "prometheus-rule.yaml").read_text())
    return [
        (rule["alert"], rule["expr"]) for group in doc["spec"]["groups"] for rule in group["rules"]
    ]


def dashboard_expressions() -> list[tuple[str, str]]:
    board = json.loads((BUNDLE / "grafana-dashboard.json").read_text())
    found = [(p["title"], t["expr"]) for p in board["panels"] for t in p["targets"]]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = re.sub(r"label_values\(([^,]+),[^)]*\)", r"\1", variable["query"])
            found.append((variable["name"], query))
    return found


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names matched on it) for every series selector in `expr`."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\$\w+", "1m", expr)  # Grafana variables ($__rate_interval, $namespace)
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"(?<![\w.])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?", "0", expr)  # numbers
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", expr)  # grouping labels
    found = []
    for match in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^}]*\})?\s*(\()?", expr):
        name, matchers, call = match.groups()
        if call or name.lower() in KEYWORDS or re.fullmatch(r"\d", name[0]):
            continue
        labels = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matchers or ""))
        found.append((name, labels))
    return found


def grouping_labels(expr: str) -> set[str]:
    return {
        label.strip()
        for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr)
        for label in group.split(",")
        if label.strip()
    }


def family_of(name: str, families: dict[str, set[str]]) -> str | None:
    if name in families:
        return name
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name.removesuffix(suffix) in families:
            return name.removesuffix(suffix)
    return None


EXPRESSIONS = rule_expressions() + dashboard_expressions()


@pytest.mark.parametrize(("where", "expr"), EXPRESSIONS, ids=[w for w, _ in EXPRESSIONS])
def test_every_expression_names_exposed_metrics_and_labels(where: str, expr: str) -> None:
    families = exposed()
    used = selectors(expr)
    assert used, f"{where}: no metric in {expr!r}"
    known_labels: set[str] = set(TARGET_LABELS)
    for name, labels in used:
        if name in PROMETHEUS_SERIES:
            assert labels <= PROMETHEUS_SERIES[name], (where, name, labels)
            continue
        family = family_of(name, families)
        assert family is not None, f"{where}: {name} is not exposed by /metrics"
        allowed = families[family] | TARGET_LABELS | ({"le"} if name.endswith("_bucket") else set())
        assert labels <= allowed, f"{where}: {name} has no label {labels - allowed}"
        known_labels |= allowed
    assert grouping_labels(expr) <= known_labels, (where, grouping_labels(expr) - known_labels)


def test_the_rules_cover_what_the_issue_asks_for() -> None:
    alerts = {name for name, _ in rule_expressions()}
    assert {
        "WukongOperatorDown",
        "WukongReconcileErrorsRising",
        "WukongStalled",
        "WukongLeaderFlapping",
        "WukongLifecycleRequestsFailing",
    } <= alerts


# Served by every replica from its own cache: summed over replicas they count each Wukong
# once per replica (a standby doubles them, a rollout's surge pod triples them).
PER_REPLICA_COPIES = ("wukong_phase", "wukong_stalled")


@pytest.mark.parametrize(("where", "expr"), EXPRESSIONS, ids=[w for w, _ in EXPRESSIONS])
def test_no_expression_sums_a_gauge_every_replica_serves(where: str, expr: str) -> None:
    for name in PER_REPLICA_COPIES:
        summed = rf"\b(sum|count)\s*(by\s*\([^)]*\)\s*)?\(\s*{name}\b"
        assert not re.search(summed, expr), f"{where}: take max over replicas of {name}"


def test_the_rules_alert_on_wukongs_that_fail_or_are_in_error() -> None:
    rules = dict(rule_expressions())
    assert "wukong_reconcile_failing" in rules["WukongReconcileFailing"]
    assert 'phase="Error"' in rules["WukongInError"]


def test_every_documented_family_is_on_the_dashboard() -> None:
    shown = {
        family_of(name, exposed())
        for _, expr in dashboard_expressions()
        for name, _labels in selectors(expr)
    }
    assert set(DOCUMENTED) <= shown, set(DOCUMENTED) - shown


def test_the_service_monitor_scrapes_the_metrics_port_with_a_token() -> None:
    monitor: dict[str, Any] = yaml.safe_load((BUNDLE / "service-monitor.yaml").read_text())
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert endpoint["bearerTokenFile"].endswith("/serviceaccount/token")
    assert endpoint["honorLabels"] is True
