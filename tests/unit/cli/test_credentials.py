"""`wukong credentials add-ssh-key|remove-ssh-key`: what to write, from what was read."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.unit.cli.objects import running
from tests.unit.cli.test_selection import kubeconfig
from wukong.adapters.kube import Kube
from wukong.cli import app
from wukong.console.credentials import (
    agent_secrets,
    holds,
    key_name,
    new_secret,
    owned_by,
    public_key,
    same_key,
    secret_name,
    valid_user,
    with_secret,
    without,
)
from wukong.console.errors import CliError
from wukong.errors import Forbidden, NotFound

__all__ = ["kubeconfig"]  # the fixture

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


def test_a_key_is_the_same_key_whatever_its_comment() -> None:
    """virtctl's remove-ssh-key finds a line that starts with the key given; the comment
    alone made `--value "ssh-ed25519 AAAA…"` miss the stored key, and an add store it twice."""
    bare = " ".join(MINE.split()[:2])
    secret = {"metadata": {}, "data": {"k": b64(f"{MINE}\n{THEIRS}\n")}}
    assert holds(secret, bare) and holds(secret, bare + " other@comment")
    assert without(secret, bare) == {"k": b64(THEIRS + "\n")}
    assert same_key(f'no-pty,command="x" {MINE}', bare)  # authorized_keys options before it
    assert not same_key(THEIRS, bare)


def test_only_user_names_sshkeys_take_are_valid() -> None:
    assert valid_user("fedora") and valid_user("_svc-1") and valid_user("machine$")
    for bad in ("John", "john.doe", "1st", "a" * 33, "fedora\n", ""):
        assert not valid_user(bad), bad


class SecretsApi:
    """The API server as the CLI sees it: web-1 and Secrets, each GET refused with 403
    when its name is in `forbidden` (404 when absent); records every write."""

    def __init__(
        self, cr: dict[str, Any], *secrets: dict[str, Any], forbidden: tuple[str, ...] = ()
    ) -> None:
        self.cr, self.forbidden = cr, forbidden
        self.secrets = {s["metadata"]["name"]: s for s in secrets}
        self.written: list[tuple[str, str, Any]] = []

    async def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> Any:
        name = path.rsplit("/", 1)[-1]
        if method != "GET":
            self.written.append((method, path, copy.deepcopy(body)))
            if path.endswith("/wukongs/web-1"):
                patched = copy.deepcopy(self.cr)
                patched["spec"].update(body["spec"])
                return patched
            return copy.deepcopy(body)
        if "/wukongs/" in path:
            return copy.deepcopy(self.cr)
        if name in self.forbidden:
            raise Forbidden(403, "Forbidden", f'secrets "{name}" is forbidden')
        if name not in self.secrets:
            raise NotFound(404, "NotFound", f'secrets "{name}" not found')
        return copy.deepcopy(self.secrets[name])


def add_key(
    server: SecretsApi, kubeconfig: str, monkeypatch: pytest.MonkeyPatch, *extra: str
) -> Any:
    """`wukong credentials add-ssh-key web-1 --user fedora --value THEIRS` against `server`."""
    monkeypatch.setattr(Kube, "request", server.request)
    argv = ["credentials", "add-ssh-key", "web-1", "--user", "fedora", "--value", THEIRS]
    return CliRunner().invoke(app, [*argv, "-n", "demo", "--kubeconfig", kubeconfig, *extra])


def test_a_user_or_an_entry_sshkeys_cannot_take_is_refused_before_anything_is_written(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both were refused by the CRD after the Secret was made, which stayed behind."""
    server = SecretsApi(running("web-1"))
    monkeypatch.setattr(Kube, "request", server.request)
    bad = CliRunner().invoke(
        app,
        ["credentials", "add-ssh-key", "web-1", "--user", "John", "--value", THEIRS],
    )
    assert (bad.exit_code, server.written) == (2, [])
    assert bad.stderr.startswith("error: --user: 'John' is not a user name sshKeys take")
    full = [{"secretName": f"k{i}"} for i in range(16)]
    server = SecretsApi(running("web-1", sshKeys=full))
    done = add_key(server, kubeconfig, monkeypatch)
    assert (done.exit_code, server.written) == (1, [])
    assert done.stderr == (
        "error: web-1 lists 16 sshKeys Secrets, the most a Wukong takes: give fedora the key "
        "through a Secret it lists (add fedora to its users)\n"
    )
