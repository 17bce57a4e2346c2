"""Pure parts of the simulator's KubeVirt parity: placement patches, instance types, launchers."""

from __future__ import annotations

from typing import Any

import pytest

from wukong.testing.kubevirt.instancetype import apply_to_vmi, controller_revision
from wukong.testing.kubevirt.launcher import claim_volumes, launcher_pod, secret_volumes
from wukong.testing.kubevirt.placement import (
    changed_placement,
    migration_refusal,
    placement_patch,
)

JsonObj = dict[str, Any]


def test_placement_patches_are_vm_go_add_test_replace_and_remove() -> None:
    template = {"nodeSelector": {"a": "b"}, "tolerations": [{"key": "k", "operator": "Exists"}]}
    vmi = {"nodeSelector": {"a": "c"}, "affinity": {"nodeAffinity": {}}}
    assert changed_placement(template, vmi) == ["affinity", "nodeSelector", "tolerations"]
    assert placement_patch("affinity", template, vmi) == [
        {"op": "remove", "path": "/spec/affinity"}
    ]
    assert placement_patch("nodeSelector", template, vmi) == [
        {"op": "test", "path": "/spec/nodeSelector", "value": {"a": "c"}},
        {"op": "replace", "path": "/spec/nodeSelector", "value": {"a": "b"}},
    ]
    assert placement_patch("tolerations", template, vmi) == [
        {"op": "add", "path": "/spec/tolerations", "value": template["tolerations"]}
    ]
    # Semantic.DeepEqual: an empty map is no map.
    assert changed_placement({"nodeSelector": {}}, {}) == []


def test_placement_changes_during_a_migration_are_refused() -> None:
    migrating = {"status": {"migrationState": {"startTimestamp": "2026-01-01T00:00:00Z"}}}
    refused = migration_refusal(migrating, ["nodeSelector"])
    assert refused is not None and refused[0] == "AffinityChangeError"
    assert "should not be changed during VMI migration" in refused[1]
    done = {"status": {"migrationState": {"startTimestamp": "x", "endTimestamp": "y"}}}
    assert migration_refusal(done, ["nodeSelector"]) is None


def _vm(**spec: Any) -> JsonObj:
    return {
        "metadata": {"name": "vm1", "namespace": "ns", "uid": "vm-uid"},
        "spec": {"template": {"spec": {}}, **spec},
    }


def _vmi(disks: list[JsonObj] | None = None) -> JsonObj:
    devices = {"disks": disks or [{"name": "root"}], "interfaces": [{"name": "default"}]}
    return {"metadata": {"name": "vm1"}, "spec": {"domain": {"devices": devices}}}


@pytest.mark.parametrize(
    ("topology", "expect"),
    [
        (None, (4, 1, 1)),  # preferSockets is the default
        ("cores", (1, 4, 1)),
        ("threads", (1, 1, 4)),
        ("spread", (2, 2, 1)),  # SocketsCores, ratio 2
    ],
)
def test_instancetype_cpu_follows_the_preferred_topology(
    topology: str | None, expect: tuple[int, int, int]
) -> None:
    preference = {"cpu": {"preferredCPUTopology": topology}} if topology else {}
    vm = _vm(
        instancetype={"kind": "VirtualMachineInstancetype", "name": "it"},
        preference={"kind": "VirtualMachineClusterPreference", "name": "p"},
    )
    vmi = _vmi()
    instancetype = {"cpu": {"guest": 4}, "memory": {"guest": "2Gi"}}
    assert apply_to_vmi(vm, vmi, instancetype, preference) is None
    cpu = vmi["spec"]["domain"]["cpu"]
    assert (cpu["sockets"], cpu["cores"], cpu["threads"]) == expect
    assert vmi["spec"]["domain"]["memory"] == {"guest": "2Gi"}
    assert vmi["metadata"]["annotations"] == {
        "kubevirt.io/instancetype-name": "it",
        "kubevirt.io/cluster-preference-name": "p",
    }


def test_preference_fills_only_unset_buses_and_models() -> None:
    vm = _vm(preference={"name": "p"})
    vmi = _vmi([{"name": "a"}, {"name": "b", "disk": {"bus": "sata"}}, {"name": "c", "cdrom": {}}])
    prefs = {"devices": {"preferredDiskBus": "virtio", "preferredInterfaceModel": "e1000"}}
    assert apply_to_vmi(vm, vmi, None, prefs) is None
    devices = vmi["spec"]["domain"]["devices"]
    assert devices["disks"] == [
        {"name": "a", "disk": {"bus": "virtio"}},
        {"name": "b", "disk": {"bus": "sata"}},
        {"name": "c", "cdrom": {}},
    ]
    assert devices["interfaces"] == [{"name": "default", "model": "e1000"}]


def test_a_template_that_sizes_itself_conflicts_with_the_instancetype() -> None:
    vm = _vm(instancetype={"name": "it"})
    vmi = _vmi()
    vmi["spec"]["domain"]["cpu"] = {"cores": 2}
    vmi["spec"]["domain"]["memory"] = {"guest": "1Gi"}
    message = apply_to_vmi(vm, vmi, {"cpu": {"guest": 2}, "memory": {"guest": "1Gi"}}, None)
    assert message == (
        "VM field(s) spec.template.spec.domain.cpu.cores, spec.template.spec.domain.memory.guest "
        "conflicts with selected instance type"
    )


def test_controller_revision_is_named_and_labelled_as_kubevirt_does() -> None:
    obj = {
        "apiVersion": "instancetype.kubevirt.io/v1beta1",
        "kind": "VirtualMachineInstancetype",
        "metadata": {"name": "small", "uid": "it-uid", "generation": 3, "labels": {"x": "y"}},
        "spec": {"cpu": {"guest": 1}},
    }
    revision = controller_revision(_vm(), obj)
    assert revision["metadata"]["name"] == "vm1-small-v1beta1-it-uid-3"
    assert revision["metadata"]["labels"]["instancetype.kubevirt.io/object-kind"] == (
        "VirtualMachineInstancetype"
    )
    assert revision["metadata"]["ownerReferences"][0]["uid"] == "vm-uid"
    assert "labels" not in revision["data"]["metadata"]
    assert revision["data"]["spec"] == {"cpu": {"guest": 1}}


def test_launcher_pod_mounts_every_secret_the_vmi_names() -> None:
    spec = {
        "volumes": [
            {"name": "cloudinitdisk", "cloudInitNoCloud": {"secretRef": {"name": "ud"},
                                                           "networkDataSecretRef": {"name": "nd"}}},
            {"name": "extra", "secret": {"secretName": "s1"}},
        ],
        "accessCredentials": [{"sshPublicKey": {"source": {"secret": {"secretName": "keys"}}}}],
        "nodeSelector": {"zone": "a"},
        "terminationGracePeriodSeconds": 0,
    }  # fmt: skip
    assert [(v["name"], v["secret"]["secretName"]) for v in secret_volumes(spec)] == [
        ("cloudinitdisk-udata", "ud"),
        ("cloudinitdisk-ndata", "nd"),
        ("extra", "s1"),
        ("keys-access-cred", "keys"),
    ]
    vmi = {"metadata": {"name": "vm1", "namespace": "ns", "uid": "u1"}, "spec": spec}
    pod = launcher_pod(vmi)
    assert pod["metadata"]["generateName"] == "virt-launcher-vm1-"
    assert pod["metadata"]["labels"]["kubevirt.io/created-by"] == "u1"
    assert pod["spec"]["nodeSelector"] == {"zone": "a", "kubevirt.io/schedulable": "true"}
    assert pod["spec"]["terminationGracePeriodSeconds"] == 30


def test_launcher_pod_mounts_the_claims_the_vmi_boots_with() -> None:
    # rendervolumes.go: a PVC volume per PVC or DataVolume volume, named as the VMI's
    # volume; a hot-plugged one goes to its attachment pod instead.
    spec = {
        "volumes": [
            {"name": "root", "dataVolume": {"name": "web-root"}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "web-data"}},
            {"name": "iso", "persistentVolumeClaim": {"claimName": "web-iso", "readOnly": True}},
            {"name": "extra", "dataVolume": {"name": "web-extra", "hotpluggable": True}},
            {"name": "cloudinitdisk", "cloudInitNoCloud": {"userData": "#cloud-config"}},
        ]
    }
    assert claim_volumes(spec) == [
        {"name": "root", "persistentVolumeClaim": {"claimName": "web-root"}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "web-data"}},
        {"name": "iso", "persistentVolumeClaim": {"claimName": "web-iso", "readOnly": True}},
    ]
    vmi = {"metadata": {"name": "web", "namespace": "ns", "uid": "u1"}, "spec": spec}
    assert launcher_pod(vmi)["spec"]["volumes"] == claim_volumes(spec)


def _pod(*terms: JsonObj) -> JsonObj:
    required = {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
    }
    return {"spec": {"affinity": {"nodeAffinity": required}}}


@pytest.mark.parametrize(
    ("terms", "fits"),
    [
        ((), True),  # no required terms: any node (the API server refuses an empty list)
        (({},), False),  # a term with no requirement matches no node
        (({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},), True),
        (({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]},), False),
        (({"matchExpressions": [{"key": "gpu", "operator": "NotIn", "values": ["x"]}]},), True),
        (({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]},), True),
        (({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["8"]}]},), True),
        (({"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["8"]}]},), False),
        (({"matchExpressions": [{"key": "zone", "operator": "Gt", "values": ["1"]}]},), False),
        (({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]},), False),
        # terms are ORed, the requirements of one term ANDed
        (
            ({}, {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}),
            True,
        ),
        (
            (
                {
                    "matchExpressions": [
                        {"key": "zone", "operator": "Exists"},
                        {"key": "cores", "operator": "In", "values": ["4"]},
                    ]
                },
            ),
            False,
        ),
    ],
)
def test_the_scheduler_applies_required_node_affinity_like_kube_scheduler(
    terms: tuple[JsonObj, ...], fits: bool
) -> None:
    from wukong.testing.kubevirt.node import node_affinity_fits

    pod = _pod(*terms) if terms else {"spec": {}}
    assert node_affinity_fits(pod, "n1", {"zone": "a", "cores": "16"}) is fits
