"""virt-api addvolume/removevolume in DeclarativeHotplugVolumes mode (KubeVirt rest/volumes.go).

The VM variant JSON-patches the VM template (volumes + disks, guarded by `test` ops); the VM
controller then hot-plugs into the running VMI. The bus is not checked here: like KubeVirt,
a bad bus only fails later, when the controller patches the VMI (HotPlugVolumeError).
"""

from __future__ import annotations

import copy
from typing import Any

from ._kube import VMIS, VMS, ApiError, JsonObj, Kube
from .api_errors import Reply, bad_request, conflict, dry_run, not_found, passthrough
from .objects import disks, is_hotpluggable, phase


class Volumes:
    """addvolume / removevolume for VMs (persistent) and standalone VMIs (ephemeral)."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def add_volume(self, ns: str, name: str, body: JsonObj | None, vmi_level: bool) -> Reply:
        """PUT .../addvolume: DeclarativeHotplugVolumes mode edits the VM template."""
        if body is None:
            return bad_request("Request with no body, a new name is expected as the request body")
        if not body.get("name"):
            return bad_request("AddVolumeOptions requires name to be set")
        if body.get("disk") is None:
            return bad_request("AddVolumeOptions requires disk to not be nil")
        source = body.get("volumeSource")
        if source is None:
            return bad_request("AddVolumeOptions requires VolumeSource to not be nil")
        vol_name = str(body["name"])
        disk = {**copy.deepcopy(body["disk"]), "name": vol_name}
        volume: JsonObj = {"name": vol_name}
        for key in ("dataVolume", "persistentVolumeClaim"):
            if source.get(key) is not None:
                volume[key] = {**source[key], "hotpluggable": True}
        return await self._volume_patch(ns, name, vmi_level, dry_run(body), add=(volume, disk))

    async def remove_volume(
        self, ns: str, name: str, body: JsonObj | None, vmi_level: bool
    ) -> Reply:
        """PUT .../removevolume."""
        if body is None:
            return bad_request("Request with no body, a new name is expected as the request body")
        if not body.get("name"):
            return bad_request("RemoveVolumeOptions requires name to be set")
        return await self._volume_patch(
            ns, name, vmi_level, dry_run(body), remove=str(body["name"])
        )

    async def _volume_patch(
        self,
        ns: str,
        name: str,
        vmi_level: bool,
        dry: bool,
        add: tuple[JsonObj, JsonObj] | None = None,
        remove: str | None = None,
    ) -> Reply:
        kind = "virtualmachineinstance" if vmi_level else "virtualmachine"
        res = VMIS if vmi_level else VMS
        obj = await self.kube.get_or_none(res, ns, name)
        if obj is None:
            return not_found(kind, name)
        if vmi_level:
            if any(r.get("controller") for r in obj["metadata"].get("ownerReferences") or []):
                return bad_request(f"VMI {ns}/{name} is owned by a VM")
            if phase(obj) != "Running":
                return conflict(kind, name, "VMI is not running")
        spec = (
            (obj.get("spec") or {})
            if vmi_level
            else ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
        )
        volumes, disk_list = list(spec.get("volumes") or []), disks(spec)
        problem = _verify(volumes, add, remove)
        if problem:
            return conflict(kind, name, problem)
        if add is not None:
            volumes, disk_list = [*volumes, add[0]], [*disk_list, add[1]]
        else:
            volumes = [v for v in volumes if remove not in (v["name"], _source_name(v))]
            kept = {v["name"] for v in volumes}
            disk_list = [d for d in disk_list if d["name"] in kept]
        prefix = "" if vmi_level else "/spec/template"
        ops: list[JsonObj] = [
            {"op": "test", "path": f"{prefix}/spec/volumes", "value": spec.get("volumes")},
            {
                "op": "test",
                "path": f"{prefix}/spec/domain/devices/disks",
                "value": disks(spec) or None,
            },
            {"op": "add", "path": f"{prefix}/spec/volumes", "value": volumes},
            {"op": "add", "path": f"{prefix}/spec/domain/devices/disks", "value": disk_list},
        ]
        ops = [o for o in ops if o["op"] != "test" or o["value"] is not None]
        try:
            await self.kube.request(
                "PATCH",
                res.path(ns, name),
                ops,
                "application/json-patch+json",
                {"dryRun": "All"} if dry else None,
            )
        except ApiError as err:
            return passthrough(err)
        return Reply(202)


def _source_name(volume: JsonObj) -> str:
    source: Any = volume.get("dataVolume") or {}
    if source:
        return str(source.get("name", ""))
    return str((volume.get("persistentVolumeClaim") or {}).get("claimName", ""))


def _verify(
    volumes: list[JsonObj], add: tuple[JsonObj, JsonObj] | None, remove: str | None
) -> str | None:
    """volumes.go verifyVolumeOption."""
    if add is not None:
        name, source = add[0]["name"], _source_name(add[0])
        for volume in volumes:
            if volume["name"] == name:
                return f"Unable to add volume [{name}] because volume with that name already exists"
            if source and _source_name(volume) == source:
                return f"Unable to add volume source [{source}] because it already exists"
        return None
    for volume in volumes:
        if remove in (volume["name"], _source_name(volume)):
            if not is_hotpluggable(volume):
                return f"Unable to remove volume [{volume['name']}] because it is not hotpluggable"
            return None
    return f"Unable to remove volume [{remove}] because it does not exist"
