"""Which VMIs' guests listen on this machine: a running one whose first address is loopback,
the address virt-api's port-forward dials."""

from __future__ import annotations

from typing import Any

import pytest

from wukong.testing.kubevirt.guest_net import reachable_address


def vmi(phase: str, *addresses: str, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web-1-vm", "namespace": "demo", "uid": "u-1"}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-05T10:00:00Z"
    interfaces = [{"name": f"n{i}", "ipAddress": a} for i, a in enumerate(addresses)]
    return {"metadata": meta, "status": {"phase": phase, "interfaces": interfaces}}


def test_a_running_guest_on_loopback_is_reachable_at_its_first_address() -> None:
    assert reachable_address(vmi("Running", "127.244.0.2", "10.200.0.2")) == "127.244.0.2"


@pytest.mark.parametrize(
    "seen",
    [
        None,
        vmi("Running", "10.244.0.2"),  # the default pod network: not routed here
        vmi("Running", "10.200.0.2", "127.244.0.2"),  # virt-api dials the first one only
        vmi("Running"),  # booting: no address yet
        vmi("Scheduled", "127.244.0.2"),
        vmi("Running", "127.244.0.2", deleting=True),  # shutting down
        vmi("Running", "not-an-address"),
    ],
)
def test_other_guests_are_not(seen: dict[str, Any] | None) -> None:
    assert reachable_address(seen) is None
