"""The console's, VNC's and port-forward's websockets reach the API server as the CLI's REST
calls do: through HTTPS_PROXY (NO_PROXY heeded) or the kubeconfig's `proxy-url`, checking
the certificate against its `tls-server-name`. They dialled it directly: behind a corporate
proxy, or with a server name the certificate does not carry, `wukong status` worked and
`wukong console` did not (access audit, session 46). Against a real local HTTPS API server
and a real CONNECT proxy (tests/unit/cli/apiserver.py)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.unit.cli.apiserver import ApiServer, ConnectProxy, vmi
from tests.unit.cli.objects import running
from tests.unit.cli.test_port_forward import stdin_from
from wukong.console import remote
from wukong.console.invocation import Cluster, Console

__all__ = ["stdin_from"]  # the fixture
HIDDEN = "apiserver.invalid"  # a name only the proxy can resolve
CONNECTED = ["Successfully connected to web-1 console. Press Ctrl+] or Ctrl+5 to exit console.", ""]


async def console(server: ApiServer) -> list[str]:
    """`wukong console web-1` to its end (stdin is /dev/null): what it said."""
    said: list[str] = []
    cluster = Cluster(kubeconfig=server.kubeconfig, namespace="demo")
    code = await asyncio.wait_for(
        remote.console(cluster, Console(out=said.append, say=said.append), "web-1"), 20
    )
    assert code == 0, said
    return said


@pytest.mark.parametrize("given", ["HTTPS_PROXY", "proxy-url"])
async def test_the_console_goes_through_the_proxy_rest_goes_through(
    given: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stdin_from: Callable[[Path], None],
) -> None:
    stdin_from(Path(os.devnull))
    for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with (
        ApiServer(tmp_path, running("web-1"), vmi("web-1"), tls_for=HIDDEN) as server,
        ConnectProxy({HIDDEN: "127.0.0.1"}) as proxy,
    ):
        if given == "HTTPS_PROXY":
            monkeypatch.setenv("HTTPS_PROXY", proxy.url)
            server.write_kubeconfig(HIDDEN)
        else:
            server.write_kubeconfig(HIDDEN, **{"proxy-url": proxy.url})
        assert await console(server) == CONNECTED
    assert server.subresources() == [("GET", "web-1-vm/console")]
    # Only the proxy can resolve the server's name: every connection, the websocket's too,
    # went through it (aiohttp may carry the upgrade on the REST calls' kept-alive tunnel).
    assert proxy.tunnels and set(proxy.tunnels) == {f"{HIDDEN}:{server.port}"}


async def test_no_proxy_is_heeded_by_the_websocket_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stdin_from: Callable[[Path], None]
) -> None:
    stdin_from(Path(os.devnull))
    with (
        ApiServer(tmp_path, running("web-1"), vmi("web-1"), tls_for="localhost") as server,
        ConnectProxy({}) as proxy,
    ):
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "localhost")
        server.write_kubeconfig("localhost")
        assert await console(server) == CONNECTED
    assert proxy.tunnels == []


async def test_the_console_checks_the_certificate_against_tls_server_name(
    tmp_path: Path, stdin_from: Callable[[Path], None]
) -> None:
    """The kubeconfig names the server by address; its certificate carries a name only,
    which `tls-server-name` gives (as for a cluster behind a load balancer's address)."""
    stdin_from(Path(os.devnull))
    with ApiServer(tmp_path, running("web-1"), vmi("web-1"), tls_for=HIDDEN) as server:
        server.write_kubeconfig("127.0.0.1", **{"tls-server-name": HIDDEN})
        assert await console(server) == CONNECTED
    assert server.subresources() == [("GET", "web-1-vm/console")]
