"""`fold`: what the executor's actions did, folded into the status a pass writes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.reconcile.world import NOW
from wukong.api.status import (
    LifecycleState,
    MigrationStatus,
    RestoreStatus,
    SnapshotStatus,
    VolumeStatus,
    WukongStatus,
)
from wukong.reconcile.actions import CreateChild, ExpandDisk, Failed, VmCall
from wukong.reconcile.outcome import answered_requests, fold

OLD = WukongStatus(phase="Running", observed_generation=3)
PLANNED = WukongStatus(
    phase="Running",
    observed_generation=4,
    volumes=[VolumeStatus(name="data", size="2Gi"), VolumeStatus(name="logs", size="1Gi")],
    lifecycle_state=LifecycleState(
        state="Issued", last_action="stop", issued=True, last_action_time=NOW
    ),
)
EXPAND = ExpandDisk("web-1-data", "2Gi", "data", "2Gi")
STOP = VmCall("stop", "web-1-vm", grace_period=30)


def test_nothing_failed_is_the_planned_status() -> None:
    assert fold(PLANNED, OLD, {}) is PLANNED


CHILD = CreateChild("VirtualMachine", {"metadata": {"name": "web-1-vm"}})


def test_a_transient_failure_keeps_the_observed_generation() -> None:
    status = fold(PLANNED, OLD, {CHILD: Failed("transient", "etcd leader changed")})
    assert status.observed_generation == 3
    assert status.lifecycle_state == PLANNED.lifecycle_state and status.volumes == PLANNED.volumes


@pytest.mark.parametrize(
    "failed",
    [
        pytest.param({CHILD: Failed("permanent", "cores must be int32", 422)}, id="child-422"),
        pytest.param({CHILD: Failed("permanent", "exceeded quota", 403)}, id="child-quota"),
        pytest.param({STOP: Failed("refused", "VM is not running", 409)}, id="call-409"),
        pytest.param({EXPAND: Failed("permanent", "class cannot grow", 403)}, id="expansion"),
    ],
)
def test_a_refusal_the_status_reports_is_this_generations_answer(failed: Any) -> None:
    # Found by test_spec_parity: a new Wukong whose VM the API server refused was written
    # without any observedGeneration, though ChildrenAdmitted said why. Like a Deployment's
    # ReplicaFailure, the refusal is the answer to this generation.
    assert fold(PLANNED, OLD, failed).observed_generation == 4


def test_a_failure_nothing_in_the_status_reports_keeps_the_observed_generation() -> None:
    odd = Failed("permanent", "the server could not find the requested resource", 404)
    assert fold(PLANNED, OLD, {CHILD: odd}).observed_generation == 3
    refused = {CHILD: Failed("permanent", "denied", 422), EXPAND: Failed("transient", "timeout")}
    assert fold(PLANNED, OLD, refused).observed_generation == 3  # one still to be retried


def test_a_refused_expansion_is_a_typed_field_on_that_volume_only() -> None:
    status = fold(PLANNED, OLD, {EXPAND: Failed("permanent", "class cannot grow")})
    data, logs = status.volumes
    assert data.expansion_refused == "2Gi"
    assert data.message == "expansion to 2Gi refused: class cannot grow"
    assert logs == PLANNED.volumes[1]


def test_a_transient_expansion_failure_is_retried_not_remembered() -> None:
    status = fold(PLANNED, OLD, {EXPAND: Failed("transient", "timeout")})
    assert status.volumes[0].expansion_refused is None


def test_a_call_kubevirt_refused_is_answered_failed_and_not_retried() -> None:
    status = fold(PLANNED, OLD, {STOP: Failed("refused", "VM is not running")})
    assert status.lifecycle_state is not None
    assert (status.lifecycle_state.state, status.lifecycle_state.issued) == ("Failed", True)
    assert status.lifecycle_state.message == "KubeVirt refused stop: VM is not running"


def test_a_call_that_failed_transiently_is_issued_again_next_pass() -> None:
    status = fold(PLANNED, OLD, {STOP: Failed("transient", "503")})
    assert status.lifecycle_state is not None
    assert status.lifecycle_state.issued is False
    assert status.lifecycle_state.state == "Accepted"  # the next pass makes the call again


def test_a_call_the_authorizer_refused_the_operator_is_made_again_and_says_why() -> None:
    # As a refused child's 403 is worded (admission.operator_forbidden): the operator's
    # installation lacks a verb, not the user's request refused; it quoted the authorizer.
    denied = (
        'virtualmachines.subresources.kubevirt.io "web-1-vm" is forbidden: User '
        '"system:serviceaccount:wukong-system:wukong" cannot update resource '
        '"virtualmachines/stop" in API group "subresources.kubevirt.io" in the namespace "demo"'
    )
    status = fold(PLANNED, OLD, {STOP: Failed("transient", denied, 403)})
    assert status.lifecycle_state is not None
    assert status.lifecycle_state.state == "Accepted"
    assert status.lifecycle_state.message == (
        "stop not made yet: the operator may not stop VirtualMachine web-1-vm: its "
        "ServiceAccount (system:serviceaccount:wukong-system:wukong) lacks update on "
        "virtualmachines/stop (API group subresources.kubevirt.io); its RBAC is incomplete, "
        'see docs/install.md "Permissions"'
    )


def test_a_pause_the_authorizer_refused_names_the_vmi_and_what_the_authorizer_added() -> None:
    denied = (
        'User "system:serviceaccount:wukong-system:wukong" cannot update resource '
        '"virtualmachineinstances/pause" in API group "subresources.kubevirt.io" in the '
        'namespace "demo": RBAC: clusterrole.rbac.authorization.k8s.io "wukong" not found'
    )
    suspend = LifecycleState(state="Issued", last_action="suspend", issued=True)
    pausing = PLANNED.model_copy(update={"lifecycle_state": suspend})
    status = fold(pausing, OLD, {VmCall("pause", "web-1-vm"): Failed("transient", denied, 403)})
    assert status.lifecycle_state is not None
    assert status.lifecycle_state.message is not None
    assert status.lifecycle_state.message.startswith(
        "pause not made yet: the operator may not pause VirtualMachineInstance web-1-vm: "
    )
    assert '(RBAC: clusterrole.rbac.authorization.k8s.io "wukong" not found)' in (
        status.lifecycle_state.message
    )


RESTORING = RestoreStatus(
    request_id="r-1", name="web-1-restore-1", snapshot="good", phase="Restoring", start_after=True
)
WAITING = RESTORING.model_copy(update={"phase": "WaitingForVMI"})
RESTORE = CreateChild("VirtualMachineRestore", {"metadata": {"name": "web-1-restore-1"}})


def test_a_restore_not_made_on_its_way_is_made_again_next_pass() -> None:
    """Said Restoring with no object behind it, it waited for good (source audit, s41)."""
    old = OLD.model_copy(update={"restore": WAITING})
    planned = PLANNED.model_copy(update={"restore": RESTORING})
    status = fold(planned, old, {RESTORE: Failed("transient", "503 service unavailable")})
    assert status.restore == WAITING
    accepted_now = fold(planned, OLD, {RESTORE: Failed("transient", "timeout")})
    assert accepted_now.restore is None  # the request is taken again, as new


def test_a_restore_kubevirt_refused_is_answered_in_its_words() -> None:
    said = 'admission webhook denied the request: VirtualMachineRestore "theirs" in progress'
    planned = PLANNED.model_copy(update={"restore": RESTORING})
    status = fold(planned, OLD, {RESTORE: Failed("permanent", said, 422)})
    assert status.restore is not None
    assert (status.restore.phase, status.restore.result) == ("Failed", "Failed")
    assert status.restore.message == (
        f"KubeVirt refused restore web-1-restore-1: {said}; the VM stays stopped"
    )
    assert status.observed_generation == PLANNED.observed_generation  # answered


SNAPSHOT = CreateChild("VirtualMachineSnapshot", {"metadata": {"name": "web-1-snap-1"}})
MIGRATE = CreateChild("VirtualMachineInstanceMigration", {"metadata": {"name": "web-1-mig-1"}})
NOT_SERVED = Failed("permanent", "the server could not find the requested resource", 404)
BAD = Failed("permanent", "the server rejected our request for an unknown reason", 400)
REQUESTED = {
    "snapshot": SnapshotStatus(request_id="s-1", name="web-1-snap-1"),
    "restore": RESTORING,
    "migration": MigrationStatus(request_id="m-1", name="web-1-mig-1", phase="Pending"),
}
CREATE = {"snapshot": SNAPSHOT, "restore": RESTORE, "migration": MIGRATE}


@pytest.mark.parametrize("field", ["snapshot", "restore", "migration"])
@pytest.mark.parametrize("failure", [NOT_SERVED, BAD], ids=["404", "400"])
def test_a_request_answered_failed_by_a_create_that_fails_for_good_observes_its_generation(
    field: str, failure: Failed
) -> None:
    """Audit leftovers, session 50: a snapshot, restore or migration whose create failed for
    good, but not as a refusal `ChildrenAdmitted` reports (a 404: its CRD not served; a 400
    no webhook said), was answered Failed in its own status while `observedGeneration` stayed
    behind: the answer and the generation it answers disagreed until the next pass. A request
    answered moves observedGeneration to the generation it answered, as a refusal does."""
    planned = PLANNED.model_copy(update={field: REQUESTED[field]})
    failed = {CREATE[field]: failure}
    assert answered_requests(planned, failed) == {CREATE[field]}
    status = fold(planned, OLD, failed)
    answer = getattr(status, field)
    assert answer is not None and answer.result in ("Failed", "Refused")
    assert status.observed_generation == PLANNED.observed_generation
    # Lost on its way, it is made again: not an answer, the generation stays.
    again = fold(planned, OLD, {CREATE[field]: Failed("transient", "503")})
    assert again.observed_generation == OLD.observed_generation
    # With another failure nothing reports, the generation stays too.
    both = fold(planned, OLD, {CREATE[field]: failure, CHILD: NOT_SERVED})
    assert both.observed_generation == OLD.observed_generation
