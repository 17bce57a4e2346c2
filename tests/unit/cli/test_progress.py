"""What `--wait` narrates on stderr as the Wukong changes."""

from __future__ import annotations

import copy
from typing import Any

from tests.unit.cli.objects import running
from wukong.console.follow import progress, trouble


def test_the_first_snapshot_gives_the_phase_and_disks_still_on_their_way() -> None:
    cr = running()
    cr["status"]["volumes"].append({"name": "data", "phase": "ImportInProgress", "progress": "10%"})
    assert progress(None, cr, "web-1") == [
        "web-1: Running",
        "web-1: disk data ImportInProgress 10%",
    ]


def test_changes_are_told_once_each() -> None:
    before = running()
    after = running()
    after["status"]["phase"] = "Stopping"
    after["status"]["lifecycleState"] = {"state": "Accepted", "message": "stop accepted"}
    assert progress(before, after, "web-1") == [
        "web-1: Running -> Stopping",
        "web-1: Accepted: stop accepted",
    ]
    assert progress(after, after, "web-1") == []


def test_import_progress_and_deletion_steps_are_told() -> None:
    before = running()
    after = running()
    after["status"]["volumes"][0] |= {"phase": "ImportInProgress", "progress": "45.10%"}
    after["status"]["deletion"] = {"step": "StopVM", "message": "stopping the VM"}
    assert progress(before, after, "web-1") == [
        "web-1: disk system ImportInProgress 45.10%",
        "web-1: deleting, step StopVM: stopping the VM",
    ]


def test_a_wukong_without_a_phase_yet_is_pending_already() -> None:
    # The operator's first status write says Pending: no news to someone who read "Pending"
    # before it (a refused spec printed "web-3: Pending -> Pending").
    before = running()
    del before["status"]["phase"]
    after = running()
    after["status"]["phase"] = "Pending"
    assert progress(before, after, "web-3") == []
    after["status"]["phase"] = "Creating"
    assert progress(before, after, "web-3") == ["web-3: Pending -> Creating"]


def test_a_vanished_wukong_is_gone() -> None:
    assert progress(running(), None, "web-1") == ["web-1: gone"]


def test_a_new_request_refused_in_the_same_words_as_the_last_one_is_told() -> None:
    words = "cannot start: the VM is already running"
    before = running()
    before["status"]["lifecycleState"] = {"requestId": "a", "state": "Refused", "message": words}
    after = running()
    after["status"]["lifecycleState"] = {"requestId": "b", "state": "Refused", "message": words}
    assert progress(before, after, "t1") == [f"t1: Refused: {words}"]
    assert progress(after, after, "t1") == []


def _unschedulable() -> dict[str, Any]:
    cr = running()
    cr["status"]["phase"] = "Starting"
    cr["status"]["conditions"] = [
        {"type": "Ready", "status": "False", "reason": "Starting"},
        {
            "type": "VMHealthy",
            "status": "False",
            "reason": "ErrorUnschedulable",
            "message": "0/2 nodes are available",
            "lastTransitionTime": "2026-05-01T12:00:01Z",
        },
        {"type": "VolumesBound", "status": "False", "reason": "Provisioning", "message": "x"},
    ]
    return cr


def test_what_holds_the_wukong_back_is_told_once() -> None:
    """Review s22: `start --wait` of a VM no node could take said only "still waiting", then
    timed out, while the operator had said why within a second."""
    before, after = running(), _unschedulable()
    before["status"]["phase"] = "Starting"
    lines = progress(before, after, "stuck")
    assert "stuck: VMHealthy=False ErrorUnschedulable: 0/2 nodes are available" in lines
    assert progress(after, after, "stuck") == []
    assert trouble(after) == "VMHealthy=False ErrorUnschedulable: 0/2 nodes are available"


def test_a_disk_still_provisioning_is_not_trouble() -> None:
    cr = running()
    cr["status"]["conditions"] = [
        {"type": "VolumesBound", "status": "False", "reason": "Provisioning", "message": "x"}
    ]
    assert trouble(cr) is None


def test_a_disk_kubevirt_is_restoring_is_not_trouble() -> None:
    """`restore --wait` told "VolumesBound=False Restoring: waiting for data …" as if it
    held the Wukong back: it is the restore's own path (its disk line says `Restoring`)."""
    cr = running()
    said = "waiting for data (KubeVirt is restoring its claim from snapshot s1: restore r1)"
    cr["status"]["conditions"] = [
        {"type": "VolumesBound", "status": "False", "reason": "Restoring", "message": said}
    ]
    assert trouble(cr) is None


def test_a_removed_disk_that_waits_says_why() -> None:
    """`detach --wait` of a disk attached at boot said only "still waiting" for 5 minutes,
    while DiskDetach said it leaves at the next restart."""
    before = running()
    after = copy.deepcopy(before)
    waits = "disk 'data' was attached at boot: it is detached at the next restart"
    after["status"]["conditions"].append(
        {"type": "DiskDetach", "status": "False", "reason": "RestartRequired", "message": waits}
    )
    assert progress(before, after, "web-1") == [f"web-1: DiskDetach=False RestartRequired: {waits}"]


def test_a_restore_under_way_tells_kubevirts_words_and_a_stall() -> None:
    before = running()
    before["status"]["restore"] = {"name": "r1", "phase": "Restoring", "message": "r1: started"}
    after = copy.deepcopy(before)
    stuck = "r1: KubeVirt cannot go on: StorageClass fast does not exist"
    after["status"]["restore"]["message"] = stuck
    assert progress(before, after, "web-1") == [f"web-1: restore: {stuck}"]
    assert progress(after, after, "web-1") == []
    stalled = copy.deepcopy(after)
    stalled["status"]["conditions"].append(
        {
            "type": "Stalled",
            "status": "True",
            "reason": "RestoreTooLong",
            "message": f"restore r1 since 2026-05-01T11:00:00Z (more than 300s): {stuck}",
            "lastTransitionTime": "2026-05-01T11:05:00Z",
        }
    )
    assert progress(after, stalled, "web-1") == [
        f"web-1: Stalled=True RestoreTooLong: restore r1 since 2026-05-01T11:00:00Z "
        f"(more than 300s): {stuck}"
    ]
    done = copy.deepcopy(after)
    done["status"]["restore"] |= {"result": "Succeeded", "message": "the disks are back"}
    assert progress(after, done, "web-1") == []  # the end is the request's outcome
