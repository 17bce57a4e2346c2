"""Manifests of the objects a Wukong owns, built from its spec: pure functions, no I/O.

Every child carries an ownerReference to its Wukong (so the garbage collector removes it if
the operator is gone) and the labels of SPEC §2, so watches map it back to its owner.
"""

from __future__ import annotations

import json
from typing import Any

from wukong.api import names
from wukong.api.v1alpha1 import DiskSpec, NetworkSpec, Wukong

JsonObj = dict[str, Any]
POD_NETWORK = "default"


def labels(cr: Wukong) -> dict[str, str]:
    """The labels every child of `cr` carries."""
    return {names.LABEL_MANAGED_BY: names.MANAGED_BY, names.LABEL_WUKONG: cr.metadata.name}


def owner_reference(cr: Wukong) -> JsonObj:
    """A controller ownerReference to `cr`."""
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "name": cr.metadata.name,
        "uid": cr.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(cr: Wukong, name: str, **extra_labels: str) -> JsonObj:
    return {
        "name": name,
        "namespace": cr.metadata.namespace,
        "labels": labels(cr) | extra_labels,
        "ownerReferences": [owner_reference(cr)],
    }


def owned_by(obj: JsonObj, uid: str) -> bool:
    """Whether `obj` has an ownerReference to the object with `uid`."""
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid for ref in refs)


def nad_config(cr: Wukong, net: NetworkSpec) -> str:
    """The CNI config (a JSON string) of an owned NAD: a Linux bridge, as KubeVirt's bridge
    binding needs (macvlan/ipvlan cannot carry it: the VM's MAC moves into the guest)."""
    plugin: JsonObj = {
        "type": "bridge",
        "bridge": net.bridge or names.bridge_name(net.name),
        "disableContainerInterface": True,
        "macspoofchk": True,
    }
    if net.vlan is not None:
        plugin["vlan"] = net.vlan
    if net.mtu is not None:
        plugin["mtu"] = net.mtu
    conf = {
        "cniVersion": "0.3.1",
        "name": names.nad_name(cr.metadata.name, net.name),
        "plugins": [plugin],
    }
    return json.dumps(conf, sort_keys=True, separators=(",", ":"))


def build_nad(cr: Wukong, net: NetworkSpec) -> JsonObj:
    """A NetworkAttachmentDefinition the operator owns for an unnamed network."""
    return {
        "apiVersion": f"{names.NAD_GROUP}/{names.NAD_VERSION}",
        "kind": "NetworkAttachmentDefinition",
        "metadata": _metadata(cr, names.nad_name(cr.metadata.name, net.name)),
        "spec": {"config": nad_config(cr, net)},
    }


def _storage(disk: DiskSpec) -> JsonObj:
    storage: JsonObj = {"resources": {"requests": {"storage": disk.size}}}
    if disk.storage_class_name:
        storage["storageClassName"] = disk.storage_class_name
    return storage


def build_data_volume(cr: Wukong, disk: DiskSpec) -> JsonObj:
    """A CDI DataVolume importing `disk.image` (docker:// registry or http(s) URL)."""
    image = disk.image or ""
    source = (
        {"registry": {"url": image}} if image.startswith("docker://") else {"http": {"url": image}}
    )
    claim = names.disk_claim_name(cr.metadata.name, disk.name)
    return {
        "apiVersion": f"{names.CDI_GROUP}/{names.CDI_VERSION}",
        "kind": "DataVolume",
        "metadata": _metadata(cr, claim, **{names.LABEL_DISK: disk.name}),
        "spec": {"source": source, "storage": _storage(disk)},
    }


def build_pvc(cr: Wukong, disk: DiskSpec) -> JsonObj:
    """A blank PersistentVolumeClaim for a disk without an image."""
    spec: JsonObj = {
        "accessModes": ["ReadWriteOnce"],
        "volumeMode": "Filesystem",
        "resources": {"requests": {"storage": disk.size}},
    }
    if disk.storage_class_name:
        spec["storageClassName"] = disk.storage_class_name
    claim = names.disk_claim_name(cr.metadata.name, disk.name)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(cr, claim, **{names.LABEL_DISK: disk.name}),
        "spec": spec,
    }


def volume_source(cr: Wukong, disk: DiskSpec, *, hotpluggable: bool = False) -> JsonObj:
    """The VM volume for a disk: a DataVolume when imported, else the PVC."""
    claim = names.disk_claim_name(cr.metadata.name, disk.name)
    source: JsonObj = {"name": claim} if disk.image else {"claimName": claim}
    if hotpluggable:
        source["hotpluggable"] = True
    key = "dataVolume" if disk.image else "persistentVolumeClaim"
    return {"name": disk.name, key: source}


def vm_disk(disk: DiskSpec, *, boot: bool, hotplug: bool = False) -> JsonObj:
    """The VM disk device; the bus is always explicit (amd64 would default to sata, which
    cannot be hot-plugged), and the serial is the disk name (cut short with a hash when
    long: `names.disk_serial`) so the guest agent can match it."""
    bus = disk.bus or "virtio"
    if hotplug and bus not in ("scsi", "virtio"):
        bus = "scsi"
    serial = names.disk_serial(disk.name)
    device: JsonObj = {"name": disk.name, "disk": {"bus": bus}, "serial": serial}
    if boot:
        device["bootOrder"] = 1
    return device


def network_pairs(cr: Wukong) -> tuple[list[JsonObj], list[JsonObj]]:
    """(interfaces, networks): the pod network (masquerade) first, then one bridge per entry."""
    interfaces: list[JsonObj] = [{"name": POD_NETWORK, "masquerade": {}}]
    networks: list[JsonObj] = [{"name": POD_NETWORK, "pod": {}}]
    for net in cr.spec.networks:
        nad = net.nad_name or names.nad_name(cr.metadata.name, net.name)
        interfaces.append({"name": net.name, "bridge": {}})
        networks.append({"name": net.name, "multus": {"networkName": nad}})
    return interfaces, networks


def retained(obj: JsonObj) -> bool:
    """A disk kept from a deleted Wukong (or a detached one): labelled, owned by no Wukong."""
    meta = obj.get("metadata", {})
    refs = meta.get("ownerReferences") or []
    return names.LABEL_RETAINED_FROM in (meta.get("labels") or {}) and not any(
        r.get("kind") == names.KIND for r in refs
    )


def adopt_patch(cr: Wukong, disk: str) -> JsonObj:
    """Make a retained disk this Wukong's again: owner, labels, no retained-from."""
    return {
        "metadata": {
            "ownerReferences": [owner_reference(cr)],
            "labels": labels(cr)
            | {
                names.LABEL_DISK: disk,
                names.LABEL_RETAINED_FROM: None,
                names.LABEL_RETAINED_UID: None,
            },
        }
    }
