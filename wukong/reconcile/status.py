"""Status facts read from the children, and the verdicts on Ready and Stalled. Pure.

Merging verdicts into conditions and phase changes into the history is the job of
`wukong.api.conditions`; this module turns what the cluster shows into status values.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from wukong.api.conditions import READY, STALLED, Cond
from wukong.api.status import MAX_INTERFACES, InterfaceStatus, VolumeStatus
from wukong.fsm.machine import Phase, Step
from wukong.reconcile.disks import is_hotpluggable, template_volumes
from wukong.reconcile.observed import Observed, condition_of
from wukong.reconcile.timefmt import iso

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


def interfaces(seen: Observed) -> list[InterfaceStatus]:
    """The VMI's interfaces on the Wukong's networks: name, primary IP, all IPs, MAC.

    The guest agent also reports every NIC of the guest's own (docker0, a veth per container,
    a bridge of libvirt inside): KubeVirt lists them without a network name. They are the
    guest's business, not a network of the Wukong's, and a guest with many of them would
    overflow the status's bounded list (the pass would fail on every try). A VMI that has
    ended has no addresses any more."""
    return [
        InterfaceStatus(
            name=str(iface["name"]),
            ip_address=_reachable(iface.get("ipAddress"), iface.get("ipAddresses")),
            ip_addresses=list(iface.get("ipAddresses") or []),
            mac=iface.get("mac") or None,
        )
        for iface in (seen.vmi or {}).get("status", {}).get("interfaces") or []
        if iface.get("name") and not seen.vmi_ended
    ][:MAX_INTERFACES]


def _link_local(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_link_local
    except ValueError:
        return False  # not an address KubeVirt would write: shown as it is


def _reachable(primary: Any, addresses: Any) -> str | None:
    """The interface's address for `kubectl get wk`: KubeVirt's primary one, unless it is
    link-local (`fe80::…`: virt-handler takes the guest agent's addresses once it reports,
    and a guest whose DHCP has not answered yet, or a network without IPAM, has only that),
    then the first of its other addresses that is not; None when there is none."""
    for address in (primary, *(addresses or ())):
        if address and isinstance(address, str) and not _link_local(address):
            return address
    return None


def node_name(seen: Observed) -> str | None:
    """The node the guest runs on: reported once the VMI runs there, not while it is only
    scheduled (saves a status write per create; the Running write carries it). Still said
    while KubeVirt has lost touch with the guest (phase Unknown, which names the node: its
    IP stays said then too); KubeVirt v1.7 fails such a VMI instead, but an older one may
    write it, and the node is then the question."""
    vmi_status = (seen.vmi or {}).get("status", {})
    if vmi_status.get("phase") not in ("Running", "Unknown"):
        return None
    return vmi_status.get("nodeName") or None


def attach_state(volumes: Iterable[VolumeStatus], seen: Observed) -> list[VolumeStatus]:
    """Set `attached`/`hotplugged` on each volume from the VM template and VMI volumeStatus."""
    in_vm = template_volumes(seen.vm)
    vmi_status = {
        v.get("name"): v for v in (seen.vmi or {}).get("status", {}).get("volumeStatus") or []
    }
    out = []
    for volume in volumes:
        vm_volume = in_vm.get(volume.name)
        hotplugged = vm_volume is not None and is_hotpluggable(vm_volume)
        live = vmi_status.get(volume.name, {})
        attached = vm_volume is not None and (
            seen.vmi is None or live.get("phase") in (None, "Ready")
        )
        if hotplugged:
            attached = live.get("phase") == "Ready"
        out.append(volume.model_copy(update={"attached": attached, "hotplugged": hotplugged}))
    return out


def ready_condition(step: Step, seen: Observed) -> Cond:
    """Ready = the guest runs and its VMI is Ready."""
    lost = seen.vmi_phase == "Unknown"  # its node stopped reporting: not Ready (issue 15)
    pause = seen.vmi_pause()
    if step.phase is Phase.Running and pause:  # by KubeVirt (by a user: Suspended)
        return Cond(READY, False, pause, seen.vmi_pause_message() or "VMI is paused")
    if step.phase is Phase.Running and seen.vmi_condition("Ready") and not lost:
        node = (seen.vmi or {}).get("status", {}).get("nodeName", "")
        return Cond(READY, True, "VMRunning", f"the VM runs on {node}".strip())
    if step.phase is Phase.Running and not lost:  # KubeVirt says why, when it does
        vmi_ready = condition_of(seen.vmi, "Ready") or {}
        reason = str(vmi_ready.get("reason") or "VMINotReady")
        # No words: the launcher pod's Ready went False without any, as the node lifecycle
        # controller turns it off on a node that stopped reporting.
        node = (seen.vmi or {}).get("status", {}).get("nodeName") or "its node"
        words = f"the VMI on {node} is not Ready: its virt-launcher pod is not Ready"
        return Cond(READY, False, reason, str(vmi_ready.get("message") or words))
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
    # Stable too: an age here changed the message, and so wrote status, on every pass a
    # stalled Wukong's children woke (5.6 status writes per Wukong in a 5,000-VM run).
    message = f"{phase.value} since {iso(since)} (more than {int(stall_after)}s): {what}"
    return Cond(STALLED, True, f"{phase.value}TooLong", message), None
