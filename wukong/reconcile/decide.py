"""`decide()`: from what the user asked and what the cluster shows, to one `Plan`. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from wukong.api import names
from wukong.api.v1alpha1 import Wukong
from wukong.api.validation import Problem, validate_spec
from wukong.fsm.machine import Phase, Step
from wukong.reconcile.actions import Action, Emit
from wukong.reconcile.children import retained
from wukong.reconcile.conditions import Cond
from wukong.reconcile.disks import DiskPlan, plan_disks
from wukong.reconcile.hotplug import plan_hotplug
from wukong.reconcile.lifecycle import desired_run_strategy, plan_lifecycle, want_running
from wukong.reconcile.networks import NetworkPlan, plan_networks
from wukong.reconcile.observed import JsonObj, Observed
from wukong.reconcile.status import (
    attach_state,
    history,
    interfaces,
    merge_conditions,
    phase_since,
    ready_condition,
    stalled_condition,
)
from wukong.reconcile.tenancy import NETWORK_NOT_ALLOWED, network_refusals, refusal_message
from wukong.reconcile.timefmt import parse_time
from wukong.reconcile.vm import plan_vm
from wukong.reconcile.vm_health import VM_HEALTHY, vm_health

SPEC_VALID = "SpecValid"


@dataclass
class Plan:
    """Actions to perform, the status to write, and when to look again."""

    actions: list[Action] = field(default_factory=list)
    status: JsonObj = field(default_factory=dict)
    requeue_after: float | None = None
    needs_guest_check: bool = False

    def requeue(self, seconds: float | None) -> None:
        """Keep the earliest requeue."""
        if seconds is not None and (self.requeue_after is None or seconds < self.requeue_after):
            self.requeue_after = seconds


# Which way round each condition is healthy: Events report going bad (Warning) and
# coming back (Normal), never a healthy first value.
GOOD_WHEN_TRUE = {
    "NetworksConfigured",
    "VolumesBound",
    "SpecValid",
    "VolumesResized",
    "DiskDetach",
    VM_HEALTHY,
}
BAD_WHEN_TRUE = {"RestartRequired", "FileSystemResizePending", "Stalled", "DeletionBlocked"}
# Not healthy yet, but the normal path: every new disk is Provisioning for a while. No Warning
# (nor the Normal that would answer it): the phase hop Events tell that story, and Stalled
# warns if it lasts.
EXPECTED_REASONS = {"Provisioning"}


def _healthy(cond: JsonObj) -> bool:
    true = cond.get("status") == "True"
    return true if cond.get("type") in GOOD_WHEN_TRUE else not true


def _bad(cond: JsonObj) -> bool:
    return not _healthy(cond) and cond.get("reason") not in EXPECTED_REASONS


def _condition_events(old: list[JsonObj], new: list[JsonObj]) -> list[Action]:
    """A Warning when a condition goes bad, a Normal Event when it recovers."""
    before = {c.get("type"): c for c in old}
    events: list[Action] = []
    for cond in new:
        kind = cond.get("type")
        prior = before.get(kind)
        if kind not in GOOD_WHEN_TRUE | BAD_WHEN_TRUE:
            continue  # Ready and DiskHotplug follow the phase and hop Events
        if prior is not None and (prior.get("status"), prior.get("reason")) == (
            cond.get("status"),
            cond.get("reason"),
        ):
            continue
        if _bad(cond):
            events.append(Emit("Warning", str(cond.get("reason")), str(cond.get("message"))))
        elif _healthy(cond) and prior is not None and _bad(prior):
            events.append(Emit("Normal", str(cond.get("reason")), str(cond.get("message"))))
    return events


def decide(cr: Wukong, status: JsonObj, seen: Observed, *, stall_after: float = 300.0) -> Plan:
    """Plan one pass for a live (not deleting) Wukong."""
    now = seen.now
    plan = Plan()
    problems = validate_spec(cr.spec, name=cr.metadata.name)
    refused = [] if problems else network_refusals(cr, seen.network_policy)
    if problems:
        text = "; ".join(str(p) for p in problems)
        valid = Cond(SPEC_VALID, False, "InvalidSpec", text)
    elif refused:
        # The administrator's policy refuses a network: nothing is created (issue 15).
        message = refusal_message(cr, refused, seen.network_policy)
        valid = Cond(SPEC_VALID, False, NETWORK_NOT_ALLOWED, message)
        problems = [Problem("spec.networks", message)]
    else:
        valid = Cond(SPEC_VALID, True, "Valid", "the spec is valid")
    nets = plan_networks(cr, seen) if not problems else None
    old_volumes = {str(v.get("name")): v for v in status.get("volumes") or []}
    disks = plan_disks(cr, seen, old_volumes) if not problems and nets and nets.ready else None
    ready = bool(nets and nets.ready and disks and disks.ready)
    life = plan_lifecycle(
        cr, seen, status, valid=not problems, ready=ready, failed=bool(disks and disks.failed)
    )
    conds = [valid]
    if nets:
        plan.actions += nets.actions
        conds.append(nets.condition)
    if disks:
        plan.actions += disks.actions
        conds += disks.conditions
    running = want_running(cr, life.state.get("lastAction"))
    vm = plan_vm(cr, seen, ready=ready, run_strategy=desired_run_strategy(cr, running))
    if not problems:
        plan.actions += vm.actions
        conds += vm.conditions
        conds.append(vm_health(seen))
    if vm.conflict:
        conds[0] = Cond(
            SPEC_VALID,
            False,
            "NameConflict",
            f"{vm.conflict}: rename this Wukong or remove that VirtualMachine",
        )
    if disks is not None and not problems:
        hot = plan_hotplug(cr, seen, set(disks.usable), old_volumes)
        plan.actions += hot.actions
        conds += hot.conditions
        plan.needs_guest_check = hot.needs_guest_check
        plan.requeue(hot.requeue_after)
    plan.actions += life.actions
    plan.requeue(life.requeue_after)
    step = life.step
    for source, dest, reason in step.hops:
        if source != dest:
            plan.actions.append(
                Emit(
                    "Warning" if dest is Phase.Error else "Normal",
                    reason,
                    f"{source.value} → {dest.value}",
                )
            )
    new_status = _status(cr, status, seen, life.state, nets, disks, step)
    since = phase_since(new_status) or parse_time(cr.metadata.creation_timestamp) or now
    stalled, look_again = stalled_condition(
        step.phase, since, now, stall_after, _waiting_for(conds, status)
    )
    conds.append(stalled)
    plan.requeue(look_again)
    conditions = merge_conditions(
        status.get("conditions") or [],
        [*conds, ready_condition(step, seen)],
        now,
        cr.metadata.generation,
    )
    plan.actions += _condition_events(status.get("conditions") or [], conditions)
    new_status["conditions"] = conditions
    plan.status = new_status
    return plan


def _with_detaching(volumes: tuple[JsonObj, ...], status: JsonObj, seen: Observed) -> list[JsonObj]:
    """Keep reporting disks that left the spec until their claim is gone or released."""
    current = {v["name"] for v in volumes}
    out = list(volumes)
    for old in status.get("volumes") or []:
        claim = str(old.get("pvcName"))
        if old.get("name") in current:
            continue
        obj = seen.claims.get(claim) or seen.data_volumes.get(claim)
        if obj is not None and not retained(obj):  # a kept disk is done: no longer ours
            out.append(old | {"phase": "Detaching"})
    return out


def _waiting_for(conds: list[Cond], status: JsonObj) -> str:
    """What a stalled phase actually waits for: the conditions in trouble, the VM's own
    first (its message names the cause), never a healthy one (issue 15)."""
    troubled = [c for c in conds if c.status is (c.type not in GOOD_WHEN_TRUE)]
    vm = [c.message for c in troubled if c.type == VM_HEALTHY]
    rest = [f"{c.type}: {c.message}" for c in troubled if c.type != VM_HEALTHY]
    refused = [  # set after the actions ran (reconcile/admission.py), carried in status
        f"{c['type']}: {c.get('message')}"
        for c in status.get("conditions") or []
        if c.get("type") == "ChildrenAdmitted" and c.get("status") == "False"
    ]
    return "; ".join([*vm, *refused, *rest]) or "waiting for KubeVirt"


def _status(
    cr: Wukong,
    status: JsonObj,
    seen: Observed,
    lifecycle: JsonObj,
    nets: NetworkPlan | None,
    disks: DiskPlan | None,
    step: Step,
) -> JsonObj:
    """Everything in status but the conditions."""
    vmi_status = (seen.vmi or {}).get("status", {})
    return {
        "phase": step.phase.value,
        "observedGeneration": cr.metadata.generation,
        "vmName": names.vm_name(cr.metadata.name) if seen.vm is not None else None,
        "nodeName": vmi_status.get("nodeName"),
        "interfaces": interfaces(seen),
        "networks": list(nets.statuses) if nets else [],
        "volumes": attach_state(_with_detaching(disks.volumes, status, seen), seen)
        if disks
        else status.get("volumes") or [],
        "lifecycleState": lifecycle or None,
        "history": history(status.get("history") or [], step, seen.now),
    }
