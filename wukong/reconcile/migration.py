"""Live migration (issue 16): `lifecycleAction: {action: migrate}` becomes a
VirtualMachineInstanceMigration owned by the Wukong, and `status.migration` follows it. Pure.

A request is answered once per fingerprint (as every lifecycle request). It is refused at
once, with nothing created, when there is nothing to migrate (no running VMI), when KubeVirt
says the VMI cannot migrate (`LiveMigratable=False`, in KubeVirt's own words: virt-api's
webhook would refuse the migration with the same reason), or while another migration of this
VM is still running. Otherwise the migration object is created; virt-controller and the
nodes do the rest, and this planner reports its phase, nodes and result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from wukong.api import JsonObj, names
from wukong.api.status import MigrationStatus
from wukong.api.v1alpha1 import Wukong
from wukong.reconcile.actions import Action, CreateChild, Emit
from wukong.reconcile.children import labels, owner_reference
from wukong.reconcile.observed import Observed, condition_of, migration_under_way

FINAL = ("Succeeded", "Failed")
# Phases before virt-controller hands a migration to the nodes: the VMI's migrationState does
# not name it yet (virt-controller migration.go, handleTargetPodHandoff).
BEFORE_HANDOFF = ("Pending", "Scheduling", "Scheduled")


@dataclass(frozen=True)
class Misplaced:
    """The running VMI lacks the spec's placement, so a migration now would place the VM by
    the old one (its target pod is rendered from the VMI's)."""

    why: str
    """The refusal's words."""
    pending: bool
    """KubeVirt is about to copy it into the VMI: a request waits instead of being refused."""


@dataclass(frozen=True)
class MigrationPlan:
    """What the migration planner decided."""

    actions: tuple[Action, ...]
    status: MigrationStatus | None
    requeue_after: float | None = None
    """Set while a new request waits for KubeVirt to apply a new placement."""


# How soon a request held for a new placement is looked at again (KubeVirt's VMI patch
# wakes the pass sooner).
PLACEMENT_WAIT = 2.0


def migration_name(wukong: str, request_id: str) -> str:
    """One migration object per request: `<wukong>-migrate-<fingerprint>`."""
    return names.fit(f"{wukong}-migrate-{request_id[:8]}", 63)


def running_migrations(seen: Observed) -> list[JsonObj]:
    """The Wukong's migrations KubeVirt has not finished."""
    return [
        m for m in seen.migrations.values() if (m.get("status") or {}).get("phase") not in FINAL
    ]


def refusal(cr: Wukong, seen: Observed) -> str | None:
    """Why a migration cannot start now, or None."""
    name = cr.metadata.name
    phase = seen.vmi_phase
    if seen.vmi is None or phase != "Running":
        return f"migrate needs a running VM: {name} is not running (VMI phase: {phase or 'none'})"
    migratable = condition_of(seen.vmi, "LiveMigratable")
    if migratable is not None and migratable.get("status") == "False":
        return (
            f"KubeVirt cannot live-migrate {name}: {migratable.get('reason')}: "
            f"{migratable.get('message')}"
        )
    busy = running_migrations(seen)
    if busy:
        other = busy[0]
        phase = (other.get("status") or {}).get("phase") or "Pending"
        return (
            f"a migration of {name} is already running ({other['metadata']['name']}, phase "
            f"{phase}): wait for it to finish"
        )
    if (theirs := kubevirts_migration(seen)) is not None:
        return f"a migration of {name} {theirs} is already running: wait for it to finish"
    return None


def kubevirts_migration(seen: Observed) -> str | None:
    """A migration of the VMI that is not the Wukong's (KubeVirt's own, for a node drain or
    a workload update) under way, as the VMI's migrationState shows it: where it goes, or
    None. KubeVirt's webhook refuses a second migration then ("in-flight migration
    detected"); the request is refused at once in these words, where the create was
    refused and retried until that one ended (found by review, session 37)."""
    state = ((seen.vmi or {}).get("status") or {}).get("migrationState") or {}
    if not migration_under_way(state):
        return None
    target = state.get("targetNode")
    return f"KubeVirt started (to {target})" if target else "KubeVirt started"


def build_migration(cr: Wukong, name: str) -> JsonObj:
    """The VirtualMachineInstanceMigration for this Wukong's VMI."""
    return {
        "apiVersion": f"{names.KUBEVIRT_GROUP}/{names.KUBEVIRT_VERSION}",
        "kind": "VirtualMachineInstanceMigration",
        "metadata": {
            "name": name,
            "namespace": cr.metadata.namespace,
            "labels": labels(cr),
            "ownerReferences": [owner_reference(cr)],
        },
        "spec": {"vmiName": names.vm_name(cr.metadata.name)},
    }


def _stamp(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def plan_migration(
    cr: Wukong,
    seen: Observed,
    old: MigrationStatus | None,
    request_id: str | None,
    not_valid: str | None = None,
    *,
    misplaced: Callable[[], Misplaced | None] = lambda: None,
) -> MigrationPlan:
    """Start a new migration request (or refuse it), then follow the one in flight;
    `not_valid`: why the spec is not valid (the request is refused so). `misplaced`: whether
    the running VM lacks the spec's placement (asked only for a new request: the VM
    planner's module computes it)."""
    actions: list[Action] = []
    if request_id is not None and (old is None or not old.answers(request_id)):
        name = migration_name(cr.metadata.name, request_id)
        if name in seen.migrations:
            # Made by a pass whose status write was lost (the operator stopped in between):
            # followed, not refused as "already running" (it is this request's own).
            source = ((seen.vmi or {}).get("status") or {}).get("nodeName")
            mine = MigrationStatus(
                request_id=request_id, name=name, source_node=source, started_at=seen.now
            )
            return _follow(mine, seen)
        why = not_valid or refusal(cr, seen)
        if why is None and (behind := misplaced()) is not None:
            if behind.pending:
                # Not answered yet: the next pass, woken by KubeVirt's VMI patch, decides.
                return MigrationPlan((), old, requeue_after=PLACEMENT_WAIT)
            why = behind.why
        if why is not None:
            actions.append(Emit("Warning", "MigrationRefused", why))
            if old is not None and old.name is not None and old.result is None:
                # A refusal does not forget the migration still running: it goes on being
                # followed, and the refused request is answered in `refusal`.
                kept = old.refused_beside(request_id, why)
                return MigrationPlan(tuple(actions), _follow(kept, seen).status)
            refused = MigrationStatus(
                request_id=request_id,
                result="Refused",
                message=why,
                refusal=why,
                started_at=seen.now,
            )
            return MigrationPlan(tuple(actions), refused)
        source = ((seen.vmi or {}).get("status") or {}).get("nodeName")
        create = CreateChild("VirtualMachineInstanceMigration", build_migration(cr, name))
        said = f"migrating from node {source}"
        actions += [create, Emit("Normal", "MigrationStarted", said, after=(create,))]
        started = MigrationStatus(
            request_id=request_id,
            name=name,
            phase="Pending",
            source_node=source,
            message=f"{name} created",
            started_at=seen.now,
        )
        return MigrationPlan(tuple(actions), started)
    if old is None or old.name is None or old.result in FINAL:
        return MigrationPlan((), old)
    return _follow(old, seen)


CLOCK_SKEW = timedelta(seconds=5)


def _ended_without_object(old: MigrationStatus, seen: Observed) -> MigrationPlan | None:
    """A migration whose object is gone before it finished (`virtctl migrate-cancel` deletes
    it): the VMI's migrationState keeps how it ended. None while the VMI says nothing of a
    migration ended since this one started (the object may just not be in the cache yet)."""
    state = ((seen.vmi or {}).get("status") or {}).get("migrationState") or {}
    if (
        old.uid is not None
        and old.phase in BEFORE_HANDOFF
        and state.get("migrationUid") != old.uid
        and _same_vmi(old, seen)
    ):
        return _cancelled_before_handoff(old, seen)
    aborted = state.get("abortStatus") == "Succeeded"
    if not (state.get("completed") or state.get("failed") or aborted):
        return None
    if old.uid is not None:
        if state.get("migrationUid") != old.uid:
            return None  # another migration's record
    else:  # gone before the cache showed it: by time
        began = _stamp(state.get("startTimestamp"))
        if began is None or old.started_at is None or began < old.started_at - CLOCK_SKEW:
            return None
    succeeded = bool(state.get("completed")) and not state.get("failed") and not aborted
    source = state.get("sourceNode") or old.source_node
    target = state.get("targetNode") or old.target_node
    if succeeded:
        text = f"migrated from {source} to {target}"
        event = Emit("Normal", "Migrated", text)
    else:
        how = "was cancelled" if state.get("abortRequested") else f"failed: {_why(state)}"
        text = f"migration {old.name} {how} (its object is gone; the VMI says how it ended)"
        event = Emit("Warning", "MigrationFailed", text)
    result = "Succeeded" if succeeded else "Failed"
    update = {
        "phase": result,
        "result": result,
        "source_node": source,
        "target_node": target,
        "message": text,
        "ended_at": _stamp(state.get("endTimestamp")) or seen.now,
    }
    return MigrationPlan((event,), old.model_copy(update=update))


def _why(state: JsonObj) -> str:
    """KubeVirt's reason a migration failed: virt-launcher's words when it aborted one that
    made no progress for progressTimeout or outran completionTimeoutPerGiB ("Live migration
    stuck for 150 seconds and has been aborted"), or virt-handler's."""
    return str(state.get("failureReason") or "see its Events")


def _cancel_asked(migration: JsonObj, state: JsonObj) -> bool:
    """Whether someone asked to cancel it (deleted it: virt-controller marks the VMI's
    migrationState `abortRequested` and the migration `migrationAbortRequested`). An
    abortStatus alone is not that: virt-launcher aborts a migration that timed out too
    (live-migration-source.go), and it was called "cancelled" (found by a source audit,
    session 42)."""
    requested = condition_of(migration, "migrationAbortRequested")
    return bool(
        migration.get("metadata", {}).get("deletionTimestamp")
        or state.get("abortRequested")
        or (requested is not None and requested.get("status") == "True")
    )


def _same_vmi(old: MigrationStatus, seen: Observed) -> bool:
    """Whether the VMI the migration was made for still runs (not ended, not made since)."""
    vmi = seen.vmi
    if vmi is None or seen.vmi_ended:
        return False
    made = _stamp(vmi.get("metadata", {}).get("creationTimestamp"))
    return made is None or old.started_at is None or made <= old.started_at


def _vmi_gone(old: MigrationStatus, seen: Observed) -> MigrationPlan | None:
    """The VM stopped or restarted while its migration ran: KubeVirt fails the migration
    ("vmi shutdown during migration") and deletes it with the VMI, and a new VMI starts with
    no migrationState. A pass that saw neither said Running for good (found by a source
    audit, session 42)."""
    if _same_vmi(old, seen):
        return None
    text = f"migration {old.name} failed: the VM stopped during it"
    update = {"phase": "Failed", "result": "Failed", "message": text, "ended_at": seen.now}
    return MigrationPlan((Emit("Warning", "MigrationFailed", text),), old.model_copy(update=update))


def _cancelled_before_handoff(old: MigrationStatus, seen: Observed) -> MigrationPlan:
    """A migration deleted before virt-controller handed it to the nodes (Pending, Scheduling,
    Scheduled): it deletes the target pod and lets the object go, and the VMI never hears of
    it (handlePreHandoffMigrationCancel). Its uid was seen, so its absence is a deletion, not
    a cache that has yet to show it; without this, status.migration said Scheduling for good."""
    text = f"migration {old.name} was cancelled before it started (its object is gone)"
    update = {"phase": "Failed", "result": "Failed", "message": text, "ended_at": seen.now}
    return MigrationPlan((Emit("Warning", "MigrationFailed", text),), old.model_copy(update=update))


def _follow(old: MigrationStatus, seen: Observed) -> MigrationPlan:
    """The migration in flight, as KubeVirt reports it on the migration and the VMI."""
    assert old.name is not None
    migration = seen.migrations.get(old.name)
    if migration is None:  # not in the cache yet (just created), or deleted
        return _ended_without_object(old, seen) or _vmi_gone(old, seen) or MigrationPlan((), old)
    mstatus = migration.get("status") or {}
    phase = str(mstatus.get("phase") or "Pending")
    state = dict(mstatus.get("migrationState") or {})
    vmi_state = ((seen.vmi or {}).get("status") or {}).get("migrationState") or {}
    if vmi_state.get("migrationUid") == migration["metadata"].get("uid"):
        state = {**vmi_state, **state}
    update: dict[str, object] = {
        "uid": migration["metadata"].get("uid") or old.uid,
        "phase": phase,
        "source_node": state.get("sourceNode") or old.source_node,
        "target_node": state.get("targetNode") or old.target_node,
        "message": f"{old.name}: {phase}",
    }
    actions: list[Action] = []
    if phase in FINAL:
        update["result"] = phase
        update["ended_at"] = _stamp(state.get("endTimestamp")) or seen.now
        if phase == "Succeeded":
            text = f"migrated from {update['source_node']} to {update['target_node']}"
            actions.append(Emit("Normal", "Migrated", text))
        elif _cancel_asked(migration, state):
            # Deleted while it ran (`migrate-cancel`): virt-controller has the source abort it
            # and marks the migration Failed before it lets the object go.
            text = f"migration {old.name} was cancelled: the VM stays on {update['source_node']}"
            actions.append(Emit("Warning", "MigrationFailed", text))
        else:
            # KubeVirt says why in migrationState.failureReason (virt-handler's or
            # virt-launcher's word from the source); a migration has no Failed condition (its
            # types are migrationAbortRequested and migrationRejectedByResourceQuota).
            text = f"migration {old.name} failed: {_why(state)}"
            actions.append(Emit("Warning", "MigrationFailed", text))
        update["message"] = text
    elif (quota := condition_of(migration, "migrationRejectedByResourceQuota")) is not None and (
        quota.get("status") == "True"
    ):
        # virt-controller cannot make the target pod, which needs as much as the VM's own, and
        # tries again with no deadline: said, not left a bare Pending (session 42).
        words = quota.get("message") or "exceeded quota"
        update["message"] = (
            f"{old.name}: {phase}: the namespace's ResourceQuota refuses the target pod ({words})"
        )
    elif phase in BEFORE_HANDOFF and (why := _unschedulable(migration, seen)) is not None:
        update["message"] = f"{old.name}: {phase}: {why}"
    return MigrationPlan(tuple(actions), old.model_copy(update=update))


# virt-controller deletes a target pod left unschedulable this long (migration.go
# defaultUnschedulablePendingTimeoutSeconds), and the migration fails.
UNSCHEDULABLE_TIMEOUT = "5 minutes"


def _unschedulable(migration: JsonObj, seen: Observed) -> str | None:
    """Why the target pod waits, when virt-controller says no node takes it (its Warning
    migrationTargetPodUnschedulable, at every sync): the pod is placed by the running VMI's
    nodeSelector, affinity and tolerations, on a node other than the source (services/
    template.go). It said a bare "Scheduling", then "failed: see its Events" (source audit,
    session 47)."""
    uid = migration["metadata"].get("uid")
    if not any((e.get("involvedObject") or {}).get("uid") == uid for e in seen.migration_events):
        return None
    spec = (seen.vmi or {}).get("spec") or {}
    source = ((seen.vmi or {}).get("status") or {}).get("nodeName") or "the one it runs on"
    needs = [f"a node other than {source}"]
    if selector := spec.get("nodeSelector"):
        needs.append("with " + ", ".join(f"{k}={v}" for k, v in sorted(selector.items())))
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if required:
        needs.append("matching its required node affinity")
    return (
        f"no node can take the target pod: it needs {' '.join(needs)}, with room for the VM "
        f"(KubeVirt: target pod unschedulable; it gives up after {UNSCHEDULABLE_TIMEOUT})"
    )
