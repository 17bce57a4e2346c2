"""The simulated node's pauses, with v1.7.0 virt-handler's reasons. A disk error: QEMU pauses
the guest, virt-handler retries resuming it on KubeVirt's back-off (ioErrorRetryManager: a wait
doubling up to 3 min) until the disk answers again; a guest its user paused does no I/O. A VMI
started paused is paused for its user."""

from __future__ import annotations

from wukong.testing.kubevirt._handler import GuestHost
from wukong.testing.kubevirt._kube import JsonObj
from wukong.testing.kubevirt.config import SimConfig
from wukong.testing.kubevirt.guest import Guest
from wukong.testing.kubevirt.objects import condition


class Node(GuestHost):
    """A virt-handler whose clock the test moves."""

    def __init__(self) -> None:
        super().__init__(SimConfig(io_error_retry_delay=10.0))
        self.now = 0.0

    def _clock(self) -> float:
        return self.now

    async def reconcile(self, key: str) -> float | None:  # pragma: no cover - not queued
        return None


VMI: JsonObj = {"metadata": {"uid": "u1", "namespace": "ns", "name": "vm"}}


def pause_reason(status: JsonObj) -> str | None:
    paused = condition({"status": status}, "Paused")
    return None if paused is None else str(paused.get("reason"))


def test_a_failing_disk_pauses_the_guest_and_tries_resuming_it_on_a_doubling_wait() -> None:
    node, guest, status = Node(), Guest("ns", "vm"), {"phase": "Running", "conditions": []}
    assert node._disk_error(VMI, guest, status) is None
    assert pause_reason(status) is None
    guest.disk_error()
    assert node._disk_error(VMI, guest, status) == 10.0
    assert pause_reason(status) == "PausedIOError"
    waits = []
    for _ in range(6):
        node.now += waits[-1] if waits else 10.0
        wait = node._disk_error(VMI, guest, status)
        assert wait is not None
        waits.append(wait)
        assert pause_reason(status) == "PausedIOError"
    assert waits == [20.0, 40.0, 80.0, 160.0, 180.0, 180.0]
    node.now += 90.0  # half way: not yet tried again
    assert node._disk_error(VMI, guest, status) == 90.0
    guest.disk_repaired()
    assert pause_reason(status) == "PausedIOError"  # repaired, still paused until the try
    node.now += 90.0
    assert node._disk_error(VMI, guest, status) is None
    assert pause_reason(status) is None


def test_an_unpause_during_the_error_is_paused_again_at_once_with_the_first_wait() -> None:
    node, guest, status = Node(), Guest("ns", "vm"), {"phase": "Running", "conditions": []}
    guest.disk_error()
    node._disk_error(VMI, guest, status)
    node.now += 10.0
    assert node._disk_error(VMI, guest, status) == 20.0
    status["conditions"] = []  # `virtctl unpause`: the guest runs, and its next write fails
    assert node._disk_error(VMI, guest, status) == 10.0
    assert pause_reason(status) == "PausedIOError"


def test_a_guest_paused_by_its_user_is_not_paused_by_its_disk() -> None:
    node, guest = Node(), Guest("ns", "vm")
    user = {"type": "Paused", "status": "True", "reason": "PausedByUser"}
    status: JsonObj = {"phase": "Running", "conditions": [user]}
    guest.disk_error()
    assert node._disk_error(VMI, guest, status) is None
    assert pause_reason(status) == "PausedByUser"


def test_a_vmi_started_paused_is_paused_for_its_user() -> None:
    """virt-launcher starts the domain paused (libvirt's reason: user), so virt-handler says
    PausedByUser; the simulator said PausedStartStrategy, which the operator reads as a pause
    KubeVirt made itself."""
    node, guest = Node(), Guest("ns", "vm")
    vmi = {**VMI, "spec": {"startStrategy": "Paused"}}
    status: JsonObj = {"phase": "Scheduled", "conditions": []}
    node._boot(vmi, None, guest, status)
    node.now += 60.0
    node._boot(vmi, None, guest, status)
    assert status["phase"] == "Running"
    assert pause_reason(status) == "PausedByUser"
