"""Shared flags, output and exit handling of the people's commands."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from wukong.api.spec import MAX_GRACE_PERIOD_SECONDS
from wukong.console.errors import CliError

if TYPE_CHECKING:
    from wukong.console.flows import Ask, Cluster, Console

NameArg = Annotated[str, typer.Argument(help="name of the Wukong", show_default=False)]
DiskArg = Annotated[str, typer.Argument(help="name of the disk", show_default=False)]
Kubeconfig = Annotated[
    str | None, typer.Option("--kubeconfig", envvar="KUBECONFIG", help="kubeconfig file(s)")
]
Context = Annotated[str | None, typer.Option("--context", help="kubeconfig context")]
Namespace = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="namespace [default: the context's, else default]"),
]
Wait = Annotated[bool, typer.Option("--wait", help="follow progress until done or failed")]
Timeout = Annotated[float, typer.Option("--timeout", min=1, help="seconds --wait may take")]
Force = Annotated[bool, typer.Option("--force", help="power off at once, no graceful shutdown")]
GracePeriod = Annotated[
    int | None,
    typer.Option(
        "--grace-period",
        min=0,
        max=MAX_GRACE_PERIOD_SECONDS,
        help="seconds of graceful shutdown before power-off",
    ),
]


def cluster_from(kubeconfig: str | None, context: str | None, namespace: str | None) -> Cluster:
    """The cluster as the flags name it."""
    from wukong.console.flows import Cluster

    return Cluster(kubeconfig, context, namespace)


def console() -> Console:
    """Results to stdout, narration to stderr."""
    from wukong.console.flows import Console

    return Console(out=typer.echo, say=lambda line: typer.echo(line, err=True))


def run(work: Coroutine[Any, Any, int]) -> NoReturn:
    """Run one command's coroutine; turn a CliError into `error: …` and its exit code."""
    try:
        code = asyncio.run(work)
    except CliError as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(error.code) from None
    except KeyboardInterrupt:
        typer.echo("interrupted (a request already written stands)", err=True)
        raise typer.Exit(130) from None
    raise typer.Exit(code)


def fail(error: CliError) -> NoReturn:
    """Print a usage or refusal error found before any request, and exit."""
    typer.echo(f"error: {error.message}", err=True)
    raise typer.Exit(error.code)


def keep_list(values: list[str] | None) -> list[str]:
    """--keep a --keep b and --keep a,b both name disks a and b."""
    return [part for value in values or [] for part in value.split(",") if part]


def asker(yes: bool, name: str, *, terminal: bool | None = None) -> Ask | None:
    """How `delete` confirms: not at all (--yes), on the terminal, or never (no terminal)."""
    # Without a terminal (CI, pipes) nobody can answer: refuse rather than hang.
    # `terminal` None means: look at stdin.
    if yes:
        return None
    if terminal is None:
        terminal = sys.stdin is not None and sys.stdin.isatty()
    if not terminal:

        def refuse(_question: str) -> bool:
            """Refuse: nobody can answer."""
            raise CliError(
                f"refusing to delete {name} without confirmation: stdin is not a terminal; "
                "pass --yes"
            )

        return refuse
    return lambda question: typer.confirm(question, default=False, err=True)
