"""`wukong guestosinfo|userlist|fslist`: the guest agent's answers, as virtctl prints them."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.unit.cli.objects import running, wukong
from tests.unit.cli.test_selection import kubeconfig
from tests.unit.cli.test_soft_reboot import VirtApi
from wukong.adapters.kube import Kube
from wukong.cli import app
from wukong.errors import Conflict

__all__ = ["kubeconfig"]  # fixture
VMI = "/apis/subresources.kubevirt.io/v1/namespaces/demo/virtualmachineinstances/web-1-vm"
FILESYSTEMS = {
    "items": [
        {
            "diskName": "vda1",
            "mountPoint": "/",
            "fileSystemType": "xfs",
            "usedBytes": 2147483648,
            "totalBytes": 21474836480,
            "disk": [{"serial": "system", "busType": "virtio"}],
        }
    ]
}


def report(
    server: VirtApi, kubeconfig: str, monkeypatch: pytest.MonkeyPatch, verb: str, *args: str
) -> Any:
    monkeypatch.setattr(Kube, "request", server.request)
    argv = [verb, "web-1", "-n", "demo", *args, "--kubeconfig", kubeconfig]
    return CliRunner().invoke(app, argv)


@pytest.mark.parametrize(
    ("verb", "sub"),
    [("guestosinfo", "guestosinfo"), ("userlist", "userlist"), ("fslist", "filesystemlist")],
)
def test_each_verb_prints_virt_apis_answer_as_virtctl_does(
    verb: str, sub: str, kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = VirtApi(running("web-1"), answer=FILESYSTEMS)
    done = report(server, kubeconfig, monkeypatch, verb)
    assert done.exit_code == 0, done.output
    assert server.sent == [("GET", f"{VMI}/{sub}")]
    assert done.stdout == json.dumps(FILESYSTEMS, indent=2) + "\n"  # virtctl's MarshalIndent


def test_yaml_on_request(kubeconfig: str, monkeypatch: pytest.MonkeyPatch) -> None:
    server = VirtApi(running("web-1"), answer=FILESYSTEMS)
    done = report(server, kubeconfig, monkeypatch, "fslist", "-o", "yaml")
    assert done.exit_code == 0, done.output
    assert yaml.safe_load(done.stdout) == FILESYSTEMS
    wrong = report(server, kubeconfig, monkeypatch, "fslist", "-o", "wide")
    assert wrong.exit_code == 2
    assert "'wide' is not one of 'json', 'yaml'" in wrong.stderr


def test_a_guest_without_its_agent_says_what_would_answer(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_agent = Conflict(
        409,
        "Conflict",
        'Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io "web-1-vm": '
        "VMI does not have guest agent connected",
    )
    server = VirtApi(running("web-1"), refusal=no_agent)
    done = report(server, kubeconfig, monkeypatch, "userlist")
    assert (done.exit_code, done.stdout) == (1, "")
    assert done.stderr == (
        "error: web-1: no guest agent connected: with qemu-guest-agent in the guest, KubeVirt "
        "reports its OS, users and filesystems\n"
    )


def test_a_stopped_wukong_is_told_to_start_and_nothing_is_asked(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = VirtApi(wukong("web-1", status={"phase": "Stopped"}))
    done = report(server, kubeconfig, monkeypatch, "fslist")
    assert (done.exit_code, server.sent) == (1, [])
    assert done.stderr == (
        "error: wukong web-1 is Stopped, not running: start it first (wukong start web-1 -n demo)\n"
    )


def test_a_wukong_in_error_or_being_deleted_is_not_told_to_start(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`start it first` was the advice whatever the phase: wrong for a VM in Error (its
    reason is what helps) or one being deleted."""
    ready = {"type": "Ready", "status": "False", "reason": "VMError", "message": "ImagePullBackOff"}
    failed = wukong("web-1", status={"phase": "Error", "conditions": [ready]})
    done = report(VirtApi(failed), kubeconfig, monkeypatch, "fslist")
    assert done.stderr == (
        "error: wukong web-1 is in Error, not running: ImagePullBackOff "
        "(wukong describe web-1 -n demo)\n"
    )
    going = report(
        VirtApi(wukong("web-1", status={"phase": "Deleting"})), kubeconfig, monkeypatch, "fslist"
    )
    assert going.stderr == "error: wukong web-1 is being deleted\n"
