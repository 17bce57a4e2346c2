"""VirtualMachine status as KubeVirt's VM controller computes it (pure functions)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ._kube import JsonObj
from .objects import (
    annotation,
    condition,
    condition_true,
    conditions,
    deleting,
    drop_condition,
    is_final,
    phase,
    run_strategy,
    set_condition,
    template_spec,
)

VM_OWN_CONDITIONS = ("Ready", "Failure", "RestartRequired")
DV_ERROR_REASONS = ("Error", "ImagePullFailed")
GENERATION_ANN = "kubevirt.io/vm-generation"

Lookup = Callable[[str], JsonObj | None]


def has_stop_request_for(vm: JsonObj, vmi: JsonObj | None) -> bool:
    """The first state change request is a Stop for this VMI."""
    reqs = (vm.get("status") or {}).get("stateChangeRequests") or []
    if not reqs or vmi is None or reqs[0].get("action") != "Stop":
        return False
    return bool(reqs[0].get("uid") == vmi["metadata"]["uid"])


def has_start_request(vm: JsonObj) -> bool:
    """The first state change request is a Start."""
    reqs = (vm.get("status") or {}).get("stateChangeRequests") or []
    return bool(reqs) and reqs[0].get("action") == "Start"


def start_paused_requested(vm: JsonObj) -> bool:
    """The pending Start request asks for a paused start."""
    reqs = (vm.get("status") or {}).get("stateChangeRequests") or []
    return bool(reqs) and (reqs[0].get("data") or {}).get("paused") == "true"


def trim_first_request(vm: JsonObj, vmi: JsonObj | None) -> bool:
    """Whether the first state change request has been acted upon (vm.go)."""
    reqs = (vm.get("status") or {}).get("stateChangeRequests") or []
    if not reqs:
        return False
    first = reqs[0]
    if first.get("action") == "Stop":
        return vmi is None or not first.get("uid") or first["uid"] != vmi["metadata"]["uid"]
    if first.get("action") == "Start":
        return vmi is not None and not deleting(vmi) and not is_final(vmi)
    return False


def _was_running(vmi: JsonObj | None) -> bool:
    stamps = ((vmi or {}).get("status") or {}).get("phaseTransitionTimestamps") or []
    return any(s.get("phase") == "Running" for s in stamps)


def sync_start_failure(
    vm: JsonObj, vmi: JsonObj | None, status: JsonObj, base_delay: float
) -> None:
    """Count VMIs that failed before ever running, to back off restarts (CrashLoopBackOff)."""
    strategy = run_strategy(vm)
    if _was_running(vmi) or strategy not in ("Always", "RerunOnFailure", "Once"):
        status.pop("startFailure", None)
        return
    if vmi is None or not is_final(vmi):
        return
    failure = status.get("startFailure") or {}
    if failure.get("lastFailedVMIUID") == vmi["metadata"]["uid"]:
        return
    count = int(failure.get("consecutiveFailCount", 0)) + 1
    retry = datetime.now(UTC) + timedelta(seconds=min(base_delay * count**2, 300))
    status["startFailure"] = {
        "lastFailedVMIUID": vmi["metadata"]["uid"],
        "consecutiveFailCount": count,
        "retryAfterTimestamp": retry.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


def start_backoff_left(vm: JsonObj) -> float:
    """Seconds until a crash-looping VM may be started again."""
    failure = (vm.get("status") or {}).get("startFailure") or {}
    stamp = failure.get("retryAfterTimestamp")
    if not stamp:
        return 0.0
    when = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _dv_names(vm: JsonObj) -> list[str]:
    return [
        str(v["dataVolume"]["name"])
        for v in template_spec(vm).get("volumes") or []
        if (v.get("dataVolume") or {}).get("name")
    ]


def printable_status(vm: JsonObj, vmi: JsonObj | None, dv: Lookup, pvc: Lookup) -> str:
    """First match wins, in vm.go's order (Migrating and image-pull states never happen here)."""
    paused = condition_true(vmi, "Paused")
    running = phase(vmi) == "Running"
    dvs = [d for d in (dv(n) for n in _dv_names(vm)) if d is not None]
    claims = [
        (v.get("persistentVolumeClaim") or {}).get("claimName")
        or (v.get("dataVolume") or {}).get("name")
        for v in template_spec(vm).get("volumes") or []
    ]
    strategy = run_strategy(vm)
    set_to_start = strategy == "Always" or (
        strategy == "RerunOnFailure" and phase(vmi) != "Succeeded"
    )
    checks: list[tuple[str, bool]] = [
        ("Terminating", deleting(vm)),
        ("Stopping", vmi is not None and not is_final(vmi) and deleting(vmi)),
        ("Paused", running and paused),
        ("Running", running and not paused),
        ("ErrorPvcNotFound", _vmi_cond_is(vmi, "Synchronized", "False", "FailedPvcNotFound")),
        ("DataVolumeError", any(_dv_failing(d) for d in dvs)),
        ("ErrorUnschedulable", _vmi_cond_is(vmi, "PodScheduled", "False", "Unschedulable")),
        (
            "Provisioning",
            any(
                phase(d) not in ("Succeeded", "Failed", "WaitForFirstConsumer", "PendingPopulation")
                for d in dvs
            ),
        ),
        (
            "WaitingForVolumeBinding",
            set_to_start
            and any(phase(p) == "Pending" for p in (pvc(c) for c in claims if c) if p is not None),
        ),
        ("Starting", vmi is not None and phase(vmi) in ("", "Pending", "Scheduling", "Scheduled")),
        (
            "CrashLoopBackOff",
            (vmi is None or is_final(vmi))
            and strategy in ("Always", "RerunOnFailure", "Once")
            and bool((vm.get("status") or {}).get("startFailure")),
        ),
        ("Stopped", vmi is None or is_final(vmi)),
    ]
    return next((name for name, hit in checks if hit), "Unknown")


def _vmi_cond_is(vmi: JsonObj | None, ctype: str, status: str, reason: str) -> bool:
    cond = condition(vmi, ctype)
    return cond is not None and cond.get("status") == status and cond.get("reason") == reason


def _dv_failing(dv: JsonObj) -> bool:
    running = condition(dv, "Running")
    return phase(dv) == "Failed" or (
        running is not None
        and running.get("status") == "False"
        and running.get("reason") in DV_ERROR_REASONS
    )


def sync_conditions(
    vm: JsonObj, vmi: JsonObj | None, failure: tuple[str, str] | None, restart_required: bool
) -> list[JsonObj]:
    """Ready mirrored, Failure from the last sync error, other VMI conditions copied over."""
    conds = conditions(vm)
    ready = condition(vmi, "Ready")
    if vmi is None:
        conds = set_condition(conds, "Ready", "False", "VMINotExists", "VMI does not exist")
    elif ready is None:
        conds = set_condition(
            conds, "Ready", "False", "VMIConditionMissing", "VMI is missing the Ready condition"
        )
    else:
        conds = set_condition(
            conds,
            "Ready",
            str(ready.get("status")),
            str(ready.get("reason", "")),
            str(ready.get("message", "")),
        )
    if failure is None:
        conds = drop_condition(conds, "Failure")
    else:
        conds = set_condition(conds, "Failure", "True", failure[0], failure[1])
    if restart_required:
        conds = set_condition(
            conds,
            "RestartRequired",
            "True",
            message="a non-live-updatable field was changed in the template spec",
        )
    else:
        conds = drop_condition(conds, "RestartRequired")
    own = {c["type"]: c for c in conds if c.get("type") in VM_OWN_CONDITIONS}
    result = [own[t] for t in VM_OWN_CONDITIONS if t in own]
    # KubeVirt copies every other VMI condition (AgentConnected, Paused, ...) onto the VM.
    return result + [
        copy.deepcopy(c) for c in conditions(vmi) if c.get("type") not in VM_OWN_CONDITIONS
    ]


def observed_generation(vmi: JsonObj | None) -> int | None:
    """The VM generation the VMI was started from (its vm-generation annotation)."""
    value = annotation(vmi, GENERATION_ANN)
    return int(value) if value and value.isdigit() else None


def change_request_ops(vm: JsonObj, changes: list[JsonObj]) -> list[JsonObj]:
    """JSON patch appending state change requests, guarded by a `test` (virt-api's shape).

    Raises ValueError("unable to complete request: stop/start already underway") when
    other requests are pending and this is not a lone Stop (which replaces them).
    """
    status = vm.get("status")
    if not status:
        return [{"op": "add", "path": "/status", "value": {"stateChangeRequests": changes}}]
    current = status.get("stateChangeRequests")
    lone_stop = len(changes) == 1 and changes[0].get("action") == "Stop"
    if current and not lone_stop:
        raise ValueError("unable to complete request: stop/start already underway")
    ops: list[JsonObj] = []
    if current is not None:
        ops.append({"op": "test", "path": "/status/stateChangeRequests", "value": current})
    ops.append({"op": "add", "path": "/status/stateChangeRequests", "value": changes})
    if status.get("startFailure"):
        ops.append({"op": "remove", "path": "/status/startFailure"})
    return ops
