"""`wukong logs`: which pod holds the serial console log, and the query for it."""

from __future__ import annotations

from typing import Any

import pytest

from wukong.console import guestlog

JsonObj = dict[str, Any]


def pod(uid: str, made: str, *, deleting: bool = False, log: bool = True) -> JsonObj:
    meta: JsonObj = {"name": f"virt-launcher-web-1-vm-{uid}", "uid": uid, "creationTimestamp": made}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-05T02:00:09Z"
    sidecar = [{"name": "guest-console-log"}] if log else []
    return {
        "metadata": meta,
        "spec": {"initContainers": sidecar, "containers": [{"name": "compute"}]},
    }


def vmi(node: str | None, active: dict[str, str]) -> JsonObj:
    return {"metadata": {"uid": "vmi-1"}, "status": {"nodeName": node, "activePods": active}}


def test_the_pod_is_looked_up_by_its_vmis_uid() -> None:
    assert guestlog.pod_selector(vmi("n1", {})) == "kubevirt.io/created-by=vmi-1"


def test_the_guest_runs_in_the_active_pod_on_the_vmis_node() -> None:
    source, target = pod("a", "2026-12-05T02:00:00Z"), pod("b", "2026-12-05T02:00:05Z")
    # While a migration copies, both pods are active: the guest is still on the source's node.
    copying = vmi("n1", {"a": "n1", "b": "n2"})
    assert guestlog.launcher_pod(copying, [source, target]) is source
    # Once it hands over, the VMI names the target's node.
    handed_over = vmi("n2", {"a": "n1", "b": "n2"})
    assert guestlog.launcher_pod(handed_over, [source, target]) is target


def test_without_an_active_pod_the_newest_live_one_is_taken() -> None:
    old, new = pod("a", "2026-12-05T02:00:00Z"), pod("b", "2026-12-05T02:00:05Z")
    assert guestlog.launcher_pod(vmi(None, {}), [new, old]) is new
    going = pod("c", "2026-12-05T02:00:09Z", deleting=True)
    assert guestlog.launcher_pod(vmi(None, {}), [old, going]) is old
    assert guestlog.launcher_pod(vmi("n1", {"c": "n1"}), [going]) is None
    assert guestlog.launcher_pod(vmi("n1", {}), []) is None


def test_a_pod_keeps_the_log_only_with_kubevirts_container() -> None:
    assert guestlog.keeps_log(pod("a", ""))
    assert not guestlog.keeps_log(pod("a", "", log=False))
    as_container = {"spec": {"containers": [{"name": "compute"}, {"name": "guest-console-log"}]}}
    assert guestlog.keeps_log(as_container)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({}, [("container", "guest-console-log")]),
        ({"since": 0.0}, [("container", "guest-console-log")]),  # kubectl: 0 is no limit
        (
            {"follow": True, "tail": 0, "since": 0.2, "timestamps": True},
            [
                ("container", "guest-console-log"),
                ("follow", "true"),
                ("tailLines", "0"),
                ("sinceSeconds", "1"),  # the API takes whole seconds, at least one
                ("timestamps", "true"),
            ],
        ),
        (
            {"tail": 20, "since": 90.5},
            [("container", "guest-console-log"), ("tailLines", "20"), ("sinceSeconds", "91")],
        ),
    ],
)
def test_flags_become_kubectl_logs_parameters(
    flags: JsonObj, expected: list[tuple[str, str]]
) -> None:
    given: JsonObj = {"follow": False, "tail": None, "since": None, "timestamps": False} | flags
    assert guestlog.query(**given) == expected


def test_each_refusal_says_what_to_do() -> None:
    assert guestlog.no_vm("web-1", "demo", "Stopped").endswith("(wukong start web-1 -n demo)")
    assert "web-1-vm" in guestlog.no_pod("web-1", "web-1-vm")
    assert "logSerialConsole" in guestlog.no_log("web-1", "virt-launcher-web-1-vm-x")
