"""A KubeVirt/CDI/storage controller simulator that runs against a real kube-apiserver.

Only controllers are simulated; every object lives in the API server. Start it next to the
control plane::

    async with Simulator(kubeconfig, namespace="ns1") as sim:
        ...                       # create VirtualMachines, DataVolumes, PVCs as usual
        sim.guest("ns1", "vm1").mount("data", "/data")
        sim.faults.fail_next("stop", 409)
        sim.calls                 # every subresource request received

It knows nothing about Wukong: it only reads and writes KubeVirt, CDI and core objects.

With KubeVirt's own virt-api and virt-controller running (`KubeVirtPlane`), pass
`kubevirt=plane.endpoints` and the simulator plays only the node: scheduler, kubelet,
virt-handler (and its HTTPS API), CDI importers and the CSI driver; see `node.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from pathlib import Path

from kubernetes_asyncio.client import ApiClient, Configuration

from wukong.testing._background import Background

from ._informer import Informer, set_finalizers
from ._kube import (
    DATAVOLUMES,
    PVCS,
    SECRETS,
    STORAGECLASSES,
    VMIS,
    VMS,
    ApiError,
    JsonObj,
    Kube,
    load_client,
)
from .access_credentials import AccessCredentials
from .cdi import (
    DATASOURCES,
    DataSourceController,
    DataVolumeController,
    install_clone_authorization,
)
from .cdi_config import CDI_CONFIGS, CDIS, CDIConfigController, install_cdi
from .cdi_webhook import DataVolumeMutateWebhook
from .config import SimConfig
from .faults import Faults
from .guest import Guest, Mount
from .guest_net import GuestNetwork
from .kubelet_logs import KubeletLogServer
from .migration import MIGRATIONS, MigrationController
from .node import PODS, HandlerServer, Kubelet, KubeVirtEndpoints, NodeHandler, ensure_nodes
from .objects import VM_CONTROLLER_FINALIZER, VMI_FINALIZER
from .snapshots import VOLUMESNAPSHOTS, SnapshotController, install_snapshot_class
from .storage import StorageController, install_storage_classes
from .subresources import SubresourceCall, SubresourceServer
from .virt_controller import VMController
from .virt_handler import VMIHandler

__all__ = [
    "Faults",
    "Guest",
    "KubeVirtEndpoints",
    "Mount",
    "SimConfig",
    "Simulator",
    "SubresourceCall",
]


class Simulator(Background):
    """virt-controller, virt-handler, virt-api subresources, CDI and a CSI driver, in-process."""

    def __init__(
        self,
        kubeconfig: str | Path | ApiClient | Configuration,
        namespace: str | None = None,
        config: SimConfig | None = None,
        kubevirt: KubeVirtEndpoints | None = None,
    ) -> None:
        self.source = kubeconfig
        self.namespace = namespace
        self.config = config or SimConfig()
        self.kubevirt = kubevirt
        self._handler_server: HandlerServer | None = None
        self._kubelet_logs: KubeletLogServer | None = None
        self._cdi_webhook: DataVolumeMutateWebhook | None = None
        self._handler_api: ApiClient | None = None
        self._node: NodeHandler | None = None
        self._net: GuestNetwork | None = None
        self.faults = Faults()
        self._guests: dict[tuple[str, str], Guest] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._api: ApiClient | None = None
        self._server: SubresourceServer | None = None
        self._handler: VMIHandler | None = None
        self._kubelet: Kubelet | None = None
        self._informers: list[Informer] = []

    @property
    def calls(self) -> list[SubresourceCall]:
        """Every subresource call received, oldest first."""
        return self._server.calls if self._server is not None else []

    @property
    def handler_calls(self) -> list[tuple[str, str, str, int]]:
        """With KubeVirt's own virt-api: each call it made to the node's virt-handler, as
        (method, namespace, "vmi/subresource", status), oldest first; none in the pure
        simulator."""
        return list(self._handler_server.calls) if self._handler_server is not None else []

    @property
    def port(self) -> int:
        """Local port of the subresource HTTPS server (0 when not serving)."""
        return self._server.port if self._server is not None else 0

    @property
    def vmi_statuses_written(self) -> list[JsonObj]:
        """With KubeVirt's own virt-controller: each VMI status the node wrote, as stored
        (the newest 1,000); none in the pure simulator."""
        return list(self._node.written) if self._node is not None else []

    def guest(self, namespace: str, name: str) -> Guest:
        """The guest OS of VM/VMI `name`; it outlives VMI restarts. Created on first use."""
        key = (namespace, name)
        if key not in self._guests:
            self._guests[key] = Guest(
                namespace, name, agent_connected=self.config.agent, on_change=self._guest_changed
            )
        return self._guests[key]

    def _guest_changed(self, guest: Guest) -> None:
        key = f"{guest.namespace}/{guest.name}"
        if self._handler is not None:
            self._handler.enqueue(key)
        if self._node is not None:
            self._node.enqueue(key)
        if self._net is not None:
            self._net.enqueue(key)

    async def lose_node(self, node: str, *, ago: float = 0.0) -> None:
        """The machine behind `node` is gone (power, network), as the cluster sees it a
        minute later: nothing on it moves any more, the Node is Ready=Unknown and tainted
        unreachable, and its pods are not Ready, so their VMIs are not Ready either. The VMIs
        keep their phase: KubeVirt still sees their pods. `ago`: seconds since the pods were
        marked not Ready (their Ready condition's lastTransitionTime). With real KubeVirt, use
        nodes of the test's own (`SimConfig.nodes`): a lost node stays lost for later tests."""
        assert self._kubelet is not None, "the simulator is not running"
        await self._kubelet.lose(node, node_object=self.real_kubevirt, ago=ago)

    async def evict_node_pods(self, node: str) -> None:
        """The lost `node`'s pods evicted, as 5 minutes later on a cluster: deleted, and
        Terminating for good (no kubelet confirms). KubeVirt's VMIs stay Running, not Ready."""
        assert self._kubelet is not None, "the simulator is not running"
        await self._kubelet.evict(node)

    async def fence_node(self, node: str) -> None:
        """The lost `node`'s pods end, as minutes later on a cluster: evicted, then, once an
        administrator marks the node out of service, failed and force-deleted by PodGC. KubeVirt
        fails their VMIs (and under runStrategy Always starts new ones on another node)."""
        assert self._kubelet is not None, "the simulator is not running"
        await self._kubelet.fence(node, node_object=self.real_kubevirt)

    @property
    def real_kubevirt(self) -> bool:
        """True when KubeVirt's own virt-api and virt-controller run and this is only the node."""
        return self.kubevirt is not None

    async def start(self) -> None:
        """Install storage classes, sync caches, start controllers and the subresource API."""
        self._api = await load_client(self.source)
        kube = Kube(self._api)
        if self.kubevirt is not None:
            try:
                await self._start_node(kube, self.kubevirt)
            except BaseException:
                await self.stop()
                raise
            return
        try:
            await install_storage_classes(kube, self.config)
            await install_clone_authorization(kube)
            await install_cdi(kube)
            await self._serve_cdi_webhook(kube)
            ns = self.namespace
            vms, vmis = Informer(kube, VMS, ns), Informer(kube, VMIS, ns)
            dvs, pvcs = Informer(kube, DATAVOLUMES, ns), Informer(kube, PVCS, ns)
            classes = Informer(kube, STORAGECLASSES)
            migrations, pods = Informer(kube, MIGRATIONS, ns), Informer(kube, PODS, ns)
            secrets, sources = Informer(kube, SECRETS, ns), Informer(kube, DATASOURCES, ns)
            cdis, configs = Informer(kube, CDIS), Informer(kube, CDI_CONFIGS)
            self._informers = [vms, vmis, dvs, pvcs, classes, migrations, pods, secrets, sources]
            self._informers += [cdis, configs]
            snapshotting = await self._snapshotter(kube, pvcs)
            cfg = self.config
            self._handler = VMIHandler(kube, cfg, vmis, vms, dvs, pvcs, self.guest, pods)
            # The node's scheduler and kubelet run the virt-launcher pods, node_name first.
            nodes = (cfg.node_name, *(n for n in cfg.nodes if n != cfg.node_name))
            self._kubelet = Kubelet(kube, dataclasses.replace(cfg, nodes=nodes), pods, vmis, vms)
            self._handler.lost = self._kubelet.lost
            migrating = MigrationController(kube, cfg, migrations, vmis)
            migrating.lost = self._kubelet.lost
            self._net = GuestNetwork(vmis, self.guest)
            controllers = [
                self._net,
                AccessCredentials(vmis, secrets, self.guest),
                VMController(kube, cfg, vms, vmis, dvs, pvcs),
                self._kubelet,
                migrating,
                self._handler,
                DataVolumeController(kube, cfg, self.faults, dvs, pvcs, classes, pods, configs),
                DataSourceController(kube, sources, dvs, pvcs),
                StorageController(kube, cfg, pvcs, classes, vmis),
                CDIConfigController(kube, cdis, configs, classes),
                *snapshotting,
            ]
            self._tasks = [asyncio.create_task(i.run()) for i in self._informers]
            await asyncio.wait_for(asyncio.gather(*(i.synced.wait() for i in self._informers)), 30)
            self._tasks += [asyncio.create_task(c.run()) for c in controllers]
            if cfg.serve_subresources:
                self._server = SubresourceServer(
                    kube, self.guest, self.faults, report_interval=cfg.guest_report_interval
                )
                await self._server.start()
                await self._server.register(cfg.api_timeout)
        except BaseException:
            await self.stop()
            raise

    async def _serve_cdi_webhook(self, kube: Kube) -> None:
        """CDI's datavolume-mutate webhook, for this simulator's namespace (all if None)."""
        self._cdi_webhook = DataVolumeMutateWebhook(kube, self.namespace)
        await self._cdi_webhook.start(self.config.api_timeout)

    async def _snapshotter(self, kube: Kube, pvcs: Informer) -> list[SnapshotController]:
        """The CSI snapshotter, when the cluster has the VolumeSnapshot CRDs (its informer
        joins the others)."""
        if not await install_snapshot_class(kube):
            return []
        snapshots = Informer(kube, VOLUMESNAPSHOTS, self.namespace)
        self._informers.append(snapshots)
        return [SnapshotController(kube, snapshots, pvcs)]

    async def _start_node(self, kube: Kube, endpoints: KubeVirtEndpoints) -> None:
        """Only the node: KubeVirt's own virt-api and virt-controller do the rest."""
        cfg, ns = self.config, self.namespace
        await install_storage_classes(kube, cfg)
        await install_clone_authorization(kube)
        await install_cdi(kube)
        await self._serve_cdi_webhook(kube)
        addresses = await ensure_nodes(kube, cfg, endpoints)
        vms, vmis = Informer(kube, VMS, ns), Informer(kube, VMIS, ns)
        dvs, pvcs = Informer(kube, DATAVOLUMES, ns), Informer(kube, PVCS, ns)
        pods, classes = Informer(kube, PODS, ns), Informer(kube, STORAGECLASSES)
        secrets, sources = Informer(kube, SECRETS, ns), Informer(kube, DATASOURCES, ns)
        cdis, configs = Informer(kube, CDIS), Informer(kube, CDI_CONFIGS)
        self._informers = [vms, vmis, dvs, pvcs, pods, classes, secrets, sources, cdis, configs]
        snapshotting = await self._snapshotter(kube, pvcs)
        self._handler_api = await load_client(endpoints.handler_kubeconfig)
        self._node = NodeHandler(kube, cfg, vmis, vms, pvcs, self.guest, Kube(self._handler_api))
        self._kubelet = Kubelet(kube, cfg, pods, vmis, vms)
        self._node.lost = self._kubelet.lost
        self._net = GuestNetwork(vmis, self.guest)
        controllers = [
            self._net,
            AccessCredentials(vmis, secrets, self.guest),
            self._kubelet,
            self._node,
            DataVolumeController(kube, cfg, self.faults, dvs, pvcs, classes, pods, configs),
            DataSourceController(kube, sources, dvs, pvcs),
            StorageController(kube, cfg, pvcs, classes, vmis),
            CDIConfigController(kube, cdis, configs, classes),
            *snapshotting,
        ]
        self._tasks = [asyncio.create_task(i.run()) for i in self._informers]
        await asyncio.wait_for(asyncio.gather(*(i.synced.wait() for i in self._informers)), 30)
        self._tasks += [asyncio.create_task(c.run()) for c in controllers]
        self._handler_server = HandlerServer(kube, endpoints, self._node, self.guest)
        await self._handler_server.start()
        self._kubelet_logs = KubeletLogServer(kube, self.guest, addresses, endpoints.kubelet_port)
        await self._kubelet_logs.start()
        if cfg.serve_subresources:
            self._server = SubresourceServer(kube, self.guest, self.faults, forward_to=endpoints)
            await self._server.start()
            await self._server.register(cfg.api_timeout)

    async def stop(self) -> None:
        """Unregister the APIService and CDI's webhook, stop every loop, release our
        finalizers, close the client."""
        unregistered: Exception | None = None
        if self._cdi_webhook is not None:
            # First, and served until the end: the API server calls it for every DataVolume
            # write in the namespace, and refuses the write while nobody answers (failurePolicy
            # Fail) until its watch has seen the configuration go.
            try:
                await self._cdi_webhook.unregister()
            except Exception as err:  # reported once everything is closed
                unregistered = err
        if self._handler_server is not None:
            await self._handler_server.stop()
            self._handler_server = None
        if self._kubelet_logs is not None:
            await self._kubelet_logs.stop()
            self._kubelet_logs = None
        if self._server is not None:
            # Whatever the API server answers, everything below still runs: a stop cut short
            # here (a 409) once left sockets that a later test found as ResourceWarnings.
            try:
                await self._server.unregister()
            except Exception as err:  # reported once everything is closed
                unregistered = unregistered or err
            await self._server.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._handler_api is not None:
            await self._handler_api.close()
            self._handler_api = None
        if self._cdi_webhook is not None:
            await self._cdi_webhook.close()
            self._cdi_webhook = None
        if self._api is not None:
            with contextlib.suppress(Exception):
                await self._release_finalizers(Kube(self._api))
            await self._api.close()
            self._api = None
        if unregistered is not None:
            raise unregistered

    async def _release_finalizers(self, kube: Kube) -> None:
        # Nobody is left to process deletions: let namespaces and GC finish without us.
        # Real virt-controller stays and finishes VMs and VMIs once no pod waits for a kubelet;
        # a pod bound to a node whose kubelet is gone would block its namespace's deletion:
        # end this node's pods now, as a drained node would.
        listing = await kube.request("GET", PODS.path(self.namespace))
        for pod in listing.get("items", []):
            meta = pod["metadata"]
            if self.kubevirt is not None and meta.get("namespace") == self.kubevirt.namespace:
                continue  # virt-handler's own pods stay for the next simulator
            if self.kubevirt is None and (meta.get("labels") or {}).get("kubevirt.io") != (
                "virt-launcher"
            ):
                continue  # the pure simulator's kubelet ran only the launchers it created
            await kube.request(
                "DELETE", PODS.path(meta["namespace"], meta["name"]), {"gracePeriodSeconds": 0}
            )
        if self.kubevirt is not None:
            return
        if not self.config.finalizers:
            return
        for res, finalizers in (
            (VMIS, (VM_CONTROLLER_FINALIZER, VMI_FINALIZER)),
            (VMS, (VM_CONTROLLER_FINALIZER,)),
        ):
            cache = Informer(kube, res, self.namespace)
            listing = await kube.request("GET", res.path(self.namespace))
            for obj in listing.get("items", []):
                for finalizer in finalizers:
                    try:
                        obj = await set_finalizers(kube, cache, res, obj, remove=finalizer)
                    except ApiError:
                        break
