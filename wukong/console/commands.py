"""The typer commands people type; each checks its flags and hands over to `flows`.

Results go to stdout, progress and errors to stderr. Exit codes: 0 done, 1 refused, failed
or not found, 2 a wrong command line. `flows` (and with it the Kubernetes client) is imported
inside each command so that `wukong fsm` and `--help` stay fast.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated

import typer

from wukong.api.spec import Action, DiskBus
from wukong.console.errors import usage
from wukong.console.options import (
    TYPER_STYLE,
    Context,
    DiskArg,
    Force,
    GracePeriod,
    Kubeconfig,
    KubectlCommand,
    NameArg,
    Namespace,
    Timeout,
    Wait,
    asker,
    cluster_from,
    console,
    fail,
    keep_list,
    run,
)

app = typer.Typer(**TYPER_STYLE)


_LIFECYCLE: tuple[tuple[Action, str], ...] = (
    (Action.START, "Start a stopped Wukong."),
    (Action.STOP, "Shut the guest down (ACPI), powering off when the grace period ends."),
    (Action.RESTART, "Restart the VM: stop, then start again."),
    (Action.SUSPEND, "Pause the running guest; its memory is kept."),
    (Action.RESUME, "Unpause a suspended Wukong."),
)
_SHUT_DOWN = frozenset({Action.STOP, Action.RESTART})  # the only ones with --force, --grace-period


def _lifecycle_command(action: Action) -> Callable[..., None]:
    """The command for one action; typer reads its flags from the signature, so the
    actions that shut nothing down get one without --force and --grace-period."""

    def command(
        name: NameArg,
        force: Force = False,
        grace_period: GracePeriod = None,
        wait: Wait = False,
        timeout: Timeout = 300,
        kubeconfig: Kubeconfig = None,
        context: Context = None,
        namespace: Namespace = None,
    ) -> None:
        from datetime import UTC, datetime

        from wukong.console import flows
        from wukong.console.lifecycle import Request

        if force and grace_period is not None:
            fail(usage("--force powers off at once: --grace-period does not apply"))
        cluster = cluster_from(kubeconfig, context, namespace)
        request = Request.now(action, datetime.now(UTC), force=force, grace_period=grace_period)
        run(flows.lifecycle(cluster, console(), request, name, wait=timeout if wait else None))

    if action not in _SHUT_DOWN:
        signature = inspect.signature(command, eval_str=True)
        flags = [
            p for p in signature.parameters.values() if p.name not in {"force", "grace_period"}
        ]
        command.__signature__ = signature.replace(parameters=flags)  # type: ignore[attr-defined]
    return command


for _action, _summary in _LIFECYCLE:
    app.command(name=_action.value, help=_summary, cls=KubectlCommand)(_lifecycle_command(_action))


@app.command(cls=KubectlCommand)
def status(
    name: Annotated[str | None, typer.Argument(help="one Wukong in detail")] = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="every namespace")
    ] = False,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """A table of Wukongs, or one Wukong's disks, conditions and history."""
    from wukong.console import flows

    if name is not None and all_namespaces:
        fail(usage("a name and --all-namespaces do not go together"))
    cluster = cluster_from(kubeconfig, context, namespace)
    run(flows.status(cluster, console(), name, all_namespaces=all_namespaces))


@app.command(cls=KubectlCommand)
def describe(
    name: NameArg,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Status plus one timeline of the Events of the Wukong, its VM, VMI and disks."""
    from wukong.console import flows

    run(flows.describe(cluster_from(kubeconfig, context, namespace), console(), name))


@app.command(cls=KubectlCommand)
def attach(
    name: NameArg,
    disk: DiskArg,
    size: Annotated[str, typer.Option("--size", help="size, e.g. 10Gi", show_default=False)],
    image: Annotated[
        str | None, typer.Option("--image", help="docker://… or http(s)://… to import")
    ] = None,
    bus: Annotated[DiskBus | None, typer.Option("--bus", help="disk bus [default: virtio]")] = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Add a disk; a running VM gets it hot-plugged."""
    from wukong.console import flows

    cluster = cluster_from(kubeconfig, context, namespace)
    run(flows.attach(cluster, console(), name, disk, size=size, image=image, bus=bus))


@app.command(cls=KubectlCommand)
def detach(
    name: NameArg,
    disk: DiskArg,
    keep_data: Annotated[bool, typer.Option("--keep-data", help="keep the disk's PVC")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="skip the check that the guest no longer uses it")
    ] = False,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Remove a disk (never the system disk); its PVC is deleted unless --keep-data."""
    from wukong.console import flows

    cluster = cluster_from(kubeconfig, context, namespace)
    run(flows.detach(cluster, console(), name, disk, keep_data=keep_data, force=force))


@app.command(cls=KubectlCommand)
def delete(
    name: NameArg,
    keep_disks: Annotated[bool, typer.Option("--keep-disks", help="keep every disk")] = False,
    keep: Annotated[
        list[str] | None, typer.Option("--keep", help="keep this disk (repeat, or a,b)")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="no graceful stop; release at once")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="follow the teardown until gone")] = False,
    timeout: Timeout = 300,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Delete a Wukong: shows what goes and what stays, then asks."""
    from wukong.console import flows

    kept = keep_list(keep)
    if keep_disks and kept:
        fail(usage("--keep-disks keeps every disk: drop --keep"))
    cluster = cluster_from(kubeconfig, context, namespace)
    work = flows.delete(
        cluster,
        console(),
        name,
        keep_all=keep_disks,
        keep=kept,
        force=force,
        ask=asker(yes, name),
        wait=timeout if wait else None,
    )
    run(work)
