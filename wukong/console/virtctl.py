"""ssh and scp into a running VM: handed over to `virtctl ssh`/`virtctl scp` for the
Wukong's VM; without virtctl, or when the user named a cluster (--kubeconfig, --context: the
tunnel virtctl builds would not take them), to OpenSSH's own `ssh`/`scp` through `wukong
port-forward --stdio` (what virtctl does with `virtctl port-forward`); without either, the
command that would get there."""

from __future__ import annotations

import asyncio
import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass

from wukong.api import names
from wukong.console.connect import connect
from wukong.console.errors import CliError, usage
from wukong.console.invocation import Cluster, Console, command_line_name, typed
from wukong.console.remote import running_vmi

VIRTCTL_RELEASES = "https://github.com/kubevirt/kubevirt/releases"


def tunnel_keeps_cluster(cluster: Cluster) -> bool:
    """Whether `virtctl ssh`/`scp` reach the cluster the user named: their tunnel is OpenSSH
    with `ProxyCommand=virtctl port-forward ... kind/name/namespace`, which carries the
    namespace only (ssh.go BuildProxyCommandOption), so a --kubeconfig or --context of the
    user's stops at virtctl and the tunnel takes the default kubeconfig's current context:
    maybe another cluster, and a VM of the same name there (guest-access audit, session
    41). Then wukong's own ProxyCommand, which carries them, is used."""
    return not (cluster.kubeconfig or cluster.context)


def local_options(extra: list[str]) -> list[str]:
    """The words after `--`, OpenSSH's options whichever client runs, as virtctl takes them:
    each one `--local-ssh-opts` (ssh.go: appended, in order, to the local ssh or scp).
    Given to virtctl as they were, `-L 8080:localhost:80` was refused ("unknown shorthand
    flag") and scp's `-l 1000` became virtctl's `--username 1000` (guest-access audit,
    session 41)."""
    return [f"--local-ssh-opts={word}" for word in extra]


def guest_port(extra: list[str], flag: str) -> str | None:
    """The port OpenSSH's options after `--` name (`flag` N: ssh's `-p`, scp's `-P`; or
    `-o Port=N`), the first one as OpenSSH takes it; None when they name none. virtctl's
    tunnel goes to its own `--port` (22 unless given: ssh.go BuildProxyCommandOption writes
    it into the ProxyCommand, not OpenSSH's `%p`), so `-- -p 2222` reached port 22 through
    virtctl and 2222 through wukong's own OpenSSH path (source audit, session 46)."""
    words = iter(extra)
    for word in words:
        if word == flag:
            return next(words, None)
        if word.startswith(flag) and len(word) > len(flag):
            return word[len(flag) :]
        option = next(words, "") if word == "-o" else word[2:] if word.startswith("-o") else ""
        key, sep, value = option.replace("=", " ", 1).partition(" ")
        if sep and key.strip().lower() == "port":
            return value.strip()
    return None


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
    command: str | None = None,
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
    if command is not None:
        argv += ["--command", command]
    if (port := guest_port(extra, "-p")) is not None:
        argv += ["--port", port]
    return argv + local_options(extra)


NO_CLIENT = (
    "{program} {verb} uses virtctl or OpenSSH's {verb}, and neither is on PATH: install "
    f"OpenSSH, or virtctl from {VIRTCTL_RELEASES} (the virtctl-<version>-<os>-<arch> asset of "
    "your KubeVirt version; or `kubectl krew install virt`); with OpenSSH this is, through "
    "wukong: {openssh}; meanwhile `{console}` gives the serial console"
)


def openssh_hint(
    verb: str, cluster: Cluster, namespace: str, name: str, program: str = "wukong"
) -> str:
    """The OpenSSH command that reaches the VM without virtctl: `wukong port-forward
    --stdio` as its ProxyCommand (what `virtctl ssh` does with `virtctl port-forward`);
    `program` as the user types it (`kubectl wukong` for the plugin). Quoted twice, as ssh
    gives ProxyCommand to a shell: any kubeconfig path pastes as it is (a `%` doubled, which
    ssh would take for one of its tokens)."""
    proxy = shlex.quote(_proxy_command(program.split(), cluster, namespace, name))
    if verb == "scp":
        return f"scp -o {proxy} FILE USER@{name}:PATH"
    return f"ssh -o {proxy} USER@{name}"


def _proxy_command(program: list[str], cluster: Cluster, namespace: str, name: str) -> str:
    """ssh's ProxyCommand option through `program port-forward --stdio`: quoted for the
    shell ssh runs it in, `%` doubled but in ssh's own `%p` (the port)."""
    flags = _cluster_flags(cluster, namespace)
    words = [w.replace("%", "%%") for w in [*program, "port-forward", "--stdio", name]]
    words += ["%p", *(flag.replace("%", "%%") for flag in flags)]
    return "ProxyCommand=" + " ".join(shlex.quote(word) for word in words)


def host_of(name: str, namespace: str) -> str:
    """The host name OpenSSH is given (the ProxyCommand finds the VM; this only keys
    known_hosts, apart per namespace, as virtctl's `vm.NAME.NAMESPACE`)."""
    return f"{name}.{namespace}"


def _openssh(
    client: str, cluster: Cluster, namespace: str, name: str, identity: str | None
) -> list[str]:
    """OpenSSH's ssh or scp with this very wukong as its ProxyCommand (the same Python, so
    neither PATH nor how wukong was installed matters)."""
    proxy = _proxy_command([sys.executable, "-m", "wukong"], cluster, namespace, name)
    return [client, "-o", proxy, *(["-i", identity] if identity else [])]


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
    if (port := guest_port(extra, "-P")) is not None:
        argv += ["--port", port]
    return [*argv, *local_options(extra), *ends]


async def _hand_over(
    cluster: Cluster,
    io: Console,
    name: str,
    verb: str,
    command: Callable[[str], list[str] | None],
    openssh: Callable[[str, str], list[str]],
) -> int:
    """Once the Wukong's VM runs, run virtctl's `verb` (`command(namespace)`, None without
    virtctl), else OpenSSH's (`openssh(client, namespace)`), else say what to install, and
    exit with its code."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        await running_vmi(target, name, io.say)
        client = shutil.which(verb)
        argv = command(target.namespace)
        if client is not None and (argv is None or not tunnel_keeps_cluster(cluster)):
            why = (
                "virtctl is not on PATH"
                if argv is None
                else "virtctl's tunnel would not take --kubeconfig or --context"
            )
            io.say(f"{why}: {verb} through wukong port-forward, with OpenSSH")
            argv = openssh(client, target.namespace)
        if argv is None:
            program = command_line_name()
            hint = openssh_hint(verb, cluster, target.namespace, name, program)
            console = typed(f"console {name}", target.namespace)
            words = {"program": program, "verb": verb, "openssh": hint, "console": console}
            raise CliError(NO_CLIENT.format(**words))
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
    command: str | None = None,
) -> int:
    """`wukong ssh NAME [-c CMD]`: hand over to `virtctl ssh` for the Wukong's VM, or to
    OpenSSH."""

    def with_virtctl(namespace: str) -> list[str] | None:
        return ssh_command(
            cluster, namespace, name, user=user, identity=identity, extra=extra, command=command
        )

    def openssh(client: str, namespace: str) -> list[str]:
        return openssh_ssh(client, cluster, namespace, name, user, identity, extra, command)

    return await _hand_over(cluster, io, name, "ssh", with_virtctl, openssh)


def openssh_ssh(
    client: str,
    cluster: Cluster,
    namespace: str,
    name: str,
    user: str | None,
    identity: str | None,
    extra: list[str],
    command: str | None = None,
) -> list[str]:
    """OpenSSH's `ssh` into the Wukong's VM through wukong's port-forward (running
    `command` there instead of a shell, when given)."""
    host = host_of(name, namespace)
    argv = [*_openssh(client, cluster, namespace, name, identity), *extra]
    return [*argv, f"{user}@{host}" if user else host, *([command] if command else [])]


def openssh_scp(
    client: str,
    cluster: Cluster,
    namespace: str,
    remote: Remote,
    ends: tuple[str, str],
    *,
    recursive: bool,
    identity: str | None,
    extra: list[str],
) -> list[str]:
    """OpenSSH's `scp` of `ends` (SRC, DST as given; `remote` names the VM) through
    wukong's port-forward."""
    user = f"{remote.user}@" if remote.user else ""
    vm = f"{user}{host_of(remote.name, namespace)}:{remote.path}"
    copied = [vm if remote_of(end) is not None else end for end in ends]
    argv = _openssh(client, cluster, namespace, remote.name, identity)
    return [*argv, *(["-r"] if recursive else []), *extra, *copied]


async def scp(
    cluster: Cluster,
    io: Console,
    remote: Remote,
    ends: tuple[str, str],
    *,
    recursive: bool,
    identity: str | None,
    extra: list[str],
) -> int:
    """`wukong scp SRC DST`: hand over to `virtctl scp` for the Wukong's VM, or to OpenSSH.
    `ends` are SRC and DST as given; `remote` is the one that names the VM."""
    name = remote.name

    def command(namespace: str) -> list[str] | None:
        _, virtctl_ends = copy_ends(*ends)
        return scp_command(
            cluster, namespace, virtctl_ends, recursive=recursive, identity=identity, extra=extra
        )

    def openssh(client: str, namespace: str) -> list[str]:
        return openssh_scp(
            client,
            cluster,
            namespace,
            remote,
            ends,
            recursive=recursive,
            identity=identity,
            extra=extra,
        )

    return await _hand_over(cluster, io, name, "scp", command, openssh)
