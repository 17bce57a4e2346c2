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


@pytest.fixture(scope="session")
def operator_kubeconfig(control_plane: ControlPlane) -> Path:
    """The operator's identity in every integration test: the `wukong` ServiceAccount bound
    by manifests/rbac, on the RBAC-enforcing API server. This is what proves the RBAC."""
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
    return control_plane.service_account_kubeconfig(
        "wukong-system", "wukong", expiration_seconds=4 * 3600
    )
