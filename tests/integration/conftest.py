"""Integration fixtures: one control plane per session; an admin client and namespace per test.

    async def test_something(kube: ApiClient, namespace: str) -> None: ...

Every test under tests/integration is marked `integration` automatically.

KubeVirt: by default (`WUKONG_KUBEVIRT=real`) KubeVirt's own virt-api and virt-controller, built
from source by hack/kubevirt/build.sh, run on the session's control plane and the simulator
plays only the node. `WUKONG_KUBEVIRT=sim` runs the pure simulator instead (faster; KubeVirt's
admission, subresource API and controllers are then our imitation).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient

from wukong.testing import audit
from wukong.testing.controlplane import ControlPlane, api_client, default_crd_paths
from wukong.testing.kubevirt.plane import KubeVirtPlane, crd_paths, kubevirt_assets
from wukong.testing.namespaces import temporary_namespace

MODES = ("real", "sim")


def kubevirt_mode() -> str:
    """ "real" (KubeVirt's own control plane, the default) or "sim" (the pure simulator)."""
    mode = os.environ.get("WUKONG_KUBEVIRT", "real")
    if mode not in MODES:
        raise pytest.UsageError(f"WUKONG_KUBEVIRT must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


_HERE = Path(__file__).parent


# Tests that restart the session's kube-apiserver run last. KubeVirt's components take a while
# to act again after a restart, longer than KubeVirtPlane.wait_ready() can see (its Lease
# renewing, webhooks answering): the test that ran next, in every full run, found no VMI made
# for its VM within 40 s. Last, they can disturb nobody.
RUN_LAST = ("test_fault_apiserver.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in this folder `integration` (select or deselect with -m), and move the
    API-server restarts to the end of the session."""
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)
    items.sort(key=lambda item: item.path.name in RUN_LAST)  # stable: the rest keep their order


@pytest.fixture(scope="session")
def kubevirt_assets_dir() -> Path | None:
    """KubeVirt's binaries and CRDs in real mode (built once, cached); None with the simulator."""
    return kubevirt_assets() if kubevirt_mode() == "real" else None


OPERATOR_USER = "system:serviceaccount:wukong-system:wukong"
# What the operator sent through KubeVirt's components, counted from the session's audit log:
# {"mode": ..., "version": ..., "vm": {"POST 201": n}, ...}. Under pytest-xdist each worker
# counts on its own control plane and hands its counts to the controller, which adds them.
_COUNTS: dict[str, Any] = {}
_TALLIES = ("vm", "dv", "sub", "snap", "denied")
_TOTALS = ("mutated", "refused")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """An xdist worker: hand this worker's counts to the controller."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None and _COUNTS:
        workeroutput["kubevirt_in_the_loop"] = dict(_COUNTS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """The xdist controller: add a worker's counts to the session's."""
    counts = getattr(node, "workeroutput", {}).get("kubevirt_in_the_loop")
    if counts:
        _add(_COUNTS, counts)


def _add(into: dict[str, Any], counts: dict[str, Any]) -> None:
    into.setdefault("mode", counts["mode"])
    into.setdefault("version", counts["version"])
    for key in _TALLIES:
        tally = into.setdefault(key, {})
        for what, n in counts.get(key, {}).items():
            tally[what] = tally.get(what, 0) + n
    for key in _TOTALS:
        into[key] = into.get(key, 0) + counts[key]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How much of the operator's traffic went through KubeVirt's own components."""
    if _COUNTS:
        terminalreporter.section("KubeVirt in the loop")
        for line in _describe(_COUNTS):
            terminalreporter.write_line(line)


def _count(plane: ControlPlane, mode: str, version: str) -> dict[str, Any]:
    requests = list(audit.read(plane.audit_log))
    ours = [r for r in requests if r.user == OPERATOR_USER]
    vm = [r for r in ours if r.resource == "virtualmachines" and not r.subresource]
    dv = [r for r in ours if r.resource == "datavolumes"]
    sub = [r for r in ours if r.group == "subresources.kubevirt.io"]
    snap = [r for r in ours if r.group == "snapshot.kubevirt.io"]

    def tally(rs: list[audit.Request]) -> dict[str, int]:
        return {f"{what} {code}": n for (what, code), n in audit.tally(rs).items()}

    return {
        "mode": mode,
        "version": version,
        "vm": tally(vm),
        "dv": tally(dv),
        "sub": tally(sub),
        "snap": tally(snap),
        # The API server's 403s to the operator, with its words: its rights as the authorizer
        # saw them (the `operator` fixture fails a test on any; OperatorProcess tests do not).
        "denied": dict(Counter(f"{r.what}: {r.message[:300]}" for r in ours if r.code == 403)),
        "mutated": sum(1 for r in vm if r.webhooks),
        "refused": sum(r.refused_by_webhook for r in ours),
    }


def _describe(counts: dict[str, Any]) -> list[str]:
    if counts["mode"] == "real":
        version = counts["version"]
        lines = [f"mode: real (virt-api and virt-controller {version}, built from source)"]
        webhooks = "KubeVirt's own webhooks (virt-api)"
        apis = "KubeVirt's own virt-api"
    else:
        lines = ["mode: sim (the pure simulator: no KubeVirt admission, simulated virt-api)"]
        webhooks, apis = "no webhooks (simulator)", "the simulator's subresource server"
    refusers = "KubeVirt's, the simulated CDI's" if counts["mode"] == "real" else "simulated CDI's"

    def total(key: str) -> int:
        return sum(counts[key].values())

    def listed(key: str) -> str:
        return ", ".join(f"{what} x{n}" for what, n in sorted(counts[key].items())) or "none"

    lines += [
        f"operator VirtualMachine requests: {total('vm')} through {webhooks} "
        f"({counts['mutated']} mutated by them): {listed('vm')}",
        f"operator DataVolume requests: {total('dv')} (CDI is simulated, its datavolume-mutate "
        f"webhook too): {listed('dv')}",
        f"operator subresource requests: {total('sub')} through {apis}: {listed('sub')}",
        f"operator snapshot and restore requests: {total('snap')} through {webhooks}: "
        f"{listed('snap')}",
        f"refused by admission webhooks ({refusers}): {counts['refused']}",
    ]
    lines += [f"operator denied (403): {what} x{n}" for what, n in sorted(counts["denied"].items())]
    return lines


@pytest.fixture(scope="session")
def shared_plane(kubevirt_assets_dir: Path | None) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + GC/namespace/PVC-protection controllers, with all CRDs installed."""
    if kubevirt_assets_dir is None:
        plane = ControlPlane()
    else:
        crds = [*default_crd_paths(real_kubevirt=True), *crd_paths(kubevirt_assets_dir)]
        plane = ControlPlane(default_crds=False, crds=crds)
    plane.start()
    try:
        yield plane
    finally:
        version = kubevirt_assets_dir.name if kubevirt_assets_dir is not None else ""
        _COUNTS.clear()
        _add(_COUNTS, _count(plane, kubevirt_mode(), version))
        plane.stop()


@pytest.fixture(scope="session")
def control_plane(shared_plane: ControlPlane, kubevirt: KubeVirtPlane | None) -> ControlPlane:
    """The session's control plane, with KubeVirt's components running on it in real mode."""
    return shared_plane


@pytest.fixture(scope="session")
def kubevirt(
    shared_plane: ControlPlane, kubevirt_assets_dir: Path | None
) -> Iterator[KubeVirtPlane | None]:
    """KubeVirt's own virt-api and virt-controller on the session's control plane (real mode)."""
    if kubevirt_assets_dir is None:
        yield None
        return
    plane = KubeVirtPlane(shared_plane, assets=kubevirt_assets_dir)
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def pure_sim_plane(
    shared_plane: ControlPlane, kubevirt: KubeVirtPlane | None
) -> Iterator[ControlPlane]:
    """A control plane for the simulator's own tests, which imitate KubeVirt themselves.

    In real mode the session's control plane runs KubeVirt's controllers, which would act on
    the same objects; those tests get a separate control plane with the hand-written CRDs.
    """
    if kubevirt is None:
        yield shared_plane
        return
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
