"""Tuning of the kubernetes_asyncio client that every Wukong process (operator, CLI,
simulator, tests) shares."""

from __future__ import annotations

from contextlib import suppress

from aiohttp.helpers import get_env_proxy_for_url
from kubernetes_asyncio.client import ApiClient
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
