"""The e2e user scenarios (tests/e2e/test_scenarios.py), run here against the local control
plane, the simulator and the operator: written once, they run on every `nox -s tests`, and on
kind + KubeVirt with `nox -s e2e`. Only the user's patience differs."""

from __future__ import annotations

import pytest
from kubernetes_asyncio.client import ApiClient

from tests.e2e.scenarios import User
from tests.e2e.test_scenarios import (
    test_a_disk_added_to_a_running_wukong_is_hot_plugged,
    test_a_new_wukong_runs_a_virtual_machine,
    test_a_stopped_wukong_stays_stopped_until_started,
    test_deleting_a_wukong_keeps_the_disk_the_user_listed,
)
from tests.integration.scenario import operator, sim
from wukong.testing.operator import InProcessOperator

__all__ = [
    "operator",  # fixtures
    "sim",
    "test_a_disk_added_to_a_running_wukong_is_hot_plugged",
    "test_a_new_wukong_runs_a_virtual_machine",
    "test_a_stopped_wukong_stays_stopped_until_started",
    "test_deleting_a_wukong_keeps_the_disk_the_user_listed",
]


@pytest.fixture
def user(kube: ApiClient, namespace: str, operator: InProcessOperator) -> User:
    """A user of this test's namespace, with the operator (as its ServiceAccount) running."""
    return User(kube, namespace, patience=60, poll=0.1)
