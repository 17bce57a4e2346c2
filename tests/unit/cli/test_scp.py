"""`wukong scp`: which end is the VM, and the virtctl command it becomes."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wukong.cli import app
from wukong.console.errors import USAGE, CliError
from wukong.console.invocation import Cluster
from wukong.console.virtctl import (
    Remote,
    copy_ends,
    guest_port,
    openssh_hint,
    openssh_scp,
    openssh_ssh,
    remote_of,
    scp_command,
    ssh_command,
)


@pytest.mark.parametrize(
    ("arg", "remote"),
    [
        ("web-1:/etc/hosts", Remote("web-1", "/etc/hosts")),
        ("fedora@web-1:notes.txt", Remote("web-1", "notes.txt", "fedora")),
        ("web-1:", Remote("web-1", "")),  # the user's home, as scp reads it
        ("./a:b", None),  # a colon after a slash: a local file
        ("/tmp/x", None),
        (":x", None),
        ("notes.txt", None),
    ],
)
def test_a_remote_end_is_name_colon_path(arg: str, remote: Remote | None) -> None:
    assert remote_of(arg) == remote


def test_the_vm_end_becomes_virtctls_vm_reference() -> None:
    vm, ends = copy_ends("fedora@web-1:/var/log/cloud-init.log", ".")
    assert vm.name == "web-1"
    assert ends == ["fedora@vm/web-1-vm:/var/log/cloud-init.log", "."]
    vm, ends = copy_ends("./site", "web-1:/srv/www")
    assert ends == ["./site", "vm/web-1-vm:/srv/www"]


@pytest.mark.parametrize(("source", "destination"), [("a", "b"), ("web-1:/a", "web-2:/b")])
def test_exactly_one_end_is_the_vm(source: str, destination: str) -> None:
    with pytest.raises(CliError) as refused:
        copy_ends(source, destination)
    assert refused.value.code == USAGE


def test_virtctl_gets_the_cluster_flags_then_its_own_then_the_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    virtctl = tmp_path / "virtctl"
    virtctl.write_text("#!/bin/sh\n")
    virtctl.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    cluster = Cluster(kubeconfig="/k", context="c")
    argv = scp_command(
        cluster, "demo", ["vm/web-1-vm:/a", "."], recursive=True, identity="id", extra=["-v"]
    )
    assert argv == [
        str(virtctl), "scp", "--namespace", "demo", "--kubeconfig", "/k", "--context", "c",
        "--recursive", "--identity-file", "id", "--local-ssh-opts=-v", "vm/web-1-vm:/a", ".",
    ]  # fmt: skip
    monkeypatch.setenv("PATH", str(tmp_path / "none"))
    assert scp_command(cluster, "demo", [], recursive=False, identity=None, extra=[]) is None


def test_two_local_paths_are_one_usage_line() -> None:
    result = CliRunner().invoke(app, ["scp", "a", "b"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: one of SRC and DST is the VM's ([USER@]NAME:PATH), the other a local path\n"
    )


def test_without_virtctl_the_openssh_command_carries_the_cluster_the_user_named() -> None:
    cluster = Cluster("/home/me/.kube/lab", "lab", None)
    proxy = (
        "'ProxyCommand=wukong port-forward --stdio web-1 %p --namespace demo "
        "--kubeconfig /home/me/.kube/lab --context lab'"
    )
    assert openssh_hint("scp", cluster, "demo", "web-1") == (f"scp -o {proxy} FILE USER@web-1:PATH")
    assert openssh_hint("ssh", Cluster(None, None, None), "default", "web-1") == (
        "ssh -o 'ProxyCommand=wukong port-forward --stdio web-1 %p --namespace default' USER@web-1"
    )


def test_the_openssh_command_names_the_program_as_the_user_types_it() -> None:
    hint = openssh_hint("ssh", Cluster(), "demo", "web-1", "kubectl wukong")
    assert hint.startswith("ssh -o 'ProxyCommand=kubectl wukong port-forward --stdio web-1 %p")


def test_the_openssh_command_pastes_as_it_is_whatever_the_kubeconfig_path() -> None:
    """ssh gives ProxyCommand to a shell after expanding its %-tokens: a path with a space,
    a quote or a % reaches `wukong port-forward` whole (the hint quoted it once, by hand)."""
    path = "/home/me/my kube/it's 100%"
    hint = openssh_hint("ssh", Cluster(path, None, None), "demo", "web-1")
    ssh, option, proxy, destination = shlex.split(hint)  # what the user's shell gives ssh
    assert (ssh, option, destination) == ("ssh", "-o", "USER@web-1")
    command = proxy.removeprefix("ProxyCommand=").replace("%p", "22").replace("%%", "%")
    assert shlex.split(command) == [  # what ssh's shell then runs
        *("wukong", "port-forward", "--stdio", "web-1", "22"),
        *("--namespace", "demo", "--kubeconfig", path),
    ]


def test_without_virtctl_openssh_goes_through_this_very_wukong() -> None:
    """`wukong ssh`/`scp` with OpenSSH and no virtctl: ssh's ProxyCommand is this Python's
    `-m wukong port-forward --stdio` (no PATH lookup, whatever installed it); the host name
    only keys known_hosts, apart per namespace."""
    cluster = Cluster("/home/me/my kube", None, None)
    argv = openssh_ssh("/usr/bin/ssh", cluster, "demo", "web-1", "fedora", "id", ["-v"])
    assert argv[:2] == ["/usr/bin/ssh", "-o"] and argv[3:] == [
        "-i",
        "id",
        "-v",
        "fedora@web-1.demo",
    ]
    proxy = argv[2].removeprefix("ProxyCommand=")
    assert shlex.split(proxy) == [
        *(sys.executable, "-m", "wukong", "port-forward", "--stdio", "web-1", "%p"),
        *("--namespace", "demo", "--kubeconfig", "/home/me/my kube"),
    ]
    assert openssh_ssh("ssh", Cluster(), "demo", "web-1", None, None, [])[-1] == "web-1.demo"
    ran_there = openssh_ssh("ssh", Cluster(), "demo", "web-1", None, None, [], "uptime")
    assert ran_there[-2:] == ["web-1.demo", "uptime"]  # a command goes after the host
    remote, _ = copy_ends("notes.txt", "fedora@web-1:/tmp/")
    copied = openssh_scp(
        "scp",
        Cluster(),
        "demo",
        remote,
        ("notes.txt", "fedora@web-1:/tmp/"),
        recursive=True,
        identity=None,
        extra=["-q"],
    )
    assert copied[3:] == ["-r", "-q", "notes.txt", "fedora@web-1.demo:/tmp/"]


def test_a_vm_end_that_names_no_possible_wukong_is_refused_before_any_request() -> None:
    """Every NAME is checked locally; scp's was looked up first (CLI audit, session 41)."""
    result = CliRunner().invoke(app, ["scp", "BAD_name:/x", "."], prog_name="wukong")
    assert result.exit_code == USAGE
    assert "'BAD_name' is not a Wukong name" in result.output


@pytest.mark.parametrize(
    ("extra", "flag", "port"),
    [
        (["-p", "2222"], "-p", "2222"),
        (["-v", "-p2200"], "-p", "2200"),
        (["-o", "Port=2201"], "-p", "2201"),
        (["-oport 2202"], "-p", "2202"),
        (["-o", "StrictHostKeyChecking=no"], "-p", None),
        (["-P", "2203", "-p"], "-P", "2203"),  # scp: -P is the port, -p keeps times
        (["-p"], "-P", None),
        (["-L", "8080:localhost:80"], "-p", None),
    ],
)
def test_the_port_openssh_options_name_is_found(
    extra: list[str], flag: str, port: str | None
) -> None:
    assert guest_port(extra, flag) == port


def test_virtctl_is_given_the_port_openssh_options_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a source audit (session 46): virtctl's tunnel goes to its own --port (22
    unless given), written into its ProxyCommand, so `wukong ssh web-1 -- -p 2222` reached
    port 22 through virtctl and 2222 through OpenSSH alone."""
    virtctl = tmp_path / "virtctl"
    virtctl.write_text("#!/bin/sh\n")
    virtctl.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    cluster = Cluster()
    argv = ssh_command(cluster, "demo", "web-1", user=None, identity=None, extra=["-p", "2222"])
    assert argv is not None and argv[argv.index("--port") + 1] == "2222"
    assert "--local-ssh-opts=-p" in argv  # OpenSSH still gets its options as they were
    argv = scp_command(cluster, "demo", ["a", "vm/web-1-vm:b"], recursive=False, identity=None,
                       extra=["-P", "2222"])  # fmt: skip
    assert argv is not None and argv[argv.index("--port") + 1] == "2222"
    plain = ssh_command(cluster, "demo", "web-1", user=None, identity=None, extra=[])
    assert plain is not None and "--port" not in plain
