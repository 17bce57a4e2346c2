"""The simulated virt-handler's access credentials: which keys each guest user gets, and
how KubeVirt reports each sync (AccessCredentialsSynchronized and its Events)."""

from __future__ import annotations

import base64
import copy
from typing import Any

from wukong.testing.kubevirt.access_credentials import (
    SYNCED,
    AccessCredentials,
    credentials_condition,
    credentials_event,
    wanted_keys,
)
from wukong.testing.kubevirt.cloud_init import first_boot_keys, legacy_firmware_uuid
from wukong.testing.kubevirt.guest import Guest


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def credential(secret: str, users: list[str] | None) -> dict[str, object]:
    method = {"qemuGuestAgent": {"users": users}} if users is not None else {"noCloud": {}}
    return {
        "sshPublicKey": {"source": {"secret": {"secretName": secret}}, "propagationMethod": method}
    }


def test_each_user_gets_the_keys_of_its_agent_secrets_and_only_those() -> None:
    vmi = {
        "spec": {
            "accessCredentials": [
                credential("team", ["fedora", "ops"]),
                credential("mine", ["fedora"]),
                credential("boot", None),  # cloud-init's, at first boot: not the agent's
                credential("absent", ["ops"]),
            ]
        }
    }
    secrets = {
        "team": {"data": {"a": b64("ssh-ed25519 A\nssh-ed25519 B\n")}},
        "mine": {"data": {"k": b64("ssh-ed25519 B"), "l": b64("ssh-ed25519 C\n")}},
        "boot": {"data": {"z": b64("ssh-ed25519 Z")}},
    }
    assert wanted_keys(vmi, secrets.get) == {
        "fedora": ["ssh-ed25519 A", "ssh-ed25519 B", "ssh-ed25519 C"],
        "ops": ["ssh-ed25519 A", "ssh-ed25519 B"],
    }
    assert wanted_keys({"spec": {}}, secrets.get) == {}


class Objects:
    """An informer's reads, from a dict by name (one namespace)."""

    def __init__(self, **objects: dict[str, Any]) -> None:
        self.objects, self.handlers = objects, []

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get(name)

    def list(self, namespace: str) -> list[dict[str, Any]]:
        return list(self.objects.values())


def running(agent: bool, users: list[str], cloud_init: bool = True) -> dict[str, Any]:
    """A running VMI whose agent keys go to `users`, with a cloud-init disk as the operator
    gives every VM with keys (`cloud_init` False: without one)."""
    conditions = [{"type": "AgentConnected", "status": "True"}] if agent else []
    disk = {"name": "cloudinitdisk", "cloudInitNoCloud": {"userData": "#cloud-config\n{}\n"}}
    return {
        "metadata": {"name": "vm", "namespace": "ns", "uid": "uid-1"},
        "spec": {
            "accessCredentials": [credential("keys", users)],
            "volumes": [disk] if cloud_init else [],
        },
        "status": {"phase": "Running", "nodeName": "node-1", "conditions": conditions},
    }


async def synced(vmi: dict[str, Any], guest: Guest) -> tuple[str, str] | None:
    """What virt-handler reports after the launcher's sync: the condition's status and
    message on the VMI's next status, or None when it reports none."""
    secrets = Objects(keys={"data": {"k": b64("ssh-ed25519 K")}})
    vmis = Objects(vm=vmi)
    sync = AccessCredentials(vmis, secrets, lambda ns, name: guest)  # type: ignore[arg-type]
    await sync.reconcile("ns/vm")
    status = copy.deepcopy(vmi["status"])
    credentials_condition(vmi, guest, status)
    cond = next((c for c in status["conditions"] if c["type"] == SYNCED), None)
    return None if cond is None else (cond["status"], cond.get("message", ""))


async def test_keys_reach_the_guests_accounts_and_kubevirt_says_which_user_has_none() -> None:
    guest = Guest("ns", "vm")
    assert await synced(running(True, ["fedora"]), guest) == ("True", "")
    assert guest.authorized_keys == {"fedora": ["ssh-ed25519 K"]}
    status, message = await synced(running(True, ["fedora", "bob"]), guest) or ("", "")
    assert status == "False" and "for user [bob]" in message
    assert guest.authorized_keys == {"fedora": ["ssh-ed25519 K"]}  # the others' keys land


async def test_without_a_cloud_init_disk_the_images_login_user_does_not_exist() -> None:
    """A cloud image makes its login user (fedora) from cloud-init's default_user, and
    cloud-init without a data source turns itself off (source audit, session 46)."""
    guest = Guest("ns", "vm")
    status, message = await synced(running(True, ["fedora"], cloud_init=False), guest) or ("", "")
    assert status == "False" and "for user [fedora]" in message
    assert guest.authorized_keys == {}


async def test_an_agent_not_up_yet_is_offline_and_a_vmi_without_agent_keys_says_nothing() -> None:
    assert await synced(running(False, ["fedora"]), Guest("ns", "vm")) == (
        "False",
        "Guest agent is offline",
    )
    no_agent_keys = running(True, ["fedora"])
    no_agent_keys["spec"]["accessCredentials"] = [credential("keys", None)]
    assert await synced(no_agent_keys, Guest("ns", "vm")) is None


def test_virt_handler_tells_each_change_of_the_condition_once() -> None:
    vmi = running(True, ["fedora"])
    guest = Guest("ns", "vm")
    before = copy.deepcopy(vmi["status"])
    guest.report_credentials("uid-1", False, "Guest agent is offline")
    offline = copy.deepcopy(before)
    credentials_condition(vmi, guest, offline)
    told = credentials_event(vmi, before, offline)
    assert told is not None and (told["type"], told["reason"]) == (
        "Warning",
        "AccessCredentialsSyncFailed",
    )
    assert told["message"] == "Access credentials sync failed: Guest agent is offline"
    again = copy.deepcopy(offline)
    credentials_condition(vmi, guest, again)
    assert again == offline and credentials_event(vmi, offline, again) is None
    guest.report_credentials("uid-1", True, "")
    fine = copy.deepcopy(offline)
    credentials_condition(vmi, guest, fine)
    told = credentials_event(vmi, offline, fine)
    assert told is not None and (told["type"], told["reason"], told["message"]) == (
        "Normal",
        "AccessCredentialsSyncSuccess",
        "Access credentials sync successful.",
    )
    other_vmi = running(True, ["fedora"]) | {
        "metadata": {"name": "vm", "namespace": "ns", "uid": "uid-2"}
    }
    fresh = copy.deepcopy(before)
    credentials_condition(
        other_vmi, guest, fresh
    )  # a new VMI: the old launcher's result is not its
    assert fresh == before


OWNER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOwnerOwnerOwnerOwnerOwnerOwnerOwnerOwner me@laptop"
COLLEAGUE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIColleagueColleagueColleagueColleague c@x"
FIRMWARE = {"firmware": {"uuid": "5d307ca9-b3ef-428c-8861-06e72d69f223"}}


def booted(uid: str, *credentials: dict[str, object], user_data: str) -> dict[str, Any]:
    """A running VMI of the VM `vm` (its firmware UUID kept), with a cloud-init disk."""
    return {
        "metadata": {"name": "vm", "namespace": "ns", "uid": uid},
        "spec": {
            "domain": FIRMWARE,
            "volumes": [{"name": "cloudinitdisk", "cloudInitNoCloud": {"userData": user_data}}],
            "accessCredentials": list(credentials),
        },
        "status": {
            "phase": "Running",
            "nodeName": "node-1",
            "conditions": [{"type": "AgentConnected", "status": "True"}],
        },
    }


async def sync(vmi: dict[str, Any], guest: Guest, **secrets: dict[str, Any]) -> None:
    controller = AccessCredentials(Objects(vm=vmi), Objects(**secrets), lambda ns, name: guest)  # type: ignore[arg-type]
    await controller.reconcile("ns/vm")


async def test_the_guest_agent_replaces_the_keys_cloud_init_gave_its_user() -> None:
    """`create --ssh-key-file me.pub`, then an agent Secret for fedora with a colleague's key:
    KubeVirt sets fedora's whole authorized_keys to the agent's set, and the owner's key,
    written by cloud-init at first boot, is gone (source audit, session 46)."""
    guest = Guest("ns", "vm")
    user_data = f"#cloud-config\nssh_authorized_keys:\n  - {OWNER}\n"
    await sync(booted("uid-1", user_data=user_data), guest)
    assert guest.authorized_keys == {"fedora": [OWNER]}  # cloud-init's, at first boot
    agent = credential("web-1-ssh-fedora", ["fedora"])
    colleague = {"data": {"k": b64(COLLEAGUE)}}
    # The restart that brings the agent's Secret: the same instance (the firmware UUID is
    # kept), so cloud-init writes nothing, and the agent writes fedora's whole set.
    await sync(
        booted("uid-2", agent, user_data=user_data), guest, **{"web-1-ssh-fedora": colleague}
    )
    assert guest.authorized_keys == {"fedora": [COLLEAGUE]}
    both = {"data": {"k": b64(COLLEAGUE), "m": b64(OWNER)}}  # every key of fedora
    await sync(booted("uid-2", agent, user_data=user_data), guest, **{"web-1-ssh-fedora": both})
    assert guest.authorized_keys == {"fedora": [COLLEAGUE, OWNER]}


async def test_cloud_init_writes_keys_once_per_instance_and_the_agent_only_its_users() -> None:
    guest = Guest("ns", "vm")
    user_data = "#cloud-config\nusers:\n  - default\n"
    user_data += f"  - name: ops\n    ssh-authorized-keys: [{COLLEAGUE}]\n"
    boot_keys = {"data": {"a": b64(OWNER + "\n")}}
    first = booted("uid-1", credential("boot", None), user_data=user_data)
    await sync(first, guest, boot=boot_keys)
    assert guest.authorized_keys == {"fedora": [OWNER], "ops": [COLLEAGUE]}
    assert "ops" in guest.accounts  # cloud-init made the account
    ops_agent = credential("team", ["ops"])
    await sync(
        booted("uid-2", ops_agent, user_data=user_data),
        guest,
        team={"data": {"k": b64("ssh-ed25519 T")}},
    )
    assert guest.authorized_keys == {"fedora": [OWNER], "ops": ["ssh-ed25519 T"]}
    # A new instance (another firmware UUID: a VM made again) runs cloud-init again, which
    # adds to what is there.
    again = booted("uid-3", user_data=f"#cloud-config\nssh_authorized_keys: [{COLLEAGUE}]\n")
    again["spec"]["domain"] = {"firmware": {"uuid": "another"}}
    await sync(again, guest)
    assert guest.authorized_keys["fedora"] == [OWNER, COLLEAGUE]


def test_cloud_init_gives_nothing_without_its_disk_and_no_default_user_when_users_omit_it() -> None:
    vmi = booted(
        "uid-1",
        user_data=f"#cloud-config\nssh_authorized_keys: [{OWNER}]\nusers: [{{name: ops}}]\n",
    )
    assert first_boot_keys(vmi, lambda name: None) == {"ops": []}
    vmi["spec"]["volumes"] = []
    assert first_boot_keys(vmi, lambda name: None) is None
    vmi["spec"]["volumes"] = [
        {"name": "cloudinitdisk", "cloudInitNoCloud": {"secretRef": {"name": "ud"}}}
    ]
    secret = {"data": {"userData": b64(f"#cloud-config\nssh_authorized_keys: [{OWNER}]\n")}}
    assert first_boot_keys(vmi, {"ud": secret}.get) == {"fedora": [OWNER]}


def test_a_vmi_gets_the_firmware_uuid_virt_controller_names_after_its_vm() -> None:
    """cloud-init's instance-id: the same for every start of one VM (firmware.go)."""
    from wukong.testing.kubevirt.virt_controller import build_vmi

    vm = {"metadata": {"name": "web-1-vm", "namespace": "ns", "uid": "u"}, "spec": {"template": {}}}
    made = build_vmi(vm, paused=False)
    assert made["spec"]["domain"]["firmware"]["uuid"] == legacy_firmware_uuid("web-1-vm")
    assert (
        legacy_firmware_uuid("web-1-vm")
        == build_vmi(vm, paused=False)["spec"]["domain"]["firmware"]["uuid"]
    )
    kept = {"template": {"spec": {"domain": FIRMWARE}}}
    assert (
        build_vmi(vm | {"spec": kept}, paused=False)["spec"]["domain"]["firmware"]
        == (FIRMWARE["firmware"])
    )
