"""The commands that get a person into a running VM: console, vnc, screenshot, port-forward,
ssh and scp (virtctl's verbs), logs (its serial console's output, as `kubectl logs` reads it
from the VM's pod), and expose (a Service in front of it, as `virtctl expose`)."""

from __future__ import annotations

from typing import Annotated

import typer

from wukong.console import values
from wukong.console.errors import CliError, usage
from wukong.console.expose import Exposure, Protocol, ServiceType
from wukong.console.options import (
    TYPER_STYLE,
    Context,
    DryRunOpt,
    Kubeconfig,
    KubectlCommand,
    NameArg,
    Namespace,
    OutputOpt,
    SshTarget,
    cluster_from,
    console,
    duration,
    fail,
    run,
    timeout_duration,
    writing,
    wukong_name,
)
from wukong.console.output import DryRun

app = typer.Typer(**TYPER_STYLE)
IdentityFile = Annotated[
    str | None, typer.Option("--identity-file", "-i", help="Private key file.", metavar="FILE")
]


def console_timeout(text: str | float) -> float:
    """console --timeout: a duration with its unit. virtctl's console counts a bare number
    in minutes (`--timeout=1`), every other wukong --timeout in seconds: `5` is refused,
    not guessed (CLI audit, session 41)."""
    if isinstance(text, str) and text.strip().isdigit():  # (the default comes as a number)
        raise typer.BadParameter(
            f"{text!r} has no unit: say {text.strip()}m or {text.strip()}s (virtctl's console "
            "counts minutes, wukong's other timeouts seconds)"
        )
    return timeout_duration(text)


@app.command(
    name="console",
    cls=KubectlCommand,
    epilog=(
        "wukong console web-1 -n demo    # Ctrl-] leaves the console\n"
        "wukong create web-2 --image docker://quay.io/containerdisks/fedora:40\n"
        "wukong console web-2    # waits while it starts, then shows its boot"
    ),
)
def serial_console(
    name: NameArg,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            parser=console_timeout,
            metavar="DURATION",
            show_default=False,
            help="how long to wait for a VM that is starting (30s, 5m)  [default: 5m]",
        ),
    ] = 300.0,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Connect to the VM's serial console (Ctrl-] exits, as with virtctl); a VM still
    starting is waited for, so its boot shows."""
    from wukong.console import remote

    cluster = cluster_from(kubeconfig, context, namespace)
    run(remote.console(cluster, console(), name, within=timeout), writes=False)


@app.command(
    cls=KubectlCommand,
    epilog=(
        "wukong vnc web-1    # opens remote-viewer (or vncviewer) on its display\n"
        "wukong vnc web-1 --proxy-only --port 5901    # then: your viewer on 127.0.0.1:5901"
    ),
)
def vnc(
    name: NameArg,
    port: Annotated[
        int,
        typer.Option(
            help="Local port to listen on; 0 picks a free one.",
            metavar="PORT",
            parser=values.local_port,
        ),
    ] = 0,
    address: Annotated[
        str,
        typer.Option(
            help="Local address to listen on, with --proxy-only (else 127.0.0.1, as virtctl).",
            metavar="ADDRESS",
        ),
    ] = "127.0.0.1",
    proxy_only: Annotated[
        bool,
        typer.Option(
            "--proxy-only", help="Only serve the port, for one connection of a viewer of your own."
        ),
    ] = False,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Open the VM's display in a VNC viewer (remote-viewer or vncviewer), as virtctl vnc
    does; without one, or with --proxy-only, serve it on a local port for your own."""
    from wukong.console import remote

    cluster = cluster_from(kubeconfig, context, namespace)
    work = remote.vnc(cluster, console(), name, port=port, address=address, proxy_only=proxy_only)
    run(work, writes=False)


@app.command(
    cls=KubectlCommand,
    epilog=(
        "wukong screenshot web-1    # web-1-20261205-101500.png: what its screen shows\n"
        "wukong screenshot web-1 --file - | display    # to stdout"
    ),
)
def screenshot(
    name: NameArg,
    file: Annotated[
        str | None,
        typer.Option("--file", "-f", help="PNG file to write (-: stdout).", metavar="FILE"),
    ] = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Save what the VM's screen shows, as a PNG (like virtctl vnc screenshot)."""
    from datetime import datetime

    from wukong.console import remote
    from wukong.console.screenshots import default_file

    cluster = cluster_from(kubeconfig, context, namespace)
    target = file or default_file(name, datetime.now())
    run(remote.screenshot(cluster, console(), name, target), writes=False)


@app.command(
    name="port-forward",
    cls=KubectlCommand,
    epilog=(
        "wukong port-forward web-1 8080:80    # localhost:8080 reaches the guest's port 80\n"
        "wukong port-forward web-1 :22 5432    # a free local port to 22, and 5432 to 5432\n"
        "wukong port-forward web-1 udp/5353:53    # UDP: localhost:5353 to the guest's DNS\n"
        "ssh -o 'ProxyCommand=wukong port-forward --stdio web-1 %p' fedora@web-1"
    ),
)
def port_forward(
    name: NameArg,
    ports: Annotated[
        list[str] | None,
        typer.Argument(
            help="[udp/]LOCAL:REMOTE, PORT (both ends) or :REMOTE; TCP unless udp/",
            metavar="PORT...",
        ),
    ] = None,
    address: Annotated[
        str, typer.Option(help="Local address to listen on.", metavar="ADDRESS")
    ] = "127.0.0.1",
    stdio: Annotated[
        bool,
        typer.Option("--stdio", help="One TCP connection on stdin/stdout (ssh's ProxyCommand)."),
    ] = False,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Forward local ports to the VM's guest through KubeVirt (like virtctl port-forward)."""
    from wukong.console import forward
    from wukong.console.ports import forwards

    try:
        wanted = forwards(ports or [], stdio=stdio)
    except CliError as error:
        fail(error)
    cluster = cluster_from(kubeconfig, context, namespace)
    work = forward.port_forward(cluster, console(), name, wanted, address=address, stdio=stdio)
    run(work, writes=False)


@app.command(
    cls=KubectlCommand,
    context_settings={"allow_extra_args": True},
    epilog=(
        "wukong ssh web-1 -l fedora -i ~/.ssh/id_ed25519\n"
        "wukong ssh fedora@web-1    # the user as OpenSSH and scp take it\n"
        "wukong ssh web-1 -c uptime    # a command instead of a shell\n"
        "wukong ssh web-1 -- -L 8080:localhost:80    # after --: OpenSSH's options"
    ),
)
def ssh(
    ctx: typer.Context,
    target: SshTarget,
    user: Annotated[
        str | None, typer.Option("--username", "-l", help="Guest user.", metavar="USER")
    ] = None,
    identity: IdentityFile = None,
    command: Annotated[
        str | None,
        typer.Option("--command", "-c", help="Run this in the VM, not a shell.", metavar="CMD"),
    ] = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """SSH into the VM through `virtctl ssh`, or OpenSSH's ssh without it (arguments
    after -- are OpenSSH's options: virtctl gets them as --local-ssh-opts)."""
    from wukong.console import virtctl

    given, _, name = target.rpartition("@")  # USER@NAME, as scp's remote end and OpenSSH
    if given and user and given != user:
        fail(usage(f"the user is given twice: {given}@ and -l {user}"))
    user = user or given or None
    cluster = cluster_from(kubeconfig, context, namespace)
    extra = list(ctx.args)
    work = virtctl.ssh(
        cluster, console(), name, user=user, identity=identity, extra=extra, command=command
    )
    run(work, writes=False)


@app.command(
    cls=KubectlCommand,
    epilog=(
        "wukong logs web-1    # the guest's boot: kernel, cloud-init, login prompt or panic\n"
        "wukong logs web-1 -f --tail 20    # the last 20 lines, then new ones as they come"
    ),
)
def logs(
    name: NameArg,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until the VM stops.")
    ] = False,
    tail: Annotated[
        int | None,
        typer.Option(
            help="Only the last N lines (-1, as kubectl's default: all of them).",
            metavar="N",
            parser=values.lines,
            show_default=False,
        ),
    ] = None,
    since: Annotated[
        float | None,
        typer.Option(
            parser=duration,
            metavar="DURATION",
            show_default=False,
            help="Only lines newer than this (30s, 5m, 1h).",
        ),
    ] = None,
    timestamps: Annotated[
        bool, typer.Option("--timestamps", help="Start each line with when it was written.")
    ] = False,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Print the VM's serial console log: what the guest wrote while booting and since."""
    from wukong.console import remote

    cluster = cluster_from(kubeconfig, context, namespace)
    every = tail is None or tail == -1  # kubectl logs --tail=-1: all lines
    lines = None if every else tail
    work = remote.logs(cluster, name, follow=follow, tail=lines, since=since, timestamps=timestamps)
    run(work, writes=False)


@app.command(
    cls=KubectlCommand,
    epilog=(
        "wukong expose web-1 --port 80    # Service web-1, port 80 of the VM, in the cluster\n"
        "wukong expose web-1 --name web-1-ssh --port 22 --type NodePort    # from outside"
    ),
)
def expose(
    name: NameArg,
    port: Annotated[
        int,
        typer.Option(
            help="The Service's port.", metavar="PORT", show_default=False, parser=values.port
        ),
    ],
    target_port: Annotated[
        int | None,
        typer.Option(
            help="The VM's port, if not --port.",
            metavar="PORT",
            parser=values.port,
            show_default=False,
        ),
    ] = None,
    service_name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="The Service's name (default: the Wukong's).",
            metavar="NAME",
            show_default=False,
        ),
    ] = None,
    service_type: Annotated[
        ServiceType,
        typer.Option(
            "--type",
            help="How the Service is reached.",
            metavar=values.spelled(*ServiceType),
            parser=values.one_of(*ServiceType, case_sensitive=False),
            autocompletion=values.completing(*ServiceType),
        ),
    ] = ServiceType.CLUSTER_IP,
    protocol: Annotated[
        Protocol,
        typer.Option(
            help="The port's protocol.",
            metavar=values.spelled(*Protocol),
            parser=values.one_of(*Protocol, case_sensitive=False),
            autocompletion=values.completing(*Protocol),
        ),
    ] = Protocol.TCP,
    dry_run: DryRunOpt = DryRun.NONE,
    output: OutputOpt = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Make a Service in front of the VM (like virtctl expose); it goes with the Wukong."""
    from wukong.console import flows

    wanted = Exposure(port, target_port, service_name, service_type, protocol)
    cluster = cluster_from(kubeconfig, context, namespace)
    work = flows.expose(cluster, console(), name, wanted, writing=writing(dry_run, output))
    run(work)


@app.command(
    cls=KubectlCommand,
    context_settings={"allow_extra_args": True},
    epilog=(
        "wukong scp web-1:/var/log/cloud-init.log .    # from the VM\n"
        "wukong scp -r ./site fedora@web-1:/srv/www    # to it, a directory\n"
        "wukong scp web-1:/etc/hosts . -- -l 1000    # after --: OpenSSH scp's options"
    ),
)
def scp(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(metavar="SRC", help="[USER@]NAME:PATH or a local path")],
    destination: Annotated[
        str, typer.Argument(metavar="DST", help="[USER@]NAME:PATH or a local path")
    ],
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Copy directories whole.")
    ] = False,
    identity: IdentityFile = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Copy files to or from the VM through `virtctl scp`, or OpenSSH's scp without it
    (arguments after -- are OpenSSH scp's options: virtctl gets them as --local-ssh-opts)."""
    from wukong.console import virtctl

    try:
        vm, _ = virtctl.copy_ends(source, destination)
        wukong_name(vm.name)  # checked before any request, as every NAME is
    except CliError as error:
        fail(error)
    except typer.BadParameter as bad:  # (CLI audit, session 41: it was looked up first)
        fail(usage(f"in {source if ':' in source else destination}: {bad.message}"))
    cluster = cluster_from(kubeconfig, context, namespace)
    ends, extra = (source, destination), list(ctx.args)
    work = virtctl.scp(
        cluster, console(), vm, ends, recursive=recursive, identity=identity, extra=extra
    )
    run(work, writes=False)
