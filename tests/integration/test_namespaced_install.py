"""Issue 17: the namespace-scoped install is enough to run the operator. Its Role (in the
watched namespace) and its cut-down ClusterRole, from manifests/namespaced rendered by
kustomize, are bound to a fresh ServiceAccount; the operator runs as that account with
`--namespace` and takes a Wukong through create, stop and delete without one 403."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.scenario import (
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
from wukong.errors import Forbidden
from wukong.testing._assets import kubectl_binary
from wukong.testing.controlplane import ControlPlane
from wukong.testing.eventually import eventually
from wukong.testing.kubevirt import Simulator
from wukong.testing.namespaces import temporary_namespace
from wukong.testing.operator import InProcessOperator

__all__ = ["k", "sim"]  # fixtures
VARIANT = Path(__file__).resolve().parents[2] / "manifests" / "namespaced"
RBAC = "rbac.authorization.k8s.io"


def rendered() -> list[dict[str, Any]]:
    out = subprocess.run(
        [str(kubectl_binary()), "kustomize", str(VARIANT)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


@pytest.fixture
async def namespaced_operator(
    control_plane: ControlPlane, k: Kube, namespace: str, sim: Simulator
) -> AsyncIterator[InProcessOperator]:
    """The variant's rules, bound to ServiceAccount `ns-operator` of this namespace only."""
    docs = rendered()
    role_rules = one(docs, "Role", "wukong-operator")["rules"]
    cluster_rules = one(docs, "ClusterRole", "wukong-operator")["rules"]
    account = "ns-operator"
    cluster_name = f"wukong-ns-operator-{namespace}"
    subject = [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]
    await k.create(
        api_path("", "v1", "serviceaccounts", namespace),
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account}},
    )
    await k.create(
        api_path(RBAC, "v1", "roles", namespace),
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "Role",
            "metadata": {"name": account},
            "rules": role_rules,
        },
    )
    await k.create(
        api_path(RBAC, "v1", "rolebindings", namespace),
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "RoleBinding",
            "metadata": {"name": account},
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": account},
            "subjects": subject,
        },
    )
    await k.create(
        api_path(RBAC, "v1", "clusterroles"),
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "ClusterRole",
            "metadata": {"name": cluster_name},
            "rules": cluster_rules,
        },
    )
    await k.create(
        api_path(RBAC, "v1", "clusterrolebindings"),
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": cluster_name},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": cluster_name},
            "subjects": subject,
        },
    )
    kubeconfig = control_plane.service_account_kubeconfig(namespace, account)
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
        for plural in ("clusterrolebindings", "clusterroles"):
            await k.delete(api_path(RBAC, "v1", plural, None, cluster_name))


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

    kubeconfig = control_plane.service_account_kubeconfig(namespace, "ns-operator")
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
