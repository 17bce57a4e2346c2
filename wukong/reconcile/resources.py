"""CPU and memory of a running VM: applied live where KubeVirt hot-plugs them, else a restart.

With KubeVirt's LiveUpdate rollout strategy, virt-controller copies a VM template's new
`cpu.sockets` / `memory.guest` into the running VMI when it can (vm.go handleCPUChangeRequest,
handleMemoryHotplugRequest): not above the VMI's `maxSockets` / `maxGuest`, never below what
the VM has (sockets) or booted with (memory), memory only for a migratable VMI, and nothing at
all while the VM owes a restart for another field. The VMI then carries `HotVCPUChange` /
`HotMemoryChange` until the change is in the guest, which KubeVirt does through a live migration
to a bigger virt-launcher pod (the workload updater starts it); the target's virt-handler
plugs the CPUs and memory and writes `status.currentCPUTopology` / `status.memory`.

This module reads the same facts and says, for each of cpu and memory, whether the change is
on its way (and how far: `CPUMemoryHotplug`) or needs a restart (and why, for RestartRequired).
Pure: the VM template it compares with is the one the VM planner wants.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wukong.api import JsonObj
from wukong.api.conditions import CPU_MEMORY_HOTPLUG, RESTART_REQUIRED, Cond, Condition
from wukong.api.quantity import format_bytes, multiple_of, quantity_or_none
from wukong.reconcile.actions import Action, Emit
from wukong.reconcile.observed import condition_of, migration_under_way


@dataclass(frozen=True)
class Resize:
    """What a running VM needs for the cpu and memory the template asks."""

    restart: tuple[tuple[str, str], ...] = ()
    """(field, why) that only a restart applies."""
    live: tuple[str, ...] = ()
    """What is being applied live, e.g. "cpu 1 → 2", in order."""
    stage: str = ""
    """How far the live change is: Requested, WaitingForMigration, Migrating."""
    detail: str = ""

    @property
    def condition(self) -> Cond | None:
        """CPUMemoryHotplug while a live change runs."""
        if not self.live:
            return None
        message = f"{', '.join(self.live)}: applied live by KubeVirt"
        return Cond(CPU_MEMORY_HOTPLUG, True, self.stage, f"{message} ({self.detail})")


def _dig(obj: Any, *path: str) -> Any:
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


ANOTHER_CHANGE = "another change needs a restart first"
MEMORY_ALIGNMENT = 2 * 1024 * 1024


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else 0


def migratable(vmi: JsonObj) -> bool:
    """Whether KubeVirt can live-migrate the VMI (its LiveMigratable condition; no condition:
    not said otherwise)."""
    return _migratable(vmi)[0]


def _migratable(vmi: JsonObj) -> tuple[bool, str]:
    cond = condition_of(vmi, "LiveMigratable")
    if cond is None or cond.get("status") == "True":
        return True, ""
    return False, f"{cond.get('reason', '')}: {cond.get('message', '')}".strip(": ")


def reason_not_migratable(vmi: JsonObj) -> str:
    """KubeVirt's reason and message of the VMI's LiveMigratable=False ("" when it can)."""
    return _migratable(vmi)[1]


def _vcpus(cpu: Any) -> int:
    return (
        max(_int(_dig(cpu, "sockets")), 1)
        * max(_int(_dig(cpu, "cores")), 1)
        * max(_int(_dig(cpu, "threads")), 1)
    )


def _cpu(want: JsonObj, vmi: JsonObj, held: str) -> tuple[tuple[str, str] | None, str | None]:
    """(restart field and why) or (what is live), for the template's cpu."""
    have = _dig(vmi, "spec", "domain", "cpu") or {}
    if not want or not have:
        return None, None
    want_s, have_s = _int(want.get("sockets")), _int(have.get("sockets"))
    layout = any(_int(want.get(k)) != _int(have.get(k)) for k in ("cores", "threads"))
    if layout:
        field = "hotplug" if _vcpus(want) == _vcpus(have) else "cpu"
        return (field, "the vCPU layout changed (sockets or cores)"), None
    maximum = _int(have.get("maxSockets"))
    if "maxSockets" in want and _int(want["maxSockets"]) != maximum:
        return ("hotplug.maxCpu", f"the VM runs with at most {maximum} vCPUs"), None
    current = _int(_dig(vmi, "status", "currentCPUTopology", "sockets")) or have_s
    if want_s == have_s:
        return None, (f"cpu {current} → {want_s}" if current != have_s else None)
    if maximum == 0:
        return ("cpu", "CPU hot-plug is off for this VM"), None
    if want_s > maximum:
        return ("cpu", f"{want_s} is above the {maximum} vCPUs the VM can have live"), None
    if want_s < have_s:
        return ("cpu", "KubeVirt removes vCPUs only on a restart"), None
    if held:
        return ("cpu", held), None
    return None, f"cpu {current} → {want_s}"


def _memory(
    want: JsonObj, requests: Any, vmi: JsonObj, held: str
) -> tuple[tuple[str, str] | None, str | None]:
    """(restart field and why) or (what is live), for the template's memory."""
    have = _dig(vmi, "spec", "domain", "memory") or {}
    want_guest, have_guest = (
        quantity_or_none(want.get("guest")),
        quantity_or_none(have.get("guest")),
    )
    if want_guest is None or have_guest is None:
        return None, None
    if quantity_or_none(requests) != quantity_or_none(
        _dig(vmi, "spec", "domain", "resources", "requests", "memory")
    ):
        # Wukong sets a memory request exactly without hotplug: a different one is a new
        # size, or hotplug switched (with it KubeVirt derives the request and grows it).
        field = "memory" if want_guest != have_guest else "hotplug"
        return (field, "the pod's memory request changes only on a restart"), None
    maximum = quantity_or_none(have.get("maxGuest"))
    if "maxGuest" in want and quantity_or_none(want["maxGuest"]) != maximum:
        shown = "no maximum" if maximum is None else f"at most {format_bytes(maximum)}"
        return ("hotplug.maxMemory", f"the VM runs with {shown}"), None
    failed = condition_of(vmi, "HotMemoryChange")
    if failed is not None and failed.get("status") == "False":
        return ("memory", str(failed.get("message") or "memory hot-plug failed")), None
    memory = _dig(vmi, "status", "memory") or {}
    requested = quantity_or_none(memory.get("guestRequested")) or have_guest
    if want_guest == have_guest:
        if requested != have_guest:
            return None, f"memory {format_bytes(requested)} → {format_bytes(want_guest)}"
        return None, None
    migratable, why = _migratable(vmi)
    at_boot = quantity_or_none(memory.get("guestAtBoot")) or have_guest
    if maximum is None:
        return ("memory", "memory hot-plug is off for this VM"), None
    if condition_of(vmi, "LiveMigratable") is None:
        # KubeVirt reads a VMI that does not say yet as one that cannot migrate
        # (types.go IsMigratable): its RestartRequired then stays until the next start.
        why = "its VMI does not say yet whether it can"
        return ("memory", f"KubeVirt adds memory only to a VM that can migrate ({why})"), None
    if not migratable:
        return ("memory", f"KubeVirt adds memory only to a VM that can migrate ({why})"), None
    if not multiple_of(want_guest, MEMORY_ALIGNMENT):
        # ValidateLiveUpdateMemory (pkg/liveupdate/memory): "Guest memory must be 2Mi aligned".
        return ("memory", "KubeVirt hot-plugs memory only in steps of 2Mi"), None
    if want_guest < at_boot:
        return ("memory", f"below the {format_bytes(at_boot)} the VM booted with"), None
    if want_guest > maximum:
        return ("memory", f"above the {format_bytes(maximum)} the VM can have live"), None
    if held:
        return ("memory", held), None
    return None, f"memory {format_bytes(requested)} → {format_bytes(want_guest)}"


def _stage(vmi: JsonObj) -> tuple[str, str]:
    state = _dig(vmi, "status", "migrationState") or {}
    if state.get("migrationUid") and migration_under_way(state):
        target = state.get("targetNode") or "a new pod"
        return "Migrating", f"live migration to {target} under way"
    hot = condition_of(vmi, "HotVCPUChange") or condition_of(vmi, "HotMemoryChange")
    if hot is not None and hot.get("status") == "True":
        return "WaitingForMigration", "KubeVirt moves the VM to a bigger pod by live migration"
    return "Requested", "KubeVirt has the new size"


def plan_resize(
    template_spec: JsonObj, vmi: JsonObj | None, held: bool, because: str = ANOTHER_CHANGE
) -> Resize:
    """cpu/memory of the template against the running VMI; `held`: a restart is owed already
    (KubeVirt then applies nothing live), `because` says why."""
    if vmi is None:
        return Resize()
    domain = template_spec.get("domain") or {}
    requests = _dig(domain, "resources", "requests", "memory")
    why_held = because if held else ""
    cpu = _cpu(domain.get("cpu") or {}, vmi, why_held)
    memory = _memory(domain.get("memory") or {}, requests, vmi, why_held)
    restart = tuple(r for r, _ in (cpu, memory) if r is not None)
    live = tuple(text for r, text in (cpu, memory) if r is None and text is not None)
    if not live:
        return Resize(restart)
    migratable, why = _migratable(vmi)
    if not migratable and cpu[1] is not None:
        # The workload updater migrates only migratable VMIs; one it cannot migrate it evicts
        # where the KubeVirt CR lists Evict among its workloadUpdateMethods (workload-
        # updater.go getUpdateData: a hot-plug in progress makes the VMI outdated), and the
        # eviction shuts the guest down. KubeVirt copies the sockets into the VMI whether it
        # can migrate or not (vm.go handleCPUChangeRequest).
        words = (
            f"KubeVirt adds vCPUs through a live migration, which this VM cannot have ({why}): "
            "the new count waits in the spec until a restart (written into the VM template, "
            "KubeVirt would shut the VM down where its CR's workloadUpdateMethods include Evict)"
        )
        restart = (*restart, ("cpu", words))
        live = tuple(text for text in live if not text.startswith("cpu"))
        if not live:
            return Resize(restart)
    stage, detail = _stage(vmi)
    return Resize(restart, live, stage, detail)


def plan_sized_by_instancetype(vmi: JsonObj | None, instancetype: str) -> Resize:
    """The CPUs and memory KubeVirt hot-plugs from a new instancetype, read from the VMI
    alone: virt-controller copies the expanded VM's sockets and guest memory into the VMI
    (vm.go handleCPUChangeRequest, handleMemoryHotplugRequest) and the guest has them once
    the VMI's `status.currentCPUTopology` / `status.memory.guestRequested` say so. The
    template has no size to compare with (the instancetype has it, and the operator does not
    read cluster instancetypes). Found by a source audit, session 47: the Wukong said
    "restart it to apply" while KubeVirt applied it live."""
    if vmi is None:
        return Resize()
    live = []
    sockets = _int(_dig(vmi, "spec", "domain", "cpu", "sockets"))
    current = _int(_dig(vmi, "status", "currentCPUTopology", "sockets"))
    if sockets and current and sockets != current:
        live.append(f"cpu {current} → {sockets}")
    guest = quantity_or_none(_dig(vmi, "spec", "domain", "memory", "guest"))
    requested = quantity_or_none(_dig(vmi, "status", "memory", "guestRequested"))
    if guest is not None and requested is not None and guest != requested:
        live.append(f"memory {format_bytes(requested)} → {format_bytes(guest)}")
    if not live:
        return Resize()
    stage, detail = _stage(vmi)
    return Resize((), tuple(live), stage, f"{detail}; instancetype {instancetype}")


def hotplug_events(
    old: Sequence[Condition], new: Sequence[Condition], *, running: bool = True
) -> list[Action]:
    """Normal Events as a live cpu/memory change starts, moves on, and is done (the
    condition goes away while no restart is owed and the VM still runs: one stopped
    meanwhile has nothing, and the next boot has the size anyway; found by a source audit,
    session 42)."""
    before = next((c for c in old if c.type == CPU_MEMORY_HOTPLUG), None)
    after = next((c for c in new if c.type == CPU_MEMORY_HOTPLUG), None)
    if after is not None:
        if before is None or (before.reason, before.message) != (after.reason, after.message):
            return [Emit("Normal", f"Hotplug{after.reason}", after.message)]
        return []
    if before is not None and running and not any(c.type == RESTART_REQUIRED for c in new):
        done = before.message.split(":", 1)[0]
        return [Emit("Normal", "Resized", f"{done}: the running VM has it now")]
    return []
