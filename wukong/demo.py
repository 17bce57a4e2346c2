"""`wukong demo`: a local kube-apiserver, the KubeVirt simulator and the operator, then
`examples/*.yaml` applied and followed live until every Wukong has settled."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio.client import ApiClient

from wukong.adapters.kube import Kube, api_path
from wukong.api import names
from wukong.errors import AlreadyExists
from wukong.testing.controlplane import ControlPlane, api_client, default_crd_paths
from wukong.testing.kubevirt import SimConfig, Simulator
from wukong.testing.kubevirt.plane import KubeVirtPlane, crd_paths, kubevirt_assets
from wukong.testing.operator import InProcessOperator

NAMESPACE = "demo"
DEMO_IMAGE = "docker://quay.io/containerdisks/fedora:40"  # as examples/web-1.yaml
DEMO_POD_NETWORK = "127.245"  # not the port-forward tests' 127.244: a kept demo beside a test run
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PLURALS = {
    "NetworkAttachmentDefinition": names.NAD_PLURAL,
    "Wukong": names.PLURAL,
    "WukongNetworkPolicy": "wukongnetworkpolicies",
}
CLUSTER_SCOPED = {"WukongNetworkPolicy"}  # the administrator's, not the demo namespace's
SETTLED = {"Running", "Stopped", "Error"}


def _say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {text}", flush=True)


async def apply_file(kube: Kube, text: str, namespace: str) -> list[str]:
    """Create every object of a YAML text in `namespace`; returns 'Kind/name' for each."""
    created = []
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        group, _, version = str(doc["apiVersion"]).rpartition("/")
        plural = PLURALS.get(doc["kind"], doc["kind"].lower() + "s")
        where = None if doc["kind"] in CLUSTER_SCOPED else namespace
        if where is not None:
            doc.setdefault("metadata", {})["namespace"] = where
        try:
            await kube.create(api_path(group, version, plural, where), doc)
        except AlreadyExists:
            pass
        created.append(f"{doc['kind']}/{doc['metadata']['name']}")
    return created


def _row(cr: dict[str, Any]) -> list[str]:
    status = cr.get("status") or {}
    ips = [i.get("ipAddress", "") for i in status.get("interfaces") or []]
    age = ""
    return [
        cr["metadata"]["name"],
        status.get("phase", ""),
        status.get("vmName") or "",
        status.get("nodeName") or "",
        ips[0] if ips else "",
        age,
    ]


def table(items: list[dict[str, Any]]) -> str:
    """`kubectl get wk`-style output."""
    rows = [["NAME", "PHASE", "VM", "NODE", "IP"]] + [_row(c)[:5] for c in items]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join(
        "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _settled(cr: dict[str, Any]) -> bool:
    """Stopped or failed, or running with an address to show."""
    status = cr.get("status") or {}
    if status.get("phase") == "Running":
        return bool((status.get("interfaces") or [{}])[0].get("ipAddress"))
    return status.get("phase") in SETTLED


def _progress(cr: dict[str, Any]) -> str:
    status = cr.get("status") or {}
    disks = [
        f"{v['name']}:{v.get('progress') or v.get('phase', '')}"
        for v in status.get("volumes") or []
    ]
    return " ".join(disks)


async def follow(kube: Kube, namespace: str, *, within: float = 180) -> list[dict[str, Any]]:
    """Print every phase change until all Wukongs settle; return them."""
    seen: dict[str, tuple[str, str]] = {}
    deadline = time.monotonic() + within
    items: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        listing = await kube.get(api_path(names.GROUP, names.VERSION, names.PLURAL, namespace))
        items = listing.get("items", [])
        for cr in items:
            name = cr["metadata"]["name"]
            phase = (cr.get("status") or {}).get("phase", "Pending")
            now = (phase, _progress(cr))
            if seen.get(name) != now:
                seen[name] = now
                _say(f"{name:8} {phase:10} {now[1]}")
        if items and all(_settled(c) for c in items):
            return items
        await asyncio.sleep(0.5)
    raise Unsettled([c for c in items if not _settled(c)], within)


def _held(cr: dict[str, Any]) -> str:
    """The conditions in trouble (a False one other than Ready, or Stalled=True), as
    `Type=Status Reason: message`; Ready's words when none is."""
    conditions = (cr.get("status") or {}).get("conditions") or []
    bad = [
        c
        for c in conditions
        if (c.get("type"), c.get("status")) == ("Stalled", "True")
        or (c.get("type") not in ("Ready", "Stalled") and c.get("status") == "False")
    ]
    chosen = bad or [c for c in conditions if c.get("type") == "Ready"]
    return "; ".join(
        f"{c['type']}={c.get('status')} {c.get('reason') or ''}: {c.get('message') or ''}"
        for c in chosen
    )


class Unsettled(Exception):
    """Wukongs of the demo that did not settle in time."""

    def __init__(self, items: list[dict[str, Any]], within: float) -> None:
        self.items, self.within = items, within
        super().__init__(f"{len(items)} Wukong(s) did not settle within {within:g}s")

    def lines(self) -> list[str]:
        """One line per Wukong: its phase, and what its conditions say holds it back."""
        said = []
        for cr in self.items:
            phase = (cr.get("status") or {}).get("phase", "Pending")
            held = _held(cr) or "no condition says why"
            said.append(f"{cr['metadata']['name']} is still {phase}: {held}")
        return said


async def _cli(kubeconfig: Path, *args: str) -> int:
    """Run `wukong ARGS` as a user would, in the demo's cluster; its output goes through."""
    print(f"\n$ wukong {' '.join(args)}", flush=True)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wukong", *args, env={**os.environ, "KUBECONFIG": str(kubeconfig)}
    )
    return await proc.wait()


async def _scenario(
    api: ApiClient, keep: bool, kubeconfig: Path | None = None, snapshots: bool = False
) -> int:
    kube = Kube(api)
    await kube.create(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
    )
    files = {p.name: p.read_text() for p in sorted(EXAMPLES.glob("*.yaml"))}
    for name, text in files.items():
        applied = await apply_file(kube, text, NAMESPACE)
        _say(f"kubectl apply -f examples/{name}: " + ", ".join(applied))
    try:
        items = await follow(kube, NAMESPACE)
    except Unsettled as stuck:
        _say(f"the demo failed: {stuck}")
        for line in stuck.lines():
            _say(f"  {line}")
        return 1
    print("\n$ kubectl get wk -n demo\n" + table(items), flush=True)
    for cr in items:
        conds = ", ".join(f"{c['type']}={c['status']}" for c in cr["status"]["conditions"])
        print(f"\n{cr['metadata']['name']}: {conds}")
    if snapshots and kubeconfig is not None:
        # KubeVirt's own snapshot controller (virt-controller) takes it; the pure simulator
        # has none.
        taken = await _cli(
            kubeconfig, "snapshot", "web-1", "-n", NAMESPACE, "--snapshot-name", "first", "--wait"
        )
        if taken != 0:
            return taken
    if keep:
        _say("the cluster keeps running: Ctrl-C to stop. In another shell, for example:")
        where = f"export KUBECONFIG={kubeconfig}\n" if kubeconfig is not None else ""
        print(
            f"\n{where}wukong status -n {NAMESPACE}\n"
            f"wukong create web-3 -n {NAMESPACE} --image {DEMO_IMAGE} --disk data=1Gi --wait\n"
            f"wukong logs web-3 -n {NAMESPACE}\n"
            f"wukong port-forward web-3 -n {NAMESPACE} 2222:22    # nc localhost 2222: its sshd\n"
            f"wukong stop web-3 -n {NAMESPACE} --wait\n"
            + (
                f"wukong snapshot web-3 -n {NAMESPACE} --snapshot-name before --wait\n"
                f"wukong restore web-3 -n {NAMESPACE} --snapshot-name before --wait\n"
                if snapshots
                else ""
            )
            + f"wukong describe web-3 -n {NAMESPACE}",
            flush=True,
        )
        await asyncio.Event().wait()
    return 0


async def main(*, keep: bool = False, real_kubevirt: bool = True) -> int:
    """Run the demo; returns the process exit code."""
    assets = None
    if real_kubevirt:
        _say("KubeVirt's virt-api and virt-controller: building from source if not cached")
        assets = await asyncio.to_thread(kubevirt_assets)
    _say("starting the local control plane (etcd, kube-apiserver, kube-controller-manager)")
    if assets is None:
        plane = ControlPlane()
    else:
        crds = await asyncio.to_thread(crd_paths, assets)
        crds = [*default_crd_paths(real_kubevirt=True), *crds]
        plane = ControlPlane(default_crds=False, crds=crds)
    await asyncio.to_thread(plane.start)
    kubevirt = KubeVirtPlane(plane, assets=assets) if assets is not None else None
    try:
        _say(
            f"control plane ready in {plane.startup_seconds or 0:.1f}s; "
            f"kubeconfig: {plane.kubeconfig}"
        )
        if kubevirt is not None:
            await asyncio.to_thread(kubevirt.start)
            _say(
                f"KubeVirt {kubevirt.version} running in {kubevirt.startup_seconds or 0:.1f}s: "
                "virt-api (webhooks, subresource API) and virt-controller, built from source"
            )
        endpoints = kubevirt.endpoints if kubevirt is not None else None
        # The VMs' addresses on this machine's loopback, where the simulated guests listen
        # (sshd's banner on 22): `wukong port-forward` reaches them as on a cluster.
        config = SimConfig(pod_cidr_prefix=DEMO_POD_NETWORK)
        async with Simulator(plane.kubeconfig, kubevirt=endpoints, config=config) as _sim:
            if kubevirt is not None:
                _say("node simulated: scheduler, kubelet, virt-handler, CDI importer, CSI driver")
            else:
                _say("KubeVirt/CDI simulator running (subresources via the aggregation layer)")
            async with InProcessOperator(plane.kubeconfig):
                _say("operator running; caches synced")
                async with await api_client(plane.kubeconfig) as api:
                    return await _scenario(
                        api, keep, plane.kubeconfig, snapshots=kubevirt is not None
                    )
    finally:
        if kubevirt is not None:
            await asyncio.to_thread(kubevirt.stop)
        await asyncio.to_thread(plane.stop)
