"""Why a lifecycle request is refused, in words a person reads in `kubectl describe`."""

from __future__ import annotations

from wukong.fsm.facts import Facts
from wukong.fsm.states import Phase, Request

P, R = Phase, Request

# How a phase reads in the generic "cannot <action>: the VM is <...>" sentence.
_DESCRIBED: dict[Phase, str] = {
    P.Pending: "not created yet",
    P.Creating: "still being created",
    P.Starting: "still starting",
    P.Running: "running",
    P.Stopping: "stopping",
    P.Stopped: "stopped",
    P.Restarting: "restarting",
    P.Suspending: "being suspended",
    P.Suspended: "suspended",
    P.Resuming: "resuming",
    P.Deleting: "being deleted",
    P.Error: "in error",
}

# The pairs where a person deserves more than the generic sentence: what to do instead.
REFUSALS: dict[tuple[Request, Phase], str] = {
    (R.restart, P.Pending): "cannot restart: the VM does not exist yet",
    (R.suspend, P.Pending): "cannot suspend: the VM does not exist yet",
    (R.resume, P.Pending): "cannot resume: the VM does not exist yet",
    (R.restart, P.Creating): "cannot restart: the VM is still being created",
    (R.suspend, P.Creating): "cannot suspend: the VM is still being created",
    (R.resume, P.Creating): "cannot resume: the VM is still being created, not suspended",
    (R.start, P.Starting): "cannot start: the VM is already starting",
    (R.restart, P.Starting): "cannot restart: the VM is still starting; wait until it runs",
    (R.suspend, P.Starting): "cannot suspend: the VM is still starting; wait until it runs",
    (R.resume, P.Starting): "cannot resume: the VM is starting, not suspended",
    (R.start, P.Running): "cannot start: the VM is already running",
    (R.resume, P.Running): "cannot resume: the VM is running, not suspended",
    (R.start, P.Stopping): "cannot start: the VM is still stopping; start it once it has stopped",
    (R.stop, P.Stopping): "cannot stop: the VM is already stopping; use force to power it off now",
    (R.resume, P.Stopping): "cannot resume: the VM is stopping, not suspended",
    (R.stop, P.Stopped): "cannot stop: the VM is already stopped",
    (R.restart, P.Stopped): "cannot restart a stopped VM: start it instead",
    (R.resume, P.Stopped): "cannot resume: the VM is stopped, not suspended",
    (R.restart, P.Restarting): "cannot restart: the VM is already restarting; "
    "use force to restart it now",
    (R.resume, P.Restarting): "cannot resume: the VM is restarting, not suspended",
    (R.start, P.Suspending): "cannot start: the VM is running and being suspended",
    (R.restart, P.Suspending): "cannot restart a suspended VM: resume it first",
    (R.suspend, P.Suspending): "cannot suspend: the VM is already being suspended",
    (R.start, P.Suspended): "cannot start a suspended VM: resume it instead",
    (R.restart, P.Suspended): "cannot restart a suspended VM: resume it first",
    (R.suspend, P.Suspended): "cannot suspend: the VM is already suspended",
    (R.start, P.Resuming): "cannot start: the VM is already resuming",
    (R.restart, P.Resuming): "cannot restart: the VM is still resuming; wait until it runs",
    (R.resume, P.Resuming): "cannot resume: the VM is already resuming",
    (R.start, P.Error): "cannot start: the Wukong is in error; fix the cause, or restart it",
    (R.restart, P.Error): "cannot restart: the VM was never created; "
    "fix the error shown in the conditions",
}


# KubeVirt paused the guest itself: a suspend or resume of the Wukong's is not the answer.
PAUSED_BY_KUBEVIRT: dict[Request, str] = {
    Request.suspend: "cannot suspend: KubeVirt has paused the guest itself (a disk I/O error "
    "or a migration, see VMHealthy and Ready) and resumes it by itself",
    Request.resume: "cannot resume: the guest was not suspended; KubeVirt paused it itself "
    "(a disk I/O error or a migration, see VMHealthy and Ready) and resumes it by itself",
}


def refusal(request: Request, phase: Phase, facts: Facts | None = None) -> str:
    """The sentence explaining why `request` is refused in `phase`."""
    if phase is Phase.Deleting:
        return f"cannot {request.value}: the Wukong is being deleted"
    if facts is not None and facts.vmi_paused_otherwise and request in PAUSED_BY_KUBEVIRT:
        return PAUSED_BY_KUBEVIRT[request]
    explained = REFUSALS.get((request, phase))
    if explained is not None:
        return explained
    subject = "the Wukong" if phase is Phase.Error else "the VM"
    return f"cannot {request.value}: {subject} is {_DESCRIBED[phase]}"


def unknown_request(action: str) -> str:
    """The sentence for an action that is not a lifecycle request at all."""
    known = ", ".join(r.value for r in Request)
    return f"cannot {action}: unknown action (expected one of {known})"
