"""A patch lands only on the object it was decided for (session 49).

The operator decides from its watch caches. A VM deleted and made again under its name (by a
user, another controller, or the operator itself after a recreate) before the operator's watch
shows it is another object: the runStrategy patch decided for the old one must not start or
stop the new one. Each patch carries the uid of the object it was decided from; the API
server refuses it on another (422, metadata.uid), which the operator takes as a conflict and
decides again from the cache, once the watch has caught up.

The window is made wide on purpose: the operator's VM (and VMI) watch is held back, its
events kept and applied in order afterwards, as a watch that fell behind and catches up.

Session 50: the Wukong's own status write too, a JSON patch whose first operation tests the
Wukong's uid (a merge patch's uid is not checked on a custom resource's /status).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.integration.scenario import (
    OPERATOR_USER,
    condition,
    create,
    get,
    k,
    operator,
    patch_spec,
    path,
    requests_sent,
    sim,
    wait_for,
    wait_phase,
    wukong,
)
from wukong.adapters.kube import NOT_APPLIED, Kube
from wukong.adapters.wukongs import Wukongs
from wukong.api import kinds
from wukong.errors import Conflict, Invalid
from wukong.testing import audit
from wukong.testing.controlplane import ControlPlane
from wukong.testing.eventually import eventually
from wukong.testing.operator import InProcessOperator

__all__ = ["k", "operator", "sim"]  # fixtures


@contextmanager
def late_watches(op: InProcessOperator, *caches: str) -> Iterator[None]:
    """The operator's watches of `caches` fall behind: what they receive is held (its caches
    show the objects as they were) until the block ends, then applied in order."""
    assert op.operator is not None
    informers = [op.operator.informers[cache] for cache in caches]
    held: list[tuple[Any, Any]] = []
    for informer in informers:
        informer.process = lambda event, i=informer: held.append((i, event))  # type: ignore[method-assign]
    try:
        yield
    finally:
        for informer in informers:
            del informer.process
        for informer, event in held:
            informer.process(event)


def someone_elses_vm(name: str, strategy: str) -> dict[str, Any]:
    """A VM a user made by hand: no owner, none of the Wukong's labels."""
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name},
        "spec": {
            "runStrategy": strategy,
            "template": {"spec": {"domain": {"devices": {}, "memory": {"guest": "1Gi"}}}},
        },
    }


async def running_guest(k: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    vmi = await get(k, "vmi", namespace, name)
    return vmi if vmi and (vmi.get("status") or {}).get("phase") == "Running" else None


@pytest.mark.parametrize(
    ("before", "after", "theirs"),
    [
        ("Halted", "Always", "Halted"),  # the start of a stopped Wukong
        ("Always", "Halted", "Always"),  # the stop of a running one
    ],
    ids=["start", "stop"],
)
async def test_a_vm_made_anew_under_the_name_is_not_given_the_old_vms_run_strategy(
    k: Kube,
    namespace: str,
    operator: InProcessOperator,
    control_plane: ControlPlane,
    before: str,
    after: str,
    theirs: str,
) -> None:
    await create(k, "wukong", namespace, wukong("w", runStrategy=before))
    await wait_phase(k, namespace, "w", "Running" if before == "Always" else "Stopped", within=60)
    old = await get(k, "vm", namespace, "w-vm")
    assert old is not None and old["spec"]["runStrategy"] == before
    with late_watches(operator, kinds.VM.cache, kinds.VMI.cache):
        # Deleted, and another VM of the name made, before the operator's watch shows either.
        await k.delete(path("vm", namespace, "w-vm"))

        async def gone() -> bool:
            vm, vmi = await get(k, "vm", namespace, "w-vm"), await get(k, "vmi", namespace, "w-vm")
            return vm is None and vmi is None

        await eventually(gone, timeout=60, message="the Wukong's VM and its guest are gone")
        new = await create(k, "vm", namespace, someone_elses_vm("w-vm", theirs))
        assert new["metadata"]["uid"] != old["metadata"]["uid"]
        guest = None
        if theirs == "Always":
            guest = await eventually(
                lambda: running_guest(k, namespace, "w-vm"), timeout=60, message="their guest runs"
            )
        since = audit.size(control_plane.audit_log)
        await patch_spec(k, namespace, "w", {"runStrategy": after})

        def patches() -> list[audit.Request]:
            return [
                r
                for r in audit.read(control_plane.audit_log, since=since)
                if r.user == OPERATOR_USER
                and r.namespace == namespace
                and r.what == "virtualmachines patch"
                and r.name == "w-vm"
            ]

        # The operator decides from the VM its cache still shows, and patches it, again and
        # again while its cache is behind (the queue's backoff).
        await eventually(patches, timeout=30, message="the runStrategy patch")
        await asyncio.sleep(3)
        vm = await get(k, "vm", namespace, "w-vm")
        assert vm is not None and vm["metadata"]["uid"] == new["metadata"]["uid"]
        assert vm["spec"]["runStrategy"] == theirs, "the old VM's decision landed on the new VM"
        # A race lost, not a refusal: nothing told to the user while the pass retries.
        cr = await get(k, "wukong", namespace, "w")
        assert cr is not None and condition(cr, "ChildrenAdmitted") == {}, cr["status"]
    # The watch catches up: the VM of the name is someone else's, and left alone. Until the
    # informer has taken in the held events, a pass may still decide from the old VM and
    # patch once more (refused as well): the count is taken once the Wukong says so (a
    # CI run met a tenth patch between the watches' release and NameConflict).
    await wait_for(
        k, namespace, "w", lambda c: condition(c, "SpecValid").get("reason") == "NameConflict"
    )
    tried = patches()
    assert [r.code for r in tried] == [422] * len(tried), tried
    assert all("metadata.uid" in r.message for r in tried), tried
    await asyncio.sleep(5)  # passes enough to patch it, had it been taken for the Wukong's
    vm = await get(k, "vm", namespace, "w-vm")
    assert vm is not None and vm["metadata"]["uid"] == new["metadata"]["uid"]
    assert vm["spec"]["runStrategy"] == theirs and not vm["metadata"].get("ownerReferences")
    assert len(patches()) == len(tried)  # none since the cache caught up
    if guest is not None:
        still = await running_guest(k, namespace, "w-vm")
        assert still is not None and still["metadata"]["uid"] == guest["metadata"]["uid"]
    else:
        assert await get(k, "vmi", namespace, "w-vm") is None  # not started


# The Wukong's own status (session 50): a JSON patch whose first operation tests its uid.

STATUS = {"phase": "Stopped", "vmName": "w-vm", "observedGeneration": 1}


async def test_the_api_servers_answers_to_the_status_patch(k: Kube, namespace: str) -> None:
    """What kube-apiserver answers the operator's status patch (no operator runs here): the
    uid test sees the stored object's uid on `/status`, and a patch that does not apply is
    told apart from a status the CRD's schema refuses."""
    made = await create(k, "wukong", namespace, wukong("w", runStrategy="Halted"))
    uid, wukongs = made["metadata"]["uid"], Wukongs(k)
    written = await wukongs.patch_status(namespace, "w", uid, [_add("/status", STATUS)])
    assert written["status"] == STATUS
    # Session 49: a merge patch's metadata.uid is not checked on /status (still so).
    other = {"metadata": {"uid": "0" * 8}, "status": {"phase": "Stopped"}}
    assert (await k.merge_patch(path("wukong", namespace, "w") + "/status", other))["status"]
    not_applied = [
        ("another uid", "0" * 8, [_add("/status/phase", "Running")]),
        ("a key not there", uid, [{"op": "remove", "path": "/status/nodeName"}]),
        ("a parent not there", uid, [_add("/status/lifecycleState/state", "Issued")]),
    ]
    for why, pinned, ops in not_applied:
        with pytest.raises(Conflict) as conflict:
            await wukongs.patch_status(namespace, "w", pinned, ops)
        cause = conflict.value.__cause__
        assert isinstance(cause, Invalid), why
        assert (cause.status, cause.reason, cause.message) == (422, "Invalid", NOT_APPLIED), why
    # The schema refusing the patched status is no conflict: it stays a refusal.
    with pytest.raises(Invalid) as refused:
        await wukongs.patch_status(namespace, "w", uid, [_add("/status/phase", "Odd")])
    assert not isinstance(refused.value, Conflict)
    assert refused.value.status == 422 and "status.phase" in refused.value.message
    assert refused.value.message != NOT_APPLIED
    stored = await get(k, "wukong", namespace, "w")
    assert stored is not None and stored["status"] == STATUS  # none of them changed it


def _add(where: str, value: Any) -> dict[str, Any]:
    return {"op": "add", "path": where, "value": value}


async def test_a_status_decided_for_a_wukong_made_anew_under_its_name_is_not_written(
    k: Kube, namespace: str, operator: InProcessOperator, control_plane: ControlPlane
) -> None:
    """The operator's Wukong watch is held back; the Wukong is deleted and made again under
    its name (another uid). A pass decided from the old one (woken by its VM, deleted by
    hand) writes the old one's status: the API server refuses it (422), and the new Wukong's
    status stays its own. Without the pin the new Wukong took the old one's phase, history,
    conditions and volumes."""
    await create(k, "wukong", namespace, wukong("w", runStrategy="Halted"))
    await wait_phase(k, namespace, "w", "Stopped", within=60)
    old = await get(k, "wukong", namespace, "w")
    assert old is not None

    def writes(code: str | None = None) -> float:
        labels = {"verb": "PATCH", "resource": "wukongs/status"}
        return requests_sent(operator, **labels, **({"code": code} if code else {}))

    # The garbage collector waits too: the old Wukong's VM must outlive it, for the pass.
    with late_watches(operator, kinds.WUKONG.cache), control_plane.controllers_paused():
        where = path("wukong", namespace, "w")
        await k.json_patch(where, [{"op": "remove", "path": "/metadata/finalizers"}])
        await k.delete(where)
        await eventually(
            lambda: _gone(k, namespace, "w"), timeout=30, message="the old Wukong is gone"
        )
        new = await create(k, "wukong", namespace, wukong("w", runStrategy="Halted"))
        assert new["metadata"]["uid"] != old["metadata"]["uid"]
        before, refused = writes(), writes("422")
        await k.delete(path("vm", namespace, "w-vm"))  # wakes a pass: the old one's VM
        await eventually(
            lambda: writes() > before, timeout=30, message="the status write of the old Wukong"
        )
        await asyncio.sleep(3)  # the queue tries again meanwhile, decided from the same
        cr = await get(k, "wukong", namespace, "w")
        assert cr is not None and cr["metadata"]["uid"] == new["metadata"]["uid"]
        assert not cr.get("status"), f"the old Wukong's status landed on the new: {cr['status']}"
        tried, answered_422 = writes() - before, writes("422") - refused
        assert tried == answered_422 >= 1, (tried, answered_422)
    # The watch catches up: the new Wukong goes its own way (the old one's children, owned
    # by its uid, go with the garbage collector).
    cr = await wait_phase(k, namespace, "w", "Stopped", within=120)
    assert cr["metadata"]["uid"] == new["metadata"]["uid"]


async def _gone(k: Kube, namespace: str, name: str) -> bool:
    return await get(k, "wukong", namespace, name) is None
