"""The current operator against a Wukong CRD older than itself (upgrade audit, session 47,
finding 3): the API server prunes the status fields the old schema lacks, `lifecycleState.call`
among them. The operator says so (log, a CRDOutdated Warning, /readyz) and makes no lifecycle
call whose record it could not store, instead of answering "sent" and making none.

On a control plane of its own: the CRD is shared by every test of the session's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import MANIFESTS, OPEN_NETWORK_POLICY
from tests.integration.scenario import (
    OPERATOR_USER,
    create,
    path,
    simulator,
    wait_for,
    wait_phase,
    wukong,
    wukong_events,
)
from wukong.adapters.kube import Kube
from wukong.api.crd import build_crd
from wukong.testing._crds import PACKAGE_CRDS
from wukong.testing.controlplane import ControlPlane, api_client
from wukong.testing.eventually import eventually
from wukong.testing.namespaces import temporary_namespace
from wukong.testing.operator import InProcessOperator

OLDER_CRD = Path(__file__).parent / "data" / "wukong-crd-0.1.0.yaml"


@pytest.fixture(scope="module")
def older_plane() -> Iterator[ControlPlane]:
    """etcd and kube-apiserver with 0.1.0's Wukong CRD (and today's other CRDs)."""
    crds = [
        *sorted(PACKAGE_CRDS.glob("*.yaml")),
        MANIFESTS / "crd" / "wukongnetworkpolicy.yaml",
        OLDER_CRD,
    ]
    plane = ControlPlane(default_crds=False, crds=crds)
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture
async def admin(older_plane: ControlPlane) -> AsyncIterator[Kube]:
    async with await api_client(older_plane.kubeconfig) as api:
        yield Kube(api)


def _operator_kubeconfig(plane: ControlPlane) -> Path:
    """The `wukong` ServiceAccount bound by manifests/rbac, as the session's operator runs."""
    files = [MANIFESTS / "namespace.yaml", *sorted((MANIFESTS / "rbac").glob("*.yaml"))]
    docs = [
        d
        for f in files
        if f.name != "kustomization.yaml"
        for d in yaml.safe_load_all(f.read_text())
        if d
    ]
    plane.apply([*docs, OPEN_NETWORK_POLICY])
    return plane.service_account_kubeconfig("wukong-system", "wukong")


async def _restart(k: Kube, namespace: str, name: str, at: str) -> int:
    body = {"action": "restart", "requestedAt": at}
    cr = await k.merge_patch(path("wukong", namespace, name), {"spec": {"lifecycleAction": body}})
    return int(cr["metadata"]["generation"])


def _answered(generation: int, state: str) -> Any:
    def check(cr: dict[str, Any]) -> bool:
        life = (cr.get("status") or {}).get("lifecycleState") or {}
        return life.get("generation") == generation and life.get("state") == state

    return check


async def _keeps_the_call(k: Kube, namespace: str) -> None:
    """Wait until the API server serves the CRD applied last: a status write of a Wukong no
    operator watches keeps `lifecycleState.call`."""
    probe = await create(k, "wukong", namespace, wukong("probe"))
    status = path("wukong", namespace, probe["metadata"]["name"]) + "/status"

    async def kept() -> bool:
        life = {"state": "Accepted", "call": "RESTART_VM"}
        written = await k.merge_patch(status, {"status": {"lifecycleState": life}})
        return ((written.get("status") or {}).get("lifecycleState") or {}).get("call") is not None

    await eventually(kept, timeout=30, message="the applied CRD keeps lifecycleState.call")


async def test_an_older_crd_is_said_and_no_restart_is_answered_sent(
    older_plane: ControlPlane, admin: Kube
) -> None:
    kubeconfig = _operator_kubeconfig(older_plane)
    async with (
        await api_client(older_plane.kubeconfig) as api,
        temporary_namespace(api, "t-") as namespace,
        temporary_namespace(api, "t-probe-") as elsewhere,
        simulator(older_plane, None, namespace) as sim,
        InProcessOperator(kubeconfig, namespace=namespace) as op,
    ):
        await create(admin, "wukong", namespace, wukong("old-1"))
        await wait_phase(admin, namespace, "old-1", "Running", within=60)
        asked = await _restart(admin, namespace, "old-1", "r1")
        cr = await wait_for(
            admin, namespace, "old-1", _answered(asked, "Failed"), within=30, what="refused"
        )
        message = cr["status"]["lifecycleState"]["message"]
        assert message.startswith("restart not made: the Wukong CRD in the cluster is older")
        assert "status.lifecycleState.call" in message and "manifests/crd" in message
        await wait_phase(admin, namespace, "old-1", "Running")
        restarts = [c for c in sim.calls if c.subresource == "restart" and c.user == OPERATOR_USER]
        assert restarts == []
        [event] = await wukong_events(admin, namespace, "CRDOutdated")
        assert event["type"] == "Warning" and "status.autoStart" in event["message"]
        assert op.operator is not None
        ready, why = op.operator.readiness()
        assert not ready and "status.lifecycleState.call" in why
        outdated = op.operator.metrics.registry.get_sample_value
        assert outdated("wukong_crd_outdated") == 1  # WukongCRDOutdated's series

        # The CRD applied: the next restart is made, and the operator is ready again.
        older_plane.apply([build_crd()])
        await _keeps_the_call(admin, elsewhere)
        again = await _restart(admin, namespace, "old-1", "r2")
        await wait_for(admin, namespace, "old-1", _answered(again, "Done"), within=60)
        restarts = [c for c in sim.calls if c.subresource == "restart" and c.user == OPERATOR_USER]
        assert len(restarts) == 1
        assert op.operator.readiness() == (True, "leading")
        assert outdated("wukong_crd_outdated") == 0
