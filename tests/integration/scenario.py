"""Shared pieces of the operator's integration tests: fixtures that run the simulator and
the operator for one test namespace, Wukong manifests, and waits on what a user sees."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio.client import ApiClient

from tests.integration.gotypes import round_trip_differences
from wukong.adapters.kube import Kube, api_path
from wukong.api import names
from wukong.errors import Invalid, NotFound
from wukong.testing import audit
from wukong.testing.controlplane import ControlPlane
from wukong.testing.eventually import eventually
from wukong.testing.kubevirt import SimConfig, Simulator
from wukong.testing.kubevirt.plane import KubeVirtPlane, kubevirt_assets
from wukong.testing.operator import InProcessOperator, OperatorProcess

JsonObj = dict[str, Any]
IMAGE = "docker://quay.io/containerdisks/fedora:40"

PATHS = {
    "wukong": (names.GROUP, names.VERSION, names.PLURAL),
    "vm": (names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, "virtualmachines"),
    "vmi": (names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, "virtualmachineinstances"),
    "dv": (names.CDI_GROUP, names.CDI_VERSION, "datavolumes"),
    "pvc": ("", "v1", "persistentvolumeclaims"),
    "nad": (names.NAD_GROUP, names.NAD_VERSION, names.NAD_PLURAL),
    "event": ("", "v1", "events"),
}


def path(kind: str, namespace: str, name: str | None = None) -> str:
    """REST path of one of the kinds above."""
    group, version, plural = PATHS[kind]
    return api_path(group, version, plural, namespace, name)


@asynccontextmanager
async def simulator(
    control_plane: ControlPlane,
    kubevirt: KubeVirtPlane | None,
    namespace: str,
    config: SimConfig | None = None,
) -> AsyncIterator[Simulator]:
    """The node (and CDI, storage) for this test's namespace, all of KubeVirt in sim mode;
    `config` for a test module's own simulator fixture."""
    endpoints = kubevirt.endpoints if kubevirt is not None else None
    async with Simulator(
        control_plane.kubeconfig, namespace=namespace, config=config or SimConfig(),
        kubevirt=endpoints,
    ) as running:  # fmt: skip
        yield running
        if kubevirt is not None:
            # Every VMI status the node wrote reads back the same through KubeVirt's Go
            # types: else virt-controller's patches of it fail (gotypes.py).
            assets = kubevirt.assets or kubevirt_assets()
            differ = round_trip_differences(assets, running.vmi_statuses_written)
            assert differ == [], f"KubeVirt's Go types read the node's VMI status so: {differ}"


@pytest.fixture
async def sim(
    control_plane: ControlPlane, kubevirt: KubeVirtPlane | None, namespace: str
) -> AsyncIterator[Simulator]:
    """The node (and CDI, storage) for this test's namespace; all of KubeVirt in sim mode."""
    async with simulator(control_plane, kubevirt, namespace) as running:
        yield running


OPERATOR_USER = "system:serviceaccount:wukong-system:wukong"


@pytest.fixture
async def operator(
    request: pytest.FixtureRequest,
    operator_kubeconfig: Path,
    control_plane: ControlPlane,
    namespace: str,
    sim: Simulator,
) -> AsyncIterator[InProcessOperator]:
    """The operator as the `wukong` ServiceAccount, watching only this test's namespace.
    Any 403 it met fails the test: the RBAC in manifests/ must be exactly enough. Any of its
    requests that an admission webhook (KubeVirt's, the simulated CDI's) refused fails it too,
    unless the test is marked `kubevirt_refusal_expected`. `@pytest.mark.stall_after(s)` sets
    its Stalled bound."""
    since = audit.size(control_plane.audit_log)
    bound = request.node.get_closest_marker("stall_after")
    stall = {"stall_after": float(bound.args[0])} if bound is not None else {}
    async with InProcessOperator(operator_kubeconfig, namespace=namespace, **stall) as op:
        yield op
        refused = [
            f"{r.what} {r.name}: {r.code} {r.message}"
            for r in audit.read(control_plane.audit_log, since=since)
            if r.user == OPERATOR_USER and r.namespace == namespace and r.refused_by_webhook
        ]
        expected = request.node.get_closest_marker("kubevirt_refusal_expected")
        if expected is None:
            assert refused == [], f"admission webhooks refused the operator: {refused}"
        elif expected.args:  # only refusals of this kind are expected
            others = [r for r in refused if not re.search(expected.args[0], r)]
            assert others == [], f"admission webhooks refused the operator: {others}"
        assert op.operator is not None
        forbidden = [
            (s.labels["verb"], s.value)
            for metric in op.operator.metrics.kube_api_requests_total.collect()
            for s in metric.samples
            if s.labels.get("code") == "403" and s.value
        ]
        assert forbidden == [], f"the operator was refused (403): {forbidden}"


def requests_sent(op: InProcessOperator, **labels: str) -> float:
    """Requests to the Kubernetes API the operator has sent so far whose labels (verb in upper
    case, resource, code) are `labels`, from its own metrics."""
    assert op.operator is not None
    return sum(
        s.value
        for metric in op.operator.metrics.kube_api_requests_total.collect()
        for s in metric.samples
        if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in labels.items())
    )


@pytest.fixture
def k(kube: ApiClient) -> Kube:
    """The admin client as Wukong's own JSON client (raw objects, classified errors)."""
    return Kube(kube)


def wukong(
    name: str,
    *,
    disks: list[JsonObj] | None = None,
    networks: list[JsonObj] | None = None,
    **spec: Any,
) -> JsonObj:
    """A Wukong manifest: 1 cpu, 1Gi, one image disk unless told otherwise."""
    body: JsonObj = {
        "cpu": 1,
        "memory": "1Gi",
        "disks": disks
        if disks is not None
        else [{"name": "system", "size": "10Gi", "image": IMAGE}],
        "networks": networks or [],
    }
    body.update(spec)
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {"name": name},
        "spec": body,
    }


def user_nad(name: str) -> JsonObj:
    """A NAD made by the user (no owner)."""
    plugin = {"type": "bridge", "bridge": "br-x"}
    config = json.dumps({"cniVersion": "0.3.1", "name": name, "plugins": [plugin]})
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name},
        "spec": {"config": config},
    }


async def create(k: Kube, kind: str, namespace: str, obj: JsonObj) -> JsonObj:
    """Create an object in `namespace`."""
    obj["metadata"]["namespace"] = namespace
    return await k.create(path(kind, namespace), obj)


async def refused(k: Kube, namespace: str, body: JsonObj) -> str:
    """Create a Wukong the API server must refuse as invalid; its message, in the user's words."""
    with pytest.raises(Invalid) as refusal:
        await create(k, "wukong", namespace, body)
    return refusal.value.message


async def get(k: Kube, kind: str, namespace: str, name: str) -> JsonObj | None:
    """The object, or None."""
    try:
        return await k.get(path(kind, namespace, name))
    except NotFound:
        return None


async def items(k: Kube, kind: str, namespace: str) -> list[JsonObj]:
    """Every object of a kind in the namespace."""
    return list((await k.get(path(kind, namespace))).get("items", []))


def condition(cr: JsonObj, type_: str) -> JsonObj:
    """A condition of the Wukong's status ({} when absent)."""
    conds = (cr.get("status") or {}).get("conditions") or []
    return next((c for c in conds if c.get("type") == type_), {})


async def wait_for(
    k: Kube,
    namespace: str,
    name: str,
    check: Callable[[JsonObj], bool],
    *,
    within: float = 20,
    what: str = "",
) -> JsonObj:
    """Poll the Wukong until `check(cr)`; returns it. On timeout the error shows the Wukong's
    last status: what it was doing instead."""
    last: list[JsonObj | None] = [None]

    async def probe() -> JsonObj | None:
        cr = last[0] = await get(k, "wukong", namespace, name)
        return cr if cr is not None and check(cr) else None

    try:
        return await eventually(probe, timeout=within, message=what or f"{name}: condition")
    except AssertionError as timeout:
        raise AssertionError(f"{timeout}; last seen: {_summary(last[0])}") from timeout


def _summary(cr: JsonObj | None) -> str:
    """Phase, the conditions that are not plainly fine, and the last request's answer, in
    one line."""
    if cr is None:
        return "no such Wukong"
    status = cr.get("status") or {}
    conds = [
        f"{c.get('type')}={c.get('status')} {c.get('reason')}: {c.get('message')}"
        for c in status.get("conditions") or []
        if c.get("status") != "True" or c.get("type") not in ("Ready", "SpecValid")
    ]
    life = status.get("lifecycleState") or {}
    asked = (
        f"; lifecycleState {life.get('lastAction')} {life.get('state')} (generation "
        f"{life.get('generation')} of {cr.get('metadata', {}).get('generation')}): "
        f"{life.get('message')}"
        if life
        else ""
    )
    return f"phase {status.get('phase')!r}, {'; '.join(conds) or 'no conditions'}{asked}"


async def wait_phase(
    k: Kube, namespace: str, name: str, phase: str, *, within: float = 20
) -> JsonObj:
    """Poll until status.phase is `phase`."""
    return await wait_for(
        k,
        namespace,
        name,
        lambda cr: (cr.get("status") or {}).get("phase") == phase,
        within=within,
        what=f"{name} phase {phase}",
    )


async def wait_ready(k: Kube, namespace: str, name: str, *, within: float = 20) -> JsonObj:
    """Poll until the Wukong is Running and Ready (a Running guest can be not Ready yet, or
    any more: its pod terminating, paused)."""
    return await wait_for(
        k,
        namespace,
        name,
        lambda cr: (
            (cr.get("status") or {}).get("phase") == "Running"
            and condition(cr, "Ready").get("status") == "True"
        ),
        within=within,
        what=f"{name} Running and Ready",
    )


async def wukong_events(k: Kube, namespace: str, reason: str) -> list[JsonObj]:
    """The Events posted on Wukongs of `namespace` with this reason."""
    return [
        e
        for e in await items(k, "event", namespace)
        if e.get("reason") == reason and (e.get("involvedObject") or {}).get("kind") == "Wukong"
    ]


async def patch_spec(k: Kube, namespace: str, name: str, spec: JsonObj) -> JsonObj:
    """Merge-patch the Wukong's spec, as `kubectl patch --type merge` does."""
    return await k.merge_patch(path("wukong", namespace, name), {"spec": spec})


async def bound_account(k: Kube, namespace: str, account: str, kind: str, role: str) -> None:
    """A ServiceAccount `account` with `kind` (Role or ClusterRole) `role` in `namespace`."""
    await k.create(
        api_path("", "v1", "serviceaccounts", namespace),
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account}},
    )
    await k.create(
        api_path("rbac.authorization.k8s.io", "v1", "rolebindings", namespace),
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": f"{account}-{role}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        },
    )


async def took_over(proc: OperatorProcess) -> bool:
    """The operator process has finished a reconcile pass (its /metrics:
    wukong_reconcile_total)."""
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{proc.metrics_url}/metrics") as r:
            text = await r.text()
    except aiohttp.ClientError:
        return False
    return any(
        float(line.rsplit(" ", 1)[1]) > 0
        for line in text.splitlines()
        if line.startswith("wukong_reconcile_total{")
    )


def let_the_guest_go(sim: Simulator, namespace: str, vm: str) -> None:
    """End a slow power-off (SimConfig.acpi_shutdown_delay) now: the guest honours ACPI as
    fast as by default. Setting `acpi` (to what it was: the guest honours ACPI) has the node
    look at the VMI again, and it finds the shutdown done."""
    sim.config.acpi_shutdown_delay = SimConfig().acpi_shutdown_delay
    sim.guest(namespace, vm).acpi = True
