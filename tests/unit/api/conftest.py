"""Fixtures shared by the API tests."""

from __future__ import annotations

import copy

import pytest

from tests.unit.api.examples import WEB_1, Raw


@pytest.fixture
def web_1() -> Raw:
    """The example Wukong of SPEC §1, fresh for each test."""
    return copy.deepcopy(WEB_1)
