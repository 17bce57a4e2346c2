"""`wukong resize NAME`: more vCPUs, memory or disk space as one patch pinned to what was
read, and how the operator says the change applies: live (KubeVirt's CPU and memory
hot-plug, online volume expansion), at the next restart (RestartRequired), or not at all
(a refused expansion). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from wukong.api.conditions import (
    CPU_MEMORY_HOTPLUG,
    FILESYSTEM_RESIZE_PENDING,
    RESTART_REQUIRED,
    VOLUMES_RESIZED,
)
from wukong.api.objects import being_deleted
from wukong.api.quantity import quantity_or_none
from wukong.api.spec import MAX_CPU, DiskSpec, MemoryQuantity, WukongSpec
from wukong.api.validation import problems_from_error
from wukong.console.create import pairs
from wukong.console.errors import CliError, usage
from wukong.console.lifecycle import Outcome
from wukong.console.status import condition

JsonObj = dict[str, Any]
REFUSED = frozenset({"ExpansionRefused", "ExpansionNotSupported"})


@dataclass(frozen=True)
class Resize:
    """What the flags ask for; None: unchanged."""

    cpu: int | None = None
    memory: str | None = None
    disks: Mapping[str, str] = field(default_factory=dict)  # disk -> new size

    @classmethod
    def from_flags(cls, cpu: int | None, memory: str | None, disks: Sequence[str]) -> Resize:
        """From `--cpu`, `--memory` and `--disk NAME=SIZE` (usage errors: exit 2)."""
        sizes: dict[str, str] = {}
        for disk, size in pairs("--disk", disks, "DISK=SIZE, e.g. data=200Gi"):
            if disk in sizes:
                raise usage(f"--disk {disk} is given twice")
            sizes[disk] = size
        if cpu is None and memory is None and not sizes:
            raise usage("say what to resize: --cpu, --memory or --disk DISK=SIZE")
        _checked(cpu, memory, sizes)
        return cls(cpu, memory, sizes)


def _checked(cpu: int | None, memory: str | None, sizes: Mapping[str, str]) -> None:
    """The values by the API's own rules, before the cluster is asked: `--memory 1GB` said
    "cannot reach the cluster" with the cluster down (CLI audit, session 41)."""
    if cpu is not None and not 1 <= cpu <= MAX_CPU:
        raise usage(f"--cpu: {cpu} is not a vCPU count from 1 to {MAX_CPU}")
    try:
        if memory is not None:
            _MEMORY.validate_python(memory)
    except ValidationError as error:
        raise usage(f"--memory: {_first(error)}") from None
    for disk, size in sizes.items():
        try:
            DiskSpec(name=disk, size=size)
        except ValidationError as error:
            raise usage(f"--disk {disk}: {_first(error)}") from None


def _first(error: ValidationError) -> str:
    return problems_from_error(error)[0].message


_MEMORY: TypeAdapter[Any] = TypeAdapter(MemoryQuantity)


def plan(cr: JsonObj, resize: Resize) -> tuple[JsonObj | None, list[str]]:
    """The patch (pinned to the resourceVersion read; None when nothing changes) and the
    changes, one phrase each (`cpu 2 → 4`, `disk data 100Gi → 200Gi`)."""
    name, spec = cr["metadata"]["name"], dict(cr.get("spec") or {})
    if being_deleted(cr):
        raise CliError(f"{name} is being deleted: it cannot be resized")
    sized_by = (spec.get("instancetype") or {}).get("name")
    if sized_by and (resize.cpu is not None or resize.memory is not None):
        raise CliError(
            f"{name} is sized by instancetype {sized_by}: change spec.instancetype "
            f"(kubectl edit wukong {name} -n {cr['metadata']['namespace']}) instead of "
            "--cpu/--memory"
        )
    changes: list[str] = []
    patch: JsonObj = {}
    if resize.cpu is not None and resize.cpu != spec.get("cpu"):
        changes.append(f"cpu {spec.get('cpu')} → {resize.cpu}")
        patch["cpu"] = resize.cpu
    memory = resize.memory
    if memory is not None and _differs(memory, spec.get("memory")):
        changes.append(f"memory {spec.get('memory')} → {memory}")
        patch["memory"] = memory
    if resize.disks:
        patch["disks"], grown = _grown_disks(name, spec.get("disks") or [], resize.disks)
        changes += grown
    if not changes:
        return None, []
    try:
        WukongSpec.model_validate({**spec, **patch})
    except ValidationError as error:
        raise usage(str(problems_from_error(error)[0])) from None
    pinned = {"resourceVersion": cr["metadata"]["resourceVersion"]}
    return {"metadata": pinned, "spec": patch}, changes


def _differs(new: str, old: Any) -> bool:
    """Whether a new size says something else than the old one (1Gi is 1024Mi); an
    unreadable one does, and the API's models then say what is wrong with it."""
    wanted = quantity_or_none(new)
    return wanted is None or wanted != quantity_or_none(old)


def _grown_disks(
    name: str, disks: Sequence[JsonObj], sizes: Mapping[str, str]
) -> tuple[list[JsonObj], list[str]]:
    """spec.disks with the new sizes, and a phrase per disk that changes; a disk the Wukong
    lacks or one that would shrink is refused."""
    entries = [dict(d) for d in disks]
    by_name = {str(d.get("name")): d for d in entries}
    changes = []
    for disk, size in sizes.items():
        entry = by_name.get(disk)
        if entry is None:
            raise CliError(f"{name} has no disk {disk} (disks: {', '.join(by_name) or 'none'})")
        old, new = quantity_or_none(entry.get("size")), quantity_or_none(size)
        if new is not None and old is not None and new < old:
            raise CliError(
                f"disk {disk} of {name} is {entry['size']}: a disk grows, never shrinks "
                "(copy the data to a smaller disk instead)"
            )
        if _differs(size, entry.get("size")):
            changes.append(f"disk {disk} {entry.get('size')} → {size}")
            entry["size"] = size
    return entries, changes


def _observed(cr: JsonObj, generation: int) -> bool:
    return int((cr.get("status") or {}).get("observedGeneration") or 0) >= generation


def _refused(cr: JsonObj) -> str | None:
    resized = condition(cr, VOLUMES_RESIZED)
    if resized.get("status") == "False" and resized.get("reason") in REFUSED:
        return str(resized.get("message") or resized.get("reason"))
    return None


def answer(cr: JsonObj | None, generation: int) -> Outcome | None:
    """The operator's first word on the resize: how it applies (ok), or refused; None
    until it has seen the new generation."""
    if cr is None:
        return Outcome(False, "the Wukong was deleted")
    if not _observed(cr, generation):
        return None
    if (refused := _refused(cr)) is not None:
        return Outcome(False, f"resize refused: {refused}")
    said = [
        str(c.get("message"))
        for c in (
            condition(cr, RESTART_REQUIRED),
            condition(cr, CPU_MEMORY_HOTPLUG),
            condition(cr, VOLUMES_RESIZED),
        )
        if c.get("status") in ("True", "False") and c.get("message")
    ]
    return Outcome(True, "; ".join(said) or "applied")


def done(cr: JsonObj | None, generation: int, resize: Resize) -> Outcome | None:
    """`resize --wait`: the outcome once every change is in effect or waits for a
    restart, or was refused; None while KubeVirt or the storage still work on it."""
    first = answer(cr, generation)
    if first is None or not first.ok or cr is None:
        return first
    name = cr["metadata"]["name"]
    if condition(cr, CPU_MEMORY_HOTPLUG):
        return None  # KubeVirt is still plugging CPUs or memory in
    notes = []
    volumes = {str(v.get("name")): v for v in (cr.get("status") or {}).get("volumes") or []}
    pending = condition(cr, FILESYSTEM_RESIZE_PENDING)
    # Growing still: an imported disk's claim (CDI's, with its filesystem overhead) may have
    # the new size already and be grown further, to that size with the overhead.
    growing = condition(cr, VOLUMES_RESIZED).get("reason") == "Resizing"
    for disk, size in resize.disks.items():
        capacity = quantity_or_none((volumes.get(disk) or {}).get("capacity"))
        wanted = quantity_or_none(size)
        if capacity is not None and wanted is not None and capacity >= wanted and not growing:
            continue
        stopped = (cr.get("status") or {}).get("phase") == "Stopped"
        if not (pending and stopped):
            return None  # the storage, or the node under the running VM, is still at it
        # The volume is grown; the node grows its filesystem where the VM's pod mounts it,
        # which for a stopped VM is its next start: say so rather than wait for it.
        notes.append(str(pending.get("message")))
    if (restart := condition(cr, RESTART_REQUIRED)) and (resize.cpu or resize.memory):
        notes.append(str(restart.get("message")))
    said = f": {'; '.join(dict.fromkeys(notes))}" if notes else ""
    return Outcome(True, f"{name} is resized{said}")
