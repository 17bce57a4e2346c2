"""What a user does with a Wukong, as small async steps against any cluster running the operator.

Written against the API only (no cluster-specific shortcuts), so the same steps serve the
e2e suite on kind + KubeVirt and, imported, scenarios on the local control plane + simulator.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from wukong.adapters.kube import Kube, api_path
from wukong.api import names
from wukong.testing.eventually import eventually

JsonObj = dict[str, Any]
# Emulated VMs in a kind node are slow to boot; CDI imports slower still.
BOOT_TIMEOUT = float(os.environ.get("WUKONG_E2E_BOOT_TIMEOUT", "600"))
# Blank disks by default: a VMI reaches Running without a guest OS, and no image is pulled.
SYSTEM_IMAGE = os.environ.get("WUKONG_E2E_IMAGE") or None


def wukong(name: str, *, disks: list[JsonObj] | None = None, **spec: Any) -> JsonObj:
    """A small Wukong: 1 CPU, 256Mi, a 1Gi system disk."""
    system: JsonObj = {"name": "system", "size": "1Gi"}
    if SYSTEM_IMAGE:
        system["image"] = SYSTEM_IMAGE
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {"name": name},
        "spec": {"cpu": 1, "memory": "256Mi", "disks": disks or [system], **spec},
    }


class User:
    """One person's view of a namespace: kubectl-like calls and waits on what status says."""

    def __init__(
        self, api: ApiClient, namespace: str, *, patience: float = BOOT_TIMEOUT, poll: float = 2.0
    ) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.kube = Kube(api)
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        # How long a wait may take and how often it looks: minutes and seconds on kind, a
        # fraction of both against the simulator.
        self.patience, self.poll = patience, poll

    async def until(self, check: Any, message: str) -> Any:
        """Wait, with this user's patience, until `check()` returns something truthy."""
        return await eventually(check, timeout=self.patience, interval=self.poll, message=message)

    # -- Wukongs ---------------------------------------------------------------------------

    async def create(self, body: JsonObj) -> JsonObj:
        """kubectl apply of a new Wukong."""
        result: JsonObj = await self.custom.create_namespaced_custom_object(
            names.GROUP, names.VERSION, self.namespace, names.PLURAL, body
        )
        return result

    async def get(self, name: str) -> JsonObj | None:
        """The Wukong, or None once it is gone."""
        try:
            result: JsonObj = await self.custom.get_namespaced_custom_object(
                names.GROUP, names.VERSION, self.namespace, names.PLURAL, name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return result

    async def patch_spec(self, name: str, spec: JsonObj) -> None:
        """A merge patch of the spec (lists such as disks are replaced whole)."""
        path = api_path(names.GROUP, names.VERSION, names.PLURAL, self.namespace, name)
        await self.kube.merge_patch(path, {"spec": spec})

    async def request(self, name: str, action: str, **options: Any) -> None:
        """What `wukong stop|start|...` does: a lifecycle request with a fresh requestedAt."""
        stamp = f"{datetime.now(UTC).isoformat()}#{uuid.uuid4().hex[:6]}"
        await self.patch_spec(
            name, {"lifecycleAction": {"action": action, "requestedAt": stamp, **options}}
        )

    async def delete(self, name: str) -> None:
        """kubectl delete wukong."""
        await self.custom.delete_namespaced_custom_object(
            names.GROUP, names.VERSION, self.namespace, names.PLURAL, name
        )

    async def wait_phase(self, name: str, phase: str) -> JsonObj:
        """Wait until status.phase says `phase`; the Wukong as last read."""

        async def reached() -> JsonObj | None:
            cr = await self.get(name)
            return cr if cr and (cr.get("status") or {}).get("phase") == phase else None

        result: JsonObj = await self.until(reached, f"Wukong {name} phase {phase}")
        return result

    async def wait_gone(self, name: str) -> None:
        """Wait until the Wukong no longer exists (finalizer released)."""

        async def gone() -> bool:
            return await self.get(name) is None

        await self.until(gone, f"Wukong {name} deleted")

    # -- what KubeVirt and Kubernetes show -------------------------------------------------

    async def vm(self, name: str) -> JsonObj | None:
        """The VirtualMachine a Wukong owns, or None."""
        return await self._kubevirt("virtualmachines", names.vm_name(name))

    async def vmi(self, name: str) -> JsonObj | None:
        """The running instance of a Wukong's VM, or None."""
        return await self._kubevirt("virtualmachineinstances", names.vm_name(name))

    async def claim(self, wukong_name: str, disk: str) -> Any:
        """The PVC (V1PersistentVolumeClaim) behind one disk, or None once gone or going."""
        try:
            pvc = await self.core.read_namespaced_persistent_volume_claim(
                names.disk_claim_name(wukong_name, disk), self.namespace
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return None if pvc.metadata.deletion_timestamp is not None else pvc

    async def _kubevirt(self, plural: str, name: str) -> JsonObj | None:
        try:
            result: JsonObj = await self.custom.get_namespaced_custom_object(
                names.KUBEVIRT_GROUP, names.KUBEVIRT_VERSION, self.namespace, plural, name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return result


def volume(cr: JsonObj, name: str) -> JsonObj:
    """One entry of status.volumes ({} when absent)."""
    for entry in (cr.get("status") or {}).get("volumes") or []:
        if entry.get("name") == name:
            return dict(entry)
    return {}
