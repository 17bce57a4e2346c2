"""results.json and results.png from one run's numbers; targets are checked, not asserted."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: CI and the nox session have none
import matplotlib.pyplot as plt

TARGETS = {
    "running_1000_seconds": 20.0,
    "ratio_to_floor": 1.5,
    "lifecycle_p99_idle_ms": 150.0,
    "writes_per_create": "3 + disks + networks = 5, beyond the children themselves",
    "steady_state_get_list": 0,
    "rss_idle_mib": 100.0,
}


def verdicts(results: dict[str, Any]) -> dict[str, Any]:
    """Each target with the measured value and whether it is met."""
    out: dict[str, Any] = {}
    create = results.get("create", {})
    biggest = create.get(str(max(int(k) for k in create))) if create else None
    if biggest:
        seconds, ratio = biggest["operator"]["seconds"], biggest.get("ratio_to_floor")
        out["running_seconds"] = {"n": biggest["operator"]["n"], "value": seconds, "target": 20.0}
        out["running_seconds"]["met"] = seconds <= 20.0
        if ratio is not None:
            out["ratio_to_floor"] = {"value": ratio, "target": 1.5, "met": ratio <= 1.5}
        writes = biggest["operator"].get("operator_writes_beyond_children_per_wukong")
        if writes is not None:
            out["writes_per_create"] = {"value": writes, "target": 5, "met": writes <= 5}
            out["writes_per_create"]["with_children"] = biggest["operator"].get(
                "operator_writes_per_wukong"
            )
    idle = results.get("latency", {}).get("idle", {}).get("to_call_ms", {})
    if "p99" in idle:
        out["lifecycle_p99_idle_ms"] = {"value": idle["p99"], "target": 150.0}
        out["lifecycle_p99_idle_ms"]["met"] = idle["p99"] <= 150.0
    steady = results.get("steady_state")
    if steady:
        reads = sum(steady["operator_get_list"].values())
        out["steady_state_get_list"] = {"value": reads, "target": 0, "met": reads == 0}
    rss = results.get("operator_process", {})
    if rss:
        first = rss[min(rss, key=int)]["rss_idle_mib"]
        out["rss_idle_mib"] = {"value": first, "target": 100.0, "met": first <= 100.0}
    return out


def write_json(results: dict[str, Any], target: Path) -> None:
    """Pretty, key-sorted JSON (it is committed: diffs between runs should read well), with
    lists of numbers on one line so a curve point takes one line, not four."""
    text = json.dumps(results, indent=2, sort_keys=True)
    text = re.sub(r"\[\s+([-+.\deE,\s]+?)\s+\]", lambda m: f"[{' '.join(m[1].split())}]", text)
    target.write_text(text + "\n")


def plot(results: dict[str, Any], series: dict[str, Any], target: Path) -> None:
    """Four panels: Running over time, latency CDFs, operator RSS/CPU, requests per Wukong."""
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    _running(axes[0][0], results)
    _latency(axes[0][1], series.get("latency", {}))
    _usage(axes[1][0], series.get("usage", {}))
    _requests(axes[1][1], results)
    fig.suptitle("Wukong benchmark: local control plane, KubeVirt simulator at zero delays")
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)


def _running(ax: Any, results: dict[str, Any]) -> None:
    for size, run in sorted(results.get("create", {}).items(), key=lambda kv: int(kv[0])):
        for who, style in (("operator", "-"), ("floor", "--")):
            if who in run:
                xs, ys = zip(*run[who]["curve"], strict=True) if run[who]["curve"] else ((), ())
                ax.plot(xs, ys, style, label=f"{who} N={size} ({run[who]['seconds']:.1f} s)")
    ax.axvline(20, color="grey", lw=0.8, ls=":", label="target 20 s")
    ax.set(title="Running over time", xlabel="seconds since the first create", ylabel="Running")
    ax.legend(fontsize=8)


def _latency(ax: Any, samples: dict[str, list[float]]) -> None:
    for label, values in samples.items():
        if values:
            xs = sorted(v * 1000 for v in values)
            ys = [(i + 1) / len(xs) for i in range(len(xs))]
            ax.step(xs, ys, where="post", label=f"{label} (n={len(xs)})")
    ax.axvline(150, color="grey", lw=0.8, ls=":", label="target p99 150 ms")
    ax.set(title="lifecycleAction -> KubeVirt call", xlabel="ms", ylabel="fraction", xscale="log")
    ax.legend(fontsize=8)


def _usage(ax: Any, usage: dict[str, list[tuple[float, float, float]]]) -> None:
    cpu_ax = ax.twinx()
    for size, rows in sorted(usage.items(), key=lambda kv: int(kv[0])):
        if rows:
            t0 = rows[0][0]
            ax.plot([r[0] - t0 for r in rows], [r[1] for r in rows], label=f"RSS N={size}")
            cpu_ax.plot(
                [r[0] - t0 for r in rows], [r[2] for r in rows], ls="--", label=f"CPU s N={size}"
            )
    ax.set(title="operator process", xlabel="seconds since ready", ylabel="RSS MiB")
    cpu_ax.set_ylabel("CPU seconds (dashed)")
    ax.legend(fontsize=8, loc="upper left")
    cpu_ax.legend(fontsize=8, loc="lower right")


def _requests(ax: Any, results: dict[str, Any]) -> None:
    create = results.get("create", {})
    if not create:
        return
    run = create[str(max(int(k) for k in create))]

    def rows(side: dict[str, Any] | None) -> dict[str, float]:
        table = (side or {}).get("apiserver_requests") or []
        return {
            f"{'/'.join(filter(None, (r['resource'], r['subresource'])))} {r['verb']}": float(
                r["per_wukong"]
            )
            for r in table
            if r["verb"] not in ("WATCH", "LIST", "GET")
        }

    op, floor = rows(run["operator"]), rows(run.get("floor"))
    keys = sorted(set(op) | set(floor), key=lambda k: op.get(k, 0) + floor.get(k, 0))[-16:]
    ys = range(len(keys))
    ax.barh([y + 0.2 for y in ys], [op.get(k, 0) for k in keys], 0.4, label="operator run")
    ax.barh([y - 0.2 for y in ys], [floor.get(k, 0) for k in keys], 0.4, label="floor run")
    ax.set_yticks(list(ys), keys, fontsize=7)
    n = run["operator"]["n"]
    ax.set(title=f"writes per VM (apiserver_request_total), N={n}", xlabel="requests per VM")
    ax.legend(fontsize=8)
