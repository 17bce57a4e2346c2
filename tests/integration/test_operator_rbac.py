"""The operator's own RBAC lacking a verb, on the real authorizer: said as the installation's
fault (its ServiceAccount lacks it; docs/install.md "Permissions"), never as the user's request
refused, and made again by itself once an administrator grants it."""

from __future__ import annotations

import copy
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.scenario import create, get, k, sim, wait_for, wait_phase, wukong
from wukong.adapters.kube import Kube
from wukong.errors import NotFound
from wukong.testing.controlplane import ControlPlane
from wukong.testing.kubevirt import Simulator
from wukong.testing.operator import InProcessOperator

__all__ = ["k", "sim"]  # fixtures

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests" / "rbac"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
LACKING = "virtualmachines/stop"
_nonce = itertools.count()


def operator_rules() -> list[dict[str, Any]]:
    """The rules of manifests/rbac's ClusterRole, the operator's own."""
    (role,) = [
        d
        for d in yaml.safe_load_all((MANIFESTS / "cluster-role.yaml").read_text())
        if d and d["kind"] == "ClusterRole"
    ]
    return list(role["rules"])


def rules_without(resource: str) -> list[dict[str, Any]]:
    """The operator's rules with `resource` taken out of every rule (which must name it)."""
    rules = []
    for rule in copy.deepcopy(operator_rules()):
        kept = [r for r in rule.get("resources", []) if r != resource]
        if kept != rule.get("resources", []):
            if not kept:
                continue
            rule["resources"] = kept
        rules.append(rule)
    assert rules != operator_rules(), f"{resource} is not in manifests/rbac/cluster-role.yaml"
    return rules


@pytest.fixture
async def narrow(
    control_plane: ControlPlane, operator_kubeconfig: Path, k: Kube
) -> AsyncIterator[tuple[str, Path]]:
    """A ServiceAccount of wukong-system with the operator's ClusterRole less `LACKING`;
    its name and kubeconfig. Its role and binding go at the end."""
    del operator_kubeconfig  # applied manifests/rbac: the wukong-system namespace
    name = f"wukong-narrow-{next(_nonce)}"
    meta = {"name": name, "labels": {"app.kubernetes.io/part-of": "wukong-tests"}}
    control_plane.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {**meta, "namespace": "wukong-system"},
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": meta,
                "rules": rules_without(LACKING),
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": meta,
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": name,
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": name, "namespace": "wukong-system"}
                ],
            },
        ]
    )
    try:
        yield name, control_plane.service_account_kubeconfig("wukong-system", name)
    finally:
        for path in (
            f"{RBAC}/clusterrolebindings/{name}",
            f"{RBAC}/clusterroles/{name}",
            f"/api/v1/namespaces/wukong-system/serviceaccounts/{name}",
        ):
            try:
                await k.delete(path)
            except NotFound:
                pass


def lifecycle(cr: dict[str, Any]) -> dict[str, Any]:
    return dict((cr.get("status") or {}).get("lifecycleState") or {})


async def test_a_stop_the_operators_role_lacks_says_so_and_is_made_once_granted(
    k: Kube, namespace: str, sim: Simulator, narrow: tuple[str, Path]
) -> None:
    name, kubeconfig = narrow
    user = f"system:serviceaccount:wukong-system:{name}"
    async with InProcessOperator(kubeconfig, namespace=namespace):
        await create(k, "wukong", namespace, wukong("vm1"))
        await wait_phase(k, namespace, "vm1", "Running", within=60)
        cr = await k.merge_patch(
            f"/apis/vm.novasphere.dev/v1alpha1/namespaces/{namespace}/wukongs/vm1",
            {"spec": {"lifecycleAction": {"action": "stop", "requestedAt": "t-rbac"}}},
        )
        generation = cr["metadata"]["generation"]
        cr = await wait_for(
            k,
            namespace,
            "vm1",
            lambda cr: "not made yet" in str(lifecycle(cr).get("message", "")),
            what="the stop's message naming the missing permission",
        )
        assert lifecycle(cr)["message"] == (
            "stop not made yet: the operator may not stop VirtualMachine vm1-vm: its "
            f"ServiceAccount ({user}) lacks update on virtualmachines/stop (API group "
            "subresources.kubevirt.io); its RBAC is incomplete, see docs/install.md "
            '"Permissions"'
        )
        # Not the user's request refused: still owed, and nothing stopped the VM meanwhile.
        assert lifecycle(cr)["state"] == "Accepted"
        assert lifecycle(cr)["generation"] == generation
        vm = await get(k, "vm", namespace, "vm1-vm")
        assert vm is not None and vm["spec"]["runStrategy"] == "Always"
        assert not [c for c in sim.calls if c.subresource == "stop" and c.user == user]

        # The administrator grants it: the operator makes the call by itself (its backoff).
        await k.merge_patch(f"{RBAC}/clusterroles/{name}", {"rules": operator_rules()})
        cr = await wait_for(
            k,
            namespace,
            "vm1",
            lambda cr: (
                lifecycle(cr).get("generation") == generation
                and lifecycle(cr).get("state") == "Done"
                and cr["status"].get("phase") == "Stopped"
            ),
            within=90,
            what="the stop done once granted",
        )
        stops = [c for c in sim.calls if c.subresource == "stop" and c.user == user]
        assert len(stops) == 1, stops
