"""The simulator's share of CPU and memory hot-plug: virt-api's maxima, what virt-controller
copies into a running VMI, and what the target virt-handler writes when the migration ends."""

from __future__ import annotations

from typing import Any

from wukong.testing.kubevirt.vmi_resize import (
    MEMORY_REQUESTS_LABEL,
    default_hotplug,
    finalize_hotplug,
    live_resize,
    without_hotplug_labels,
)


def spec(sockets: int = 1, guest: str = "1Gi", **domain: Any) -> dict[str, Any]:
    return {
        "domain": {
            "cpu": {"sockets": sockets, "cores": 1, "threads": 1},
            "memory": {"guest": guest},
        }
        | domain
    }


def test_virt_api_defaults_the_maxima_to_four_times_unless_set() -> None:
    vmi = spec(sockets=2, guest="2Gi")
    default_hotplug(vmi)
    assert vmi["domain"]["cpu"]["maxSockets"] == 8
    assert vmi["domain"]["memory"]["maxGuest"] == str(8 << 30)
    kept = spec()
    kept["domain"]["cpu"]["maxSockets"] = 3
    default_hotplug(kept)
    assert kept["domain"]["cpu"]["maxSockets"] == 3
    small = spec(guest="512Mi")  # under 1Gi: no memory hot-plug at all
    default_hotplug(small)
    assert "maxGuest" not in small["domain"]["memory"]


def test_only_growth_within_the_maxima_is_copied_into_the_vmi() -> None:
    vmi = spec(sockets=2, guest="1Gi")
    default_hotplug(vmi)
    assert live_resize(spec(sockets=4, guest="2Gi"), vmi) == {
        "cpu": {"sockets": 4},
        "memory": {"guest": "2Gi"},
    }
    assert live_resize(spec(sockets=9, guest="8Gi"), vmi) == {}  # above the maxima
    assert live_resize(spec(sockets=1, guest="1Gi"), vmi) == {}  # fewer sockets


def vmi_after(conditions: list[str], labels: dict[str, str], **domain: Any) -> dict[str, Any]:
    body = spec(sockets=3, guest="2Gi", **domain)
    return {
        "metadata": {"labels": labels | {"app": "x"}},
        "spec": body,
        "status": {
            "conditions": [{"type": c, "status": "True"} for c in conditions],
            "currentCPUTopology": {"sockets": 1, "cores": 1, "threads": 1},
            "memory": {"guestAtBoot": "1Gi", "guestCurrent": "1Gi", "guestRequested": "1Gi"},
        },
    }


def test_the_target_plugs_cpus_and_memory_when_the_migration_ends() -> None:
    vmi = vmi_after(["HotVCPUChange", "HotMemoryChange"], {MEMORY_REQUESTS_LABEL: "2304Mi"})
    status = vmi["status"]
    assert finalize_hotplug(vmi, status) == []
    assert status["currentCPUTopology"] == {"sockets": 3, "cores": 1, "threads": 1}
    assert status["memory"]["guestRequested"] == "2Gi"
    assert status["conditions"] == []
    assert without_hotplug_labels(vmi)["labels"] == {"app": "x"}


def test_memory_the_target_pod_has_no_room_for_is_not_plugged() -> None:
    resources = {"resources": {"requests": {"memory": "2Gi"}}}
    vmi = vmi_after(["HotMemoryChange"], {MEMORY_REQUESTS_LABEL: "1Gi"}, **resources)
    status = vmi["status"]
    failures = finalize_hotplug(vmi, status)
    assert failures == [
        "amount of requested guest memory (2Gi) exceeds the launcher memory request (1Gi)"
    ]
    assert status["memory"]["guestRequested"] == "1Gi" and status["conditions"] == []
    missing = vmi_after(["HotMemoryChange"], {})
    assert "cannot parse Memory requests" in finalize_hotplug(missing, missing["status"])[0]
