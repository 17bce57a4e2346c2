"""Integration fixtures: one control plane per session; an admin client and namespace per test.

    async def test_something(kube: ApiClient, namespace: str) -> None: ...

Every test under tests/integration is marked `integration` automatically.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from kubernetes_asyncio.client import ApiClient

from wukong.testing.controlplane import ControlPlane, api_client
from wukong.testing.namespaces import temporary_namespace

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in this folder `integration` (select or deselect with -m)."""
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + GC/namespace/PVC-protection controllers, with all CRDs installed."""
    plane = ControlPlane()
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture
async def kube(control_plane: ControlPlane) -> AsyncIterator[ApiClient]:
    """An admin (system:masters) client for this test, closed afterwards."""
    async with await api_client(control_plane.kubeconfig) as api:
        yield api


@pytest.fixture
async def namespace(kube: ApiClient) -> AsyncIterator[str]:
    """A fresh namespace; deleted after the test (the namespace controller finishes it later)."""
    async with temporary_namespace(kube, "t-") as name:
        yield name


MANIFESTS = _HERE.parent.parent / "manifests"


# The administrator's network policy of the test cluster: every namespace may use any bridge,
# VLAN and NAD. Tests of the policy itself (test_tenancy.py) narrow it and put this one back.
OPEN_NETWORK_POLICY = {
    "apiVersion": "vm.novasphere.dev/v1alpha1",
    "kind": "WukongNetworkPolicy",
    "metadata": {"name": "cluster"},
    "spec": {
        "rules": [
            {
                "namespaces": ["*"],
                "bridges": ["*"],
                "vlans": [{"from": 1, "to": 4094}],
                "untagged": True,
                "nads": ["*/*"],
            }
        ]
    },
}


@pytest.fixture(scope="session")
def operator_kubeconfig(control_plane: ControlPlane) -> Path:
    """The operator's identity in every integration test: the `wukong` ServiceAccount bound
    by manifests/rbac, on the RBAC-enforcing API server. This is what proves the RBAC.
    The cluster's network policy lets every namespace use any network (see above)."""
    import yaml

    files = [MANIFESTS / "namespace.yaml", *sorted((MANIFESTS / "rbac").glob("*.yaml"))]
    docs = [
        d
        for f in files
        if f.name != "kustomization.yaml"
        for d in yaml.safe_load_all(f.read_text())
        if d
    ]
    control_plane.apply(docs)
    control_plane.apply([OPEN_NETWORK_POLICY])
    return control_plane.service_account_kubeconfig(
        "wukong-system", "wukong", expiration_seconds=4 * 3600
    )
