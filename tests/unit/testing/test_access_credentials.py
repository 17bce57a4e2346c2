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


def running(agent: bool, users: list[str]) -> dict[str, Any]:
    conditions = [{"type": "AgentConnected", "status": "True"}] if agent else []
    return {
        "metadata": {"name": "vm", "namespace": "ns", "uid": "uid-1"},
        "spec": {"accessCredentials": [credential("keys", users)]},
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
