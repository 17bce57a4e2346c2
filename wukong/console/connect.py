"""Reach the cluster the way kubectl does: kubeconfig, --context, -n (else the context's
namespace, else "default"); inside a pod, the service account."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

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
from wukong.console.errors import CliError, explain, not_found
from wukong.errors import ApiError, NotFound

__all__ = ["Target", "connect", "kubeconfig_files", "load"]


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
        try:
            return await self.kube.get(self.wukongs(name))
        except NotFound as error:
            raise not_found("wukong", name, self.namespace, error) from error


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
            yield Target(Kube(api), namespace or default_namespace, server)
        except ApiError as error:
            raise CliError(explain(error, server)) from error
