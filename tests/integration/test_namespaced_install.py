"""Issue 17: the namespace-scoped install is enough to run the operator. Session 48: its RBAC
is applied as the team overlay of docs/install.md renders it, not copied: the operator's own
namespace and ServiceAccount, its Role and RoleBinding in the watched namespace, and its
ClusterRole and ClusterRoleBinding `wukong-operator:<its namespace>`. The operator runs as that
account with `--namespace` and takes a Wukong through create, stop and delete without one 403.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.namespaced import operator_namespace, render_namespaced
from tests.integration.scenario import (
    bound_account,
    create,
    get,
    k,
    patch_spec,
    sim,
    user_nad,
    wait_phase,
    wukong,
)
from wukong.adapters.kube import Kube, api_path
from wukong.errors import Forbidden, NotFound
from wukong.testing.controlplane import ControlPlane
from wukong.testing.eventually import eventually
from wukong.testing.kubevirt import Simulator
from wukong.testing.namespaces import temporary_namespace
from wukong.testing.operator import InProcessOperator

__all__ = ["k", "sim"]  # fixtures
RBAC = "rbac.authorization.k8s.io"
ACCOUNT = "wukong"
# What of the rendered install these tests apply: its namespace and RBAC. The shared
# cluster-scoped objects (CRDs, user roles, policies) are the cluster-wide install's, which the
# session applied; the Deployment is the in-process operator.
APPLIED = {"Namespace", "ServiceAccount", "Role", "RoleBinding", "ClusterRole",
           "ClusterRoleBinding"}  # fmt: skip


def home(namespace: str) -> str:
    """The operator's own namespace, for the Wukongs of `namespace`."""
    return f"{namespace}-op"


def own(doc: dict[str, Any]) -> bool:
    """Whether the rendered object belongs to this install alone."""
    name = str(doc["metadata"]["name"])
    if doc["kind"] in {"ClusterRole", "ClusterRoleBinding"}:
        return name.startswith("wukong-operator:")
    return doc["kind"] in APPLIED


@pytest.fixture
async def namespaced_operator(
    control_plane: ControlPlane, k: Kube, namespace: str, sim: Simulator, tmp_path: Path
) -> AsyncIterator[InProcessOperator]:
    """docs/install.md's team overlay for `namespace`, rendered; its RBAC applied as is."""
    docs = render_namespaced(tmp_path / "overlay", home(namespace), namespace)
    assert operator_namespace(docs) == home(namespace)
    applied = [d for d in docs if own(d)]
    cluster_scoped = [d for d in applied if d["kind"] in {"ClusterRole", "ClusterRoleBinding"}]
    assert [d["metadata"]["name"] for d in cluster_scoped] == [
        f"wukong-operator:{home(namespace)}"
    ] * 2
    control_plane.apply(applied)
    kubeconfig = control_plane.service_account_kubeconfig(home(namespace), ACCOUNT)
    try:
        async with InProcessOperator(kubeconfig, namespace=namespace) as op:
            yield op
            assert op.operator is not None
            forbidden = [
                (s.labels["verb"], s.labels["resource"], s.value)
                for metric in op.operator.metrics.kube_api_requests_total.collect()
                for s in metric.samples
                if s.labels.get("code") == "403" and s.value
            ]
            assert forbidden == [], f"the namespaced operator was refused (403): {forbidden}"
    finally:
        for doc in cluster_scoped:
            plural = "clusterroles" if doc["kind"] == "ClusterRole" else "clusterrolebindings"
            await k.delete(api_path(RBAC, "v1", plural, None, doc["metadata"]["name"]))
        try:
            await k.delete(api_path("", "v1", "namespaces", None, home(namespace)))
        except NotFound:
            pass


async def test_the_namespaced_rbac_runs_a_wukong_from_create_to_delete(
    control_plane: ControlPlane, k: Kube, namespace: str, namespaced_operator: InProcessOperator
) -> None:
    await create(k, "wukong", namespace, wukong("ns-1", disks=[{"name": "system", "size": "1Gi"}]))
    await wait_phase(k, namespace, "ns-1", "Running", within=30)
    await patch_spec(
        k,
        namespace,
        "ns-1",
        {"lifecycleAction": {"action": "stop", "requestedAt": "2026-01-01T00:00:00.000001Z"}},
    )
    await wait_phase(k, namespace, "ns-1", "Stopped", within=30)
    await k.delete(api_path("vm.novasphere.dev", "v1alpha1", "wukongs", namespace, "ns-1"))

    async def gone() -> bool:
        return await get(k, "wukong", namespace, "ns-1") is None

    await eventually(gone, timeout=30)


async def test_the_namespaced_account_reaches_nothing_outside_its_namespace(
    control_plane: ControlPlane, namespace: str, namespaced_operator: InProcessOperator
) -> None:
    from kubernetes_asyncio.client import ApiClient, Configuration

    from wukong.adapters.client import load_configuration

    kubeconfig = control_plane.service_account_kubeconfig(home(namespace), ACCOUNT)
    configuration = Configuration()
    await load_configuration(configuration, str(kubeconfig), None)
    async with ApiClient(configuration) as api:
        with pytest.raises(Forbidden):
            await Kube(api).get(api_path("vm.novasphere.dev", "v1alpha1", "wukongs"))
        with pytest.raises(Forbidden):
            await Kube(api).get(api_path("kubevirt.io", "v1", "virtualmachines", "default"))


async def test_a_nad_of_another_namespace_is_found_by_kubevirt_not_reported_missing(
    kube: Any,
    k: Kube,
    namespace: str,
    operator_kubeconfig: Path,  # the session's open network policy (conftest), in any order
    namespaced_operator: InProcessOperator,
) -> None:
    """Found by a source audit (session 46): the namespaced operator watches only its
    namespace, so `nadName: OTHER/NAD` (granted by the policy, as docs/install.md shows) was
    NADNotFound for ever and the VM never made. KubeVirt's virt-controller finds it."""
    async with temporary_namespace(kube, "infra-") as infra:
        await create(k, "nad", infra, user_nad("storage-net"))
        networks = [{"name": "storage", "nadName": f"{infra}/storage-net"}]
        disks = [{"name": "system", "size": "1Gi"}]
        await create(k, "wukong", namespace, wukong("ns-2", disks=disks, networks=networks))
        cr = await wait_phase(k, namespace, "ns-2", "Running", within=30)
        [said] = [c for c in cr["status"]["conditions"] if c["type"] == "NetworksConfigured"]
        assert (said["status"], said["reason"]) == ("True", "NetworksReady")
        vmi = await get(k, "vmi", namespace, "ns-2-vm")
        assert vmi is not None
        assert {"name": "storage", "multus": {"networkName": f"{infra}/storage-net"}} in vmi[
            "spec"]["networks"]  # fmt: skip


async def allowed(
    api: Kube, group: str, resource: str, verb: str, namespace: str, name: str
) -> bool:
    """SelfSubjectAccessReview: may the caller do this?"""
    plural, _, sub = resource.partition("/")
    attributes = {"group": group, "resource": plural, "subresource": sub, "verb": verb}
    review = await api.create(
        api_path("authorization.k8s.io", "v1", "selfsubjectaccessreviews"),
        {"spec": {"resourceAttributes": attributes | {"namespace": namespace, "name": name}}},
    )
    return bool(review["status"].get("allowed"))


async def test_a_tenant_with_edit_in_the_watched_namespace_cannot_become_the_operator(
    control_plane: ControlPlane, k: Kube, namespace: str, namespaced_operator: InProcessOperator
) -> None:
    """Namespaced-install audit, session 48, finding 2: the operator ran in the tenants'
    namespace, where Kubernetes `edit` may impersonate its ServiceAccount, mint it a token,
    exec into its pod and patch its Deployment: every `edit` holder had its NAD writes and
    cluster-wide SubjectAccessReviews. In its own namespace, none of these reach it."""
    from kubernetes_asyncio.client import ApiClient, Configuration

    from wukong.adapters.client import load_configuration

    await bound_account(k, namespace, "tenant", "ClusterRole", "edit")
    kubeconfig = control_plane.service_account_kubeconfig(namespace, "tenant")
    configuration = Configuration()
    await load_configuration(configuration, str(kubeconfig), None)
    reach = [
        ("", "serviceaccounts", "impersonate", ACCOUNT),
        ("", "serviceaccounts/token", "create", ACCOUNT),
        ("", "pods/exec", "create", ""),
        ("apps", "deployments", "patch", "wukong"),
    ]
    async with ApiClient(configuration) as api:
        tenant = Kube(api)
        # `edit` gives each of these in its own namespace: the checks below mean something.
        for group, resource, verb, name in reach:
            assert await allowed(tenant, group, resource, verb, namespace, name), resource
        for group, resource, verb, name in reach:
            assert not await allowed(tenant, group, resource, verb, home(namespace), name), (
                resource, verb)  # fmt: skip
        # And the operator's NAD writes are not the tenant's.
        assert not await allowed(
            tenant, "k8s.cni.cncf.io", "network-attachment-definitions", "create", namespace, ""
        )
