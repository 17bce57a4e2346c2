"""What the guest agent reports, as virtctl's verbs of the same names print it: `guestosinfo`,
`userlist`, `fslist` (virt-api's `guestosinfo`, `userlist` and `filesystemlist`, asked with
the user's own rights). JSON by default, as virtctl prints it, so a script that pipes
`virtctl fslist` into jq works unchanged; `-o yaml` too. `describe` shows the same as prose.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Final

import typer

from wukong.console.options import (
    TYPER_STYLE,
    Context,
    Kubeconfig,
    KubectlCommand,
    NameArg,
    Namespace,
    cluster_from,
    console,
    run,
)

app = typer.Typer(**TYPER_STYLE)


class Format(StrEnum):
    """What `-o` accepts here."""

    JSON = "json"
    YAML = "yaml"


FormatOpt = Annotated[
    Format,
    typer.Option("--output", "-o", help="json or yaml", metavar="FORMAT", case_sensitive=False),
]
REPORTS: Final = {  # verb → virt-api's subresource
    "guestosinfo": "guestosinfo",
    "userlist": "userlist",
    "fslist": "filesystemlist",
}


def _report(verb: str, name: str, output: Format, *cluster: str | None) -> None:
    from wukong.console.flows.reading import agent_report

    yaml = output is Format.YAML
    work = agent_report(cluster_from(*cluster), console(), name, REPORTS[verb], yaml=yaml)
    run(work, writes=False)


@app.command(cls=KubectlCommand, epilog="wukong guestosinfo web-1 | jq -r .os.prettyName")
def guestosinfo(
    name: NameArg,
    output: FormatOpt = Format.JSON,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """The guest's OS, kernel, hostname, users and filesystems, from its agent (virtctl's
    guestosinfo)."""
    _report("guestosinfo", name, output, kubeconfig, context, namespace)


@app.command(cls=KubectlCommand, epilog="wukong userlist web-1 -o yaml")
def userlist(
    name: NameArg,
    output: FormatOpt = Format.JSON,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Who is logged in to the guest, from its agent (virtctl's userlist)."""
    _report("userlist", name, output, kubeconfig, context, namespace)


@app.command(
    cls=KubectlCommand,
    epilog="wukong fslist web-1 | jq '.items[] | {mountPoint, usedBytes, totalBytes}'",
)
def fslist(
    name: NameArg,
    output: FormatOpt = Format.JSON,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """The guest's mounted filesystems and their use, from its agent (virtctl's fslist)."""
    _report("fslist", name, output, kubeconfig, context, namespace)
