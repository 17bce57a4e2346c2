"""Reading raw API objects (api/objects.py)."""

from __future__ import annotations

from typing import Any

import pytest

from wukong.api.objects import being_deleted


@pytest.mark.parametrize(
    ("obj", "going"),
    [
        (None, False),
        ({}, False),
        ({"metadata": None}, False),
        ({"metadata": {"name": "web-1"}}, False),
        ({"metadata": {"deletionTimestamp": None}}, False),
        ({"metadata": {"deletionTimestamp": "2026-12-03T00:00:00Z"}}, True),
    ],
)
def test_an_object_is_being_deleted_once_it_has_a_deletion_timestamp(
    obj: dict[str, Any] | None, going: bool
) -> None:
    assert being_deleted(obj) is going
