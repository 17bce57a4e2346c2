"""CDI's `datavolume-mutate` webhook, served: the API server asks it about every create and
update of a DataVolume in the simulator's namespace, and it answers as CDI does
(`cdi_admission.admit`).

A small HTTPS server on 127.0.0.1:<free port> with a throwaway self-signed certificate, and a
MutatingWebhookConfiguration that names it by URL with that certificate as its CA bundle,
`failurePolicy: Fail` as CDI's. Several simulators (one per test namespace) share an API
server and come and go all the time: each registers its own configuration, named after its
namespace and selecting only that namespace, replaces a leftover of the same name on start
and deletes its own on stop. A configuration left pointing at a dead port would refuse every
later DataVolume write in its namespace.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import tempfile
import time
from pathlib import Path

from aiohttp import web

from ._kube import DATAVOLUMES, NAMESPACES, ApiError, JsonObj, Kube, Resource
from ._serve import stop_serving
from ._tls import self_signed
from .cdi import DATASOURCES
from .cdi_admission import Answer, Lookups, admit, clone_namespace, data_source_wanted, refused
from .objects import deleting

CONFIGS = Resource(
    "admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", namespaced=False
)
WEBHOOK = "datavolume-mutate.cdi.kubevirt.io"  # the name the API server's refusals quote
HOST, PATH = "127.0.0.1", "/datavolume-mutate"
# CDI waits 30 s; a simulator that hangs should fail a test sooner than that.
TIMEOUT_SECONDS = 10
# A dry-run create the webhook refuses (no such DataSource): once it reaches this server, the
# API server uses the configuration. Nothing is stored.
PROBE_NAME = "sim-cdi-webhook-probe"


def configuration_name(namespace: str | None) -> str:
    """One configuration per simulator namespace; a cluster-wide simulator's has none in it."""
    return f"sim-cdi-datavolume-mutate-{namespace}" if namespace else "sim-cdi-datavolume-mutate"


def configuration(namespace: str | None, port: int, ca: bytes) -> JsonObj:
    """CDI's `cdi-api-datavolume-mutate` (operator/resources/cluster/apiserver.go), reached by
    URL instead of through CDI's Service, for `namespace` only (every namespace if None)."""
    webhook: JsonObj = {
        "name": WEBHOOK,
        "clientConfig": {
            "url": f"https://{HOST}:{port}{PATH}",
            "caBundle": base64.b64encode(ca).decode(),
        },
        "rules": [
            {
                "operations": ["CREATE", "UPDATE"],
                "apiGroups": ["cdi.kubevirt.io"],
                "apiVersions": ["v1beta1"],
                "resources": ["datavolumes"],
                "scope": "*",
            }
        ],
        "failurePolicy": "Fail",
        "matchPolicy": "Exact",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": TIMEOUT_SECONDS,
        "reinvocationPolicy": "Never",
    }
    if namespace:
        selected = {"kubernetes.io/metadata.name": namespace}
        webhook["namespaceSelector"] = {"matchLabels": selected}
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": configuration_name(namespace)},
        "webhooks": [webhook],
    }


async def look_up(kube: Kube, dv: JsonObj) -> Lookups:
    """Read what CDI reads for `dv`: its DataSource, then the namespace of what it clones."""
    if deleting(dv):
        return Lookups()  # allowed without a look
    ref = data_source_wanted(dv)
    data_source = await kube.get_or_none(DATASOURCES, *ref) if ref is not None else None
    namespace = clone_namespace(dv, data_source)
    found = await kube.get_or_none(NAMESPACES, None, namespace) if namespace else None
    return Lookups(data_source=data_source, source_namespace=found)


def review_answer(request: JsonObj, answer: Answer) -> JsonObj:
    """The AdmissionReview (v1) sent back: no patch (CDI's clone token is not modelled)."""
    response: JsonObj = {"uid": request.get("uid", ""), "allowed": answer.allowed}
    if not answer.allowed:
        response["status"] = {"code": answer.code, "message": answer.message}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


class DataVolumeMutateWebhook:
    """The webhook's server and its MutatingWebhookConfiguration, for one namespace."""

    def __init__(self, kube: Kube, namespace: str | None) -> None:
        self.kube, self.namespace = kube, namespace
        self.name = configuration_name(namespace)
        self.port = 0
        self.reviews = 0  # AdmissionReviews answered
        self._runner: web.AppRunner | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    async def start(self, wait_seconds: float) -> None:
        """Serve, register (replacing a leftover of the same name), and return once the API
        server calls this server."""
        self._tmp = tempfile.TemporaryDirectory(prefix="kubevirt-sim-cdi-")
        cert, key = self_signed(Path(self._tmp.name), HOST)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        app = web.Application()
        app.router.add_post(PATH, self._review)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((HOST, 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock, ssl_context=ctx).start()
        body = configuration(self.namespace, self.port, cert.read_bytes())
        try:
            await self.kube.create(CONFIGS, None, body)
        except ApiError as err:
            if err.status != 409:
                raise
            # A leftover (a simulator of this namespace that did not stop): ours replaces it.
            await self.kube.merge_patch(CONFIGS, None, self.name, {"webhooks": body["webhooks"]})
        await self._wait_called(wait_seconds)

    async def _wait_called(self, wait_seconds: float) -> None:
        # The API server picks a new configuration up through its own watch, a moment later:
        # until then a DataVolume write would pass unreviewed.
        probe = {
            "apiVersion": "cdi.kubevirt.io/v1beta1",
            "kind": "DataVolume",
            "metadata": {"name": PROBE_NAME},
            "spec": {
                "sourceRef": {"kind": "DataSource", "name": PROBE_NAME},
                "storage": {"resources": {"requests": {"storage": "1Gi"}}},
            },
        }
        path = DATAVOLUMES.path(self.namespace or "default")
        deadline = time.monotonic() + wait_seconds
        while True:
            before = self.reviews
            try:
                await self.kube.request("POST", path, probe, query={"dryRun": "All"})
            except ApiError as err:
                if err.status == 404 and err.reason == "NotFound" and self.reviews == before:
                    return  # no such namespace (yet): nothing to write there, nothing to wait for
            if self.reviews > before:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the API server does not call webhook {self.name}")
            await asyncio.sleep(0.05)

    async def unregister(self) -> None:
        """Delete the configuration; `close` stops serving, a moment later."""
        await self.kube.delete(CONFIGS, None, self.name)

    async def close(self) -> None:
        """Stop serving. Last in the simulator's stop: by then the API server's watch has
        seen the configuration go (a DataVolume write before that would fail calling a
        webhook that is gone)."""
        if self._runner is not None:
            await stop_serving(self._runner)  # the API server's connections aborted, not left open
            self._runner = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def _review(self, request: web.Request) -> web.Response:
        review: JsonObj = await request.json()
        asked: JsonObj = review.get("request") or {}
        dv: JsonObj = asked.get("object") or {}
        meta = dv.setdefault("metadata", {})
        meta["namespace"] = meta.get("namespace") or asked.get("namespace") or ""
        try:
            answer = admit(dv, await look_up(self.kube, dv))
        except ApiError as err:  # CDI: any other error of a lookup, as its text, 400
            answer = refused(err.body_message)
        self.reviews += 1
        return web.json_response(review_answer(asked, answer))
