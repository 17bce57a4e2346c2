"""Guest access planning (issue 16): the cloud-init disk, accessCredentials, SecretMissing,
AccessCredentialsSynchronized."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from tests.unit.reconcile.test_lifecycle import running_world
from tests.unit.reconcile.world import decide, wukong
from wukong.api.spec import WukongSpec
from wukong.reconcile.access import (
    AGENT_OFFLINE,
    AGENT_OFFLINE_LASTING,
    EMPTY_CLOUD_CONFIG,
    access_credentials,
    cloud_init_volume,
    credentials_sync,
    secret_condition,
)
from wukong.reconcile.actions import Emit
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
            # Source audit, session 46: without a data source cloud-init turns itself off,
            # and a cloud image has no login user to give the agent's keys to.
            {"sshKeys": [{"secretName": "k", "propagation": "qemuGuestAgent", "users": ["u"]}]},
            {"userData": EMPTY_CLOUD_CONFIG},
            id="agent-keys-get-an-empty-cloud-config-too",
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


NO_ACCOUNT = (
    "Error encountered writing ssh pub key access credentials for user [bob]: unable to "
    "detect home directory of user bob"
)


def running_vmi(*conditions: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "w-vm", "namespace": "ns"},
        "status": {"phase": "Running", "conditions": list(conditions)},
    }


def synced(status: str, message: str = "", ago: float = 0.0) -> dict[str, Any]:
    cond = {"type": "AccessCredentialsSynchronized", "status": status, "message": message}
    return cond | {"lastTransitionTime": (NOW - timedelta(seconds=ago)).isoformat()}


def test_keys_kubevirt_cannot_write_are_reported_at_once_in_its_words() -> None:
    seen = Observed(now=NOW, vmi=running_vmi(synced("False", NO_ACCOUNT)))
    cond, look_again = credentials_sync(seen)
    assert cond is not None and (cond.type, cond.status, cond.reason) == (
        "AccessCredentialsSynchronized",
        False,
        "SyncFailed",
    )
    assert cond.message.endswith(NO_ACCOUNT) and "spec.sshKeys" in cond.message
    assert look_again is None


@pytest.mark.parametrize(
    "vmi",
    [
        pytest.param(None, id="no-vmi"),
        pytest.param(running_vmi(), id="no-keys-through-the-agent"),
        pytest.param(running_vmi(synced("True")), id="synced"),
        pytest.param(
            {"status": {"phase": "Succeeded", "conditions": [synced("False", NO_ACCOUNT)]}},
            id="ended",
        ),
    ],
)
def test_nothing_to_say_is_no_condition(vmi: dict[str, Any] | None) -> None:
    assert credentials_sync(Observed(now=NOW, vmi=vmi)) == (None, None)


def test_an_offline_agent_is_trouble_only_once_it_lasts() -> None:
    young = Observed(now=NOW, vmi=running_vmi(synced("False", AGENT_OFFLINE, ago=20)))
    cond, look_again = credentials_sync(young)
    assert cond is None  # every boot: the agent starts after the guest
    assert look_again == pytest.approx(AGENT_OFFLINE_LASTING - 20, abs=0.1)
    old = Observed(now=NOW, vmi=running_vmi(synced("False", AGENT_OFFLINE, ago=121)))
    cond, look_again = credentials_sync(old)
    assert cond is not None and cond.reason == "GuestAgentOffline" and look_again is None
    assert "qemu-guest-agent" in cond.message and "noCloud" in cond.message


def test_a_paused_guests_silent_agent_is_not_trouble() -> None:
    paused = {"type": "Paused", "status": "True", "reason": "PausedByUser"}
    vmi = running_vmi(synced("False", AGENT_OFFLINE, ago=600), paused)
    assert credentials_sync(Observed(now=NOW, vmi=vmi)) == (None, None)


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


def test_a_pass_reports_keys_that_did_not_arrive_with_a_warning_and_their_arrival_after() -> None:
    def events(plan: Any) -> list[tuple[str, str]]:
        return [(e.type, e.reason) for e in plan.actions if isinstance(e, Emit)]

    def condition(status: dict[str, Any]) -> dict[str, Any] | None:
        wanted = "AccessCredentialsSynchronized"
        return next((c for c in status["conditions"] if c["type"] == wanted), None)

    cr = wukong()
    trouble = running_world(
        conditions=[{"type": "Ready", "status": "True"}, synced("False", NO_ACCOUNT)]
    )
    failing = decide(cr, {"phase": "Running"}, trouble)
    reported = condition(failing.status)
    assert reported is not None and (reported["status"], reported["reason"]) == (
        "False",
        "SyncFailed",
    )
    assert ("Warning", "SyncFailed") in events(failing)
    assert failing.status["phase"] == "Running"  # the VM runs: only its keys are missing
    fixed = running_world(conditions=[{"type": "Ready", "status": "True"}, synced("True")])
    again = decide(cr, failing.status, fixed)
    assert condition(again.status) is None  # present only while it has something to say
    assert ("Normal", "NoSyncError") in events(again)


def running_as(cr: Any) -> Any:
    """A world where cr's VM runs, its VMI made from cr's template."""
    from tests.unit.reconcile.world import NS, ready_children
    from wukong.reconcile.vm import build_vm

    vm = build_vm(cr, ready_children(), "Always")
    vm["metadata"]["uid"] = "vm-uid"
    vmi = {
        "metadata": {"name": "web-1-vm", "namespace": NS, "uid": "vmi-1"},
        "spec": vm["spec"]["template"]["spec"],
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }
    return ready_children(vm=vm, vmi=vmi)


def restart_required(plan: Any) -> dict[str, Any]:
    return next(c for c in plan.status["conditions"] if c["type"] == "RestartRequired")


FIRST_BOOT = (
    "changed while the VM runs: cloud-init applies user data, network data and noCloud keys at "
    "the VM's first boot only (KubeVirt keeps the instance-id, the VM's firmware UUID, across "
    "restarts), so a restart (wukong restart web-1 -n demo) brings only their per-boot parts, "
    "such as bootcmd; for keys on this VM, use propagation qemuGuestAgent (wukong credentials "
    "add-ssh-key web-1 --user USER --file KEY.pub -n demo)"
)
AGENT_KEYS = [{"secretName": "ops", "propagation": "qemuGuestAgent", "users": ["fedora"]}]


@pytest.mark.parametrize(
    ("before", "after", "fields"),
    [
        pytest.param(
            {"cloudInit": {"userData": "#cloud-config\npackages: [htop]\n"}},
            {"cloudInit": {"userData": "#cloud-config\nssh_authorized_keys: [ssh-ed25519 A]\n"}},
            "cloudInit",
            id="user-data",
        ),
        pytest.param(
            {},
            {"sshKeys": [{"secretName": "my-keys"}]},
            "sshKeys (noCloud)",  # the disk that carries them is no change to cloudInit
            id="first-nocloud-keys",
        ),
        pytest.param(
            {"cloudInit": {"networkData": "version: 2\n"}},
            {"cloudInit": {"networkData": "version: 2\n"}, "sshKeys": [{"secretName": "k"}]},
            "sshKeys (noCloud)",
            id="nocloud-keys-beside-network-data",
        ),
        pytest.param(
            {"sshKeys": [{"secretName": "k"}]},
            {"cloudInit": {"userData": "#cloud-config\n"}, "sshKeys": [{"secretName": "j"}]},
            "sshKeys (noCloud)",  # an empty cloud-config is what the keys' disk had
            id="nocloud-keys-changed",
        ),
        pytest.param(
            # A key dropped from the cloud-init volume is a change too: KubeVirt compares the
            # templates whole (the operator's comparison took only the keys the spec sets,
            # and said nothing; noticed in session 46).
            {"cloudInit": {"userData": "#cloud-config\n", "networkData": "version: 2\n"}},
            {"cloudInit": {"userData": "#cloud-config\n"}},
            "cloudInit",
            id="network-data-dropped",
        ),
    ],
)
def test_what_cloud_init_applies_at_first_boot_is_not_said_to_come_with_a_restart(
    before: dict[str, Any], after: dict[str, Any], fields: str
) -> None:
    """KubeVirt's NoCloud instance-id is the VM's firmware UUID, kept across restarts, and
    cloud-init writes keys, users and packages once per instance-id: "restart it to apply"
    a cloudInit or noCloud change was not true (source audit, session 46)."""
    plan = decide(wukong(**after), {"phase": "Running"}, running_as(wukong(**before)))
    said = restart_required(plan)
    assert (said["status"], said["reason"]) == ("True", "FirstBootOnly")
    assert said["message"] == f"{fields} {FIRST_BOOT}"
    assert ("Warning", "FirstBootOnly") in [
        (e.type, e.reason) for e in plan.actions if isinstance(e, Emit)
    ]
    assert plan.status["phase"] == "Running"


def test_agent_keys_come_with_a_restart_and_say_so_beside_what_does_not() -> None:
    """A new qemuGuestAgent Secret is mounted in the VM's next pod: the restart applies it."""
    plan = decide(wukong(sshKeys=AGENT_KEYS), {"phase": "Running"}, running_as(wukong()))
    said = restart_required(plan)
    assert (said["reason"], said["message"]) == (
        "SpecChanged",
        "sshKeys changed while the VM runs: restart it to apply (wukong restart web-1 -n demo)",
    )
    both = wukong(cpu=4, cloudInit={"userData": "#cloud-config\npackages: [htop]\n"})
    plan = decide(both, {"phase": "Running"}, running_as(wukong()))
    said = restart_required(plan)
    assert said["reason"] == "SpecChanged"
    assert said["message"] == (
        "cpu changed while the VM runs: restart it to apply (wukong restart web-1 -n demo) "
        f"(cpu: the vCPU layout changed (sockets or cores)); cloudInit {FIRST_BOOT}"
    )
    same = decide(
        wukong(sshKeys=AGENT_KEYS), {"phase": "Running"}, running_as(wukong(sshKeys=AGENT_KEYS))
    )
    assert "RestartRequired" not in [c["type"] for c in same.status["conditions"]]
