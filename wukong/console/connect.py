"""Reach the cluster the way kubectl does: kubeconfig, --context, -n (else the context's
namespace, else "default"); inside a pod, the service account."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import ApiClient, Configuration

from wukong.adapters.client import look_up_environment_once
from wukong.adapters.kube import JsonObj, Kube, api_path
from wukong.api import names
from wukong.console.errors import CliError, explain, not_found
from wukong.errors import ApiError, NotFound

DEFAULT_KUBECONFIG: Final = "~/.kube/config"
SERVICE_ACCOUNT_NAMESPACE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


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


def kubeconfig_files(kubeconfig: str | None) -> list[str]:
    """The existing files of a KUBECONFIG-style list (kubectl merges them in order)."""
    paths = (kubeconfig or DEFAULT_KUBECONFIG).split(os.pathsep)
    return [str(Path(p).expanduser()) for p in paths if p and Path(p).expanduser().exists()]


def context_namespace(context: Any) -> str | None:
    """The namespace a kubeconfig context names, if any."""
    if not isinstance(context, dict):
        return None
    value = (context.get("context") or {}).get("namespace")
    return str(value) if value else None


async def load(configuration: Configuration, kubeconfig: str | None, context: str | None) -> str:
    """Fill `configuration`; return the default namespace of the chosen context."""
    files = kubeconfig_files(kubeconfig)
    if not files:
        if os.environ.get("KUBERNETES_SERVICE_HOST") and context is None:
            kube_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            if SERVICE_ACCOUNT_NAMESPACE.exists():
                return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
            return "default"
        where = kubeconfig or f"{DEFAULT_KUBECONFIG} (KUBECONFIG is not set)"
        raise CliError(f"no cluster configured: no kubeconfig at {where}; pass --kubeconfig")
    try:
        loader = await kube_config.load_kube_config(
            config_file=os.pathsep.join(files),
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except (kube_config.ConfigException, yaml.YAMLError, OSError, KeyError, TypeError) as error:
        if context is not None and "contexts" in str(error):
            raise CliError(f"context {context} not found in {', '.join(files)}") from error
        raise CliError(f"cannot use kubeconfig {', '.join(files)}: {error}") from error
    return context_namespace(loader.current_context) or "default"


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
        try:
            yield Target(Kube(api), namespace or default_namespace, server)
        except ApiError as error:
            raise CliError(explain(error, server)) from error
