"""The aggregated `subresources.kubevirt.io` API: a local HTTPS server behind the API server.

With real KubeVirt (`forward_to` set) this server answers nothing itself: it records each call,
applies the faults a test injected, and forwards everything else to KubeVirt's own virt-api,
presenting the aggregator's client certificate and its X-Remote-* headers as the API server
does. Unregistering points the APIService back at virt-api instead of deleting it.

The API server proxies `/apis/subresources.kubevirt.io/v1/...` here through an APIService
whose Service is `ExternalName: localhost` (the default, non-endpoint service resolver dials
`https://localhost:<APIService port>`). TLS is a throwaway self-signed certificate and the
APIService skips verification; the user arrives in X-Remote-User (not verified).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from ._kube import APISERVICES, NAMESPACES, SERVICES, VMIS, ApiError, JsonObj, Kube
from ._tls import self_signed
from .api_errors import Reply, bad_request, conflict, internal, not_found, status_error
from .console import PLAIN, serial_console, serial_of, stream_refusal, vnc_server
from .faults import Faults
from .guest import Guest
from .lifecycle import Lifecycle
from .node import KubeVirtEndpoints
from .portforward import dial_guest
from .screen import screenshot
from .volumes import Volumes

GROUP, VERSIONS = "subresources.kubevirt.io", ("v1", "v1alpha3")
SERVICE_NAMESPACE, SERVICE_NAME = "kubevirt", "virt-api"
APISERVICE_NAME = f"v1.{GROUP}"
VM_SUBS = {
    "start": "update",
    "stop": "update",
    "restart": "update",
    "addvolume": "update",
    "removevolume": "update",
}
VMI_SUBS = {
    "pause": "update",
    "unpause": "update",
    "softreboot": "update",
    "addvolume": "update",
    "removevolume": "update",
    "guestosinfo": "get",
    "userlist": "get",
    "filesystemlist": "get",
    "console": "get",
    "vnc": "get",
}
GUEST_GETS = ("guestosinfo", "userlist", "filesystemlist")
STREAMS = ("console", "vnc", "portforward")  # websocket subresources


def no_route() -> Reply:
    """go-restful's 404 for a path virt-api has no route for."""
    return status_error(404, "NotFound", "the server could not find the requested resource")


def _upgrading(request: web.Request) -> bool:
    return "upgrade" in request.headers.get("Connection", "").lower()


def _respond(reply: Reply) -> web.Response:
    if isinstance(reply.body, dict):
        return web.json_response(reply.body, status=reply.status)
    if isinstance(reply.body, str):
        return web.Response(status=reply.status, text=reply.body, content_type="text/plain")
    return web.Response(status=reply.status)


@dataclass(frozen=True)
class SubresourceCall:
    """One call as the simulator received it (after the aggregator)."""

    method: str
    path: str
    namespace: str
    resource: str  # "virtualmachines" or "virtualmachineinstances"
    name: str
    subresource: str
    body: JsonObj | None
    user: str
    started: float  # time.monotonic()
    duration: float
    status: int


def resource_list(version: str) -> JsonObj:
    """The APIResourceList the availability controller and discovery read."""
    resources = [
        {
            "name": f"{plural}/{sub}",
            "singularName": "",
            "namespaced": True,
            "kind": kind,
            "verbs": [verb],
        }
        for plural, kind, subs in (
            ("virtualmachines", "VirtualMachine", VM_SUBS),
            ("virtualmachineinstances", "VirtualMachineInstance", VMI_SUBS),
        )
        for sub, verb in subs.items()
    ]
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{GROUP}/{version}",
        "resources": resources,
    }


def api_group() -> JsonObj:
    """The APIGroup document for subresources.kubevirt.io."""
    versions = [{"groupVersion": f"{GROUP}/{v}", "version": v} for v in VERSIONS]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": GROUP,
        "versions": versions,
        "preferredVersion": versions[0],
    }


class SubresourceServer:
    """Serves the subresource API on 127.0.0.1:<free port> and registers it as an APIService."""

    def __init__(
        self,
        kube: Kube,
        guest: Callable[[str, str], Guest],
        faults: Faults,
        forward_to: KubeVirtEndpoints | None = None,
        report_interval: float = 1.0,
    ) -> None:
        self.kube, self.guest, self.faults, self.forward_to = kube, guest, faults, forward_to
        self._session: aiohttp.ClientSession | None = None
        self.lifecycle = Lifecycle(kube, guest, report_interval)
        self.volumes = Volumes(kube)
        self.calls: list[SubresourceCall] = []
        self.port = 0
        self.discovery_hits = 0
        self._runner: web.AppRunner | None = None
        self._listen: socket.socket | None = None
        # Every accepted socket and the task serving it, so stop() can close them all: the API
        # server opens connections at any moment (proxying, availability checks), and one left in
        # its TLS handshake or in keep-alive would outlive the test's event loop.
        self._conns: dict[socket.socket, asyncio.Task[None]] = {}
        self._transports: list[asyncio.Transport] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    async def start(self) -> None:
        """Listen with TLS on a free loopback port."""
        self._tmp = tempfile.TemporaryDirectory(prefix="kubevirt-sim-")
        cert, key = self_signed(Path(self._tmp.name), f"{SERVICE_NAME}.{SERVICE_NAMESPACE}.svc")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        app = web.Application()
        if self.forward_to is not None:
            forward = self.forward_to
            client = ssl.create_default_context(cafile=str(forward.ca))
            client.load_cert_chain(str(forward.front_proxy_cert), str(forward.front_proxy_key))
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client))
            app.router.add_get(f"/apis/{GROUP}/{{version}}", self._forward_discovery)
        else:
            app.router.add_get("/apis", self._group_list)
            app.router.add_get(f"/apis/{GROUP}", self._group)
            app.router.add_get(f"/apis/{GROUP}/{{version}}", self._resources)
            app.router.add_get("/healthz", self._ok)
        one = f"/apis/{GROUP}/{{version}}/namespaces/{{namespace}}/{{resource}}/{{name}}"
        app.router.add_route("*", one + "/{sub}", self._dispatch)
        # virt-api's portforward: .../portforward/{port} and .../portforward/{port}/{protocol}
        app.router.add_route("*", one + "/{sub:portforward}/{port}", self._dispatch)
        app.router.add_route("*", one + "/{sub:portforward}/{port}/{protocol}", self._dispatch)
        app.router.add_get(one + "/{sub:vnc/screenshot}", self._screenshot)
        if self.forward_to is not None:
            app.router.add_route("*", "/{tail:.*}", self._forward_any)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._listen = sock
        # A plain reader callback, not a task awaiting sock_accept(): cancelling such a task
        # after the kernel handed over a connection, but before the task resumed, drops that
        # socket unclosed. Here the accept and the bookkeeping happen in one synchronous step.
        asyncio.get_running_loop().add_reader(sock.fileno(), self._accept, sock, ctx)

    def _accept(self, sock: socket.socket, ctx: ssl.SSLContext) -> None:
        try:
            conn, _ = sock.accept()
        except (BlockingIOError, InterruptedError):
            return  # another wakeup took it
        conn.setblocking(False)
        self._forget_closed()
        self._conns[conn] = asyncio.create_task(self._serve(conn, ctx))

    def _forget_closed(self) -> None:
        self._conns = {c: t for c, t in self._conns.items() if c.fileno() != -1}
        self._transports = [t for t in self._transports if not t.is_closing()]

    async def _serve(self, conn: socket.socket, ctx: ssl.SSLContext) -> None:
        assert self._runner is not None and self._runner.server is not None
        try:
            transport, _ = await asyncio.get_running_loop().connect_accepted_socket(
                self._runner.server, conn, ssl=ctx, ssl_handshake_timeout=10
            )
            self._transports.append(transport)
        except (TimeoutError, OSError):
            conn.close()  # a client that gave up during the handshake

    async def stop(self) -> None:
        """Stop listening, close every accepted connection and wait until its socket is closed."""
        if self._listen is not None:
            asyncio.get_running_loop().remove_reader(self._listen.fileno())
            self._listen.close()
            self._listen = None
        if self._runner is not None:
            await self._runner.cleanup()  # closes the connections whose handshake finished
            self._runner = None
        # Handshakes still in progress: cancelling closes their transport.
        tasks = [t for t in self._conns.values() if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # No graceful TLS close: a peer that never answers close_notify would keep it open.
        for transport in self._transports:
            transport.abort()
        self._transports.clear()
        # A transport closes its socket one loop turn after abort(); wait for that, bounded.
        for _ in range(200):
            if all(conn.fileno() == -1 for conn in self._conns):
                break
            await asyncio.sleep(0.01)
        for conn in self._conns:
            conn.close()  # belt and braces: a socket no transport will close any more
        self._conns.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def register(self, wait_seconds: float) -> None:
        """Create namespace, ExternalName Service and APIService; wait until proxying works."""
        for res, ns, body in (
            (NAMESPACES, None, {"metadata": {"name": SERVICE_NAMESPACE}}),
            (
                SERVICES,
                SERVICE_NAMESPACE,
                {
                    "metadata": {"name": SERVICE_NAME, "namespace": SERVICE_NAMESPACE},
                    "spec": {"type": "ExternalName", "externalName": "localhost"},
                },
            ),
        ):
            try:
                await self.kube.create(res, ns, {"apiVersion": "v1", **body})
            except ApiError as err:
                if err.status != 409:
                    raise
        spec: JsonObj = {
            "group": GROUP,
            "version": "v1",
            "insecureSkipTLSVerify": True,
            "groupPriorityMinimum": 1000,
            "versionPriority": 15,
            "service": {"namespace": SERVICE_NAMESPACE, "name": SERVICE_NAME, "port": self.port},
        }
        current = await self.kube.get_or_none(APISERVICES, None, APISERVICE_NAME)
        if current is None:
            await self.kube.create(
                APISERVICES,
                None,
                {
                    "apiVersion": "apiregistration.k8s.io/v1",
                    "kind": "APIService",
                    "metadata": {"name": APISERVICE_NAME},
                    "spec": spec,
                },
            )
        else:  # a merge patch: a PUT of what we read races the aggregator's status writes
            patch = {"spec": {**spec, "caBundle": None}}
            await self.kube.merge_patch(APISERVICES, None, APISERVICE_NAME, patch)
        await self._wait_proxied(wait_seconds)

    async def _wait_proxied(self, wait_seconds: float) -> None:
        # Available=True may still describe an older registration: wait for a request that
        # went through the API server and really reached this server.
        deadline = time.monotonic() + wait_seconds
        while True:
            before = self.discovery_hits
            try:
                await self.kube.request("GET", f"/apis/{GROUP}/v1")
                if self.discovery_hits > before:
                    return
            except ApiError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"APIService {APISERVICE_NAME} did not become available")
            await asyncio.sleep(0.1)

    async def unregister(self) -> None:
        """Delete the APIService so discovery (GC, namespace deletion) is not left broken."""
        if self.forward_to is not None:
            # Real KubeVirt: hand the APIService back to virt-api, which virt-controller uses too.
            # A merge patch, not a PUT of what we read: the aggregator writes the APIService's
            # status all the time, and a PUT carrying an older resourceVersion got 409 (CI).
            handback = {
                "insecureSkipTLSVerify": None,
                "caBundle": base64.b64encode(self.forward_to.ca.read_bytes()).decode(),
                "service": {"port": self.forward_to.api_port},
            }
            try:
                await self.kube.merge_patch(APISERVICES, None, APISERVICE_NAME, {"spec": handback})
            except ApiError as err:
                if err.status != 404:
                    raise
            return
        try:
            await self.kube.delete(APISERVICES, None, APISERVICE_NAME)
        except ApiError:
            pass

    async def _ok(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _group_list(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {"kind": "APIGroupList", "apiVersion": "v1", "groups": [api_group()]}
        )

    async def _group(self, _request: web.Request) -> web.Response:
        return web.json_response(api_group())

    async def _resources(self, request: web.Request) -> web.Response:
        version = request.match_info["version"]
        if version not in VERSIONS:
            raise web.HTTPNotFound()
        self.discovery_hits += 1
        return web.json_response(resource_list(version))

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        info = request.match_info
        ns, resource, name, sub = info["namespace"], info["resource"], info["name"], info["sub"]
        if sub in STREAMS and self.forward_to is not None and _upgrading(request):
            return await self._relay_stream(request, started)
        if sub in STREAMS and self.forward_to is None:
            return await self._stream(request, started)
        raw = await request.read()
        body: JsonObj | None = None
        reply: Reply | None = None
        if raw.strip():
            try:
                decoded = json.loads(raw)
                body = decoded if isinstance(decoded, dict) else None
                if body is None:
                    raise ValueError("expected a JSON object")
            except ValueError as err:
                reply = bad_request(f"Can not unmarshal Request body to struct, error: {err}")
        delay = self.faults.delay_for(sub)
        if delay > 0:
            await asyncio.sleep(delay)  # injected server latency, not a test wait
        if reply is None:
            if self.forward_to is not None:
                reply = await self._forwarded(request, resource, name, sub, raw)
            else:
                reply = await self._handle(request.method, ns, resource, name, sub, body)
        self.calls.append(
            SubresourceCall(
                request.method,
                request.path,
                ns,
                resource,
                name,
                sub,
                body,
                request.headers.get("X-Remote-User", ""),
                started,
                time.monotonic() - started,
                reply.status,
            )
        )
        return _respond(reply)

    async def _stream(self, request: web.Request, started: float) -> web.StreamResponse:
        """A console or VNC websocket as virt-api serves it: the VMI's checks, then the
        guest's end (what virt-api would dial on virt-handler) on the upgraded connection."""
        info = request.match_info
        ns, name, sub = info["namespace"], info["name"], info["sub"]
        reply: Reply | None = None
        if info["resource"] != "virtualmachineinstances" or request.method != "GET":
            reply = no_route()
        elif (injected := self.faults.take_failure(sub)) is not None:
            reply = self._injected(injected.status, injected.message, info["resource"], name, sub)
        else:
            vmi = await self.kube.get_or_none(VMIS, ns, name)
            if vmi is None:
                reply = not_found("virtualmachineinstance", name)
            else:
                reply = stream_refusal(vmi, sub)
        dialed = None
        if reply is None and sub == "portforward":  # virt-api dials before it upgrades
            got = await dial_guest(vmi or {}, info["port"], info.get("protocol", "tcp"))
            reply, dialed = (got, None) if isinstance(got, Reply) else (None, got)
        if reply is None and not _upgrading(request):
            # gorilla/websocket's Upgrade error, as virt-api returns it (400).
            reply = bad_request(
                "websocket: the client is not using the websocket protocol: "
                "'upgrade' token not found in 'Connection' header"
            )
        if reply is not None:
            if dialed is not None:
                dialed.close()
            self._record(request, started, reply.status)
            return _respond(reply)
        self._record(request, started, 101)
        if dialed is not None:
            return await dialed.carry(request)
        log = serial_of(self.guest(ns, name), vmi or {})
        if sub == "vnc":
            return await vnc_server(request, log)
        return await serial_console(request, log)

    async def _screenshot(self, request: web.Request) -> web.StreamResponse:
        """GET vnc/screenshot: a PNG of the display (virt-api's checks first: vmiHasDisplay),
        or with real KubeVirt what virt-api answers, bytes as they are."""
        started = time.monotonic()
        if self.forward_to is not None:
            status, body, kind = await self._relay_bytes(request)
            self._record(request, started, status)
            return web.Response(status=status, body=body, headers={"Content-Type": kind})
        info = request.match_info
        reply: Reply | None = None
        vmi = await self.kube.get_or_none(VMIS, info["namespace"], info["name"])
        if info["resource"] != "virtualmachineinstances":
            reply = no_route()
        elif vmi is None:
            reply = not_found("virtualmachineinstance", info["name"])
        elif (refused := stream_refusal(vmi, "vnc")) is not None:
            # virt-api's screenshot handler writes any validation error as a 500 in plain
            # text (vnc.go VNCScreenshotRequestHandler, go-restful WriteError), not the
            # console's and vnc's 400 JSON.
            said = refused.body if isinstance(refused.body, dict) else {}
            self._record(request, started, 500)
            return web.Response(status=500, text=str(said.get("message") or refused.body))
        if reply is not None:
            self._record(request, started, reply.status)
            return _respond(reply)
        self._record(request, started, 200)
        return web.Response(status=200, body=screenshot(), content_type="image/png")

    async def _handle(
        self, method: str, ns: str, resource: str, name: str, sub: str, body: JsonObj | None
    ) -> Reply:
        table: dict[str, Callable[[], Awaitable[Reply]]]
        h, v = self.lifecycle, self.volumes
        if resource == "virtualmachines":
            table = {
                "start": lambda: h.start(ns, name, body),
                "stop": lambda: h.stop(ns, name, body),
                "restart": lambda: h.restart(ns, name, body),
                "addvolume": lambda: v.add_volume(ns, name, body, vmi_level=False),
                "removevolume": lambda: v.remove_volume(ns, name, body, vmi_level=False),
            }
        elif resource == "virtualmachineinstances":
            table = {
                "pause": lambda: h.pause(ns, name, body),
                "unpause": lambda: h.unpause(ns, name, body),
                "softreboot": lambda: h.softreboot(ns, name, body),
                "addvolume": lambda: v.add_volume(ns, name, body, vmi_level=True),
                "removevolume": lambda: v.remove_volume(ns, name, body, vmi_level=True),
                "guestosinfo": lambda: h.guest_get(ns, name, "guestosinfo"),
                "userlist": lambda: h.guest_get(ns, name, "userlist"),
                "filesystemlist": lambda: h.guest_get(ns, name, "filesystemlist"),
            }
        else:
            table = {}
        verb_ok = method == ("GET" if sub in GUEST_GETS else "PUT")
        if sub not in table or not verb_ok:
            return no_route()
        injected = self.faults.take_failure(sub)
        if injected is not None:
            return self._injected(injected.status, injected.message, resource, name, sub)
        try:
            return await table[sub]()
        except ApiError as err:
            return Reply(500, str(err)) if sub in GUEST_GETS else internal(str(err))

    async def _forwarded(
        self, request: web.Request, resource: str, name: str, sub: str, raw: bytes
    ) -> Reply:
        """An injected fault, else virt-api's own answer."""
        injected = self.faults.take_failure(sub)
        if injected is not None:
            return self._injected(injected.status, injected.message, resource, name, sub)
        status, text, content_type = await self._relay(request, raw)
        if "json" in content_type:
            try:
                decoded = json.loads(text) if text else None
                return Reply(status, decoded if isinstance(decoded, dict) else text or None)
            except ValueError:
                pass
        return Reply(status, text or None)

    def _upstream(self, request: web.Request) -> tuple[str, CIMultiDict[str]]:
        """virt-api's URL for the request, and the identity headers the aggregator sends:
        every value of a repeated one (X-Remote-Group comes once per group)."""
        assert self.forward_to is not None
        headers: CIMultiDict[str] = CIMultiDict(
            (k, v) for k, v in request.headers.items() if k.lower().startswith("x-remote-")
        )
        return f"https://127.0.0.1:{self.forward_to.api_port}{request.path_qs}", headers

    async def _relay(self, request: web.Request, raw: bytes) -> tuple[int, str, str]:
        """Send the request on to virt-api as the aggregator would; (status, body, type)."""
        assert self._session is not None
        url, headers = self._upstream(request)
        if request.headers.get("Content-Type"):
            headers["Content-Type"] = request.headers["Content-Type"]
        headers["Accept"] = request.headers.get("Accept", "application/json")
        async with self._session.request(
            request.method, url, data=raw or None, headers=headers
        ) as reply:
            return reply.status, await reply.text(), reply.headers.get("Content-Type", "")

    async def _relay_bytes(self, request: web.Request) -> tuple[int, bytes, str]:
        """A GET relayed to virt-api whose answer is not text (a PNG): (status, body, type)."""
        assert self._session is not None
        url, headers = self._upstream(request)
        async with self._session.get(url, headers=headers) as reply:
            kind = reply.headers.get("Content-Type", "application/octet-stream")
            return reply.status, await reply.read(), kind

    async def _relay_stream(self, request: web.Request, started: float) -> web.StreamResponse:
        """A console or VNC websocket, relayed to virt-api as the aggregator's upgrade-aware
        proxy does (bytes both ways until either side closes); recorded like any call."""
        assert self._session is not None
        url, headers = self._upstream(request)
        try:
            upstream = await self._session.ws_connect(url, headers=headers, protocols=(PLAIN,))
        except aiohttp.WSServerHandshakeError as err:
            status, text, kind = await self._relay(request, b"")
            self._record(request, started, status)
            return web.Response(status=status or err.status, text=text, content_type=kind or None)
        self._record(request, started, 101)
        downstream = web.WebSocketResponse(protocols=(PLAIN,))
        await downstream.prepare(request)

        async def pipe(
            src: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
            dst: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
        ) -> None:
            async for message in src:
                if message.type == aiohttp.WSMsgType.BINARY:
                    await dst.send_bytes(message.data)
                elif message.type == aiohttp.WSMsgType.TEXT:
                    await dst.send_str(message.data)
                else:
                    break

        tasks = [
            asyncio.create_task(pipe(downstream, upstream)),
            asyncio.create_task(pipe(upstream, downstream)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await upstream.close()
            await downstream.close()
        return downstream

    def _record(self, request: web.Request, started: float, status: int) -> None:
        info = request.match_info
        self.calls.append(
            SubresourceCall(
                request.method,
                request.path,
                info["namespace"],
                info["resource"],
                info["name"],
                info["sub"],
                None,
                request.headers.get("X-Remote-User", ""),
                started,
                time.monotonic() - started,
                status,
            )
        )

    async def _forward_discovery(self, request: web.Request) -> web.Response:
        self.discovery_hits += 1
        return await self._forward_any(request)

    async def _forward_any(self, request: web.Request) -> web.Response:
        status, text, content_type = await self._relay(request, await request.read())
        kind = content_type.split(";")[0] or "text/plain"
        return web.Response(status=status, text=text, content_type=kind)

    @staticmethod
    def _injected(status: int, message: str, resource: str, name: str, sub: str) -> Reply:
        if sub in GUEST_GETS:
            return Reply(status, message)
        if status == 409:
            return conflict(resource.removesuffix("s"), name, message)
        if status >= 500:
            return internal(message)
        return status_error(status, "BadRequest" if status == 400 else "Unknown", message)
