"""The SPEC §1 example Wukong, and specs that vary it one field at a time."""

from __future__ import annotations

import copy
from typing import Any

Raw = dict[str, Any]

WEB_1: Raw = {
    "apiVersion": "vm.novasphere.dev/v1alpha1",
    "kind": "Wukong",
    "metadata": {
        "name": "web-1",
        "namespace": "prod",
        "uid": "0d6f6a3e-1111-2222-3333-444455556666",
        "generation": 3,
        "resourceVersion": "42",
        "annotations": {"vm.novasphere.dev/deletion-protection": "true"},
        "managedFields": [{"manager": "kubectl"}],
    },
    "spec": {
        "cpu": 2,
        "memory": "4Gi",
        "runStrategy": "Always",
        "startStrategy": {"autoStart": True},
        "disks": [
            {
                "name": "system",
                "size": "20Gi",
                "image": "docker://quay.io/containerdisks/fedora:40",
                "storageClassName": "fast",
            },
            {
                "name": "data",
                "size": "100Gi",
                "detachOptions": {"force": False, "preserveData": False},
            },
        ],
        "networks": [
            {"name": "storage-net", "nadName": "existing-nad"},
            {"name": "vlan100", "type": "bridge", "bridge": "br-vlan100", "vlan": 100},
        ],
        "lifecycleAction": {"action": "stop", "force": False, "gracePeriodSeconds": 30},
        "deleteOptions": {
            "preserveDisks": False,
            "preserveDisksList": ["data"],
            "gracePeriodSeconds": 60,
            "force": False,
        },
    },
}


def spec_with(**changes: Any) -> Raw:
    """The example spec with top-level fields replaced."""
    spec: Raw = copy.deepcopy(WEB_1["spec"])
    spec.update(changes)
    return spec
