"""`wukong describe`: one timeline from the Events of the Wukong and its children."""

from __future__ import annotations

from typing import Any

from tests.unit.cli.objects import NOW, running
from wukong.console.describe import describe, events_table, related, timeline


def event(
    kind: str,
    name: str,
    reason: str,
    when: str,
    *,
    uid: str | None = None,
    version: str = "1",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{name}.{reason}", "resourceVersion": version},
        "involvedObject": {"kind": kind, "name": name, "uid": uid},
        "type": "Normal",
        "reason": reason,
        "message": f"{reason} happened",
        "lastTimestamp": when,
        **extra,
    }


def test_the_story_covers_the_vm_vmi_and_each_disks_claims() -> None:
    cr = running(disks=[{"name": "system", "size": "1Gi"}, {"name": "data", "size": "1Gi"}])
    assert related(cr) == {
        ("Wukong", "web-1"),
        ("VirtualMachine", "web-1-vm"),
        ("VirtualMachineInstance", "web-1-vm"),
        ("DataVolume", "web-1-system"),
        ("PersistentVolumeClaim", "web-1-system"),
        ("DataVolume", "web-1-data"),
        ("PersistentVolumeClaim", "web-1-data"),
    }


def test_events_merge_in_time_order_and_strangers_are_left_out() -> None:
    events = [
        event("VirtualMachineInstance", "web-1-vm", "Started", "2026-05-01T11:59:00Z"),
        event("Wukong", "web-1", "SpecAccepted", "2026-05-01T11:50:00Z", uid="uid-web-1"),
        event("PersistentVolumeClaim", "web-1-system", "Bound", "2026-05-01T11:55:00Z"),
        event("Wukong", "web-2", "SpecAccepted", "2026-05-01T11:51:00Z"),
        event("Pod", "web-1-vm", "Pulled", "2026-05-01T11:52:00Z"),
        # An earlier Wukong with the same name is another story.
        event("Wukong", "web-1", "Deleted", "2026-05-01T10:00:00Z", uid="uid-before"),
    ]
    assert [e["reason"] for e in timeline(running(), events)] == [
        "SpecAccepted",
        "Bound",
        "Started",
    ]


def test_within_one_second_the_write_order_decides() -> None:
    same = "2026-05-01T11:59:00Z"
    events = [
        event("Wukong", "web-1", "VMIRunning", same, version="120"),
        event("Wukong", "web-1", "VMCreated", same, version="99"),
    ]
    assert [e["reason"] for e in timeline(running(), events)] == ["VMCreated", "VMIRunning"]


def test_events_without_last_timestamp_use_event_time() -> None:
    newer_api = event("Wukong", "web-1", "Late", "") | {"eventTime": "2026-05-01T11:59:30.000001Z"}
    older = event("Wukong", "web-1", "Early", "2026-05-01T11:59:00Z")
    assert [e["reason"] for e in timeline(running(), [newer_api, older])] == ["Early", "Late"]


def test_repeated_events_show_their_count() -> None:
    repeated = event(
        "VirtualMachine",
        "web-1-vm",
        "Retrying",
        "2026-05-01T11:59:00Z",
        count=3,
        firstTimestamp="2026-05-01T11:50:00Z",
    )
    text = events_table([repeated], NOW)
    assert "60s (x3 over 10m)" in text
    assert "vm/web-1-vm" in text


def test_describe_is_the_status_view_then_the_events() -> None:
    text = describe(running(), [], NOW)
    assert text.index("Phase:") < text.index("Events: <none>")


def test_children_events_from_before_the_wukong_was_made_are_an_earlier_story() -> None:
    """Review s22: a Wukong deleted and made again showed its old VM's Events, from minutes
    before it existed (a child's Events carry no Wukong UID to tell them apart)."""
    cr = running()
    cr["metadata"]["creationTimestamp"] = "2026-05-01T11:50:00Z"
    events = [
        event("VirtualMachine", "web-1-vm", "SuccessfulDelete", "2026-05-01T11:30:00Z"),
        event("VirtualMachine", "web-1-vm", "SuccessfulCreate", "2026-05-01T11:50:30Z"),
    ]
    assert [e["reason"] for e in timeline(cr, events)] == ["SuccessfulCreate"]


def test_the_page_is_shown_when_events_cannot_be_read() -> None:
    page = describe(running(), None, NOW, why="forbidden: cannot list events")
    assert page.endswith("Events: <unavailable: forbidden: cannot list events>")
    assert "web-1" in page


def test_kubevirts_events_on_the_last_migration_snapshot_and_restore_are_in_the_story() -> None:
    cr = running()
    cr["status"] |= {
        "migration": {"name": "web-1-migrate-1"},
        "snapshot": {"name": "before-upgrade"},
        "restore": {"name": "web-1-restore-1"},
    }
    assert related(cr) >= {
        ("VirtualMachineInstanceMigration", "web-1-migrate-1"),
        ("VirtualMachineSnapshot", "before-upgrade"),
        ("VirtualMachineRestore", "web-1-restore-1"),
    }
    error = event(
        "VirtualMachineRestore",
        "web-1-restore-1",
        "VirtualMachineRestoreError",
        "2026-05-01T11:59:00Z",
        type="Warning",
    )
    [row] = timeline(cr, [error])
    assert "vmrestore/web-1-restore-1" in events_table([row], NOW)
