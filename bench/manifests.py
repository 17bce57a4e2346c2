"""What the benchmark creates: Wukongs for the operator, and the same VMs written by hand for
the floor. One blank disk (a PVC: CDI's import would measure the simulated importer, not the
control loop) and one bridge network per VM, as issue 10 asks."""

from __future__ import annotations

import json
from typing import Any

from wukong.api import names

JsonObj = dict[str, Any]
DISK, NETWORK, BRIDGE = "system", "lan", "br-lan"


def wukong_name(index: int) -> str:
    """wk-0000, wk-0001, ...: sortable, so the first few can serve as the latency pool."""
    return f"wk-{index:04d}"


def wukong(name: str) -> JsonObj:
    """A Wukong with 1 cpu, 1Gi, one blank disk and one bridge network."""
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {"name": name},
        "spec": {
            "cpu": 1,
            "memory": "1Gi",
            "disks": [{"name": DISK, "size": "1Gi"}],
            "networks": [{"name": NETWORK, "type": "bridge", "bridge": BRIDGE}],
        },
    }


def network_policy() -> JsonObj:
    """The administrator's WukongNetworkPolicy the bench needs: br-lan, untagged, in the
    bench's namespaces (fresh per size, so every namespace). Without it the operator refuses
    the network (issue 15: default closed)."""
    return {
        "apiVersion": names.API_VERSION,
        "kind": "WukongNetworkPolicy",
        "metadata": {"name": "cluster"},
        "spec": {"rules": [{"namespaces": ["*"], "bridges": [BRIDGE], "untagged": True}]},
    }


def floor_nad(vm: str) -> JsonObj:
    """The NAD a person would write for the VM's bridge network."""
    plugin = {"type": "bridge", "bridge": BRIDGE, "disableContainerInterface": True}
    config = {"cniVersion": "0.3.1", "name": f"{vm}-{NETWORK}", "plugins": [plugin]}
    return {
        "apiVersion": f"{names.NAD_GROUP}/{names.NAD_VERSION}",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": f"{vm}-{NETWORK}"},
        "spec": {"config": json.dumps(config)},
    }


def floor_pvc(vm: str) -> JsonObj:
    """The blank disk's claim."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": f"{vm}-{DISK}"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "volumeMode": "Filesystem",
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }


def floor_vm(vm: str) -> JsonObj:
    """The VirtualMachine the operator would build for `wukong(...)`, written directly."""
    return {
        "apiVersion": f"{names.KUBEVIRT_GROUP}/{names.KUBEVIRT_VERSION}",
        "kind": "VirtualMachine",
        "metadata": {"name": vm},
        "spec": {
            "runStrategy": "Always",
            "template": {
                "metadata": {"labels": {"kubevirt.io/vm": vm}},
                "spec": {
                    "domain": {
                        "cpu": {"cores": 1, "sockets": 1, "threads": 1},
                        "memory": {"guest": "1Gi"},
                        "resources": {"requests": {"memory": "1Gi"}},
                        "devices": {
                            "disks": [{"name": DISK, "disk": {"bus": "virtio"}, "bootOrder": 1}],
                            "interfaces": [
                                {"name": "default", "masquerade": {}},
                                {"name": NETWORK, "bridge": {}},
                            ],
                        },
                    },
                    "networks": [
                        {"name": "default", "pod": {}},
                        {"name": NETWORK, "multus": {"networkName": f"{vm}-{NETWORK}"}},
                    ],
                    "volumes": [
                        {"name": DISK, "persistentVolumeClaim": {"claimName": f"{vm}-{DISK}"}}
                    ],
                },
            },
        },
    }
