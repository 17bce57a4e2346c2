"""A local API server for the CLI's tests: a real HTTP server on 127.0.0.1, in a thread of
its own (the CLI runs its own event loop, under CliRunner or asyncio.run), that answers as
the API server and virt-api behind it would. The CLI reaches it through a kubeconfig, with
nothing of its own faked: REST, the websockets of the console, VNC and port-forward, and
virt-api's plain answers (the guest agent's, a screenshot, a soft reboot).

It stores objects (Wukongs and VMIs) to GET, one or a namespace's (any other collection is
empty), and serves every subresource of every VMI as
virt-api would once its checks pass (those are the simulator's and the integration
tests'): a websocket says which subresource it is, then echoes. Every request is recorded.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
import yaml
from aiohttp import web

from wukong.adapters.kube import api_path
from wukong.api import names
from wukong.api.kinds import VMI
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


def _path(obj: JsonObj) -> str:
    meta = obj["metadata"]
    if obj.get("kind") == VMI.kind:
        return api_path(VMI.group, VMI.version, VMI.plural, meta["namespace"], meta["name"])
    return api_path(names.GROUP, names.VERSION, names.PLURAL, meta["namespace"], meta["name"])


class ApiServer:
    """`with ApiServer(tmp_path, wukong, vmi) as server:` serves them until the block ends;
    `server.kubeconfig` reaches it."""

    def __init__(self, directory: Path, *objects: JsonObj) -> None:
        self.objects = {_path(obj): obj for obj in objects}
        self.requests: list[tuple[str, str]] = []
        self.kubeconfig = str(directory / "kubeconfig")
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

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
                async for message in ws:
                    if message.type is aiohttp.WSMsgType.BINARY:
                        await ws.send_bytes(message.data)
                return ws
            if sub == "vnc/screenshot":
                return web.Response(body=SCREEN, content_type="image/png")
            if sub == "softreboot":
                return web.Response(status=202)
            return web.json_response(AGENT.get(sub, {}))
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

    def __enter__(self) -> Self:
        started = threading.Event()
        runners: list[web.AppRunner] = []

        def serve() -> None:
            loop = self._loop = asyncio.new_event_loop()

            async def up() -> None:
                app = web.Application()
                app.router.add_route("*", "/{tail:.*}", self._answer)
                runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
                await runner.setup()
                await web.TCPSite(runner, "127.0.0.1", 0).start()
                runners.append(runner)
                self.port = int(runner.addresses[0][1])

            loop.run_until_complete(up())
            started.set()
            loop.run_forever()
            loop.run_until_complete(runners[0].cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="local-apiserver", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the local API server did not start")
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "c",
        }
        Path(self.kubeconfig).write_text(yaml.safe_dump(config))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._loop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
