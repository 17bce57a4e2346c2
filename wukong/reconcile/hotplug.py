"""Disks at runtime (SPEC §6): hot-plug added disks, hot-unplug removed ones safely.

A disk added to a running Wukong is plugged through the VM's `addvolume` subresource once
its claim is usable (KubeVirt persists it in the VM template with `hotpluggable: true`); a
stopped Wukong's new disk simply joins the template (see vm.py). A disk removed from the
spec of a running Wukong is unplugged with `removevolume` only after a guest agent report
made since the detach was asked says it is not mounted (KubeVirt's is a cache, refreshed
every few minutes: `_detach`), unless its detachOptions say `force`; then its claim is
deleted, or kept and labelled when `preserveData`. The options of a removed disk are the
ones recorded in `status.volumes` while it was still in the spec. Every disk rule (bus,
serial, hot-plug form) comes from `disks.py`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from wukong.api import JsonObj, names
from wukong.api.conditions import DISK_DETACH, DISK_HOTPLUG, Cond
from wukong.api.objects import being_deleted
from wukong.api.status import RestoreStatus, VolumeStatus
from wukong.api.v1alpha1 import Wukong
from wukong.reconcile.actions import (
    Action,
    AddVolume,
    ChildKind,
    DeleteChild,
    Emit,
    PatchChild,
    RemoveVolume,
    uid_of,
)
from wukong.reconcile.children import UNMARK_RESTORED, held_by, owned_by
from wukong.reconcile.deletion import release_patch
from wukong.reconcile.disks import (
    is_hotpluggable,
    restored_for,
    template_volumes,
    vm_disk,
    volume_source,
)
from wukong.reconcile.observed import Observed, own_vm_uid
from wukong.reconcile.timefmt import iso

RELEASE_CONFIRM_SECONDS = 1.0
"""A pass this soon after keeping a detached disk, to see it released and say so."""
AWAITING_REPORT = "AwaitingGuestReport"
"""DiskDetach's reason while a disk reported unmounted waits for a report made since."""


def report_wait(interval: float) -> float:
    """How long after a disk was first reported unmounted the report must have been made
    again: KubeVirt's refresh interval (virt-launcher's agent poller, `--qemu-agent-file-
    interval`, 5 minutes), and a margin for its timer (a tenth, at most 5 s)."""
    return interval + min(5.0, interval / 10)


def guest_recheck(interval: float) -> float:
    """How often a detach the guest holds (a disk mounted, a report that cannot tell) asks
    the guest agent again: it cannot be watched, and KubeVirt answers from a report it
    refreshes every `interval` seconds, so asking more often reads the same report. A tenth
    of the interval, 1 to 30 s: 30 s against the default 5 minutes (asked every 5 s, a disk
    the user kept mounted for an hour cost 720 calls through virt-api to the node; now
    120), at most 30 s after the refresh that shows it unmounted."""
    return min(30.0, max(1.0, interval / 10))


@dataclass(frozen=True)
class DetachCheck:
    """What the guest agent's reports said of a disk leaving the spec (VolumeStatus's
    `unmounted_since` and `seen_mounted`)."""

    unmounted_since: datetime | None = None
    seen_mounted: bool | None = None


@dataclass(frozen=True)
class HotplugPlan:
    """Plug/unplug actions, their conditions, and whether the guest must be asked first."""

    actions: tuple[Action, ...]
    conditions: tuple[Cond, ...]
    needs_guest_check: bool = False
    released: bool = False
    checks: Mapping[str, DetachCheck] = field(default_factory=dict)
    """The detach checks of disks leaving the spec, for their status entries."""
    report_due: float | None = None
    """Seconds until a detach waiting for a newer guest report may look again."""
    recheck: float = 30.0
    """Seconds until a detach held by the guest asks it again (`guest_recheck`)."""

    @property
    def requeue_after(self) -> float | None:
        """When to ask the guest again: while a detach waits for it. And soon after a
        detached disk was kept: releasing it removes the label that maps its claim's watch
        events to this Wukong, so no event would end its `Detaching` entry."""
        waiting = any(c.reason in ("DiskInUse", "DiskCheckUnavailable") for c in self.conditions)
        if waiting:
            return self.recheck
        if self.report_due is not None:
            return self.report_due
        return RELEASE_CONFIRM_SECONDS if self.released else None


def requested_volumes(vm: JsonObj | None) -> tuple[set[str], set[str]]:
    """Volumes with an add or a remove request still in the VM's `status.volumeRequests`.

    With KubeVirt's HotplugVolumes gate, `addvolume`/`removevolume` only queue a request there;
    virt-controller applies it to the template a moment later. Until then the call is in
    flight: sending it again gets virt-api's 409 "already exists" (docs/kubevirt-fidelity.md).
    """
    adding: set[str] = set()
    removing: set[str] = set()
    for request in (vm or {}).get("status", {}).get("volumeRequests") or []:
        if name := (request.get("addVolumeOptions") or {}).get("name"):
            adding.add(str(name))
        if name := (request.get("removeVolumeOptions") or {}).get("name"):
            removing.add(str(name))
    return adding, removing


def _live(seen: Observed) -> dict[str, JsonObj]:
    vmi_status = (seen.vmi or {}).get("status", {})
    return {v.get("name"): v for v in vmi_status.get("volumeStatus") or []}


def _mount_point(seen: Observed, disk: str) -> str | None:
    """Where the guest has `disk` mounted, matched by its serial as the guest reports it
    (`names.reports_serial`: a virtio disk's cut to 20 bytes, a SCSI disk's after QEMU's
    vendor and model; an exact match alone took a mounted disk of either kind for free)."""
    for fs in seen.guest_filesystems or ():
        serials = [str(d.get("serial") or "") for d in fs.get("disk") or []]
        if any(s and names.reports_serial(s, disk) for s in serials):
            return str(fs.get("mountPoint") or "?")
    return None


# Block devices of a Linux guest that sit on no disk: a loop device's data is a file in
# another filesystem (which the report names on its own), zram and ram are memory. qemu-ga
# reports a filesystem on one with no disk entry (its sysfs node has no slaves), and names
# it after the device (KubeVirt's `diskName`): Ubuntu's snaps are squashfs on loop devices.
_NO_DISK = re.compile(r"(loop|zram|ram)[0-9]+")


def _unplaced(seen: Observed) -> list[str]:
    """Mount points of the filesystems the guest agent reports without saying which disk
    they are on: a disk entry without a serial (qemu-ga built without libudev or older than
    3.1, some Windows storage drivers), or no disk entry at all for a device that is not
    one of `_NO_DISK` (a device qemu-ga cannot place on a controller). Any of them may be
    the disk being detached (SPEC §6: "or the agent cannot tell"). Pseudo filesystems
    (tmpfs, proc, overlay, NFS, virtiofs: no block device) are not in the report at all:
    qemu-ga skips every mount whose device major is 0 but btrfs (build_fs_mount_list)."""
    unplaced: list[str] = []
    for fs in seen.guest_filesystems or ():
        entries = [d for d in fs.get("disk") or [] if isinstance(d, dict)]
        if entries:
            blind = any(not d.get("serial") for d in entries)
        else:
            blind = not _NO_DISK.fullmatch(str(fs.get("diskName") or ""))
        if blind:
            unplaced.append(str(fs.get("mountPoint") or "?"))
    return unplaced


def _attach(cr: Wukong, seen: Observed, usable: set[str]) -> tuple[list[Action], list[str]]:
    in_vm = template_volumes(seen.vm)
    adding = requested_volumes(seen.vm)[0] | seen.plugging
    live = _live(seen)
    actions: list[Action] = []
    pending: list[str] = []
    vm = names.vm_name(cr.metadata.name)
    for disk in cr.spec.disks:
        volume = in_vm.get(disk.name)
        if volume is None and disk.name in adding:
            pending.append(disk.name)  # requested; virt-controller has yet to apply it
        elif volume is None and disk.name in usable:
            source = volume_source(cr, disk, hotpluggable=True)
            source.pop("name")
            actions.append(AddVolume(vm, disk.name, vm_disk(disk), source))
            pending.append(disk.name)
        elif volume is not None and is_hotpluggable(volume):
            if live.get(disk.name, {}).get("phase") != "Ready":
                pending.append(disk.name)
    return actions, pending


def _detach(
    cr: Wukong,
    seen: Observed,
    old_volumes: Mapping[str, VolumeStatus],
    interval: float,
    waiting_since: datetime | None,
) -> HotplugPlan:
    """Unplug disks that left the spec once the guest has them unmounted. KubeVirt answers
    `filesystemlist` from virt-launcher's cache of the guest agent's report, refreshed every
    `interval` seconds (5 minutes by default; manager.go GetFilesystems, agent_poller.go):
    a disk mounted since the last refresh is reported unmounted. So "unmounted" is trusted
    from a report made after the detach was asked: one that changed since a report showed
    the disk mounted, or one read `report_wait(interval)` after the first that showed it
    unmounted (by then KubeVirt has refreshed it). Until then DiskDetach says when. A disk
    with no status entry to keep that in (a volume plugged outside Wukong) counts from
    `waiting_since`, when DiskDetach began to wait: after the detach was asked too. A report
    that does not say which disk some filesystem is on (`_unplaced`) cannot tell: the
    detach waits, as it does when the agent does not answer (SPEC §6)."""
    in_spec = {d.name for d in cr.spec.disks}
    vm = names.vm_name(cr.metadata.name)
    actions: list[Action] = []
    conds: list[Cond] = []
    checks: dict[str, DetachCheck] = {}
    due: list[float] = []
    ask_guest = False
    removing = requested_volumes(seen.vm)[1] | seen.unplugging
    for name, volume in template_volumes(seen.vm).items():
        if name in in_spec or name in removing:
            continue
        old = old_volumes.get(name)
        if not is_hotpluggable(volume):
            conds.append(
                Cond(
                    DISK_DETACH,
                    False,
                    "RestartRequired",
                    f"disk '{name}' was attached at boot: it is detached at the next restart",
                )
            )
            continue
        if old is not None and old.force_detach:
            actions.append(RemoveVolume(vm, name))
        elif seen.guest_error is not None:
            conds.append(
                Cond(
                    DISK_DETACH,
                    False,
                    "DiskCheckUnavailable",
                    f"cannot tell whether disk '{name}' is mounted: {seen.guest_error}; "
                    "detach waits (set detachOptions.force to skip the check)",
                )
            )
        elif seen.guest_filesystems is None:
            ask_guest = True
        elif (mount := _mount_point(seen, name)) is not None:
            checks[name] = DetachCheck(seen_mounted=True)
            conds.append(
                Cond(
                    DISK_DETACH,
                    False,
                    "DiskInUse",
                    f"disk '{name}' is mounted at {mount} in the guest: unmount it "
                    "first (or set detachOptions.force)",
                )
            )
        elif unplaced := _unplaced(seen):
            # The agent cannot tell: the checks so far stay as they were (a report that can
            # tell goes on from them).
            conds.append(
                Cond(
                    DISK_DETACH,
                    False,
                    "DiskCheckUnavailable",
                    f"cannot tell whether disk '{name}' is mounted: the guest agent names no "
                    f"disk serial for the filesystem{'s' if len(unplaced) > 1 else ''} at "
                    f"{_some(unplaced)}; detach waits (set detachOptions.force to skip the "
                    "check)",
                )
            )
        elif old is not None and old.seen_mounted:
            actions.append(RemoveVolume(vm, name))  # the report changed: made since the ask
        else:
            since = (old.unmounted_since if old is not None else _later(waiting_since)) or (
                _next_second(seen.now)
            )
            ready = since + timedelta(seconds=report_wait(interval))
            if seen.now >= ready:
                actions.append(RemoveVolume(vm, name))
                continue
            checks[name] = DetachCheck(unmounted_since=since)
            due.append((ready - seen.now).total_seconds())
            conds.append(
                Cond(
                    DISK_DETACH,
                    False,
                    AWAITING_REPORT,
                    f"disk '{name}' is unmounted as the guest agent last reported, a report "
                    f"KubeVirt refreshes every {_duration(interval)}: it is detached at "
                    f"{iso(ready)} if a report made since still shows it unmounted "
                    "(set detachOptions.force to detach it now)",
                )
            )
    return HotplugPlan(
        tuple(actions),
        tuple(conds),
        ask_guest,
        checks=checks,
        report_due=min(due, default=None),
        recheck=guest_recheck(interval),
    )


def _some(items: Sequence[str], most: int = 3) -> str:
    """The first few of `items`, and how many more (a Windows guest has many volumes)."""
    shown = ", ".join(items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")


def _next_second(when: datetime) -> datetime:
    """`when` up to the next whole second: status keeps whole seconds, and a time rounded
    down would end the wait for a newer report up to a second early."""
    if not when.microsecond:
        return when
    return when.replace(microsecond=0) + timedelta(seconds=1)


def _later(when: datetime | None) -> datetime | None:
    """A condition's time (whole seconds, rounded down) one second on: never before the
    moment it stands for."""
    return None if when is None else when + timedelta(seconds=1)


def _duration(seconds: float) -> str:
    """5m, 90s, 1.5s: a refresh interval as people write it."""
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


def _cleanup(
    cr: Wukong,
    seen: Observed,
    old_volumes: Mapping[str, VolumeStatus],
    restore: RestoreStatus | None = None,
) -> list[Action]:
    """Delete (or keep and label) the claims of disks no longer in the spec nor the VM.
    `restore`: the Wukong's last restore, whose claims (`restored_for`) are its disks' too
    until a pass takes them back. A disk removed while it ran was made again by it (KubeVirt
    restores every volume of the snapshot) owned by nobody (`volumeOwnershipPolicy: None`),
    and was left Detaching for good (F11, session 46); kept, it holds the snapshot's data,
    and its Event says so."""
    in_spec = {d.name for d in cr.spec.disks}
    # An ended VMI (Manual keeps it until the next start) holds no disk: its volumeStatus
    # read as one kept a disk removed from a stopped VM Detaching until the next start.
    in_vm = set(template_volumes(seen.vm)) | (set() if seen.vmi_ended else set(_live(seen)))
    uid = cr.metadata.uid
    vm_uid = own_vm_uid(seen, cr)
    actions: list[Action] = []
    anew: set[str] = set()  # kept claims the restore made again
    gone = {
        names.disk_claim_name(cr.metadata.name, n): n
        for n in old_volumes
        if n not in in_spec | in_vm
    }
    # The claim first, as deletion's Retain does: a pass stops at its first failure (a 409 on
    # these pinned patches is one, on purpose). A DataVolume released before a claim whose
    # release then failed left the claim under a DataVolume kept "from" this Wukong and no
    # longer labelled its own: out of sight of every later pass, deletion's too, and gone
    # with that leftover DataVolume when the user deleted it (disk-safety audit, session
    # 46). A claim released first leaves a DataVolume still held, which the next pass (or
    # deletion's Retain) releases.
    kinds: tuple[tuple[ChildKind, Mapping[str, JsonObj]], ...] = (
        ("PersistentVolumeClaim", seen.claims),
        ("DataVolume", seen.data_volumes),
    )
    for kind, objects in kinds:
        for claim, obj in objects.items():
            disk = gone.get(claim)
            if disk is None or being_deleted(obj):
                # Asked already: its protection finalizer holds it while the old VMI's pod
                # still uses it. Not asked again, nor said again, while it goes.
                continue
            # An imported disk's claim is CDI's, owned by its DataVolume: kept, it is released
            # from the DataVolume too, else deleting the DataVolume later takes the data
            # (review s23 F2), and marked so that CDI does not make it the DataVolume's again:
            # one a restore made went back at once, out of sight once both were released
            # (deletion._not_taken_back, session 47). Deletion's Retain does the same.
            of_its_dv = kind == "PersistentVolumeClaim" and _owned_by_data_volume(obj, claim)
            restored = kind == "PersistentVolumeClaim" and restored_for(obj, cr, restore)
            # One the Wukong's own VM owns (a VirtualMachineRestore made by hand) is its
            # disk too: kept, that reference goes, else it went with the VM (session 48).
            by_vm = vm_uid is not None and owned_by(obj, vm_uid)
            if not (
                held_by(obj, uid)
                or restored
                or by_vm
                or (of_its_dv and old_volumes[disk].preserve_data)
            ):
                continue
            if old_volumes[disk].preserve_data:
                dv = seen.data_volumes.get(claim)
                patch = release_patch(kind, obj, cr, disk, dv, vm_uid)
                if restored:  # KubeVirt's marks go, as when a pass takes such a claim back
                    patch["metadata"]["labels"] |= UNMARK_RESTORED
                    anew.add(claim)
                release = PatchChild(kind, claim, patch, "keep detached disk", uid=uid_of(obj))
                actions.append(release)
            else:
                actions.append(DeleteChild(kind, claim, obj["metadata"].get("uid")))
    return actions + _detached_events(actions, gone, anew, restore)


def _detached_events(
    actions: Sequence[Action],
    gone: Mapping[str, str],
    anew: set[str],
    restore: RestoreStatus | None,
) -> list[Action]:
    """A `DiskDetached` per disk whose claim `actions` delete or keep, said once that disk's
    own actions went through. One Event for all, tied to every action, said neither disk
    of two whose deletes the API server answered apart (a webhook protecting one claim),
    and the one deleted never afterwards (session 49); it also said "data kept" alone of
    a kept disk beside a deleted one."""
    by_disk: dict[str, list[PatchChild | DeleteChild]] = {}
    for action in actions:
        if isinstance(action, PatchChild | DeleteChild):
            by_disk.setdefault(gone[action.name], []).append(action)
    events: list[Action] = []
    for disk, own in sorted(by_disk.items()):
        # An imported disk's claim and DataVolume share their name: said once.
        kept = list(dict.fromkeys(a.name for a in own if isinstance(a, PatchChild)))
        message = f"detached disk {disk}: " + (
            "data kept in " + ", ".join(kept) if kept else "data deleted"
        )
        if restore is not None and anew & set(kept):
            message += (
                f" (as snapshot {restore.snapshot} holds it: restore {restore.name} made the "
                "claim again while the disk was being removed)"
            )
        # Said once its deletes or releases went through: a refused one (a webhook
        # protecting the claim) left "data deleted" beside a claim still there (session 48).
        events.append(Emit("Normal", "DiskDetached", message, after=tuple(own)))
    return events


def attached_events(
    old: Mapping[str, VolumeStatus], new: Sequence[VolumeStatus], seen: Observed
) -> list[Action]:
    """A Normal Event when hot-plugged disks are in the running VM: the answer to an attach,
    as `DiskDetached` is to a detach (and, after a restart, the plugged disks back)."""
    if seen.vmi_phase != "Running":
        return []
    plugged = [
        v.name
        for v in new
        if v.hotplugged and v.attached and not (v.name in old and old[v.name].attached)
    ]
    if not plugged:
        return []
    which = ", ".join(plugged)
    message = f"disk{'s' if len(plugged) > 1 else ''} {which} plugged into the running VM"
    return [Emit("Normal", "DiskAttached", message)]


def _owned_by_data_volume(claim: JsonObj, name: str) -> bool:
    """The claim is CDI's: owned by the DataVolume of its own name."""
    refs = claim.get("metadata", {}).get("ownerReferences") or []
    return any(r.get("kind") == "DataVolume" and r.get("name") == name for r in refs)


def plan_hotplug(
    cr: Wukong,
    seen: Observed,
    usable: set[str],
    old_volumes: Mapping[str, VolumeStatus],
    report_interval: float = 300.0,
    waiting_since: datetime | None = None,
    restore: RestoreStatus | None = None,
) -> HotplugPlan:
    """Plug, unplug and clean up disks of a Wukong whose VM exists. DiskHotplug and
    DiskDetach are set only while a disk is being plugged or waits to be detached.
    `restore`: the last restore, as this pass decided it (`_cleanup`)."""
    if seen.vm is None:
        return HotplugPlan((), ())
    actions: list[Action] = []
    conds: list[Cond] = []
    ask = False
    if seen.vmi_phase == "Running":
        attach, pending = _attach(cr, seen, usable)
        actions += attach
        if pending:
            conds.append(
                Cond(DISK_HOTPLUG, True, "Attaching", "hot-plugging " + ", ".join(pending))
            )
        detach = _detach(cr, seen, old_volumes, report_interval, waiting_since)
        actions += detach.actions
        conds += detach.conditions
        ask = detach.needs_guest_check
    else:
        detach = HotplugPlan((), ())
    cleanup = _cleanup(cr, seen, old_volumes, restore)
    released = any(isinstance(a, PatchChild) for a in cleanup)
    return HotplugPlan(
        tuple(actions + cleanup),
        tuple(conds),
        ask,
        released,
        checks=detach.checks,
        report_due=detach.report_due,
        recheck=detach.recheck,
    )
