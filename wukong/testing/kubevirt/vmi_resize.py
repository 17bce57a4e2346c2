"""CPU and memory hot-plug, virt-handler's and the VMI defaults' part (pure functions).

KubeVirt v1.7 with the LiveUpdate rollout strategy: virt-api defaults a new VMI's
`cpu.maxSockets` (4 x sockets) and `memory.maxGuest` (4 x guest, only for ≥ 1Gi, 2Mi-aligned
x86 guests) and its `status.currentCPUTopology` / `status.memory` (pkg/defaults); virt-
controller copies a VM's new sockets / guest memory into the VMI, marks it `HotVCPUChange` /
`HotMemoryChange` and moves it by live migration to a pod sized for the new values; when the
migration ends, the target's virt-handler plugs the CPUs and memory into the domain and writes
the new topology and memory to the status (pkg/virt-handler/migration-target.go hotplugCPU,
hotplugMemory). `finalize_hotplug` is that last step.
"""

from __future__ import annotations

import copy

from ._kube import JsonObj
from .objects import drop_condition, quantity_bytes

HOT_VCPU = "HotVCPUChange"
HOT_MEMORY = "HotMemoryChange"
CPU_LIMITS_LABEL = "kubevirt.io/vmi-pod-cpu-resource-limits"
MEMORY_REQUESTS_LABEL = "kubevirt.io/vmi-pod-memory-resource-requests"
OVERHEAD_RATIO_LABEL = "kubevirt.io/memory-hotplug-overhead-ratio"
HOTPLUG_LABELS = (CPU_LIMITS_LABEL, MEMORY_REQUESTS_LABEL, OVERHEAD_RATIO_LABEL)
MAX_HOTPLUG_RATIO = 4
MIN_HOTPLUG_MEMORY = 1 << 30
ALIGNMENT = 2 << 20


def _has(status: JsonObj, type_: str) -> bool:
    return any(c.get("type") == type_ for c in status.get("conditions") or [])


def finalize_hotplug(vmi: JsonObj, status: JsonObj) -> list[str]:
    """The target virt-handler's hot-plug at the end of a migration: `status` gets the new CPU
    topology and requested memory, the Hot*Change conditions go. Returns what failed, in
    virt-handler's words (it records them as Warning Events; the VMI keeps running)."""
    spec = vmi.get("spec") or {}
    domain = spec.get("domain") or {}
    labels = (vmi.get("metadata") or {}).get("labels") or {}
    failures: list[str] = []
    if _has(status, HOT_VCPU):
        cpu = domain.get("cpu") or {}
        status["currentCPUTopology"] = {
            k: cpu[k] for k in ("sockets", "cores", "threads") if k in cpu
        }
        status["conditions"] = drop_condition(list(status.get("conditions") or []), HOT_VCPU)
    if _has(status, HOT_MEMORY):
        status["conditions"] = drop_condition(list(status.get("conditions") or []), HOT_MEMORY)
        asked = labels.get(MEMORY_REQUESTS_LABEL)
        guest = (domain.get("memory") or {}).get("guest")
        needed = ((domain.get("resources") or {}).get("requests") or {}).get("memory")
        try:
            if asked is None:
                raise ValueError("no label")
            pod = quantity_bytes(asked)
        except ValueError:
            failures.append(f"cannot parse Memory requests from VMI label: {asked!r}")
            return failures
        if needed is not None and pod < quantity_bytes(needed):
            failures.append(
                f"amount of requested guest memory ({guest}) exceeds the launcher memory "
                f"request ({asked})"
            )
            return failures
        memory = dict(status.get("memory") or {})
        memory["guestRequested"] = guest
        memory["guestCurrent"] = guest  # the domain's currentMemory, once the guest took it
        status["memory"] = memory
    return failures


def without_hotplug_labels(vmi: JsonObj) -> JsonObj:
    """The VMI's metadata without the labels virt-controller set for the target's hot-plug."""
    meta = copy.deepcopy(vmi.get("metadata") or {})
    labels = meta.get("labels") or {}
    for label in HOTPLUG_LABELS:
        labels.pop(label, None)
    return meta


def default_hotplug(spec: JsonObj) -> None:
    """virt-api's defaults for a new VMI under LiveUpdate (pkg/defaults setupCPUHotplug,
    setupMemoryHotplug): maxSockets 4 x sockets, maxGuest 4 x guest where memory hot-plug
    is possible (≥ 1Gi, 2Mi-aligned), unless the VM sets them."""
    domain = spec.setdefault("domain", {})
    cpu = domain.get("cpu")
    if isinstance(cpu, dict) and cpu.get("sockets") and not cpu.get("maxSockets"):
        cpu["maxSockets"] = int(cpu["sockets"]) * MAX_HOTPLUG_RATIO
    memory = domain.get("memory")
    if not isinstance(memory, dict) or memory.get("maxGuest") or not memory.get("guest"):
        return
    guest = quantity_bytes(memory["guest"])
    if guest >= MIN_HOTPLUG_MEMORY and guest % ALIGNMENT == 0:
        memory["maxGuest"] = str(guest * MAX_HOTPLUG_RATIO)


def live_resize(template: JsonObj, vmi_spec: JsonObj) -> JsonObj:
    """The part of the template's sockets / guest memory virt-controller copies into a running
    VMI (vm.go handleCPUChangeRequest, handleMemoryHotplugRequest): more sockets up to
    maxSockets, more memory up to maxGuest. A merge patch of the VMI's domain, {} when nothing
    applies live. (KubeVirt also refuses memory for a VMI that cannot migrate; the pure
    simulator does not check that here.)"""
    want = template.get("domain") or {}
    have = vmi_spec.get("domain") or {}
    domain: JsonObj = {}
    sockets, now = (want.get("cpu") or {}).get("sockets"), (have.get("cpu") or {}).get("sockets")
    maximum = (have.get("cpu") or {}).get("maxSockets") or 0
    if sockets is not None and now is not None and now < sockets <= maximum:
        domain["cpu"] = {"sockets": sockets}
    memory = have.get("memory") or {}
    guest, current, top = (
        (want.get("memory") or {}).get("guest"),
        memory.get("guest"),
        memory.get("maxGuest"),
    )
    if guest is not None and current is not None and top is not None:
        if quantity_bytes(current) < quantity_bytes(guest) <= quantity_bytes(top):
            domain["memory"] = {"guest": guest}
    return domain
