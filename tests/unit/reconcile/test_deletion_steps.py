"""The deletion steps, as a table: which step a teardown is at, from what is left."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.unit.reconcile.test_deletion import deleting, world_with_vm
from tests.unit.reconcile.world import plan_deletion
from wukong.reconcile.deletion import STEP_TABLE, STEPS
from wukong.reconcile.observed import Observed


def _stopped() -> Observed:
    world = world_with_vm()
    assert world.vmi is not None
    return replace(world, vmi={**world.vmi, "status": {"phase": "Succeeded"}})


def _no_vm() -> Observed:
    return replace(world_with_vm(), vm=None, vmi=None)


def _only_nads() -> Observed:
    return replace(_no_vm(), claims={}, data_volumes={})


def _nothing() -> Observed:
    return replace(_only_nads(), nads={})


CASES: list[Any] = [
    pytest.param({"preserveDisksList": ["data"]}, world_with_vm, "Retain", id="kept-disks-first"),
    pytest.param({}, world_with_vm, "StopVM", id="a-running-vmi-is-stopped"),
    pytest.param({}, _stopped, "DeleteVM", id="a-stopped-vm-is-deleted"),
    pytest.param({}, _no_vm, "DeleteDisks", id="then-the-disks"),
    pytest.param({}, _only_nads, "DeleteNetworks", id="then-the-owned-nads"),
    pytest.param({}, _nothing, "Finalize", id="nothing-left"),
]


@pytest.mark.parametrize(("options", "world", "step"), CASES)
def test_the_first_pending_step_is_the_current_one(
    options: dict[str, Any], world: Any, step: str
) -> None:
    cr = deleting(deleteOptions=options) if options else deleting()
    plan = plan_deletion(cr, {}, world())
    assert plan.deletion["step"] == step
    assert plan.finalize is (step == "Finalize")
    assert plan.status["phase"] == "Deleting"


def test_the_table_is_the_documented_order() -> None:
    assert (*(row.name for row in STEP_TABLE), "Finalize") == STEPS
