"""A KubeVirt/CDI/storage controller simulator that runs against a real kube-apiserver.

Only controllers are simulated; every object lives in the API server. Start it next to the
control plane::

    async with Simulator(kubeconfig, namespace="ns1") as sim:
        ...                       # create VirtualMachines, DataVolumes, PVCs as usual
        sim.guest("ns1", "vm1").mount("data", "/data")
        sim.faults.fail_next("stop", 409)
        sim.calls                 # every subresource request received

It knows nothing about Wukong: it only reads and writes KubeVirt, CDI and core objects.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from kubernetes_asyncio.client import ApiClient, Configuration

from wukong.testing._background import Background

from ._informer import Informer, set_finalizers
from ._kube import DATAVOLUMES, PVCS, STORAGECLASSES, VMIS, VMS, ApiError, Kube, load_client
from .cdi import DataVolumeController
from .config import SimConfig
from .faults import Faults
from .guest import Guest, Mount
from .objects import VM_CONTROLLER_FINALIZER, VMI_FINALIZER
from .storage import StorageController, install_storage_classes
from .subresources import SubresourceCall, SubresourceServer
from .virt_controller import VMController
from .virt_handler import VMIHandler

__all__ = ["Faults", "Guest", "Mount", "SimConfig", "Simulator", "SubresourceCall"]


class Simulator(Background):
    """virt-controller, virt-handler, virt-api subresources, CDI and a CSI driver, in-process."""

    def __init__(
        self,
        kubeconfig: str | Path | ApiClient | Configuration,
        namespace: str | None = None,
        config: SimConfig | None = None,
    ) -> None:
        self.source = kubeconfig
        self.namespace = namespace
        self.config = config or SimConfig()
        self.faults = Faults()
        self._guests: dict[tuple[str, str], Guest] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._api: ApiClient | None = None
        self._server: SubresourceServer | None = None
        self._handler: VMIHandler | None = None
        self._informers: list[Informer] = []

    @property
    def calls(self) -> list[SubresourceCall]:
        """Every subresource call received, oldest first."""
        return self._server.calls if self._server is not None else []

    @property
    def port(self) -> int:
        """Local port of the subresource HTTPS server (0 when not serving)."""
        return self._server.port if self._server is not None else 0

    def guest(self, namespace: str, name: str) -> Guest:
        """The guest OS of VM/VMI `name`; it outlives VMI restarts. Created on first use."""
        key = (namespace, name)
        if key not in self._guests:
            self._guests[key] = Guest(
                namespace, name, agent_connected=self.config.agent, on_change=self._guest_changed
            )
        return self._guests[key]

    def _guest_changed(self, guest: Guest) -> None:
        if self._handler is not None:
            self._handler.enqueue(f"{guest.namespace}/{guest.name}")

    async def start(self) -> None:
        """Install storage classes, sync caches, start controllers and the subresource API."""
        self._api = await load_client(self.source)
        kube = Kube(self._api)
        try:
            await install_storage_classes(kube, self.config)
            ns = self.namespace
            vms, vmis = Informer(kube, VMS, ns), Informer(kube, VMIS, ns)
            dvs, pvcs = Informer(kube, DATAVOLUMES, ns), Informer(kube, PVCS, ns)
            classes = Informer(kube, STORAGECLASSES)
            self._informers = [vms, vmis, dvs, pvcs, classes]
            cfg = self.config
            self._handler = VMIHandler(kube, cfg, vmis, vms, dvs, pvcs, self.guest)
            controllers = [
                VMController(kube, cfg, vms, vmis, dvs, pvcs),
                self._handler,
                DataVolumeController(kube, cfg, self.faults, dvs, pvcs, classes),
                StorageController(kube, cfg, pvcs, classes, vmis),
            ]
            self._tasks = [asyncio.create_task(i.run()) for i in self._informers]
            await asyncio.wait_for(asyncio.gather(*(i.synced.wait() for i in self._informers)), 30)
            self._tasks += [asyncio.create_task(c.run()) for c in controllers]
            if cfg.serve_subresources:
                self._server = SubresourceServer(kube, self.guest, self.faults)
                await self._server.start()
                await self._server.register(cfg.api_timeout)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Unregister the APIService, stop every loop, release our finalizers, close the client."""
        if self._server is not None:
            await self._server.unregister()
            await self._server.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._api is not None:
            with contextlib.suppress(Exception):
                await self._release_finalizers(Kube(self._api))
            await self._api.close()
            self._api = None

    async def _release_finalizers(self, kube: Kube) -> None:
        # Nobody is left to process deletions: let namespaces and GC finish without us.
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
