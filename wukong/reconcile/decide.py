"""`decide()`: from what the user asked and what the cluster shows, to one `Plan`. Pure.

The plan carries the whole status to write, typed (`WukongStatus`); nothing after the
planners edits it except `outcome.fold`, from what the executor's actions did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from pydantic import ValidationError

from wukong.api import JsonObj, names
from wukong.api.conditions import (
    CHILDREN_ADMITTED,
    DISK_DETACH,
    NETWORKS_CONFIGURED,
    RESTART_REQUIRED,
    SPEC_VALID,
    VM_HEALTHY,
    VOLUMES_BOUND,
    Cond,
    find_condition,
    merge_conditions,
    phase_since,
    record_hops,
)
from wukong.api.contract import unseen_removals
from wukong.api.spec import Action as LifecycleVerb
from wukong.api.spec import LifecycleAction
from wukong.api.status import RestoreStatus, VolumeStatus, WukongStatus
from wukong.api.v1alpha1 import Wukong
from wukong.api.validation import Problem, validate_spec
from wukong.fsm.machine import Phase, Step
from wukong.reconcile.access import credentials_sync
from wukong.reconcile.actions import Action, CreateChild, Emit, PatchChild, VmCall
from wukong.reconcile.children import retained
from wukong.reconcile.deletion import options_unknown, unseen_options
from wukong.reconcile.disks import (
    DiskPlan,
    grown_events,
    holds_as_asked,
    plan_disks,
)
from wukong.reconcile.hotplug import HotplugPlan, attached_events, plan_hotplug
from wukong.reconcile.lifecycle import (
    LifecyclePlan,
    desired_run_strategy,
    owed_by_older_operator,
    plan_lifecycle,
    request_id,
    runs_wanted,
)
from wukong.reconcile.migration import plan_migration
from wukong.reconcile.migration_placement import misplaced
from wukong.reconcile.networks import NOTHING_WITHHELD, plan_networks
from wukong.reconcile.observed import Observed, own_view
from wukong.reconcile.resources import hotplug_events
from wukong.reconcile.restore import (
    Around,
    in_flight,
    plan_restore,
    restore_stalled,
    restoring_condition,
)
from wukong.reconcile.snapshot import plan_snapshot
from wukong.reconcile.status import (
    attach_state,
    interfaces,
    node_name,
    ready_condition,
    stalled_condition,
)
from wukong.reconcile.story import (
    GOOD_WHEN_TRUE,
    NOT_EVALUATED,
    condition_events,
    hop_events,
)
from wukong.reconcile.tenancy import (
    NETWORK_NOT_ALLOWED,
    network_refusals,
    refusal_message,
    size_class_refusals,
)
from wukong.reconcile.timefmt import parse_time
from wukong.reconcile.vm import plan_vm
from wukong.reconcile.vm_health import health_due, vm_health


@dataclass
class Plan:
    """Actions to perform, the status to write, and when to look again."""

    actions: list[Action] = field(default_factory=list)
    status: WukongStatus = field(default_factory=WukongStatus)
    requeue_after: float | None = None
    needs_guest_check: bool = False
    hold_status: float | None = None
    """Seconds the status (and its Events) may wait: a create's first steps, see `_hold`."""

    def requeue(self, seconds: float | None) -> None:
        """Keep the earliest requeue."""
        if seconds is not None and (self.requeue_after is None or seconds < self.requeue_after):
            self.requeue_after = seconds


# How long a new Wukong's first status may wait for the children it created (see `_hold`).
QUIET_CREATE = 5.0


def decide(
    cr: Wukong,
    status: WukongStatus,
    seen: Observed,
    *,
    stall_after: float = 300.0,
    guest_report_interval: float = 300.0,
    call_unstorable: str | None = None,
) -> Plan:
    """Plan one pass for a live (not deleting) Wukong. `call_unstorable`: why the status
    cannot hold a lifecycle call's record (an older CRD prunes it): no call is made then
    (`plan_lifecycle`'s `unstorable`)."""
    # A VM of the Wukong's VM name it does not own is no planner's but the VM planner's,
    # which says the name is taken (NameConflict): none acts on it or reports it.
    seen = own_view(seen, cr)
    now = seen.now
    # A request an older operator took and had not called yet is called, not marked sent.
    older = owed_by_older_operator(status.lifecycle_state)
    if older is not status.lifecycle_state:
        status = status.model_copy(update={"lifecycle_state": older})
    cr, auto_start = _auto_start_as_made(cr, status, seen)
    plan = Plan()
    made = [v.name for v in status.volumes]
    problems = validate_spec(cr.spec, name=cr.metadata.name, disks_made=made)
    refused = [] if problems else network_refusals(cr, seen.network_policy, seen.nads)
    annotated = [] if problems else size_class_refusals(cr, seen.size_classes)
    if problems:
        text = "; ".join(str(p) for p in problems)
        valid = Cond(SPEC_VALID, False, "InvalidSpec", text)
    elif refused or annotated:
        # The administrator's policy refuses a network, or an instancetype would bring one:
        # nothing is created (issue 15).
        said = [refusal_message(cr, refused, seen.network_policy)] if refused else []
        message = "; ".join(said + annotated)
        valid = Cond(SPEC_VALID, False, NETWORK_NOT_ALLOWED, message)
        problems = [Problem("spec.networks" if refused else "spec.instancetype", message)]
        refused += annotated
    else:
        valid = Cond(SPEC_VALID, True, "Valid", "the spec is valid")
    # A migrate, snapshot or restore asked under an invalid spec is refused, naming it: it
    # was not answered at all (the CLI said the operator had not answered), and a restore
    # left so ran whenever the spec became valid again, maybe days later (source audit,
    # session 47, finding 4). Asked again once the spec is valid, it runs.
    not_valid = (
        f"the spec of {cr.metadata.name} is not valid (SpecValid=False {valid.reason}: "
        f"{valid.message}): fix it, then ask again"
        if problems
        else None
    )
    nets = plan_networks(cr, seen, status.networks) if not problems else None
    status, unknown = _keep_when_unseen(cr, status)
    plan.actions += unknown
    # A migrate, snapshot or restore request is its own planner's.
    asked = cr.spec.lifecycle_action
    migrate = asked is not None and asked.action is LifecycleVerb.MIGRATE
    snapshot = asked is not None and asked.action is LifecycleVerb.SNAPSHOT
    restore = asked is not None and asked.action is LifecycleVerb.RESTORE
    apart = migrate or snapshot or restore
    # A request of the user's the lifecycle planner has not answered yet goes before the
    # start a restore of a running VM hands over (the user's newer word).
    answered = status.lifecycle_state.request_id if status.lifecycle_state else None
    fresh = asked is not None and not apart and request_id(asked) != answered
    # Before the disks: a restore that ends in this pass decides what a missing claim means.
    back = plan_restore(
        cr,
        seen,
        status.restore,
        request_id(asked) if restore and asked else None,
        (asked.snapshot_name or "") if restore and asked else "",
        Around(
            runs=runs_wanted(cr, status.lifecycle_state),
            life=status.lifecycle_state,
            asked_since=asked.action.value if asked and not apart else None,
            stopped=status.phase == Phase.Stopped.value,
            user_first=fresh,
        ),
        not_valid=not_valid,
    )
    # A restore of the VM made outside Wukong holds the disks and the VM the same way.
    holding = back.holding or bool(seen.outside_restores)
    old_volumes = {v.name: v for v in status.volumes}
    disks = (
        plan_disks(cr, seen, old_volumes, restore=back.status)
        if not problems and nets and nets.ready
        else None
    )
    ready = bool(nets and nets.ready and disks and disks.ready)
    # The lifecycle planner sees none of them, only the stop and the start a restore of a
    # running VM asks for, in the pass that asks (its record carries them on); the restore
    # asks no start while the spec's own request is unanswered (`Around.user_first`).
    if apart or back.lifecycle is not None:
        own = {"lifecycle_action": back.lifecycle}
        cr = cr.model_copy(update={"spec": cr.spec.model_copy(update=own)})
    # From its acceptance to its end a restore keeps the VM down: a guest started meanwhile
    # would boot on disks KubeVirt is replacing (its webhook refuses the runStrategy patch
    # of a start then, and the request would fail in its words), and a snapshot taken
    # meanwhile would lock the VM the restore is about to rewrite.
    unfinished = in_flight(back.status)
    life = plan_lifecycle(
        cr,
        seen,
        status,
        valid=not problems,
        ready=ready,
        failed=bool(disks and disks.failed),
        # A start would plug the guest into the networks the policy refuses now.
        no_start=valid.message if refused else restoring_words(cr, unfinished),
        because=back.because if back.lifecycle is not None else None,
        unstorable=call_unstorable,
    )
    if back.lifecycle is not None and back.lifecycle.action is LifecycleVerb.START:
        life = _answered_stays_answered(life, asked if not apart else None, answered)
    moving = plan_migration(
        cr,
        seen,
        status.migration,
        request_id(asked) if migrate and asked else None,
        not_valid,
        misplaced=lambda: misplaced(cr, seen),
    )
    shot = plan_snapshot(
        cr,
        seen,
        status.snapshot,
        request_id(asked) if snapshot and asked else None,
        asked_name=asked.snapshot_name if snapshot and asked else None,
        restoring=unfinished.name if unfinished else None,
        not_valid=not_valid,
    )
    conds = [valid, *_not_evaluated(nets is None, disks is None, bool(problems))]
    if nets:
        plan.actions += nets.actions
        conds.append(nets.condition)
    # While KubeVirt restores the disks, it deletes and makes their claims: hands off.
    if disks:
        plan.actions += hands_off(disks.actions, holding)
        conds += disks.conditions
    else:  # not planned this pass: the disks it has follow deleteOptions all the same
        holds = holds_as_asked(cr, seen)
        plan.actions += hands_off(holds, holding)
    running = runs_wanted(cr, life.state)
    vm = plan_vm(
        cr,
        seen,
        ready=ready,
        run_strategy=desired_run_strategy(cr, running),
        networks=nets.statuses if nets else (),
        withheld=nets.withheld if nets else NOTHING_WITHHELD,
        restarting=any(isinstance(a, VmCall) and a.verb == "restart" for a in life.actions),
    )
    if not problems:
        plan.actions += hands_off(vm.actions, holding)
        conds += vm.conditions
        before = next((c for c in status.conditions if c.type == VM_HEALTHY), None)
        if (health := vm_health(seen, before)) is not None:
            conds.append(health)
        plan.requeue(health_due(seen))
        synced, look_again = credentials_sync(seen)
        if synced is not None:
            conds.append(synced)
        plan.requeue(look_again)
    if vm.conflict:
        conds[0] = Cond(SPEC_VALID, False, "NameConflict", vm.conflict)
    hot: HotplugPlan | None = None
    if disks is not None and not problems:
        hot = plan_hotplug(
            cr,
            seen,
            set(disks.usable),
            old_volumes,
            guest_report_interval,
            _detach_waiting_since(status),
            restore=back.status,
        )
        plan.actions += hands_off(hot.actions, holding)
        conds += hot.conditions
        plan.needs_guest_check = hot.needs_guest_check
        plan.requeue(hot.requeue_after)
    # While KubeVirt restores, the VM's runStrategy is not moved either (KubeVirt's webhook
    # refuses it then); a lifecycle call still goes, for KubeVirt to answer in its words.
    plan.actions += (
        [a for a in life.actions if not isinstance(a, PatchChild)] if holding else life.actions
    )
    plan.actions += moving.actions
    plan.requeue(moving.requeue_after)
    plan.actions += shot.actions
    plan.actions += back.actions
    plan.requeue(back.requeue_after)
    plan.requeue(life.requeue_after)
    step = life.step
    if step.phase is Phase.Restarting:
        conds = _restart_required_as_before(conds, status)
    plan.actions += hop_events(step, life.state.message if life.state is not None else None)
    history = record_hops(status.history, _hops(step), now)
    since = phase_since(history) or parse_time(cr.metadata.creation_timestamp) or now
    stalled, look_again = stalled_condition(
        step.phase, since, now, stall_after, _waiting_for(conds, status)
    )
    plan.requeue(look_again)
    # A stopped Wukong is not stuck, but a restore that never ends holds its disks and VM.
    restoring, look_again = restore_stalled(back.status, now, stall_after, seen.outside_restores)
    plan.requeue(look_again)
    conds.append(restoring if restoring is not None and not stalled.status else stalled)
    if (underway := restoring_condition(cr, back.status, seen.outside_restores)) is not None:
        conds.append(underway)
    conditions = merge_conditions(
        status.conditions, [*conds, ready_condition(step, seen)], now, cr.metadata.generation
    )
    plan.actions += condition_events(status.conditions, conditions)
    plan.actions += hotplug_events(
        status.conditions, conditions, running=seen.vmi is not None and not seen.vmi_ended
    )
    volumes = _with_checks(_volumes(disks, status, seen, cr), cr, hot)
    plan.actions += attached_events(old_volumes, volumes, seen)
    plan.actions += grown_events(old_volumes, volumes)
    plan.hold_status = _hold(cr, step, plan, seen)
    plan.requeue(plan.hold_status)
    plan.status = WukongStatus(
        phase=step.phase.value,
        observed_generation=cr.metadata.generation,
        vm_name=names.vm_name(cr.metadata.name) if seen.vm is not None else None,
        auto_start=auto_start,
        node_name=node_name(seen),
        interfaces=interfaces(seen),
        networks=list(nets.statuses) if nets else [],
        volumes=volumes,
        lifecycle_state=life.state,
        migration=moving.status,
        snapshot=shot.status,
        restore=back.status,
        conditions=conditions,
        history=history,
    )
    return plan


def _not_evaluated(no_nets: bool, no_disks: bool, invalid: bool) -> list[Cond]:
    """NetworksConfigured and VolumesBound, Unknown, for the planners a pass did not run
    (the spec invalid, or the networks not ready for the disks): they are always present
    (SPEC §8), and one left from an earlier spec said True of a spec that is no more (a
    Wukong invalid from its creation had neither; found by review, session 37)."""
    why = "the spec is invalid (SpecValid)" if invalid else "the networks are not ready"
    out = []
    if no_nets:
        out.append(Cond(NETWORKS_CONFIGURED, None, NOT_EVALUATED, f"not checked while {why}"))
    if no_disks:
        out.append(Cond(VOLUMES_BOUND, None, NOT_EVALUATED, f"not checked while {why}"))
    return out


def _restart_required_as_before(conds: list[Cond], status: WukongStatus) -> list[Cond]:
    """While a restart is under way, RestartRequired stays as it was: the restart applies
    what it can, and KubeVirt's own RestartRequired on the VM, which it may set while it
    swaps the VMI (a boot disk detached), said then as new was a Warning to restart a VM
    that was restarting (found by a user audit, session 37)."""
    kept = [c for c in conds if c.type != RESTART_REQUIRED]
    before = next((c for c in status.conditions if c.type == RESTART_REQUIRED), None)
    if before is not None:
        kept.append(Cond(before.type, before.is_true, before.reason, before.message or ""))
    return kept


def _answered_stays_answered(
    life: LifecyclePlan, asked: LifecycleAction | None, answered: str | None
) -> LifecyclePlan:
    """The start a completed restore hands over, recorded under the id of the spec's request
    it came after when that one was answered already (refused while the restore ran): under
    the start's own id the request would look new to the next pass and be answered a second
    time, over the start's record (found by test_lifecycle_sequences, session 37). Nothing
    follows the start by its id: the restore is over."""
    if asked is None or life.state is None or request_id(asked) != answered:
        return life
    return replace(life, state=life.state.model_copy(update={"request_id": answered}))


def _auto_start_as_made(
    cr: Wukong, status: WukongStatus, seen: Observed
) -> tuple[Wukong, bool | None]:
    """The Wukong as the planners read it, its autoStart the one the VM was made with, and
    that value to record (None until a VM is seen). autoStart says what happens when the
    Wukong is created: read later, an edit of it would stop a VM that runs (or start one
    that never ran) with nobody asking (docs/decisions.md, "autoStart is read once")."""
    made = status.auto_start
    if made is None:
        return cr, cr.spec.start_strategy.auto_start if seen.vm is not None else None
    if made == cr.spec.start_strategy.auto_start:
        return cr, made
    start = cr.spec.start_strategy.model_copy(update={"auto_start": made})
    return cr.model_copy(
        update={"spec": cr.spec.model_copy(update={"start_strategy": start})}
    ), made


def restoring_words(cr: Wukong, restore: RestoreStatus | None) -> str | None:
    """Why nothing may start the VM while `restore` is in flight (None: none is)."""
    if restore is None:
        return None
    # A running VM stopped for the restore is started after it: a start asked meanwhile is
    # refused, but it is the user's word too (restore.Around.asked_since), and it will run.
    then = "it starts again once that is done" if restore.start_after else "ask again then"
    return (
        f"{cr.metadata.name} is being restored from snapshot {restore.snapshot} "
        f"({restore.name}): {then}"
    )


def hands_off(actions: Sequence[Action], holding: bool) -> list[Action]:
    """`actions`, none of them while KubeVirt restores (`holding`): what a planner would do
    to the disks or the VM then is left undone (it would undo the restore, or be undone),
    and so are its Events, which each say what an action of them did. Kept, they said
    "detached disk logs: data deleted" on every pass of the restore while the claim stayed
    (F11, session 46). An Event that stands for no action is none of the planners' here:
    the conditions' (`condition_events`) and the grown disks' (`grown_events`) are apart."""
    return [] if holding else list(actions)


def _hold(cr: Wukong, step: Step, plan: Plan, seen: Observed) -> float | None:
    """A new Wukong's first status waits while the children it just created settle: the
    NAD and claims of a create usually bind within a second, and then the same write says
    Starting (docs/decisions.md, "A create's first status waits"). Only while nothing was
    written yet, nothing is wrong (no Warning) and the pass does nothing but create; never
    longer than QUIET_CREATE after the newest child, when it is written as Creating."""
    if cr.status.phase is not None or step.phase is not Phase.Creating:
        return None
    creating = False
    for action in plan.actions:
        if isinstance(action, CreateChild):
            creating = True
        elif not (isinstance(action, Emit) and action.type == "Normal"):
            return None
    if creating:
        return QUIET_CREATE
    born = [
        parse_time(obj.get("metadata", {}).get("creationTimestamp"))
        for objects in (seen.nads, seen.claims, seen.data_volumes)
        for obj in objects.values()
    ]
    newest = max((b for b in born if b is not None), default=None)
    if newest is None:
        return None
    left = QUIET_CREATE - (seen.now - newest).total_seconds()
    return left + 0.05 if left > 0 else None


def _hops(step: Step) -> list[tuple[str, str, str]]:
    return [(source.value, dest.value, reason) for source, dest, reason in step.hops]


def _volumes(
    disks: DiskPlan | None, status: WukongStatus, seen: Observed, cr: Wukong
) -> list[VolumeStatus]:
    if disks is None:
        return _options_as_asked(list(status.volumes), cr)
    return attach_state(_with_detaching(disks.volumes, status, seen), seen)


def _detach_waiting_since(status: WukongStatus) -> datetime | None:
    """When DiskDetach began to say a detach waits (False), None when it does not."""
    cond = find_condition(status.conditions, DISK_DETACH)
    return cond.last_transition_time if cond is not None and cond.status == "False" else None


def _with_checks(
    volumes: list[VolumeStatus], cr: Wukong, hot: HotplugPlan | None
) -> list[VolumeStatus]:
    """The guest agent's reports on disks leaving the spec, in their entries; a disk in the
    spec has none (taken back before it was detached, a later detach starts afresh)."""
    checks = hot.checks if hot is not None else {}
    in_spec = {d.name for d in cr.spec.disks}
    out = []
    for volume in volumes:
        if volume.name in checks:
            check = checks[volume.name]
            update = {"unmounted_since": check.unmounted_since, "seen_mounted": check.seen_mounted}
            volume = volume.model_copy(update=update)
        elif volume.name in in_spec and (volume.unmounted_since or volume.seen_mounted):
            volume = volume.model_copy(update={"unmounted_since": None, "seen_mounted": None})
        out.append(volume)
    return out


def _keep_when_unseen(cr: Wukong, status: WukongStatus) -> tuple[WukongStatus, list[Action]]:
    """Disks that left the spec in a generation the operator never saw (two edits while it
    was down or busy, two Git commits synced at once): the detach options in force when they
    left are unknown, since they live in the entry that was removed. When in doubt, keep
    (review s23 F3): their status entry says preserveData, and a Warning says why."""
    doubtful = unseen_options(cr, status, deleting=False)
    if not doubtful:
        return status, []
    volumes = [
        v.model_copy(update={"preserve_data": True}) if v.name in doubtful else v
        for v in status.volumes
    ]
    name, last = cr.metadata.name, status.observed_generation
    warnings = options_unknown(name, doubtful, last, cr.metadata.generation)
    return status.model_copy(update={"volumes": volumes}), warnings


def _options_as_asked(volumes: list[VolumeStatus], cr: Wukong) -> list[VolumeStatus]:
    """status.volumes of a pass that does not plan the disks (the networks not ready, the
    spec invalid), each disk of the spec with its detach options as the spec says them now.
    They are copies of the spec, the only record of them once the disk leaves it, and this
    pass moves observedGeneration: left as they were, a `preserveData: true` written then was
    never recorded, and the disk removed in the next edit was deleted by the options before
    it (found by a source audit, session 46)."""
    asked = {d.name: d.detach for d in cr.spec.disks}
    out = []
    for volume in volumes:
        if (options := asked.get(volume.name)) is not None:
            update = {"preserve_data": options.preserve_data, "force_detach": options.force}
            volume = volume.model_copy(update=update)
        out.append(volume)
    return out


def _with_detaching(
    volumes: tuple[VolumeStatus, ...], status: WukongStatus, seen: Observed
) -> list[VolumeStatus]:
    """Keep reporting disks that left the spec until their claim is gone or released. Their
    message is the refusal of this pass's delete or unplug, if any (`outcome.fold`): not
    the last pass's, nor one from while the disk was in the spec."""
    current = {v.name for v in volumes}
    out = list(volumes)
    for old in status.volumes:
        claim = str(old.pvc_name)
        if old.name in current:
            continue
        obj = seen.claims.get(claim) or seen.data_volumes.get(claim)
        if obj is not None and not retained(obj):  # a kept disk is done: no longer ours
            out.append(old.model_copy(update={"phase": "Detaching", "message": None}))
    return out


def _waiting_for(conds: list[Cond], status: WukongStatus) -> str:
    """What a stalled phase actually waits for: the conditions in trouble, the VM's own
    first (its message names the cause), never a healthy one (issue 15)."""
    troubled = [c for c in conds if c.status is (c.type not in GOOD_WHEN_TRUE)]
    vm = [c.message for c in troubled if c.type == VM_HEALTHY]
    rest = [f"{c.type}: {c.message}" for c in troubled if c.type != VM_HEALTHY]
    refused = [  # set after the actions ran (reconcile/admission.py), carried in status
        f"{c.type}: {c.message}"
        for c in status.conditions
        if c.type == CHILDREN_ADMITTED and c.status == "False"
    ]
    return "; ".join([*vm, *refused, *rest]) or "waiting for KubeVirt"


def plan_unreadable(
    raw: JsonObj, message: str, now: datetime
) -> tuple[WukongStatus | None, list[Action]]:
    """The status of a Wukong the models cannot read: SpecValid=False with the reason; None
    when it already says so. The stored status is kept as far as it can be read, its disks'
    detach options as the spec writes them (`_options_as_written`); with the Warnings of the
    disks kept because they left the spec unseen (`_keep_when_unseen`)."""
    generation = raw["metadata"].get("generation")
    try:
        status = WukongStatus.model_validate(raw.get("status") or {})
    except ValidationError:
        status = WukongStatus()
    verdict = Cond(SPEC_VALID, False, "InvalidSpec", message)
    conditions = merge_conditions(status.conditions, [verdict], now, generation)
    written = _options_as_written(raw.get("spec"))
    volumes = [v.model_copy(update=written.get(v.name, {})) for v in status.volumes]
    doubtful = unseen_removals(
        generation,
        status.observed_generation,
        [(v.name, v.phase, v.preserve_data) for v in volumes],
        written,
    )
    volumes = [
        v.model_copy(update={"preserve_data": True}) if v.name in doubtful else v for v in volumes
    ]
    # Any spec the API server accepted gets a phase: it waits in Pending (or stays where it
    # was) and observedGeneration says this generation was looked at.
    new = status.model_copy(
        update={
            "conditions": conditions,
            "phase": status.phase or "Pending",
            "observed_generation": generation,
            "volumes": volumes,
        }
    )
    if new == status:
        return None, []
    name = str(raw["metadata"].get("name") or "")
    return new, options_unknown(name, doubtful, status.observed_generation, generation or 0)


def _options_as_written(spec: object) -> dict[str, dict[str, bool]]:
    """The detach options of each disk of a spec the models cannot read, by name, as status
    fields, as far as they can be read: a status that moves observedGeneration without them
    loses an edit of them (`_options_as_asked`). Options that cannot be read keep the data
    and force nothing: in doubt, keep and check."""
    disks = spec.get("disks") if isinstance(spec, dict) else None
    out: dict[str, dict[str, bool]] = {}
    for disk in disks if isinstance(disks, list) else []:
        if not isinstance(disk, dict) or not isinstance(disk.get("name"), str):
            continue
        options = disk.get("detachOptions") or {}
        options = options if isinstance(options, dict) else {"preserveData": None}
        preserve = options.get("preserveData", False)
        out[disk["name"]] = {
            "preserve_data": preserve if isinstance(preserve, bool) else True,
            "force_detach": options.get("force") is True,
        }
    return out
