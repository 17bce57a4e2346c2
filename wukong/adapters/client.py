"""Tuning of the kubernetes_asyncio client that every Wukong process (operator, CLI,
simulator, tests) shares."""

from __future__ import annotations

import binascii
import logging
import os
import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Final

import yaml
from aiohttp.helpers import get_env_proxy_for_url
from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import ApiClient, Configuration
from yarl import URL


def look_up_environment_once(api: ApiClient) -> None:
    """kubernetes_asyncio opens its aiohttp session with trust_env=True: aiohttp then reads
    ~/.netrc and the proxy environment in a worker thread on every request (two thread hops,
    about half the client's CPU per request). Resolve the proxy for the API server once here
    and turn the per-request lookups off; netrc credentials have no place next to a bearer
    token or client certificate (aiohttp refuses to combine them anyway)."""
    rest = api.rest_client
    if not rest.proxy:
        with suppress(LookupError):
            proxy, auth = get_env_proxy_for_url(URL(str(api.configuration.host)))
            if auth is not None:
                proxy = proxy.with_user(auth.login).with_password(auth.password)
            rest.proxy = str(proxy)
    rest.pool_manager._trust_env = False  # no public setter; read per request by aiohttp


def dial_options(api: ApiClient) -> dict[str, Any]:
    """What kubernetes_asyncio's REST client gives aiohttp with each request to reach the
    API server (client/rest.py `request`): the proxy (the kubeconfig's `proxy-url`, else
    the environment's, resolved once by `look_up_environment_once`, NO_PROXY heeded) and
    its headers, and the kubeconfig's `tls-server-name`. For a connection made apart from
    REST, a websocket, to go the same way: they went straight to the server, so behind a
    proxy, or with a certificate for another name, REST worked and the console did not
    (access audit, session 46)."""
    rest = api.rest_client
    options: dict[str, Any] = {}
    if rest.proxy:
        options["proxy"] = rest.proxy
    if rest.proxy_headers:
        options["proxy_headers"] = rest.proxy_headers
    if rest.server_hostname:
        options["server_hostname"] = rest.server_hostname
    return options


# -- one kubeconfig loader and one identity for the operator and the CLI ----------------------

DEFAULT_KUBECONFIG: Final = "~/.kube/config"
SERVICE_ACCOUNT_NAMESPACE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
OPERATOR_AGENT: Final = "wukong-operator"
CLI_AGENT: Final = "kubectl-wukong"
_LOADER_LOGGERS: Final = ("kubernetes_asyncio.config.kube_config", "kubernetes_asyncio.config")


class ConfigError(Exception):
    """No usable cluster configuration; `message` is one line for a person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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


def _check_documents(files: list[str]) -> None:
    """Refuse files that name no cluster before the loader trips over them (an empty file
    makes kubernetes_asyncio fail with "'NoneType' object does not support item
    assignment")."""
    usable = False
    for name in files:
        try:
            doc = yaml.safe_load(Path(name).read_text())
        except (OSError, yaml.YAMLError) as error:
            reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
            raise ConfigError(f"cannot read kubeconfig {name}: {reason}") from error
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ConfigError(f"kubeconfig {name} is not a kubeconfig (a YAML mapping)")
        usable = usable or bool(doc.get("contexts") or doc.get("clusters"))
    if not usable:
        which = ", ".join(files)
        raise ConfigError(f"kubeconfig {which} is empty: it names no cluster or context")


def _dangling_reference(files: list[str], context: str | None) -> str | None:
    """What the chosen context names that no file defines, in kubectl's words (`user "x"
    was not found for context "y"`), or None. Merged as kubectl merges: the first wins."""
    entries: dict[str, dict[str, Any]] = {"contexts": {}, "clusters": {}, "users": {}}
    current = context
    for name in files:
        try:
            doc = yaml.safe_load(Path(name).read_text()) or {}
        except (OSError, yaml.YAMLError):
            return None
        if not isinstance(doc, dict):
            return None
        current = current or doc.get("current-context")
        for key, found in entries.items():
            for entry in doc.get(key) or []:
                if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                    found.setdefault(entry["name"], entry)
    chosen = entries["contexts"].get(str(current))
    if chosen is None or not isinstance(chosen.get("context"), dict):
        return None
    for key, field in (("clusters", "cluster"), ("users", "user")):
        wanted = chosen["context"].get(field)
        if wanted and wanted not in entries[key]:
            return f'{field} "{wanted}" was not found for context "{current}"'
    return None


@contextmanager
def _quiet_loader() -> Iterator[None]:
    """kubernetes_asyncio logs an exec plugin's failure and then raises it: keep only the
    exception, so the person reads the reason once."""
    loggers = [logging.getLogger(name) for name in _LOADER_LOGGERS]
    before = [(lg, lg.disabled) for lg in loggers]
    for lg in loggers:
        lg.disabled = True
    try:
        yield
    finally:
        for lg, disabled in before:
            lg.disabled = disabled


async def load_configuration(
    configuration: Configuration, kubeconfig: str | None, context: str | None
) -> str:
    """Fill `configuration` the way the operator and the CLI both do; return the chosen
    context's namespace (in a pod: the service account's), else "default".

    Order: the kubeconfig given (flag or KUBECONFIG, a list), else the service account when
    running in a pod (and no --context), else ~/.kube/config. Every failure is a ConfigError
    with one line to show. An empty kubeconfig or context (an unset "$KC" in a script) is
    not given, as kubectl reads `--kubeconfig ''`: KUBECONFIG, then the rest of the order
    (CLI audit, session 44: it was read as given, then as ~/.kube/config)."""
    kubeconfig = kubeconfig or os.environ.get("KUBECONFIG") or None
    context = context or None
    in_pod = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    if kubeconfig is None and context is None and in_pod:
        try:
            kube_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except kube_config.ConfigException as error:
            raise ConfigError(f"cannot use the pod's service account: {error}") from error
        if SERVICE_ACCOUNT_NAMESPACE.exists():
            return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
        return "default"
    files = kubeconfig_files(kubeconfig)
    if not files and kubeconfig is None:
        raise ConfigError(
            f"no cluster configured: no kubeconfig at {DEFAULT_KUBECONFIG} (KUBECONFIG is not "
            "set); pass --kubeconfig"
        )
    if not files:
        # Not "pass --kubeconfig" to whoever just did (CLI audit, session 48): say where the
        # path came from. The CLI's --kubeconfig reads KUBECONFIG too: the same value is it.
        given = "KUBECONFIG" if kubeconfig == os.environ.get("KUBECONFIG") else "--kubeconfig"
        raise ConfigError(f"no cluster configured: no kubeconfig at {kubeconfig} (from {given})")
    _check_documents(files)
    try:
        with _quiet_loader():
            loader = await kube_config.load_kube_config(
                config_file=os.pathsep.join(files),
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
    except binascii.Error as error:  # a ValueError: *-data fields are base64
        reason = f"its certificate or key data is not base64 ({error})"
        raise ConfigError(f"cannot use kubeconfig {', '.join(files)}: {reason}") from error
    except (kube_config.ConfigException, yaml.YAMLError, OSError, KeyError, TypeError) as error:
        if context is not None and "contexts" in str(error):
            raise ConfigError(f"context {context} not found in {', '.join(files)}") from error
        reason = _dangling_reference(files, context) or (
            " ".join(str(error).split()) or type(error).__name__
        )
        raise ConfigError(f"cannot use kubeconfig {', '.join(files)}: {reason}") from error
    _check_certificates(configuration, ", ".join(files))
    return context_namespace(loader.current_context) or "default"


def _check_certificates(configuration: Configuration, files: str) -> None:
    """Load the kubeconfig's CA and client certificate as `ApiClient` will, so that data
    that is not PEM is a ConfigError naming the kubeconfig, where `ApiClient(...)` raised
    `ssl.SSLError` with a traceback (CLI audit, session 44). Only what the kubeconfig gives:
    the system's CAs are not read twice."""
    what = "certificate-authority is not a PEM certificate"
    try:
        if configuration.ssl_ca_cert:
            ssl.create_default_context(cafile=configuration.ssl_ca_cert)
        if configuration.cert_file:
            what = "client-certificate and client-key are not a PEM certificate and its key"
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.load_cert_chain(configuration.cert_file, keyfile=configuration.key_file)
    except (ssl.SSLError, OSError) as error:
        reason = _SSL_SOURCE.sub("", error.strerror or str(error))
        raise ConfigError(f"cannot use kubeconfig {files}: its {what} ({reason})") from error


_SSL_SOURCE: Final = re.compile(r" \(_ssl\.c:\d+\)$")  # OpenSSL's source line: not for people


def identify(api: ApiClient, agent: str) -> None:
    """Name the client in every request: `User-Agent: <agent>/<version>`; `Kube` sends the
    agent as the fieldManager of its writes (managedFields and audit logs say who wrote)."""
    from wukong import __version__

    api.user_agent = f"{agent}/{__version__}"


def field_manager(api: ApiClient) -> str | None:
    """The fieldManager for writes through `api`: the product of its User-Agent, when
    `identify` named it (None leaves the API server's default)."""
    headers = getattr(api, "default_headers", None) or {}
    agent = str(headers.get("User-Agent") or "")
    product = agent.split("/", 1)[0]
    return product if product in (OPERATOR_AGENT, CLI_AGENT) else None
