"""Reaching a running guest whatever its Wukong's phase: virt-api serves a VMI that runs,
and the CLI decides on the VMI as virt-api does, not on the Wukong's phase (access audit,
session 46: a Wukong in Error because a data disk added later failed to import, its VM
running, was refused by every access verb, which never asked virt-api). Run against a
real local API server (tests/unit/cli/apiserver.py), websockets included."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.unit.cli.apiserver import ApiServer, greeting, vmi
from tests.unit.cli.objects import running, wukong
from tests.unit.cli.test_port_forward import stdin_from
from tests.unit.cli.test_selection import kubeconfig
from tests.unit.cli.test_soft_reboot import VirtApi
from wukong.adapters.kube import Kube
from wukong.cli import app
from wukong.console import forward, remote
from wukong.console.invocation import Cluster, Console
from wukong.console.ports import Forward
from wukong.errors import Forbidden

__all__ = ["kubeconfig", "stdin_from"]  # the fixtures
JsonObj = dict[str, Any]
WHY = "disk 'data': import failed: Unable to connect to http data source"
IN_ERROR = (
    f"warning: wukong web-1 is in Error: {WHY} (wukong describe web-1 -n demo); "
    "its VM runs all the same"
)


def in_error() -> JsonObj:
    """A running Wukong gone to Error when a data disk added later failed its import
    (fsm/table.py: Running -> Error on ProvisioningFailed): its VM keeps running."""
    cr = running("web-1")
    cr["spec"]["disks"].append({"name": "data", "size": "1Gi", "image": "https://bad.example/x"})
    cr["status"]["phase"] = "Error"
    cr["status"]["conditions"][0].update(status="False", reason="ProvisioningFailed", message=WHY)
    return cr


def stopping() -> JsonObj:
    cr = running("web-1")
    cr["status"]["phase"] = "Stopping"
    return cr


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ApiServer]:
    """The Wukong in Error and its running VMI."""
    with ApiServer(tmp_path, in_error(), vmi("web-1")) as server:
        yield server


@pytest.fixture
def ssh_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """OpenSSH's `ssh` on PATH (and no virtctl), writing its arguments to a file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ssh"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "ssh.args"}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    return tmp_path / "ssh.args"


def cli(server: ApiServer, *argv: str) -> Any:
    return CliRunner().invoke(app, [*argv, "-n", "demo", "--kubeconfig", server.kubeconfig])


@pytest.mark.parametrize(
    ("argv", "sub"),
    [
        (["fslist", "web-1"], "filesystemlist"),
        (["guestosinfo", "web-1"], "guestosinfo"),
        (["userlist", "web-1"], "userlist"),
        (["soft-reboot", "web-1"], "softreboot"),
        (["screenshot", "web-1", "--file", "-"], "vnc/screenshot"),
    ],
)
def test_a_running_guest_whose_wukong_is_in_error_is_reached_with_one_warning(
    argv: list[str], sub: str, served: ApiServer
) -> None:
    done = cli(served, *argv)
    assert done.exit_code == 0, done.stderr
    assert served.subresources() == [("PUT" if sub == "softreboot" else "GET", f"web-1-vm/{sub}")]
    assert done.stderr.splitlines() == [IN_ERROR]


def test_ssh_to_a_running_guest_whose_wukong_is_in_error(
    served: ApiServer, ssh_on_path: Path
) -> None:
    done = cli(served, "ssh", "web-1", "-l", "fedora")
    assert done.exit_code == 0, done.stderr
    assert done.stderr.splitlines() == [
        IN_ERROR,
        "virtctl is not on PATH: ssh through wukong port-forward, with OpenSSH",
    ]
    assert "fedora@web-1" in ssh_on_path.read_text()


def test_describe_shows_the_guest_of_a_wukong_in_error(served: ApiServer) -> None:
    done = cli(served, "describe", "web-1")
    assert done.exit_code == 0, done.stderr
    assert "Guest:           Fedora Linux 40, hostname web-1-vm" in done.stdout.splitlines()
    assert ("GET", "web-1-vm/guestosinfo") in served.subresources()


async def test_the_console_of_a_wukong_in_error_connects(
    served: ApiServer, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    said: list[str] = []
    io = Console(out=said.append, say=said.append)
    cluster = Cluster(kubeconfig=served.kubeconfig, namespace="demo")
    typed, keys = os.pipe()  # the person at the console: a line, then (once echoed) Ctrl-]
    os.write(keys, b"ls\r")
    with os.fdopen(typed, "rb") as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        at_console = asyncio.create_task(remote.console(cluster, io, "web-1"))
        console = b""
        async with asyncio.timeout(10):
            while not console.endswith(b"ls\r"):
                await asyncio.sleep(0.05)
                console += capsysbinary.readouterr().out
        os.write(keys, remote.ESCAPE)
        os.close(keys)
        assert await asyncio.wait_for(at_console, 10) == 0
    assert console == greeting("console") + b"ls\r"
    assert said == [
        IN_ERROR,
        "Successfully connected to web-1 console. Press Ctrl+] or Ctrl+5 to exit console.",
        "",
    ]
    assert served.subresources() == [("GET", "web-1-vm/console")]


async def test_a_port_of_a_wukong_in_error_is_forwarded(
    served: ApiServer,
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: pytest.CaptureFixture[bytes],
    stdin_from: Callable[[Path], None],
) -> None:
    said: list[str] = []
    cluster = Cluster(kubeconfig=served.kubeconfig, namespace="demo")
    monkeypatch.setattr(forward, "LINGER_SECONDS", 0.3)
    stdin_from(Path(os.devnull))  # the end of input at once: the answer, then quiet
    io = Console(out=said.append, say=said.append)
    stdio = forward.port_forward(cluster, io, "web-1", [Forward(22, 22)], stdio=True)
    assert await asyncio.wait_for(stdio, 10) == 0
    assert capsysbinary.readouterr().out == greeting("portforward/22/tcp")
    assert said == [IN_ERROR]
    assert served.subresources() == [("GET", "web-1-vm/portforward/22/tcp")]


async def test_the_vnc_of_a_wukong_in_error_is_served(served: ApiServer) -> None:
    said: list[str] = []
    printed: asyncio.Queue[str] = asyncio.Queue()
    io = Console(out=printed.put_nowait, say=said.append)
    cluster = Cluster(kubeconfig=served.kubeconfig, namespace="demo")
    vnc = asyncio.create_task(remote.vnc(cluster, io, "web-1", proxy_only=True))
    try:
        port = json.loads(await asyncio.wait_for(printed.get(), 10))["port"]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        first = await asyncio.wait_for(reader.readexactly(len(greeting("vnc"))), 10)
        writer.close()
    finally:
        vnc.cancel()
        await asyncio.gather(vnc, return_exceptions=True)
    assert first == greeting("vnc")
    assert said[0] == IN_ERROR
    assert served.subresources() == [("GET", "web-1-vm/vnc")]


def test_a_stopping_wukong_whose_guest_still_runs_is_reached_with_its_shutdown_said(
    tmp_path: Path,
) -> None:
    """Stopping (a graceful shutdown, the VMI still Running): virtctl's console connects and
    shows the shutdown; so does wukong's, and it says the VM is going."""
    with ApiServer(tmp_path, stopping(), vmi("web-1")) as server:
        done = cli(server, "guestosinfo", "web-1")
    assert done.exit_code == 0, done.stderr
    assert done.stderr == (
        "warning: wukong web-1 is shutting down (Stopping): its VM runs until it stops\n"
    )


def restarting() -> JsonObj:
    cr = running("web-1")
    cr["status"]["phase"] = "Restarting"
    return cr


@pytest.mark.parametrize(
    ("cr", "its_vmi", "phase"),
    [
        (stopping(), vmi("web-1"), "Stopping"),
        (restarting(), vmi("web-1", deletionTimestamp="2026-05-01T11:59:00Z"), "Restarting"),
    ],
)
def test_a_soft_reboot_is_not_sent_to_a_guest_shutting_down(
    cr: JsonObj, its_vmi: JsonObj, phase: str, tmp_path: Path
) -> None:
    """A reboot in place would race the stop: refused, whether the Wukong is Stopping or
    its VMI is being deleted (a restart's first half)."""
    with ApiServer(tmp_path, cr, its_vmi) as server:
        done = cli(server, "soft-reboot", "web-1")
    assert (done.exit_code, server.subresources()) == (1, [])
    assert done.stderr == (
        f"error: web-1 is shutting down ({phase}): a reboot in place would race its stop\n"
    )


@pytest.mark.parametrize(
    ("cr", "said"),
    [
        (
            wukong("web-1", status={"phase": "Stopped"}),
            "error: wukong web-1 is Stopped, not running: start it first "
            "(wukong start web-1 -n demo)",
        ),
        (
            in_error(),
            f"error: wukong web-1 is in Error, not running: {WHY} (wukong describe web-1 -n demo)",
        ),
    ],
)
@pytest.mark.parametrize("verb", ["fslist", "screenshot", "vnc", "console", "port-forward"])
def test_without_a_running_vmi_the_wukongs_phase_says_why(
    cr: JsonObj, said: str, verb: str, tmp_path: Path
) -> None:
    """No VMI, or one that does not run (Succeeded, a VM that stopped): the Wukong's own
    words, and virt-api is not asked."""
    stopped_vmi = vmi("web-1", "Succeeded")
    for objects in ((cr,), (cr, stopped_vmi)):
        with ApiServer(tmp_path, *objects) as server:
            done = cli(server, verb, "web-1", *(["22"] if verb == "port-forward" else []))
        assert (done.exit_code, server.subresources()) == (1, []), done.stderr
        assert done.stderr == said + "\n"


async def test_a_wukong_on_its_way_whose_vmi_runs_already_is_not_waited_for(
    tmp_path: Path, stdin_from: Callable[[Path], None]
) -> None:
    """`console` waits for a VM on its way; one whose VMI runs already (the Wukong says
    Running once that VMI is Ready) is connected to at once, as virtctl's console does."""
    starting = running("web-1")
    starting["status"]["phase"] = "Starting"
    said: list[str] = []
    stdin_from(Path(os.devnull))  # connected, then the end of input ends it
    with ApiServer(tmp_path, starting, vmi("web-1")) as server:
        cluster = Cluster(kubeconfig=server.kubeconfig, namespace="demo")
        console = remote.console(cluster, Console(out=said.append, say=said.append), "web-1")
        assert await asyncio.wait_for(console, 10) == 0
    assert said == [
        "Successfully connected to web-1 console. Press Ctrl+] or Ctrl+5 to exit console.",
        "",
    ]
    assert server.subresources() == [("GET", "web-1-vm/console")]


def test_a_user_who_may_not_read_the_vmi_gets_the_wukongs_words(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A role with the subresources but not `get` on VMIs (KubeVirt's and Kubernetes' own
    roles all have it): the VMI cannot be asked, and the Wukong's phase speaks."""
    server = VirtApi(in_error())

    async def request(method: str, path: str, **kwargs: Any) -> JsonObj:
        if path.startswith("/apis/kubevirt.io/"):
            raise Forbidden(403, "Forbidden", "virtualmachineinstances is forbidden", path=path)
        return await server.request(method, path, **kwargs)

    monkeypatch.setattr(Kube, "request", staticmethod(request))
    done = CliRunner().invoke(app, ["fslist", "web-1", "-n", "demo", "--kubeconfig", kubeconfig])
    assert (done.exit_code, server.sent) == (1, [])
    assert done.stderr == (
        f"error: wukong web-1 is in Error, not running: {WHY} (wukong describe web-1 -n demo)\n"
    )


async def test_a_paused_guest_is_said_paused_before_connecting() -> None:
    """Access audit (session 46), as virtctl vnc warns: a Suspended Wukong's guest answers
    no console, display or port until resumed, and the command otherwise just hung."""
    suspended = running()
    suspended["status"]["phase"] = "Suspended"
    said: list[str] = []
    target = type("Target", (), {"namespace": "demo"})()
    assert await remote._reachable(target, "web-1", suspended, said.append) == "web-1-vm"  # type: ignore[arg-type]
    assert said == [
        "warning: web-1 is paused: it answers once resumed (wukong resume web-1 -n demo)"
    ]
