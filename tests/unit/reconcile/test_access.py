"""Guest access planning (issue 16): the cloud-init disk, accessCredentials, SecretMissing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from wukong.api.spec import WukongSpec
from wukong.reconcile.access import (
    EMPTY_CLOUD_CONFIG,
    access_credentials,
    cloud_init_volume,
    secret_condition,
)
from wukong.reconcile.observed import Observed

BASE: dict[str, Any] = {"cpu": 1, "memory": "1Gi", "disks": [{"name": "system", "size": "1Gi"}]}
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def spec(**extra: Any) -> WukongSpec:
    return WukongSpec.model_validate(BASE | extra)


def pending_vmi(pod_uid: str = "pod-1") -> dict[str, Any]:
    return {
        "metadata": {"name": "w-vm", "namespace": "ns"},
        "spec": {"accessCredentials": []},
        "status": {"phase": "Scheduling", "activePods": {pod_uid: "node-1"}},
    }


def mount_failed(secret: str, pod_uid: str = "pod-1") -> dict[str, Any]:
    return {
        "reason": "FailedMount",
        "involvedObject": {"kind": "Pod", "uid": pod_uid},
        "message": f'MountVolume.SetUp failed for volume "x" : secret "{secret}" not found',
    }


@pytest.mark.parametrize(
    ("extra", "source"),
    [
        pytest.param({}, None, id="nothing-no-disk"),
        pytest.param(
            {"cloudInit": {"userData": "#cloud-config\n"}},
            {"userData": "#cloud-config\n"},
            id="inline-user-data",
        ),
        pytest.param(
            {"cloudInit": {"userDataSecretRef": {"name": "u"}, "networkData": "version: 2"}},
            {"secretRef": {"name": "u"}, "networkData": "version: 2"},
            id="secret-user-data-inline-network",
        ),
        pytest.param(
            {"cloudInit": {"networkDataSecretRef": {"name": "n"}}},
            {"networkDataSecretRef": {"name": "n"}},
            id="network-data-only",
        ),
        pytest.param(
            {"sshKeys": [{"secretName": "k"}]},
            {"userData": EMPTY_CLOUD_CONFIG},
            id="no-cloud-keys-alone-get-an-empty-cloud-config",
        ),
        pytest.param(
            {"sshKeys": [{"secretName": "k", "propagation": "qemuGuestAgent", "users": ["u"]}]},
            None,
            id="agent-keys-need-no-disk",
        ),
    ],
)
def test_cloud_init_disk_carries_exactly_what_the_spec_says(
    extra: dict[str, Any], source: dict[str, Any] | None
) -> None:
    pair = cloud_init_volume(spec(**extra))
    if source is None:
        assert pair is None
        return
    assert pair is not None
    disk, volume = pair
    assert disk == {"name": "cloudinitdisk", "disk": {"bus": "virtio"}}
    assert volume == {"name": "cloudinitdisk", "cloudInitNoCloud": source}


def test_ssh_keys_become_access_credentials_in_order() -> None:
    keys = [
        {"secretName": "a"},
        {"secretName": "b", "propagation": "qemuGuestAgent", "users": ["fedora", "ops"]},
    ]
    assert access_credentials(spec(sshKeys=keys)) == [
        {
            "sshPublicKey": {
                "source": {"secret": {"secretName": "a"}},
                "propagationMethod": {"noCloud": {}},
            }
        },
        {
            "sshPublicKey": {
                "source": {"secret": {"secretName": "b"}},
                "propagationMethod": {"qemuGuestAgent": {"users": ["fedora", "ops"]}},
            }
        },
    ]


def test_missing_secret_named_by_the_kubelet_is_reported() -> None:
    seen = Observed(now=NOW, vmi=pending_vmi(), pod_events=(mount_failed("keys"),))
    cond = secret_condition(spec(sshKeys=[{"secretName": "keys"}]), seen)
    assert cond is not None and cond.status is True and cond.reason == "SecretNotFound"
    assert "'keys'" in cond.message and "'ns'" in cond.message


def test_a_secret_the_vm_does_not_use_is_not_blamed() -> None:
    seen = Observed(now=NOW, vmi=pending_vmi(), pod_events=(mount_failed("other"),))
    cond = secret_condition(spec(sshKeys=[{"secretName": "keys"}]), seen)
    assert cond is None  # present only while a Secret is missing


def test_no_secret_referenced_means_no_condition() -> None:
    assert secret_condition(spec(), Observed(now=NOW)) is None


def test_a_running_vm_has_no_missing_secret_whatever_old_events_say() -> None:
    vmi = pending_vmi()
    vmi["status"]["phase"] = "Running"
    seen = Observed(now=NOW, vmi=vmi, pod_events=(mount_failed("keys"),))
    cond = secret_condition(spec(sshKeys=[{"secretName": "keys"}]), seen)
    assert cond is None  # present only while a Secret is missing


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        pytest.param(
            {"instancetype": {"name": "u1.small"}},
            "instancetype sets CPU and memory",
            id="instancetype-and-cpu",
        ),
        pytest.param(
            {"cloudInit": {"userData": "x", "userDataSecretRef": {"name": "s"}}},
            "not both",
            id="user-data-twice",
        ),
        pytest.param({"cloudInit": {}}, "cloudInit needs", id="empty-cloud-init"),
        pytest.param(
            {"sshKeys": [{"secretName": "k", "users": ["u"]}]},
            "users are only used with propagation qemuGuestAgent",
            id="users-without-agent",
        ),
        pytest.param(
            {"sshKeys": [{"secretName": "keys.example"}]},
            "KubeVirt mounts it in the VM's pod as a volume",
            id="dotted-key-secret",
        ),
        pytest.param(
            {"sshKeys": [{"secretName": "k" * 52}]},
            "at most 51",
            id="key-secret-too-long-for-a-volume-name",
        ),
        pytest.param(
            {"tolerations": [{"operator": "Exists", "key": "k", "value": "v"}]},
            "value must be empty when operator is Exists",
            id="exists-with-value",
        ),
        pytest.param(
            {"tolerations": [{"value": "v"}]},
            "needs operator: Exists",
            id="no-key-equal",
        ),
        pytest.param(
            {"tolerations": [{"key": "k", "tolerationSeconds": 5}]},
            "only for effect NoExecute",
            id="seconds-without-no-execute",
        ),
    ],
)
def test_models_refuse_what_the_crd_refuses(extra: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError) as refused:
        spec(**extra)
    assert words in str(refused.value)


def test_instancetype_replaces_cpu_and_memory() -> None:
    body = {k: v for k, v in BASE.items() if k not in ("cpu", "memory")}
    parsed = WukongSpec.model_validate(body | {"instancetype": {"name": "u1.small"}})
    assert parsed.instancetype is not None
    assert parsed.instancetype.kind.value == "VirtualMachineClusterInstancetype"
    with pytest.raises(ValidationError, match="cpu and memory are required"):
        WukongSpec.model_validate(body)


def test_the_cloud_init_volume_is_not_a_disk_to_plug_or_detach() -> None:
    from wukong.reconcile.disks import template_volumes

    vm = {
        "spec": {
            "template": {
                "spec": {
                    "volumes": [
                        {"name": "system", "dataVolume": {"name": "w-system"}},
                        {"name": "cloudinitdisk", "cloudInitNoCloud": {"userData": "x"}},
                    ]
                }
            }
        }
    }
    assert list(template_volumes(vm)) == ["system"]
