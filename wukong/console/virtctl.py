"""ssh and scp into a running VM: handed over to `virtctl ssh`/`virtctl scp` for the
Wukong's VM and the cluster the user named; without virtctl, the OpenSSH command that gets
there through `wukong port-forward --stdio`."""

from __future__ import annotations

import asyncio
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from wukong.api import names
from wukong.console.connect import connect
from wukong.console.errors import CliError, usage
from wukong.console.invocation import Cluster, Console, command_line_name
from wukong.console.remote import running_vmi

VIRTCTL_RELEASES = "https://github.com/kubevirt/kubevirt/releases"


def _cluster_flags(cluster: Cluster, namespace: str) -> list[str]:
    """virtctl's flags for the cluster the user named: their --kubeconfig and --context go
    with it (without them it would take the default kubeconfig's current context, maybe
    another cluster)."""
    flags = ["--namespace", namespace]
    if cluster.kubeconfig:
        flags += ["--kubeconfig", cluster.kubeconfig]
    if cluster.context:
        flags += ["--context", cluster.context]
    return flags


def ssh_command(
    cluster: Cluster,
    namespace: str,
    name: str,
    *,
    user: str | None,
    identity: str | None,
    extra: list[str],
) -> list[str] | None:
    """The `virtctl ssh` command line for the Wukong's VM, or None without virtctl."""
    virtctl = shutil.which("virtctl")
    if virtctl is None:
        return None
    argv = [virtctl, "ssh", f"vm/{names.vm_name(name)}", *_cluster_flags(cluster, namespace)]
    if user:
        argv += ["--username", user]
    if identity:
        argv += ["--identity-file", identity]
    return argv + extra


NO_VIRTCTL = (
    "{program} {verb} uses virtctl, which is not on PATH: install it from "
    f"{VIRTCTL_RELEASES} (the virtctl-<version>-<os>-<arch> asset of your KubeVirt version; "
    "or `kubectl krew install virt`), then run this again; meanwhile OpenSSH gets there "
    "through wukong: {openssh}; and `{program} console {name}` gives the serial console"
)


def openssh_hint(
    verb: str, cluster: Cluster, namespace: str, name: str, program: str = "wukong"
) -> str:
    """The OpenSSH command that reaches the VM without virtctl: `wukong port-forward
    --stdio` as its ProxyCommand (what `virtctl ssh --local-ssh` does with virtctl's);
    `program` as the user types it (`kubectl wukong` for the plugin). Quoted twice, as ssh
    gives ProxyCommand to a shell: any kubeconfig path pastes as it is (a `%` doubled, which
    ssh would take for one of its tokens)."""
    flags = [flag.replace("%", "%%") for flag in _cluster_flags(cluster, namespace)]
    command = [*program.split(), "port-forward", "--stdio", name, "%p", *flags]
    proxy = shlex.quote("ProxyCommand=" + " ".join(shlex.quote(word) for word in command))
    if verb == "scp":
        return f"scp -o {proxy} FILE USER@{name}:PATH"
    return f"ssh -o {proxy} USER@{name}"


@dataclass(frozen=True)
class Remote:
    """The VM end of a copy: `[USER@]NAME:PATH`."""

    name: str
    path: str
    user: str | None = None


def remote_of(arg: str) -> Remote | None:
    """`[USER@]NAME:PATH` as scp reads it: a colon before any slash makes it remote (so
    `./a:b` is a local file)."""
    head, colon, path = arg.partition(":")
    if not colon or "/" in head or not head:
        return None
    user, at, name = head.rpartition("@")
    return Remote(name if at else head, path, user if at and user else None)


def copy_ends(source: str, destination: str) -> tuple[Remote, list[str]]:
    """Which end of `wukong scp SRC DST` is the VM, and virtctl's two arguments for the
    Wukong's VM (`vm/NAME-vm:PATH`); a usage error unless exactly one end is remote."""
    ends = [remote_of(source), remote_of(destination)]
    remotes = [r for r in ends if r is not None]
    if len(remotes) != 1:
        raise usage("one of SRC and DST is the VM's ([USER@]NAME:PATH), the other a local path")
    (remote,) = remotes
    user = f"{remote.user}@" if remote.user else ""
    vm = f"{user}vm/{names.vm_name(remote.name)}:{remote.path}"
    return remote, [vm if ends[0] else source, vm if ends[1] else destination]


def scp_command(
    cluster: Cluster,
    namespace: str,
    ends: list[str],
    *,
    recursive: bool,
    identity: str | None,
    extra: list[str],
) -> list[str] | None:
    """The `virtctl scp` command line, or None without virtctl."""
    virtctl = shutil.which("virtctl")
    if virtctl is None:
        return None
    argv = [virtctl, "scp", *_cluster_flags(cluster, namespace)]
    if recursive:
        argv.append("--recursive")
    if identity:
        argv += ["--identity-file", identity]
    return [*argv, *extra, *ends]


async def _hand_over(
    cluster: Cluster, name: str, verb: str, command: Callable[[str], list[str] | None]
) -> int:
    """Once the Wukong's VM runs, run virtctl's `verb` (`command(namespace)`, None without
    virtctl: say where to get it) and exit with its code."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        await running_vmi(target, name)
        argv = command(target.namespace)
        if argv is None:
            program = command_line_name()
            openssh = openssh_hint(verb, cluster, target.namespace, name, program)
            words = {"program": program, "verb": verb, "name": name, "openssh": openssh}
            raise CliError(NO_VIRTCTL.format(**words))
    process = await asyncio.create_subprocess_exec(*argv)
    return await process.wait()


async def ssh(
    cluster: Cluster,
    io: Console,
    name: str,
    *,
    user: str | None,
    identity: str | None,
    extra: list[str],
) -> int:
    """`wukong ssh NAME`: hand over to `virtctl ssh` for the Wukong's VM."""

    def command(namespace: str) -> list[str] | None:
        return ssh_command(cluster, namespace, name, user=user, identity=identity, extra=extra)

    return await _hand_over(cluster, name, "ssh", command)


async def scp(
    cluster: Cluster,
    name: str,
    ends: list[str],
    *,
    recursive: bool,
    identity: str | None,
    extra: list[str],
) -> int:
    """`wukong scp SRC DST`: hand over to `virtctl scp` for the Wukong's VM."""

    def command(namespace: str) -> list[str] | None:
        return scp_command(
            cluster, namespace, ends, recursive=recursive, identity=identity, extra=extra
        )

    return await _hand_over(cluster, name, "scp", command)
