"""A restore in progress and how it ends (session 48): no Event for what the restore's hold
leaves undone, and a disk removed meanwhile cleaned up once it ends."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from tests.unit.reconcile.world import (
    NOW,
    bound_pvc,
    decide,
    ready_children,
    restored_pvc,
    wukong,
)
from wukong.api import names
from wukong.api.v1alpha1 import Wukong
from wukong.reconcile.actions import DeleteChild, Emit, PatchChild
from wukong.reconcile.lifecycle import request_id
from wukong.reconcile.observed import Observed
from wukong.reconcile.vm import build_vm

ASKED = {"action": "restore", "snapshotName": "good"}
SINCE = (NOW - timedelta(seconds=30)).isoformat().replace("+00:00", "Z")


def _rid() -> str:
    spec = wukong(lifecycleAction=ASKED).spec.lifecycle_action
    assert spec is not None
    return request_id(spec)


def _restore_status(phase: str = "Restoring", **more: Any) -> dict[str, Any]:
    return {
        "requestId": _rid(),
        "name": "r1",
        "uid": "r1-uid",
        "snapshot": "good",
        "phase": phase,
        "message": "r1: restoring the disks from good",
        "startedAt": SINCE,
        **more,
    }


def _kubevirts(complete: bool = False, reason: str | None = None) -> dict[str, Any]:
    """Restore r1 as KubeVirt reports it: Progressing in its words (`reason`)."""
    status: dict[str, Any] = {"complete": complete}
    if reason is not None:
        status["conditions"] = [
            {"type": "Progressing", "status": "True", "reason": reason},
            {"type": "Ready", "status": "False", "reason": reason},
        ]
    meta = {"name": "r1", "namespace": "demo", "uid": "r1-uid"}
    meta["ownerReferences"] = [{"kind": "Wukong", "name": "web-1", "uid": "uid-web-1"}]
    return {"metadata": meta, "status": status}


def _volumes(*removed: str, preserve: bool = False) -> list[dict[str, Any]]:
    out = [
        {"name": "system", "pvcName": "web-1-system", "bound": True, "phase": "Succeeded"},
        {"name": "data", "pvcName": "web-1-data", "bound": True, "phase": "Bound"},
    ]
    for disk in removed:
        out.append(
            {
                "name": disk,
                "pvcName": f"web-1-{disk}",
                "bound": True,
                "phase": "Bound",
                "preserveData": preserve,
            }
        )
    return out


def _stopped_vm(cr: Wukong, world: Observed) -> dict[str, Any]:
    vm = build_vm(cr, world, "Halted")
    vm["metadata"]["uid"] = "vm-uid"
    return vm


def _restoring(
    claims: dict[str, Any],
    *,
    restore: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    reason: str | None = "Creating new PVCs",
    **spec: Any,
) -> tuple[Wukong, dict[str, Any], Observed]:
    """web-1, stopped, asked to restore snapshot good: restore r1 made, KubeVirt at
    `reason`; `claims` as the pass sees them."""
    body = wukong(lifecycleAction=ASKED, **spec).to_dict()
    status = {
        "phase": "Stopped",
        "volumes": _volumes(),
        "restore": restore or _restore_status(),
        **(status or {}),
    }
    cr = Wukong.from_dict({**body, "status": status})
    base = ready_children(claims=claims)
    world = ready_children(
        claims=claims,
        vm=_stopped_vm(cr, base),
        restores={"r1": _kubevirts(reason=reason)},
        snapshots={"good": {"metadata": {"name": "good", "namespace": "demo"}}},
    )
    return cr, status, world


def _condition(plan: Any, type_: str) -> dict[str, Any] | None:
    return next((c for c in plan.status["conditions"] if c["type"] == type_), None)


SYSTEM = bound_pvc("web-1-system", "20Gi")


# --- F11 (s46) ---


def test_no_event_goes_out_for_an_action_the_restores_hold_leaves_undone() -> None:
    """A disk removed from the spec while KubeVirt restores: its claim's delete is left
    undone (hands off), and so is its DiskDetached Event, which said "data deleted" on
    every pass of the restore (F11, session 46)."""
    cr, status, world = _restoring(
        {"web-1-system": SYSTEM, "web-1-logs": bound_pvc("web-1-logs", "10Gi")},
        status={"volumes": _volumes("logs")},
    )
    plan = decide(cr, status, world)
    assert not [a for a in plan.actions if isinstance(a, DeleteChild | PatchChild)]
    assert not [a for a in plan.actions if isinstance(a, Emit) and a.reason == "DiskDetached"]
    [logs] = [v for v in plan.status["volumes"] if v["name"] == "logs"]
    assert logs["phase"] == "Detaching"


def _after_restore(preserve: bool) -> tuple[Wukong, dict[str, Any], Observed]:
    """Restore r1 completed; disk logs left the spec while it ran, and KubeVirt made its
    claim again from the snapshot (it restores every volume the snapshot holds)."""
    logs = restored_pvc(disk="logs", restore="r1-r1-uid")
    logs["metadata"]["resourceVersion"] = "9"
    done = _restore_status(
        "Succeeded", result="Succeeded", message="the disks are as snapshot good holds them"
    )
    cr, status, world = _restoring(
        {"web-1-system": SYSTEM, "web-1-data": bound_pvc("web-1-data"), "web-1-logs": logs},
        restore=done,
        status={"volumes": _volumes("logs", preserve=preserve)},
    )
    world = replace(world, restores={"r1": _kubevirts(complete=True)})
    return cr, status, world


def test_a_disk_removed_during_a_restore_is_deleted_once_it_ends() -> None:
    """It stayed Detaching for good: the claim KubeVirt made is owned by nobody
    (volumeOwnershipPolicy None), and the cleanup took only claims the Wukong holds."""
    cr, status, world = _after_restore(preserve=False)
    plan = decide(cr, status, world)
    [delete] = [a for a in plan.actions if isinstance(a, DeleteChild)]
    assert (delete.kind, delete.name) == ("PersistentVolumeClaim", "web-1-logs")
    [said] = [a for a in plan.actions if isinstance(a, Emit) and a.reason == "DiskDetached"]
    assert said.message == "detached disk logs: data deleted"


def test_a_disk_removed_with_preserve_data_during_a_restore_is_kept_once_it_ends() -> None:
    """Kept as any detach with preserveData keeps it (retained-from), and said to hold
    the snapshot's data: KubeVirt replaced the claim while the restore ran."""
    cr, status, world = _after_restore(preserve=True)
    plan = decide(cr, status, world)
    [keep] = [a for a in plan.actions if isinstance(a, PatchChild) and a.name == "web-1-logs"]
    labels = keep.patch["metadata"]["labels"]
    assert labels[names.LABEL_RETAINED_FROM] == "web-1"
    assert labels[names.LABEL_DISK] == "logs"
    assert labels[names.LABEL_WUKONG] is None
    assert labels[names.LABEL_RESTORED_FROM_VM] is None  # KubeVirt's marks go with it
    assert keep.patch["metadata"]["resourceVersion"] == "9"
    [said] = [a for a in plan.actions if isinstance(a, Emit) and a.reason == "DiskDetached"]
    assert said.message == (
        "detached disk logs: data kept in web-1-logs (as snapshot good holds it: restore r1 "
        "made the claim again while the disk was being removed)"
    )
    # Released, it is no longer the Wukong's: not Detaching any more.
    released = dict(world.claims)
    released["web-1-logs"] = {
        "metadata": {
            "name": "web-1-logs",
            "labels": {names.LABEL_RETAINED_FROM: "web-1", names.LABEL_DISK: "logs"},
        }
    }
    after = decide(cr, plan.status, replace(world, claims=released))
    assert "logs" not in [v["name"] for v in after.status["volumes"]]
