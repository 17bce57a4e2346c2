"""Issue 17: /metrics during a real operator run (as the `wukong` ServiceAccount, with the
simulator): every documented family is fed, and the port answers only callers whose token
may `get /metrics` (TokenReview + SubjectAccessReview on the real API server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.integration.scenario import create, k, patch_spec, path, sim, wait_for, wukong
from wukong.adapters.kube import Kube, api_path
from wukong.api import kinds
from wukong.runtime.metrics import DOCUMENTED
from wukong.testing.controlplane import ControlPlane
from wukong.testing.eventually import eventually
from wukong.testing.kubevirt import Simulator
from wukong.testing.operator import InProcessOperator

__all__ = ["k", "sim"]  # fixtures


def token_of(kubeconfig: Path) -> str:
    doc = yaml.safe_load(kubeconfig.read_text())
    return str(doc["users"][0]["user"]["token"])


@pytest.fixture
async def monitored(
    operator_kubeconfig: Path, namespace: str, sim: Simulator
) -> AsyncIterator[InProcessOperator]:
    """The operator with authenticated /metrics, Stalled after 3 s."""
    async with InProcessOperator(operator_kubeconfig, namespace=namespace, stall_after=3) as op:
        yield op


async def scraper(control_plane: ControlPlane, k: Kube, namespace: str, name: str) -> str:
    await k.create(
        api_path("", "v1", "serviceaccounts", namespace),
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
    )
    return token_of(control_plane.service_account_kubeconfig(namespace, name))


async def scrape(port: int, token: str | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics", headers=headers) as response,
    ):
        return response.status, await response.text()


def samples(text: str) -> dict[str, list[str]]:
    """Family -> its sample lines (histograms under their family name)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name = line.split("{")[0].split()[0]
        if name.endswith("_created"):
            continue
        for suffix in ("_bucket", "_sum", "_count"):
            if name.removesuffix(suffix) in DOCUMENTED:
                name = name.removesuffix(suffix)
        found.setdefault(name, []).append(line)
    return found


def value(lines: list[str], *fragments: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if all(f in line for f in fragments))


WEBHOOKS = api_path("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations")


def broken_webhook(name: str, namespace: str, wukong_name: str) -> dict[str, object]:
    """A webhook nobody serves, failurePolicy Fail, on one Wukong's VM: its create is
    answered 500 "failed calling webhook" for as long as the webhook stays."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "gone.wukong.test",
                "clientConfig": {"url": "https://127.0.0.1:1/validate"},
                "rules": [
                    {
                        "apiGroups": ["kubevirt.io"],
                        "apiVersions": ["*"],
                        "operations": ["CREATE"],
                        "resources": ["virtualmachines"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "objectSelector": {"matchLabels": {"vm.novasphere.dev/wukong": wukong_name}},
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 2,
            }
        ],
    }


async def test_metrics_refuse_strangers_and_feed_every_documented_family(
    control_plane: ControlPlane,
    k: Kube,
    namespace: str,
    sim: Simulator,
    monitored: InProcessOperator,
) -> None:
    assert monitored.operator is not None and monitored.operator.metrics_server is not None
    port = monitored.operator.metrics_server.port

    # A Wukong that runs and answers a stop; one whose import never ends, so it stalls.
    await create(k, "wukong", namespace, wukong("mon-1"))
    await wait_for(k, namespace, "mon-1", lambda c: c.get("status", {}).get("phase") == "Running")
    await patch_spec(
        k,
        namespace,
        "mon-1",
        {"lifecycleAction": {"action": "stop", "requestedAt": "2026-01-01T00:00:00.000001Z"}},
    )
    await wait_for(
        k,
        namespace,
        "mon-1",
        lambda c: (c.get("status", {}).get("lifecycleState") or {}).get("state") == "Done",
        what="mon-1 stop Done",
    )
    # A guest that ignores ACPI, stopped with a long grace period: Stopping outlives 3 s.
    await create(k, "wukong", namespace, wukong("mon-2"))
    await wait_for(k, namespace, "mon-2", lambda c: c.get("status", {}).get("phase") == "Running")
    await k.merge_patch(
        path("vm", namespace, "mon-2-vm"),
        {"metadata": {"annotations": {"sim.kubevirt.io/ignore-acpi": "true"}}},
    )
    await patch_spec(
        k,
        namespace,
        "mon-2",
        {
            "lifecycleAction": {
                "action": "stop",
                "gracePeriodSeconds": 600,
                "requestedAt": "2026-01-01T00:00:00.000002Z",
            }
        },
    )
    await wait_for(
        k,
        namespace,
        "mon-2",
        lambda c: any(
            x.get("type") == "Stalled" and x.get("status") == "True"
            for x in c.get("status", {}).get("conditions") or []
        ),
        what="mon-2 Stalled",
    )

    # A guest QEMU paused on a disk error: Running, not Stalled, VMHealthy False (audit s48).
    await create(k, "wukong", namespace, wukong("mon-4"))
    await wait_for(k, namespace, "mon-4", lambda c: c.get("status", {}).get("phase") == "Running")
    sim.guest(namespace, "mon-4-vm").disk_error()
    await wait_for(
        k,
        namespace,
        "mon-4",
        lambda c: any(
            x.get("type") == "VMHealthy" and x.get("reason") == "PausedIOError"
            for x in c.get("status", {}).get("conditions") or []
        ),
        what="mon-4 paused on a disk error",
    )

    # Nobody, a stranger's token, and a ServiceAccount without the right: refused.
    assert (await scrape(port, None))[0] == 401
    assert (await scrape(port, "not-a-token"))[0] == 401
    stranger = await scraper(control_plane, k, namespace, "stranger")
    status, text = await scrape(port, stranger)
    assert status == 403 and f"system:serviceaccount:{namespace}:stranger" in text

    # Bound to wukong-metrics-reader: allowed.
    reader = await scraper(control_plane, k, namespace, "prometheus")
    binding = f"wukong-metrics-reader-{namespace}"
    await k.create(
        api_path("rbac.authorization.k8s.io", "v1", "clusterrolebindings"),
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": binding},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "wukong-metrics-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "prometheus", "namespace": namespace}],
        },
    )

    async def read() -> str:
        status, text = await scrape(port, reader)
        assert status == 200, text  # until the apiserver's authorizer has seen the binding
        return text

    async def failing_counted() -> str | None:
        text = await read()
        lines = samples(text).get("wukong_reconcile_failing", [])
        return text if value(lines, f'namespace="{namespace}"') == 1 else None

    webhook = f"wukong-broken-{namespace}"
    try:
        # Read before mon-3 exists: once it has been Creating for 3 s, it is Stalled too.
        settled = samples(await eventually(read, timeout=30, message="the reader let in"))
        assert value(settled["wukong_phase"], f'namespace="{namespace}"', 'phase="Stopped"') == 1
        assert value(settled["wukong_phase"], f'namespace="{namespace}"', 'phase="Stopping"') == 1
        assert value(settled["wukong_stalled"], f'namespace="{namespace}"') == 1
        assert value(settled["wukong_unhealthy"], f'namespace="{namespace}"') == 1

        # A VM create that fails for good (a broken webhook): retried with backoff, counted as
        # failing for as long as it lasts, though the ratio of failed passes soon falls.
        await k.create(WEBHOOKS, broken_webhook(webhook, namespace, "mon-3"))
        await create(k, "wukong", namespace, wukong("mon-3"))
        text = await eventually(failing_counted, timeout=30, message="mon-3 counted as failing")
    finally:
        await k.delete(
            api_path("rbac.authorization.k8s.io", "v1", "clusterrolebindings", None, binding)
        )
        await k.delete(f"{WEBHOOKS}/{webhook}")

    fed = samples(text)
    # No Lease without --leader-election: test_failover reads wukong_lease_transitions.
    assert set(DOCUMENTED) - {"wukong_lease_transitions"} <= set(fed), set(DOCUMENTED) - set(fed)
    assert value(fed["wukong_build_info"], 'version="') == 1
    assert value(fed["wukong_leader"]) == 1 and value(fed["wukong_leader_changes_total"]) == 1
    assert value(fed["wukong_phase"], f'namespace="{namespace}"', 'phase="Stopped"') == 1
    assert value(fed["wukong_phase"], f'namespace="{namespace}"', 'phase="Stopping"') == 1
    assert value(fed["wukong_phase"], f'namespace="{namespace}"', 'phase="Creating"') == 1
    assert value(fed["wukong_lifecycle_requests_total"], 'action="stop"', 'outcome="Done"') == 1
    # Series exist at 0 before their first increment, so increase() sees that one too.
    failed_restarts = ['action="restart"', 'outcome="Failed"']
    assert value(fed["wukong_lifecycle_requests_total"], *failed_restarts) == 0
    assert value(fed["wukong_reconcile_total"], 'result="success"') > 0
    assert value(fed["wukong_reconcile_total"], 'result="error"') > 0
    assert value(fed["wukong_workqueue_delayed"]) >= 1  # mon-3, waiting out its backoff
    assert value(fed["wukong_reconcile_duration_seconds"], "_count") > 0
    requests = fed["wukong_kube_api_requests_total"]
    assert value(requests, 'verb="PATCH"', 'resource="wukongs/status"', 'code="200"') > 0
    assert value(requests, 'verb="LIST"', 'resource="wukongs"') > 0
    assert value(requests, 'verb="POST"', 'resource="tokenreviews"', 'code="20') >= 1
    assert value(requests, 'verb="POST"', 'resource="subjectaccessreviews"', 'code="20') >= 1
    assert not any('verb="list"' in line or 'verb="watch"' in line for line in requests)
    # One series per watched resource (wukong.api.kinds.WATCHED).
    assert len(fed["wukong_watch_restarts_total"]) == len(kinds.WATCHED)
    assert len(fed["wukong_workqueue_depth"]) == 1
    synced = fed["wukong_cache_synced"]
    assert len(synced) == len(kinds.WATCHED) and value(synced) == len(kinds.WATCHED)
    assert "process_resident_memory_bytes" in fed
