"""`port-forward` and `vnc` when the cluster goes away, or stops letting the user in, while
they listen, and when the display is cut under a viewer (CLI access audit, session 48).
Each new local connection reads the Wukong again before its websocket opens: an API error
there was asyncio's "Unhandled exception in client_connected_cb" and a traceback per
connection, and `vnc --proxy-only` then exited 0. Against the local API server
(tests/unit/cli/apiserver.py), websockets included."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.cli.apiserver import ApiServer, greeting, vmi
from tests.unit.cli.objects import running
from wukong.console import forward, remote
from wukong.console.invocation import Cluster, Console
from wukong.console.ports import Forward

JsonObj = dict[str, Any]
FORBIDDEN = "forbidden: GET /apis/vm.novasphere.dev/v1alpha1/namespaces/demo/wukongs/web-1"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ApiServer]:
    with ApiServer(tmp_path, running("web-1"), vmi("web-1")) as server:
        yield server


@pytest.fixture
async def problems() -> AsyncIterator[list[dict[str, Any]]]:
    """What asyncio would print as a traceback (an unhandled exception in a connection's
    handler, a task's exception never retrieved)."""
    seen: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: seen.append(context))
    yield seen
    loop.set_exception_handler(None)


class Said:
    """stdout's lines in a queue (to wait for the port), stderr's in a list."""

    def __init__(self) -> None:
        self.printed: asyncio.Queue[str] = asyncio.Queue()
        self.lines: list[str] = []
        self.io = Console(out=self.printed.put_nowait, say=self.lines.append)

    async def port(self) -> int:
        line = await asyncio.wait_for(self.printed.get(), 10)
        if line.startswith("{"):
            return int(json.loads(line)["port"])
        return int(line.split(" -> ")[0].rsplit(":", 1)[1])  # Forwarding from A:P -> 22


def cluster(server: ApiServer) -> Cluster:
    return Cluster(kubeconfig=server.kubeconfig, namespace="demo")


async def connect_once(port: int) -> bytes:
    """A client's connection to the local port: all it gets until the end."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def test_vnc_proxy_only_ends_in_one_line_when_the_user_may_no_longer_read_the_wukong(
    served: ApiServer, problems: list[dict[str, Any]]
) -> None:
    said = Said()
    vnc = asyncio.create_task(remote.vnc(cluster(served), said.io, "web-1", proxy_only=True))
    try:
        port = await said.port()
        served.failing = 403  # RBAC revoked while it listens
        assert await connect_once(port) == b""
        assert await asyncio.wait_for(vnc, 10) == 1
    finally:
        vnc.cancel()
    assert problems == []
    assert said.lines[1:] == [f"error: cannot open the vnc of wukong web-1: {FORBIDDEN}"]
    assert served.subresources() == []


async def test_port_forward_ends_in_one_line_when_the_cluster_is_gone(
    served: ApiServer, problems: list[dict[str, Any]]
) -> None:
    """As kubectl's port-forward ends ("lost connection to pod") when its connection to the
    API server is lost: one line, exit 1, for a supervisor to start it again."""
    said = Said()
    command = forward.port_forward(cluster(served), said.io, "web-1", [Forward(0, 22)])
    forwarding = asyncio.create_task(command)
    try:
        port = await said.port()
        served.__exit__(None, None, None)  # the API server restarts, or its LB fails over
        assert await connect_once(port) == b""
        assert await asyncio.wait_for(forwarding, 10) == 1
    finally:
        forwarding.cancel()
    assert problems == []
    assert said.lines[1:] == [
        f"error: cannot open port 22 of wukong web-1: cannot reach the cluster at "
        f"http://127.0.0.1:{served.port}: connection refused"
    ]


async def test_a_udp_datagram_that_finds_the_token_expired_ends_port_forward_in_one_line(
    served: ApiServer, problems: list[dict[str, Any]]
) -> None:
    said = Said()
    command = forward.port_forward(cluster(served), said.io, "web-1", [Forward(0, 53, "udp")])
    forwarding = asyncio.create_task(command)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        port = int((await asyncio.wait_for(said.printed.get(), 10)).split(":")[1].split()[0])
        served.failing = 401  # the kubeconfig's token has expired
        client.sendto(b"query", ("127.0.0.1", port))
        client.sendto(b"again", ("127.0.0.1", port))
        assert await asyncio.wait_for(forwarding, 10) == 1
    finally:
        client.close()
        forwarding.cancel()
    assert problems == []
    assert said.lines[1:] == [
        f"error: cannot open port 53 of wukong web-1: unauthorized at "
        f"http://127.0.0.1:{served.port}: the kubeconfig's credentials were not accepted"
    ]
    assert served.subresources() == []


async def test_a_refused_port_still_ends_only_its_own_connection(
    served: ApiServer, problems: list[dict[str, Any]]
) -> None:
    """Not the cluster lost: the VM stopped meanwhile. Said, and the port listens on for
    the next connection (it may start again)."""
    said = Said()
    command = forward.port_forward(cluster(served), said.io, "web-1", [Forward(0, 22)])
    forwarding = asyncio.create_task(command)
    try:
        port = await said.port()
        stopped = {**running("web-1"), "status": {"phase": "Stopped"}}
        served.objects = {path: stopped for path in served.objects if "/wukongs/" in path}
        assert await connect_once(port) == b""
        await asyncio.sleep(0.2)
        assert not forwarding.done()
    finally:
        forwarding.cancel()
        await asyncio.gather(forwarding, return_exceptions=True)
    assert problems == []
    assert said.lines[1:] == [
        "error: wukong web-1 is Stopped, not running: start it first (wukong start web-1 -n demo)"
    ]


async def test_vnc_proxy_only_fails_in_one_line_when_the_display_is_cut(
    served: ApiServer, problems: list[dict[str, Any]]
) -> None:
    """virt-api restarting, or a load balancer's cut, under a viewer: it ended silently
    with 0. virtctl vnc fails there ("websocket: close 1006"), exit 1."""
    served.socket_end = "cut"
    said = Said()
    vnc = asyncio.create_task(remote.vnc(cluster(served), said.io, "web-1", proxy_only=True))
    try:
        port = await said.port()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 10) == greeting("vnc")
        writer.close()
        assert await asyncio.wait_for(vnc, 10) == 1
    finally:
        vnc.cancel()
    assert problems == []
    assert said.lines[1:] == [
        "error: disconnected from the VNC of web-1: another viewer connected to it, "
        "the VM stopped, or the network failed"
    ]


async def test_vnc_proxy_only_ends_with_0_on_a_normal_close(served: ApiServer) -> None:
    """A Close frame, 1000: the end of the stream, as virtctl's client reads it (virt-api
    itself sends none)."""
    served.socket_end = "close"
    said = Said()
    vnc = asyncio.create_task(remote.vnc(cluster(served), said.io, "web-1", proxy_only=True))
    try:
        port = await said.port()
        assert await connect_once(port) == greeting("vnc")
        assert await asyncio.wait_for(vnc, 10) == 0
    finally:
        vnc.cancel()
    assert len(said.lines) == 1


async def test_vnc_with_a_viewer_fails_once_it_is_closed_when_the_display_was_cut(
    served: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The viewer shows the cut and stays open; its close (0) was the command's 0."""
    served.socket_end = "cut"
    viewer_script = (
        "import socket, sys\n"
        "host, port = sys.argv[1].rsplit(':', 1)\n"
        "with socket.create_connection((host, int(port)), timeout=10) as c:\n"
        "    while c.recv(4096):\n"
        "        pass\n"
    )

    def viewer(host: str, port: int) -> list[str]:
        return [sys.executable, "-c", viewer_script, f"{host}:{port}"]

    monkeypatch.setattr(remote, "viewer", viewer)
    said = Said()
    assert await asyncio.wait_for(remote.vnc(cluster(served), said.io, "web-1"), 30) == 1
    assert said.lines[1:] == [
        "error: disconnected from the VNC of web-1: another viewer connected to it, "
        "the VM stopped, or the network failed"
    ]
