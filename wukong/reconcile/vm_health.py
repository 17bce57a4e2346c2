"""The VM's own trouble, as KubeVirt reports it (issue 15 point 2). Pure.

KubeVirt's VirtualMachine `printableStatus` names what stops a VM from running (it cannot be
scheduled, its image cannot be pulled, its launcher crashes, a volume is missing) and its
conditions (mirrored from the VMI) carry the detail, e.g. PodScheduled=False "0/3 nodes are
available: ..."; its Failure condition says when virt-controller cannot even make the VMI
(an instance type or preference that does not exist, or a VMI the API server refuses for
longer than a passing error lasts), and the VMI's Synchronized condition when the API server
refuses its launcher pod, the kubelet's when it cannot make that pod's sandbox (a network it
cannot attach) and virt-handler's when the launcher cannot start the guest
(`launcher_trouble.py`). A running VMI not Ready for long (its launcher pod is not: on a node
that stopped reporting, until someone acts), a VMI failed on an unresponsive node, and one in
phase Unknown lost contact with its node. Each becomes `VMHealthy=False` with KubeVirt's
words (absent when there is no trouble), so `kubectl get wk` and `describe` say what to fix.
"""

from __future__ import annotations

from datetime import datetime

from wukong.api import JsonObj
from wukong.api.conditions import VM_HEALTHY, Cond, Condition
from wukong.reconcile.launcher_trouble import (
    domain_sync_failure,
    sandbox_failure,
    until_sandbox_failure_lasts,
    until_sync_failure_lasts,
)
from wukong.reconcile.observed import IO_ERROR_PAUSE, Observed, condition_of, migration_under_way
from wukong.reconcile.timefmt import iso, parse_time

# printableStatus values that mean the VM cannot run until someone acts, and what to check.
VM_ERRORS = {
    "ErrorUnschedulable": "no node can take the VM (resources, node selectors, taints)",
    "ErrImagePull": "the container disk image cannot be pulled",
    "ImagePullBackOff": "the container disk image cannot be pulled (retrying)",
    "CrashLoopBackOff": "the VM's launcher keeps failing to start",
    "DataVolumeError": "a DataVolume of the VM failed",
    "ErrorPvcNotFound": "a PVC the VM uses does not exist",
}
# (KubeVirt v1.7 has no printableStatus for a missing DataVolume: HasDataVolumeErrors skips
# one, and the Wukong's own disk planner makes it again.)
# virt-controller's sync errors that wait for someone to act, as the VM's Failure condition's
# reason: the VM names an instance type or preference that does not exist (pkg/instancetype/
# controller/vm, checkResourcesExist). No VMI is made, so printableStatus only says Stopped;
# virt-controller retries, and the condition goes once the object exists.
SYNC_ERRORS = {
    "FailedFindInstancetype": "the instance type it names does not exist",
    "FailedFindPreference": "the preference it names does not exist",
}
# virt-controller's sync errors that may pass on its next try: FailedCreate is a conflict or a
# VMI create the API server refused for a moment, but also a quota on VMIs or a webhook that
# refuses every try. Reported once the condition has lasted LASTING seconds: KubeVirt keeps
# its lastTransitionTime while the reason holds (pkg/controller/conditions.go UpdateCondition)
# and drops it on the first sync that succeeds, so an older one is not passing.
PASSING_SYNC_ERRORS = {
    "FailedCreate": "virt-controller cannot create the VMI",
    # virt-controller cannot apply a disk hot-plug to the running VMI (vm.go
    # hotplugVolumeErrorReason), e.g. no free PCIe port: DiskHotplug says Attaching meanwhile.
    "HotPlugVolumeError": "virt-controller cannot hot-plug a disk",
}
# What each passing error, once it lasts, stops: the VM starting, or a disk being plugged.
_LASTING_WORDS = {"HotPlugVolumeError": "VM cannot hot-plug a disk"}
LASTING = 10.0
# Our reason for virt-handler's failure to start the domain of a VMI not yet running (its own,
# "Synchronizing with the Domain failed.", is a sentence), reported once it lasts LASTING: a
# first sync can fail for a moment while virt-launcher comes up.
DOMAIN_SYNC_FAILED = "DomainSyncFailed"
# Ours for the kubelet's FailedCreatePodSandBox on the VMI's pod (mostly a network it cannot
# attach), reported once it lasts LASTING as well: a CNI ADD can fail once and then succeed.
POD_SANDBOX_FAILED = "PodSandboxFailed"
# A running VMI not Ready for this long, neither paused nor handed over by a migration: its
# virt-launcher pod is not Ready (KubeVirt copies the pod's Ready onto the VMI), which on a
# working node lasts seconds. A node that stopped reporting keeps it so until someone acts:
# the node lifecycle controller marks its pods not Ready, and KubeVirt runs the VM again
# elsewhere only once those pods are gone, which needs the node deleted or marked out of
# service. A migration from that node stops where it is, and does not end it either.
NOT_READY_LASTING = 30.0
# kubelet's Ready reason while a readiness gate is off: KubeVirt's unpaused gate, on for a
# moment after a resume (virt-handler drops Paused first, the gate, the pod's Ready and the
# VMI's copy of it follow), with the time the pause began. A lost node's pods keep the reason
# they had while Ready: none.
GATES_NOT_READY = "ReadinessGatesNotReady"
# Where KubeVirt puts the detail: (condition type, the status that means trouble).
_DETAIL = (
    ("PodScheduled", "False"),
    ("Failure", "True"),
    ("DataVolumesReady", "False"),
    ("Synchronized", "False"),
    ("Ready", "False"),
)


def _detail(obj: JsonObj | None) -> str:
    conditions = (obj or {}).get("status", {}).get("conditions") or []
    for type_, bad in _DETAIL:
        for cond in conditions:
            if cond.get("type") == type_ and cond.get("status") == bad and cond.get("message"):
                return str(cond["message"])
    return ""


def _launcher_refused(vmi: JsonObj | None) -> str:
    """virt-controller's words when the API server refused the VMI's launcher pod (a quota,
    Pod Security, a webhook): `Synchronized=False`, reason FailedCreate, "failed to create
    virtual machine pod: ..." or "... needs a privileged namespace to run: ...". The same
    reason also says "active migration exists", which passes: not that one."""
    cond = condition_of(vmi, "Synchronized") or {}
    if (cond.get("status"), cond.get("reason")) != ("False", "FailedCreate"):
        return ""
    message = str(cond.get("message") or "")
    return message if message.startswith("failed to create") and "pod" in message else ""


def _failed_detail(vmi: JsonObj | None) -> str:
    """Why a VMI failed, in KubeVirt's words. A VMI whose launcher pod went away while it ran
    (evicted, deleted, or force-deleted off a lost node) fails without a reason, and its
    Ready condition says what it says of a pod not made yet (PodNotExists, "virt-launcher pod
    has not yet been scheduled"): not that, for a VMI that had a node."""
    ready = condition_of(vmi, "Ready") or {}
    if ready.get("reason") == "PodNotExists" and (vmi or {}).get("status", {}).get("nodeName"):
        return "its virt-launcher pod is gone (deleted, evicted, or its node lost)"
    return _detail(vmi) or "the guest or its launcher ended with an error"


def _handed_over(migration: JsonObj, node: str | None) -> bool:
    """A migration under way that has moved the VMI to its target node (the target's
    virt-handler names it in the VMI when it acknowledges the end, just before `completed`):
    its Ready may be the target pod's, not Ready since that pod began. Until then
    virt-controller copies the source pod's Ready (`CurrentVMIPod`: the newest pod on the
    VMI's node; KubeVirt keeps the target off the source node), also through post-copy,
    which a migration leaves Ready: a source pod not Ready is its node's trouble, and the
    migration cannot finish without that node."""
    target = migration.get("targetNode")
    return migration_under_way(migration) and bool(target) and target == node


def _moved(migration: JsonObj) -> datetime | None:
    """When a migration that moved the VMI ended (one that failed or was aborted left it
    where it was)."""
    if not migration.get("completed") or migration.get("failed"):
        return None
    return parse_time(migration.get("endTimestamp"))


def _not_ready_since(seen: Observed) -> datetime | None:
    """When a running VMI, neither paused, handed over by a migration nor being deleted,
    stopped being Ready;
    None when it is Ready, is not such a VMI, or KubeVirt gave no time. (A VMI being deleted,
    by a stop or restart, has its launcher pod deleted at once, so it is not Ready
    (PodTerminating) for as long as its guest takes to shut down.)"""
    vmi = seen.vmi or {}
    status = vmi.get("status") or {}
    migration = status.get("migrationState") or {}
    if seen.vmi_phase != "Running" or seen.vmi_pause() is not None:
        return None
    if (vmi.get("metadata") or {}).get("deletionTimestamp"):
        return None
    if _handed_over(migration, status.get("nodeName")):
        return None
    ready = condition_of(vmi, "Ready")
    if ready is None or ready.get("status") == "True":
        return None
    if ready.get("reason") == GATES_NOT_READY:
        return None
    since = parse_time(ready.get("lastTransitionTime"))
    ended = _moved(migration)
    if since is not None and ended is not None and ended > since:
        # Migrated: Ready is now the target pod's, not Ready from its start until the switch.
        return ended
    return since


def _reported_not_ready(before: Condition | None, seen: Observed) -> bool:
    """The Wukong already says this VMI is not Ready (VMINotReady, written since the VMI was
    made), and it still runs and is not. KubeVirt restarts the Ready condition's clock
    whenever its reason changes (the lost node's pod evicted: PodTerminating), and counting
    30 s again would clear the condition, with a Normal NoError, in the middle of the trouble;
    a stop sent meanwhile hangs on the same pod."""
    if before is None or (before.status, before.reason) != ("False", "VMINotReady"):
        return False
    vmi = seen.vmi or {}
    if seen.vmi_phase != "Running" or seen.vmi_condition("Ready"):
        return False
    status = vmi.get("status") or {}
    migration = status.get("migrationState") or {}
    moved = _moved(migration)
    if _handed_over(migration, status.get("nodeName")) or (
        moved is not None and moved > before.last_transition_time
    ):
        return False  # moved off the node it was reported on: its target is timed afresh
    made = parse_time((vmi.get("metadata") or {}).get("creationTimestamp"))
    return made is not None and before.last_transition_time >= made


def _until_not_ready_lasts(seen: Observed) -> float | None:
    """Seconds until a running VMI's not being Ready has lasted NOT_READY_LASTING (<= 0: it
    has); None when it is not such a VMI."""
    since = _not_ready_since(seen)
    return None if since is None else NOT_READY_LASTING - (seen.now - since).total_seconds()


def _not_ready_message(vmi: JsonObj) -> str:
    """A stable message (no age in it: that would rewrite status every pass)."""
    status = vmi.get("status") or {}
    node = status.get("nodeName") or "its node"
    ready = condition_of(vmi, "Ready") or {}
    since = parse_time(ready.get("lastTransitionTime"))
    when = f" since {iso(since)}" if since is not None else ""
    why = str(ready.get("message") or "its virt-launcher pod is not Ready")
    migration = status.get("migrationState") or {}
    target = migration.get("targetNode")
    moving = ""
    if target and target != status.get("nodeName") and migration_under_way(migration):
        moving = f" (the migration to {target} cannot finish then)"
    return (
        f"VMI not Ready on {node}{when}: {why}. If {node} is down{moving}, KubeVirt runs "
        "the VM again elsewhere only once its pod is gone: delete the node, or mark it out "
        "of service (taint node.kubernetes.io/out-of-service)"
    )


def _until_lasting(failure: JsonObj, now: datetime) -> float | None:
    """Seconds until the VM's Failure condition, if its reason may pass, has lasted long
    enough to report (<= 0: it has); None when there is none or it carries no time."""
    if failure.get("status") != "True" or failure.get("reason") not in PASSING_SYNC_ERRORS:
        return None
    since = parse_time(failure.get("lastTransitionTime"))
    return None if since is None else LASTING - (now - since).total_seconds()


def health_due(seen: Observed) -> float | None:
    """Seconds until `vm_health` reports a passing sync error, a failure to make the pod's
    sandbox or to start the domain, or a VMI not Ready that is still young, if it holds
    that long (the pass to requeue at); None when nothing waits."""
    waits = [
        left + 0.05
        for left in (
            _until_lasting(condition_of(seen.vm, "Failure") or {}, seen.now),
            _until_not_ready_lasts(seen),
            until_sync_failure_lasts(seen, LASTING),
            until_sandbox_failure_lasts(seen, LASTING),
        )
        if left is not None and left > 0
    ]
    return min(waits, default=None)


def _crash_loop(seen: Observed) -> Cond | None:
    """A crash loop between its VMIs: KubeVirt counts the VMIs that failed before they ran
    (vm.go syncStartFailureStatus) and clears the count once one runs. printableStatus says
    CrashLoopBackOff only while no VMI is there; between, each new VMI read as "no error" and
    its failure as a new one: a Normal NoError and two Warnings per try, every few minutes
    (found by a monitoring audit, session 42). One reason for the whole loop."""
    failure = (seen.vm or {}).get("status", {}).get("startFailure") or {}
    count = failure.get("consecutiveFailCount")
    if not isinstance(count, int) or count <= 0 or seen.vmi_phase == "Running":
        return None
    if seen.vmi_phase == "Failed":
        now = f"this try failed too: {_failed_detail(seen.vmi)}"
    elif seen.vmi is not None:
        now = "KubeVirt is trying again"
    else:
        now = "KubeVirt tries again after a back-off of up to 5 minutes"
    starts = "start" if count == 1 else f"{count} starts in a row"
    return Cond(
        VM_HEALTHY, False, "CrashLoopBackOff", f"VM CrashLoopBackOff: {starts} failed; {now}"
    )


def vm_health(seen: Observed, before: Condition | None = None) -> Cond | None:
    """VMHealthy: False with KubeVirt's reason and message while the VM is in trouble; None
    (absent, like the operation conditions) while KubeVirt reports no error. `before`: the
    Wukong's VMHealthy as written (a VMI reported not Ready stays so while it is not)."""
    printable = str((seen.vm or {}).get("status", {}).get("printableStatus") or "")
    if printable in VM_ERRORS:
        detail = _detail(seen.vm) or _detail(seen.vmi) or VM_ERRORS[printable]
        return Cond(VM_HEALTHY, False, printable, f"VM {printable}: {detail}")
    failure = condition_of(seen.vm, "Failure") or {}
    reason = failure.get("reason")
    if failure.get("status") == "True" and reason in SYNC_ERRORS:
        detail = failure.get("message") or SYNC_ERRORS[reason]
        return Cond(VM_HEALTHY, False, reason, f"VM cannot start: {detail}")
    left = _until_lasting(failure, seen.now)
    if left is not None and left <= 0:
        detail = failure.get("message") or PASSING_SYNC_ERRORS[str(reason)]
        words = _LASTING_WORDS.get(str(reason), "VM cannot start")
        return Cond(VM_HEALTHY, False, str(reason), f"{words}: {detail}")
    refused = _launcher_refused(seen.vmi)
    if refused:
        return Cond(VM_HEALTHY, False, "LauncherPodRefused", f"VM cannot start: {refused}")
    left = until_sandbox_failure_lasts(seen, LASTING)
    if left is not None and left <= 0:
        detail = sandbox_failure(seen)
        return Cond(VM_HEALTHY, False, POD_SANDBOX_FAILED, f"VM cannot start: {detail}")
    left = until_sync_failure_lasts(seen, LASTING)
    if left is not None and left <= 0:
        detail = domain_sync_failure(seen)
        return Cond(VM_HEALTHY, False, DOMAIN_SYNC_FAILED, f"VM cannot start: {detail}")
    if seen.vmi_pause() == IO_ERROR_PAUSE:
        name = (seen.vmi or {}).get("metadata", {}).get("name", "")
        detail = seen.vmi_pause_message() or "VMI was paused, low-level IO error detected"
        return Cond(
            VM_HEALTHY,
            False,
            IO_ERROR_PAUSE,
            f"QEMU paused the guest on a disk I/O error ({detail}); KubeVirt keeps trying to "
            f"resume it, up to 3 min apart: repair or free the volume "
            f"(`virtctl unpause vmi {name}` tries at once)",
        )
    if (looping := _crash_loop(seen)) is not None:
        return looping
    if seen.vmi_phase == "Failed":
        status = (seen.vmi or {}).get("status", {})
        why = str(status.get("reason") or "")
        node = status.get("nodeName") or "its node"
        if why == "NodeUnresponsive":  # virt-controller's node controller gave up on it
            return Cond(VM_HEALTHY, False, "NodeLost", f"VMI failed: {node} stopped responding")
        detail = _failed_detail(seen.vmi)
        return Cond(VM_HEALTHY, False, why or "VMIFailed", f"VMI failed on {node}: {detail}")
    left = _until_not_ready_lasts(seen)
    if (left is not None and left <= 0) or _reported_not_ready(before, seen):
        return Cond(VM_HEALTHY, False, "VMINotReady", _not_ready_message(seen.vmi or {}))
    if seen.vmi_phase == "Unknown":
        detail = (seen.vmi or {}).get("status", {}).get("reason") or _detail(seen.vmi)
        node = (seen.vmi or {}).get("status", {}).get("nodeName") or "its node"
        message = f"VMI phase Unknown: {node} stopped reporting; {detail or 'the node may be lost'}"
        return Cond(VM_HEALTHY, False, "NodeLost", message)
    return None
