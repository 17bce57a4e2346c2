"""Lifecycle requests: what the CLI writes and how it reads the operator's answer."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from tests.unit.cli.objects import NOW, running
from tests.unit.cli.test_selection import FakeApiServer, kubeconfig, wukong_cli
from wukong.api.spec import Action, LifecycleAction
from wukong.console.lifecycle import Outcome, Request, acknowledgement, outcome, snapshot_choices
from wukong.reconcile.lifecycle import request_id

__all__ = ["kubeconfig"]  # the fixture


def test_every_request_is_new_and_clears_what_the_last_one_set() -> None:
    request = Request.now(Action.STOP, NOW)
    assert request.patch() == {
        "spec": {
            "lifecycleAction": {
                "action": "stop",
                "force": False,
                "gracePeriodSeconds": None,  # null: a merge patch removes an older value
                # null too: an older snapshot request's name would make this one invalid
                "snapshotName": None,
                "requestedAt": "2026-05-01T12:00:00.000000Z",
            }
        }
    }
    later = Request.now(Action.STOP, NOW.replace(microsecond=1))
    assert later.patch() != request.patch()


def test_the_fingerprint_is_the_one_the_operator_records() -> None:
    request = Request.now(Action.STOP, NOW, grace_period=5)
    stored = request.patch()["spec"]["lifecycleAction"]
    as_operator_reads_it = LifecycleAction.model_validate(
        {k: v for k, v in stored.items() if v is not None}
    )
    assert request.fingerprint == request_id(as_operator_reads_it)


REQUEST = Request.now(Action.STOP, NOW)


def answered(state: str, phase: str, **life: Any) -> dict[str, Any]:
    cr = running()
    cr["status"]["phase"] = phase
    cr["status"]["lifecycleState"] = {
        "state": state,
        "requestId": REQUEST.fingerprint,
        "generation": 7,
        **life,
    }
    return cr


@pytest.mark.parametrize(
    ("cr", "expected"),
    [
        pytest.param(running(), None, id="not-answered-yet"),
        pytest.param(answered("Accepted", "Stopping"), None, id="accepted"),
        pytest.param(answered("Issued", "Stopping"), None, id="issued"),
        pytest.param(answered("Done", "Stopped"), Outcome(True, "web-1 is Stopped"), id="done"),
        pytest.param(
            answered("Refused", "Running", message="cannot stop: it is Creating"),
            Outcome(False, "stop refused: cannot stop: it is Creating"),
            id="refused",
        ),
        pytest.param(
            answered("Failed", "Running", message="409 from KubeVirt"),
            Outcome(False, "stop failed: 409 from KubeVirt"),
            id="failed",
        ),
        pytest.param(
            answered("Done", "Running"),
            Outcome(False, "stop done but web-1 is Running, not Stopped"),
            id="done-elsewhere",
        ),
        pytest.param(
            answered("Issued", "Error"),
            Outcome(False, "web-1 is in Error: the VM runs on node-1"),
            id="error-phase",
        ),
        pytest.param(None, Outcome(False, "the Wukong was deleted"), id="deleted"),
    ],
)
def test_outcome_of_a_stop(cr: dict[str, Any] | None, expected: Outcome | None) -> None:
    assert outcome(cr, REQUEST, generation=7) == expected


def test_an_answer_to_an_earlier_request_is_not_ours() -> None:
    cr = answered("Done", "Stopped")
    cr["status"]["lifecycleState"] |= {"requestId": "someone-elses", "generation": 6}
    assert outcome(cr, REQUEST, generation=7) is None


def test_the_generation_alone_identifies_the_answer() -> None:
    cr = answered("Done", "Stopped")
    cr["status"]["lifecycleState"]["requestId"] = "computed-differently"
    assert outcome(cr, REQUEST, generation=7) == Outcome(True, "web-1 is Stopped")


def test_a_wukong_being_deleted_ends_the_wait() -> None:
    cr = answered("Issued", "Stopping")
    cr["metadata"]["deletionTimestamp"] = "2026-05-01T12:00:00Z"
    assert outcome(cr, REQUEST, generation=7) == Outcome(False, "web-1 is being deleted")


MIGRATE = Request.now(Action.MIGRATE, NOW)


def migrating(**migration: Any) -> dict[str, Any]:
    cr = running()
    cr["status"]["migration"] = {"requestId": MIGRATE.fingerprint, **migration}
    return cr


@pytest.mark.parametrize(
    ("cr", "request_", "expected"),
    [
        pytest.param(running(), REQUEST, None, id="not-answered-yet"),
        pytest.param(
            answered("Accepted", "Running", message="stop recorded; KubeVirt is asked next"),
            REQUEST,
            Outcome(True, "Accepted: stop recorded; KubeVirt is asked next"),
            id="accepted",
        ),
        pytest.param(
            answered("Accepted", "Running", message="stop accepted"),
            REQUEST,
            Outcome(True, "Accepted"),
            id="accepted-in-so-many-words",
        ),
        pytest.param(answered("Issued", "Stopping"), REQUEST, Outcome(True, "Issued"), id="issued"),
        pytest.param(
            answered("Done", "Running"), REQUEST, Outcome(True, "Done"), id="done-whatever-phase"
        ),
        pytest.param(
            answered("Refused", "Stopped", message="cannot stop: the VM is not running"),
            REQUEST,
            Outcome(False, "stop refused: cannot stop: the VM is not running"),
            id="refused",
        ),
        pytest.param(
            answered("Failed", "Running", message="409 from KubeVirt"),
            REQUEST,
            Outcome(False, "stop failed: 409 from KubeVirt"),
            id="failed",
        ),
        pytest.param(None, REQUEST, Outcome(False, "the Wukong was deleted"), id="deleted"),
        pytest.param(running(), MIGRATE, None, id="migrate-not-answered-yet"),
        pytest.param(
            migrating(phase="Pending", message="web-1-migrate-1 created"),
            MIGRATE,
            Outcome(True, "web-1-migrate-1 created"),
            id="migrate-started",
        ),
        pytest.param(
            migrating(result="Refused", refusal="the VM is not running", message="x"),
            MIGRATE,
            Outcome(False, "migrate refused: the VM is not running"),
            id="migrate-refused",
        ),
    ],
)
def test_the_first_answer_a_command_without_wait_reports(
    cr: dict[str, Any] | None, request_: Request, expected: Outcome | None
) -> None:
    assert acknowledgement(cr, request_, generation=7) == expected


def test_the_first_answer_to_an_earlier_request_is_not_ours() -> None:
    cr = answered("Refused", "Stopped", message="cannot stop")
    cr["status"]["lifecycleState"] |= {"requestId": "someone-elses", "generation": 6}
    assert acknowledgement(cr, REQUEST, generation=7) is None


def test_a_start_that_is_done_says_where_the_guest_runs() -> None:
    start = Request.now(Action.START, NOW)
    cr = running()
    cr["status"]["lifecycleState"] = {"state": "Done", "requestId": start.fingerprint}
    assert outcome(cr, start, generation=7) == Outcome(
        True, "web-1 is Running on node-1 at 10.244.0.7"
    )
    cr["status"] |= {"nodeName": None, "interfaces": []}  # not reported yet
    # Said as far as known, and marked so that a wait follows a moment more for the IP.
    assert outcome(cr, start, generation=7) == Outcome(
        True, "web-1 is Running", awaiting_address=True
    )


def test_a_snapshot_is_answered_in_status_snapshot() -> None:
    request = Request.now(Action.SNAPSHOT, NOW, snapshot_name="before-upgrade")
    assert request.patch()["spec"]["lifecycleAction"]["snapshotName"] == "before-upgrade"
    cr = running()
    answer = {"requestId": request.fingerprint, "name": "before-upgrade", "phase": "InProgress"}
    cr["status"]["snapshot"] = answer | {"message": "before-upgrade created"}
    assert outcome(cr, request, 2) is None
    assert acknowledgement(cr, request, 2) == Outcome(True, "before-upgrade created")
    ready = "snapshot before-upgrade is ready"
    cr["status"]["snapshot"] = answer | {"result": "Succeeded", "message": ready}
    assert outcome(cr, request, 2) == Outcome(True, ready)
    # Ready without some volumes' data: said, and not a success.
    cr["status"]["snapshot"] = answer | {"result": "Succeeded", "message": ready, "leftOut": ["x"]}
    assert outcome(cr, request, 2) == Outcome(False, ready)
    refused = answer | {"result": "Refused", "refusal": "snapshot needs the VM: web-1 has none"}
    cr["status"]["snapshot"] = refused
    assert acknowledgement(cr, request, 2) == Outcome(
        False, "snapshot refused: snapshot needs the VM: web-1 has none"
    )


def test_a_restore_is_answered_in_status_restore() -> None:
    request = Request.now(Action.RESTORE, NOW, snapshot_name="good")
    cr = running()
    answer = {"requestId": request.fingerprint, "name": "r", "snapshot": "good"}
    cr["status"]["restore"] = answer | {"phase": "Restoring", "message": "r: restoring"}
    assert outcome(cr, request, 2) is None
    assert acknowledgement(cr, request, 2) == Outcome(True, "r: restoring")
    done = "the disks are as snapshot good holds them (restore r)"
    cr["status"]["restore"] = answer | {"result": "Succeeded", "message": done}
    assert outcome(cr, request, 2) == Outcome(True, done)
    cr["status"]["restore"] = answer | {"result": "Failed", "message": "restore r failed: x"}
    assert outcome(cr, request, 2) == Outcome(False, "restore failed: restore r failed: x")


def test_a_restore_of_a_running_vm_waits_until_it_runs_again() -> None:
    request = Request.now(Action.RESTORE, NOW, snapshot_name="good")
    cr = running()
    done = "the disks are as snapshot good holds them (restore r); starting web-1 again"
    answer = {"requestId": request.fingerprint, "name": "r", "result": "Succeeded"}
    cr["status"]["restore"] = answer | {"message": done, "startAfter": True}
    start = {"lastAction": "start", "state": "Issued", "message": "start sent to KubeVirt"}
    cr["status"] |= {"phase": "Starting", "lifecycleState": start}
    assert outcome(cr, request, 2) is None
    cr["status"] |= {"phase": "Running", "lifecycleState": start | {"state": "Done"}}
    where = "web-1 is Running on node-1 at 10.244.0.7"
    # Where it runs is said last, and again with the address if the status has none yet.
    assert outcome(cr, request, 2) == Outcome(True, f"{done}; {where}", lead=f"{done}; ")
    refused = start | {"state": "Refused", "message": "cannot start: network refused"}
    cr["status"] |= {"phase": "Stopped", "lifecycleState": refused}
    assert outcome(cr, request, 2) == Outcome(
        False, f"{done}, but the start was refused: cannot start: network refused"
    )
    # Nothing starts it (a stop came meanwhile): the restore's own answer ends the wait.
    stays = "the disks are as snapshot good holds them (restore r); web-1 stays stopped: ..."
    cr["status"]["restore"] = answer | {"message": stays, "startAfter": True}
    cr["status"]["lifecycleState"] = {"lastAction": "stop", "state": "Done"}
    assert outcome(cr, request, 2) == Outcome(True, stays)


def test_restore_without_a_snapshot_name_lists_the_ones_it_takes_newest_first() -> None:
    def shot(name: str, created: str, vm: str = "web-1-vm", **status: Any) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {"source": {"kind": "VirtualMachine", "name": vm}},
            "status": status,
        }

    shots = [
        shot("before-upgrade", "2026-05-01T10:00:00Z", readyToUse=True),
        shot("web-1-snapshot-ab12cd34", "2026-05-01T11:59:30Z", phase="InProgress"),
        shot("of-another-vm", "2026-05-01T11:00:00Z", vm="db-1-vm", readyToUse=True),
    ]
    assert snapshot_choices("web-1", "demo", shots, NOW) == (
        "restore needs --snapshot-name; snapshots of web-1: "
        "web-1-snapshot-ab12cd34 (InProgress, 30s ago), before-upgrade (ready, 2h ago)"
    )
    assert snapshot_choices("web-1", "demo", shots[2:], NOW) == (
        "restore needs --snapshot-name: web-1 has no snapshot to restore "
        "(wukong snapshot web-1 -n demo takes one)"
    )


@pytest.mark.parametrize("action", [Action.MIGRATE, Action.SNAPSHOT, Action.RESTORE])
def test_a_request_refused_while_one_runs_answers_each_waiter_its_own(action: Action) -> None:
    """Two users (or a script's retry): the later request is refused while the first runs;
    the first one's `--wait` still gets its end, the later one's its refusal."""
    first = Request.now(action, NOW, snapshot_name="good" if action is not Action.MIGRATE else None)
    later = Request.now(action, NOW + timedelta(seconds=1), snapshot_name=first.snapshot_name)
    field = {"migrate": "migration", "snapshot": "snapshot", "restore": "restore"}[action.value]
    cr = running()
    refused = {"refusedRequestId": later.fingerprint, "refusal": f"a {action.value} runs"}
    cr["status"][field] = {"requestId": first.fingerprint, "phase": "Running", **refused}
    said = Outcome(False, f"{action.value} refused: a {action.value} runs")
    assert outcome(cr, later, 2) == said
    assert acknowledgement(cr, later, 2) == said
    assert outcome(cr, first, 2) is None  # still running: no refusal of its own
    assert acknowledgement(cr, first, 2) == Outcome(True, "Running")
    ended = {"result": "Succeeded", "message": "done", "sourceNode": "a", "targetNode": "b"}
    cr["status"][field] |= ended
    done = outcome(cr, first, 2)
    assert done is not None and done.ok


@pytest.mark.parametrize("verb", ["stop", "restart"])
@pytest.mark.parametrize("zero", [["--grace-period", "0"], ["--grace-period=0s"]])
def test_force_with_a_grace_period_of_0_is_virtctls_forced_stop(
    verb: str, zero: list[str], kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Audit: `wukong stop web-1 --force --grace-period 0`, what virtctl users type
    (`virtctl stop myvm --force --grace-period=0`), was refused with exit 2. A grace period
    of 0 says what --force says: the request written is --force's own."""
    server = FakeApiServer(running("web-1"))

    def sent(*flags: str) -> dict[str, Any]:
        args = (verb, "web-1", *flags, "--dry-run=client", "-o", "json")
        result = wukong_cli(server, kubeconfig, monkeypatch, *args)
        assert result.exit_code == 0, result.output
        action = json.loads(result.stdout)["spec"]["lifecycleAction"]
        return {k: v for k, v in action.items() if k != "requestedAt"}

    forced = sent("--force", *zero)
    assert forced == sent("--force")
    assert (forced["force"], forced["gracePeriodSeconds"]) == (True, None)
    # A grace period that is not 0 still contradicts --force: refused before any request.
    refused = wukong_cli(
        server, kubeconfig, monkeypatch, verb, "web-1", "--force", "--grace-period=1s"
    )
    assert refused.exit_code == 2, refused.output
    assert refused.stderr == (
        "error: --force powers off at once: --grace-period does not apply (or give 0); for a "
        "1s shutdown, drop --force\n"
    )
    assert server.writes == []
