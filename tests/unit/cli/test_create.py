"""`wukong create NAME`: a Wukong from flags, checked by the API's own models before anything
is sent; `--dry-run=client` prints the manifest without a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.unit.cli.objects import running
from tests.unit.cli.test_selection import kubeconfig
from wukong.adapters.kube import Kube
from wukong.api.spec import RunStrategy, WukongSpec
from wukong.cli import app
from wukong.console.create import Wanted, manifest, settled, wanted_phase
from wukong.console.lifecycle import Outcome
from wukong.console.output import Output, document

__all__ = ["kubeconfig"]  # the fixture
IMAGE = "docker://quay.io/containerdisks/fedora:40"


def test_the_defaults_make_a_small_vm_with_one_system_disk() -> None:
    assert manifest(Wanted("web-1", image=IMAGE)) == {
        "apiVersion": "vm.novasphere.dev/v1alpha1",
        "kind": "Wukong",
        "metadata": {"name": "web-1"},
        "spec": {
            "cpu": 1,
            "memory": "1Gi",
            "disks": [{"name": "system", "size": "10Gi", "image": IMAGE}],
        },
    }


def test_every_flag_lands_where_the_spec_has_it() -> None:
    wanted = Wanted(
        "db-1",
        image=IMAGE,
        size="20Gi",
        instancetype="u1.medium",
        preference="fedora",
        disks=("data=100Gi", "logs=5Gi"),
        networks=("storage=storage-net", "backup=infra/backup-net"),
        bridges=("lan=br-lan:100", "flat=br-flat"),
        ssh_keys=("keys", "more-keys", "keys"),
        user_data="#cloud-config\npackages: [nginx]\n",
        run_strategy=RunStrategy.MANUAL,
        stopped=True,
        labels=("tier=db", "team=core"),
    )
    made = manifest(wanted)
    assert made["metadata"] == {"name": "db-1", "labels": {"tier": "db", "team": "core"}}
    assert made["spec"] == {
        "instancetype": {"name": "u1.medium"},
        "preference": {"name": "fedora"},
        "disks": [
            {"name": "system", "size": "20Gi", "image": IMAGE},
            {"name": "data", "size": "100Gi"},
            {"name": "logs", "size": "5Gi"},
        ],
        "networks": [
            {"name": "storage", "nadName": "storage-net"},
            {"name": "backup", "nadName": "infra/backup-net"},
            {"name": "lan", "bridge": "br-lan", "vlan": 100},
            {"name": "flat", "bridge": "br-flat"},
        ],
        "sshKeys": [{"secretName": "keys"}, {"secretName": "more-keys"}],  # each once
        "cloudInit": {"userData": "#cloud-config\npackages: [nginx]\n"},
        "runStrategy": "Manual",
        "startStrategy": {"autoStart": False},
    }
    WukongSpec.model_validate(made["spec"])  # what the operator will read


def test_a_namespaced_instancetype_or_preference_is_named_as_virtctl_names_it() -> None:
    wanted = Wanted(
        "a",
        instancetype="virtualmachineinstancetype/small",
        preference="VirtualMachineClusterPreference/fedora",
    )
    spec = manifest(wanted)["spec"]
    assert spec["instancetype"] == {"name": "small", "kind": "VirtualMachineInstancetype"}
    assert spec["preference"] == {"name": "fedora", "kind": "VirtualMachineClusterPreference"}
    WukongSpec.model_validate(spec)


@pytest.mark.parametrize(
    ("wanted", "phase"),
    [
        (Wanted("a"), "Running"),
        (Wanted("a", stopped=True), "Stopped"),
        (Wanted("a", run_strategy=RunStrategy.HALTED), "Stopped"),
        (Wanted("a", run_strategy=RunStrategy.MANUAL), "Running"),  # started once when new
        (Wanted("a", run_strategy=RunStrategy.MANUAL, stopped=True), "Stopped"),
    ],
)
def test_where_a_new_wukong_settles(wanted: Wanted, phase: str) -> None:
    assert wanted_phase(wanted) == phase


def test_the_wait_ends_where_it_settles_or_at_an_error() -> None:
    cr = running("web-1")
    assert settled(cr, "Running") == Outcome(True, "web-1 is Running on node-1 at 10.244.0.7")
    cr["status"]["phase"] = "Starting"
    assert settled(cr, "Running") is None
    cr["status"] |= {
        "phase": "Error",
        "conditions": [{"type": "Ready", "status": "False", "message": "no node fits"}],
    }
    assert settled(cr, "Running") == Outcome(False, "web-1 is in Error: no node fits")
    assert settled(None, "Running") == Outcome(False, "the Wukong was deleted")
    cr["status"] |= {
        "phase": "Pending",
        "conditions": [
            {"type": "SpecValid", "status": "False", "reason": "NetworkNotAllowed", "message": "no"}
        ],
    }
    assert settled(cr, "Running") == Outcome(
        False,
        "web-1 was created, but the operator refuses its spec (NetworkNotAllowed: no)",
    )


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, ["create", *args, "--kubeconfig", "/nonexistent"])


def test_a_client_dry_run_prints_the_manifest_without_a_cluster(tmp_path: Path) -> None:
    data = tmp_path / "user-data"
    data.write_text("#cloud-config\nruncmd:\n  - echo hi\n")
    result = cli("web-1", "--image", IMAGE, "--user-data", str(data), "--dry-run=client")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["spec"]["cloudInit"] == {"userData": data.read_text()}
    assert "    userData: |\n      #cloud-config\n      runcmd:\n" in result.stdout  # as written
    assert result.stderr == "wukong.vm.novasphere.dev/web-1 would be created (client dry run)\n"
    as_json = cli("web-1", "--dry-run=client", "-o", "json")
    assert as_json.exit_code == 0, as_json.output
    assert as_json.stdout.startswith('{\n  "apiVersion": "vm.novasphere.dev/v1alpha1"')


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        # The words of resize --cpu, not pydantic's (CLI audit s44, F17).
        (["--cpu", "0"], "invalid value for '--cpu': '0' is not a vCPU count from 1 to 2147"),
        (["--memory", "1GB"], "--memory: '1GB' is not a Kubernetes quantity (did you mean"),
        (["--size", "1XB"], "--size: '1XB' is not a Kubernetes quantity"),
        (["--image", "ftp://x"], "--image: 'ftp://x' is not an image source"),
        (["--clone-from", "a/b/c"], "--clone-from: 'a/b/c' is not a PVC name: use 'name'"),
        (["--clone-from", "a", "--image", IMAGE], "--image and --clone-from: the system disk"),
        (["--data-source", "a", "--clone-from", "b"], "--clone-from and --data-source: the sys"),
        (["--data-source", "A"], "--data-source: 'A' is not a DataSource name"),
        (["--disk", "data"], "--disk takes NAME=SIZE, e.g. data=100Gi, not 'data'"),
        (["--disk", "data=1XB"], "--disk: '1XB' is not a Kubernetes quantity"),
        (["--disk", "system=1Gi"], "--disk system: a disk of that name is already there"),
        (["--disk", "Data=1Gi"], "--disk: 'Data' is not a valid name"),
        (["--network", "storage"], "--network takes NAME=NAD"),
        (["--network", "default=x"], "--network default: the name 'default' is taken by the pod"),
        (["--bridge", "lan=br-lan:x"], "--bridge takes NAME=BRIDGE or NAME=BRIDGE:VLAN, e.g. lan"),
        (["--bridge", "lan=br-lan:5000"], "--bridge lan: vlan: Input should be less than or eq"),
        (["--bridge", "lan=br0", "--network", "lan=n"], "network lan is named twice"),
        (["--instancetype", "u1", "--cpu", "2"], "--instancetype sizes the VM: drop --cpu"),
        (["--ssh-key-secret", "Bad_Name"], "--ssh-key-secret: 'Bad_Name': an SSH key Secret's"),
        (["--instancetype", "pod/u1"], "--instancetype: 'pod' is not one of virtualmachineclus"),
        (["--label", "tier"], "--label takes KEY=VALUE, e.g. tier=web, not 'tier'"),
        # Checked as the API server checks labels, not a manifest it refuses (audit, s44).
        (["--label", "a b=c"], "--label: 'a b' is not a label key: an optional DNS prefix"),
        (["--label", "=web"], "--label takes KEY=VALUE, e.g. tier=web, not '=web'"),
        (["--label", "a=b c"], "--label: 'b c' (of a) is not a label value: up to 63"),
        (["--label", "a=b=c"], "--label: 'b=c' (of a) is not a label value"),
        (["--label", "a=" + "v" * 64], f"--label: '{'v' * 64}' (of a) is not a label value"),
        (["--user-data", "/no/such/file"], "--user-data: cannot read /no/such/file: no such"),
        (["--user-data-secret", "Bad_S"], "--user-data-secret: 'Bad_S' is not a valid object"),
        (["--user-data", "-", "--user-data-secret", "s"], "--user-data and --user-data-secret"),
        (["--run-strategy", "Once"], "invalid value for '--run-strategy': 'Once' is not one of"),
        (["--timeout", "5m"], "--timeout only bounds --wait"),
        # One -o message per command, naming its formats (CLI audit s44, F16).
        (["-o", "wide"], "invalid value for '--output' / '-o': 'wide' is not one of 'json', 'y"),
    ],
)
def test_a_bad_flag_is_one_line_and_exit_2_before_any_cluster(flags: list[str], said: str) -> None:
    result = cli("web-1", *flags)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {said}"), lines


def test_a_label_may_have_an_empty_value_as_kubectl_label_takes_it() -> None:
    result = cli(
        "web-1", "--label", "tier=", "--label", "example.com/team=core", "--dry-run=client"
    )
    assert result.exit_code == 0, result.output
    labels = yaml.safe_load(result.stdout)["metadata"]["labels"]
    assert labels == {"tier": "", "example.com/team": "core"}


def test_a_name_a_wukong_cannot_have_is_refused() -> None:
    result = cli("Web_1", "--dry-run=client")
    assert result.exit_code == 2 and "'Web_1' is not a Wukong name" in result.stderr


@pytest.mark.parametrize(
    "text",
    [
        "#cloud-config\nusers:\n  - name: a\n",
        "no newline at the end\nof this",
        "two at the end\n\n",
        "trailing  \nspace\n",
    ],
)
def test_yaml_output_keeps_multi_line_text_exactly(text: str) -> None:
    body = {"spec": {"cloudInit": {"userData": text}}}
    printed = document(body, Output.YAML) + "\n"  # as io.out prints it
    assert yaml.safe_load(printed) == body


def test_user_data_over_kubevirts_limit_points_to_the_secret_flag(tmp_path: Path) -> None:
    big = tmp_path / "user-data"
    big.write_text("#cloud-config\n" + "a" * 3000)
    result = cli("web-1", "--user-data", str(big), "--dry-run=client")
    assert result.exit_code == 2
    assert result.stderr.endswith("put larger data in a Secret and use --user-data-secret\n")
    from_secret = cli("web-1", "--user-data-secret", "web-1-ud", "--dry-run=client")
    assert from_secret.exit_code == 0, from_secret.output
    spec = yaml.safe_load(from_secret.stdout)["spec"]
    assert spec["cloudInit"] == {"userDataSecretRef": {"name": "web-1-ud"}}


KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBlahBlah me@laptop"


def test_a_public_key_file_becomes_cloud_init_for_the_default_user(tmp_path: Path) -> None:
    pub, other = tmp_path / "id.pub", tmp_path / "rsa.pub"
    pub.write_text(KEY + "\n")
    other.write_text("ssh-rsa AAAAB3NzaC1yc2E me@desk\n" + KEY + "\n")  # one key twice
    result = cli(
        "web-1", "--ssh-key-file", str(pub), "--ssh-key-file", str(other), "--dry-run=client"
    )
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["spec"]["cloudInit"]["userData"] == (
        f"#cloud-config\nssh_authorized_keys:\n  - {KEY}\n  - ssh-rsa AAAAB3NzaC1yc2E me@desk\n"
    )


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n", "that is a private key; give the .pub"),
        ("#cloud-config\n", "not an SSH public key ('#cloud-config')"),
        ("", "not an SSH public key"),
    ],
)
def test_what_is_not_a_public_key_is_refused_and_a_private_one_never_sent(
    tmp_path: Path, text: str, said: str
) -> None:
    key = tmp_path / "key"
    key.write_text(text)
    result = cli("web-1", "--ssh-key-file", str(key), "--dry-run=client")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.startswith(f"error: --ssh-key-file: {said}"), result.stderr
    assert "b3Blbn" not in result.stderr


def test_keys_too_many_for_inline_user_data_point_to_the_key_secret_flag(tmp_path: Path) -> None:
    """Three 4096-bit RSA keys make more user data than KubeVirt takes inline: the error
    named --user-data, which the user never gave, and advised --user-data-secret, which
    does not go with --ssh-key-file (source audit, session 46)."""
    files = []
    for i in range(3):
        pub = tmp_path / f"k{i}.pub"
        pub.write_text(f"ssh-rsa AAAAB3NzaC1yc2E{'A' * 700}{i} me@laptop\n")
        files += ["--ssh-key-file", str(pub)]
    result = cli("web-1", *files, "--dry-run=client")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "error: --ssh-key-file: the keys make 2252 bytes of user data, over KubeVirt's 2048: "
        "put them in a Secret (a key a value) and use --ssh-key-secret\n"
    )


def test_a_key_file_and_user_data_do_not_go_together(tmp_path: Path) -> None:
    pub = tmp_path / "id.pub"
    pub.write_text(KEY)
    result = cli("web-1", "--ssh-key-file", str(pub), "--user-data-secret", "s", "--dry-run=client")
    assert result.exit_code == 2 and "--ssh-key-file writes the user data" in result.stderr


def test_a_system_disk_cloned_from_a_pvc() -> None:
    spec = manifest(Wanted("web-1", clone_from="golden/fedora-40", size="20Gi"))["spec"]
    assert spec["disks"] == [{"name": "system", "size": "20Gi", "cloneFrom": "golden/fedora-40"}]
    WukongSpec.model_validate(spec)


@pytest.mark.parametrize(
    ("output", "first"),
    [
        ("name", "wukong.vm.novasphere.dev/web-1\n"),
        ("yaml", "apiVersion: vm.novasphere.dev/v1alpha1\n"),
    ],
)
def test_create_o_prints_the_wukong_the_api_server_made(
    output: str, first: str, kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `kubectl create -o yaml|name`: the object as the server answered (its uid), not a
    usage error asking for --dry-run=client (found by a user audit, session 37)."""
    sent: list[Any] = []

    async def create(_: Kube, path: str, body: Any, **__: Any) -> Any:
        sent.append(body)
        return {**body, "metadata": {**body["metadata"], "uid": "u-1", "namespace": "default"}}

    monkeypatch.setattr(Kube, "create", create)
    result = CliRunner().invoke(app, ["create", "web-1", "--kubeconfig", kubeconfig, "-o", output])
    assert result.exit_code == 0, result.output
    assert len(sent) == 1 and result.stdout.startswith(first), result.stdout
    if output == "yaml":
        assert yaml.safe_load(result.stdout)["metadata"]["uid"] == "u-1"
    else:
        assert result.stdout == first  # the name alone, no "created" line


def test_a_client_dry_run_with_n_names_the_namespace_in_the_manifest() -> None:
    """As kubectl create --dry-run=client -o yaml -n demo (found by a user audit, session 37);
    without -n the manifest names none, and applies where kubectl points."""
    result = cli("web-1", "--dry-run=client", "-n", "demo")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["metadata"] == {"name": "web-1", "namespace": "demo"}
    plain = cli("web-1", "--dry-run=client")
    assert yaml.safe_load(plain.stdout)["metadata"] == {"name": "web-1"}


BLANK = (
    "warning: the system disk of web-1 is blank: the VM can boot only from the network "
    "(give --image, --clone-from or --data-source for an operating system)"
)


@pytest.mark.parametrize(
    ("flags", "stdout"),
    [
        pytest.param([], "wukong.vm.novasphere.dev/web-1 created\n", id="plain"),
        pytest.param(["-o", "name"], "wukong.vm.novasphere.dev/web-1\n", id="o-name"),
    ],
)
def test_a_create_without_an_image_says_the_vm_can_boot_only_from_the_network(
    flags: list[str], stdout: str, kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blank 10Gi system disk is allowed (a VM installed over the network), but a forgotten
    --image showed only as a VM that ran and booted nothing (session 46): one warning line on
    stderr, so stdout is still kubectl's, and the exit code is the creation's."""

    async def create(_: Kube, path: str, body: Any, **__: Any) -> Any:
        return {**body, "metadata": {**body["metadata"], "uid": "u-1", "namespace": "default"}}

    monkeypatch.setattr(Kube, "create", create)
    argv = ["create", "web-1", "--kubeconfig", kubeconfig, *flags]
    result = CliRunner().invoke(app, argv)
    assert (result.exit_code, result.stdout) == (0, stdout), result.output
    assert result.stderr.splitlines() == [BLANK]
    for source in (["--image", IMAGE], ["--clone-from", "golden/f40"], ["--data-source", "f"]):
        result = CliRunner().invoke(app, [*argv, *source])
        assert (result.exit_code, result.stderr) == (0, ""), (source, result.output)


def test_a_client_dry_run_without_an_image_warns_of_the_blank_system_disk_too() -> None:
    result = cli("web-1", "--dry-run=client")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["spec"]["disks"] == [{"name": "system", "size": "10Gi"}]
    assert result.stderr.splitlines() == [
        "wukong.vm.novasphere.dev/web-1 would be created (client dry run)",
        BLANK,
    ]
    assert "warning" not in cli("web-1", "--image", IMAGE, "--dry-run=client").stderr
