"""The kubelet's log endpoint, as the API server calls it for `kubectl logs` (pods/log).

The API server proxies `GET /api/v1/namespaces/NS/pods/POD/log?container=C` to the pod's
node, at the Node's InternalIP and `status.daemonEndpoints.kubeletEndpoint.Port`, path
`/containerLogs/NS/POD/C` (kubelet server.go). With no `--kubelet-certificate-authority`,
as on the local control plane, it does not check the kubelet's serving certificate.

Only KubeVirt's `guest-console-log` container says anything here: it prints the guest's
serial console (`serial_log`); the launcher's other containers answer with an empty log.
"""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web

from ._kube import JsonObj, Kube
from ._serve import serve, stop_serving
from ._tls import self_signed
from .guest import Guest
from .node import PODS
from .serial_log import Line, SerialLog

GUEST_CONSOLE_LOG = "guest-console-log"  # virt-controller services/serialconsolelog.go
CREATED_BY = "kubevirt.io/created-by"  # a virt-launcher pod's label: its VMI's uid
VMI_NAME = "vm.kubevirt.io/name"
FOLLOW_POLL = 1.0  # a follower checks this often that its pod is still there


def _rfc3339nano(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def _since(query: dict[str, str], now: datetime) -> datetime | None:
    if "sinceSeconds" in query:
        return now - timedelta(seconds=int(query["sinceSeconds"]))
    if "sinceTime" in query:
        return datetime.fromisoformat(query["sinceTime"].replace("Z", "+00:00"))
    return None


def selected(lines: list[Line], query: dict[str, str], now: datetime) -> list[Line]:
    """The lines `sinceSeconds`/`sinceTime` and `tailLines` keep, as the kubelet picks them."""
    since = _since(query, now)
    kept = [line for line in lines if since is None or line.at >= since]
    if "tailLines" in query:
        tail = int(query["tailLines"])
        kept = kept[len(kept) - tail :] if tail < len(kept) else kept
    return kept


def render(line: Line, timestamps: bool) -> bytes:
    """One line as the kubelet writes it, with its RFC 3339 time in front when asked."""
    text = f"{_rfc3339nano(line.at)} {line.text}" if timestamps else line.text
    return (text + "\n").encode()


class KubeletLogServer:
    """Each node's kubelet, for `containerLogs`: one HTTPS server bound to every node's
    address at the port their Node objects advertise."""

    def __init__(
        self, kube: Kube, guest: Callable[[str, str], Guest], addresses: list[str], port: int
    ) -> None:
        self.kube, self.guest, self.addresses, self.port = kube, guest, addresses, port
        self._runner: web.AppRunner | None = None
        self._certs: tempfile.TemporaryDirectory[str] | None = None

    async def start(self) -> None:
        self._certs = tempfile.TemporaryDirectory(prefix="wukong-kubelet-")
        cert, key = self_signed(Path(self._certs.name), "kubelet")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(cert), str(key))
        app = web.Application()
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        for address in self.addresses:
            await serve(self._runner, address, self.port, ctx)

    async def stop(self) -> None:
        if self._runner is not None:
            await stop_serving(self._runner)
            self._runner = None
        if self._certs is not None:
            self._certs.cleanup()
            self._certs = None

    async def _pod(self, namespace: str, name: str) -> JsonObj | None:
        return await self.kube.get_or_none(PODS, namespace, name)

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        ns, name = request.match_info["namespace"], request.match_info["pod"]
        container = request.match_info["container"]
        query = dict(request.query)
        pod = await self._pod(ns, name)
        if pod is None:
            return web.Response(status=404, text=f'pods "{name}" not found')
        if query.get("previous") == "true":
            text = f'previous terminated container "{container}" in pod "{name}" not found'
            return web.Response(status=400, text=text)
        labels = pod["metadata"].get("labels") or {}
        log: SerialLog | None = None
        if container == GUEST_CONSOLE_LOG and CREATED_BY in labels and VMI_NAME in labels:
            log = self.guest(ns, labels[VMI_NAME]).serial(labels[CREATED_BY])
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        timestamps = query.get("timestamps") == "true"
        budget = int(query["limitBytes"]) if "limitBytes" in query else None

        async def write(line: Line) -> bool:
            """False once limitBytes is spent."""
            nonlocal budget
            data = render(line, timestamps)
            if budget is not None:
                data, budget = data[:budget], budget - len(data)
            await response.write(data)
            return budget is None or budget > 0

        try:
            if log is not None:
                await self._stream(log, query, write, ns, name)
            await response.write_eof()
        except ConnectionResetError:
            # The reader left (`wukong logs -f` stopped): as the kubelet, stop writing. Not
            # an error: aiohttp logged it with a traceback, in the demo's output too.
            pass
        return response

    async def _stream(
        self,
        log: SerialLog,
        query: dict[str, str],
        write: Callable[[Line], Awaitable[bool]],
        ns: str,
        name: str,
    ) -> None:
        """The log's lines `query` selects, then (follow) new ones while the pod lives."""
        going = True
        for line in selected(log.lines, query, datetime.now(UTC)):
            going = await write(line)
            if not going:
                break
        index = len(log.lines)
        while going and query.get("follow") == "true":
            async for line in log.follow(index, FOLLOW_POLL):
                index += 1
                going = await write(line)
                if not going:
                    break
            if log.ended or await self._pod(ns, name) is None:
                break
