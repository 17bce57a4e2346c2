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

from wukong.runtime.metrics import DOCUMENTED, RESULTS, Metrics

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "manifests" / "prometheus"
TROUBLESHOOTING = ROOT / "docs" / "troubleshooting.md"
# The repository docs/install.md's kustomize URL names; main, not a tag (prometheus-rule.yaml).
RUNBOOKS = "https://github.com/novasphere/wukong/blob/main/docs/troubleshooting.md#"
# Series Prometheus makes itself (and kube-state-metrics', which WukongOperatorDown reads for
# an install whose pods are gone), and labels every scraped target gets.
PROMETHEUS_SERIES = {
    "up": {"job", "instance", "namespace", "pod", "service", "endpoint"},
    "kube_deployment_status_replicas_available": {"namespace", "deployment"},
    "kube_service_info": {"namespace", "service"},
}
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


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((BUNDLE / "prometheus-rule.yaml").read_text())
    return [rule for group in doc["spec"]["groups"] for rule in group["rules"]]


def rule_expressions() -> list[tuple[str, str]]:
    return [(rule["alert"], rule["expr"]) for rule in alert_rules()]


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
PER_REPLICA_COPIES = ("wukong_phase", "wukong_stalled", "wukong_unhealthy")


@pytest.mark.parametrize(("where", "expr"), EXPRESSIONS, ids=[w for w, _ in EXPRESSIONS])
def test_no_expression_sums_a_gauge_every_replica_serves(where: str, expr: str) -> None:
    for name in PER_REPLICA_COPIES:
        summed = rf"\b(sum|count)\s*(by\s*\([^)]*\)\s*)?\(\s*{name}\b"
        assert not re.search(summed, expr), f"{where}: take max over replicas of {name}"


def test_the_rules_alert_on_wukongs_that_fail_or_are_in_error() -> None:
    rules = dict(rule_expressions())
    assert "wukong_reconcile_failing" in rules["WukongReconcileFailing"]
    assert 'phase="Error"' in rules["WukongInError"]


def reconcile_results(expr: str) -> list[set[str]]:
    """The results each `wukong_reconcile_total{result=...}` selector in `expr` matches."""
    found = []
    for matcher in re.findall(r"wukong_reconcile_total\s*\{([^}]*)\}", expr):
        for op, value in re.findall(r'result\s*(=~|=)\s*"([^"]*)"', matcher):
            found.append(set(value.split("|")) if op == "=~" else {value})
    return found


@pytest.mark.parametrize(("where", "expr"), EXPRESSIONS, ids=[w for w, _ in EXPRESSIONS])
def test_every_reconcile_result_an_expression_matches_is_counted(where: str, expr: str) -> None:
    for results in reconcile_results(expr):
        assert results <= set(RESULTS), f"{where}: no result {results - set(RESULTS)}"


def test_the_errors_alert_reads_errors_not_the_conflicts_a_next_pass_settles() -> None:
    """A 409 pass is counted as result="conflict" (audit leftovers, session 50): the alert's
    numerator selects "error" alone, and its denominator every pass."""
    expr = dict(rule_expressions())["WukongReconcileErrorsRising"]
    assert reconcile_results(expr) == [{"error"}, {"error"}]
    assert "conflict" in RESULTS
    assert "rate(wukong_reconcile_total[15m])" in expr  # all passes, conflicts too


def test_a_vm_in_trouble_pages_whatever_its_phase() -> None:
    """A crash loop hops Error -> Starting every try and a guest paused on a disk error stays
    Running: neither WukongInError nor WukongStalled holds for its `for:`, but VMHealthy is
    False throughout (monitoring audit, session 48, finding 1)."""
    rules = {rule["alert"]: rule for rule in alert_rules()}
    rule = rules["WukongVMUnhealthy"]
    assert re.fullmatch(r"max by \(namespace\) \(wukong_unhealthy\) > 0", rule["expr"].strip())
    assert "wukong_unhealthy" in exposed()
    assert "VMHealthy" in DOCUMENTED["wukong_unhealthy"][2]


def test_a_wukong_crd_older_than_the_operator_pages_per_install() -> None:
    """Monitoring saw only a pod not ready while lifecycle requests ended "not made" (audit,
    session 48). Only the leader writes status, so only its series can be 1: max, by the
    operator's namespace (the family has no namespace label of its own)."""
    rules = {rule["alert"]: rule for rule in alert_rules()}
    rule = rules["WukongCRDOutdated"]
    assert rule["expr"].strip() == "max by (namespace) (wukong_crd_outdated) > 0"
    assert "wukong_crd_outdated" in exposed() and not DOCUMENTED["wukong_crd_outdated"][1]
    assert "manifests/crd/wukong.yaml" in rule["annotations"]["description"]


def test_the_lifecycle_alert_counts_failures_among_enough_requests_carried_out() -> None:
    """Refused answers a request that cannot be carried out (SPEC: an answer, a user's
    mistake): it counts neither as a failure nor in the total; and one failed request out of
    one is no page (audit s42, finding 6)."""
    expr = dict(rule_expressions())["WukongLifecycleRequestsFailing"]
    matchers = re.findall(r"wukong_lifecycle_requests_total(\{[^}]*\})?", expr)
    assert set(matchers) == {'{outcome="Failed"}', '{outcome!="Refused"}'}, matchers
    volume = re.search(r'\{outcome!="Refused"\}\[30m\]\)\)\s*>\s*([\d.]+)\s*$', expr)
    assert volume is not None and 4 < float(volume.group(1)) < 5, "at least 5 requests"


_AGGREGATION = re.compile(r"\b(sum|max|min|avg|count)\s*(?:by\s*\(([^)]*)\))?\s*\(")


@pytest.mark.parametrize(
    ("alert", "expr"), rule_expressions(), ids=[a for a, _ in rule_expressions()]
)
def test_every_alert_is_per_install_or_per_wukong_namespace(alert: str, expr: str) -> None:
    """Installs of manifests/namespaced live side by side, one per namespace: an aggregation
    over every target hides one install's trouble behind another's health (monitoring audit,
    session 48, finding 2). Each one keeps `namespace` (the operator's, or the Wukongs' for
    the families that carry it); absent() alone, the catch for no target at all, is not."""
    for match in _AGGREGATION.finditer(expr):
        by = {label.strip() for label in (match.group(2) or "").split(",")}
        assert "namespace" in by, f"{alert}: {match.group(0)!r} drops the install's namespace"


def test_operator_down_pages_for_one_install_among_healthy_ones() -> None:
    """absent(up == 1) is quiet while any install's replica answers (audit s48, finding 2)."""
    clauses = [c.strip() for c in dict(rule_expressions())["WukongOperatorDown"].split("\nor ")]
    assert clauses[0] == 'absent(up{job="wukong-metrics"} == 1)', "no target at all"
    assert 'max by (namespace) (up{job="wukong-metrics"}) == 0' in clauses[1], "none answers"
    deployment = yaml.safe_load((BUNDLE.parent / "deploy" / "deployment.yaml").read_text())
    name = deployment["metadata"]["name"]
    gone = f'kube_deployment_status_replicas_available{{deployment="{name}"}}'
    assert f"max by (namespace) ({gone}) == 0" in clauses[2], "no pod available"


def test_operator_down_reads_only_the_deployments_of_an_install() -> None:
    """kube-state-metrics serves every Deployment of the cluster: one named `wukong` in a
    tenant's namespace, scaled to 0, paged WukongOperatorDown (audit, session 48). The clause
    keeps the namespaces that hold the Service whose targets every other rule reads (the
    job's), as the Deployment and that Service go together in manifests/deploy."""
    clauses = [c.strip() for c in dict(rule_expressions())["WukongOperatorDown"].split("\nor ")]
    service = yaml.safe_load((BUNDLE.parent / "deploy" / "service.yaml").read_text())
    name = service["metadata"]["name"]
    scoped = rf'\)\s*==\s*0\s+and\s+on\s*\(namespace\)\s*kube_service_info\{{service="{name}"\}}'
    assert re.search(scoped, clauses[2]), clauses[2]
    assert re.search(r'\bjob="' + re.escape(name) + '"', clauses[1]), "the same Service's job"


@pytest.mark.parametrize("rule", alert_rules(), ids=[r["alert"] for r in alert_rules()])
def test_no_alert_sends_its_reader_to_the_default_installs_namespace(
    rule: dict[str, Any],
) -> None:
    """An install of manifests/namespaced runs in its own operatorNamespace: WukongNoLeader
    named the Lease `wukong-system/wukong-operator` whatever the install (audit, session 48).
    An alert's words take the namespace from its labels; `wukong-system` only as what
    `{{ else }}` says when there is none (absent())."""
    for field, text in rule.get("annotations", {}).items():
        text = text.replace("{{ else }}wukong-system{{ end }}", "")
        assert "wukong-system" not in text, (rule["alert"], field)
    if rule["alert"] == "WukongNoLeader":
        assert "{{ $labels.namespace }}/wukong-operator" in rule["annotations"]["description"]


def test_no_leader_is_not_raised_by_a_scrape_that_fails() -> None:
    """A leader whose scrape fails leaves only the standby's 0 (audit s42, finding 7)."""
    expr = dict(rule_expressions())["WukongNoLeader"]
    assert re.search(r'\bunless\s+on\s*\(namespace\)\s*up\{job="[^"]+"\}\s*==\s*0\s*$', expr)


def test_every_job_matcher_names_the_job_prometheus_gives_the_operators_targets() -> None:
    """Without `jobLabel`, the Prometheus Operator names the job after the Service."""
    monitor = yaml.safe_load((BUNDLE / "service-monitor.yaml").read_text())
    service = yaml.safe_load((BUNDLE.parent / "deploy" / "service.yaml").read_text())
    assert "jobLabel" not in monitor["spec"]
    jobs = {job for _, expr in EXPRESSIONS for job in re.findall(r'\bjob\s*=\s*"([^"]*)"', expr)}
    assert jobs == {service["metadata"]["name"]}


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


# -- thresholds on counts --------------------------------------------------------------------

# Boundaries of an operand: parentheses, set operators and comparisons.
_BOUNDARY = re.compile(r"\(|\)|\b(?:and|or|unless)\b|==|!=|>=|<=|>|<")
_COMPARED_WITH_NUMBER = re.compile(
    r"(==|!=|>=|<=|>|<)\s*(?:bool\s+)?(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?![\w.])"
)


def _left_operand(expr: str, at: int) -> str:
    """The operand left of the comparison at `at`: back to the previous boundary at its depth
    of parentheses, or to the parenthesis that opens its group."""
    depth = 0
    for token in reversed([m for m in _BOUNDARY.finditer(expr) if m.end() <= at]):
        if token.group() == ")":
            depth += 1
        elif token.group() == "(":
            if depth == 0:
                return expr[token.end() : at]
            depth -= 1
        elif depth == 0:
            return expr[token.end() : at]
    return expr[:at]


def counts_against_whole_numbers(expr: str) -> list[str]:
    """Comparisons of a delta() or increase() of a count (not a ratio) with a whole number
    other than 0. Both extrapolate to the window's edges, so a count of 3 reads 3.025 and
    `> 3` fires on 3 (audit s42, finding 3): compare with a number between two whole ones
    (`> 4.5`: at least 5), or use a function that does not extrapolate."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "{}", expr)  # label matchers (their != is no comparison)
    found = []
    for match in _COMPARED_WITH_NUMBER.finditer(expr):
        threshold = float(match.group(2))
        if threshold == 0 or threshold != int(threshold):
            continue
        operand = _left_operand(expr, match.start())
        if re.search(r"\b(?:delta|increase)\s*\(", operand) and "/" not in operand:
            found.append(f"{operand.strip()} {match.group(1)} {match.group(2)}")
    return found


@pytest.mark.parametrize(
    ("expr", "flagged"),
    [
        pytest.param("max(delta(wukong_lease_transitions[1h])) > 3", True, id="old-flapping"),
        pytest.param('sum(increase(x{r="e"}[15m])) > 5', True, id="increase-gt-5"),
        pytest.param("a > 0.1 and sum by (b) (increase(x[5m])) >= 5", True, id="second-clause"),
        pytest.param("max(increase(x[1h]) > bool 3)", True, id="inside-parentheses"),
        pytest.param("sum(increase(x[15m])) > 4.5", False, id="between-whole-numbers"),
        pytest.param('increase(x{o!="R"}[30m]) > 0', False, id="any-at-all"),
        pytest.param("sum(increase(a[5m])) / clamp_min(sum(increase(b[5m])), 1) > 1", False),
        pytest.param(
            "max(max_over_time(x[1h]) - min_over_time(x[1h])) > 3", False, id="no-extrapolation"
        ),
        pytest.param("max(x) > 3 and increase(y[5m]) > 0.5", False, id="other-operand"),
    ],
)
def test_the_threshold_check_finds_extrapolated_counts(expr: str, flagged: bool) -> None:
    assert bool(counts_against_whole_numbers(expr)) is flagged


RULES = rule_expressions()


@pytest.mark.parametrize(("alert", "expr"), RULES, ids=[a for a, _ in RULES])
def test_no_rule_compares_an_extrapolated_count_with_a_whole_number(alert: str, expr: str) -> None:
    assert not counts_against_whole_numbers(expr), alert


@pytest.mark.parametrize("rule", alert_rules(), ids=[r["alert"] for r in alert_rules()])
def test_every_alert_waits_before_firing(rule: dict[str, Any]) -> None:
    """A `for:` keeps one evaluation's blip (a scrape that lagged, a replica that restarted)
    from paging."""
    assert re.fullmatch(r"[1-9]\d*[smh]", str(rule.get("for", ""))), rule["alert"]


# -- runbooks ----------------------------------------------------------------------------------


def github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading: its text as shown, lower case, without
    punctuation, spaces made hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)  # code spans show their text
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links show theirs
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every heading's anchor (a repeated one gets -1, -2, ... as on GitHub), not counting
    lines in fenced code blocks."""
    found: set[str] = set()
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if fenced or heading is None:
            continue
        anchor = base = github_anchor(heading.group(1))
        repeat = 0
        while anchor in found:
            repeat += 1
            anchor = f"{base}-{repeat}"
        found.add(anchor)
    return found


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("WukongOperatorDown", "wukongoperatordown"),
        (
            'The operator pods never become Ready: "caches not synced"',
            "the-operator-pods-never-become-ready-caches-not-synced",
        ),
        ("`wukong logs` shows [nothing](x.md)", "wukong-logs-shows-nothing"),
    ],
)
def test_anchors_are_computed_as_github_does(heading: str, anchor: str) -> None:
    assert github_anchor(heading) == anchor
    assert anchors(f"# {heading}\n## {heading}\n") == {anchor, f"{anchor}-1"}


@pytest.mark.parametrize("rule", alert_rules(), ids=[r["alert"] for r in alert_rules()])
def test_every_alert_links_to_its_runbook_in_the_troubleshooting_guide(
    rule: dict[str, Any],
) -> None:
    url = str(rule.get("annotations", {}).get("runbook_url", ""))
    assert url.startswith(RUNBOOKS), f"{rule['alert']}: runbook_url {url!r}"
    assert url.removeprefix(RUNBOOKS) in anchors(TROUBLESHOOTING.read_text()), url
    assert url.removeprefix(RUNBOOKS) == rule["alert"].lower(), "a section named after it"


def test_links_within_the_troubleshooting_guide_reach_a_heading() -> None:
    text = TROUBLESHOOTING.read_text()
    linked = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert linked, "the alert sections link to each other"
    assert linked <= anchors(text), linked - anchors(text)
