"""A local API server for the CLI's tests: a real HTTP server on 127.0.0.1, in a thread of
its own (the CLI runs its own event loop, under CliRunner or asyncio.run), that answers as
the API server and virt-api behind it would. The CLI reaches it through a kubeconfig, with
nothing of its own faked: REST, the websockets of the console, VNC and port-forward, and
virt-api's plain answers (the guest agent's, a screenshot, a soft reboot).

It stores objects (Wukongs and VMIs) to GET, one or a namespace's (any other collection is
empty), and serves every subresource of every VMI as
virt-api would once its checks pass (those are the simulator's and the integration
tests'): a websocket says which subresource it is, then echoes. Every request is recorded.

Streams are scripted: each watch takes the next `Stream` of `watches` (none left: it stays
silent until its timeoutSeconds), a pod's log is `log`, a screenshot `screenshot` (None: the
whole PNG at once); a stream ends as the server's own
end does, is cut mid-body (the connection reset, as a killed proxy or API server does), or
goes silent with the connection open (a half-open connection). A watch's `Stream` may
instead refuse it (`status`: a Status with that code, or 0: the connection reset before
any answer, as an API server going away or not yet back does); `refusals` answers the next
REST requests other than watches in turn (200: as usual), as `status`.

`failing` (a status) answers every REST request from then on with it, as an API server does
once a user's rights are revoked (403) or their token has expired (401); websockets to
virt-api end as `socket_end` says once they have greeted: "echo" (until the client closes),
"cut" (the connection reset, as a restarting virt-api or a load balancer's cut) or "close"
(a Close frame, 1000).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import aiohttp
import yaml
from aiohttp import web

from wukong.adapters.kube import api_path
from wukong.api import names
from wukong.api.kinds import VMI
from wukong.testing.kubevirt._serve import stop_serving
from wukong.testing.kubevirt._tls import self_signed
from wukong.testing.kubevirt.screen import png

JsonObj = dict[str, Any]
PLAIN = "plain.kubevirt.io"
SUBRESOURCES = "/apis/subresources.kubevirt.io/v1/namespaces/"
SCREEN = png(720, 400, (0, 0, 170))
AGENT: dict[str, JsonObj] = {
    "guestosinfo": {"hostname": "web-1-vm", "os": {"prettyName": "Fedora Linux 40"}},
    "userlist": {"items": [{"userName": "fedora"}]},
    "filesystemlist": {"items": [{"mountPoint": "/", "fileSystemType": "xfs"}]},
}


def vmi(name: str = "web-1", phase: str = "Running", **metadata: Any) -> JsonObj:
    """The VMI of the Wukong `name`, in `phase`."""
    meta = {"name": names.vm_name(name), "namespace": "demo", "uid": f"uid-{name}-vm", **metadata}
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": meta,
        "status": {"phase": phase},
    }


def greeting(sub: str) -> bytes:
    """What a websocket to `sub` first says."""
    return f"{sub} of the guest\n".encode()


@dataclass
class Stream:
    """One streamed answer: `events` ((type, object) of a watch, or a log's chunks of bytes),
    then its end: "end" (the server's own), "cut" (the connection reset mid-body) or
    "silent" (open, nothing more). A watch's `status` other than 200 refuses it instead (0:
    the connection reset before any answer)."""

    events: list[Any] = field(default_factory=list)
    end: Literal["end", "cut", "silent"] = "end"
    status: int = 200


def pod(name: str, vmi_uid: str = "uid-web-1-vm") -> JsonObj:
    """The virt-launcher pod of a VMI, with KubeVirt's serial console log container."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "demo",
            "uid": f"uid-{name}",
            "creationTimestamp": "2026-05-01T11:00:00Z",
            "labels": {"kubevirt.io/created-by": vmi_uid},
        },
        "spec": {"containers": [{"name": "compute"}, {"name": "guest-console-log"}]},
    }


def _path(obj: JsonObj) -> str:
    meta = obj["metadata"]
    if obj.get("kind") == "Pod":
        return api_path("", "v1", "pods", meta["namespace"], meta["name"])
    if obj.get("kind") == VMI.kind:
        return api_path(VMI.group, VMI.version, VMI.plural, meta["namespace"], meta["name"])
    return api_path(names.GROUP, names.VERSION, names.PLURAL, meta["namespace"], meta["name"])


class InThread:
    """An event loop of its own in a thread, for a server the CLI reaches while its own loop
    runs in the test's thread: `up()` starts it, `down()` stops it."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    async def up(self) -> None:
        raise NotImplementedError

    async def down(self) -> None:
        raise NotImplementedError

    async def _down(self) -> None:
        await self.down()
        left = asyncio.all_tasks() - {asyncio.current_task()}  # connections still open
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)

    def __enter__(self) -> Self:
        started = threading.Event()
        failed: list[BaseException] = []

        def serve() -> None:
            loop = self._loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self.up())
            except BaseException as error:  # said in the test's thread
                failed.append(error)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._down())
            loop.close()

        self._thread = threading.Thread(target=serve, name=type(self).__name__, daemon=True)
        self._thread.start()
        if not started.wait(10) or failed:
            raise RuntimeError(f"{type(self).__name__} did not start") from (
                failed[0] if failed else None
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


class ApiServer(InThread):
    """`with ApiServer(tmp_path, wukong, vmi) as server:` serves them until the block ends;
    `server.kubeconfig` reaches it. `tls_for`: HTTPS, with a certificate for that name (and
    localhost, not an address), its CA in the kubeconfig."""

    def __init__(self, directory: Path, *objects: JsonObj, tls_for: str | None = None) -> None:
        super().__init__()
        self.objects = {_path(obj): obj for obj in objects}
        self.requests: list[tuple[str, str]] = []
        self.watches: list[Stream] = []
        self.watched: list[dict[str, str]] = []  # the query of each watch, in turn
        self.log = Stream()
        self.screenshot: Stream | None = None
        self.failing: int | None = None
        self.refusals: list[int] = []
        self.socket_end: Literal["echo", "cut", "close"] = "echo"
        self.directory = directory
        self.kubeconfig = str(directory / "kubeconfig")
        self.tls_for = tls_for
        self.port = 0
        self._runner: web.AppRunner | None = None

    def write_kubeconfig(self, host: str = "127.0.0.1", **cluster: str) -> None:
        """The kubeconfig, its server at `host` (the server's port), with `cluster`'s more
        fields (`tls-server-name`, `proxy-url`)."""
        scheme = "http" if self.tls_for is None else "https"
        entry = {"server": f"{scheme}://{host}:{self.port}", **cluster}
        if self.tls_for is not None:
            entry["certificate-authority"] = str(self.directory / "tls.crt")
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": entry}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "c",
        }
        Path(self.kubeconfig).write_text(yaml.safe_dump(config))

    def subresources(self) -> list[tuple[str, str]]:
        """(method, subresource) of each request to virt-api: `("GET", "web-1-vm/console")`."""
        marker = "/virtualmachineinstances/"
        return [
            (method, path.split(marker, 1)[1])
            for method, path in self.requests
            if path.startswith(SUBRESOURCES)
        ]

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.requests.append((request.method, path))
        if path.startswith(SUBRESOURCES):
            sub = path.split("/virtualmachineinstances/", 1)[1].split("/", 1)[1]
            if request.headers.get("Upgrade", "").lower() == "websocket":
                ws = web.WebSocketResponse(protocols=(PLAIN,))
                await ws.prepare(request)
                await ws.send_bytes(greeting(sub))
                if self.socket_end == "cut":
                    await asyncio.sleep(0.1)  # the greeting reaches the client first
                    assert request.transport is not None
                    request.transport.abort()
                    return ws
                if self.socket_end == "close":
                    await ws.close()  # 1000
                    return ws
                async for message in ws:
                    if message.type is aiohttp.WSMsgType.BINARY:
                        await ws.send_bytes(message.data)
                return ws
            if sub == "vnc/screenshot" and self.screenshot is not None:
                shot = self.screenshot
                return await self._stream(request, shot.events, shot.end, 3600, "image/png")
            if sub == "vnc/screenshot":
                return web.Response(body=SCREEN, content_type="image/png")
            if sub == "softreboot":
                return web.Response(status=202)
            return web.json_response(AGENT.get(sub, {}))
        if self.failing is not None:
            return self._refuse(request, self.failing)
        if request.method == "GET" and request.query.get("watch") == "true":
            self.watched.append(dict(request.query))
            script = self.watches.pop(0) if self.watches else None
            if script is None:
                script = Stream(end="silent")
            if script.status != 200:
                return self._refuse(request, script.status)
            lines = [
                json.dumps({"type": t, "object": o}).encode() + b"\n" for t, o in script.events
            ]
            seconds = float(request.query.get("timeoutSeconds") or 3600)
            return await self._stream(request, lines, script.end, seconds, "application/json")
        if self.refusals and (refused := self.refusals.pop(0)) != 200:
            return self._refuse(request, refused)
        if request.method == "GET" and path.endswith("/log"):
            return await self._stream(request, self.log.events, self.log.end, 3600, "text/plain")
        if request.method == "GET" and path in self.objects:
            return web.json_response(self.objects[path])
        parts = path.strip("/").split("/")
        if request.method == "GET" and len(parts) == {"api": 5, "apis": 6}.get(parts[0]):
            items = [obj for at, obj in self.objects.items() if at.startswith(f"{path}/")]
            return web.json_response({"metadata": {"resourceVersion": "1"}, "items": items})
        name = path.rsplit("/", 1)[-1]
        status = {"kind": "Status", "apiVersion": "v1", "status": "Failure"}
        status.update(reason="NotFound", code=404, message=f'"{name}" not found')  # type: ignore[arg-type]
        return web.json_response(status, status=404)

    def _refuse(self, request: web.Request, status: int) -> web.StreamResponse:
        """A Status with code `status`, as the API server refuses; 0: no answer at all, the
        connection reset."""
        if status == 0:
            assert request.transport is not None
            request.transport.abort()
            return web.Response()  # never sent: the connection is gone
        reasons = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 429: "TooManyRequests"}
        reason = reasons.get(status, "ServiceUnavailable" if status == 503 else "InternalError")
        message = f"{reason.lower()}: {request.method} {request.path}"
        failure = {"kind": "Status", "apiVersion": "v1", "status": "Failure"}
        failure.update(reason=reason, code=status, message=message)  # type: ignore[arg-type]
        return web.json_response(failure, status=status)

    async def _stream(
        self, request: web.Request, chunks: list[bytes], end: str, seconds: float, kind: str
    ) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = kind
        await response.prepare(request)
        for chunk in chunks:
            await response.write(chunk)
        if end == "cut":
            await asyncio.sleep(0.1)  # what was written reaches the client first
            assert request.transport is not None
            request.transport.abort()
            return response
        if end == "silent":
            await asyncio.sleep(seconds)
        await response.write_eof()
        return response

    async def up(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        context = None
        if self.tls_for is not None:
            cert, key = self_signed(self.directory, self.tls_for)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
        await web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context).start()
        self.port = int(self._runner.addresses[0][1])

    async def down(self) -> None:
        if self._runner is not None:
            await stop_serving(self._runner)

    def __enter__(self) -> Self:
        super().__enter__()
        self.write_kubeconfig()
        return self


class ConnectProxy(InThread):
    """An HTTP proxy for HTTPS, as a corporate one: CONNECT HOST:PORT, then bytes both ways.
    `hosts` resolves names the machine does not (`apiserver.invalid`); `tunnels` records
    each CONNECT's target."""

    def __init__(self, hosts: dict[str, str]) -> None:
        super().__init__()
        self.hosts = hosts
        self.tunnels: list[str] = []
        self.url = ""
        self._server: asyncio.Server | None = None

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._tunnel, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        method, target, _ = head.split("\r\n", 1)[0].split(" ", 2)
        if method != "CONNECT":
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return
        self.tunnels.append(target)
        host, port = target.rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(self.hosts.get(host, host), int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()

        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        try:
            await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
        except asyncio.CancelledError:
            pass  # the proxy is stopping
        finally:
            writer.close()
            up_writer.close()
