"""bench.report: the creation ratios against the floors that bracket the operator's run."""

from __future__ import annotations

from typing import Any

from bench.report import ratios, verdicts


def _side(seconds: float, apiserver_ms: float) -> dict[str, Any]:
    return {"seconds": seconds, "cpu_ms_per_wukong_by_process": {"kube-apiserver": apiserver_ms}}


def test_the_operator_is_compared_with_the_mean_of_the_floors_before_and_after() -> None:
    run = {
        "operator": _side(60.0, 78.0),
        "floor": _side(36.0, 47.0),
        "floor_after": _side(44.0, 57.0),
    }
    assert ratios(run) == {
        "ratio_to_floor": 1.5,  # 60 / mean(36, 44)
        "ratio_to_floor_before": 1.67,  # 60 / 36, as runs before the floor after had it
        "apiserver_cpu_ratio_to_floor": 1.5,  # 78 / mean(47, 57)
        "apiserver_cpu_ratio_to_floor_before": 1.66,
    }


def test_a_run_with_one_floor_reads_as_before() -> None:
    run = {"operator": _side(60.0, 78.0), "floor": _side(40.0, 52.0)}
    got = ratios(run)
    assert got["ratio_to_floor"] == got["ratio_to_floor_before"] == 1.5
    assert got["apiserver_cpu_ratio_to_floor"] == 1.5


def test_verdicts_judge_the_bracketed_ratio_and_show_the_one_floor_ratio_beside_it() -> None:
    run = {
        "operator": _side(56.0, 70.0),
        "floor": _side(36.0, 47.0),
        "floor_after": _side(44.0, 53.0),
    }
    got = verdicts({"create": {"1000": run}})
    assert got["ratio_to_floor_1000"] == {
        "value": 1.4,
        "target": 1.4,
        "met": True,
        "seconds": 56.0,
        "floor_before_alone": 1.56,
    }
    assert got["apiserver_cpu_ratio_to_floor_1000"]["value"] == 1.4
    assert got["apiserver_cpu_ratio_to_floor_1000"]["floor_before_alone"] == 1.49


def test_without_a_floor_there_is_no_ratio() -> None:
    got = verdicts({"create": {"5000": {"operator": _side(900.0, 80.0)}}})
    assert "ratio_to_floor_5000" not in got
    assert "apiserver_cpu_ratio_to_floor_5000" not in got
