"""VMI status pieces virt-handler reports: interfaces and volumeStatus (pure functions)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ._kube import JsonObj
from .guest import device_names
from .objects import claim_of, is_hotpluggable, phase, quantity_bytes, set_condition

Lookup = Callable[[str], JsonObj | None]
PAUSED_READY_MESSAGE = (
    'the status of pod readiness gate "kubevirt.io/virtual-machine-unpaused" is not "True", '
    "but False"
)


def ready_condition(conds: list[JsonObj], paused: bool) -> list[JsonObj]:
    """Ready follows the launcher pod, whose readiness gate fails while the guest is paused."""
    if paused:
        return set_condition(
            conds, "Ready", "False", "ReadinessGatesNotReady", PAUSED_READY_MESSAGE
        )
    return set_condition(conds, "Ready", "True")


def mac_for(uid: str, index: int) -> str:
    """A stable locally administered MAC per VMI and interface."""
    digest = hashlib.sha1(f"{uid}/{index}".encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])


@dataclass
class AddressBook:
    """Hands out pod and secondary-network addresses, one set per VMI uid."""

    pod_prefix: str = "10.244"
    _next: int = 0
    _given: dict[tuple[str, int], str] = field(default_factory=dict)

    def address(self, uid: str, index: int, pod_network: bool) -> str:
        """The address of interface `index` of VMI `uid` (plain, no prefix length)."""
        key = (uid, index)
        if key not in self._given:
            n = self._next
            self._next += 1
            host = f"{n // 250 % 250}.{n % 250 + 2}"
            prefix = self.pod_prefix if pod_network else f"10.{200 + index % 50}"
            self._given[key] = f"{prefix}.{host}"
        return self._given[key]

    def forget(self, uid: str) -> None:
        """Release a VMI's addresses (pods get new IPs on restart)."""
        for key in [k for k in self._given if k[0] == uid]:
            del self._given[key]


def interfaces(
    vmi: JsonObj, book: AddressBook, booted: bool, agent: bool, guest_nics: Sequence[str] = ()
) -> list[JsonObj]:
    """status.interfaces, one per spec interface; IPs once booted (secondary: agent only).
    With the agent, the guest's own NICs (`guest_nics`, e.g. docker0) follow, without a
    network name, as KubeVirt appends them (netstat.go ifacesStatusFromGuestAgent)."""
    spec = vmi.get("spec") or {}
    uid = vmi["metadata"]["uid"]
    nets = {n["name"]: n for n in spec.get("networks") or []}
    result = []
    ifaces = ((spec.get("domain") or {}).get("devices") or {}).get("interfaces") or []
    for index, iface in enumerate(ifaces):
        net = nets.get(iface["name"], {})
        pod = "pod" in net
        entry: JsonObj = {
            "name": iface["name"],
            "mac": iface.get("macAddress") or mac_for(uid, index),
            "infoSource": "domain",
        }
        if booted and (pod or agent):
            ip = book.address(uid, index, pod)
            entry["ipAddress"], entry["ipAddresses"] = ip, [ip]
        if agent:
            entry["interfaceName"] = f"eth{index}"
            entry["infoSource"] = "domain, guest-agent" + ("" if pod else ", multus-status")
        result.append(entry)
    if booted and agent:
        for index, nic in enumerate(guest_nics, start=len(ifaces)):
            result.append(
                {"interfaceName": nic, "mac": mac_for(uid, index), "infoSource": "guest-agent"}
            )
    return result


MULTUS_STATUS = "multus-status"


def with_multus_as_said(entry: JsonObj, current: JsonObj | None) -> JsonObj:
    """`entry` (the node's view of an interface) with `multus-status` in its infoSource as
    the VMI says it now: virt-controller adds or removes it from the launcher pod's
    network-status annotation (network/controllers/vmi.go), never virt-handler."""
    said = [s.strip() for s in str(entry.get("infoSource") or "").split(",") if s.strip()]
    said = [s for s in said if s != MULTUS_STATUS]
    if MULTUS_STATUS in str((current or {}).get("infoSource") or ""):
        said.append(MULTUS_STATUS)
    return {**entry, "infoSource": ", ".join(said)} if said else entry


@dataclass(frozen=True)
class VolumeReport:
    """New volumeStatus plus the seconds until the next hotplug step (None: nothing pending)."""

    statuses: list[JsonObj]
    next_step: float | None


def _claim_info(pvc: JsonObj) -> JsonObj:
    spec, status = pvc.get("spec") or {}, pvc.get("status") or {}
    return {
        "claimName": pvc["metadata"]["name"],
        "accessModes": status.get("accessModes") or spec.get("accessModes") or [],
        "volumeMode": spec.get("volumeMode", "Filesystem"),
        "capacity": dict(status.get("capacity") or {}),
        "requests": dict((spec.get("resources") or {}).get("requests") or {}),
        "filesystemOverhead": "0.055",
    }


HOTPLUG_STEPS = (
    ("Bound", "VolumeBound", "PVC is in phase Bound"),
    ("MountedToPod", "VolumeMountedToPod", "Volume {} has been mounted in virt-launcher pod"),
    ("Ready", "VolumeReady", "Successfully attach hotplugged volume {} to VM"),
)


def volume_statuses(
    vmi: JsonObj, old: list[JsonObj], pvc: Lookup, age: Callable[[str], float], step: float
) -> VolumeReport:
    """volumeStatus for every spec volume; hotplugged ones walk Bound -> MountedToPod -> Ready,
    unplugged ones show Detaching for one step. `age(tag)` = seconds since tag was first seen."""
    spec = vmi.get("spec") or {}
    targets = device_names(spec)
    previous = {s["name"]: s for s in old}
    statuses: list[JsonObj] = []
    waits: list[float] = []
    names = set()
    for volume in spec.get("volumes") or []:
        name = volume["name"]
        names.add(name)
        entry: JsonObj = {"name": name, "target": targets.get(name, "")}
        claim = claim_of(volume)
        claim_obj = pvc(claim) if claim else None
        if claim_obj is not None:
            entry["persistentVolumeClaimInfo"] = _claim_info(claim_obj)
        if not is_hotpluggable(volume):
            entry["phase"] = "Ready"
            statuses.append(entry)
            continue
        prev = previous.get(name) or {}
        entry["hotplugVolume"] = prev.get("hotplugVolume") or {
            "attachPodName": f"hp-volume-{uuid.uuid4().hex[:5]}",
            "attachPodUID": str(uuid.uuid4()),
        }
        if claim_obj is None or phase(claim_obj) != "Bound":
            entry.update(
                phase="Pending",
                reason="PVCNotReady",
                message=f"PVC is in phase {phase(claim_obj) or 'Missing'}",
            )
            statuses.append(entry)
            continue
        elapsed = age(f"plug:{name}:{entry['hotplugVolume']['attachPodUID']}")
        index = min(int(elapsed / step) if step > 0 else len(HOTPLUG_STEPS), len(HOTPLUG_STEPS) - 1)
        ph, reason, message = HOTPLUG_STEPS[index]
        entry.update(phase=ph, reason=reason, message=message.format(name))
        if index < len(HOTPLUG_STEPS) - 1:
            waits.append(step * (index + 1) - elapsed)
        statuses.append(entry)
    for name, prev in previous.items():
        if name in names or "hotplugVolume" not in prev:
            continue
        elapsed = age(f"unplug:{name}:{prev['hotplugVolume'].get('attachPodUID')}")
        if elapsed < step:
            statuses.append(
                {
                    **prev,
                    "phase": "Detaching",
                    "reason": "VolumeUnMountedFromPod",
                    "message": f"Volume {name} has been unmounted from virt-launcher pod",
                }
            )
            waits.append(step - elapsed)
    return VolumeReport(statuses, min(waits) if waits else None)


def capacities(vmi: JsonObj) -> dict[str, int]:
    """Bytes per volume name from volumeStatus (what the guest sees as disk sizes)."""
    sizes = {}
    for status in (vmi.get("status") or {}).get("volumeStatus") or []:
        info = status.get("persistentVolumeClaimInfo") or {}
        size = (info.get("capacity") or {}).get("storage")
        if size:
            sizes[status["name"]] = quantity_bytes(size)
    return sizes
