"""Reach the cluster the way kubectl does: kubeconfig, --context, -n (else the context's
namespace, else "default"); inside a pod, the service account."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio.client import ApiClient, Configuration

from wukong.adapters.client import (
    CLI_AGENT,
    ConfigError,
    identify,
    kubeconfig_files,
    load_configuration,
    look_up_environment_once,
)
from wukong.adapters.kube import JsonObj, Kube, api_path
from wukong.api import names
from wukong.console.errors import CliError, bodiless, explain, not_found, not_kubernetes
from wukong.errors import NOT_KUBERNETES, ApiError, NotFound, ServerError

__all__ = ["Target", "connect", "kubeconfig_files", "kubernetes_list", "kubernetes_object", "load"]

NOT_AN_OBJECT = "the answer was not a Kubernetes object"
CONNECT_SECONDS = 10.0
"""How long the CLI waits for a connection to the API server (TCP and the TLS handshake),
as kubectl's 10 s TLSHandshakeTimeout: a server that accepts and never answers was 30 s
of silence (CLI audit, session 44). The request's own 30 s bound is the operator's too and
stays: a busy API server may take long to answer a request it has begun."""


def kubernetes_object(answer: JsonObj, path: str) -> JsonObj:
    """`answer` when it is a Kubernetes object (metadata with a name); else the server is
    not the API server the kubeconfig says (a health endpoint, a JSON or text proxy, the
    wrong port). Checked here, where the CLI reads, not in `Kube.request`: virt-api's
    subresources legitimately answer an empty body or plain text (CLI audit, session 44)."""
    metadata = answer.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("name"), str):
        return answer
    raise ServerError(200, NOT_KUBERNETES, NOT_AN_OBJECT, path=path)


def kubernetes_list(answer: JsonObj, path: str) -> JsonObj:
    """`answer` when it is a Kubernetes list (`items`, each an object with metadata); else
    as `kubernetes_object`. An API server always sends `items`, `[]` when none match."""
    items = answer.get("items")
    if isinstance(items, list) and all(
        isinstance(item, dict) and isinstance(item.get("metadata"), dict) for item in items
    ):
        return answer
    raise ServerError(200, NOT_KUBERNETES, NOT_AN_OBJECT, path=path)


class CliKube(Kube):
    """`Kube` as the CLI reads answers: a 404 with no body is not "not found" but a server
    that is not the API server (CLI audit, session 44: `error: wukong web-1 not found` was
    said of a proxy). Not in `Kube`, whose operator keeps the plain mapping."""

    async def request(self, method: str, path: str, **kwargs: Any) -> JsonObj:
        """`Kube.request`, with a bodiless 404 raised as a NotKubernetes ServerError."""
        try:
            return await super().request(method, path, **kwargs)
        except NotFound as error:
            if bodiless(error):
                raise not_kubernetes(error) from error
            raise


@dataclass(frozen=True)
class Target:
    """Where a command acts: one client, one namespace."""

    kube: Kube
    namespace: str
    server: str

    def wukongs(self, name: str | None = None, *, all_namespaces: bool = False) -> str:
        """Path of the Wukong collection, or of one Wukong."""
        namespace = None if all_namespaces else self.namespace
        return api_path(names.GROUP, names.VERSION, names.PLURAL, namespace, name)

    async def wukong(self, name: str) -> JsonObj:
        """The Wukong, or a clear 'not found in namespace' error."""
        path = self.wukongs(name)
        try:
            return kubernetes_object(await self.kube.get(path), path)
        except NotFound as error:
            raise not_found("wukong", name, self.namespace, error) from error

    async def listed(self, path: str, query: dict[str, str] | None = None) -> list[JsonObj]:
        """The items of a LIST (a Wukong's own, or any kind's), checked to be one."""
        answer = await self.kube.request("GET", path, query=query)
        return list(kubernetes_list(answer, path)["items"])

    async def patched(self, name: str, patch: JsonObj, *, dry_run: bool = False) -> JsonObj:
        """Merge-patch the Wukong; the Wukong as the API server answered."""
        path = self.wukongs(name)
        return kubernetes_object(await self.kube.merge_patch(path, patch, dry_run=dry_run), path)


async def load(configuration: Configuration, kubeconfig: str | None, context: str | None) -> str:
    """Fill `configuration` (the operator's loader); return the context's namespace."""
    try:
        return await load_configuration(configuration, kubeconfig, context)
    except ConfigError as error:
        raise CliError(error.message) from error


@asynccontextmanager
async def connect(
    kubeconfig: str | None, context: str | None, namespace: str | None
) -> AsyncIterator[Target]:
    """A Target for one command; API errors leave it as one-line `CliError`s."""
    configuration = Configuration()
    default_namespace = await load(configuration, kubeconfig, context)
    server = str(configuration.host)
    async with ApiClient(configuration) as api:
        look_up_environment_once(api)
        identify(api, CLI_AGENT)
        try:
            kube = CliKube(api, connect_timeout=CONNECT_SECONDS)
            yield Target(kube, namespace or default_namespace, server)
        except ApiError as error:
            raise CliError(explain(error, server)) from error
