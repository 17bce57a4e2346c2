"""`wukong credentials add-ssh-key|remove-ssh-key`: what to write, from what was read."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from typer.testing import CliRunner

from wukong.cli import app
from wukong.console.credentials import (
    agent_secrets,
    holds,
    key_name,
    new_secret,
    owned_by,
    public_key,
    secret_name,
    with_secret,
    without,
)
from wukong.console.errors import CliError

MINE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvb0vSo0g1O4X8VrJjQ5YF3Q7Yk0m9Jk0x8pRrTqG0m me@laptop"
THEIRS = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 you@desk"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def wukong(*keys: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "vm.novasphere.dev/v1alpha1",
        "kind": "Wukong",
        "metadata": {"name": "web-1", "namespace": "demo", "uid": "u-1", "resourceVersion": "7"},
        "spec": {"sshKeys": list(keys)},
    }


AGENT = {"secretName": "team", "propagation": "qemuGuestAgent", "users": ["fedora", "ops"]}
CLOUD = {"secretName": "boot-keys"}


def test_only_agent_propagated_secrets_of_that_user_take_keys_live() -> None:
    cr = wukong(CLOUD, AGENT)
    assert agent_secrets(cr, "fedora") == agent_secrets(cr, "ops") == ["team"]
    assert agent_secrets(cr, "root") == []  # boot-keys is cloud-init's, at first boot only


def test_a_new_secret_is_the_wukongs_and_its_sshkeys_entry_is_pinned() -> None:
    cr = wukong(CLOUD)
    made = new_secret(cr, "fedora", MINE)
    assert made["metadata"]["name"] == "web-1-ssh-fedora"
    assert made["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "vm.novasphere.dev/v1alpha1",
            "kind": "Wukong",
            "name": "web-1",
            "uid": "u-1",
        }
    ]
    assert made["data"] == {key_name(MINE): b64(MINE + "\n")}
    assert owned_by(made, cr) and not owned_by(made, wukong() | {"metadata": {"uid": "u-2"}})
    assert with_secret(cr, "web-1-ssh-fedora", "fedora") == {
        "metadata": {"resourceVersion": "7"},
        "spec": {
            "sshKeys": [
                CLOUD,
                {
                    "secretName": "web-1-ssh-fedora",
                    "propagation": "qemuGuestAgent",
                    "users": ["fedora"],
                },
            ]
        },
    }
    assert with_secret(wukong(AGENT), "team", "ops") is None  # already given: nothing to write


def test_a_secret_name_kubevirt_cannot_mount_is_hashed_and_stable() -> None:
    long = "w" * 41  # 41 + len("-ssh-fedora") + len("-access-cred") = 64 > 63
    assert secret_name("web-1", "fedora") == "web-1-ssh-fedora"
    hashed = secret_name(long, "fedora")
    assert hashed.startswith("ssh-") and len(hashed) == 20
    assert secret_name(long, "fedora") == hashed != secret_name(long, "ops")
    assert secret_name("web-1", "Admin").startswith("ssh-")  # not a DNS label


def test_a_key_is_found_and_taken_out_of_a_value_with_other_keys_too() -> None:
    secret = {
        "metadata": {},
        "data": {"authorized_keys": b64(f"{MINE}\n{THEIRS}\n"), "old": b64(MINE), "x": b64("z")},
    }
    assert holds(secret, MINE) and holds(secret, THEIRS) and not holds(secret, "ssh-rsa B")
    assert without(secret, MINE) == {"authorized_keys": b64(THEIRS + "\n"), "old": None}
    assert without(secret, "ssh-rsa B") == {}


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blb\n", "that is a private key"),
        ("hello", "not one SSH public key ('hello')"),
        (f"{MINE}\n{THEIRS}\n", "not one SSH public key"),
        ("", "not one SSH public key ('')"),
    ],
)
def test_anything_but_one_public_key_is_refused(text: str, said: str) -> None:
    with pytest.raises(CliError) as refused:
        public_key(text, "--file")
    assert refused.value.code == 2 and said in refused.value.message
    assert public_key(f"\n{MINE}\n", "--file") == MINE


def test_the_key_comes_from_one_of_file_or_value() -> None:
    runner = CliRunner()
    verb = ["credentials", "add-ssh-key", "web-1", "--user", "fedora"]
    for extra in ([], ["--file", "a.pub", "--value", MINE]):
        done = runner.invoke(app, [*verb, *extra])
        assert (done.exit_code, done.stderr) == (
            2,
            "error: give the key with one of --file or --value\n",
        )
    missing = runner.invoke(app, ["credentials", "remove-ssh-key", "web-1", "--value", MINE])
    assert missing.exit_code == 2 and "--user" in missing.stderr


def test_virtctls_short_flags_u_and_f_are_taken(tmp_path: Any) -> None:
    """`-u fedora -f key.pub`, as virtctl users type it, was `no such option: -u` (s44)."""
    runner = CliRunner()
    bad = tmp_path / "key.pub"
    bad.write_text("not a key\n")
    for verb in ("add-ssh-key", "remove-ssh-key"):
        both = runner.invoke(
            app, ["credentials", verb, "web-1", "-u", "fedora", "-f", str(bad), "--value", MINE]
        )
        assert (both.exit_code, both.stderr) == (
            2,
            "error: give the key with one of --file or --value\n",
        )
        read = runner.invoke(app, ["credentials", verb, "web-1", "-u", "fedora", "-f", str(bad)])
        assert read.exit_code == 2 and read.stderr.startswith("error: --file: "), read.stderr
