"""`wukong delete`: show what goes and what stays, ask, then write deleteOptions and delete.

The plan is computed from the object as read. The deleteOptions patch is pinned to that
object's resourceVersion, and the DELETE to the version the plan was made from (or, after a
patch, to the version the patch made): a change in between (a GitOps sync, a colleague, the
operator's status) is a 409, after which the flow reads the Wukong again and plans again
(`flows/deleting.py`), so what the user confirmed is what the operator will do.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wukong.api import names
from wukong.api.contract import CLAIM_CONFLICT, CONFLICT_PHASE, unseen_removals
from wukong.api.contract import DELETE_GRACE_SECONDS as DEFAULT_GRACE
from wukong.api.objects import being_deleted
from wukong.console.errors import FAILED, CliError

JsonObj = dict[str, Any]


@dataclass(frozen=True)
class Disk:
    """A disk of the Wukong and the claim behind it."""

    name: str
    claim: str
    detaching: bool = False
    """Left the spec, still being detached: still the Wukong's (status.volumes)."""
    reported: bool = True
    """The status names its claim; False: the operator may not have made it yet."""
    unseen: bool = False
    """Left the spec in an edit the operator has not seen: kept, whatever its detach options
    said (`contract.unseen_removals`)."""

    def shown(self) -> str:
        """`disk NAME (PVC CLAIM` as the plan names it, open for more."""
        state = ", being detached" if self.detaching else ""
        if self.unseen:
            state += ", its last detach options not seen by the operator"
        made = "" if self.reported else ", if made"
        return f"disk {self.name} (PVC {self.claim}{made}{state}"


@dataclass(frozen=True)
class DeletePlan:
    """What deleting one Wukong removes and keeps."""

    wukong: str
    namespace: str
    vm: str
    deleted: tuple[Disk, ...]
    kept: tuple[Disk, ...]
    nads: tuple[str, ...]
    force: bool
    grace_period: int
    options: JsonObj = field(default_factory=dict)
    """deleteOptions to write before the delete ({}: the spec already says it all)."""
    vm_reported: bool = True
    """The status names the VM; False (a Wukong still Pending or Creating): there may be
    none, and no guest to stop."""
    nads_reported: bool = True
    """The NADs are the ones the status reports made; else the spec's, which may not be."""
    services: tuple[str, ...] | None = ()
    """Services it owns (`wukong expose`), which the garbage collector deletes after it;
    None: the user may not list Services, so they are named as a possibility."""
    left: tuple[Disk, ...] = ()
    """Disks whose claim (or DataVolume) is not the Wukong's (status.volumes `Conflict`:
    another Wukong's or the user's, VolumesBound=False ClaimConflict): the deletion neither
    deletes nor keeps them, it leaves them alone."""
    left_unread: bool = False
    """The claims of `left` could not be read (RBAC): one the Wukong's VM owns goes with the
    VM, which the plan cannot tell."""

    def lines(self) -> list[str]:
        """The plan as the user reads it before confirming."""
        stop = (
            "forced: no graceful stop"
            if self.force
            else f"graceful stop, up to {self.grace_period}s"
        )
        out = [f"Deleting Wukong {self.wukong} in namespace {self.namespace}:"]
        if self.vm_reported:
            out.append(f"  delete  VirtualMachine {self.vm} ({stop})")
        else:
            out.append(f"  delete  VirtualMachine {self.vm}, if made (the status names none)")
        out += [f"  delete  {d.shown()})" for d in self.deleted]
        made = "" if self.nads_reported else ", if made (the status names none)"
        out += [f"  delete  NetworkAttachmentDefinition {nad}{made}" for nad in self.nads]
        if self.services is None:
            out.append("  delete  Services it owns, if any (you may not list Services here)")
        else:
            out += [f"  delete  Service {service}" for service in self.services]
        label = f"{names.LABEL_RETAINED_FROM}={self.wukong}"
        out += [f"  keep    {d.shown()}, label {label})" for d in self.kept]
        unread = (
            f"; if VirtualMachine {self.vm} owns it, it goes with the VM (you may not read "
            "claims or the VM here)"
            if self.left_unread
            else ""
        )
        out += [
            f"  leave   {d.shown()}): not this Wukong's ({CLAIM_CONFLICT}){unread}"
            for d in self.left
        ]
        return out

    @property
    def question(self) -> str:
        """The confirmation question."""
        return f"Delete Wukong {self.wukong}?"


def subject(plans: Sequence[DeletePlan]) -> str:
    """Who a confirmation is about: `web-1`, or `2 Wukongs (t1, t2)`."""
    if len(plans) == 1:
        return plans[0].wukong
    return f"{len(plans)} Wukongs ({', '.join(p.wukong for p in plans)})"


def question(plans: Sequence[DeletePlan]) -> str:
    """The one question asked once every plan is shown: `Delete Wukong web-1?`, or
    `Delete 2 Wukongs (t1, t2)?`."""
    return plans[0].question if len(plans) == 1 else f"Delete {subject(plans)}?"


def _owned_nads(cr: JsonObj) -> tuple[str, ...]:
    name = cr["metadata"]["name"]
    seen = (cr.get("status") or {}).get("networks") or []
    if seen:
        return tuple(str(n["nadName"]) for n in seen if n.get("ownedByWukong") and n.get("nadName"))
    networks = (cr.get("spec") or {}).get("networks") or []
    return tuple(names.nad_name(name, str(n["name"])) for n in networks if not n.get("nadName"))


def refuse_protected(cr: JsonObj) -> None:
    """Raise when the deletion-protection annotation is set: nothing may be touched."""
    meta = cr["metadata"]
    key = names.ANNOTATION_DELETION_PROTECTION
    if (meta.get("annotations") or {}).get(key) == "true":
        name, namespace = meta["name"], meta.get("namespace")
        raise CliError(
            f"{name} is protected from deletion by the annotation {key}=true; remove it "
            f"first: kubectl annotate wukong {name} -n {namespace} {key}-"
        )


def conflicts(cr: JsonObj) -> dict[str, str]:
    """The disks of `cr` whose claim is not the Wukong's (status.volumes `Conflict`), and
    their claims."""
    name = cr["metadata"]["name"]
    return {
        str(v["name"]): str(v.get("pvcName") or names.disk_claim_name(name, str(v["name"])))
        for v in (cr.get("status") or {}).get("volumes") or []
        if v.get("name") and v.get("phase") == CONFLICT_PHASE
    }


def of_its_vm(cr: JsonObj, vm: JsonObj | None, claims: Mapping[str, JsonObj]) -> frozenset[str]:
    """The `Conflict` disks (`conflicts`) whose claim (in `claims`, by claim name) the
    Wukong's own VM `vm` owns: a VirtualMachineRestore made by hand without
    `volumeOwnershipPolicy: None` gives the claim it makes to the VM. The operator takes
    such a claim back as the disk's and keeps or deletes it as deleteOptions say; an older
    one, or a deletion starting first, left it with the VM, and the garbage collector took
    it with the VM, which the plan said it would "leave" (deletion audit, session 48)."""
    uid = cr["metadata"].get("uid")
    meta = (vm or {}).get("metadata") or {}
    if not meta.get("uid") or not any(
        r.get("uid") == uid for r in meta.get("ownerReferences") or []
    ):
        return frozenset()
    owned = set()
    for disk, claim in conflicts(cr).items():
        refs = ((claims.get(claim) or {}).get("metadata") or {}).get("ownerReferences") or []
        if any(r.get("uid") == meta["uid"] for r in refs):
            owned.add(disk)
    return frozenset(owned)


def plan_delete(
    cr: JsonObj,
    *,
    keep_all: bool = False,
    keep: Sequence[str] = (),
    force: bool = False,
    vm_owns: Collection[str] | None = (),
) -> DeletePlan:
    """Combine the spec's deleteOptions with the command's flags into one plan. `vm_owns`:
    the `Conflict` disks whose claim the Wukong's own VM owns (`of_its_vm`), planned as its
    disks; None: that could not be read."""
    refuse_protected(cr)
    meta, spec = cr["metadata"], cr.get("spec") or {}
    name = meta["name"]
    disks = [str(d["name"]) for d in spec.get("disks") or []]
    unknown = [k for k in keep if k not in disks]
    if unknown:
        # Exit 1, as detach's and resize's: the disk is missing from what the cluster holds
        # (a "not found"), not from the command line (CLI audit, session 44, F17).
        raise CliError(f"{name} has no disk {', '.join(unknown)} (disks: {', '.join(disks)})")
    existing: JsonObj = spec.get("deleteOptions") or {}
    keep_every = keep_all or bool(existing.get("preserveDisks"))
    listed = [*existing.get("preserveDisksList", [])]
    listed += [k for k in dict.fromkeys(keep) if k not in listed]
    options: JsonObj = {}
    if keep_all and not existing.get("preserveDisks"):
        options["preserveDisks"] = True
    if listed != existing.get("preserveDisksList", []):
        options["preserveDisksList"] = listed
    if force and not existing.get("force"):
        options["force"] = True
    status: JsonObj = cr.get("status") or {}
    vm_reported = bool(status.get("vmName"))
    claims = {str(v.get("name")) for v in status.get("volumes") or [] if v.get("pvcName")}
    # Before its VM the operator may not have made every claim either (the first status is
    # written a few seconds late, so the status can lag what exists): "if made". Once the
    # VM is named, every disk of the spec has been made.
    chosen = [
        Disk(d, names.disk_claim_name(name, d), reported=vm_reported or d in claims) for d in disks
    ]
    # A disk that left the spec but is still being detached goes or stays as the operator
    # decides it (reconcile/deletion.kept_disks): kept when its detach said preserveData or
    # every disk is kept, or when it left in an edit the operator has not seen (its last
    # options unknown). The delete adds one to the generation the operator reads, which
    # `unseen_removals` counts; this command's own deleteOptions patch is not counted: the
    # operator may see it before the delete, and a keep said that it may not do is worse
    # than a Warning `DetachOptionsUnknown` for a disk said to go.
    volumes = [v for v in status.get("volumes") or [] if v.get("name")]
    unseen = set(
        unseen_removals(
            meta.get("generation"),
            status.get("observedGeneration"),
            [(str(v["name"]), v.get("phase"), v.get("preserveData")) for v in volumes],
            disks,
        )
    )
    preserved: set[str] = set()
    for volume in volumes:
        disk = str(volume["name"])
        if disk in disks:
            continue
        claim = str(volume.get("pvcName") or names.disk_claim_name(name, disk))
        chosen.append(Disk(disk, claim, detaching=True, unseen=disk in unseen))
        if volume.get("preserveData") or disk in unseen:
            preserved.add(disk)
    # A disk whose claim is someone else's (ClaimConflict) is not the Wukong's to delete or
    # to keep: the operator leaves it alone (reconcile/deletion: only what it holds).
    # One the Wukong's own VM owns is its disk (`of_its_vm`): kept or deleted as asked.
    theirs = set(conflicts(cr)) - set(vm_owns or ())
    left = tuple(d for d in chosen if d.name in theirs)
    chosen = [d for d in chosen if d.name not in theirs]
    kept = tuple(d for d in chosen if keep_every or d.name in listed or d.name in preserved)
    return DeletePlan(
        wukong=name,
        namespace=str(meta.get("namespace") or ""),
        vm=str(status.get("vmName") or names.vm_name(name)),
        deleted=tuple(d for d in chosen if d not in kept),
        kept=kept,
        left=left,
        nads=_owned_nads(cr),
        # Networks are made before the VM: once it is named, so were they.
        nads_reported=vm_reported or bool(status.get("networks")),
        force=force or bool(existing.get("force")),
        grace_period=int(existing.get("gracePeriodSeconds", DEFAULT_GRACE)),
        options=options,
        vm_reported=vm_reported,
        left_unread=vm_owns is None and bool(left),
    )


def owned_services(cr: JsonObj, services: Sequence[JsonObj]) -> tuple[str, ...]:
    """The names of the Services among `services` that the Wukong `cr` owns."""
    uid = cr["metadata"]["uid"]
    return tuple(
        sorted(
            str(s["metadata"]["name"])
            for s in services
            if any(r.get("uid") == uid for r in s["metadata"].get("ownerReferences") or [])
        )
    )


def options_patch(cr: JsonObj, plan: DeletePlan) -> JsonObj | None:
    """The deleteOptions merge patch, pinned to the version the plan was made from."""
    if not plan.options:
        return None
    return {
        "metadata": {"resourceVersion": cr["metadata"]["resourceVersion"]},
        "spec": {"deleteOptions": plan.options},
    }


def options_taken_back(before: JsonObj, written: JsonObj, now: JsonObj) -> JsonObj | None:
    """The merge patch that puts back the deleteOptions `before` had where this command wrote
    `written` (the options of its patches), pinned to `now`, the Wukong as it is: the
    command ends without deleting it, and those options were confirmed for that deletion
    only. None when they are not the command's to take back: `now` is another Wukong of the
    name, is being deleted (that deletion goes by them), or no longer holds what was written
    (someone changed them since)."""
    meta = now["metadata"]
    options: JsonObj = (now.get("spec") or {}).get("deleteOptions") or {}
    if (
        not written
        or meta.get("uid") != before["metadata"].get("uid")
        or being_deleted(now)
        or any(options.get(key) != value for key, value in written.items())
    ):
        return None
    old: JsonObj = (before.get("spec") or {}).get("deleteOptions") or {}
    # Merge patch: None removes a key; deleteOptions the command made alone go whole.
    back = None if not old and set(options) <= set(written) else {k: old.get(k) for k in written}
    return {
        "metadata": {"resourceVersion": meta["resourceVersion"]},
        "spec": {"deleteOptions": back},
    }


def already_deleting(cr: JsonObj) -> str:
    """`NAME is already being deleted (step S)`, from the operator's deletion status."""
    step = ((cr.get("status") or {}).get("deletion") or {}).get("step") or "started"
    return f"{cr['metadata']['name']} is already being deleted (step {step})"


class CannotDelete(CliError):
    """Some selected Wukongs cannot be deleted as asked: nothing may be deleted."""

    def __init__(self, problems: Sequence[CliError], selected: int) -> None:
        # Exit 1: each problem is with a Wukong as it stands (protected, being deleted,
        # without a --keep disk), none with the command line alone.
        super().__init__(
            f"nothing was deleted: {len(problems)} of {selected} Wukongs cannot be deleted "
            "as asked",
            FAILED,
        )
        self.problems = tuple(problems)


def plan_each(
    crs: Sequence[JsonObj],
    *,
    keep_all: bool = False,
    keep: Sequence[str] = (),
    force: bool = False,
    vm_owns: Mapping[str, Collection[str] | None] | None = None,
) -> list[DeletePlan | None]:
    """Every Wukong's plan, made before anything is written (None: already being deleted,
    nothing to add); `vm_owns`: each one's `plan_delete` `vm_owns`, by name. CannotDelete
    names every problem (protection, a `--keep` disk it lacks, keep/force flags too late),
    so a selection is deleted whole or not at all."""
    changes = keep_all or bool(keep) or force
    plans: list[DeletePlan | None] = []
    problems: list[CliError] = []
    for cr in crs:
        if being_deleted(cr):
            if changes:
                problems.append(
                    CliError(f"{already_deleting(cr)}: too late to change what it keeps")
                )
            plans.append(None)
            continue
        try:
            owns = (vm_owns or {}).get(cr["metadata"]["name"], ())
            plans.append(plan_delete(cr, keep_all=keep_all, keep=keep, force=force, vm_owns=owns))
        except CliError as problem:
            problems.append(problem)
    if problems:
        raise CannotDelete(problems, len(crs))
    return plans
