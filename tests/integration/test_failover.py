"""Two operator replicas (issue 9): only the Lease holder reconciles; a crash hands over."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from pathlib import Path

import aiohttp
import pytest

from tests.integration.scenario import create, get, k, sim, wait_phase, wukong
from wukong.adapters.kube import Kube, api_path
from wukong.testing.eventually import eventually
from wukong.testing.kubevirt import Simulator
from wukong.testing.operator import OperatorProcess

__all__ = ["k", "sim"]  # fixtures
LEASE = (
    "--leader-election",
    "--lease-duration",
    "4",
    "--renew-deadline",
    "3",
    "--retry-period",
    "0.5",
)


async def sample(proc: OperatorProcess, family: str) -> float:
    """The sum of a family's samples on one replica's /metrics."""
    async with aiohttp.ClientSession() as http, http.get(f"{proc.metrics_url}/metrics") as resp:
        text = await resp.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.split("{")[0].split(" ")[0] == family
    )


async def reconciles(proc: OperatorProcess) -> float:
    """How many passes a replica has run, from its own /metrics."""
    return await sample(proc, "wukong_reconcile_total")


async def holder(k: Kube, namespace: str = "wukong-system") -> str:
    lease = await get_lease(k, namespace)
    return str((lease or {}).get("spec", {}).get("holderIdentity") or "")


async def get_lease(k: Kube, namespace: str) -> dict[str, object] | None:
    path = api_path("coordination.k8s.io", "v1", "leases", namespace, "wukong-operator")
    try:
        return await k.get(path)
    except Exception:
        return None


@pytest.mark.timeout(120)
async def test_only_the_leader_reconciles_and_a_standby_takes_over_after_a_crash(
    k: Kube, namespace: str, operator_kubeconfig: Path, sim: Simulator
) -> None:
    replicas = {
        name: OperatorProcess(
            operator_kubeconfig,
            namespace=namespace,
            extra_args=(*LEASE, "--lease-namespace", "wukong-system", "--identity", name),
        )
        for name in ("alpha", "beta")
    }
    replicas["alpha"].start()
    try:
        await eventually(lambda: holder(k), timeout=20)
        replicas["beta"].start()
        await create(k, "wukong", namespace, wukong("ha-1"))
        await wait_phase(k, namespace, "ha-1", "Running", within=30)
        leader = await holder(k)
        standby = "beta" if leader == "alpha" else "alpha"
        await eventually(lambda: _up(replicas[standby]), timeout=20)
        assert await reconciles(replicas[leader]) > 0
        assert await reconciles(replicas[standby]) == 0
        # The standby's informers queued ha-1, but it drains nothing: no backlog to show.
        assert await sample(replicas[standby], "wukong_workqueue_depth") == 0
        transitions = await sample(replicas[standby], "wukong_lease_transitions")
        killed = time.monotonic()
        replicas[leader].kill()
        await create(k, "wukong", namespace, wukong("ha-2"))  # work arriving mid-failover
        await eventually(lambda: _is(holder(k), standby), timeout=15)
        takeover = time.monotonic() - killed
        print(f"\ntakeover after a crashed leader: {takeover:.2f}s (lease duration 4 s)")
        assert takeover < 4 + 3  # lease duration + one renew deadline of slack

        # The standby counts the takeover once its own lease write has returned, a moment
        # after the API server shows it the holder (this read lost that race under load).
        async def counted() -> bool:
            seen = await sample(replicas[standby], "wukong_lease_transitions")
            return bool(seen == transitions + 1)

        await eventually(counted, timeout=5, message="the standby's lease_transitions + 1")
        await wait_phase(k, namespace, "ha-2", "Running", within=30)
        assert replicas[standby].terminate() == 0  # SIGTERM: finish, release, exit 0
        assert await holder(k) == ""
    finally:
        for proc in replicas.values():
            proc.kill()
    assert await get(k, "vm", namespace, "ha-2-vm") is not None


async def _is(value: Awaitable[str], wanted: str) -> bool:
    return await value == wanted


async def _up(proc: OperatorProcess) -> bool:
    """The replica answers /readyz (a standby is ready too, see docs/decisions.md)."""
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{proc.probe_url}/readyz") as r:
            return r.status == 200
    except aiohttp.ClientError:
        return False
