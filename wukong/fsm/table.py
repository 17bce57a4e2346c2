"""The transition table of the Wukong state machine, as data, and its Mermaid rendering.

Guard names are `Facts` fields or properties, plus `forced` (the request carries force);
`after` names are callbacks that append the matching `Effect`; `reason` is the CamelCase
reason of the hop (Event reason, status history).

Requests (refused with a sentence from `refusals.py` when no row accepts them):
- start: Stopped -> Starting (START_VM). In Pending/Creating it is recorded (the VM is
  created running; under Manual, created stopped, the lifecycle planner calls start once
  the VM exists); everywhere else refused.
- stop: from any state where a VMI may live (Starting, Running, Restarting, Suspending,
  Suspended, Resuming, Error) -> Stopping (STOP_VM, or FORCE_STOP_VM with force). In
  Stopping only stop+force is accepted, as an escalation. Recorded in Pending/Creating.
- restart: Running, Error (if the VM exists) -> Restarting (RESTART_VM / FORCE_RESTART_VM);
  restart+force while Restarting escalates.
- suspend: Running, Resuming -> Suspending (PAUSE_VMI), unless KubeVirt paused the guest
  itself (a disk I/O error, a migration): refused with what KubeVirt is doing.
- resume: Suspended, Suspending -> Resuming (UNPAUSE_VMI).
- Deleting accepts nothing; nor does any phase once `facts.deleting` is set.
An accepted start/restart sets want_running, a stop clears it, for the rest of the pass.

Observations (`sync`, first matching row per phase wins, in table order):
- any but Deleting -> Deleting when deleting (absorbing: no row leaves Deleting).
- Pending -> Creating when spec_valid.
- Creating/Starting/Running/Stopped/Restarting/Suspend*/Resuming -> Error when
  provisioning_failed; Starting/Running/Suspend*/Resuming -> Error when the VMI failed
  while wanted running; Restarting -> Error only when the *new* VMI failed.
- Error -> Creating when neither holds any more (then on to Starting/Stopped).
- any phase after the VM's creation -> Creating when the VM is gone (deleted outside
  Wukong): it is made again from the spec.
- Restarting/Suspending -> Running, Resuming -> Suspended when KubeVirt refused the call
  (call_refused) and the guest is as it was; Restarting -> Stopped when the guest is off
  and the start a forced restart owed after its stop was refused (start_refused); Starting
  -> Stopped for a refused start;
  Stopping -> Suspended, Running or Starting (the guest as it is) for a refused stop. A
  request the machine accepts clears call_refused for the rest of the pass: the refusal
  answered the request before it.
- Creating -> Starting when the VM exists and should run (or runs); else -> Stopped.
- Starting -> Running when the VMI is Running, Ready and not paused; -> Suspended when
  paused; -> Stopped when no VMI runs and none is wanted.
- Running/Suspending/Suspended/Resuming: a fresh VMI booting, or no VMI under runStrategy
  Always -> Starting (it restarted under us); no VMI otherwise -> Stopped.
  Running/Suspending -> Suspended when paused; Suspended/Resuming -> Running when up.
- Stopping -> Stopped when no VMI runs and KubeVirt has no Start pending (a restart's);
  once the grace deadline passes, FORCE_STOP_VM once.
- Restarting -> Running when a new VMI is up; -> Stopped when KubeVirt reports the VM
  stopped for good (left_off: `virtctl stop` under Manual); deadline passed ->
  FORCE_RESTART_VM once.
- Stopped -> Starting when a VMI appears (started outside Wukong or by runStrategy).
"""

from __future__ import annotations

from typing import Any

from wukong.fsm.states import Phase

PENDING, CREATING, STARTING, RUNNING = "Pending", "Creating", "Starting", "Running"
STOPPING, STOPPED, RESTARTING = "Stopping", "Stopped", "Restarting"
SUSPENDING, SUSPENDED, RESUMING = "Suspending", "Suspended", "Resuming"
DELETING, ERROR = "Deleting", "Error"
# Phases in which the guest was up: a vanished VMI means the world changed under us.
WAS_UP = [RUNNING, SUSPENDING, SUSPENDED, RESUMING]
# Phases in which a VMI may live, so a stop has something to stop.
STOPPABLE = [STARTING, RUNNING, RESTARTING, SUSPENDING, SUSPENDED, RESUMING, ERROR]
NOT_YET_CREATED = [PENDING, CREATING]
# Phases that follow the VM's creation: without a VM, someone deleted it outside Wukong.
HAD_VM = [STARTING, RUNNING, STOPPING, STOPPED, RESTARTING, SUSPENDING, SUSPENDED, RESUMING]
NOT_DELETING = [p.value for p in Phase if p is not Phase.Deleting]

# One row per line-pair reads as a table; keep the formatter from exploding it.
# fmt: off
TRANSITIONS: list[dict[str, Any]] = [
    # --- user requests; the reason becomes the Event reason ---
    {"trigger": "start", "source": STOPPED, "dest": STARTING,
     "after": "start_vm", "reason": "StartRequested"},
    {"trigger": "start", "source": NOT_YET_CREATED, "dest": None, "reason": "StartRequested"},
    {"trigger": "stop", "source": STOPPABLE, "dest": STOPPING, "conditions": "forced",
     "after": "force_stop_vm", "reason": "ForceStopRequested"},
    {"trigger": "stop", "source": STOPPABLE, "dest": STOPPING, "unless": "forced",
     "after": "stop_vm", "reason": "StopRequested"},
    {"trigger": "stop", "source": STOPPING, "dest": STOPPING, "conditions": "forced",
     "after": "force_stop_vm", "reason": "ForceStopRequested"},
    {"trigger": "stop", "source": NOT_YET_CREATED, "dest": None, "reason": "StopRequested"},
    {"trigger": "restart", "source": [RUNNING, ERROR], "dest": RESTARTING,
     "conditions": ["vm_exists", "forced"], "after": "force_restart_vm",
     "reason": "ForceRestartRequested"},
    {"trigger": "restart", "source": [RUNNING, ERROR], "dest": RESTARTING,
     "conditions": "vm_exists", "unless": "forced", "after": "restart_vm",
     "reason": "RestartRequested"},
    {"trigger": "restart", "source": RESTARTING, "dest": RESTARTING, "conditions": "forced",
     "after": "force_restart_vm", "reason": "ForceRestartRequested"},
    {"trigger": "suspend", "source": [RUNNING, RESUMING], "dest": SUSPENDING,
     "unless": "vmi_paused_otherwise", "after": "pause_vmi", "reason": "SuspendRequested"},
    {"trigger": "resume", "source": [SUSPENDED, SUSPENDING], "dest": RESUMING,
     "after": "unpause_vmi", "reason": "ResumeRequested"},
    # --- observations, in priority order per source phase ---
    {"trigger": "sync", "source": NOT_DELETING, "dest": DELETING, "conditions": "deleting",
     "reason": "DeletionRequested"},
    {"trigger": "sync", "source": PENDING, "dest": CREATING, "conditions": "spec_valid",
     "reason": "SpecAccepted"},
    {"trigger": "sync", "source": [CREATING, STARTING, STOPPED, RESTARTING, *WAS_UP],
     "dest": ERROR, "conditions": "provisioning_failed", "reason": "ProvisioningFailed"},
    {"trigger": "sync", "source": [STARTING, *WAS_UP], "dest": ERROR,
     "conditions": "vmi_failed", "reason": "VMIFailed"},
    {"trigger": "sync", "source": RESTARTING, "dest": ERROR,
     "conditions": ["vmi_restarted", "vmi_failed"], "reason": "VMIFailed"},
    # The VM deleted outside Wukong (`kubectl delete vm`): made again from the spec, as at
    # first; Creating -> Starting then starts it under Manual too (the user never stopped it).
    {"trigger": "sync", "source": HAD_VM, "dest": CREATING, "conditions": "vm_was_seen",
     "unless": "vm_exists", "reason": "VMDeleted"},
    # KubeVirt refused the call (lifecycleState Failed): nothing happened, so the phase says
    # what the VM does instead of waiting for an effect that never comes.
    {"trigger": "sync", "source": [RESTARTING, SUSPENDING], "dest": RUNNING,
     "conditions": ["call_refused", "guest_unsuspended"], "reason": "CallRefused"},
    {"trigger": "sync", "source": RESUMING, "dest": SUSPENDED,
     "conditions": ["call_refused", "guest_paused"], "reason": "CallRefused"},
    # A restart that left the guest off (its forced stop made, the start after it refused).
    {"trigger": "sync", "source": RESTARTING, "dest": STOPPED,
     "conditions": ["start_refused", "vmi_gone"], "reason": "CallRefused"},
    # A refused start leaves the VM stopped, a stop refused for good leaves the guest as it was.
    {"trigger": "sync", "source": STARTING, "dest": STOPPED,
     "conditions": ["call_refused", "vmi_gone"], "unless": "want_running",
     "reason": "CallRefused"},
    {"trigger": "sync", "source": STOPPING, "dest": SUSPENDED,
     "conditions": ["call_refused", "guest_paused"], "reason": "CallRefused"},
    {"trigger": "sync", "source": STOPPING, "dest": RUNNING,
     "conditions": ["call_refused", "vmi_up"], "reason": "CallRefused"},
    {"trigger": "sync", "source": STOPPING, "dest": STARTING,
     "conditions": ["call_refused", "vmi_alive"], "reason": "CallRefused"},
    # KubeVirt restarting a failed VMI (a crash loop, RerunOnFailure) is a restart, not a
    # new VM: straight to Starting, without Creating and its "VMCreated" for a VM that was
    # there all along.
    {"trigger": "sync", "source": ERROR, "dest": STARTING,
     "conditions": ["vm_exists", "children_ready", "want_running"],
     "unless": ["provisioning_failed", "vmi_failed"], "reason": "VMIRestarting"},
    {"trigger": "sync", "source": ERROR, "dest": CREATING,
     "unless": ["provisioning_failed", "vmi_failed"], "reason": "Recovered"},
    {"trigger": "sync", "source": CREATING, "dest": STARTING,
     "conditions": ["vm_exists", "vm_should_run"], "reason": "VMCreated"},
    {"trigger": "sync", "source": CREATING, "dest": STOPPED, "conditions": "vm_exists",
     "reason": "VMCreatedStopped"},
    {"trigger": "sync", "source": [STARTING, SUSPENDED, RESUMING], "dest": RUNNING,
     "conditions": "vmi_up", "reason": "VMIRunning"},
    {"trigger": "sync", "source": [STARTING, RUNNING, SUSPENDING], "dest": SUSPENDED,
     "conditions": "guest_paused", "reason": "VMIPaused"},
    {"trigger": "sync", "source": STARTING, "dest": STOPPED, "conditions": "vmi_gone",
     "unless": "want_running", "reason": "VMIStopped"},
    {"trigger": "sync", "source": WAS_UP, "dest": STARTING, "conditions": "vmi_booting",
     "reason": "VMIRestarting"},
    {"trigger": "sync", "source": WAS_UP, "dest": STARTING,
     "conditions": ["vmi_gone", "kubevirt_restarts"], "reason": "VMIRestarting"},
    {"trigger": "sync", "source": WAS_UP, "dest": STOPPED, "conditions": "vmi_gone",
     "reason": "VMIStopped"},
    # Not while KubeVirt has a Start pending: a restart's VMI gone between its two steps
    # comes back, and the stop made during the restart is still to stop that one.
    {"trigger": "sync", "source": STOPPING, "dest": STOPPED, "conditions": "vmi_gone",
     "unless": "start_pending", "reason": "VMIStopped"},
    {"trigger": "sync", "source": STOPPING, "dest": STOPPING,
     "conditions": "stop_deadline_passed", "unless": ["forced", "force_issued"],
     "after": "force_stop_vm", "reason": "StopGracePeriodExpired"},
    {"trigger": "sync", "source": RESTARTING, "dest": RUNNING,
     "conditions": ["vmi_restarted", "vmi_up"], "reason": "VMIRestarted"},
    # Stopped outside Wukong while it restarted (virtctl stop under Manual): nothing will
    # start it again.
    {"trigger": "sync", "source": RESTARTING, "dest": STOPPED, "conditions": "left_off",
     "reason": "VMStoppedOutside"},
    {"trigger": "sync", "source": RESTARTING, "dest": RESTARTING,
     "conditions": "stop_deadline_passed",
     "unless": ["vmi_restarted", "forced", "force_issued"],
     "after": "force_restart_vm", "reason": "RestartGracePeriodExpired"},
    {"trigger": "sync", "source": STOPPED, "dest": STARTING, "conditions": "vmi_alive",
     "reason": "VMIStarted"},
]
# fmt: on


def _label(row: dict[str, Any]) -> str:
    """An edge label: trigger, guards in brackets (! for unless), effect after a slash."""
    guards = [*_names(row.get("conditions")), *(f"!{g}" for g in _names(row.get("unless")))]
    label = str(row["trigger"]) + (f" [{', '.join(guards)}]" if guards else "")
    effects = [name.upper() for name in _names(row.get("after"))]
    return label + (f" / {', '.join(effects)}" if effects else "")


def _names(value: str | list[str] | None) -> list[str]:
    """A table cell that holds one name or a list of them, as a list."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def mermaid() -> str:
    """The whole transition table as a Mermaid stateDiagram-v2."""
    lines = ["stateDiagram-v2", f"    [*] --> {Phase.Pending.value}"]
    for row in TRANSITIONS:
        for source in _names(row["source"]):
            dest = row["dest"] or source
            lines.append(f"    {source} --> {dest}: {_label(row)}")
    return "\n".join(lines) + "\n"
