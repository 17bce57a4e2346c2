"""What `wukong status` prints: the table and the detailed view."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.unit.cli.objects import NOW, running, wukong
from wukong.console.render import age, table
from wukong.console.status import detail, disks_cell, summary_row, summary_table


def test_table_pads_columns_and_shows_a_dash_for_nothing() -> None:
    text = table(("NAME", "IP"), [["web-1", None], ["a-much-longer-name", "10.0.0.1"]])
    assert text.splitlines() == [
        "NAME                 IP",
        "web-1                -",
        "a-much-longer-name   10.0.0.1",
    ]


@pytest.mark.parametrize(
    ("ago", "shown"),
    [
        pytest.param(timedelta(seconds=5), "5s", id="seconds"),
        pytest.param(timedelta(seconds=119), "119s", id="under-two-minutes"),
        pytest.param(timedelta(minutes=7), "7m", id="minutes"),
        pytest.param(timedelta(hours=5), "5h", id="hours"),
        pytest.param(timedelta(days=3), "3d", id="days"),
        pytest.param(timedelta(seconds=-3), "0s", id="clock-skew"),
    ],
)
def test_ages_read_like_kubectl(ago: timedelta, shown: str) -> None:
    assert age(NOW - ago, NOW) == shown
    assert age((NOW - ago).strftime("%Y-%m-%dT%H:%M:%SZ"), NOW) == shown


def test_age_of_nothing_is_a_dash() -> None:
    assert age(None, NOW) == "-"
    assert age("not a time", NOW) == "-"


def test_a_running_wukong_row_shows_phase_vm_node_ip_and_readiness() -> None:
    assert summary_row(running(), NOW) == [
        "web-1",
        "Running",
        "web-1-vm",
        "node-1",
        "10.244.0.7",
        "1",
        "True",
        "-",
    ]


def test_a_new_wukong_row_is_mostly_dashes() -> None:
    assert summary_row(wukong("new"), NOW) == ["new", "-", "-", "-", "-", "1", "-", "-"]


def test_disks_being_imported_show_their_progress() -> None:
    cr = running()
    cr["spec"]["disks"].append({"name": "data", "size": "1Gi"})
    cr["status"]["volumes"] = [
        {"name": "system", "phase": "ImportInProgress", "progress": "45.10%"},
        {"name": "data", "phase": "Pending"},
    ]
    assert disks_cell(cr) == "2 (system 45.10%, data Pending)"


@pytest.mark.parametrize(
    ("life", "shown"),
    [
        pytest.param(
            {"state": "Done", "lastAction": "stop", "lastActionTime": "2026-05-01T11:58:00Z"},
            "stop Done 2m",
            id="done",
        ),
        pytest.param({"state": "Issued", "lastAction": "restart"}, "restart Issued", id="no-time"),
        # A refusal keeps the previous request's action: naming it would mislead.
        pytest.param({"state": "Refused", "lastAction": "stop"}, "Refused", id="refused"),
    ],
)
def test_last_action_column(life: dict[str, str], shown: str) -> None:
    cr = running()
    cr["status"]["lifecycleState"] = life
    assert summary_row(cr, NOW)[-1] == shown


MIGRATE = {"action": "migrate", "requestedAt": "2026-05-01T11:59:00.000000Z"}
STOP_DONE = {"state": "Done", "lastAction": "stop", "lastActionTime": "2026-05-01T10:00:00Z"}
REFUSED = "migrate needs a running VM: web-1 is not running (VMI phase: none)"


@pytest.mark.parametrize(
    ("migration", "shown"),
    [
        pytest.param(
            {"name": "m", "phase": "Running", "startedAt": "2026-05-01T11:59:30Z"},
            "migrate Running 30s",
            id="in-flight",
        ),
        pytest.param(
            {"name": "m", "phase": "Succeeded", "result": "Succeeded",
             "startedAt": "2026-05-01T11:58:00Z"},
            "migrate Succeeded 2m",
            id="succeeded",
        ),
        pytest.param(
            {"result": "Refused", "refusal": REFUSED, "startedAt": "2026-05-01T11:59:55Z"},
            "migrate Refused 5s",
            id="refused",
        ),
        # Refused while an earlier migration runs: its startedAt is that one's, not the
        # refusal's.
        pytest.param(
            {"name": "m", "phase": "Running", "refusal": "already running",
             "startedAt": "2026-05-01T11:00:00Z"},
            "migrate Refused",
            id="refused-while-one-runs",
        ),
    ],
)  # fmt: skip
def test_last_action_column_shows_a_migration(migration: dict[str, str], shown: str) -> None:
    """Review: a migrate is answered in status.migration, not status.lifecycleState, and the
    column went on showing the request before it ("stop Done 2h")."""
    cr = running()
    cr["spec"]["lifecycleAction"] = MIGRATE
    cr["status"]["lifecycleState"] = STOP_DONE
    cr["status"]["migration"] = {"requestId": "abc", **migration}
    assert summary_row(cr, NOW)[-1] == shown


def test_last_action_column_shows_a_snapshot() -> None:
    """A snapshot is answered in status.snapshot, as a migrate in status.migration."""
    cr = running()
    cr["spec"]["lifecycleAction"] = {"action": "snapshot", "requestedAt": "x"}
    cr["status"]["lifecycleState"] = STOP_DONE
    cr["status"]["snapshot"] = {
        "requestId": "abc",
        "name": "s",
        "phase": "Succeeded",
        "result": "Succeeded",
        "startedAt": "2026-05-01T11:59:50Z",
    }
    assert summary_row(cr, NOW)[-1] == "snapshot Succeeded 10s"


def test_a_lifecycle_request_after_a_migration_takes_the_column_back() -> None:
    cr = running()
    cr["spec"]["lifecycleAction"] = {"action": "stop", "requestedAt": "2026-05-01T10:00:00Z"}
    cr["status"]["lifecycleState"] = STOP_DONE
    cr["status"]["migration"] = {"name": "m", "result": "Succeeded", "phase": "Succeeded"}
    assert summary_row(cr, NOW)[-1] == "stop Done 2h"


def test_detail_names_a_migration_as_the_last_action() -> None:
    cr = running()
    cr["spec"]["lifecycleAction"] = MIGRATE
    cr["status"]["lifecycleState"] = {**STOP_DONE, "message": "stop done"}
    cr["status"]["migration"] = {
        "name": "web-1-migrate-abc",
        "phase": "Succeeded",
        "result": "Succeeded",
        "sourceNode": "node-1",
        "targetNode": "node-2",
        "message": "migrated from node-1 to node-2",
        "startedAt": "2026-05-01T11:58:00Z",
    }
    text = detail(cr, NOW)
    assert "Last action:     migrate Succeeded 2m: migrated from node-1 to node-2" in text
    assert "Last migration:  web-1-migrate-abc Succeeded node-1 → node-2" in text


def test_a_wukong_being_deleted_says_so_in_the_phase_column() -> None:
    cr = running()
    cr["metadata"]["deletionTimestamp"] = "2026-05-01T11:59:00Z"
    assert summary_row(cr, NOW)[1] == "Running (deleting)"


def test_table_is_sorted_and_names_namespaces_when_asked() -> None:
    other = running("app-2")
    other["metadata"]["namespace"] = "apps"
    text = summary_table([running("web-1"), running("db-1"), other], NOW, namespaces=True)
    lines = text.splitlines()
    assert lines[0].split() == [
        "NAMESPACE",
        "NAME",
        "PHASE",
        "VM",
        "NODE",
        "IP",
        "DISKS",
        "READY",
        "LAST-ACTION",
    ]
    assert [line.split()[:2] for line in lines[1:]] == [
        ["apps", "app-2"],
        ["demo", "db-1"],
        ["demo", "web-1"],
    ]


def test_detail_shows_conditions_disks_history_and_the_last_answer() -> None:
    cr = running()
    cr["status"]["lifecycleState"] = {
        "state": "Refused",
        "lastAction": "stop",
        "message": "cannot resume: the VM is running",
    }
    cr["status"]["history"] = [
        {
            "from": "Pending",
            "to": "Creating",
            "reason": "SpecAccepted",
            "time": "2026-05-01T11:00:00Z",
        }
    ]
    text = detail(cr, NOW)
    assert "Phase:           Running" in text
    assert "Last action:     Refused: cannot resume: the VM is running" in text
    assert "VMRunning" in text and "the VM runs on node-1" in text
    assert "web-1-system" in text and "Succeeded" in text
    assert "SpecAccepted" in text and "Creating" in text
    assert "Deleting" not in text


def test_detail_of_a_deleting_wukong_shows_the_step_and_what_is_kept() -> None:
    cr = running()
    cr["metadata"]["deletionTimestamp"] = "2026-05-01T11:59:00Z"
    cr["status"]["deletion"] = {
        "step": "StopVM",
        "remaining": ["VirtualMachine/web-1-vm"],
        "kept": ["web-1-data"],
    }
    text = detail(cr, NOW)
    assert "Deleting:        StopVM" in text
    assert "Kept:            web-1-data" in text
    assert "Remaining:       VirtualMachine/web-1-vm" in text


def test_a_deletion_held_by_someone_elses_finalizer_says_so() -> None:
    """Review s22: with the operator done (its finalizer gone, no last status write) and
    another controller's finalizer left, the view still said "waiting for
    PersistentVolumeClaim/..." of a claim long deleted."""
    cr = running()
    cr["metadata"]["deletionTimestamp"] = "2026-05-01T11:59:00Z"
    cr["metadata"]["finalizers"] = ["example.com/hold"]
    cr["status"]["deletion"] = {
        "step": "DeleteDisks",
        "remaining": ["PersistentVolumeClaim/web-1-system"],
        "message": "waiting for PersistentVolumeClaim/web-1-system",
    }
    text = detail(cr, NOW)
    assert "Deleting:        done by Wukong" in text
    assert "waiting for other finalizers: example.com/hold" in text
    assert "Remaining:" not in text and "waiting for PersistentVolumeClaim" not in text


def test_detail_of_a_new_wukong_says_none_for_empty_sections() -> None:
    text = detail(wukong("new"), NOW)
    assert "Conditions: <none>" in text and "History: <none>" in text


def test_disks_the_operator_has_not_made_are_listed_with_why() -> None:
    """`wukong describe` of a Wukong waiting for its NAD said `Disks: <none>`: the disk
    planner runs only once the networks are ready, so the status had no volumes yet."""
    waiting = {
        "phase": "Creating",
        "conditions": [
            {"type": "SpecValid", "status": "True", "reason": "Valid"},
            {"type": "NetworksConfigured", "status": "False", "reason": "NADNotFound"},
        ],
    }
    disks = [{"name": "system", "size": "5Gi"}]
    text = detail(wukong("bad-1", disks=disks, status=waiting), NOW)
    assert "Disks: <none>" not in text
    [row] = [line for line in text.splitlines() if line.startswith("  system ")]
    assert row.split()[:3] == ["system", "bad-1-system", "5Gi"]
    assert row.endswith("no         not made yet: waiting for the networks (NetworksConfigured)")
    invalid = waiting | {"conditions": [{"type": "SpecValid", "status": "False"}]}
    text = detail(wukong("bad-1", disks=disks, status=invalid), NOW)
    assert "not made: the spec is invalid (SpecValid)" in text


def test_detail_shows_the_last_migration_and_a_refused_request() -> None:
    from datetime import UTC, datetime

    cr = {
        "metadata": {"name": "web-1", "namespace": "demo"},
        "status": {
            "phase": "Running",
            "migration": {
                "name": "web-1-migrate-ab12cd34",
                "phase": "Running",
                "sourceNode": "node-1",
                "targetNode": "node-2",
                "refusal": "a migration of web-1 is already running",
            },
        },
    }
    text = detail(cr, datetime(2026, 12, 1, tzinfo=UTC))
    assert "Last migration:  web-1-migrate-ab12cd34 Running node-1 → node-2" in text
    assert "Refused:         a migration of web-1 is already running" in text


def test_a_request_refused_before_its_object_was_made_shows_no_dash_for_a_name() -> None:
    """KubeVirt refused the migration (its webhook) or the operator refused the snapshot or
    restore before making anything: no name, and no "-" that reads as one."""
    cr = running()
    refused = {"result": "Refused", "refusal": "KubeVirt cannot live-migrate web-1: …"}
    cr["status"]["migration"] = refused
    cr["status"]["snapshot"] = refused | {"refusal": "a restore is in progress"}
    cr["status"]["restore"] = {"snapshot": "gone", "result": "Refused", "refusal": "not found"}
    text = detail(cr, NOW)
    assert "Last migration:  Refused\n" in text
    assert "Last snapshot:   Refused\n" in text
    assert "Last restore:    from gone Refused\n" in text
    assert "Refused:         KubeVirt cannot live-migrate web-1: …" in text


def test_after_a_restart_the_refused_migrate_is_named_the_last_one_not_the_current() -> None:
    """The status keeps the answer to the last migrate (and snapshot, restore) after later
    requests: after a restart, "Migration: Refused" read as a migration refused now, beside
    "Last action: restart Done" (session 46). Each says it is the last one, and every
    label's value starts in one column, the longest label two spaces from it, as kubectl
    describe's tabwriter lays them out."""
    cr = running()
    cr["spec"]["lifecycleAction"] = {"action": "restart", "requestedAt": "2026-05-01T11:58:00Z"}
    cr["status"]["lifecycleState"] = {
        "state": "Done",
        "lastAction": "restart",
        "lastActionTime": "2026-05-01T11:58:00Z",
    }
    cr["status"]["migration"] = {"result": "Refused", "refusal": "KubeVirt cannot migrate it"}
    cr["status"]["snapshot"] = {"name": "s1", "result": "Succeeded", "readyToUse": True}
    cr["status"]["restore"] = {"name": "r1", "snapshot": "s1", "result": "Failed"}
    head = detail(cr, NOW).split("\nInterfaces")[0].splitlines()
    labels = {line.split(":")[0]: line for line in head}
    assert "Migration" not in labels and "Snapshot" not in labels and "Restore" not in labels
    assert labels["Last action"].split(":", 1)[1].split() == ["restart", "Done", "2m"]
    assert labels["Last migration"].split(":", 1)[1].strip() == "Refused"
    assert labels["Refused"].split(":", 1)[1].strip() == "KubeVirt cannot migrate it"
    assert labels["Last snapshot"].split(":", 1)[1].strip() == "s1 Succeeded (ready)"
    assert labels["Last restore"].split(":", 1)[1].strip() == "r1 from s1 Failed"
    starts = {len(line) - len(line.split(":", 1)[1].lstrip()) for line in head}
    assert starts == {len("Last migration:  ")}, head


def test_the_last_snapshot_and_restore_are_shown_with_kubevirts_words_while_they_matter() -> None:
    cr = running()
    cr["status"]["snapshot"] = {
        "name": "before-upgrade",
        "phase": "Succeeded",
        "result": "Succeeded",
        "readyToUse": True,
        "leftOut": ["scratch"],
    }
    cr["status"]["restore"] = {
        "name": "web-1-restore-ab12cd34",
        "snapshot": "before-upgrade",
        "phase": "Restoring",
        "message": (
            "web-1-restore-ab12cd34: KubeVirt cannot go on: StorageClass fast does not exist"
        ),
    }
    text = detail(cr, NOW)
    assert "Last snapshot:   before-upgrade Succeeded (ready)" in text
    assert "Left out:        scratch" in text
    assert "Last restore:    web-1-restore-ab12cd34 from before-upgrade Restoring" in text
    why = "Why:             web-1-restore-ab12cd34: KubeVirt cannot go on: StorageClass fast"
    assert why in text
    cr["status"]["restore"] |= {"result": "Succeeded", "phase": "Succeeded", "message": "done"}
    assert "Why:" not in detail(cr, NOW)  # a restore that went well needs no words


def test_a_capacity_in_bytes_is_shown_in_binary_units() -> None:
    """A claim CDI made for a 10Gi imported disk asks (and gets) 11327976244 bytes: the
    status view's CAPACITY column shows 10.6Gi, SIZE the spec's 10Gi."""
    cr = running()
    cr["status"]["volumes"][0].update(size="10Gi", capacity="11327976244")
    (row,) = [line for line in detail(cr, NOW).splitlines() if "web-1-system" in line]
    assert row.split()[:4] == ["system", "web-1-system", "10Gi", "10.6Gi"]


def test_a_wukong_no_operator_picked_up_says_so_in_one_line() -> None:
    """Namespaced-install audit, session 48, finding 6: a Wukong in a namespace no operator
    watches showed Pending with nothing more, for ever."""
    line = "No operator has picked it up yet: is one watching namespace demo?"
    nobody = wukong("new")  # created an hour before NOW, no status
    assert line in detail(nobody, NOW).splitlines()
    # Not while the operator's first pass may still come, nor once it has written a status.
    young = wukong("new")
    young["metadata"]["creationTimestamp"] = "2026-05-01T11:59:50Z"
    assert "No operator" not in detail(young, NOW)
    for status in ({"observedGeneration": 3}, {"phase": "Pending"}):
        assert "No operator" not in detail(wukong("new", status=status), NOW)
