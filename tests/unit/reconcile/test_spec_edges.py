"""Issue 18 in the planners and the pass: phases for unreadable specs, a finalizer on a gone
Wukong, claims another Wukong holds, missing StorageClasses, lifecycle requests at creation."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.unit.reconcile.test_settle import Cache, Cluster, cache_for, raw_wukong, status_written
from tests.unit.reconcile.world import NOW, NS, decide, owned, seen, wukong
from wukong.act.executor import Executor
from wukong.act.reconciler import Reconciler
from wukong.api import kinds, names
from wukong.errors import NotFound
from wukong.reconcile.actions import Emit, VmCall

JsonObj = dict[str, Any]


def _cond(status: JsonObj, type_: str) -> JsonObj:
    return next(c for c in status["conditions"] if c["type"] == type_)


async def test_a_spec_the_operator_cannot_read_still_gets_a_phase() -> None:
    raw = raw_wukong({})
    raw["spec"]["memory"] = "1k"  # older than the CRD's rule: the API server kept it
    cluster = Cluster()
    await Reconciler(
        Cache({kinds.WUKONG.cache: [raw]}), Executor(cluster), clock=lambda: NOW
    ).reconcile("demo/web-1")
    status = status_written(raw, next(b for _, p, b in cluster.writes if p.endswith("/status")))
    assert status["phase"] == "Pending" and status["observedGeneration"] == 1
    spec_valid = _cond(status, "SpecValid")
    assert spec_valid["status"] == "False" and "at least 1M" in spec_valid["message"]


async def _unreadable_pass(raw: JsonObj) -> tuple[JsonObj, list[JsonObj]]:
    """One pass over a Wukong the model cannot read: the status written, the Events."""
    cluster = Cluster()
    await Reconciler(
        Cache({kinds.WUKONG.cache: [raw]}), Executor(cluster), clock=lambda: NOW
    ).reconcile("demo/web-1")
    status = status_written(raw, next(b for _, p, b in cluster.writes if p.endswith("/status")))
    posted = [b for m, p, b in cluster.writes if m == "POST" and p.endswith("/events")]
    return status, posted


def _unreadable_with_data(generation: int, **data: Any) -> JsonObj:
    """web-1 whose spec the model refuses, its status last written at generation 6 with
    `data` not keeping its data; `data` is the disk's spec entry (None: removed)."""
    volumes = [{"name": "data", "pvcName": "web-1-data", "phase": "Bound", "preserveData": False}]
    raw = raw_wukong({"phase": "Running", "observedGeneration": 6, "volumes": volumes})
    raw["metadata"]["generation"] = generation
    raw["spec"]["memory"] = "1k"  # older than the CRD's rule: the model refuses it
    raw["spec"]["disks"] = [d for d in raw["spec"]["disks"] if d["name"] != "data"]
    if data:
        raw["spec"]["disks"].append({"name": "data", "size": "100Gi", **data})
    return raw


async def test_detach_options_written_while_the_spec_cannot_be_read_are_recorded() -> None:
    """That pass moves observedGeneration too: detach options left as they were in status
    were lost, as while the networks wait (source audit, session 46). Read from the spec as
    written; ones that cannot be read keep the data."""
    raw = _unreadable_with_data(7, detachOptions={"preserveData": True, "force": True})
    status, _ = await _unreadable_pass(raw)
    assert status["observedGeneration"] == 7
    [data] = status["volumes"]
    assert (data["preserveData"], data["forceDetach"]) == (True, True)
    odd, _ = await _unreadable_pass(_unreadable_with_data(7, detachOptions={"preserveData": 1}))
    assert (odd["volumes"][0]["preserveData"], odd["volumes"][0]["forceDetach"]) == (True, False)


async def test_a_disk_that_left_an_unreadable_spec_unseen_is_kept() -> None:
    status, posted = await _unreadable_pass(_unreadable_with_data(8))
    assert status["volumes"][0]["preserveData"] is True
    assert [e["reason"] for e in posted if e["type"] == "Warning"] == [
        "InvalidSpec",
        "DetachOptionsUnknown",
    ]
    # One generation on, its options are the ones status has: they stand.
    status, posted = await _unreadable_pass(_unreadable_with_data(7))
    assert status["volumes"][0]["preserveData"] is False
    assert [e["reason"] for e in posted] == ["InvalidSpec"]


class GoneCluster(Cluster):
    """A Wukong deleted by someone else between our read and our finalizer write."""

    async def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> Any:
        self.writes.append((method, path, body))
        if method == "PATCH" and "/wukongs/" in path:
            raise NotFound(404, "NotFound", 'wukongs "web-1" not found', path=path)
        return {}


async def test_removing_the_finalizer_of_a_wukong_already_gone_is_success(
    caplog: pytest.LogCaptureFixture,
) -> None:
    raw = raw_wukong({"phase": "Deleting"})
    raw["metadata"]["deletionTimestamp"] = "2026-11-23T12:00:00Z"
    raw["spec"]["deleteOptions"] = {"force": True}
    cluster = GoneCluster()
    reconciler = Reconciler(
        Cache({kinds.WUKONG.cache: [raw]}), Executor(cluster), clock=lambda: NOW
    )
    with caplog.at_level(logging.INFO):
        assert await reconciler.reconcile("demo/web-1") is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert any(
        m == "PATCH" and b and b[-1] == {"op": "add", "path": "/metadata/finalizers", "value": []}
        for m, _, b in cluster.writes
    )


def test_a_claim_held_by_another_wukong_is_a_claim_conflict() -> None:
    other = owned("PersistentVolumeClaim", "web-1-data", uid="other-uid")
    other["metadata"]["ownerReferences"][0]["name"] = "web"
    plan = decide(wukong(networks=[]), {"phase": "Creating"}, seen(claims={"web-1-data": other}))
    bound = _cond(plan.status, "VolumesBound")
    assert bound["reason"] == "ClaimConflict"
    assert "PVC 'web-1-data' already belongs to Wukong 'web'" in bound["message"]


def test_a_pending_claim_of_a_missing_storage_class_says_so() -> None:
    cr = wukong(networks=[], disks=[{"name": "data", "size": "1Gi", "storageClassName": "nope"}])
    pending = owned(
        "PersistentVolumeClaim", "web-1-data", spec={"storageClassName": "nope"}, status={}
    )
    classes = {"standard": {"metadata": {"name": "standard"}, "provisioner": "x"}}
    plan = decide(
        cr, {"phase": "Creating"}, seen(claims={"web-1-data": pending}, storage_classes=classes)
    )
    bound = _cond(plan.status, "VolumesBound")
    assert bound["reason"] == "StorageClassNotFound"
    assert (
        "StorageClass 'nope' does not exist (classes in the cluster: standard)"
        in (bound["message"])
    )


def test_a_pending_claim_without_a_default_class_says_so() -> None:
    cr = wukong(networks=[], disks=[{"name": "data", "size": "1Gi"}])
    pending = owned("PersistentVolumeClaim", "web-1-data", status={"phase": "Pending"})
    plan = decide(cr, {"phase": "Creating"}, seen(claims={"web-1-data": pending}))
    assert "no default StorageClass" in _cond(plan.status, "VolumesBound")["message"]


def _calls(plan: Any) -> list[VmCall]:
    return [a for a in plan.actions if isinstance(a, VmCall)]


def test_start_at_creation_is_answered_by_creating_the_vm_running() -> None:
    cr = wukong(lifecycleAction={"action": "start"})
    plan = decide(cr, {}, seen())
    life = plan.status["lifecycleState"]
    assert life["state"] == "Issued" and life["issued"] is True and _calls(plan) == []
    later = decide(cr, plan.status, seen())
    assert _calls(later) == [] and later.status["lifecycleState"]["state"] == "Issued"


@pytest.mark.parametrize("action", ["restart", "resume"])
def test_restart_and_resume_at_creation_are_done(action: str) -> None:
    plan = decide(wukong(lifecycleAction={"action": action}), {}, seen())
    life = plan.status["lifecycleState"]
    assert life["state"] == "Done" and "being created" in life["message"]
    assert "RequestDone" in [a.reason for a in plan.actions if isinstance(a, Emit)]
    assert "RequestRefused" not in [a.reason for a in plan.actions if isinstance(a, Emit)]


def test_suspend_at_creation_waits_until_the_vm_runs() -> None:
    cr = wukong(lifecycleAction={"action": "suspend"})
    plan = decide(cr, {}, seen())
    assert plan.status["lifecycleState"]["state"] == "Waiting"
    again = decide(cr, plan.status | {"phase": "Starting"}, seen())
    assert again.status["lifecycleState"]["state"] == "Waiting"
    assert not [a for a in again.actions if isinstance(a, Emit) and a.reason == "RequestWaiting"]


def test_the_reconcile_world_namespace_is_the_one_the_cache_uses() -> None:
    # Guard for the helpers borrowed from test_settle: they read the same world.
    assert cache_for(raw_wukong({})).get(kinds.WUKONG.cache, NS, "web-1") is not None


def test_a_manual_vm_that_should_start_is_started_once_after_creation() -> None:
    from tests.unit.reconcile.world import ready_children
    from wukong.reconcile.vm import build_vm

    cr = wukong(runStrategy="Manual")
    world = ready_children()
    vm = build_vm(cr, world, "Manual") | {"status": {}}
    vm["metadata"]["ownerReferences"][0]["uid"] = cr.metadata.uid
    # The start is recorded before it is called (exactly once across crashes), so the call
    # comes one pass later; there is exactly one, and none once KubeVirt holds the request.
    plan = decide(cr, {"phase": "Creating"}, ready_children(vm=vm))
    assert plan.status["phase"] == "Starting"
    assert _calls(plan) == []
    plan = decide(cr, plan.status, ready_children(vm=vm))
    assert [c.verb for c in _calls(plan)] == ["start"]
    pending = vm | {"status": {"stateChangeRequests": [{"action": "Start"}]}}
    again = decide(cr, plan.status, ready_children(vm=pending))
    assert _calls(again) == []


def _deleted_unreadable(delete_options: Any) -> JsonObj:
    raw = raw_wukong({"phase": "Running"})
    raw["metadata"]["deletionTimestamp"] = "2026-11-23T12:00:00Z"
    raw["metadata"]["finalizers"] = [names.FINALIZER]
    raw["spec"]["memory"] = "1k"  # older than the CRD's rule: the model refuses it
    raw["spec"]["deleteOptions"] = delete_options
    return raw


def _events(cluster: Cluster) -> list[JsonObj]:
    return [b for m, p, b in cluster.writes if m == "POST" and p.endswith("/events")]


def _released(cluster: Cluster) -> set[str]:
    """Claims and DataVolumes a pass labelled as kept."""
    return {
        p.rpartition("/")[2]
        for m, p, b in cluster.writes
        if m == "PATCH"
        and isinstance(b, dict)
        and names.LABEL_RETAINED_FROM in ((b.get("metadata") or {}).get("labels") or {})
    }


async def test_a_wukong_whose_spec_cannot_be_read_is_still_deleted_keeping_what_it_says() -> None:
    """The model refusing its spec, the pass only said SpecValid=False: nothing removed the
    finalizer, `kubectl delete` hung, and its namespace's deletion with it (audit, s43)."""
    raw = _deleted_unreadable({"preserveDisksList": ["data"]})
    cluster = Cluster()
    await Reconciler(cache_for(raw), Executor(cluster), clock=lambda: NOW).reconcile("demo/web-1")
    assert _released(cluster) == {"web-1-data"}  # the Retain step, as deleteOptions say
    [told] = [e for e in _events(cluster) if e["reason"] == "InvalidSpec"]
    assert told["type"] == "Warning"
    assert "spec.memory" in told["message"] and "its deleteOptions as written" in told["message"]
    status = status_written(raw, next(b for _, p, b in cluster.writes if p.endswith("/status")))
    assert status["phase"] == "Deleting" and status["deletion"]["step"] == "Retain"


async def test_unreadable_delete_options_keep_every_disk() -> None:
    raw = _deleted_unreadable({"preserveDisksList": ["data"], "gracePeriodSeconds": -1})
    cluster = Cluster()
    await Reconciler(cache_for(raw), Executor(cluster), clock=lambda: NOW).reconcile("demo/web-1")
    assert _released(cluster) == {"web-1-data", "web-1-system"}
    [told] = [e for e in _events(cluster) if e["reason"] == "InvalidSpec"]
    assert "every disk is kept (system, data)" in told["message"]


async def test_an_unreadable_wukong_with_nothing_left_loses_its_finalizer() -> None:
    raw = _deleted_unreadable({})
    cluster = Cluster()
    await Reconciler(
        Cache({kinds.WUKONG.cache: [raw]}), Executor(cluster), clock=lambda: NOW
    ).reconcile("demo/web-1")
    assert any(
        m == "PATCH" and b and b[-1] == {"op": "add", "path": "/metadata/finalizers", "value": []}
        for m, _, b in cluster.writes
    )
