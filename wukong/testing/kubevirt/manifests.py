"""Builders for the objects tests feed the simulator (plain dicts, real KubeVirt/CDI shapes)."""

from __future__ import annotations

from typing import Any

from ._kube import JsonObj


def virtual_machine(
    name: str,
    namespace: str,
    run_strategy: str = "Always",
    *,
    annotations: dict[str, str] | None = None,
    volumes: list[JsonObj] | None = None,
    disks: list[JsonObj] | None = None,
    grace_seconds: int | None = None,
    cores: int = 1,
    data_volume_templates: list[JsonObj] | None = None,
    secondary_networks: list[str] | None = None,
) -> JsonObj:
    """A VM with a containerDisk root (unless `volumes` given), pod network and optional NADs."""
    volumes = (
        volumes
        if volumes is not None
        else [{"name": "root", "containerDisk": {"image": "quay.io/containerdisks/fedora:40"}}]
    )
    disks = (
        disks
        if disks is not None
        else [{"name": v["name"], "disk": {"bus": "virtio"}} for v in volumes]
    )
    interfaces: list[JsonObj] = [{"name": "default", "masquerade": {}}]
    networks: list[JsonObj] = [{"name": "default", "pod": {}}]
    for nad in secondary_networks or []:
        interfaces.append({"name": nad, "bridge": {}})
        networks.append({"name": nad, "multus": {"networkName": nad}})
    spec: JsonObj = {
        "domain": {
            "cpu": {"cores": cores, "sockets": 1, "threads": 1},
            "memory": {"guest": "1Gi"},
            "devices": {"disks": disks, "interfaces": interfaces},
        },
        "networks": networks,
        "volumes": volumes,
    }
    if grace_seconds is not None:
        spec["terminationGracePeriodSeconds"] = grace_seconds
    vm: JsonObj = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "spec": {
            "runStrategy": run_strategy,
            "template": {"metadata": {"labels": {"kubevirt.io/vm": name}}, "spec": spec},
        },
    }
    if data_volume_templates:
        vm["spec"]["dataVolumeTemplates"] = data_volume_templates
    return vm


def data_volume(
    name: str,
    namespace: str,
    size: str = "1Gi",
    *,
    url: str | None = None,
    registry: bool = False,
    storage_class: str | None = None,
    annotations: dict[str, str] | None = None,
) -> JsonObj:
    """A DataVolume importing `url` over http (or registry), or a blank one."""
    source: dict[str, Any] = {"blank": {}}
    if url is not None:
        source = {"registry": {"url": url}} if registry else {"http": {"url": url}}
    storage: JsonObj = {"resources": {"requests": {"storage": size}}}
    if storage_class:
        storage["storageClassName"] = storage_class
    return {
        "apiVersion": "cdi.kubevirt.io/v1beta1",
        "kind": "DataVolume",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "spec": {"source": source, "storage": storage},
    }


def persistent_volume_claim(
    name: str, namespace: str, size: str = "1Gi", storage_class: str | None = None
) -> JsonObj:
    """A ReadWriteOnce filesystem PVC."""
    spec: JsonObj = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
    }
    if storage_class:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
