"""A CLI wait and `status -w` through a relay in front of the real API server that goes away
for a few seconds, as a load balancer failing over or a laptop's network does: every
connection reset, new ones refused, then back on the same address. The CLI reconnects from
the last resourceVersion seen until its --timeout, says so once, and sees what changed
meanwhile, which the real API server replays from that version. Before, the first refused
re-open ended the wait in one `cannot reach the cluster` line (CLI audit, session 48)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.integration.scenario import create, get, k, path, wukong
from tests.integration.test_cli import cli
from wukong.adapters.kube import Kube
from wukong.testing.controlplane import ControlPlane
from wukong.testing.eventually import eventually

__all__ = ["k"]  # fixtures


class Relay:
    """TCP from 127.0.0.1:`port` to the API server; `away()` resets every connection and
    refuses new ones until `back()`, on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def back(self) -> None:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def away(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        self._open |= {writer, up_writer}

        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
        self._open -= {writer, up_writer}


@pytest.fixture
async def relay(control_plane: ControlPlane) -> AsyncIterator[Relay]:
    address = urlsplit(control_plane.server)
    relayed = Relay(str(address.hostname), int(address.port or 443))
    await relayed.back()
    yield relayed
    await relayed.away()


def through(relay: Relay, control_plane: ControlPlane, directory: Path) -> Path:
    """The admin kubeconfig, its server the relay (the certificate names 127.0.0.1)."""
    config = yaml.safe_load(control_plane.kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{relay.port}"
    relayed = directory / "relayed.kubeconfig"
    relayed.write_text(yaml.safe_dump(config))
    return relayed


def documents(text: str) -> list[Any]:
    """The JSON documents of `-w -o json`, one after another."""
    decoder, found, at = json.JSONDecoder(), [], 0
    text = text.strip()
    while at < len(text):
        doc, at = decoder.raw_decode(text, at)
        found.append(doc)
        while at < len(text) and text[at].isspace():
            at += 1
    return found


def reconnecting(relay: Relay) -> str:
    return (
        f"warning: cannot reach the cluster at https://127.0.0.1:{relay.port}: connection "
        "refused; reconnecting"
    )


async def test_status_watch_sees_what_changed_while_the_cluster_was_away(
    control_plane: ControlPlane, k: Kube, namespace: str, relay: Relay, tmp_path: Path
) -> None:
    await create(k, "wukong", namespace, wukong("w-1"))
    kubeconfig = through(relay, control_plane, tmp_path)
    argv = ["status", "-w", "--timeout", "15s", "-n", namespace, "-o", "json"]
    watching = asyncio.ensure_future(cli(kubeconfig, *argv))
    await asyncio.sleep(4)  # listed, and watching
    await relay.away()
    label = {"metadata": {"labels": {"changed": "meanwhile"}}}
    await k.merge_patch(path("wukong", namespace, "w-1"), label)
    await asyncio.sleep(4)  # re-opens refused
    await relay.back()
    result = await watching
    assert result.exit_code == 0, result.output
    shown = documents(result.stdout)
    assert shown[-1]["metadata"]["labels"] == {"changed": "meanwhile"}
    assert result.stderr.splitlines() == [reconnecting(relay)]


async def test_delete_wait_sees_the_wukong_go_while_the_cluster_was_away(
    control_plane: ControlPlane, k: Kube, namespace: str, relay: Relay, tmp_path: Path
) -> None:
    held = wukong("w-2")
    held["metadata"]["finalizers"] = ["example.com/hold"]  # no operator here: this test's
    await create(k, "wukong", namespace, held)
    kubeconfig = through(relay, control_plane, tmp_path)
    argv = ["delete", "w-2", "--yes", "--wait", "--timeout", "30s", "-n", namespace]
    deleting = asyncio.ensure_future(cli(kubeconfig, *argv))

    async def marked() -> bool:
        cr = await get(k, "wukong", namespace, "w-2")
        return cr is not None and bool(cr["metadata"].get("deletionTimestamp"))

    await eventually(marked, timeout=20)
    await asyncio.sleep(2)  # following it
    await relay.away()
    await k.merge_patch(path("wukong", namespace, "w-2"), {"metadata": {"finalizers": None}})
    await asyncio.sleep(4)
    await relay.back()
    result = await deleting
    assert result.exit_code == 0, result.output
    assert "wukong w-2 deleted" in result.stdout.splitlines()
    assert reconnecting(relay) in result.stderr.splitlines()
