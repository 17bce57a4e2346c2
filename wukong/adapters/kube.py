"""One thin JSON client over kubernetes_asyncio's transport.

Every adapter goes through `Kube`: it sends raw JSON (no generated models, which are slow
to build and lossy for custom resources), maps HTTP status codes to `wukong.errors` in one
place, and counts requests by verb and code for `/metrics`. It never retries: the work
queue does.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import quote

import aiohttp
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from wukong.adapters.client import field_manager
from wukong.api import JsonObj as JsonObj  # console.connect imports it from here
from wukong.errors import NOT_KUBERNETES, Broken, Conflict, Invalid, NotFound, ServerError, classify

RequestHook = Callable[[str, int, str], None]
"""(verb, HTTP status or 0, resource such as `virtualmachines/start`) of each request."""

MERGE_PATCH: Final = "application/merge-patch+json"
JSON_PATCH: Final = "application/json-patch+json"
TIMEOUT_SECONDS: Final = 30.0
# The API server's answer to a patch whose `metadata.uid` is not the object's: 422
# `<kind> "<name>" is invalid: metadata.uid: Invalid value: "<uid>": field is immutable`
# (apiserver rest.BeforeUpdate, ValidateObjectMetaAccessorUpdate), before any validating
# webhook runs (checked on v1.37.2). Not a 409: the patch handler's own uid Conflict is only
# for an object that does not exist, which is answered 404 first.
UID_FIELD: Final = "metadata.uid"
# The API server's answer to a JSON patch an operation of which does not apply (a failed
# `test`, a `remove` of a key that is not there, an `add` under a parent that is not there):
# 422 Invalid with these words alone, whatever went wrong (apiserver handlers/patch.go
# `applyJSPatch` -> apimachinery `NewGenericServerResponse`: json-patch's own message is
# lost). A patched object its schema refuses is a 422 too, but names the object and fields.
NOT_APPLIED: Final = "the server rejected our request due to an error in our request"


def api_path(
    group: str, version: str, plural: str, namespace: str | None = None, name: str | None = None
) -> str:
    """The REST path of a collection or an object (core group when `group` is empty). The
    namespace and name are escaped: whatever they hold, they stay one path segment each."""
    base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    if namespace:
        base += f"/namespaces/{quote(namespace, safe='')}"
    base += f"/{plural}"
    return f"{base}/{quote(name, safe='')}" if name else base


def resource_of(path: str) -> str:
    """The resource a REST path names, with its subresource: `/apis/g/v/namespaces/n/
    virtualmachines/vm/start` is `virtualmachines/start`, `/api/v1/namespaces/n` `namespaces`."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) > 2:
        rest = rest[2:]
    if not rest:
        return ""
    return rest[0] if len(rest) < 3 else f"{rest[0]}/{rest[2]}"


def abandon(response: aiohttp.ClientResponse) -> None:
    """Drop a streamed response, read or not, and its connection. Abort, not close: a stream
    cut short (Ctrl-C, a watch given up) must not leave a TLS shutdown in flight when the
    event loop ends, which leaks the socket (ResourceWarning)."""
    connection = response.connection
    if connection is not None and connection.transport is not None:
        connection.transport.abort()
    response.close()


# What reading an open stream raises when the connection under it breaks: a body cut mid-way
# (ClientPayloadError), a reset or a closed server (ClientConnectionError, OSError), and
# the read timeout (SocketTimeoutError, a ClientConnectionError and a TimeoutError).
BROKEN: Final = (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, OSError)


class Body:
    """The body of a streamed answer (`Kube.stream`), read as aiohttp's reader is; a read
    that the connection's breaking ends raises `Broken`, a `ServerError`, as the opening's
    transport errors are (a screenshot cut mid-way was a ClientPayloadError traceback, CLI
    audit of session 48: every reader had to remember it)."""

    def __init__(self, content: aiohttp.StreamReader, path: str) -> None:
        self._content, self._path = content, path

    async def _read(self, read: Callable[[], Awaitable[bytes]]) -> bytes:
        try:
            return await read()
        except BROKEN as exc:
            raise Broken(exc, path=self._path) from exc

    async def read(self) -> bytes:
        """The rest of the body, to its end."""
        return await self._read(self._content.read)

    def iter_any(self) -> AsyncIterator[bytes]:
        """Each chunk as it arrives, until the end."""
        return _Chunks(self)


class _Chunks:
    def __init__(self, body: Body) -> None:
        self._body = body

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._body._read(self._body._content.readany)
        if not chunk:
            raise StopAsyncIteration
        return chunk


class Kube:
    """Raw JSON requests to the API server through one shared `ApiClient`."""

    _writer: Mapping[str, str] = MappingProxyType({})  # fieldManager query of writes

    def __init__(
        self,
        api: ApiClient,
        *,
        on_request: RequestHook | None = None,
        connect_timeout: float | None = None,
    ) -> None:
        self.api = api
        self._on_request = on_request
        # A bound on opening a connection (TCP and the TLS handshake) inside the request's
        # TIMEOUT_SECONDS: the CLI's, as kubectl's TLSHandshakeTimeout; the operator's None.
        self.connect_timeout = connect_timeout
        manager = field_manager(api)
        # Writes name their author (managedFields, audit); `identify` set the agent.
        if manager:
            self._writer = MappingProxyType({"fieldManager": manager})

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> JsonObj:
        """Send one request; return the decoded JSON body ({} when empty or not JSON)."""
        # `*/*` too, as client-go sends: virt-api's lifecycle routes (start, stop, restart,
        # pause, ...) declare no content type they produce, and answer a plain
        # `Accept: application/json` with 406 (docs/kubevirt-fidelity.md).
        headers = {"Accept": "application/json, */*", "Content-Type": content_type}
        try:
            resp = await self.api.call_api(
                path,
                method,
                query_params=list((query or {}).items()),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=aiohttp.ClientTimeout(
                    total=TIMEOUT_SECONDS, sock_connect=self.connect_timeout
                ),
            )
            async with resp:
                text = await resp.text()
                status = resp.status
                kind = resp.content_type
        except ApiException as exc:  # raised by the transport before any response
            self._count(method, 0, path)
            raise ServerError(0, "TransportError", str(exc.reason), path=path) from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self._count(method, 0, path)
            raise ServerError(0, "TransportError", repr(exc), path=path) from exc
        self._count(method, status, path)
        if status >= 400:
            raise classify(status, text, path)
        if not text:
            return {}
        try:
            doc = json.loads(text)
        except ValueError:
            if "html" in kind:  # a login page or a proxy: never a Kubernetes API's answer
                raise ServerError(
                    status, NOT_KUBERNETES, f"the answer was {kind}", path=path
                ) from None
            return {"raw": text}
        return doc if isinstance(doc, dict) else {"items": doc}

    @asynccontextmanager
    async def stream(self, path: str, query: Sequence[tuple[str, str]]) -> AsyncIterator[Body]:
        """GET a body the server streams for as long as it has more (a pod's log with
        `follow`): its reader, with no read timeout, open until the block ends. Errors map
        as `request`'s do; a body that breaks off while it is read is `Broken`."""
        try:
            resp = await self.api.call_api(
                path,
                "GET",
                query_params=list(query),
                header_params={"Accept": "*/*"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=aiohttp.ClientTimeout(
                    connect=TIMEOUT_SECONDS, sock_connect=self.connect_timeout, sock_read=None
                ),
            )
        except ApiException as exc:
            self._count("GET", 0, path)
            raise ServerError(0, "TransportError", str(exc.reason), path=path) from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self._count("GET", 0, path)
            raise ServerError(0, "TransportError", repr(exc), path=path) from exc
        self._count("GET", resp.status, path)
        try:
            if resp.status >= 400:
                raise classify(resp.status, await resp.text(), path)
            yield Body(resp.content, path)
        finally:
            abandon(resp)

    def _count(self, method: str, status: int, path: str) -> None:
        if self._on_request is not None:
            self._on_request(method, status, resource_of(path))

    async def get(self, path: str) -> JsonObj:
        """GET one object (only for things no watch covers, e.g. guest-agent calls)."""
        return await self.request("GET", path)

    async def create(self, path: str, obj: JsonObj, *, dry_run: bool = False) -> JsonObj:
        """POST to a collection (`dry_run`: validated and admitted, never stored)."""
        query = {**self._writer, **({"dryRun": "All"} if dry_run else {})}
        return await self.request("POST", path, body=obj, query=query)

    async def merge_patch(
        self, path: str, patch: JsonObj, *, dry_run: bool = False, uid: str | None = None
    ) -> JsonObj:
        """RFC 7386 merge patch (`dry_run`: validated and admitted, never stored). `uid` pins
        it to one incarnation of the object: the patch carries `metadata.uid`, which the API
        server refuses on another object of that name (`UID_FIELD`). That refusal is raised
        as a Conflict, as a stale resourceVersion is: the object changed under the caller,
        who decides again from what it sees now."""
        if uid:
            patch = {**patch, "metadata": {**(patch.get("metadata") or {}), "uid": uid}}
        query = {**self._writer, **({"dryRun": "All"} if dry_run else {})}
        try:
            return await self.request(
                "PATCH", path, body=patch, content_type=MERGE_PATCH, query=query
            )
        except Invalid as error:
            if not uid or UID_FIELD not in error.message:
                raise
            message = f"not the object the patch was decided for (uid {uid}): {error.message}"
            raise Conflict(409, "Conflict", message, path=error.path) from error

    async def json_patch(
        self, path: str, ops: list[JsonObj], *, changed: str = "the object changed meanwhile"
    ) -> JsonObj:
        """RFC 6902 JSON patch (with `test` ops for optimistic concurrency). A patch that does
        not apply (a failed `test`, an operation on a key that is not there) is answered 422
        `NOT_APPLIED` and raised as a Conflict saying `changed`, as a stale resourceVersion
        is: the caller decides again from what it sees now. Any other 422 (a schema or an
        admission policy refusing the patched object) stays `Invalid`."""
        try:
            return await self.request(
                "PATCH", path, body=ops, content_type=JSON_PATCH, query=self._writer
            )
        except Invalid as error:
            if error.status != 422 or error.message != NOT_APPLIED:
                raise
            message = f"{changed}: {error.message}"
            raise Conflict(409, "Conflict", message, path=error.path) from error

    async def replace(self, path: str, obj: JsonObj) -> JsonObj:
        """PUT a whole object (carries its resourceVersion: 409 when stale)."""
        return await self.request("PUT", path, body=obj, query=self._writer)

    async def delete(
        self,
        path: str,
        *,
        uid: str | None = None,
        resource_version: str | None = None,
        propagation: str | None = None,
        dry_run: bool = False,
    ) -> JsonObj:
        """DELETE; a 404 counts as success (already gone). `uid` pins one incarnation;
        `resource_version` one version of it (any later write: a 409, apiserver
        `Preconditions.Check`)."""
        body: JsonObj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        preconditions = {"uid": uid, "resourceVersion": resource_version}
        if pinned := {k: v for k, v in preconditions.items() if v}:
            body["preconditions"] = pinned
        if propagation:
            body["propagationPolicy"] = propagation
        if dry_run:
            body["dryRun"] = ["All"]
        try:
            return await self.request("DELETE", path, body=body)
        except NotFound:
            return {}
