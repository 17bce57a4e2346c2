"""`wukong` (also `kubectl wukong`): run the operator, print the FSM or CRD, run the demo,
and the commands people use on their Wukongs (`wukong.console`)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated, Literal

import typer

from wukong.console.commands import app as console_app
from wukong.settings import Settings

app = typer.Typer(
    help="Wukong: virtual machines on KubeVirt from one resource.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(console_app)  # no name: start, stop, status, delete… are top-level commands

Kubeconfig = Annotated[Path | None, typer.Option(envvar="KUBECONFIG", help="kubeconfig file")]
Context = Annotated[str | None, typer.Option(help="kubeconfig context")]


@app.command()
def run(
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Annotated[
        str | None, typer.Option(envvar="WUKONG_NAMESPACE", help="watch one namespace")
    ] = None,
    concurrency: Annotated[int, typer.Option(envvar="WUKONG_CONCURRENCY")] = 8,
    probe_address: Annotated[str, typer.Option(envvar="WUKONG_PROBE_ADDRESS")] = "0.0.0.0:8080",
    log_format: Annotated[str, typer.Option(envvar="WUKONG_LOG_FORMAT")] = "text",
    log_level: Annotated[str, typer.Option(envvar="WUKONG_LOG_LEVEL")] = "INFO",
    leader_election: Annotated[bool, typer.Option(envvar="WUKONG_LEADER_ELECTION")] = False,
    lease_namespace: Annotated[str | None, typer.Option(envvar="WUKONG_LEASE_NAMESPACE")] = None,
    stall_after: Annotated[float, typer.Option(envvar="WUKONG_STALL_AFTER")] = 300.0,
    lease_duration: Annotated[float, typer.Option(envvar="WUKONG_LEASE_DURATION")] = 15.0,
    renew_deadline: Annotated[float, typer.Option(envvar="WUKONG_RENEW_DEADLINE")] = 10.0,
    retry_period: Annotated[float, typer.Option(envvar="WUKONG_RETRY_PERIOD")] = 2.0,
    identity: Annotated[
        str | None, typer.Option(envvar="WUKONG_IDENTITY", help="Lease holder (default: host)")
    ] = None,
) -> None:
    """Run the operator until SIGTERM/SIGINT."""
    from wukong.runtime.logs import configure_logging

    fmt: Literal["json", "text"] = "json" if log_format == "json" else "text"
    settings = Settings(
        kubeconfig=kubeconfig,
        context=context,
        namespace=namespace,
        concurrency=concurrency,
        probe_address=probe_address,
        log_format=fmt,
        log_level=log_level,
        leader_election=leader_election,
        lease_namespace=lease_namespace,
        stall_after=stall_after,
        lease_duration=lease_duration,
        renew_deadline=renew_deadline,
        retry_period=retry_period,
        identity=identity,
    )
    configure_logging(settings.log_format, settings.log_level)
    asyncio.run(_run(settings))


async def _run(settings: Settings) -> None:
    from wukong.controller import Operator, api_client

    async with await api_client(settings) as api:
        operator = Operator(settings, api)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, operator.stop)
        await operator.run()
    if operator.lost_lease:
        raise SystemExit(1)


@app.command()
def fsm() -> None:
    """Print the state machine as a Mermaid diagram."""
    from wukong.fsm import mermaid

    typer.echo(mermaid())


@app.command()
def crd() -> None:
    """Print the Wukong CustomResourceDefinition (YAML)."""
    from wukong.api.crd import render_crd

    typer.echo(render_crd(), nl=False)


@app.command()
def demo(
    keep: Annotated[bool, typer.Option(help="keep running after the demo until Ctrl-C")] = False,
    kubevirt: Annotated[
        str,
        typer.Option(
            help="real: KubeVirt's own virt-api and virt-controller (built from source, cached); "
            "sim: the pure simulator"
        ),
    ] = "real",
) -> None:
    """Local control plane + KubeVirt + operator; apply examples/ and watch."""
    from wukong.demo import main as demo_main

    if kubevirt not in ("real", "sim"):
        typer.echo(f"error: --kubevirt must be real or sim, not {kubevirt!r}", err=True)
        raise typer.Exit(2)
    raise typer.Exit(asyncio.run(demo_main(keep=keep, real_kubevirt=kubevirt == "real")))


def main() -> None:
    """Console-script entry point."""
    app()
