"""Events the simulated node records, as the kubelet and virt-handler do (core/v1 Events
with `source.component` and `source.host`)."""

from __future__ import annotations

import uuid

from ._kube import EVENTS, JsonObj, Kube
from .objects import now_iso


def event(
    obj: JsonObj,
    kind: str,
    reason: str,
    message: str,
    *,
    component: str,
    host: str,
    api_version: str = "v1",
    type_: str = "Normal",
    name: str | None = None,
) -> JsonObj:
    """An Event about `obj` (of `kind`); named as client-go's recorder names them (the
    object's name and a unique suffix) unless `name` is given."""
    meta = obj["metadata"]
    now = now_iso()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": name or f"{meta['name']}.{uuid.uuid4().hex[:16]}",
            "namespace": meta["namespace"],
        },
        "involvedObject": {
            "apiVersion": api_version,
            "kind": kind,
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
        },
        "reason": reason,
        "message": message,
        "type": type_,
        "source": {"component": component, "host": host},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


def soft_rebooted(vmi: JsonObj) -> JsonObj:
    """virt-handler's Event after a soft reboot; KubeVirt reports nothing else of it."""
    return event(
        vmi,
        "VirtualMachineInstance",
        "SoftRebooted",
        "VirtualMachineInstance soft rebooted",
        component="virt-handler",
        host=str((vmi.get("status") or {}).get("nodeName") or ""),
        api_version="kubevirt.io/v1",
    )


async def record(kube: Kube, body: JsonObj) -> None:
    """Post an Event, or count it again when one of its name is there (`count`,
    `lastTimestamp`), as client-go's recorder does with an Event said again."""
    meta = body["metadata"]
    existing = await kube.get_or_none(EVENTS, meta["namespace"], meta["name"])
    if existing is None:
        await kube.create(EVENTS, meta["namespace"], body)
        return
    patch = {"count": int(existing.get("count") or 1) + 1, "lastTimestamp": now_iso()}
    await kube.merge_patch(EVENTS, meta["namespace"], meta["name"], patch)


def sync_failed(vmi: JsonObj, message: str) -> JsonObj:
    """virt-handler's Warning each time it fails to sync a VMI (pkg/virt-handler/vm.go),
    named once per VMI so that a retry counts it again."""
    meta = vmi["metadata"]
    return event(
        vmi,
        "VirtualMachineInstance",
        "SyncFailed",
        message,
        component="virt-handler",
        host=str((vmi.get("status") or {}).get("nodeName") or ""),
        api_version="kubevirt.io/v1",
        type_="Warning",
        name=f"{meta['name']}.sync-failed-{str(meta['uid'])[:8]}",
    )
