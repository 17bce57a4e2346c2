"""`python -m wukong.testing.kubevirt --kubeconfig X`: run the simulator until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from dataclasses import fields

from . import SimConfig, Simulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line: kubeconfig, optional namespace, any float/bool SimConfig knob."""
    parser = argparse.ArgumentParser(
        prog="python -m wukong.testing.kubevirt",
        description="Simulate KubeVirt, CDI and storage controllers.",
    )
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", default=None, help="watch one namespace (default: all)")
    parser.add_argument("-v", "--verbose", action="store_true")
    for f in fields(SimConfig):
        if f.type in ("float", "int"):
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=float, default=None)
        elif f.type == "str":
            parser.add_argument(f"--{f.name.replace('_', '-')}", default=None)
        elif f.type == "bool":
            parser.add_argument(
                f"--{f.name.replace('_', '-')}", action=argparse.BooleanOptionalAction, default=None
            )
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> SimConfig:
    """A SimConfig with the knobs given on the command line."""
    cfg = SimConfig()
    for f in fields(SimConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            setattr(cfg, f.name, int(value) if f.type == "int" else value)
    return cfg


async def run(args: argparse.Namespace) -> None:
    """Start, print where the subresource API listens, wait for SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Simulator(args.kubeconfig, args.namespace, config_from(args)) as sim:
        print(
            f"kubevirt simulator running; subresources on https://127.0.0.1:{sim.port}", flush=True
        )
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
