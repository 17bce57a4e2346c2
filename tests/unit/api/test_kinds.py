"""One table of kinds: coordinates, cache names, and what the cache keeps of each."""

from __future__ import annotations

from wukong.api import kinds
from wukong.api.names import ANNOTATION_POPULATED_FOR
from wukong.runtime.cache import Store

VMI = {
    "apiVersion": "kubevirt.io/v1",
    "kind": "VirtualMachineInstance",
    "metadata": {
        "name": "web-1-vm",
        "namespace": "demo",
        "resourceVersion": "7",
        "managedFields": [{"manager": "virt-handler"}],
    },
    "spec": {
        "domain": {
            "cpu": {"cores": 2},
            "memory": {"guest": "1Gi"},
            "devices": {"interfaces": [{"name": "default"}], "disks": [{"name": "system"}]},
            "firmware": {"uuid": "x"},
        },
        "networks": [{"name": "default", "pod": {}}],
        "volumes": [{"name": "system"}],
    },
    "status": {
        "phase": "Running",
        "nodeName": "node-1",
        "guestOSInfo": {"name": "Fedora"},
        "launcherContainerImageVersion": "v1.7.0",
    },
}


def test_the_cache_keeps_what_the_operator_reads_and_nothing_else() -> None:
    kept = kinds.project(VMI, kinds.VMI.reads)
    assert kept["metadata"] == {"name": "web-1-vm", "namespace": "demo", "resourceVersion": "7"}
    assert kept["spec"] == {
        "domain": {
            "cpu": {"cores": 2},
            "memory": {"guest": "1Gi"},
            "devices": {"interfaces": [{"name": "default"}]},
        },
        "networks": [{"name": "default", "pod": {}}],
        # The cloud-init volume's Secret references (issue 16: access.py, restart_required).
        "volumes": [{"name": "system"}],
    }
    assert kept["status"] == {"phase": "Running", "nodeName": "node-1"}
    assert VMI["metadata"]["managedFields"]  # the input is not changed


def test_a_child_keeps_its_identity_ownership_and_our_labels_only() -> None:
    """KubeVirt's finalizer on a VM, a provisioner's annotations on a claim, virt-handler's
    node label: the planners read none of them, so changing them changes no cached object
    and wakes no pass. A VMI keeps its annotations (the instancetype it started with)."""
    meta = {
        "name": "web-1-system",
        "namespace": "demo",
        "uid": "u1",
        "resourceVersion": "9",
        "generation": 2,
        "creationTimestamp": "2026-12-02T10:00:00Z",
        "deletionTimestamp": "2026-12-02T11:00:00Z",
        "ownerReferences": [{"kind": "Wukong", "name": "web-1", "uid": "w1"}],
        "labels": {"vm.novasphere.dev/wukong": "web-1", "kubevirt.io/nodeName": "node-1"},
        "annotations": {"pv.kubernetes.io/bind-completed": "yes"},
        "finalizers": ["kubevirt.io/virtualMachineControllerFinalize"],
        "managedFields": [{"manager": "kube-controller-manager"}],
    }
    expected = {
        key: meta[key]
        for key in (
            "name",
            "namespace",
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "ownerReferences",
        )
    } | {"labels": {"vm.novasphere.dev/wukong": "web-1"}}
    # A claim keeps the one annotation that says a kept claim taken back holds data already
    # (disks._holds_data, session 42): a provisioner's do not reach the cache.
    claim = {**meta, "annotations": {**meta["annotations"], ANNOTATION_POPULATED_FOR: "x"}}
    for kind in kinds.CHILDREN.values():
        if kind is kinds.PVC:
            kept = kinds.project({"metadata": claim}, kind.reads)["metadata"]
            assert kept == expected | {"annotations": {ANNOTATION_POPULATED_FOR: "x"}}
            assert kinds.project({"metadata": meta}, kind.reads)["metadata"] == expected | {
                "annotations": {}
            }
            continue
        assert kinds.project({"metadata": meta}, kind.reads)["metadata"] == expected, kind.kind
    vmi = kinds.project({"metadata": meta}, kinds.VMI.reads)["metadata"]
    assert vmi == expected | {"annotations": meta["annotations"]}
    storage_class = kinds.project({"metadata": meta}, kinds.STORAGE_CLASS.reads)["metadata"]
    assert storage_class["annotations"] == meta["annotations"]  # the default-class mark


def test_a_store_applies_the_table_and_a_kind_without_reads_keeps_everything() -> None:
    store = Store(reads={k.cache: k.reads for k in kinds.WATCHED})
    store.upsert(kinds.VMI.cache, VMI)
    store.upsert("other", VMI)
    assert "guestOSInfo" not in store.get(kinds.VMI.cache, "demo", "web-1-vm")["status"]  # type: ignore[index]
    other = store.get("other", "demo", "web-1-vm")
    assert other is not None and other["status"] == VMI["status"]
    assert "managedFields" not in other["metadata"]


def test_names_are_unique_and_children_are_watched() -> None:
    caches = [k.cache for k in kinds.WATCHED]
    assert len(set(caches)) == len(caches)
    assert set(kinds.CHILDREN.values()) <= set(kinds.WATCHED)
    assert (
        kinds.VM.cache == "virtualmachines.kubevirt.io"
        and kinds.PVC.cache == "persistentvolumeclaims"
    )
