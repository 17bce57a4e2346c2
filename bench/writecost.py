"""`python -m bench.writecost [--n 1000]`: the API server's CPU per write, by kind of write.

What one write of each kind a create makes costs the API server and etcd, measured alone on
the bench's control plane (nothing else writing): a PVC (a built-in kind, for scale), a
Wukong, a status PATCH carrying a whole status and one carrying the phase alone, an Event.
The status is the one the operator wrote for a real Wukong of the bench, so its size is
the real one. Use it to judge a change of the status's shape before a full `nox -s bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psutil  # type: ignore[import-untyped]  # no stubs in the venv

from bench import manifests
from bench.cluster import PVC, WUKONG, Cluster, bounded, cluster, create_all, path
from wukong.act.reconciler import status_ops
from wukong.adapters.kube import api_path
from wukong.adapters.wukongs import Wukongs
from wukong.api import JsonObj
from wukong.testing.eventually import eventually
from wukong.testing.operator import InProcessOperator

log = logging.getLogger("bench.writecost")
IN_FLIGHT = 32


async def real_status(cl: Cluster) -> dict[str, Any]:
    """The status the operator writes for the bench's Wukong once it runs."""
    ns = await cl.namespace("writecost-probe")
    async with InProcessOperator(cl.plane.kubeconfig, namespace=ns):
        await cl.kube.create(path(WUKONG, ns), manifests.wukong("probe"))

        async def running() -> dict[str, Any] | None:
            cr = await cl.kube.get(path(WUKONG, ns, "probe"))
            status = cr.get("status") or {}
            up = status.get("phase") == "Running" and status.get("interfaces")
            return status if up else None

        found = await eventually(running, timeout=60, message="the probe Wukong Running")
        return dict(found)  # eventually returns only a truthy value


def cpu_of(cl: Cluster) -> Callable[[], tuple[float, float]]:
    """CPU seconds so far of (kube-apiserver, etcd)."""
    procs = {psutil.Process(pid).name(): psutil.Process(pid) for pid in cl.plane.pids}

    def used(name: str) -> float:
        times = procs[name].cpu_times()
        return float(times.user + times.system)

    return lambda: (used("kube-apiserver"), used("etcd"))


async def measure(n: int) -> list[tuple[str, float, float]]:
    """(write, API-server ms, etcd ms) per write, `n` writes of each kind."""
    async with cluster() as cl:
        status = await real_status(cl)
        starting = {k: v for k, v in status.items() if k not in ("nodeName", "interfaces")}
        starting["phase"] = "Starting"
        ns = await cl.namespace("writecost")
        cpu = cpu_of(cl)
        rows: list[tuple[str, float, float]] = []

        async def timed(what: str, work: Callable[[], Awaitable[Any]]) -> None:
            await asyncio.sleep(1.0)  # the last batch's watch fan-out and compaction settle
            api0, etcd0 = cpu()
            began = time.monotonic()
            await work()
            await asyncio.sleep(0.5)
            api1, etcd1 = cpu()
            rows.append((what, (api1 - api0) * 1000 / n, (etcd1 - etcd0) * 1000 / n))
            log.info("%-34s %.1f s", what, time.monotonic() - began)

        uids: dict[int, str] = {}

        def patch_status(old: JsonObj, new: JsonObj) -> Callable[[], Awaitable[None]]:
            """The operator's status write of the change from `old` to `new` (session 50:
            a JSON patch pinned to the Wukong's uid, `Reconciler._write_status`)."""
            ops = status_ops(old, new)

            async def one(i: int) -> None:
                await Wukongs(cl.kube).patch_status(ns, f"w{i}", uids[i], ops)

            return lambda: bounded(range(n), one, IN_FLIGHT)

        async def make(i: int) -> None:
            made = await cl.kube.create(path(WUKONG, ns), manifests.wukong(f"w{i}"))
            uids[i] = made["metadata"]["uid"]

        pvcs = [(path(PVC, ns), manifests.floor_pvc(f"v{i}")) for i in range(n)]
        await timed("PVC POST (built-in kind)", lambda: create_all(cl.kube, pvcs, IN_FLIGHT))
        await timed("Wukong POST", lambda: bounded(range(n), make, IN_FLIGHT))
        await timed("status PATCH: whole status, onto none", patch_status({}, starting))
        phase = patch_status(starting, {**starting, "phase": "Running"})
        await timed("status PATCH: phase alone, onto one", phase)
        events = [(api_path("", "v1", "events", ns), event(ns, i)) for i in range(n)]
        await timed("Event POST", lambda: create_all(cl.kube, events, IN_FLIGHT))
        return rows


def event(namespace: str, i: int) -> dict[str, Any]:
    """An Event as the operator posts one about Wukong `w<i>`."""
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"w{i}.writecost", "namespace": namespace},
        "involvedObject": {"kind": "Wukong", "name": f"w{i}", "namespace": namespace},
        "type": "Normal",
        "reason": "VMCreated",
        "message": "Creating → Starting",
        "source": {"component": "wukong-operator"},
        "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:00:00Z",
        "count": 1,
    }


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.writecost", description=__doc__)
    p.add_argument("--n", type=int, default=1000, help="writes of each kind")
    opts = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    rows = asyncio.run(measure(opts.n))
    print(f"\n{'write':34s} {'API server':>11s} {'etcd':>8s}   (CPU ms per write, n = {opts.n})")
    for what, api, etcd in rows:
        print(f"{what:34s} {api:11.2f} {etcd:8.2f}")


if __name__ == "__main__":
    main()
