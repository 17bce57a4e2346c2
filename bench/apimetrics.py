"""Prometheus text from the API server and the operator, read into counters that can be diffed."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

Labels = tuple[tuple[str, str], ...]
Samples = dict[Labels, float]

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "APPLY"})
READ_VERBS = frozenset({"GET", "LIST"})
# What the operator creates for a Wukong (issue 5 counts writes "beyond the children").
CHILDREN = frozenset(
    {"virtualmachines", "persistentvolumeclaims", "datavolumes", "network-attachment-definitions"}
)

# Who sends which request while Wukongs are created and run: (resource, subresource, verb).
# The operator is the only writer of Wukong finalizers/status, children and Events; the
# simulator (virt-controller/handler, CSI) of VMIs and of VM, PVC and PV status; the bench
# itself creates Wukongs and patches their spec. Verbs not listed fall to "other".
WRITERS: Mapping[tuple[str, str, str], str] = {
    ("wukongs", "", "POST"): "bench",
    ("wukongs", "", "PATCH"): "operator",  # finalizer; the bench's spec patches are subtracted
    ("wukongs", "status", "PATCH"): "operator",
    ("virtualmachines", "", "POST"): "operator",
    ("persistentvolumeclaims", "", "POST"): "operator",
    ("network-attachment-definitions", "", "POST"): "operator",
    ("datavolumes", "", "POST"): "operator",
    ("events", "", "POST"): "operator",
    ("events", "", "PATCH"): "operator",
    # virt-controller's finalizer; the operator patches a VM only when its spec changes.
    ("virtualmachines", "", "PATCH"): "simulator",
}


def parse(text: str, metric: str) -> Samples:
    """Every sample of one metric (counter or gauge), keyed by its sorted labels."""
    samples: Samples = {}
    for line in text.splitlines():
        if not line.startswith(metric):
            continue
        match = _SAMPLE.match(line)
        if match is None or match["name"] != metric:
            continue
        labels = tuple(sorted(_LABEL.findall(match["labels"] or "")))
        samples[labels] = samples.get(labels, 0.0) + float(match["value"])
    return samples


def diff(before: Samples, after: Samples) -> Samples:
    """after - before, per label set (a series new in `after` counts from zero)."""
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}


@dataclass(frozen=True)
class Request:
    """One series of apiserver_request_total: what was asked of which resource."""

    verb: str
    resource: str
    subresource: str
    code: str

    @classmethod
    def of(cls, labels: Labels) -> Request:
        """From a sample's labels."""
        got = dict(labels)
        return cls(
            got.get("verb", ""), got.get("resource", ""), got.get("subresource", ""),
            got.get("code", ""),
        )  # fmt: skip


def requests(samples: Samples) -> Counter[Request]:
    """apiserver_request_total samples as counts per request kind; non-resource URLs dropped
    (the bench's own scrapes of /metrics are GETs of a non-resource URL)."""
    counts: Counter[Request] = Counter()
    for labels, value in samples.items():
        req = Request.of(labels)
        if req.resource:
            counts[req] += round(value)
    return counts


def by_verb(counts: Counter[Request], resources: Iterable[str] | None = None) -> dict[str, int]:
    """Totals per verb, optionally only for some resources."""
    wanted = set(resources) if resources is not None else None
    totals: Counter[str] = Counter()
    for req, n in counts.items():
        if wanted is None or req.resource in wanted:
            totals[req.verb] += n
    return dict(sorted(totals.items()))


def table(counts: Counter[Request], per: float = 1.0) -> list[dict[str, object]]:
    """Rows (resource, subresource, verb, count, per-unit, writer), largest first; no WATCH."""
    merged: Counter[tuple[str, str, str]] = Counter()
    for req, n in counts.items():
        if req.verb != "WATCH":  # watches restarting on their timeout: counted in by_verb
            merged[(req.resource, req.subresource, req.verb)] += n
    rows: list[dict[str, object]] = []
    for (resource, sub, verb), n in merged.most_common():
        writer = WRITERS.get((resource, sub, verb))
        if writer is None:
            writer = "any (reads)" if verb in READ_VERBS | {"WATCH"} else "simulator/other"
        rows.append(
            {
                "resource": resource,
                "subresource": sub,
                "verb": verb,
                "count": n,
                "per_wukong": round(n / per, 3),
                "writer": writer,
            }
        )
    return rows


def operator_verbs(samples: Samples) -> dict[str, int]:
    """wukong_kube_api_requests_total summed per verb (every status code)."""
    totals: Counter[str] = Counter()
    for labels, value in samples.items():
        totals[dict(labels).get("verb", "")] += round(value)
    return dict(sorted(totals.items()))
