"""Fault matrix, issue 15 points 8 and 9: the API server goes away and comes back (same etcd),
and watches expire (410 Gone). The operator runs in-process and is never restarted: it must
notice every change, create no duplicate child and be working again within 2 s of the API
server's return.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
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
    path,
    requests_sent,
    sim,
    wait_for,
    wait_phase,
    wait_ready,
    wukong,
)
from wukong.adapters.kube import Kube
from wukong.api import kinds
from wukong.errors import AlreadyExists, NotFound, WukongError
from wukong.testing.controlplane import ControlPlane
from wukong.testing.eventually import eventually
from wukong.testing.kubevirt import Simulator
from wukong.testing.kubevirt.plane import KubeVirtPlane
from wukong.testing.operator import InProcessOperator

__all__ = ["k", "sim"]  # fixtures
SYSTEM = {"name": "system", "size": "10Gi", "image": IMAGE}
DATA = {"name": "data", "size": "1Gi"}
BACK_WITHIN = 2.0  # seconds from the API server's /readyz to the operator's first write
AUTHORIZER_SYNC = 3.0  # seconds after /readyz in which a 403 counts as the restart's


def forbidden(op: InProcessOperator) -> float:
    """403s the operator has met so far."""
    return requests_sent(op, code="403")


@pytest.fixture(autouse=True)
async def kubevirt_back(kubevirt: KubeVirtPlane | None) -> AsyncIterator[None]:
    """After a test that restarted the API server, wait until KubeVirt serves as before
    (virt-controller, restarted after losing its Lease, leads again; the APIService is
    Available), so the next test of the session does not meet it half back."""
    yield
    if kubevirt is not None:
        await asyncio.to_thread(kubevirt.wait_ready, 120)


@pytest.fixture
async def operator(
    operator_kubeconfig: Path, namespace: str, sim: Simulator
) -> AsyncIterator[InProcessOperator]:
    """The operator as its ServiceAccount (scenario.operator), except that 403s are allowed
    while the API server restarts: until its RBAC authorizer has synced, a restarted server
    refuses everyone but system:masters. Outside that window any 403 still fails the test."""
    async with InProcessOperator(operator_kubeconfig, namespace=namespace) as op:
        op.forbidden_in_restarts = 0.0  # type: ignore[attr-defined]
        yield op
        await restarts_settled()
        allowed = op.forbidden_in_restarts  # type: ignore[attr-defined]
        assert forbidden(op) == allowed, "the operator was refused (403) outside a restart"


async def restart(plane: ControlPlane, op: InProcessOperator, down_for: float = 1.0) -> float:
    """Restart kube-apiserver (etcd untouched); returns the monotonic time it was ready.
    The operator's 403s from now until AUTHORIZER_SYNC after that count as the restart's."""
    before = forbidden(op)
    await asyncio.to_thread(plane.restart_apiserver, down_for=down_for)
    back = time.monotonic()

    async def window() -> None:
        await asyncio.sleep(AUTHORIZER_SYNC)
        op.forbidden_in_restarts += forbidden(op) - before  # type: ignore[attr-defined]

    _WINDOWS.add(asyncio.create_task(window()))
    return back


async def restarts_settled() -> None:
    """Wait for every restart window to close (call before the test ends)."""
    await asyncio.gather(*_WINDOWS)
    _WINDOWS.clear()


_WINDOWS: set[asyncio.Task[None]] = set()


async def finalized(k: Kube, namespace: str, name: str) -> bool:
    """The operator's first write to a new Wukong is its finalizer."""
    cr = await get(k, "wukong", namespace, name)
    return bool(cr and cr["metadata"].get("finalizers"))


async def working_again(k: Kube, namespace: str, name: str, back: float) -> float:
    """Create a Wukong right after the API server is back; seconds until the operator wrote."""
    await eventually(lambda: _created(k, namespace, name), timeout=10)
    await eventually(lambda: finalized(k, namespace, name), timeout=30, interval=0.02)
    return time.monotonic() - back


async def _created(k: Kube, namespace: str, name: str) -> bool:
    # The admin client's pooled connections died with the old server: retry the create.
    try:
        await create(k, "wukong", namespace, wukong(name, disks=[DATA]))
    except AlreadyExists:
        return True
    except WukongError:
        return False
    return True


async def counts(k: Kube, namespace: str) -> dict[str, list[str]]:
    return {
        kind: sorted(o["metadata"]["name"] for o in await items(k, kind, namespace))
        for kind in ("vm", "dv", "pvc")
    }


@pytest.mark.timeout(120)
async def test_a_wukong_being_created_when_the_api_server_restarts_still_runs_once(
    k: Kube,
    namespace: str,
    control_plane: ControlPlane,
    sim: Simulator,
    operator: InProcessOperator,
) -> None:
    sim.config.import_step_delay = 0.5  # the import is running when the server goes away
    await create(k, "wukong", namespace, wukong("during", disks=[SYSTEM, DATA]))
    # Mid-create: the import has begun (a create that fast writes no Creating status of its
    # own before the VM exists: docs/decisions.md, "A create's first status waits").
    await eventually(
        lambda: get(k, "dv", namespace, "during-system"), timeout=30, message="during's DV"
    )
    assert await get(k, "vm", namespace, "during-vm") is None
    back = await restart(control_plane, operator)
    took = await working_again(k, namespace, "after", back)
    print(f"\noperator working again {took:.2f}s after the API server's return")
    assert took < BACK_WITHIN, f"the operator took {took:.2f}s to act after the restart"
    for name in ("during", "after"):
        cr = await wait_phase(k, namespace, name, "Running", within=40)
        assert condition(cr, "Ready")["status"] == "True"
    assert await counts(k, namespace) == {
        "vm": ["after-vm", "during-vm"],
        "dv": ["during-system"],
        "pvc": ["after-data", "during-data", "during-system"],
    }


@pytest.mark.timeout(120)
async def test_a_deletion_keeping_disks_survives_an_api_server_restart(
    k: Kube,
    namespace: str,
    control_plane: ControlPlane,
    sim: Simulator,
    operator: InProcessOperator,
) -> None:
    delete_options = {"preserveDisksList": ["data"], "gracePeriodSeconds": 3}
    cr = await create(
        k,
        "wukong",
        namespace,
        wukong("leaving", disks=[SYSTEM, DATA], deleteOptions=delete_options),
    )
    await wait_phase(k, namespace, "leaving", "Running", within=40)
    # The guest ignores ACPI: the deletion waits in its StopVM step for the grace period.
    await k.merge_patch(
        path("vm", namespace, "leaving-vm"),
        {"metadata": {"annotations": {"sim.kubevirt.io/ignore-acpi": "true"}}},
    )
    await k.delete(path("wukong", namespace, "leaving"))
    await wait_for(
        k,
        namespace,
        "leaving",
        lambda c: ((c.get("status") or {}).get("deletion") or {}).get("step") == "StopVM",
        what="deletion at StopVM",
    )
    back = await restart(control_plane, operator)
    took = await working_again(k, namespace, "after", back)
    assert took < BACK_WITHIN, f"the operator took {took:.2f}s to act after the restart"
    await eventually(lambda: _gone(k, namespace, "leaving"), timeout=40)
    await wait_phase(k, namespace, "after", "Running", within=40)
    await asyncio.sleep(2)  # give the garbage collector every chance to take what is owned
    kept = await get(k, "pvc", namespace, "leaving-data")
    assert kept is not None, "the kept disk was lost"
    assert cr["metadata"]["uid"] not in str(kept["metadata"].get("ownerReferences") or [])
    # The system disk's PVC goes with its DataVolume: the garbage collector's job, and the
    # controller manager's watches recover from the restart too.
    expected = {"vm": ["after-vm"], "dv": [], "pvc": ["after-data", "leaving-data"]}
    await eventually(lambda: _counted(k, namespace, expected), timeout=30)
    assert await get(k, "pvc", namespace, "leaving-data") is not None


async def _counted(k: Kube, namespace: str, expected: dict[str, list[str]]) -> bool:
    found = await counts(k, namespace)
    assert found == expected
    return True


async def _gone(k: Kube, namespace: str, name: str) -> bool:
    return await get(k, "wukong", namespace, name) is None


@pytest.mark.timeout(120)
async def test_watches_expired_by_a_restart_relist_every_kind_and_miss_no_change(
    k: Kube,
    namespace: str,
    control_plane: ControlPlane,
    sim: Simulator,
    operator: InProcessOperator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A restarted API server's watch cache starts at etcd's current revision: a watch resuming
    from an older resourceVersion is answered 410 Gone and must relist, on every kind."""
    await create(k, "wukong", namespace, wukong("steady", disks=[DATA]))
    await wait_phase(k, namespace, "steady", "Running", within=40)
    vm = await get(k, "vm", namespace, "steady-vm")
    assert vm is not None
    assert operator.operator is not None
    informers = operator.operator.informers
    # Move etcd's revision past every informer's resourceVersion: writes nobody watches.
    for i in range(3):
        await k.create(
            f"/api/v1/namespaces/{namespace}/configmaps",
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"bump-{i}"}},
        )
    caplog.set_level(logging.INFO, logger="wukong.runtime.watch")
    await restart(control_plane, operator)
    # A change right after the return lands while the informers relist or re-watch.
    await eventually(lambda: _deleted(k, path("vm", namespace, "steady-vm")), timeout=10)
    relisted = await eventually(lambda: _relisted(caplog, informers), timeout=20)
    print(f"\nrelisted after 410 Gone: {sorted(relisted)}")
    # KubeVirt's finalizer holds the old VM a moment; then the operator makes a new one. Until
    # then the old guest still runs while its pod terminates (Running, Ready False).
    await eventually(lambda: _replaced(k, namespace, vm["metadata"]["uid"]), timeout=40)
    await wait_ready(k, namespace, "steady", within=40)
    assert [v["metadata"]["name"] for v in await items(k, "vm", namespace)] == ["steady-vm"]


async def _replaced(k: Kube, namespace: str, old_uid: str) -> bool:
    vm = await get(k, "vm", namespace, "steady-vm")
    return vm is not None and vm["metadata"]["uid"] != old_uid


async def _deleted(k: Kube, obj_path: str) -> bool:
    try:
        await k.delete(obj_path)
    except NotFound:
        return True
    except WukongError:
        return False  # the server is not back yet
    return True


async def _relisted(caplog: pytest.LogCaptureFixture, informers: dict[str, Any]) -> set[str]:
    """The roles whose informer logged a 410 relist; all of them, or an empty set.

    Events are the exception: kube-apiserver keeps no watch cache for them
    (DefaultWatchCacheSizes: events 0), so their watch resumes from etcd itself, which still
    has the revision, and no change is missed without a 410 (issue 16 watches FailedMount
    Events)."""
    roles = {i.name: role for role, i in informers.items()}
    found = set()
    for record in caplog.records:
        text = record.getMessage()
        name = text.split(":", 1)[0]
        if "resourceVersion expired, relisting" in text and name in roles:
            found.add(roles[name])
    expected = set(informers) - {k.cache for k in kinds.WATCHED if k.plural == "events"}
    return found if found >= expected else set()
