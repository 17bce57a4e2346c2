"""The migration planner (issue 16): refusals at once, one migration object per request."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from wukong.api.status import MigrationStatus, WukongStatus
from wukong.api.v1alpha1 import Wukong
from wukong.reconcile.actions import CreateChild, Emit, Failed
from wukong.reconcile.migration import plan_migration
from wukong.reconcile.observed import Observed
from wukong.reconcile.outcome import fold, not_made_events

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def cr(**extra: Any) -> Wukong:
    return Wukong.from_dict(
        {
            "apiVersion": "vm.novasphere.dev/v1alpha1",
            "kind": "Wukong",
            "metadata": {"name": "web", "namespace": "ns", "uid": "u-1", "generation": 2},
            "spec": {
                "cpu": 1,
                "memory": "1Gi",
                "disks": [{"name": "system", "size": "1Gi"}],
                "lifecycleAction": {"action": "migrate", "requestedAt": "x"},
                **extra,
            },
        }
    )


def vmi(phase: str = "Running", migratable: str | None = "True") -> dict[str, Any]:
    conds = []
    if migratable is not None:
        conds.append(
            {
                "type": "LiveMigratable",
                "status": migratable,
                "reason": "DisksNotLiveMigratable",
                "message": "PVC web-system is not shared",
            }
        )
    return {
        "metadata": {"name": "web-vm", "namespace": "ns"},
        "status": {"phase": phase, "nodeName": "node-1", "conditions": conds},
    }


@pytest.mark.parametrize(
    ("seen", "words"),
    [
        pytest.param(Observed(now=NOW), "needs a running VM", id="no-vmi"),
        pytest.param(Observed(now=NOW, vmi=vmi("Scheduling")), "not running", id="starting"),
        pytest.param(
            Observed(now=NOW, vmi=vmi(migratable="False")),
            "KubeVirt cannot live-migrate web: DisksNotLiveMigratable: PVC web-system",
            id="not-migratable",
        ),
        pytest.param(
            Observed(
                now=NOW,
                vmi=vmi(),
                migrations={
                    "other": {"metadata": {"name": "other"}, "status": {"phase": "Running"}}
                },
            ),
            "already running (other, phase Running)",
            id="another-runs",
        ),
        pytest.param(
            Observed(
                now=NOW,
                vmi=vmi() | {"status": vmi()["status"] | {"migrationState": {"targetNode": "n2"}}},
            ),
            "a migration of web KubeVirt started (to n2) is already running",
            id="kubevirts-own-runs",  # a node drain's, not the Wukong's (session 37)
        ),
    ],
)
def test_a_request_that_cannot_run_is_refused_and_creates_nothing(
    seen: Observed, words: str
) -> None:
    plan = plan_migration(cr(), seen, None, "rid-1")
    assert plan.status is not None and plan.status.result == "Refused"
    assert words in (plan.status.refusal or "")
    assert not [a for a in plan.actions if isinstance(a, CreateChild)]
    assert [a.reason for a in plan.actions if isinstance(a, Emit)] == ["MigrationRefused"]


@pytest.mark.parametrize(
    "ended",
    [
        {"abortStatus": "Succeeded", "failed": True},  # migrate-cancel
        {"failed": True, "failureReason": "Live migration failed"},
        {"completed": True},
    ],
)
def test_a_migration_after_one_that_failed_or_was_cancelled_is_not_refused(
    ended: dict[str, object],
) -> None:
    """KubeVirt marks a failed or aborted migration `failed` and leaves `completed` false
    (virt-handler's source; its e2e tests expect Completed false). The operator took every
    state not `completed` for a migration under way: after one `migrate-cancel`, every later
    migrate and restore of the running VM was refused "KubeVirt started (to node-2) ... is
    already running" until the VMI was replaced (the simulator had set `completed` too;
    found by a simulator audit, session 40)."""
    state = {"migrationUid": "m-0", "sourceNode": "node-1", "targetNode": "node-2", **ended}
    running = vmi()
    running["status"]["migrationState"] = state
    plan = plan_migration(cr(), Observed(now=NOW, vmi=running), None, "rid-2")
    assert plan.status is not None and plan.status.result is None, plan.status
    assert [a.kind for a in plan.actions if isinstance(a, CreateChild)] == [
        "VirtualMachineInstanceMigration"
    ]


def test_an_accepted_request_creates_one_owned_migration_and_is_not_repeated() -> None:
    seen = Observed(now=NOW, vmi=vmi())
    plan = plan_migration(cr(), seen, None, "rid-1")
    created = [a for a in plan.actions if isinstance(a, CreateChild)]
    assert len(created) == 1
    body = created[0].body
    assert body["spec"] == {"vmiName": "web-vm"}
    assert body["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert plan.status is not None and plan.status.source_node == "node-1"
    again = plan_migration(cr(), seen, plan.status, "rid-1")
    assert not [a for a in again.actions if isinstance(a, CreateChild)]


def test_status_follows_the_migration_to_its_result() -> None:
    old = MigrationStatus(request_id="rid-1", name="web-migrate-1", phase="Pending")
    migration = {
        "metadata": {"name": "web-migrate-1", "uid": "m-1"},
        "status": {
            "phase": "Succeeded",
            "migrationState": {"sourceNode": "node-1", "targetNode": "node-2"},
        },
    }
    seen = Observed(now=NOW, vmi=vmi(), migrations={"web-migrate-1": migration})
    plan = plan_migration(cr(), seen, old, "rid-1")
    assert plan.status is not None
    assert (plan.status.result, plan.status.source_node, plan.status.target_node) == (
        "Succeeded",
        "node-1",
        "node-2",
    )
    assert [a.reason for a in plan.actions if isinstance(a, Emit)] == ["Migrated"]


def test_a_migration_cancelled_by_deleting_its_object_ends_from_the_vmis_record() -> None:
    """`virtctl migrate-cancel` deletes the migration object; the VMI's migrationState keeps
    how it ended. status.migration said Running for good."""
    old = MigrationStatus(
        request_id="rid-1", name="web-migrate-1", uid="m-1", phase="Running", started_at=NOW
    )
    record = {
        "migrationUid": "m-1",
        "sourceNode": "node-1",
        "targetNode": "node-2",
        # virt-controller marks the deleted migration's abort (markMigrationAbortInVmiStatus)
        "abortRequested": True,
        "abortStatus": "Succeeded",
        "completed": True,
        "failed": True,
        "endTimestamp": "2026-12-01T00:00:30Z",
    }
    running = vmi()
    running["status"]["migrationState"] = record
    plan = plan_migration(cr(), Observed(now=NOW, vmi=running), old, "rid-1")
    assert plan.status is not None
    assert (plan.status.result, plan.status.phase) == ("Failed", "Failed")
    assert "was cancelled" in str(plan.status.message)
    assert [(a.type, a.reason) for a in plan.actions if isinstance(a, Emit)] == [
        ("Warning", "MigrationFailed")
    ]
    # Another migration's record, or none yet: the object may just not be in the cache.
    running["status"]["migrationState"] = {**record, "migrationUid": "m-0"}
    again = plan_migration(cr(), Observed(now=NOW, vmi=running), old, "rid-1")
    assert again.status == old and again.actions == ()


@pytest.mark.parametrize("phase", ["Pending", "Scheduling", "Scheduled"])
def test_a_migration_cancelled_before_its_hand_off_ends_when_its_object_goes(phase: str) -> None:
    """virt-controller lets a migration deleted before the hand-off go without a word on the
    VMI (handlePreHandoffMigrationCancel): once its uid was seen, its absence ends it."""
    old = MigrationStatus(
        request_id="rid-1", name="web-migrate-1", uid="m-1", phase=phase, started_at=NOW
    )
    plan = plan_migration(cr(), Observed(now=NOW, vmi=vmi()), old, "rid-1")
    assert plan.status is not None
    assert (plan.status.result, plan.status.phase) == ("Failed", "Failed")
    assert plan.status.message == (
        "migration web-migrate-1 was cancelled before it started (its object is gone)"
    )
    assert [(a.type, a.reason) for a in plan.actions if isinstance(a, Emit)] == [
        ("Warning", "MigrationFailed")
    ]
    # Never seen in the cache (no uid yet): it may just not be there yet.
    unseen = old.model_copy(update={"uid": None})
    assert plan_migration(cr(), Observed(now=NOW, vmi=vmi()), unseen, "rid-1").status == unseen
    # Handed off already: the VMI names it, and its abort is awaited there.
    handed = vmi()
    handed["status"]["migrationState"] = {"migrationUid": "m-1", "sourceNode": "node-1"}
    again = plan_migration(cr(), Observed(now=NOW, vmi=handed), old, "rid-1")
    assert again.status == old and again.actions == ()


def test_a_migration_that_failed_because_it_was_deleted_says_it_was_cancelled() -> None:
    """virt-controller marks a migration deleted while it runs Failed (the source aborted
    it) before it lets the object go: that is a cancellation, not a failure to explain."""
    old = MigrationStatus(
        request_id="rid-1", name="web-migrate-1", uid="m-1", phase="Running", started_at=NOW
    )
    migration = {
        "metadata": {
            "name": "web-migrate-1",
            "uid": "m-1",
            "deletionTimestamp": "2026-12-01T00:00:20Z",
        },
        "status": {
            "phase": "Failed",
            "migrationState": {"sourceNode": "node-1", "targetNode": "node-2"},
        },
    }
    seen = Observed(now=NOW, vmi=vmi(), migrations={"web-migrate-1": migration})
    plan = plan_migration(cr(), seen, old, "rid-1")
    assert plan.status is not None and plan.status.result == "Failed"
    assert plan.status.message == "migration web-migrate-1 was cancelled: the VM stays on node-1"
    # Without the deletion, a failure is explained by KubeVirt's failureReason, when it
    # gives one (session 40: read from a Failed condition KubeVirt never writes before).
    del migration["metadata"]["deletionTimestamp"]
    failed = plan_migration(cr(), seen, old, "rid-1")
    assert failed.status is not None
    assert failed.status.message == "migration web-migrate-1 failed: see its Events"
    migration["status"]["migrationState"]["failureReason"] = "Target pod is down"
    told = plan_migration(cr(), seen, old, "rid-1")
    assert told.status is not None
    assert told.status.message == "migration web-migrate-1 failed: Target pod is down"
    assert [a.message for a in told.actions if isinstance(a, Emit)] == [told.status.message]


def test_the_migration_objects_uid_is_remembered_once_seen() -> None:
    old = MigrationStatus(request_id="rid-1", name="web-migrate-1", phase="Pending")
    migration = {
        "metadata": {"name": "web-migrate-1", "uid": "m-1"},
        "status": {"phase": "Running"},
    }
    seen = Observed(now=NOW, vmi=vmi(), migrations={"web-migrate-1": migration})
    plan = plan_migration(cr(), seen, old, "rid-1")
    assert plan.status is not None and plan.status.uid == "m-1"


def test_a_request_refused_while_one_runs_keeps_the_running_ones_id_for_its_waiters() -> None:
    """The running migration is still answered under its own requestId (a `migrate --wait`
    of it would otherwise never see its end); the later one is answered beside it, once."""
    running = {"metadata": {"name": "web-migrate-1", "uid": "m-1"}, "status": {"phase": "Running"}}
    seen = Observed(now=NOW, vmi=vmi(), migrations={"web-migrate-1": running})
    old = MigrationStatus(request_id="rid-1", name="web-migrate-1", phase="Running")
    plan = plan_migration(cr(), seen, old, "rid-2")
    assert plan.status is not None
    assert (plan.status.request_id, plan.status.refused_request_id) == ("rid-1", "rid-2")
    assert "already running (web-migrate-1" in (plan.status.refusal or "")
    assert [a.reason for a in plan.actions if isinstance(a, Emit)] == ["MigrationRefused"]
    again = plan_migration(cr(), seen, plan.status, "rid-2")
    assert not again.actions and again.status == plan.status
    done = {**running, "status": {"phase": "Succeeded", "migrationState": {"targetNode": "n2"}}}
    ended = plan_migration(
        cr(), replace(seen, migrations={"web-migrate-1": done}), plan.status, "rid-2"
    )
    assert ended.status is not None and ended.status.result == "Succeeded"
    assert ended.status.request_id == "rid-1"


def test_a_migration_made_by_a_pass_whose_status_was_lost_is_followed_not_refused() -> None:
    """The operator stopped between making the migration and writing that it had: the next
    one must not refuse the request as 'already running' (it is its own migration)."""
    made = {
        "metadata": {"name": "web-migrate-rid-1", "uid": "m-1"},
        "status": {"phase": "Running"},
    }
    seen = Observed(now=NOW, vmi=vmi(), migrations={"web-migrate-rid-1": made})
    plan = plan_migration(cr(), seen, None, "rid-1")
    assert plan.status is not None and plan.status.refusal is None
    assert (plan.status.name, plan.status.phase, plan.status.source_node) == (
        "web-migrate-rid-1",
        "Running",
        "node-1",
    )
    assert not plan.actions


def test_a_finished_migration_kubevirt_made_refuses_nothing() -> None:
    done = {"migrationState": {"targetNode": "n2", "completed": True}}
    seen = Observed(now=NOW, vmi=vmi() | {"status": vmi()["status"] | done})
    plan = plan_migration(cr(), seen, None, "rid-1")
    assert plan.status is not None and plan.status.result != "Refused"


# -- found by a source audit of live migration (session 42) ----------------------------------


def _started() -> tuple[Any, MigrationStatus]:
    """The pass that makes the migration, and the status it plans."""
    plan = plan_migration(cr(), Observed(now=NOW, vmi=vmi()), None, "rid-1")
    [create] = [a for a in plan.actions if isinstance(a, CreateChild)]
    assert plan.status is not None
    return create, plan.status


def test_a_migration_kubevirt_refused_to_make_is_answered_not_left_pending() -> None:
    """KubeVirt's webhook refuses a migration while another of the VMI is unfinished (one a
    drain queued, which the operator cannot see before the nodes have it): status said
    "created" and Pending for good, and a migration KubeVirt finished later answered it."""
    create, planned = _started()
    words = 'admission webhook "migration-create-validator.kubevirt.io" denied the request: ...'
    refused = fold(
        WukongStatus(migration=planned), WukongStatus(), {create: Failed("permanent", words, 400)}
    )
    assert refused.migration is not None
    assert refused.migration.result == "Refused" and refused.migration.name is None
    assert refused.migration.message == f"KubeVirt refused migration web-migrate-rid-1: {words}"
    [event] = not_made_events(WukongStatus(migration=planned), refused)
    assert (event.type, event.reason) == ("Warning", "MigrationRefused")
    # Answered: the next pass neither follows a migration nor makes it again.
    again = plan_migration(cr(), Observed(now=NOW, vmi=vmi()), refused.migration, "rid-1")
    assert again.status == refused.migration and again.actions == ()
    # One lost on its way (a 5xx) is made again.
    lost = fold(
        WukongStatus(migration=planned), WukongStatus(), {create: Failed("transient", "x", 500)}
    )
    assert lost.migration is None and not not_made_events(WukongStatus(migration=planned), lost)
    # Lost while the last request's answer was a failure: that answer comes back, and no
    # Warning tells it again as this request's refusal.
    told = MigrationStatus(request_id="rid-0", result="Failed", message="failed long ago")
    back = fold(
        WukongStatus(migration=planned),
        WukongStatus(migration=told),
        {create: Failed("transient", "x", 500)},
    )
    assert back.migration == told
    assert not_made_events(WukongStatus(migration=planned), back) == []
    retried = plan_migration(cr(), Observed(now=NOW, vmi=vmi()), lost.migration, "rid-1")
    assert [a.kind for a in retried.actions if isinstance(a, CreateChild)] == [
        "VirtualMachineInstanceMigration"
    ]


def _ended(state: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web-migrate-1", "uid": "m-1", **meta},
        "status": {"phase": "Failed", "migrationState": state},
    }


RUNNING = MigrationStatus(
    request_id="rid-1", name="web-migrate-1", uid="m-1", phase="Running", started_at=NOW
)
TIMED_OUT = {
    "sourceNode": "node-1",
    "targetNode": "node-2",
    "abortStatus": "Succeeded",
    "failed": True,
    "failureReason": "Live migration stuck for 150 seconds and has been aborted",
}


def test_a_migration_kubevirt_aborted_on_a_timeout_failed_it_was_not_cancelled() -> None:
    """virt-launcher aborts a migration that made no progress for progressTimeout (abortStatus
    Succeeded, as a cancel's): it was reported "was cancelled", its reason dropped."""
    seen = Observed(now=NOW, vmi=vmi(), migrations={"web-migrate-1": _ended(TIMED_OUT)})
    plan = plan_migration(cr(), seen, RUNNING, "rid-1")
    assert plan.status is not None and plan.status.message == (
        "migration web-migrate-1 failed: Live migration stuck for 150 seconds and has been aborted"
    )
    # Its object gone: the VMI's record says the same.
    gone = vmi()
    gone["status"]["migrationState"] = {**TIMED_OUT, "migrationUid": "m-1"}
    plan = plan_migration(cr(), Observed(now=NOW, vmi=gone), RUNNING, "rid-1")
    assert plan.status is not None
    assert "failed: Live migration stuck for 150 seconds" in str(plan.status.message)
    # Asked for (deleted: virt-controller marks abortRequested), it was cancelled.
    asked = {**TIMED_OUT, "abortRequested": True}
    seen = Observed(now=NOW, vmi=vmi(), migrations={"web-migrate-1": _ended(asked)})
    plan = plan_migration(cr(), seen, RUNNING, "rid-1")
    assert plan.status is not None and "was cancelled" in str(plan.status.message)


@pytest.mark.parametrize("after", ["stopped", "ended", "restarted"])
def test_a_migration_whose_vm_stopped_during_it_ends_failed(after: str) -> None:
    """KubeVirt fails the migration of a VMI that stops and deletes it with the VMI: a pass
    that saw neither said Running for good (and `migrate --wait` hung)."""
    later = vmi()
    if after == "ended":
        later["status"]["phase"] = "Succeeded"
    elif after == "restarted":
        later["metadata"]["creationTimestamp"] = "2026-12-01T00:05:00Z"
    seen = Observed(now=NOW, vmi=None if after == "stopped" else later)
    plan = plan_migration(cr(), seen, RUNNING, "rid-1")
    assert plan.status is not None and plan.status.result == "Failed"
    assert plan.status.message == "migration web-migrate-1 failed: the VM stopped during it"
    # The same VMI, and the object only not in the cache yet: nothing said.
    assert plan_migration(cr(), Observed(now=NOW, vmi=vmi()), RUNNING, "rid-1").actions == ()


def test_a_migration_a_resource_quota_holds_says_so() -> None:
    pending = {
        "metadata": {"name": "web-migrate-1", "uid": "m-1"},
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "migrationRejectedByResourceQuota",
                    "status": "True",
                    "message": "exceeded quota: q, requested: pods=1, used: pods=4",
                }
            ],
        },
    }
    pending_status = RUNNING.model_copy(update={"phase": "Pending"})
    seen = Observed(now=NOW, vmi=vmi(), migrations={"web-migrate-1": pending})
    plan = plan_migration(cr(), seen, pending_status, "rid-1")
    assert plan.status is not None and plan.status.message == (
        "web-migrate-1: Pending: the namespace's ResourceQuota refuses the target pod "
        "(exceeded quota: q, requested: pods=1, used: pods=4)"
    )


def _moved_to_zone_b(vm_has_it: bool, owes_restart: bool) -> tuple[Wukong, Observed]:
    """web runs in zone a; its spec now asks zone b (and, with `owes_restart`, a new
    evictionStrategy, which KubeVirt applies only on a restart)."""
    from wukong.reconcile.vm import build_vm

    spec: dict[str, Any] = {"nodeSelector": {"zone": "b"}}
    if owes_restart:
        spec["evictionStrategy"] = "None"
    wk = cr(**spec)
    asked = build_vm(wk, Observed(now=NOW), "Always")
    started = build_vm(cr(), Observed(now=NOW), "Always")["spec"]["template"]["spec"]
    running = vmi()
    running["spec"] = started | {"nodeSelector": {"zone": "a"}}
    vm = asked if vm_has_it else build_vm(cr(), Observed(now=NOW), "Always")
    if not vm_has_it:
        vm["spec"]["template"]["spec"]["nodeSelector"] = {"zone": "a"}
    vm["metadata"] |= {"ownerReferences": [{"uid": "u-1"}], "generation": 3}
    vm["status"] = {"desiredGeneration": 3, "observedGeneration": 2}
    return wk, Observed(now=NOW, vm=vm, vmi=running)


def test_a_migration_while_a_restart_is_owed_is_refused_not_placed_by_the_old_selector() -> None:
    """KubeVirt copies a new nodeSelector into the running VMI only while the VM owes no
    restart, and renders the target pod from the VMI's: `migrate` went ahead and moved the
    VM within zone a, reported a success (source audit, session 47)."""
    from wukong.reconcile.migration_placement import misplaced

    wk, seen = _moved_to_zone_b(vm_has_it=True, owes_restart=True)
    plan = plan_migration(wk, seen, None, "rid-z", misplaced=lambda: misplaced(wk, seen))
    assert not [a for a in plan.actions if isinstance(a, CreateChild)]
    assert plan.status is not None and plan.status.result == "Refused"
    assert "the new nodeSelector of web is not applied to the running VM while it owes a " \
        "restart" in (plan.status.refusal or "")  # fmt: skip
    assert "wukong restart web -n ns" in (plan.status.refusal or "")


def test_a_migration_asked_with_a_new_placement_waits_for_kubevirt_to_apply_it() -> None:
    """A nodeSelector and a migrate in one write: the VM patch and the migration went out in
    the same pass and raced KubeVirt's VMI patch. The request now waits, unanswered."""
    from wukong.reconcile.migration_placement import misplaced

    wk, seen = _moved_to_zone_b(vm_has_it=False, owes_restart=False)
    plan = plan_migration(wk, seen, None, "rid-z", misplaced=lambda: misplaced(wk, seen))
    assert plan.actions == () and plan.status is None
    assert plan.requeue_after is not None
    # KubeVirt synced the VM (desiredGeneration = generation) and the VMI has zone b: it goes.
    wk, seen = _moved_to_zone_b(vm_has_it=True, owes_restart=False)
    assert seen.vmi is not None
    seen.vmi["spec"]["nodeSelector"] = {"zone": "b"}
    plan = plan_migration(wk, seen, None, "rid-z", misplaced=lambda: misplaced(wk, seen))
    assert [a.kind for a in plan.actions if isinstance(a, CreateChild)] == [
        "VirtualMachineInstanceMigration"
    ]


def test_a_target_pod_no_node_takes_is_said_not_a_bare_scheduling() -> None:
    """virt-controller posts migrationTargetPodUnschedulable on the migration at every sync
    and deletes the pod 5 minutes on: the Wukong said "Scheduling", then "failed: see its
    Events" (source audit, session 47)."""
    name = "web-migrate-rid"
    old = MigrationStatus(
        request_id="rid", name=name, phase="Scheduling", source_node="node-1", started_at=NOW
    )
    waiting = {"metadata": {"name": name, "uid": "m-uid"}, "status": {"phase": "Scheduling"}}
    running = vmi()
    running["spec"] = {"nodeSelector": {"kubernetes.io/hostname": "node-1"}}
    event = {
        "involvedObject": {"kind": "VirtualMachineInstanceMigration", "uid": "m-uid"},
        "reason": "migrationTargetPodUnschedulable",
        "message": "Migration target pod for VMI [ns/web-vm] is currently unschedulable.",
    }
    seen = Observed(now=NOW, vmi=running, migrations={name: waiting})
    assert plan_migration(cr(), seen, old, None).status == old.model_copy(
        update={"uid": "m-uid", "message": f"{name}: Scheduling"}
    )
    seen = replace(seen, migration_events=(event,))
    status = plan_migration(cr(), seen, old, None).status
    assert status is not None
    assert status.message == (
        f"{name}: Scheduling: no node can take the target pod: it needs a node other than "
        "node-1 with kubernetes.io/hostname=node-1, with room for the VM (KubeVirt: target "
        "pod unschedulable; it gives up after 5 minutes)"
    )
