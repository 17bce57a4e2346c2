"""The status a pass writes: phase, children's facts, conditions and a short history."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from wukong.fsm.machine import Phase, Step
from wukong.reconcile.conditions import Cond
from wukong.reconcile.observed import JsonObj, Observed
from wukong.reconcile.timefmt import iso, parse_time

HISTORY_LIMIT = 10
READY = "Ready"
STALLED = "Stalled"
# Phases that should not last: past `stall_after` they raise Stalled.
TRANSIENT_PHASES = {
    Phase.Creating,
    Phase.Starting,
    Phase.Stopping,
    Phase.Restarting,
    Phase.Suspending,
    Phase.Resuming,
    Phase.Deleting,
}


def merge_conditions(
    old: Iterable[JsonObj], new: Iterable[Cond], now: datetime, generation: int | None
) -> list[JsonObj]:
    """metav1.Condition semantics: lastTransitionTime moves only when the status flips."""
    merged = {c.get("type"): dict(c) for c in old}
    for cond in new:
        previous = merged.get(cond.type, {})
        changed = previous.get("status") != cond.wire_status
        merged[cond.type] = {
            "type": cond.type,
            "status": cond.wire_status,
            "reason": cond.reason,
            "message": cond.message,
            "lastTransitionTime": iso(now) if changed else previous.get("lastTransitionTime"),
            "observedGeneration": generation,
        }
    return sorted(merged.values(), key=lambda c: str(c.get("type")))


def interfaces(seen: Observed) -> list[JsonObj]:
    """The VMI's interfaces: name, primary IP, all IPs, MAC."""
    out = []
    for iface in (seen.vmi or {}).get("status", {}).get("interfaces") or []:
        entry = {
            "name": iface.get("name"),
            "ipAddress": iface.get("ipAddress"),
            "ipAddresses": iface.get("ipAddresses"),
            "mac": iface.get("mac"),
        }
        out.append({k: v for k, v in entry.items() if v})
    return out


def attach_state(volumes: Iterable[JsonObj], seen: Observed) -> list[JsonObj]:
    """Add `attached`/`hotplugged` to each volume from the VM template and VMI volumeStatus."""
    template = (seen.vm or {}).get("spec", {}).get("template", {}).get("spec", {})
    in_vm = {v.get("name"): v for v in template.get("volumes") or []}
    vmi_status = {
        v.get("name"): v for v in (seen.vmi or {}).get("status", {}).get("volumeStatus") or []
    }
    out = []
    for volume in volumes:
        vm_volume = in_vm.get(volume["name"])
        source: dict[str, Any] = {}
        if vm_volume:
            source = vm_volume.get("dataVolume") or vm_volume.get("persistentVolumeClaim") or {}
        hotplugged = bool(source.get("hotpluggable"))
        live = vmi_status.get(volume["name"], {})
        attached = bool(vm_volume) and (seen.vmi is None or live.get("phase") in (None, "Ready"))
        if hotplugged:
            attached = live.get("phase") == "Ready"
        out.append(volume | {"attached": attached, "hotplugged": hotplugged})
    return out


def history(old: list[JsonObj], step: Step, now: datetime) -> list[JsonObj]:
    """Append the pass's phase changes; keep the last HISTORY_LIMIT."""
    entries = list(old)
    for source, dest, reason in step.hops:
        if source != dest:
            entries.append(
                {"from": source.value, "to": dest.value, "reason": reason, "time": iso(now)}
            )
    return entries[-HISTORY_LIMIT:]


def phase_since(status: JsonObj) -> datetime | None:
    """When the current phase was entered (from the history)."""
    entries = status.get("history") or []
    return parse_time(entries[-1].get("time")) if entries else None


def ready_condition(step: Step, seen: Observed) -> Cond:
    """Ready = the guest runs and its VMI is Ready."""
    lost = seen.vmi_phase == "Unknown"  # its node stopped reporting: not Ready (issue 15)
    if step.phase is Phase.Running and seen.vmi_condition("Ready") and not lost:
        node = (seen.vmi or {}).get("status", {}).get("nodeName", "")
        return Cond(READY, True, "VMRunning", f"the VM runs on {node}".strip())
    return Cond(READY, False, step.phase.value, f"the Wukong is {step.phase.value}")


def stalled_condition(
    phase: Phase, since: datetime | None, now: datetime, stall_after: float, what: str
) -> tuple[Cond, float | None]:
    """Stalled when a transient phase outlives `stall_after`; also when to look again."""
    if phase not in TRANSIENT_PHASES or since is None:
        return Cond(STALLED, False, "Progressing", "nothing is stuck"), None
    age = (now - since).total_seconds()
    if age < stall_after:
        # A stable message: a countdown here would rewrite status on every pass.
        message = f"{phase.value} since {iso(since)}"
        return Cond(STALLED, False, "Progressing", message), stall_after - age + 0.05
    message = f"{phase.value} for {int(age)}s (more than {int(stall_after)}s): {what}"
    return Cond(STALLED, True, f"{phase.value}TooLong", message), None
