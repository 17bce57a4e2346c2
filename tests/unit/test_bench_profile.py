"""bench.profile: reading py-spy's collapsed stacks into where the CPU went."""

from __future__ import annotations

from bench.profile import frame_name, stacks, summarize

_MAIN = "<module> (/x/wukong/__main__.py:3)"
_PASS = "_pass (/x/wukong/act/reconciler.py:{})"
_DECIDE = "decide (/x/wukong/reconcile/decide.py:{})"
RAW = [
    f"{_MAIN};{_PASS.format(159)};{_DECIDE.format(9)} 6",
    f"{_MAIN};{_PASS.format(160)};{_DECIDE.format(12)};covers (/x/wukong/reconcile/vm.py:215) 3",
    f"{_MAIN};loads (/usr/lib/python3.11/json/__init__.py:346) 1",
]


def test_frames_are_named_by_function_and_package_file_without_line() -> None:
    assert frame_name("decide (/x/wukong/reconcile/decide.py:9)") == (
        "decide (wukong/reconcile/decide.py)"
    )
    assert frame_name("loads (/usr/lib/python3.11/json/__init__.py:346)") == (
        "loads (json/__init__.py)"
    )
    assert frame_name("get (/v/lib/python3.11/site-packages/aiohttp/client.py:1)") == (
        "get (aiohttp/client.py)"
    )


def test_inclusive_and_self_count_each_sample_once_per_function() -> None:
    total, inclusive, own = summarize(stacks(RAW))
    assert total == 10
    assert inclusive["decide (wukong/reconcile/decide.py)"] == 9  # two lines of one function
    assert own["decide (wukong/reconcile/decide.py)"] == 6
    assert own["covers (wukong/reconcile/vm.py)"] == 3


def test_under_a_function_its_callees_and_its_own_samples() -> None:
    total, found, callees = summarize(stacks(RAW), under="decide")
    assert total == 10
    assert found == {"decide (wukong/reconcile/decide.py)": 9}
    assert callees == {"<self>": 6, "covers (wukong/reconcile/vm.py)": 3}
