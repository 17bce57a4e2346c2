"""A VirtualMachineRestore of the Wukong's VM made outside Wukong (`kubectl create`, a backup
tool) holds the disks and the VM as the Wukong's own restores do (session 48, found by the
deletion helper): KubeVirt's InPlace restore deletes each claim and makes it again from the
snapshot, and the disk planner made an empty one in between, which KubeVirt then took as
restored (it skips a claim that exists)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.unit.reconcile.test_lifecycle import running_world
from tests.unit.reconcile.world import NOW, NS, decide, wukong
from wukong.api import kinds
from wukong.reconcile.actions import CreateChild

HAND_MADE: dict[str, Any] = {
    "metadata": {"name": "by-hand", "namespace": NS, "uid": "by-hand-uid"},
    "spec": {
        "target": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "web-1-vm"},
        "virtualMachineSnapshotName": "nightly",
    },
    "status": {"complete": False},
}


def test_a_claim_kubevirt_deleted_for_a_restore_made_by_hand_is_not_made_again() -> None:
    """Before the fix the pass made web-1-data again (empty), and said nothing of the
    restore."""
    world = running_world()
    claims = {n: c for n, c in world.claims.items() if n != "web-1-data"}
    during = replace(world, vmi=None, claims=claims, outside_restores=(HAND_MADE,))
    plan = decide(wukong(), {"phase": "Running"}, during)
    assert [a for a in plan.actions if isinstance(a, CreateChild)] == []
    restoring = {c["type"]: c for c in plan.status["conditions"]}["Restoring"]
    assert (restoring["status"], restoring["reason"]) == ("True", "OutsideWukong")
    assert "VirtualMachineRestore by-hand, made outside Wukong" in restoring["message"]
    # Once it ended (not in `outside_restores` any more), the disk planner takes over again.
    after = replace(during, outside_restores=())
    plan = decide(wukong(), plan.status, after)
    assert [a for a in plan.actions if isinstance(a, CreateChild)]
    assert "Restoring" not in {c["type"] for c in plan.status["conditions"]}


class Store:
    """Watch caches holding only `restores` (all of the namespace)."""

    def __init__(self, restores: list[Any]) -> None:
        self.restores = restores

    def get(self, kind: str, namespace: str, name: str) -> Any:
        return None

    def by_label(self, kind: str, label: str, value: str) -> list[Any]:
        labelled = [r for r in self.restores if r["metadata"].get("labels")]
        return labelled if kind == kinds.RESTORE.cache else []

    def list(self, kind: str, namespace: str | None = None, selector: Any = None) -> list[Any]:
        return self.restores if kind == kinds.RESTORE.cache else []


def _restore(name: str, **changes: Any) -> dict[str, Any]:
    restore: dict[str, Any] = {
        "metadata": {"name": name, "namespace": NS, "uid": f"{name}-uid"},
        "spec": dict(HAND_MADE["spec"]),
        "status": {"complete": False},
    }
    for part, value in changes.items():
        restore[part] = {**restore[part], **value}
    return restore


@pytest.mark.parametrize(
    ("restore", "holds"),
    [
        pytest.param(_restore("running"), True, id="running"),
        pytest.param(_restore("done", status={"complete": True}), False, id="complete"),
        pytest.param(
            _restore("failed", status={"conditions": [{"type": "Failure", "status": "True"}]}),
            False,
            id="failed",
        ),
        pytest.param(
            _restore("other", spec={"target": {"kind": "VirtualMachine", "name": "db-1-vm"}}),
            False,
            id="another-vm",
        ),
        pytest.param(
            _restore("going", metadata={"deletionTimestamp": "2026-12-07T12:00:00Z"}),
            False,
            id="being-deleted",
        ),
        pytest.param(
            _restore("ours", metadata={"labels": {"vm.novasphere.dev/wukong": "web-1"}}),
            False,
            id="the-wukongs-own",
        ),
    ],
)
def test_observe_reads_the_restores_of_its_vm_made_outside_it(
    restore: dict[str, Any], holds: bool
) -> None:
    from wukong.act.reconciler import observe

    seen = observe(Store([restore]), wukong(), NOW)
    assert [r["metadata"]["name"] for r in seen.outside_restores] == (
        [restore["metadata"]["name"]] if holds else []
    )
