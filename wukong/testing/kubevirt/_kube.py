"""Raw JSON access to the API server, shared by every simulated controller."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import ApiClient, Configuration

from wukong.adapters.client import look_up_environment_once

JsonObj = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class ApiError(Exception):
    """A non-2xx answer from the API server, with its decoded Status body."""

    def __init__(self, status: int, body: JsonObj | str) -> None:
        self.status = status
        self.body = body
        super().__init__(f"{status}: {self.body_message}")

    @property
    def body_message(self) -> str:
        """The Status message, or the body as text."""
        return str(self.body.get("message", "")) if isinstance(self.body, dict) else self.body

    @property
    def reason(self) -> str:
        """The Status reason (Conflict, NotFound, ...) or an empty string."""
        return str(self.body.get("reason", "")) if isinstance(self.body, dict) else ""


@dataclass(frozen=True)
class Resource:
    """A REST collection: group ("" for core), version, plural, namespaced."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        """The REST path of the collection, one object, or one subresource."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace)}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name)}"
        if sub:
            base += f"/{sub}"
        return base


VMS = Resource("kubevirt.io", "v1", "virtualmachines")
VMIS = Resource("kubevirt.io", "v1", "virtualmachineinstances")
DATAVOLUMES = Resource("cdi.kubevirt.io", "v1beta1", "datavolumes")
PVCS = Resource("", "v1", "persistentvolumeclaims")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
SERVICES = Resource("", "v1", "services")
EVENTS = Resource("", "v1", "events")
SECRETS = Resource("", "v1", "secrets")
SECRETS = Resource("", "v1", "secrets")
STORAGECLASSES = Resource("storage.k8s.io", "v1", "storageclasses", namespaced=False)
APISERVICES = Resource("apiregistration.k8s.io", "v1", "apiservices", namespaced=False)


def key_of(obj: JsonObj) -> str:
    """The cache key of an object: "namespace/name", or "name" when cluster-scoped."""
    meta = obj.get("metadata", {})
    ns = meta.get("namespace")
    return f"{ns}/{meta['name']}" if ns else str(meta["name"])


async def load_client(source: str | Path | ApiClient | Configuration) -> ApiClient:
    """A private ApiClient: our watches must not exhaust a caller's connection pool."""
    if isinstance(source, ApiClient):
        cfg = copy.copy(source.configuration)
    elif isinstance(source, Configuration):
        cfg = copy.copy(source)
    else:
        cfg = Configuration()
        await kube_config.load_kube_config(config_file=str(source), client_configuration=cfg)
    cfg.connection_pool_maxsize = 64
    api = ApiClient(cfg)
    look_up_environment_once(api)
    return api


class Kube:
    """Thin JSON client: every call goes to the real API server."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api

    async def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
        client_timeout: aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientResponse:
        headers = {"Accept": "application/json, */*", "Content-Type": content_type}
        resp: aiohttp.ClientResponse = await self.api.call_api(
            path,
            method,
            query_params=list((query or {}).items()),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=client_timeout or aiohttp.ClientTimeout(total=30),
        )
        return resp

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
    ) -> JsonObj:
        """One request; returns the decoded JSON body or raises ApiError."""
        resp = await self._call(method, path, body, content_type, query)
        async with resp:
            text = await resp.text()
        decoded: Any
        try:
            decoded = json.loads(text) if text else {}
        except json.JSONDecodeError:
            decoded = text
        if resp.status >= 300:
            raise ApiError(resp.status, decoded)
        return decoded if isinstance(decoded, dict) else {"raw": decoded}

    @asynccontextmanager
    async def stream(
        self, path: str, query: dict[str, str]
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """An open watch response; the caller reads JSON lines from `.content`."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        resp = await self._call("GET", path, query=query, client_timeout=timeout)
        try:
            if resp.status >= 300:
                text = await resp.text()
                try:
                    body: JsonObj | str = json.loads(text)
                except json.JSONDecodeError:
                    body = text
                raise ApiError(resp.status, body)
            yield resp
        finally:
            # Abort rather than close an unfinished watch: a TLS close handshake still pending
            # when the event loop ends would leak the transport (ResourceWarning in tests).
            conn = resp.connection
            if conn is not None and conn.transport is not None:
                conn.transport.abort()
            resp.release()

    async def get(self, res: Resource, namespace: str | None, name: str) -> JsonObj:
        """GET one object."""
        return await self.request("GET", res.path(namespace, name))

    async def get_or_none(self, res: Resource, namespace: str | None, name: str) -> JsonObj | None:
        """GET one object, None when it does not exist."""
        try:
            return await self.get(res, namespace, name)
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    async def create(self, res: Resource, namespace: str | None, obj: JsonObj) -> JsonObj:
        """POST a new object."""
        return await self.request("POST", res.path(namespace), obj)

    async def merge_patch(
        self, res: Resource, namespace: str | None, name: str, patch: JsonObj, sub: str = ""
    ) -> JsonObj:
        """JSON merge patch (lists are replaced whole)."""
        return await self.request("PATCH", res.path(namespace, name, sub), patch, MERGE_PATCH)

    async def json_patch(
        self, res: Resource, namespace: str | None, name: str, ops: list[JsonObj], sub: str = ""
    ) -> JsonObj:
        """RFC 6902 JSON patch; a failing `test` op comes back as 422."""
        return await self.request("PATCH", res.path(namespace, name, sub), ops, JSON_PATCH)

    async def replace(self, res: Resource, obj: JsonObj, sub: str = "") -> JsonObj:
        """PUT the whole object (optimistic concurrency on metadata.resourceVersion)."""
        meta = obj["metadata"]
        return await self.request("PUT", res.path(meta.get("namespace"), meta["name"], sub), obj)

    async def delete(self, res: Resource, namespace: str | None, name: str) -> JsonObj | None:
        """DELETE; returns the object while finalizers hold it, None once gone or absent."""
        try:
            got = await self.request("DELETE", res.path(namespace, name))
        except ApiError as err:
            if err.status == 404:
                return None
            raise
        return got if got.get("kind") not in (None, "Status") else None
