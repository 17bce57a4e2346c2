"""`wukong port-forward`: local ports to the guest's ports through the API server and virt-api,
which dials the VMI's first address itself (as for `virtctl port-forward` and `virtctl ssh`).

The simulator's pod network is put on this machine's loopback (127.244.x.y) for these tests,
so that the guest has an address virt-api can dial; the simulated guest serves sshd's banner
on 22, and any port a test opens, then echoes (a UDP port a test opens answers each datagram
with itself).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import replace
from pathlib import Path

import pytest

from tests.integration.conftest import kubevirt_mode
from tests.integration.scenario import (
    IMAGE,
    bound_account,
    create,
    k,
    operator,
    simulator,
    wait_for,
    wukong,
)
from tests.integration.test_remote_access import ran, read_until, wukong_cli, wukong_subprocess
from wukong.adapters.kube import Kube
from wukong.console.status import primary_ip
from wukong.testing.controlplane import ControlPlane
from wukong.testing.kubevirt import SimConfig, Simulator
from wukong.testing.kubevirt.guest import SSH_BANNER
from wukong.testing.kubevirt.plane import KubeVirtPlane
from wukong.testing.operator import InProcessOperator

__all__ = ["k", "operator"]  # fixtures
# Each pytest-xdist worker's guests get loopback addresses of their own: two simulators both
# handing out 127.244.0.2 listened on the same address, and a test reached the other's guest
# (or none). The demo's 127.245 stays clear of every worker's.
WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
LOOPBACK_PODS = f"127.{244 - WORKER}"
TENANT_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvb0vSo0g1O4X8VrJjQ5YF3Q7Yk0m9Jk0x8pRrTqG0m t@x"


@pytest.fixture
async def sim(
    control_plane: ControlPlane, kubevirt: KubeVirtPlane | None, namespace: str
) -> AsyncIterator[Simulator]:
    """The node, with VMI addresses on this machine's loopback."""
    config = replace(SimConfig(), pod_cidr_prefix=LOOPBACK_PODS)
    async with simulator(control_plane, kubevirt, namespace, config) as running:
        yield running


async def running_with_address(
    k: Kube, namespace: str, name: str, *, create_it: bool = True
) -> str:
    if create_it:
        await create(k, "wukong", namespace, wukong(name))
    cr = await wait_for(
        k,
        namespace,
        name,
        lambda cr: primary_ip(cr) is not None and cr["status"].get("phase") == "Running",
        within=60,
        what="Running with an address",
    )
    address = str(primary_ip(cr))
    assert address.startswith(f"{LOOPBACK_PODS}."), address
    return address


async def exchange(port: int, send: bytes, expect: bytes) -> bytes:
    """Connect to the local port, read what the guest says first, send, read it back."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
    try:
        first = await asyncio.wait_for(reader.readexactly(len(expect)), 20)
        writer.write(send)
        await writer.drain()
        echoed = await asyncio.wait_for(reader.readexactly(len(send)), 20)
        assert echoed == send
        return first
    finally:
        writer.close()


async def test_port_forward_carries_local_ports_to_the_guests_ports(
    k: Kube,
    namespace: str,
    operator: InProcessOperator,
    sim: Simulator,
    control_plane: ControlPlane,
) -> None:
    address = await running_with_address(k, namespace, "pf-1")
    http = b"HTTP/1.1 200 OK\r\n\r\n"
    sim.guest(namespace, "pf-1-vm").listen(8080, http)
    argv = ["port-forward", "pf-1", "-n", namespace, ":22", ":8080", ":9"]
    proc = await wukong_cli(control_plane.kubeconfig, *argv)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        said = [(await read_until(proc.stdout, b"\n")).decode() for _ in range(3)]
        ports = []
        for line, guest_port in zip(said, (22, 8080, 9), strict=True):
            match = re.fullmatch(rf"Forwarding from 127\.0\.0\.1:(\d+) -> {guest_port}\n", line)
            assert match is not None, said
            ports.append(int(match.group(1)))
        assert await exchange(ports[0], b"ping\n", SSH_BANNER) == SSH_BANNER
        assert await exchange(ports[1], b"GET / HTTP/1.1\r\n\r\n", http) == http
        # Two connections at once, each its own stream.
        both = await asyncio.gather(
            exchange(ports[0], b"one\n", SSH_BANNER), exchange(ports[0], b"two\n", SSH_BANNER)
        )
        assert both == [SSH_BANNER, SSH_BANNER]
        # Nothing listens on the guest's port 9: that connection ends, with virt-api's words
        # on stderr, and the others go on.
        reader, writer = await asyncio.open_connection("127.0.0.1", ports[2])
        assert await asyncio.wait_for(reader.read(), 20) == b""
        writer.close()
        line = (await read_until(proc.stderr, b"\n")).decode()
        while not line.startswith("error:"):  # the "Ctrl-C ends" line comes first
            line = (await read_until(proc.stderr, b"\n")).decode()
        assert line == (
            "error: port 9 of wukong pf-1 refused the connection: Internal error occurred: "
            f"dialing VM: dial tcp {address}:9: connect: connection refused\n"
        )
        assert await exchange(ports[1], b"again", http) == http
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 20)


class Answers(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait(data)


async def ask_udp(port: int, *queries: bytes) -> list[bytes]:
    """A UDP peer: send the first query until it is answered (as DNS clients retry: the
    guest's port may not be open yet), then the others; what came back, one datagram each."""
    loop = asyncio.get_running_loop()
    transport, peer = await loop.create_datagram_endpoint(Answers, remote_addr=("127.0.0.1", port))
    try:
        async with asyncio.timeout(30):
            while True:
                transport.sendto(queries[0])
                with suppress(TimeoutError):
                    answers = [await asyncio.wait_for(peer.received.get(), 1)]
                    break
            for query in queries[1:]:
                transport.sendto(query)
                answers.append(await peer.received.get())
        return answers
    finally:
        transport.close()


async def test_port_forward_carries_udp_datagrams_each_peer_its_own_tunnel(
    k: Kube,
    namespace: str,
    operator: InProcessOperator,
    sim: Simulator,
    control_plane: ControlPlane,
) -> None:
    await running_with_address(k, namespace, "pf-5")
    sim.guest(namespace, "pf-5-vm").listen_udp(5353)
    argv = ["port-forward", "pf-5", "-n", namespace, "udp/:5353", ":22"]
    proc = await wukong_cli(control_plane.kubeconfig, *argv)
    assert proc.stdout is not None
    try:
        said = [(await read_until(proc.stdout, b"\n")).decode() for _ in range(2)]
        udp = re.fullmatch(r"Forwarding from 127\.0\.0\.1:(\d+) -> 5353/udp\n", said[0])
        tcp = re.fullmatch(r"Forwarding from 127\.0\.0\.1:(\d+) -> 22\n", said[1])
        assert udp is not None and tcp is not None, said
        port = int(udp.group(1))
        # Each datagram comes back whole and alone, in order, through one tunnel.
        queries = [b"query-1", b"x" * 1200, b"query-3"]
        assert await ask_udp(port, *queries) == queries
        # Two peers at once: each its own tunnel, each gets its own answers.
        both = await asyncio.gather(ask_udp(port, b"a", b"aa"), ask_udp(port, b"b", b"bb"))
        assert both == [[b"a", b"aa"], [b"b", b"bb"]]
        # TCP beside it as before.
        assert await exchange(int(tcp.group(1)), b"ping\n", SSH_BANNER) == SSH_BANNER
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 20)


async def test_port_forward_stdio_is_one_connection_for_sshs_proxy_command(
    k: Kube,
    namespace: str,
    operator: InProcessOperator,
    sim: Simulator,
    control_plane: ControlPlane,
) -> None:
    await running_with_address(k, namespace, "pf-2")
    argv = ["port-forward", "--stdio", "pf-2", "22", "-n", namespace]
    proc = await wukong_cli(control_plane.kubeconfig, *argv)
    assert proc.stdin is not None and proc.stdout is not None
    assert await read_until(proc.stdout, b"\r\n") == SSH_BANNER
    proc.stdin.write(b"SSH-2.0-OpenSSH_9.2p1\r\n")
    assert await read_until(proc.stdout, b"\r\n") == b"SSH-2.0-OpenSSH_9.2p1\r\n"
    proc.stdin.close()  # ssh closed its end: the forward ends, and wukong with it
    assert await asyncio.wait_for(proc.wait(), 20) == 0


async def test_without_virtctl_ssh_runs_openssh_or_prints_the_command_that_reaches_the_guest(
    k: Kube,
    namespace: str,
    operator: InProcessOperator,
    sim: Simulator,
    control_plane: ControlPlane,
    tmp_path: Path,
) -> None:
    await running_with_address(k, namespace, "pf-3")
    kubeconfig = control_plane.kubeconfig
    # Neither virtctl nor OpenSSH on PATH (wukong, beside this Python, is): the command
    # OpenSSH would run, with the cluster the user named.
    bare = os.pathsep.join([str(tmp_path), str(Path(sys.executable).parent)])
    done = await ran(kubeconfig, "ssh", "pf-3", "-n", namespace, env=os.environ | {"PATH": bare})
    assert done.code == 1
    hint = re.search(r"through wukong: (ssh -o '[^']*' USER@pf-3);", done.err.decode())
    assert hint is not None, done.err.decode()
    assert hint.group(1) == (
        f"ssh -o 'ProxyCommand=wukong port-forward --stdio pf-3 %p --namespace {namespace} "
        f"--kubeconfig {kubeconfig}' USER@pf-3"
    )
    # The command as printed, run by OpenSSH: it reaches the guest's sshd (the simulated one
    # only says its version, so the key exchange fails after that, as ssh -v shows).
    path = os.pathsep.join([bare, "/usr/bin", "/bin"])
    env = os.environ | {"PATH": path}
    quiet = "-v -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
    command = hint.group(1).replace("ssh -o", f"ssh {quiet} -o", 1).replace("USER@", "fedora@")
    ssh = await asyncio.create_subprocess_shell(
        f"{command} true",
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, said = await asyncio.wait_for(ssh.communicate(), 60)
    assert "remote software version OpenSSH_9.6" in said.decode(), said.decode()
    # With OpenSSH on PATH and no virtctl, `wukong ssh` runs it itself, the same way.
    argv = ["ssh", "pf-3", "-n", namespace, "-l", "fedora", "--kubeconfig", str(kubeconfig)]
    proc = await wukong_subprocess(*argv, "--", *quiet.split(), env=env)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    said = err.decode()
    assert proc.returncode == 255, said  # ssh's own code: the key exchange failed, as above
    assert said.startswith("virtctl is not on PATH: ssh through wukong port-forward"), said
    assert "remote software version OpenSSH_9.6" in said, said
    assert f"Authenticating to pf-3.{namespace}:22 as 'fedora'" in said, said
    # And scp, the same way (its ssh's -v through scp's own -v).
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    argv = ["scp", str(notes), "fedora@pf-3:/tmp/", "-n", namespace]
    argv += ["--kubeconfig", str(kubeconfig)]
    proc = await wukong_subprocess(*argv, "--", *quiet.split(), env=env)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    said = err.decode()
    assert proc.returncode != 0, said  # no real sshd to copy to
    assert said.startswith("virtctl is not on PATH: scp through wukong port-forward"), said
    assert "remote software version OpenSSH_9.6" in said, said


if kubevirt_mode() == "real":  # KubeVirt's own user roles come with its install strategy

    async def test_a_tenant_bound_to_edit_makes_its_vm_and_reaches_it_with_the_cli(
        k: Kube,
        namespace: str,
        operator: InProcessOperator,
        sim: Simulator,
        control_plane: ControlPlane,
        tmp_path: Path,
    ) -> None:
        """A namespace's user holds Kubernetes' `edit` only: it takes in wukong-edit and
        KubeVirt's kubevirt.io:edit, so every verb the docs promise works with their rights."""
        await bound_account(k, namespace, "tenant", "ClusterRole", "edit")
        tenant = control_plane.service_account_kubeconfig(namespace, "tenant")
        as_tenant = ["-n", namespace]
        done = await ran(
            tenant, "create", "pf-4", "--image", IMAGE, "--wait", *as_tenant, within=120
        )
        assert done.code == 0, done.err.decode()
        assert done.out.decode().startswith("pf-4 is Running on "), done.out
        await running_with_address(k, namespace, "pf-4", create_it=False)
        argv = ["port-forward", "--stdio", "pf-4", "22", *as_tenant]
        proc = await wukong_cli(tenant, *argv)
        assert proc.stdin is not None and proc.stdout is not None
        assert await read_until(proc.stdout, b"\r\n") == SSH_BANNER
        proc.stdin.close()
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        for verb in (
            ["soft-reboot", "pf-4"],
            ["screenshot", "pf-4", "--file", str(tmp_path / "pf-4.png")],
            ["logs", "pf-4", "--tail", "1"],
            ["describe", "pf-4"],
            ["credentials", "add-ssh-key", "pf-4", "--user", "fedora", "--value", TENANT_KEY],
        ):
            done = await ran(tenant, *verb, *as_tenant)
            assert done.code == 0, (verb, done.err.decode())
            assert b"forbidden" not in done.out + done.err, (verb, done.out, done.err)
