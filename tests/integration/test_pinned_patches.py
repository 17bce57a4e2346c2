"""A patch lands only on the object it was decided for (session 49).

The operator decides from its watch caches. A VM deleted and made again under its name (by a
user, another controller, or the operator itself after a recreate) before the operator's watch
shows it is another object: the runStrategy patch decided for the old one must not start or
stop the new one. Each patch carries the uid of the object it was decided from; the API
server refuses it on another (422, metadata.uid), which the operator takes as a conflict and
decides again from the cache, once the watch has caught up.

The window is made wide on purpose: the operator's VM (and VMI) watch is held back, its
events kept and applied in order afterwards, as a watch that fell behind and catches up.
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
    sim,
    wait_for,
    wait_phase,
    wukong,
)
from wukong.adapters.kube import Kube
from wukong.api import kinds
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
    tried = patches()
    assert [r.code for r in tried] == [422] * len(tried), tried
    assert all("metadata.uid" in r.message for r in tried), tried
    # The watch catches up: the VM of the name is someone else's, and left alone.
    await wait_for(
        k, namespace, "w", lambda c: condition(c, "SpecValid").get("reason") == "NameConflict"
    )
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
