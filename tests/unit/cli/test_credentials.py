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
from wukong.console.create import authorized_keys
from wukong.console.credentials import (
    UnreadableUserData,
    agent_secrets,
    holds,
    key_name,
    new_secret,
    owned_by,
    public_key,
    same_key,
    secret_name,
    user_data_keys,
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


# KubeVirt's guest agent replaces a user's whole authorized_keys (AuthorizedSSHKeysSet with
# flags 0): the first Secret made for a user carries the keys cloud-init gave (session 46).
OTHER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherOtherOtherOtherOtherOtherOtherOth ops@box"


def test_user_data_keys_are_the_default_users_and_those_of_the_users_entry_of_that_user() -> None:
    data = (
        "#cloud-config\n"
        f"ssh_authorized_keys: ['{MINE}']\n"
        "users:\n"
        "- default\n"
        f"- {{name: fedora, ssh-authorized-keys: ['{THEIRS}', '{MINE}']}}\n"
        f"- {{name: ops, ssh_authorized_keys: ['{OTHER}']}}\n"
    )
    assert user_data_keys(data, "fedora") == [MINE, THEIRS]
    assert user_data_keys(data, "ops") == [MINE, OTHER]  # the default user may be ops
    assert user_data_keys(data, "root") == [MINE]
    assert user_data_keys("## template: jinja\n" + data, "fedora") == [MINE, THEIRS]
    mapped = f"#cloud-config\nusers: {{ops: {{ssh_authorized_keys: {OTHER}}}}}\n"
    assert user_data_keys(mapped, "ops") == [OTHER]  # a map of users; a lone key
    assert user_data_keys("#!/bin/sh\necho hi\n", "fedora") == []  # a script gives none
    assert user_data_keys("#cloud-config\n", "fedora") == []


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ("#cloud-config\nusers: [\n", "its #cloud-config is not valid YAML at line 3"),
        ("#cloud-config\n- a\n", "its #cloud-config is not a mapping"),
        ("#include\nhttps://x/y\n", "its format ('#include') is not one the CLI reads keys from"),
        ("#cloud-config-archive\n- {}\n", "its format ('#cloud-config-archive')"),
        ("Content-Type: multipart/mixed\n", "its format ('Content-Type: multipart/mixed')"),
        ("#cloud-config\nssh_import_id: [gh:me]\n", "it imports keys (ssh_import_id)"),
    ],
)
def test_user_data_whose_keys_cannot_be_told_says_why(data: str, why: str) -> None:
    with pytest.raises(UnreadableUserData) as unread:
        user_data_keys(data, "fedora")
    assert str(unread.value).startswith(why)


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
    """`Administrator` (a Windows guest) and `john.doe` were refused as not Linux names,
    though KubeVirt and qemu-ga take them (session 47): now valid."""
    for good in ("fedora", "_svc-1", "machine$", "Administrator", "john.doe", "j@corp.example"):
        assert valid_user(good), good
    for bad in ("1st", "-x", ".ssh", "john doe", "a/b", "a" * 33, "fedora\n", ""):
        assert not valid_user(bad), bad


class SecretsApi:
    """The API server as the CLI sees it: web-1 and Secrets, each GET refused with 403
    when its name is in `forbidden` (404 when absent); records every write."""

    def __init__(
        self,
        cr: dict[str, Any],
        *secrets: dict[str, Any],
        forbidden: tuple[str, ...] = (),
        vmi: dict[str, Any] | None = None,
    ) -> None:
        self.cr, self.forbidden, self.vmi = cr, forbidden, vmi
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
        if "/virtualmachineinstances/" in path:
            if self.vmi is None:
                raise NotFound(404, "NotFound", f'virtualmachineinstances "{name}" not found')
            return copy.deepcopy(self.vmi)
        if name in self.forbidden:
            raise Forbidden(403, "Forbidden", f'secrets "{name}" is forbidden')
        if name not in self.secrets:
            raise NotFound(404, "NotFound", f'secrets "{name}" not found')
        return copy.deepcopy(self.secrets[name])


def keyed(name: str, *lines: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "data": {"a": b64("\n".join(lines) + "\n")}}


def add_key(
    server: SecretsApi, kubeconfig: str, monkeypatch: pytest.MonkeyPatch, *extra: str
) -> Any:
    """`wukong credentials add-ssh-key web-1 --user fedora --value THEIRS` against `server`."""
    monkeypatch.setattr(Kube, "request", server.request)
    argv = ["credentials", "add-ssh-key", "web-1", "--user", "fedora", "--value", THEIRS]
    return CliRunner().invoke(app, [*argv, "-n", "demo", "--kubeconfig", kubeconfig, *extra])


def made_keys(server: SecretsApi) -> list[str]:
    """The keys of the Secret the CLI made, in its data's order."""
    made = next(body for method, path, body in server.written if method == "POST")
    return [base64.b64decode(v).decode().strip() for v in made["data"].values()]


def test_the_owners_cloud_init_key_goes_into_the_first_agent_secret_too(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`create --ssh-key-file me.pub` then `add-ssh-key --user fedora --file colleague.pub`
    made a Secret with the colleague's key alone, and KubeVirt then set fedora's
    authorized_keys to it: the owner was locked out at the next restart (source audit,
    session 46)."""
    server = SecretsApi(
        running("web-1", cloudInit={"userData": authorized_keys([MINE])}, sshKeys=[])
    )
    done = add_key(server, kubeconfig, monkeypatch)
    assert done.exit_code == 0, done.stderr
    assert made_keys(server) == [THEIRS, MINE]
    assert done.stdout.splitlines()[1] == (
        "1 key fedora may have from cloud-init (user data) copied into it too: the guest "
        "agent replaces fedora's whole authorized_keys"
    )


def test_the_keys_of_the_nocloud_secrets_are_read_with_the_users_rights_and_copied(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cr = running(
        "web-1",
        cloudInit={"userDataSecretRef": {"name": "boot-data"}},
        sshKeys=[{"secretName": "my-keys"}, AGENT | {"users": ["ops"]}],
    )
    user_data = f"#cloud-config\nssh_authorized_keys: [{OTHER}]\n"
    boot = {"metadata": {"name": "boot-data"}, "data": {"userdata": b64(user_data)}}
    server = SecretsApi(cr, boot, keyed("my-keys", MINE, THEIRS))
    done = add_key(server, kubeconfig, monkeypatch)
    assert done.exit_code == 0, done.stderr
    assert made_keys(server) == [THEIRS, OTHER, MINE]  # THEIRS, the one added, once
    assert done.stdout.splitlines()[1].startswith(
        "2 keys fedora may have from cloud-init (user data, Secret my-keys) copied into it too"
    )


@pytest.mark.parametrize(
    ("spec", "forbidden", "said"),
    [
        pytest.param(
            {"sshKeys": [{"secretName": "my-keys"}]},
            ("my-keys",),
            "you may not read Secret my-keys (noCloud keys of web-1)",
            id="nocloud-secret-forbidden",
        ),
        pytest.param(
            {"sshKeys": [{"secretName": "gone"}]},
            (),
            "Secret gone (noCloud keys of web-1) does not exist",
            id="nocloud-secret-missing",
        ),
        pytest.param(
            {"cloudInit": {"userDataSecretRef": {"name": "boot-data"}}},
            ("boot-data",),
            "you may not read Secret boot-data (the user data of web-1)",
            id="user-data-secret-forbidden",
        ),
        pytest.param(
            {"cloudInit": {"userData": "#cloud-config\nusers: [\n"}},
            (),
            "cannot tell which keys the user data of web-1 gives (its #cloud-config is not "
            "valid YAML at line 3)",
            id="user-data-not-yaml",
        ),
    ],
)
def test_cloud_init_keys_the_cli_cannot_read_refuse_without_force(
    spec: dict[str, Any],
    forbidden: tuple[str, ...],
    said: str,
    kubeconfig: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = SecretsApi(running("web-1", **spec), forbidden=forbidden)
    refused = add_key(server, kubeconfig, monkeypatch)
    consequence = (
        ": the guest agent replaces fedora's whole authorized_keys, and keys cloud-init gave "
        "fedora from it would not be copied into the new Secret, so they would stop working"
    )
    assert (refused.exit_code, server.written) == (1, [])
    assert refused.stderr == f"error: {said}{consequence}; pass --force to make it anyway\n"
    forced = add_key(server, kubeconfig, monkeypatch, "--force")
    assert forced.exit_code == 0, forced.stderr
    assert forced.stderr == f"warning: {said}{consequence}\n"
    assert made_keys(server) == [THEIRS]


def test_a_user_or_an_entry_sshkeys_cannot_take_is_refused_before_anything_is_written(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both were refused by the CRD after the Secret was made, which stayed behind."""
    server = SecretsApi(running("web-1"))
    monkeypatch.setattr(Kube, "request", server.request)
    bad = CliRunner().invoke(
        app,
        ["credentials", "add-ssh-key", "web-1", "--user", "john doe", "--value", THEIRS],
    )
    assert (bad.exit_code, server.written) == (2, [])
    assert bad.stderr.startswith("error: --user: 'john doe' is not a user name sshKeys take")
    full = [{"secretName": f"k{i}"} for i in range(16)]
    server = SecretsApi(running("web-1", sshKeys=full))
    done = add_key(server, kubeconfig, monkeypatch)
    assert (done.exit_code, server.written) == (1, [])
    assert done.stderr == (
        "error: web-1 lists 16 sshKeys Secrets, the most a Wukong takes: give fedora the key "
        "through a Secret it lists (add fedora to its users)\n"
    )


@pytest.mark.parametrize(("vmi_phase", "when"), [("Running", "without a restart"), (None, "when")])
def test_a_key_reaches_a_guest_that_runs_though_its_wukong_is_in_error(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch, vmi_phase: str | None, when: str
) -> None:
    """A Wukong in Error (a disk added later whose import failed) may have a guest that runs
    and takes keys live; its phase alone said "when web-1 starts" (noticed in session 46).
    The VMI, read with the user's rights, now says; without one, the words stay."""
    cr = running("web-1", sshKeys=[AGENT])
    cr["status"]["phase"] = "Error"
    vmi = None
    if vmi_phase is not None:
        vmi = {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachineInstance",
            "metadata": {"name": "web-1-vm", "namespace": "demo"},
            "status": {"phase": vmi_phase},
        }
    server = SecretsApi(cr, keyed("team", MINE), vmi=vmi)
    done = add_key(server, kubeconfig, monkeypatch, "--force")  # a Secret web-1 does not own
    assert done.exit_code == 0, done.stderr
    assert done.stdout.startswith("key added to Secret team: the guest agent puts it in ")
    assert f"fedora's authorized_keys {when}" in done.stdout
