"""The simulated virt-handler's access credentials: which keys each guest user gets."""

from __future__ import annotations

import base64

from wukong.testing.kubevirt.access_credentials import wanted_keys


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
