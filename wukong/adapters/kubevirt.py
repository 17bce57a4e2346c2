"""KubeVirt: VirtualMachine objects and the subresource API served by virt-api.

Subresources are called at the URLs a real cluster serves, through the API server's
aggregation layer (`/apis/subresources.kubevirt.io/v1/...`). Bodies follow KubeVirt's
types (StopOptions.gracePeriod, RestartOptions.gracePeriodSeconds, AddVolumeOptions).
"""

from __future__ import annotations

from wukong.adapters.kube import Kube, api_path
from wukong.api import JsonObj, names


def vm_path(namespace: str, name: str | None = None) -> str:
    """REST path of a VirtualMachine (or the collection)."""
    group, version = names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION
    return api_path(group, version, "virtualmachines", namespace, name)


def vmi_path(namespace: str, name: str | None = None) -> str:
    """REST path of a VirtualMachineInstance (or the collection)."""
    group, version = names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION
    return api_path(group, version, "virtualmachineinstances", namespace, name)


def migration_path(namespace: str, name: str | None = None) -> str:
    """REST path of a VirtualMachineInstanceMigration (or the collection)."""
    group, version = names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION
    return api_path(group, version, "virtualmachineinstancemigrations", namespace, name)


def snapshot_path(namespace: str, name: str | None = None) -> str:
    """REST path of a VirtualMachineSnapshot (or the collection)."""
    group, version = names.SNAPSHOT_GROUP, names.SNAPSHOT_VERSION
    return api_path(group, version, "virtualmachinesnapshots", namespace, name)


def restore_path(namespace: str, name: str | None = None) -> str:
    """REST path of a VirtualMachineRestore (or the collection)."""
    group, version = names.SNAPSHOT_GROUP, names.SNAPSHOT_VERSION
    return api_path(group, version, "virtualmachinerestores", namespace, name)


def subresource_path(namespace: str, resource: str, name: str, sub: str) -> str:
    """REST path of one of virt-api's subresources (`softreboot`, `vnc/screenshot`, …) of a
    VM or VMI (`resource`: virtualmachines or virtualmachineinstances)."""
    base = api_path(names.SUBRESOURCES_GROUP, names.SUBRESOURCES_VERSION, resource, namespace, name)
    return f"{base}/{sub}"


class KubeVirt:
    """VirtualMachine CRUD and lifecycle/volume subresources."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def create_vm(self, namespace: str, vm: JsonObj) -> JsonObj:
        """Create a VirtualMachine."""
        return await self.kube.create(vm_path(namespace), vm)

    async def patch_vm(
        self, namespace: str, name: str, patch: JsonObj, *, uid: str | None = None
    ) -> JsonObj:
        """Merge-patch a VirtualMachine (spec template, labels, runStrategy); with `uid`, only
        that incarnation (`Kube.merge_patch`: a Conflict on another VM of the name)."""
        return await self.kube.merge_patch(vm_path(namespace, name), patch, uid=uid)

    async def delete_vm(self, namespace: str, name: str, *, uid: str | None = None) -> None:
        """Delete a VirtualMachine; with `uid`, only that incarnation (precondition)."""
        await self.kube.delete(vm_path(namespace, name), uid=uid, propagation="Background")

    async def delete_vmi(self, namespace: str, name: str, *, uid: str | None = None) -> None:
        """Delete a VMI whose guest has ended, that incarnation only (`uid`): under runStrategy
        Manual KubeVirt keeps it until the next start, and a restore wants it gone."""
        await self.kube.delete(vmi_path(namespace, name), uid=uid)

    async def create_migration(self, namespace: str, migration: JsonObj) -> JsonObj:
        """Create a VirtualMachineInstanceMigration (virt-controller then migrates the VMI;
        virt-api's webhook refuses one for a VMI that cannot migrate)."""
        return await self.kube.create(migration_path(namespace), migration)

    async def create_snapshot(self, namespace: str, snapshot: JsonObj) -> JsonObj:
        """Create a VirtualMachineSnapshot (virt-controller then snapshots the VM; virt-api's
        webhook refuses one without the Snapshot feature gate)."""
        return await self.kube.create(snapshot_path(namespace), snapshot)

    async def create_restore(self, namespace: str, restore: JsonObj) -> JsonObj:
        """Create a VirtualMachineRestore (virt-controller then restores the VM's disks and
        spec from the snapshot; virt-api's webhook refuses one it cannot do)."""
        return await self.kube.create(restore_path(namespace), restore)

    async def delete_restore(self, namespace: str, name: str, *, uid: str | None = None) -> None:
        """Delete a restore: KubeVirt stops it, gives the VM back, then lets it go."""
        await self.kube.delete(restore_path(namespace, name), uid=uid)

    async def delete_migration(self, namespace: str, name: str, *, uid: str | None = None) -> None:
        """Delete a migration: KubeVirt aborts it if it still runs (virtctl migrate-cancel)."""
        await self.kube.delete(migration_path(namespace, name), uid=uid)

    async def start(self, namespace: str, name: str) -> None:
        """PUT .../virtualmachines/NAME/start (202)."""
        await self.kube.request(
            "PUT", subresource_path(namespace, "virtualmachines", name, "start"), body={}
        )

    async def stop(self, namespace: str, name: str, grace_period: int | None = None) -> None:
        """PUT .../stop; `grace_period` 0 powers off at once."""
        body: JsonObj = {} if grace_period is None else {"gracePeriod": grace_period}
        await self.kube.request(
            "PUT", subresource_path(namespace, "virtualmachines", name, "stop"), body=body
        )

    async def restart(self, namespace: str, name: str, *, force: bool = False) -> None:
        """PUT .../restart; KubeVirt only accepts gracePeriodSeconds 0 (force) or none."""
        body: JsonObj = {"gracePeriodSeconds": 0} if force else {}
        path = subresource_path(namespace, "virtualmachines", name, "restart")
        await self.kube.request("PUT", path, body=body)

    async def pause(self, namespace: str, name: str) -> None:
        """PUT .../virtualmachineinstances/NAME/pause (200): pause/unpause exist only on VMIs."""
        path = subresource_path(namespace, "virtualmachineinstances", name, "pause")
        await self.kube.request("PUT", path, body={})

    async def unpause(self, namespace: str, name: str) -> None:
        """PUT .../virtualmachineinstances/NAME/unpause (200)."""
        path = subresource_path(namespace, "virtualmachineinstances", name, "unpause")
        await self.kube.request("PUT", path, body={})

    async def add_volume(
        self, namespace: str, name: str, volume: str, device: JsonObj, source: JsonObj
    ) -> None:
        """PUT .../virtualmachines/NAME/addvolume: persisted in the VM, hot-plugged if running."""
        body: JsonObj = {"name": volume, "disk": device, "volumeSource": source}
        path = subresource_path(namespace, "virtualmachines", name, "addvolume")
        await self.kube.request("PUT", path, body=body)

    async def remove_volume(self, namespace: str, name: str, volume: str) -> None:
        """PUT .../virtualmachines/NAME/removevolume."""
        path = subresource_path(namespace, "virtualmachines", name, "removevolume")
        await self.kube.request("PUT", path, body={"name": volume})

    async def filesystems(self, namespace: str, name: str) -> list[JsonObj]:
        """GET .../virtualmachineinstances/NAME/filesystemlist through the guest agent.

        Raises `ServerError` (HTTP 500, plain text) when the agent is not connected.
        """
        path = subresource_path(namespace, "virtualmachineinstances", name, "filesystemlist")
        items = (await self.kube.get(path)).get("items") or []
        return [item for item in items if isinstance(item, dict)]
