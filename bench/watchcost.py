"""`python -m bench.watchcost [--n 500] [--rounds 2]`: what the operator's watches cost the
API server.

The floor's N VMs (NAD, PVC, VM each, no Wukong), written twice per round: once alone, once
with the operator running for that namespace, where it finds no Wukong to act on and only
watches (VMs, VMIs, claims, NADs, migrations, Events). The difference in API-server CPU per
VM is what delivering every watch event to the operator as well costs. Issue 14's gap to
the floor was put down partly to this, by estimate, until it was measured (docs/benchmark.md).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
from pathlib import Path

from bench import creation
from bench.cluster import Cluster, cluster
from bench.operator import Operator

IN_FLIGHT = 32
WITHIN = 400.0  # seconds allowed for N VMs to run
CONCURRENCY = 16  # the operator's, as the bench runs it


def api_ms(made: creation.Creation) -> float:
    """API-server CPU per VM, in ms."""
    return made.cpu_seconds["kube-apiserver"] * 1000 / made.n


async def one_round(cl: Cluster, n: int, index: int, logs: Path) -> tuple[float, float]:
    """(floor alone, floor watched by the operator): API-server ms per VM. Odd rounds run
    the watched floor first: each floor costs a little more than the one before it (the
    cluster holds more objects), and alternating the order cancels that drift out of the
    mean."""

    async def alone() -> float:
        made = await creation.floor(
            cl, n, in_flight=IN_FLIGHT, within=WITHIN, namespace=f"watchcost-alone-{index}"
        )
        return api_ms(made)

    async def watched() -> float:
        ns = await cl.namespace(f"watchcost-watched-{index}")
        log = logs / f"operator-{index}.log"
        async with Operator(cl.plane.kubeconfig, ns, CONCURRENCY, log):
            await asyncio.sleep(1.0)  # past its start-up LISTs
            made = await creation.floor(cl, n, in_flight=IN_FLIGHT, within=WITHIN, namespace=ns)
        return api_ms(made)

    if index % 2:
        second = await watched()
        return await alone(), second
    first = await alone()
    return first, await watched()


async def measure(n: int, rounds: int) -> list[tuple[float, float]]:
    with tempfile.TemporaryDirectory(prefix="wukong-watchcost-") as logs:
        async with cluster() as cl:
            return [await one_round(cl, n, i, Path(logs)) for i in range(rounds)]


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.watchcost", description=__doc__)
    p.add_argument("--n", type=int, default=500, help="VMs per floor")
    p.add_argument("--rounds", type=int, default=2, help="alternated pairs of floors")
    opts = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    rows = asyncio.run(measure(opts.n, opts.rounds))
    print(f"\n{'round':>5s} {'alone':>9s} {'watched':>9s} {'difference':>11s}   (API-server ms/VM)")
    for index, (alone, watched) in enumerate(rows, 1):
        print(f"{index:5d} {alone:9.1f} {watched:9.1f} {watched - alone:+11.1f}")


if __name__ == "__main__":
    main()
