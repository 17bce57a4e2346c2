"""VM snapshots: `lifecycleAction: {action: snapshot}` becomes a VirtualMachineSnapshot of the
Wukong's VM, and `status.snapshot` follows it. Pure.

KubeVirt's snapshot controller does the work: it locks the VM, freezes the guest's
filesystems through the guest agent when there is one, makes a CSI VolumeSnapshot of every
disk whose StorageClass has a VolumeSnapshotClass, and reports the snapshot ready. A request
is answered once per fingerprint (as every lifecycle request). It is refused at once, with
nothing created, when there is no VM to snapshot, while a disk is not ready (KubeVirt would
wait for it, then fail after its deadline), or while another snapshot of this VM is in
progress. The snapshot is labelled with the Wukong but not owned by it: deleting the Wukong
keeps it, as deleting a VM keeps KubeVirt's snapshots of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from wukong.api import JsonObj, names
from wukong.api.objects import being_deleted
from wukong.api.status import SnapshotStatus
from wukong.api.v1alpha1 import Wukong
from wukong.reconcile.actions import Action, CreateChild, Emit
from wukong.reconcile.children import labels
from wukong.reconcile.observed import Observed, condition_of
from wukong.reconcile.timefmt import parse_time

FINAL = ("Succeeded", "Failed")
# KubeVirt's indications (snapshot.go updateSnapshotSourceIndications), in words. With
# QuiesceFailed it says GuestAgent too (the agent was there and tried): only the failure is
# said then.
INDICATIONS = {
    "GuestAgent": "the guest's filesystems were frozen through its guest agent",
    "NoGuestAgent": "taken without a guest agent: the disks are crash-consistent",
    "QuiesceFailed": "freezing the guest's filesystems failed: the disks are crash-consistent",
    "Paused": "the VM was paused",
}


@dataclass(frozen=True)
class SnapshotPlan:
    """What the snapshot planner decided."""

    actions: tuple[Action, ...]
    status: SnapshotStatus | None


def snapshot_name(wukong: str, request_id: str, asked: str | None) -> str:
    """The snapshot's name: the one asked for, else `<wukong>-snapshot-<fingerprint>`."""
    return asked or names.fit(f"{wukong}-snapshot-{request_id[:8]}", 63)


def in_progress(seen: Observed) -> list[JsonObj]:
    """The Wukong's snapshots KubeVirt has not finished."""
    return [
        s
        for s in seen.snapshots.values()
        if (s.get("status") or {}).get("phase") not in FINAL
        and _labels(s).get(names.LABEL_WUKONG) is not None
    ]


def _labels(obj: JsonObj) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def unready_disk(cr: Wukong, seen: Observed) -> str | None:
    """Why KubeVirt would not lock the VM for a snapshot, from the spec disks' claims, or
    None: its lock wants every claim Bound, and a DataVolume's claim populated (its
    DataVolume Succeeded; source.go verifyVolumes, CDI IsPopulated), else it waits, then
    fails at its 5-minute deadline. Judged from the claims themselves, not from whether the
    Wukong could start: a claim Pending on a WaitForFirstConsumer class is fine to start
    on, and not to snapshot; and the networks have nothing to do with it."""
    for disk in cr.spec.disks:
        claim = names.disk_claim_name(cr.metadata.name, disk.name)
        pvc = seen.claims.get(claim)
        if pvc is None or being_deleted(pvc):
            return f"disk {disk.name} has no claim yet"
        phase = (pvc.get("status") or {}).get("phase") or "Pending"
        if phase != "Bound":
            sc = seen.storage_classes.get((pvc.get("spec") or {}).get("storageClassName") or "")
            if (sc or {}).get("volumeBindingMode") == "WaitForFirstConsumer":
                return (
                    f"disk {disk.name}'s claim {claim} is not bound yet: its StorageClass binds "
                    "it when a VM first uses it (WaitForFirstConsumer); start the VM once"
                )
            return f"disk {disk.name}'s claim {claim} is {phase}, not Bound"
        owner = next(
            (r for r in pvc["metadata"].get("ownerReferences") or [] if r.get("controller")),
            None,
        )
        if owner is not None and owner.get("kind") == "DataVolume":
            dv = seen.data_volumes.get(str(owner.get("name")))
            dv_phase = ((dv or {}).get("status") or {}).get("phase") or "unknown"
            if dv_phase != "Succeeded":
                return (
                    f"disk {disk.name} is not populated yet (DataVolume {owner.get('name')} "
                    f"phase {dv_phase})"
                )
    return None


def refusal(cr: Wukong, seen: Observed, snapshot: str, restoring: str | None = None) -> str | None:
    """Why a snapshot cannot start now, or None."""
    name = cr.metadata.name
    if restoring is not None:
        return f"{name} is being restored ({restoring}): snapshot it once that is done"
    if snapshot in seen.snapshots:
        return (
            f"a VirtualMachineSnapshot named {snapshot} exists already: name another "
            "(snapshotName), or leave the name to the operator"
        )
    if seen.vm is None:
        return f"snapshot needs the VM: {name} has none yet"
    if (why := unready_disk(cr, seen)) is not None:
        return (
            f"snapshot needs every disk of {name} bound and populated (KubeVirt locks the VM "
            f"only then): {why}; ask again then"
        )
    busy = in_progress(seen)
    if busy:
        other = busy[0]
        phase = (other.get("status") or {}).get("phase") or "InProgress"
        return (
            f"a snapshot of {name} is in progress ({other['metadata']['name']}, phase {phase}): "
            "wait for it to finish"
        )
    return None


def build_snapshot(cr: Wukong, name: str, request_id: str) -> JsonObj:
    """The VirtualMachineSnapshot of this Wukong's VM (labelled, not owned: see above)."""
    marks = {**labels(cr), names.LABEL_REQUEST: request_id}
    return {
        "apiVersion": f"{names.SNAPSHOT_GROUP}/{names.SNAPSHOT_VERSION}",
        "kind": "VirtualMachineSnapshot",
        "metadata": {"name": name, "namespace": cr.metadata.namespace, "labels": marks},
        "spec": {
            "source": {
                "apiGroup": names.KUBEVIRT_GROUP,
                "kind": "VirtualMachine",
                "name": names.vm_name(cr.metadata.name),
            }
        },
    }


def plan_snapshot(
    cr: Wukong,
    seen: Observed,
    old: SnapshotStatus | None,
    request_id: str | None,
    *,
    asked_name: str | None = None,
    restoring: str | None = None,
    not_valid: str | None = None,
) -> SnapshotPlan:
    """Start a new snapshot request (or refuse it), then follow the one in flight;
    `not_valid`: why the spec is not valid (the request is refused so)."""
    if request_id is not None and (old is None or not old.answers(request_id)):
        name = snapshot_name(cr.metadata.name, request_id, asked_name)
        made = seen.snapshots.get(name)
        # Snapshots outlive their Wukong, so one of an earlier Wukong of this name, asked with
        # the same request (the name is its fingerprint), carries the same labels: made
        # before this Wukong was, it is not followed (it answered Succeeded with the old
        # disks; source audit, session 47, finding 8) but refused as a name taken.
        if (
            made is not None
            and _labels(made).get(names.LABEL_REQUEST) == request_id
            and not _made_before(made, cr)
        ):
            # Made for this very request by a pass whose status write was lost: follow it.
            mine = SnapshotStatus(
                request_id=request_id, name=name, phase="InProgress", started_at=seen.now
            )
            return _follow(mine, seen)
        why = not_valid or refusal(cr, seen, name, restoring)
        if why is not None:
            event = Emit("Warning", "SnapshotRefused", why)
            if old is not None and old.name is not None and old.result is None:
                # The snapshot in progress goes on being followed; the refusal is answered.
                kept = old.refused_beside(request_id, why)
                followed = _follow(kept, seen)
                return SnapshotPlan((event, *followed.actions), followed.status)
            refused = SnapshotStatus(
                request_id=request_id,
                result="Refused",
                message=why,
                refusal=why,
                started_at=seen.now,
            )
            return SnapshotPlan((event,), refused)
        started = SnapshotStatus(
            request_id=request_id,
            name=name,
            phase="InProgress",
            message=f"{name} created",
            started_at=seen.now,
        )
        create = CreateChild("VirtualMachineSnapshot", build_snapshot(cr, name, request_id))
        actions = (
            create,
            Emit("Normal", "SnapshotStarted", f"taking snapshot {name} of the VM", after=(create,)),
        )
        return SnapshotPlan(actions, started)
    if old is None or old.name is None or old.result is not None:
        return SnapshotPlan((), old)
    return _follow(old, seen)


WAITS = "KubeVirt waits: "


def _waits_on(snap: JsonObj) -> str | None:
    """What KubeVirt's snapshot waits on, from its `Progressing=False` reason (the lock's
    message: "Source not locked source ns/vm volume not bound: web-1-data", "source is
    offline but 1 pods using PVCs", "snapshot "x" in progress"; snapshot.go, source.go
    Lock), the only place it says so until it fails at its deadline (source audit,
    session 47, finding 5). Not the bare "Source not locked" of its first pass."""
    progressing = condition_of(snap, "Progressing") or {}
    reason = str(progressing.get("reason") or "")
    if progressing.get("status") != "False" or reason in ("", "Source not locked"):
        return None
    return reason


def _disk_volumes(seen: Observed) -> frozenset[str]:
    """The VM's volumes backed by a claim (its disks, hot-plugged ones too). KubeVirt lists
    every other volume of the VM as excluded from a snapshot as well (snapshot.go
    updateSnapshotSnapshotableVolumes: all volumes without a VolumeBackup): the cloud-init
    disk, a container disk. Only a claim's absence means data missing from the snapshot."""
    template = (((seen.vm or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
    return frozenset(
        str(v["name"])
        for v in template.get("volumes") or []
        if v.get("name") and (v.get("persistentVolumeClaim") or v.get("dataVolume"))
    )


def _made_before(obj: JsonObj, cr: Wukong) -> bool:
    """`obj` was made before the Wukong `cr` (whole seconds, as the API server stamps both)."""
    made = parse_time(obj.get("metadata", {}).get("creationTimestamp"))
    born = parse_time(cr.metadata.creation_timestamp)
    return made is not None and born is not None and made < born


def _follow(old: SnapshotStatus, seen: Observed) -> SnapshotPlan:
    """The snapshot in progress, as KubeVirt reports it."""
    assert old.name is not None
    snap = seen.snapshots.get(old.name)
    if snap is None:
        if old.uid is None:  # not in the cache yet (just created)
            return SnapshotPlan((), old)
        text = f"snapshot {old.name} was deleted before it was ready"
        gone = {"result": "Failed", "phase": "Failed", "message": text, "ended_at": seen.now}
        return SnapshotPlan((Emit("Warning", "SnapshotFailed", text),), old.model_copy(update=gone))
    status = snap.get("status") or {}
    phase = str(status.get("phase") or "InProgress")
    indications = [str(i) for i in status.get("indications") or []]
    excluded = (status.get("snapshotVolumes") or {}).get("excludedVolumes") or []
    left_out = sorted(str(v) for v in excluded if str(v) in _disk_volumes(seen))
    update: dict[str, object] = {
        "uid": snap["metadata"].get("uid") or old.uid,
        "phase": phase,
        "ready_to_use": status.get("readyToUse"),
        "indications": indications,
        "left_out": left_out,
        "message": f"{old.name}: {phase}",
    }
    error = (status.get("error") or {}).get("message")
    waits = _waits_on(snap)
    if error and (phase not in FINAL or (phase == "Succeeded" and not status.get("readyToUse"))):
        # Also between Succeeded and readyToUse: KubeVirt's phase moves at the content's
        # creationTime, readiness with the VolumeSnapshots' (source audit, session 41).
        update["message"] = f"{old.name}: {phase}: {error}"
    elif waits and phase not in FINAL:
        update["message"] = f"{old.name}: {phase}: {WAITS}{waits}"
    actions: list[Action] = []
    locked = ((seen.vm or {}).get("status") or {}).get("snapshotInProgress") == old.name
    if phase == "Succeeded" and status.get("readyToUse") and locked:
        # KubeVirt unlocks the VM in the pass after the one that calls the snapshot ready
        # (snapshot.go canUnlockSource); until then its webhook refuses a runStrategy
        # change, so a stop asked on the answer would fail. The unlock wakes the pass.
        update["message"] = f"{old.name}: ready, KubeVirt is unlocking the VM"
    elif phase == "Succeeded" and status.get("readyToUse"):
        failed = "QuiesceFailed" in indications  # then GuestAgent too: the agent tried
        said = [i for i in indications if i in INDICATIONS and not (failed and i == "GuestAgent")]
        how = "; ".join(INDICATIONS[i] for i in said)
        text = f"snapshot {old.name} is ready" + (f" ({how})" if how else "")
        actions.append(Emit("Normal", "SnapshotReady", text))
        if left_out:
            lost = (
                f"snapshot {old.name} left out volume(s) {', '.join(left_out)}: KubeVirt found "
                "no VolumeSnapshotClass for their StorageClass (a CSI driver with snapshots), "
                "so their data is not in it"
            )
            actions.append(Emit("Warning", "SnapshotIncomplete", lost))
            text = f"{text}; {lost}"
        update |= {"result": "Succeeded", "message": text, "ended_at": seen.now}
    elif phase == "Failed":
        # KubeVirt v1.7 fails a snapshot only at its failureDeadline, said in the Failure
        # condition's reason ("snapshot deadline exceeded"), with no Event; the content's
        # error, if any, says what held it up (source audit, session 41).
        said = [w for w in ((condition_of(snap, "Failure") or {}).get("reason"), error) if w]
        if not error and WAITS in (old.message or ""):
            # KubeVirt overwrites Progressing with "Operation failed": its last reason is
            # the one the status kept.
            said.append(f"it waited on: {(old.message or '').split(WAITS, 1)[1]}")
        text = f"snapshot {old.name} failed: {': '.join(dict.fromkeys(said)) or 'no reason given'}"
        actions.append(Emit("Warning", "SnapshotFailed", text))
        update |= {"result": "Failed", "message": text, "ended_at": seen.now}
    return SnapshotPlan(tuple(actions), old.model_copy(update=update))
