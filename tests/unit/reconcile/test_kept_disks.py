"""A disk deleteOptions keep is held by label, not owned, while the Wukong lives: the garbage
collector deletes every dependent of an owner deleted in the foreground at once, finalizers
notwithstanding, so an owned kept disk raced the operator's Retain step and lost when the
operator was down or busy (review s23 F1)."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from tests.unit.reconcile.world import (
    UID,
    bound_pvc,
    decide,
    imported_dv,
    plan_deletion,
    ready_children,
    seen,
    wukong,
)
from wukong.api import names
from wukong.reconcile.actions import CreateChild, DeleteChild, PatchChild
from wukong.reconcile.observed import Observed

KEEP_DATA = {"preserveDisksList": ["data"]}


def held(obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` as hold_patch leaves a kept disk: no ownerReference, the held-by label."""
    out = copy.deepcopy(obj)
    out["metadata"]["ownerReferences"] = []
    out["metadata"].setdefault("labels", {})[names.LABEL_HELD_BY] = UID
    return out


def patches(plan: Any) -> dict[str, dict[str, Any]]:
    return {a.name: a.patch for a in plan.actions if isinstance(a, PatchChild)}


def with_data(world: Observed, pvc: dict[str, Any]) -> Observed:
    return replace(world, claims={**world.claims, "web-1-data": pvc})


def test_a_kept_disk_loses_its_owner_reference_while_the_wukong_lives() -> None:
    plan = decide(wukong(deleteOptions=KEEP_DATA), {}, ready_children())
    patch = patches(plan)["web-1-data"]["metadata"]
    assert patch["ownerReferences"] == []
    assert patch["labels"] == {names.LABEL_HELD_BY: UID}
    assert "web-1-system" not in patches(plan)  # not kept: stays owned


def test_preserve_disks_holds_every_disk_the_imported_one_by_its_data_volume() -> None:
    plan = decide(wukong(deleteOptions={"preserveDisks": True}), {}, ready_children())
    kinds = {a.name: a.kind for a in plan.actions if isinstance(a, PatchChild)}
    assert kinds == {"web-1-system": "DataVolume", "web-1-data": "PersistentVolumeClaim"}


def test_a_held_disk_is_the_wukongs_and_asks_for_nothing_more() -> None:
    world = with_data(ready_children(), held(bound_pvc("web-1-data")))
    plan = decide(wukong(deleteOptions=KEEP_DATA), {}, world)
    assert "web-1-data" not in patches(plan)
    [data] = [v for v in plan.status["volumes"] if v["name"] == "data"]
    assert data["phase"] == "Bound"  # not Conflict


def test_a_disk_no_longer_kept_is_owned_again() -> None:
    world = with_data(ready_children(), held(bound_pvc("web-1-data")))
    patch = patches(decide(wukong(), {}, world))["web-1-data"]["metadata"]
    assert [r["uid"] for r in patch["ownerReferences"]] == [UID]
    assert patch["labels"] == {names.LABEL_HELD_BY: None}


def test_a_kept_disk_is_created_held() -> None:
    world = ready_children()
    world = replace(world, claims={"web-1-system": world.claims["web-1-system"]})
    plan = decide(wukong(deleteOptions=KEEP_DATA), {}, world)
    [create] = [a for a in plan.actions if isinstance(a, CreateChild)]
    meta = create.body["metadata"]
    assert meta["ownerReferences"] == [] and meta["labels"][names.LABEL_HELD_BY] == UID


def test_a_kept_disk_taken_back_by_a_wukong_that_keeps_it_too_is_held_at_once() -> None:
    """Taken back owned by the Wukong, it waited a pass for `hold_patch` to let go: a
    foreground delete in between (the operator down, no manifests/policy) deleted a disk the
    spec keeps (found by a source audit, session 42). Created disks were held at once."""
    kept = bound_pvc("web-1-data")
    kept["metadata"]["ownerReferences"] = []
    kept["metadata"]["labels"] = {
        names.LABEL_RETAINED_FROM: "web-1",
        names.LABEL_RETAINED_UID: "uid-of-an-earlier-web-1",
        names.LABEL_DISK: "data",
    }
    world = with_data(ready_children(), kept)
    patch = patches(decide(wukong(deleteOptions=KEEP_DATA), {}, world))["web-1-data"]["metadata"]
    assert patch["ownerReferences"] == []
    assert patch["labels"][names.LABEL_HELD_BY] == UID
    assert patch["labels"][names.LABEL_RETAINED_FROM] is None
    # Not kept: owned, as before.
    patch = patches(decide(wukong(), {}, world))["web-1-data"]["metadata"]
    assert [r["uid"] for r in patch["ownerReferences"]] == [UID]
    assert patch["labels"][names.LABEL_HELD_BY] is None


def test_deletion_releases_a_held_disk_and_deletes_what_is_not_kept() -> None:
    cr = wukong(deleteOptions=KEEP_DATA)
    cr = cr.model_copy(
        update={
            "metadata": cr.metadata.model_copy(
                update={"deletion_timestamp": "2026-11-23T12:00:00Z"}
            )
        }
    )
    world = with_data(ready_children(), held(bound_pvc("web-1-data")))
    plan = plan_deletion(cr, {}, world)
    labels = patches(plan)["web-1-data"]["metadata"]["labels"]
    assert labels[names.LABEL_RETAINED_FROM] == "web-1" and labels[names.LABEL_HELD_BY] is None
    assert not [a for a in plan.actions if isinstance(a, DeleteChild) and a.name == "web-1-data"]
    # Kept from the spec dropped meanwhile (held, not owned): still the Wukong's to delete.
    plain = wukong()
    plain = plain.model_copy(
        update={
            "metadata": plain.metadata.model_copy(
                update={"deletion_timestamp": "2026-11-23T12:00:00Z"}
            )
        }
    )
    later = plan_deletion(plain, {"deletion": {"step": "DeleteDisks"}}, world)
    assert "web-1-data" in {a.name for a in later.actions if isinstance(a, DeleteChild)}


def _deleting(**spec: Any) -> Any:
    cr = wukong(**spec)
    when = {"deletion_timestamp": "2026-11-23T12:00:00Z"}
    return cr.model_copy(update={"metadata": cr.metadata.model_copy(update=when)})


def _under(dv: dict[str, Any]) -> dict[str, Any]:
    """The claim CDI makes for `dv`: its name, under it, not the Wukong's."""
    meta = dv["metadata"]
    claim = bound_pvc(meta["name"])
    ref = {"kind": "DataVolume", "name": meta["name"], "uid": meta["uid"], "controller": True}
    claim["metadata"]["ownerReferences"] = [ref]
    claim["metadata"]["labels"] = dict(meta.get("labels") or {})
    return claim


@pytest.mark.parametrize(
    ("claim", "theirs"),
    [
        pytest.param("web-1-data", {}, id="a-users-data-volume"),
        # Wukong web-1-x's imported disk data and this one's blank disk x-data: web-1-x-data.
        pytest.param(
            "web-1-x-data",
            {names.LABEL_WUKONG: "web-1-x", names.LABEL_DISK: "data"},
            id="another-wukongs-claim-name-meets",
        ),
    ],
)
def test_the_deletion_keeps_only_what_the_wukong_holds(claim: str, theirs: dict[str, str]) -> None:
    """A claim of one of this Wukong's claim names under a DataVolume that is not the
    Wukong's (the user's; another Wukong's whose claim name meets this one's, its disk
    label one this Wukong keeps) was released from that DataVolume and marked kept from
    this Wukong by the Retain step: CDI then refuses it back, and a later Wukong of this name
    took it over (source audit, session 46). It is ClaimConflict, not this Wukong's:
    neither kept nor deleted."""
    dv = imported_dv(claim)
    dv["metadata"]["ownerReferences"] = (
        [{"uid": "uid-web-1-x", "kind": "Wukong", "name": "web-1-x"}] if theirs else []
    )
    dv["metadata"]["labels"] = theirs
    world = seen(data_volumes={claim: dv}, claims={claim: _under(dv)})
    disks = [*wukong().to_dict()["spec"]["disks"], {"name": "x-data", "size": "1Gi"}]
    for keep in ({"preserveDisks": True}, KEEP_DATA):
        plan = plan_deletion(_deleting(disks=disks, deleteOptions=keep), {}, world)
        assert not [a for a in plan.actions if isinstance(a, (PatchChild, DeleteChild))], keep
        assert plan.deletion["step"] == "Finalize" and plan.finalize


def test_patches_that_write_the_owner_list_are_pinned_to_the_version_read() -> None:
    """Review s23 F8: a merge patch of ownerReferences replaces the whole list; without the
    resourceVersion it read, a reference another writer added meanwhile was dropped."""
    pvc = bound_pvc("web-1-data")
    pvc["metadata"]["resourceVersion"] = "41"
    world = with_data(ready_children(), pvc)
    hold = patches(decide(wukong(deleteOptions=KEEP_DATA), {}, world))["web-1-data"]
    assert hold["metadata"]["resourceVersion"] == "41"
    cr = wukong(deleteOptions=KEEP_DATA)
    cr = cr.model_copy(
        update={
            "metadata": cr.metadata.model_copy(
                update={"deletion_timestamp": "2026-11-23T12:00:00Z"}
            )
        }
    )
    release = patches(plan_deletion(cr, {}, world))["web-1-data"]
    assert release["metadata"]["resourceVersion"] == "41"


def _importing_another_image(phase: str) -> tuple[Any, Any]:
    """web-1 whose system disk's image changed while its DataVolume (for fedora:39) is in
    `phase`; the world it sees."""
    from wukong.reconcile.disks import build_data_volume

    before = wukong(disks=[{"name": "system", "size": "20Gi", "image": "docker://x/fedora:39"}])
    dv = imported_dv(phase=phase, progress="")
    dv["spec"] = build_data_volume(before, before.spec.disks[0])["spec"]
    world = ready_children(data_volumes={"web-1-system": dv})
    after = wukong(disks=[{"name": "system", "size": "20Gi", "image": "docker://x/fedora:40"}])
    return after, world


def test_a_failed_import_is_made_again_for_a_fixed_image() -> None:
    cr, world = _importing_another_image("Failed")
    plan = decide(cr, {}, world)
    [again] = [a for a in plan.actions if isinstance(a, DeleteChild)]
    assert (again.kind, again.name, again.foreground) == ("DataVolume", "web-1-system", True)


def test_a_disk_that_holds_data_is_not_imported_again_whatever_its_data_volume_says() -> None:
    """CDI marks a DataVolume made for a kept claim taken back (populatedFor) Succeeded only a
    write after it took the claim: an image changed in between deleted the DataVolume in the
    foreground, and the claim with the data on it (found by a source audit, session 42). The
    same for a disk the status said imported once."""
    cr, world = _importing_another_image("Pending")
    world.claims["web-1-system"]["metadata"]["annotations"] = {
        names.ANNOTATION_POPULATED_FOR: "web-1-system"
    }
    plan = decide(cr, {}, world)
    assert not [a for a in plan.actions if isinstance(a, DeleteChild)]
    [system] = [v for v in plan.status["volumes"] if v["name"] == "system"]
    assert "the disk keeps its data" in system["message"]
    cr, world = _importing_another_image("ImportScheduled")
    said = {"volumes": [{"name": "system", "pvcName": "web-1-system", "phase": "Succeeded"}]}
    assert not [a for a in decide(cr, said, world).actions if isinstance(a, DeleteChild)]


@pytest.mark.parametrize(
    ("cdi_reason", "reason", "words"),
    [
        (
            "ErrClaimNotValid",
            "ClaimNotValid",
            "Spec is missing accessMode and volumeMode, cannot get access mode from "
            "StorageProfile local-path",
        ),
        ("ErrExceededQuota", "QuotaExceeded", 'persistentvolumeclaims "web-1-system" is '
         "forbidden: exceeded quota: storage"),
    ],
)  # fmt: skip
def test_cdis_reason_for_making_no_claim_is_said(cdi_reason: str, reason: str, words: str) -> None:
    """CDI writes why it makes no claim into the DataVolume's Bound condition only; the disk
    said "not provisioned yet" for good (found by a source audit, session 42)."""
    bound = {"type": "Bound", "status": "False", "reason": cdi_reason, "message": words}
    dv = imported_dv(phase="Pending", progress="", conditions=[bound])
    world = ready_children(data_volumes={"web-1-system": dv}, claims={})
    plan = decide(wukong(), {}, world)
    [cond] = [c for c in plan.status["conditions"] if c["type"] == "VolumesBound"]
    assert (cond["status"], cond["reason"]) == ("False", reason)
    assert f"CDI makes no claim for DataVolume 'web-1-system': {words}" in cond["message"]


def test_an_imported_disk_whose_claim_went_and_is_imported_anew_says_so() -> None:
    """CDI makes a finished DataVolume's deleted claim again and imports anew: the Wukong said
    Creating and booted a pristine image without a word (found by a source audit, s42)."""
    dv = imported_dv(phase="ImportScheduled", progress="")
    world = ready_children(data_volumes={"web-1-system": dv}, claims={})
    done = {"volumes": [{"name": "system", "pvcName": "web-1-system", "phase": "Succeeded"}]}
    plan = decide(wukong(), done, world)
    [warned] = [e for e in plan.actions if getattr(e, "reason", None) == "DiskClaimLost"]
    assert warned.message == (
        "claim web-1-system of disk system was deleted outside Wukong: CDI makes it again and "
        "it is imported anew (what the guest wrote on it is gone)"
    )
    # Once: the next pass's status says it is being imported.
    again = decide(wukong(), plan.status, world)
    assert not [e for e in again.actions if getattr(e, "reason", None) == "DiskClaimLost"]


def _orphaned_claim(**labels: str) -> dict[str, Any]:
    """web-1's system disk claim as CDI made it, its DataVolume deleted with --cascade=orphan."""
    pvc = bound_pvc("web-1-system", "20Gi")
    pvc["metadata"]["ownerReferences"] = []
    pvc["metadata"]["labels"] = {
        names.LABEL_MANAGED_BY: names.MANAGED_BY,
        names.LABEL_WUKONG: "web-1",
        **labels,
    }
    return pvc


def test_a_claim_left_without_its_data_volume_is_said_as_what_it_is() -> None:
    """It was said to "already belong to Wukong 'web-1'": this very Wukong (found by a source
    audit, session 42). The data stays; the words say how to keep or drop it."""
    claims = {"web-1-system": _orphaned_claim(), "web-1-data": bound_pvc("web-1-data")}
    world = ready_children(data_volumes={}, claims=claims)
    plan = decide(wukong(), {}, world)
    assert not [a for a in plan.actions if isinstance(a, CreateChild | DeleteChild)]
    [cond] = [c for c in plan.status["conditions"] if c["type"] == "VolumesBound"]
    assert cond["reason"] == "ClaimConflict"
    assert (
        "PVC 'web-1-system' is a disk of a Wukong named 'web-1' left without its owner "
        "(deleted with --cascade=orphan): to keep its data, label it "
        f"{names.LABEL_RETAINED_FROM}=web-1 {names.LABEL_DISK}=system"
    ) in cond["message"]


def test_a_claim_held_for_this_wukong_without_its_data_volume_is_taken_back_first() -> None:
    """A disk made kept has a claim CDI labelled held-by; its DataVolume deleted with
    --cascade=orphan, a new DataVolume over that claim is refused by CDI's webhook for good
    ("Destination PVC already exists"): the claim is taken back, marked filled, first."""
    pvc = _orphaned_claim(**{names.LABEL_HELD_BY: UID})
    claims = {"web-1-system": pvc, "web-1-data": bound_pvc("web-1-data")}
    world = ready_children(data_volumes={}, claims=claims)
    plan = decide(wukong(), {}, world)
    assert not [a for a in plan.actions if isinstance(a, CreateChild)]
    patch = patches(plan)["web-1-system"]["metadata"]
    assert patch["annotations"] == {names.ANNOTATION_POPULATED_FOR: "web-1-system"}
    # Marked: the DataVolume is made, and CDI takes the claim as filled.
    pvc["metadata"]["annotations"] = patch["annotations"]
    made = decide(wukong(), plan.status, world)
    assert [a.kind for a in made.actions if isinstance(a, CreateChild)] == ["DataVolume"]
