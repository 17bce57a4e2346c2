"""`wukong credentials add-ssh-key|remove-ssh-key NAME --user U (--file F | --value KEY)`:
virtctl's `credentials` verbs, for a Wukong (whose VM's accessCredentials come from its
spec.sshKeys). `flows` is imported inside each command, so `--help` stays fast."""

from __future__ import annotations

from typing import Annotated

import typer

from wukong.console.errors import CliError, usage
from wukong.console.options import (
    TYPER_STYLE,
    Context,
    Kubeconfig,
    KubectlCommand,
    NameArg,
    Namespace,
    cluster_from,
    console,
    fail,
    run,
)
from wukong.console.overview import KubectlGroup

app = typer.Typer(
    name="credentials",
    cls=KubectlGroup,
    help="SSH keys the guest agent gives a guest user (virtctl's credentials verbs).",
    invoke_without_command=True,
    **TYPER_STYLE,
)


@app.callback()
def _group(ctx: typer.Context) -> None:
    """Bare `wukong credentials` prints its help and exits 0, as bare `wukong` does."""
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


User = Annotated[
    str,
    typer.Option(
        "--user", "-u", help="the guest user whose authorized_keys get the key", metavar="USER"
    ),
]
# -u and -f as virtctl's credentials verbs take them (credentials/common/common.go).
KeyFile = Annotated[
    str | None,
    typer.Option("--file", "-f", help="an SSH public key file (.pub)", metavar="FILE"),
]
KeyValue = Annotated[
    str | None, typer.Option("--value", help="an SSH public key, as text", metavar="KEY")
]


def _key(file: str | None, value: str | None) -> str:
    """The public key the flags give, checked."""
    from pathlib import Path

    from wukong.console.credentials import public_key

    if (file is None) == (value is None):
        raise usage("give the key with one of --file or --value")
    if value is not None:
        return public_key(value, "--value")
    try:
        text = Path(str(file)).read_text()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise usage(f"--file: cannot read {file}: {reason.lower()}") from None
    return public_key(text, "--file")


@app.command(
    "add-ssh-key",
    cls=KubectlCommand,
    epilog=(
        "wukong credentials add-ssh-key web-1 --user fedora --file ~/.ssh/id_ed25519.pub\n"
        'wukong credentials add-ssh-key web-1 --user fedora --value "$(cat colleague.pub)"'
    ),
)
def add_ssh_key(
    name: NameArg,
    user: User,
    file: KeyFile = None,
    value: KeyValue = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="add to a Secret the Wukong does not own (shared); make a new one though "
            "cloud-init keys the CLI cannot read would not be copied into it",
        ),
    ] = False,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Give USER an SSH key through the guest agent: into the Secret the VM already takes
    USER's keys from (live, no restart), else into a new one (at the next start)."""
    from wukong.console.credentials import valid_user
    from wukong.console.flows.credentials import add_ssh_key as add

    try:
        key = _key(file, value)
        if not valid_user(user):
            # The Wukong's sshKeys would refuse it, after the Secret was made (session 46).
            raise usage(
                f"--user: {user!r} is not a user name sshKeys take (letters, digits, '_', '.', "
                "'@' and '-', starting with a letter or '_', at most 32 characters)"
            )
    except CliError as error:
        fail(error)
    cluster = cluster_from(kubeconfig, context, namespace)
    run(add(cluster, console(), name, user, key, force=force))


@app.command(
    "remove-ssh-key",
    cls=KubectlCommand,
    epilog="wukong credentials remove-ssh-key web-1 --user fedora --file colleague.pub",
)
def remove_ssh_key(
    name: NameArg,
    user: User,
    file: KeyFile = None,
    value: KeyValue = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="take it out of a Secret the Wukong does not own (shared)"),
    ] = False,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Take an SSH key away from USER: out of the Secrets the guest agent gives USER keys
    from (live, no restart)."""
    from wukong.console.flows.credentials import remove_ssh_key as remove

    try:
        key = _key(file, value)
    except CliError as error:
        fail(error)
    cluster = cluster_from(kubeconfig, context, namespace)
    run(remove(cluster, console(), name, user, key, force=force))
