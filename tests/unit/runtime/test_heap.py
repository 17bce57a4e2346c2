"""The operator's collector thresholds (runtime/heap.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from wukong.runtime.heap import YOUNG, tune_collector


@pytest.fixture
def thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


@pytest.mark.usefixtures("thresholds")
def test_the_young_generation_outlives_a_pass_and_full_collections_stay_rare() -> None:
    tune_collector()
    young, middle, old = gc.get_threshold()
    assert young == YOUNG and young > 700  # CPython's default collected mid-pass
    assert (middle, old) == (20, 10)
    assert gc.isenabled()  # reference cycles are still collected
