"""results.json and results.png from one run's numbers; targets are checked, not asserted."""

from __future__ import annotations

import json
import re
from pathlib import Path
from statistics import fmean
from typing import Any

TARGETS = {  # issue 14
    "ratio_to_floor": 1.4,
    "apiserver_cpu_ratio_to_floor": 1.4,
    "status_writes_per_create": 2,
    "steady_state_get_list": 0,
    "lifecycle_p99_idle_ms": 50.0,
    "lifecycle_p99_load_ms": 200.0,
    "rss_idle_mib": 70.0,
    "rss_1000_mib": 110.0,
}


def _verdict(value: float | None, target: float, **extra: Any) -> dict[str, Any]:
    return {"value": value, "target": target, "met": value is not None and value <= target, **extra}


def _status_writes(run: dict[str, Any]) -> float | None:
    for row in run.get("apiserver_requests") or []:
        if (row["resource"], row["subresource"], row["verb"]) == ("wukongs", "status", "PATCH"):
            return float(row["per_wukong"])
    return None


def _floors(run: dict[str, Any]) -> list[dict[str, Any]]:
    return [run[k] for k in ("floor", "floor_after") if run.get(k)]


def _apiserver_ms(side: dict[str, Any]) -> float:
    """The API server's CPU per VM of one run, 0.0 when it was not measured."""
    return float(side.get("cpu_ms_per_wukong_by_process", {}).get("kube-apiserver") or 0.0)


def ratios(run: dict[str, Any]) -> dict[str, float]:
    """The operator's creation time and API-server CPU over the floors' mean (the floor
    before it and, when the run has one, the floor after it); `_before` keys keep the ratio
    to the floor before alone, the only floor runs before session 36 had."""
    operator, floors = run["operator"], _floors(run)
    seconds = operator["seconds"]
    out = {
        "ratio_to_floor": round(seconds / fmean(f["seconds"] for f in floors), 2),
        "ratio_to_floor_before": round(seconds / floors[0]["seconds"], 2),
    }
    ours, theirs = _apiserver_ms(operator), [_apiserver_ms(f) for f in floors]
    if ours and all(theirs):
        out["apiserver_cpu_ratio_to_floor"] = round(ours / fmean(theirs), 2)
        out["apiserver_cpu_ratio_to_floor_before"] = round(ours / theirs[0], 2)
    return out


def verdicts(results: dict[str, Any]) -> dict[str, Any]:
    """Each target of issue 14 with the measured value and whether it is met."""
    out: dict[str, Any] = {}
    create = results.get("create", {})
    for size, run in sorted(create.items(), key=lambda kv: int(kv[0])):
        operator = run["operator"]
        # Recomputed, so results written before the floor after existed read the same way.
        got = ratios(run) if run.get("floor") else {}
        if "ratio_to_floor" in got:
            out[f"ratio_to_floor_{size}"] = _verdict(
                got["ratio_to_floor"],
                TARGETS["ratio_to_floor"],
                seconds=operator["seconds"],
                floor_before_alone=got["ratio_to_floor_before"],
            )
        if "apiserver_cpu_ratio_to_floor" in got:
            out[f"apiserver_cpu_ratio_to_floor_{size}"] = _verdict(
                got["apiserver_cpu_ratio_to_floor"],
                TARGETS["apiserver_cpu_ratio_to_floor"],
                floor_before_alone=got["apiserver_cpu_ratio_to_floor_before"],
            )
        out[f"status_writes_per_create_{size}"] = _verdict(
            _status_writes(operator), TARGETS["status_writes_per_create"]
        )
    latency = results.get("latency", {})
    for phase in ("idle", "load"):
        to_call = latency.get(phase, {}).get("to_call_ms", {})
        if "p99" in to_call:
            out[f"lifecycle_p99_{phase}_ms"] = _verdict(
                to_call["p99"], TARGETS[f"lifecycle_p99_{phase}_ms"]
            )
    steady = results.get("steady_state")
    if steady:
        reads = sum(steady["operator_get_list"].values())
        out["steady_state_get_list"] = _verdict(reads, 0)
    rss = results.get("operator_process", {})
    if rss:
        out["rss_idle_mib"] = _verdict(rss[min(rss, key=int)]["rss_idle_mib"], 70.0)
        if "1000" in rss:
            out["rss_1000_mib"] = _verdict(rss["1000"]["rss_loaded_mib"], 110.0)
    return out


def write_json(results: dict[str, Any], target: Path) -> None:
    """Pretty, key-sorted JSON (it is committed: diffs between runs should read well), with
    lists of numbers on one line so a curve point takes one line, not four."""
    text = json.dumps(results, indent=2, sort_keys=True)
    text = re.sub(r"\[\s+([-+.\deE,\s]+?)\s+\]", lambda m: f"[{' '.join(m[1].split())}]", text)
    target.write_text(text + "\n")


def plot(results: dict[str, Any], series: dict[str, Any], target: Path) -> None:
    """Four panels: Running over time, latency CDFs, operator RSS/CPU, requests per Wukong."""
    # Imported here: the verdicts above are read by unit tests, whose venv has no matplotlib.
    import matplotlib

    matplotlib.use("Agg")  # no display: CI and the nox session have none
    import matplotlib.pyplot as plt

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
        for who, style in (("operator", "-"), ("floor", "--"), ("floor_after", ":")):
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
    for at, phase in (
        (TARGETS["lifecycle_p99_idle_ms"], "idle"),
        (TARGETS["lifecycle_p99_load_ms"], "load"),
    ):
        ax.axvline(at, color="grey", lw=0.8, ls=":", label=f"target p99 {phase} {at:.0f} ms")
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
