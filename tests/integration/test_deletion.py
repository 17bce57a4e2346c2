"""Deletion (issue 7): ordered teardown, kept disks survive the garbage collector."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.integration.scenario import (
    IMAGE,
    condition,
    create,
    get,
    items,
    k,
    operator,
    patch_spec,
    path,
    sim,
    user_nad,
    wait_for,
    wait_phase,
    wukong,
    wukong_events,
)
from wukong.adapters.kube import Kube
from wukong.api import names
from wukong.testing.controlplane import ControlPlane
from wukong.testing.eventually import eventually
from wukong.testing.kubevirt import Simulator
from wukong.testing.operator import InProcessOperator, OperatorProcess

__all__ = ["k", "operator", "sim"]  # fixtures

DISKS = [
    {"name": "system", "size": "10Gi", "image": IMAGE},
    {"name": "data", "size": "5Gi"},
    {"name": "logs", "size": "1Gi"},
]
NETWORKS = [
    {"name": "storage", "nadName": "storage-net"},
    {"name": "lan", "type": "bridge", "bridge": "br-lan"},
]


async def full(k: Kube, namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    """A Wukong with three disks, a user NAD and an owned NAD, running."""
    if await get(k, "nad", namespace, "storage-net") is None:
        await create(k, "nad", namespace, user_nad("storage-net"))
    await create(k, "wukong", namespace, wukong(name, disks=DISKS, networks=NETWORKS, **spec))
    return await wait_phase(k, namespace, name, "Running", within=30)


async def gone(k: Kube, kind: str, namespace: str, name: str) -> bool:
    return await get(k, kind, namespace, name) is None


async def all_gone(k: Kube, namespace: str, *refs: tuple[str, str]) -> bool:
    return all([await gone(k, kind, namespace, name) for kind, name in refs])


async def test_plain_delete_removes_every_child_but_the_users_nad(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    await full(k, namespace, "del-1")
    await k.delete(path("wukong", namespace, "del-1"))
    refs = [
        ("wukong", "del-1"),
        ("vm", "del-1-vm"),
        ("vmi", "del-1-vm"),
        ("dv", "del-1-system"),
        ("pvc", "del-1-system"),
        ("pvc", "del-1-data"),
        ("pvc", "del-1-logs"),
        ("nad", "del-1-lan"),
    ]
    await eventually(lambda: all_gone(k, namespace, *refs), timeout=30)
    assert await get(k, "nad", namespace, "storage-net") is not None


@pytest.mark.parametrize(
    ("options", "kept", "deleted"),
    [
        pytest.param(
            {"preserveDisks": True}, ["system", "data", "logs"], [], id="preserve-all-disks"
        ),
        pytest.param(
            {"preserveDisksList": ["data"]}, ["data"], ["system", "logs"], id="preserve-listed-disk"
        ),
    ],
)
async def test_kept_disks_survive_garbage_collection_and_are_labelled(
    k: Kube,
    namespace: str,
    operator: InProcessOperator,
    options: dict[str, Any],
    kept: list[str],
    deleted: list[str],
) -> None:
    cr = await full(k, namespace, "del-2", deleteOptions=options)
    uid = cr["metadata"]["uid"]
    await k.delete(path("wukong", namespace, "del-2"))
    await eventually(lambda: gone(k, "wukong", namespace, "del-2"), timeout=30)
    await eventually(
        lambda: all_gone(k, namespace, *[("pvc", f"del-2-{d}") for d in deleted]), timeout=30
    )
    await asyncio.sleep(3)  # give the garbage collector every chance to take what is owned
    for disk in kept:
        pvc = await get(k, "pvc", namespace, f"del-2-{disk}")
        assert pvc is not None, f"kept disk {disk} was lost"
        labels = pvc["metadata"]["labels"]
        assert labels[names.LABEL_RETAINED_FROM] == "del-2"
        assert labels[names.LABEL_RETAINED_UID] == uid
        refs = pvc["metadata"].get("ownerReferences") or []
        assert not [r for r in refs if r.get("kind") in ("Wukong", "DataVolume")]


async def test_a_kept_disk_goes_back_to_its_own_wukong_and_disk_only(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    """docs/deletion.md: a Wukong made again with the same name and disk name takes its kept
    disk back. Review s22 F7: a Wukong whose claim name only happens to match (`del` with disk
    `3-data` and `del-3` with disk `data` both make `del-3-data`) does not."""
    await create(k, "wukong", namespace, wukong("del-3", disks=[{"name": "data", "size": "1Gi"}]))
    await wait_phase(k, namespace, "del-3", "Running", within=30)
    kept = await get(k, "pvc", namespace, "del-3-data")
    assert kept is not None
    await k.merge_patch(
        path("wukong", namespace, "del-3"), {"spec": {"deleteOptions": {"preserveDisks": True}}}
    )
    await k.delete(path("wukong", namespace, "del-3"))
    await eventually(lambda: gone(k, "wukong", namespace, "del-3"), timeout=30)
    other = wukong("del", disks=[{"name": "3-data", "size": "1Gi"}])
    await create(k, "wukong", namespace, other)
    cr = await wait_for(
        k,
        namespace,
        "del",
        lambda c: condition(c, "VolumesBound").get("reason") == "ClaimConflict",
        what="del's disk 3-data in conflict with the disk kept from del-3",
    )
    assert "kept from Wukong 'del-3' (its disk 'data')" in condition(cr, "VolumesBound")["message"]
    # With a new disk beside it: the pass that adopts the kept disk also creates (user audit,
    # session 37: the create's first status was then held, and DiskAdopted with it, for good).
    disks = [{"name": "data", "size": "1Gi"}, {"name": "logs", "size": "1Gi"}]
    await create(k, "wukong", namespace, wukong("del-3", disks=disks))
    await wait_phase(k, namespace, "del-3", "Running", within=30)
    again = await get(k, "pvc", namespace, "del-3-data")
    assert again is not None and again["metadata"]["uid"] == kept["metadata"]["uid"]
    assert names.LABEL_RETAINED_FROM not in again["metadata"]["labels"]
    [adopted] = await eventually(
        lambda: wukong_events(k, namespace, "DiskAdopted"), message="a DiskAdopted Event"
    )
    assert (adopted["involvedObject"]["name"], adopted["type"]) == ("del-3", "Normal")


SYSTEM = {"name": "system", "size": "1Gi", "image": IMAGE}


async def kept_system_disk(k: Kube, namespace: str, name: str) -> dict[str, Any]:
    """Run Wukong `name` with an imported system disk, delete it keeping its disks; the
    claim it left."""
    spec = {"disks": [SYSTEM], "deleteOptions": {"preserveDisks": True}}
    await create(k, "wukong", namespace, wukong(name, **spec))
    await wait_phase(k, namespace, name, "Running", within=30)
    kept = await get(k, "pvc", namespace, f"{name}-system")
    assert kept is not None
    await k.delete(path("wukong", namespace, name))
    await eventually(lambda: gone(k, "wukong", namespace, name), timeout=30)
    return kept


async def test_a_kept_imported_disk_goes_back_to_its_wukong(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    """Review s23 F4: the system disk is usually imported, and a kept one was never taken
    back: its claim was adopted away from its DataVolume, CDI took it for someone else's,
    and the Wukong stayed Creating for good."""
    kept = await kept_system_disk(k, namespace, "del-4")
    await create(k, "wukong", namespace, wukong("del-4", disks=[SYSTEM]))
    await wait_phase(k, namespace, "del-4", "Running", within=30)
    again = await get(k, "pvc", namespace, "del-4-system")
    assert again is not None and again["metadata"]["uid"] == kept["metadata"]["uid"]
    (owner,) = again["metadata"]["ownerReferences"]
    dv = await get(k, "dv", namespace, "del-4-system")
    assert dv is not None and (owner["kind"], owner["uid"]) == ("DataVolume", dv["metadata"]["uid"])
    cr = await get(k, "wukong", namespace, "del-4")
    assert cr is not None
    assert [r["uid"] for r in dv["metadata"]["ownerReferences"]] == [cr["metadata"]["uid"]]


async def test_a_kept_imported_disk_whose_data_volume_was_deleted_goes_back_too(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    """Session 24: after deleting the kept DataVolume by hand (it is only CDI's record of the
    import; the data is in the claim), the claim was adopted under the Wukong and CDI refused
    it to the new DataVolume as another's: the Wukong stayed Creating for good."""
    kept = await kept_system_disk(k, namespace, "del-5")
    await k.delete(path("dv", namespace, "del-5-system"))
    await eventually(lambda: gone(k, "dv", namespace, "del-5-system"), timeout=30)
    assert await get(k, "pvc", namespace, "del-5-system") is not None

    await create(k, "wukong", namespace, wukong("del-5", disks=[SYSTEM]))
    await wait_phase(k, namespace, "del-5", "Running", within=30)
    again = await get(k, "pvc", namespace, "del-5-system")
    assert again is not None and again["metadata"]["uid"] == kept["metadata"]["uid"]
    dv = await get(k, "dv", namespace, "del-5-system")
    assert dv is not None and dv["status"]["phase"] == "Succeeded"
    (owner,) = again["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"]) == ("DataVolume", dv["metadata"]["uid"])
    cr = await get(k, "wukong", namespace, "del-5")
    assert cr is not None
    assert [r["uid"] for r in dv["metadata"]["ownerReferences"]] == [cr["metadata"]["uid"]]
    # Not kept this time: deleting the Wukong deletes the disk with it.
    await k.delete(path("wukong", namespace, "del-5"))
    await eventually(lambda: gone(k, "pvc", namespace, "del-5-system"), timeout=30)


async def test_force_delete_releases_at_once_and_still_keeps_disks(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    await full(
        k,
        namespace,
        "del-3",
        deleteOptions={"force": True, "preserveDisksList": ["data"], "gracePeriodSeconds": 3600},
    )
    await k.merge_patch(
        path("vm", namespace, "del-3-vm"),
        {"metadata": {"annotations": {"sim.kubevirt.io/ignore-acpi": "true"}}},
    )
    await k.delete(path("wukong", namespace, "del-3"))
    await eventually(lambda: gone(k, "wukong", namespace, "del-3"), timeout=10)
    await asyncio.sleep(2)
    assert await get(k, "pvc", namespace, "del-3-data") is not None


async def test_annotation_holds_the_finalizer_until_removed_when_no_policy_is_installed(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    annotations = {names.ANNOTATION_DELETION_PROTECTION: "true"}
    await create(
        k,
        "wukong",
        namespace,
        wukong("del-4") | {"metadata": {"name": "del-4", "annotations": annotations}},
    )
    await wait_phase(k, namespace, "del-4", "Running")
    await k.delete(path("wukong", namespace, "del-4"))
    cr = await wait_for(
        k, namespace, "del-4", lambda c: condition(c, "DeletionBlocked").get("status") == "True"
    )
    assert "deletion-protection" in condition(cr, "DeletionBlocked")["message"]
    await asyncio.sleep(1)
    assert await get(k, "vmi", namespace, "del-4-vm") is not None  # nothing touched
    await k.merge_patch(
        path("wukong", namespace, "del-4"),
        {"metadata": {"annotations": {names.ANNOTATION_DELETION_PROTECTION: None}}},
    )
    await eventually(
        lambda: all_gone(k, namespace, ("wukong", "del-4"), ("vm", "del-4-vm")), timeout=30
    )


async def test_delete_and_recreate_the_same_name_keeps_the_new_children(
    k: Kube, namespace: str, operator: InProcessOperator
) -> None:
    await create(k, "wukong", namespace, wukong("del-5", disks=[{"name": "data", "size": "1Gi"}]))
    await wait_phase(k, namespace, "del-5", "Running")
    await k.delete(path("wukong", namespace, "del-5"))
    await eventually(lambda: gone(k, "wukong", namespace, "del-5"), timeout=30)
    new = await create(
        k, "wukong", namespace, wukong("del-5", disks=[{"name": "data", "size": "1Gi"}])
    )
    await wait_phase(k, namespace, "del-5", "Running", within=30)
    await asyncio.sleep(2)
    pvc = await get(k, "pvc", namespace, "del-5-data")
    assert pvc is not None
    assert pvc["metadata"]["ownerReferences"][0]["uid"] == new["metadata"]["uid"]
    assert await get(k, "vm", namespace, "del-5-vm") is not None


@pytest.mark.timeout(120)
@pytest.mark.parametrize("step", ["Retain", "StopVM", "DeleteVM", "DeleteDisks"])
async def test_operator_killed_during_deletion_finishes_after_restart_without_losing_disks(
    k: Kube, namespace: str, operator_kubeconfig: Path, sim: Simulator, step: str
) -> None:
    first = OperatorProcess(operator_kubeconfig, namespace=namespace)
    first.start()
    # The next operator loads its modules meanwhile, and starts the moment the first is killed.
    second = OperatorProcess(operator_kubeconfig, namespace=namespace)
    second.prepare()
    try:
        await full(
            k,
            namespace,
            "del-6",
            deleteOptions={"preserveDisksList": ["data"], "gracePeriodSeconds": 2},
        )
        if step == "StopVM":  # hold the stop step: the guest ignores ACPI for 2 s
            await k.merge_patch(
                path("vm", namespace, "del-6-vm"),
                {"metadata": {"annotations": {"sim.kubevirt.io/ignore-acpi": "true"}}},
            )
        await k.delete(path("wukong", namespace, "del-6"))
        order = ["Retain", "StopVM", "DeleteVM", "DeleteDisks", "DeleteNetworks", "Finalize"]

        def reached(cr: dict[str, Any]) -> bool:
            current = ((cr.get("status") or {}).get("deletion") or {}).get("step", "")
            return current in order and order.index(current) >= order.index(step)

        async def at_step_or_done() -> bool:
            # Fast steps (DeleteVM, DeleteDisks) can finish before we look: then the crash
            # lands after them, and the checks below still hold for the rest of the flow.
            cr = await get(k, "wukong", namespace, "del-6")
            return cr is None or reached(cr)

        await eventually(at_step_or_done, timeout=30)
    except BaseException:
        second.kill()
        raise
    finally:
        first.kill()
    second.start()
    try:
        refs = [
            ("wukong", "del-6"),
            ("vm", "del-6-vm"),
            ("vmi", "del-6-vm"),
            ("dv", "del-6-system"),
            ("pvc", "del-6-system"),
            ("pvc", "del-6-logs"),
            ("nad", "del-6-lan"),
        ]
        await eventually(lambda: all_gone(k, namespace, *refs), timeout=40)
    finally:
        second.terminate()
    assert await get(k, "pvc", namespace, "del-6-data") is not None
    leftovers = [p["metadata"]["name"] for p in await items(k, "pvc", namespace)]
    assert leftovers == ["del-6-data"]


async def test_a_foreground_delete_while_the_operator_is_down_keeps_the_kept_disks(
    k: Kube, namespace: str, operator_kubeconfig: Path, sim: Simulator
) -> None:
    """Review s23 F1: a foreground delete (`kubectl delete --cascade=foreground`, Argo CD's
    prune) makes the garbage collector delete every dependent at once, our finalizer
    notwithstanding. Owned kept disks raced the operator's Retain step: with the operator
    down, both were gone. Without the admission policy (the namespaced install) nothing
    refuses such a delete, so kept disks are held by label, not owned, while the Wukong
    lives."""
    system = {"name": "system", "size": "1Gi", "image": IMAGE}
    disks = [system, {"name": "data", "size": "1Gi"}]
    first = OperatorProcess(operator_kubeconfig, namespace=namespace)
    first.start()
    try:
        keep = {"preserveDisks": True}
        await create(k, "wukong", namespace, wukong("del-fg", disks=disks, deleteOptions=keep))
        await wait_phase(k, namespace, "del-fg", "Running", within=40)
        cr = await get(k, "wukong", namespace, "del-fg")
        assert cr is not None
        uid = cr["metadata"]["uid"]

        async def held() -> bool:
            found = [
                await get(k, "dv", namespace, "del-fg-system"),
                await get(k, "pvc", namespace, "del-fg-data"),
            ]
            return all(
                o is not None
                and o["metadata"]["labels"].get(names.LABEL_HELD_BY) == uid
                and all(r["uid"] != uid for r in o["metadata"].get("ownerReferences") or [])
                for o in found
            )

        await eventually(held, timeout=20, message="the kept disks held by label")
    finally:
        first.kill()
    claims = {d: await get(k, "pvc", namespace, f"del-fg-{d}") for d in ("system", "data")}
    await k.delete(path("wukong", namespace, "del-fg"), propagation="Foreground")
    # The collector deletes what the Wukong owns (its VM) while no operator runs.
    await eventually(lambda: gone(k, "vm", namespace, "del-fg-vm"), timeout=40)
    second = OperatorProcess(operator_kubeconfig, namespace=namespace)
    second.start()
    try:
        await eventually(lambda: gone(k, "wukong", namespace, "del-fg"), timeout=60)
    finally:
        second.terminate()
    for disk, before in claims.items():
        assert before is not None
        pvc = await get(k, "pvc", namespace, f"del-fg-{disk}")
        assert pvc is not None, f"kept disk {disk} lost to the foreground delete"
        assert pvc["metadata"]["uid"] == before["metadata"]["uid"]
        assert not pvc["metadata"].get("deletionTimestamp")
    data = await get(k, "pvc", namespace, "del-fg-data")
    assert data is not None and data["metadata"]["labels"][names.LABEL_RETAINED_FROM] == "del-fg"
    assert await get(k, "dv", namespace, "del-fg-system") is not None


async def test_a_disk_removed_in_edits_the_operator_did_not_see_outlives_the_deletion(
    k: Kube, namespace: str, operator_kubeconfig: Path, sim: Simulator
) -> None:
    """Source audit, session 46: while the operator was down, `del-u1` got `preserveData`
    on disk data, then lost data, then was deleted. The deletion used data's options of
    the last generation it saw and deleted the claim. Now it is kept with a Warning.
    `del-u2` only lost data (its options were seen, and said delete) and was deleted: the
    API server's own generation bump of the delete is not counted as an edit."""
    system = {"name": "system", "size": "1Gi", "image": IMAGE}
    data = {"name": "data", "size": "1Gi"}
    first = OperatorProcess(operator_kubeconfig, namespace=namespace)
    first.start()
    try:
        for name in ("del-u1", "del-u2"):
            await create(k, "wukong", namespace, wukong(name, disks=[system, data]))
        for name in ("del-u1", "del-u2"):
            await wait_phase(k, namespace, name, "Running", within=40)
    finally:
        first.kill()
    claims = {name: await get(k, "pvc", namespace, f"{name}-data") for name in ("del-u1", "del-u2")}
    keep = {**data, "detachOptions": {"preserveData": True}}
    await patch_spec(k, namespace, "del-u1", {"disks": [system, keep]})
    for name in ("del-u1", "del-u2"):
        await patch_spec(k, namespace, name, {"disks": [system]})
        await k.delete(path("wukong", namespace, name))
    deleted = await get(k, "wukong", namespace, "del-u1")
    assert deleted is not None
    # Three past the status: two edits, and one for the delete (apiserver markAsDeleting).
    assert deleted["metadata"]["generation"] == deleted["status"]["observedGeneration"] + 3
    second = OperatorProcess(operator_kubeconfig, namespace=namespace)
    second.start()
    try:
        await eventually(
            lambda: all_gone(k, namespace, ("wukong", "del-u1"), ("wukong", "del-u2")),
            timeout=60,
        )
        await eventually(lambda: gone(k, "pvc", namespace, "del-u2-data"), timeout=30)
    finally:
        second.terminate()
    before = claims["del-u1"]
    pvc = await get(k, "pvc", namespace, "del-u1-data")
    assert before is not None and pvc is not None, "the disk left unseen was deleted"
    assert pvc["metadata"]["uid"] == before["metadata"]["uid"]
    assert pvc["metadata"]["labels"][names.LABEL_RETAINED_FROM] == "del-u1"
    warned = await wukong_events(k, namespace, "DetachOptionsUnknown")
    assert [e["involvedObject"]["name"] for e in warned] == ["del-u1"]
    assert "del-u1-data" in warned[0]["message"]


async def test_a_deletion_grace_period_longer_than_the_launchers_ends_before_it(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    """virt-launcher destroys the guest 45 s after a stop (the VMI's 30 s plus KubeVirt's
    15 s), whatever grace the stop asks for: a deletion asking 2 minutes is cut to 40 s,
    said in its step's Event and status, and the stop KubeVirt gets asks 40 s."""
    await create(k, "wukong", namespace, wukong("del-g", deleteOptions={"gracePeriodSeconds": 120}))
    await wait_phase(k, namespace, "del-g", "Running", within=30)
    await k.delete(path("wukong", namespace, "del-g"))
    await eventually(
        lambda: all_gone(k, namespace, ("wukong", "del-g"), ("vmi", "del-g-vm")), timeout=30
    )
    assert [c.body for c in sim.calls if c.subresource == "stop"] == [{"gracePeriod": 40}]
    (stopping,) = [e["message"] for e in await wukong_events(k, namespace, "DeletionStopVM")]
    assert "grace 40s" in stopping, stopping
    assert "grace period cut from 120s to 40s: KubeVirt's virt-launcher kills the guest 45s" in (
        stopping
    )


async def test_an_orphan_delete_waits_for_the_collector_and_leaves_the_vm_and_disks(
    k: Kube,
    namespace: str,
    control_plane: ControlPlane,
    operator: InProcessOperator,
    sim: Simulator,
) -> None:
    """`kubectl delete --cascade=orphan` promises the VM keeps running and the disks stay.
    The teardown started on the same watch event the garbage collector acts on: whenever the
    collector lagged, the VM, still owned, was stopped for good (runStrategy Halted) and its
    disks deleted once it was gone (disk-safety audit, session 46, finding 5). Here the
    collector is held still until the operator has had its passes."""
    await full(k, namespace, "del-o")
    vm = await get(k, "vm", namespace, "del-o-vm")
    assert vm is not None
    strategy = vm["spec"]["runStrategy"]
    refs = [("pvc", f"del-o-{d['name']}") for d in DISKS] + [("dv", "del-o-system")]
    before = {ref: await get(k, ref[0], namespace, ref[1]) for ref in refs}
    with control_plane.controllers_paused():
        await k.delete(path("wukong", namespace, "del-o"), propagation="Orphan")
        cr = await wait_for(
            k,
            namespace,
            "del-o",
            lambda c: (c.get("status", {}).get("deletion") or {}).get("step") == "Orphaning",
            what="the deletion waiting for the garbage collector",
        )
        assert "orphan" in cr["metadata"]["finalizers"]
        await asyncio.sleep(3)  # passes that would stop or delete have had their chance
        vm = await get(k, "vm", namespace, "del-o-vm")
        assert vm is not None and vm["spec"]["runStrategy"] == strategy
        assert not vm["metadata"].get("deletionTimestamp")
        assert [c for c in sim.calls if c.subresource == "stop"] == []
    # The collector orphans the children and removes `orphan`; the operator lets the Wukong go.
    await eventually(lambda: gone(k, "wukong", namespace, "del-o"), timeout=60)
    await asyncio.sleep(2)
    vm = await get(k, "vm", namespace, "del-o-vm")
    assert vm is not None and vm["spec"]["runStrategy"] == strategy
    assert not vm["metadata"].get("deletionTimestamp") and not vm["metadata"].get("ownerReferences")
    vmi = await get(k, "vmi", namespace, "del-o-vm")
    assert vmi is not None and vmi["status"]["phase"] == "Running"
    for ref, was in before.items():
        now = await get(k, ref[0], namespace, ref[1])
        assert was is not None and now is not None, f"{ref} deleted"
        assert now["metadata"]["uid"] == was["metadata"]["uid"]
        assert not now["metadata"].get("deletionTimestamp"), ref
    assert await get(k, "nad", namespace, "del-o-lan") is not None
