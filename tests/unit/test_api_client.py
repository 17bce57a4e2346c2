"""The API client resolves the proxy environment once instead of on every request."""

from __future__ import annotations

import pytest
from kubernetes_asyncio.client import ApiClient, Configuration

from wukong.adapters.client import look_up_environment_once

PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy")


def client(host: str) -> ApiClient:
    configuration = Configuration()
    configuration.host = host
    return ApiClient(configuration)


@pytest.fixture(autouse=True)
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)


async def test_no_proxy_in_the_environment_means_no_proxy_and_no_lookups() -> None:
    api = client("https://10.0.0.1:6443")
    look_up_environment_once(api)
    assert api.rest_client.proxy is None
    assert api.rest_client.pool_manager.trust_env is False
    await api.close()


async def test_a_proxy_from_the_environment_is_kept_with_its_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://user:secret@proxy.example:3128")
    api = client("https://api.cluster.example:6443")
    look_up_environment_once(api)
    assert api.rest_client.proxy == "http://user:secret@proxy.example:3128"
    assert api.rest_client.pool_manager.trust_env is False
    await api.close()


async def test_no_proxy_exempts_the_api_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "api.cluster.example")
    api = client("https://api.cluster.example:6443")
    look_up_environment_once(api)
    assert api.rest_client.proxy is None
    await api.close()


async def test_an_explicit_proxy_in_the_configuration_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://env-proxy.example:3128")
    configuration = Configuration()
    configuration.host = "https://api.cluster.example:6443"
    configuration.proxy = "http://configured.example:8080"
    api = ApiClient(configuration)
    look_up_environment_once(api)
    assert api.rest_client.proxy == "http://configured.example:8080"
    await api.close()
