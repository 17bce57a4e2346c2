"""Every request names its sender (User-Agent) and every write its author (fieldManager)."""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio.client import ApiClient, Configuration

from wukong import __version__
from wukong.adapters.client import CLI_AGENT, OPERATOR_AGENT, field_manager, identify
from wukong.adapters.kube import Kube, resource_of


class Recording(Kube):
    def __init__(self, api: ApiClient) -> None:
        super().__init__(api)
        self.sent: list[tuple[str, dict[str, str]]] = []

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        self.sent.append((method, dict(kwargs.get("query") or {})))
        return {}


async def test_identify_sets_the_user_agent_and_writes_carry_the_field_manager() -> None:
    async with ApiClient(Configuration()) as api:
        assert field_manager(api) is None  # an unnamed client leaves the server's default
        identify(api, OPERATOR_AGENT)
        assert api.default_headers["User-Agent"] == f"wukong-operator/{__version__}"
        kube = Recording(api)
        await kube.create("/api/v1/namespaces/x/events", {})
        await kube.merge_patch("/apis/g/v1/namespaces/x/things/a", {}, dry_run=True)
        await kube.json_patch("/apis/g/v1/namespaces/x/things/a", [])
        await kube.replace("/apis/g/v1/namespaces/x/things/a", {})
        await kube.get("/apis/g/v1/namespaces/x/things/a")
    assert kube.sent == [
        ("POST", {"fieldManager": "wukong-operator"}),
        ("PATCH", {"fieldManager": "wukong-operator", "dryRun": "All"}),
        ("PATCH", {"fieldManager": "wukong-operator"}),
        ("PUT", {"fieldManager": "wukong-operator"}),
        ("GET", {}),
    ]


async def test_the_cli_names_itself_kubectl_wukong() -> None:
    async with ApiClient(Configuration()) as api:
        identify(api, CLI_AGENT)
        assert api.user_agent == f"kubectl-wukong/{__version__}"
        assert field_manager(api) == "kubectl-wukong"


def test_metrics_name_the_resource_and_subresource_of_a_path() -> None:
    assert resource_of(
        "/apis/subresources.kubevirt.io/v1/namespaces/n/virtualmachines/v/start"
    ) == ("virtualmachines/start")
    assert resource_of("/apis/vm.novasphere.dev/v1alpha1/namespaces/n/wukongs/w/status") == (
        "wukongs/status"
    )
    assert resource_of("/api/v1/namespaces/n/events") == "events"
    assert resource_of("/apis/authentication.k8s.io/v1/tokenreviews") == "tokenreviews"
