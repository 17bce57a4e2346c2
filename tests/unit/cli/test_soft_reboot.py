"""`wukong soft-reboot`: which Wukongs can take one, what is sent, and how a refusal reads."""

from __future__ import annotations

import copy
import sys
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.unit.cli.objects import running, wukong
from tests.unit.cli.test_selection import kubeconfig
from wukong.adapters.kube import Kube
from wukong.cli import app
from wukong.console.lifecycle import soft_reboot_refusal
from wukong.errors import ApiError, Conflict, NotFound, ServerError

__all__ = ["kubeconfig"]  # the fixture
JsonObj = dict[str, Any]
SOFTREBOOT = (
    "/apis/subresources.kubevirt.io/v1/namespaces/demo/virtualmachineinstances/web-1-vm/softreboot"
)


def in_phase(phase: str) -> JsonObj:
    return wukong("web-1", status={"phase": phase})


def test_only_a_running_guest_can_reboot_in_place() -> None:
    assert soft_reboot_refusal(running("web-1")) is None
    assert soft_reboot_refusal(in_phase("Suspended")) == (
        "web-1 is Suspended: a paused guest cannot reboot (wukong resume web-1 -n demo first)"
    )
    assert soft_reboot_refusal(in_phase("Stopped")) == (
        "web-1 is Stopped, not Running: start it (wukong start web-1 -n demo)"
    )
    for phase in ("Starting", "Restarting", "Error"):
        assert soft_reboot_refusal(in_phase(phase)) == (
            f"web-1 is {phase}, not Running: only a running guest can reboot in place"
        )
    assert soft_reboot_refusal(wukong("web-1")) == (
        "web-1 is Pending, not Running: only a running guest can reboot in place"
    )
    deleting = running("web-1")
    deleting["metadata"]["deletionTimestamp"] = "2026-05-01T11:59:00Z"
    assert soft_reboot_refusal(deleting) == "web-1 is being deleted"


def test_the_advice_names_the_program_as_the_user_types_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under kubectl, `wukong start web-1` is not a command the user has: the advice says
    `kubectl wukong start web-1`, as the plugin's usage lines and examples do."""
    monkeypatch.setattr(sys, "argv", ["/home/me/.krew/bin/kubectl-wukong", "soft-reboot"])
    assert soft_reboot_refusal(in_phase("Stopped")) == (
        "web-1 is Stopped, not Running: start it (kubectl wukong start web-1 -n demo)"
    )


class VirtApi:
    """Stored Wukongs (`web-1` first), no VMI (tests/unit/cli/apiserver.py serves those),
    and virt-api's subresources: records each request to virt-api in `sent`, which fails
    with `refusal` when one is set, else answers `answer` (softreboot: {})."""

    def __init__(
        self,
        cr: JsonObj,
        *more: JsonObj,
        refusal: ApiError | None = None,
        answer: JsonObj | None = None,
    ) -> None:
        self.stored = {c["metadata"]["name"]: c for c in (cr, *more)}
        self.refusal, self.answer = refusal, answer or {}
        self.sent: list[tuple[str, str]] = []

    async def request(self, method: str, path: str, **_: Any) -> JsonObj:
        if path.startswith("/apis/kubevirt.io/v1/"):  # a VMI, asked by the access verbs
            name = path.rsplit("/", 1)[-1]
            raise NotFound(404, "NotFound", f'virtualmachineinstances "{name}" not found')
        if path.endswith("/wukongs"):  # -l: every one matches
            return {"items": copy.deepcopy(list(self.stored.values()))}
        if "/wukongs/" in path:
            name = path.rsplit("/", 1)[-1]
            if name not in self.stored:
                raise NotFound(404, "NotFound", f'wukongs "{name}" not found', path=path)
            return copy.deepcopy(self.stored[name])
        self.sent.append((method, path))
        if self.refusal is not None:
            raise self.refusal
        return copy.deepcopy(self.answer)


def soft_reboot(
    server: VirtApi, kubeconfig: str, monkeypatch: pytest.MonkeyPatch, *args: str
) -> Any:
    """`wukong soft-reboot ARGS` (default: web-1 in demo) against `server`."""
    monkeypatch.setattr(Kube, "request", server.request)
    argv = ["soft-reboot", *(args or ("web-1", "-n", "demo")), "--kubeconfig", kubeconfig]
    return CliRunner().invoke(app, argv)


def test_a_running_guest_gets_virt_apis_softreboot_put(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = VirtApi(running("web-1"))
    result = soft_reboot(server, kubeconfig, monkeypatch)
    assert result.exit_code == 0, result.output
    assert server.sent == [("PUT", SOFTREBOOT)]
    assert result.stdout == "web-1 is rebooting in place (same pod, node and address)\n"


def test_a_stopped_wukong_is_refused_before_anything_is_sent(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = VirtApi(in_phase("Stopped"))
    result = soft_reboot(server, kubeconfig, monkeypatch)
    assert (result.exit_code, server.sent, result.stdout) == (1, [], "")
    assert (
        result.stderr
        == "error: web-1 is Stopped, not Running: start it (wukong start web-1 -n demo)\n"
    )


@pytest.mark.parametrize(
    "refusal",
    [
        # virt-api: neither an agent nor ACPI can ask the guest to reboot
        Conflict(
            409,
            "Conflict",
            'Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io "web-1-vm": '
            "VMI neither have the agent connected nor the ACPI feature enabled",
        ),
        # virt-handler: libvirt failed, passed on by virt-api as a 500
        ServerError(500, "InternalError", "Failed to soft reboot VMI"),
    ],
)
def test_kubevirts_refusal_is_one_line_in_its_own_words(
    refusal: ApiError, kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = VirtApi(running("web-1"), refusal=refusal)
    result = soft_reboot(server, kubeconfig, monkeypatch)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"error: cannot soft-reboot web-1: {refusal.message}\n"


def test_an_unknown_wukong_is_not_found(kubeconfig: str, monkeypatch: pytest.MonkeyPatch) -> None:
    server = VirtApi(running("web-1"))
    result = soft_reboot(server, kubeconfig, monkeypatch, "web-9", "-n", "demo")
    assert (result.exit_code, server.sent) == (1, [])
    assert result.stderr == "error: wukong web-9 not found in namespace demo\n"


def test_over_a_selection_a_stopped_one_is_an_error_line_and_the_others_reboot(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped = wukong("web-2", status={"phase": "Stopped"})
    server = VirtApi(running("web-1"), stopped, running("web-3"))
    result = soft_reboot(server, kubeconfig, monkeypatch, "-l", "tier=web", "-n", "demo")
    assert result.exit_code == 1
    assert [path.split("/")[-2] for _, path in server.sent] == ["web-1-vm", "web-3-vm"]
    assert result.stdout.splitlines() == [
        "web-1 is rebooting in place (same pod, node and address)",
        "web-3 is rebooting in place (same pod, node and address)",
    ]
    assert (
        result.stderr
        == "error: web-2 is Stopped, not Running: start it (wukong start web-2 -n demo)\n"
    )


def test_names_and_a_selector_do_not_go_together(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = VirtApi(running("web-1"))
    result = soft_reboot(server, kubeconfig, monkeypatch, "web-1", "-l", "tier=web")
    assert (result.exit_code, server.sent) == (2, [])
    assert result.stderr == "error: a NAME and -l/--selector do not go together\n"


def test_a_guest_that_runs_reboots_whatever_its_wukongs_phase_unless_it_is_stopping() -> None:
    """The VMI, read for a Wukong that is not Running, decides as virt-api would: a running
    one takes the reboot (a Wukong in Error for a disk that failed to import, its VM up);
    one being shut down does not, nor does a Wukong Stopping (the reboot would race the
    stop); without one that runs, the Wukong's phase speaks as before (access audit, s46)."""
    vmi: JsonObj = {"metadata": {"name": "web-1-vm"}, "status": {"phase": "Running"}}
    going = copy.deepcopy(vmi)
    going["metadata"]["deletionTimestamp"] = "2026-05-01T11:59:00Z"
    done = {"metadata": {"name": "web-1-vm"}, "status": {"phase": "Succeeded"}}
    assert soft_reboot_refusal(in_phase("Error"), vmi) is None
    assert soft_reboot_refusal(in_phase("Starting"), vmi) is None
    shutting = "a reboot in place would race its stop"
    assert soft_reboot_refusal(in_phase("Restarting"), going) == (
        f"web-1 is shutting down (Restarting): {shutting}"
    )
    assert (
        soft_reboot_refusal(in_phase("Stopping"))
        == f"web-1 is shutting down (Stopping): {shutting}"
    )
    assert soft_reboot_refusal(in_phase("Error"), done) == (
        "web-1 is Error, not Running: only a running guest can reboot in place"
    )
