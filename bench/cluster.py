"""The bench's cluster: the local control plane, the simulator at zero delays, an admin client."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import psutil  # type: ignore[import-untyped]  # no stubs in the venv
from kubernetes_asyncio.client import ApiClient

from bench import apimetrics, manifests
from wukong.adapters.kube import JsonObj, Kube, api_path
from wukong.api import names
from wukong.errors import AlreadyExists
from wukong.testing.admission import install_finalizer_policy
from wukong.testing.controlplane import ControlPlane, api_client
from wukong.testing.kubevirt import SimConfig, Simulator

T = TypeVar("T")

WUKONG = (names.GROUP, names.VERSION, names.PLURAL)
VM = (names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, "virtualmachines")
VMI = (names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, "virtualmachineinstances")
PVC = ("", "v1", "persistentvolumeclaims")
NAD = (names.NAD_GROUP, names.NAD_VERSION, names.NAD_PLURAL)
POD = ("", "v1", "pods")


def zero_delays() -> SimConfig:
    """A simulator whose every delay is 0: what is left to measure is the control loop."""
    config = SimConfig()
    for f in fields(SimConfig):
        if f.name.endswith("_delay"):
            setattr(config, f.name, 0.0)
    return config


def path(kind: tuple[str, str, str], namespace: str, name: str | None = None) -> str:
    """REST path of one of the kinds above."""
    return api_path(*kind, namespace, name)


@dataclass
class Cluster:
    """What every phase needs: the plane, the simulator, and an admin JSON client."""

    plane: ControlPlane
    sim: Simulator
    api: ApiClient
    kube: Kube

    async def namespace(self, name: str) -> str:
        """Create a namespace (fresh per measured size)."""
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        try:
            await self.kube.create("/api/v1/namespaces", body)
        except AlreadyExists:
            pass
        return name

    async def empty(self, namespace: str, *, within: float) -> float:
        """Delete the VMs, then the claims and NADs, of a namespace, and wait until nothing
        of them is left (the VMIs and launcher pods go with the VMs); the seconds it took.
        Faster than deleting the namespace, whose controller backs off while claims wait
        for their protection finalizer (over a minute for 20 VMs)."""
        began = time.monotonic()
        steps = (((VM,), (VM, VMI, POD)), ((PVC, NAD), (PVC, NAD)))  # (deleted, waited for)
        for deleted, waited in steps:
            for kind in deleted:
                await self.kube.request("DELETE", path(kind, namespace))
            while any([(await self.kube.get(path(k, namespace)))["items"] for k in waited]):
                if time.monotonic() - began > within:
                    raise TimeoutError(f"namespace {namespace} not empty after {within:.0f} s")
                await asyncio.sleep(1.0)
        return time.monotonic() - began

    def cpu_seconds(self, **more: int) -> dict[str, float]:
        """CPU seconds (user + system) so far of etcd, kube-apiserver, the controller manager,
        this process (the simulator and the bench) and any `more` processes by name."""
        pids = {psutil.Process(pid).name(): pid for pid in self.plane.pids}
        pids |= {"simulator+bench": os.getpid(), **more}
        used: dict[str, float] = {}
        for name, pid in pids.items():
            times = psutil.Process(pid).cpu_times()
            used[name] = times.user + times.system
        return used

    async def apiserver_requests(self) -> apimetrics.Samples:
        """The API server's apiserver_request_total right now."""
        raw = await self.kube.request("GET", "/metrics")
        return apimetrics.parse(str(raw.get("raw", "")), "apiserver_request_total")


@asynccontextmanager
async def cluster() -> AsyncIterator[Cluster]:
    """Start etcd + kube-apiserver + controller manager and the simulator; stop them after."""
    # No resource-quota controller: its watches of every resource would add the same API
    # server CPU to the floor and to the operator's run, and earlier runs had none to compare.
    plane = ControlPlane(quotas=False)
    await asyncio.to_thread(plane.start)
    try:
        async with await api_client(plane.kubeconfig) as api:
            kube = Kube(api)
            policies = api_path(names.GROUP, names.VERSION, "wukongnetworkpolicies")
            await kube.create(policies, manifests.network_policy())
            # As the cluster-wide install has it: the API server sets the finalizer at create.
            await install_finalizer_policy(plane, kube, "default")
            async with Simulator(plane.kubeconfig, config=zero_delays()) as sim:
                yield Cluster(plane, sim, api, kube)
    finally:
        await asyncio.to_thread(plane.stop)


async def bounded(items: Iterable[T], work: Callable[[T], Awaitable[Any]], in_flight: int) -> None:
    """Run `work` on every item with at most `in_flight` running at once."""
    gate = asyncio.Semaphore(in_flight)

    async def one(item: T) -> None:
        async with gate:
            await work(item)

    async with asyncio.TaskGroup() as group:
        for item in items:
            group.create_task(one(item))


async def create_all(kube: Kube, docs: Iterable[tuple[str, JsonObj]], in_flight: int) -> None:
    """POST each (collection path, object), `in_flight` at a time."""

    async def create(doc: tuple[str, JsonObj]) -> None:
        await kube.create(*doc)

    await bounded(docs, create, in_flight)
