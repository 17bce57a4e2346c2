"""The Wukong API as users write it and as the operator reads and writes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tests.unit.api.examples import Raw, spec_with
from wukong.api.v1alpha1 import (
    HISTORY_LIMIT,
    Action,
    Condition,
    DiskSpec,
    RunStrategy,
    VolumeStatus,
    Wukong,
    WukongSpec,
    WukongStatus,
    find_condition,
    record_transition,
    set_condition,
)
from wukong.api.validation import problems_from_error

NOW = datetime(2025, 5, 1, 12, 0, 0, tzinfo=UTC)


def test_the_spec_example_reads_into_snake_case_python(web_1: Raw) -> None:
    cr = Wukong.from_dict(web_1)
    assert cr.metadata.name == "web-1"
    assert cr.spec.run_strategy is RunStrategy.ALWAYS
    assert cr.spec.lifecycle_action is not None
    assert cr.spec.lifecycle_action.action is Action.STOP
    assert cr.spec.disks[0].storage_class_name == "fast"
    assert cr.spec.networks[0].nad_name == "existing-nad"
    assert cr.spec.keeps_on_delete("data") and not cr.spec.keeps_on_delete("system")
    assert cr.deletion_protected


def test_round_trip_keeps_the_wire_form_camel_case(web_1: Raw) -> None:
    out = Wukong.from_dict(web_1).to_dict()
    assert out["spec"]["disks"][0]["storageClassName"] == "fast"
    assert out["spec"]["lifecycleAction"]["gracePeriodSeconds"] == 30
    assert out["metadata"] == web_1["metadata"], "unknown metadata (managedFields) survives"
    assert Wukong.from_dict(out) == Wukong.from_dict(web_1)


def test_defaults_are_filled_in_when_a_user_leaves_them_out() -> None:
    spec = WukongSpec.model_validate(
        {"cpu": 1, "memory": "1Gi", "disks": [{"name": "root", "size": "10Gi"}]}
    )
    assert spec.run_strategy is RunStrategy.ALWAYS
    assert spec.start_strategy.auto_start is True
    assert spec.disks[0].bus == "virtio"
    assert spec.disks[0].detach.preserve_data is False
    assert spec.networks == []
    assert spec.lifecycle_action is None


def test_python_code_can_build_a_spec_by_field_name() -> None:
    disk = DiskSpec(name="root", size="10Gi", storage_class_name="fast")
    spec = WukongSpec(cpu=1, memory="1Gi", disks=[disk], run_strategy=RunStrategy.HALTED)
    wire = spec.to_wire()
    assert wire["disks"][0]["storageClassName"] == "fast"
    assert wire["runStrategy"] == "Halted"


def test_a_size_written_as_a_yaml_integer_is_read_as_bytes() -> None:
    disk = DiskSpec.model_validate({"name": "root", "size": 10 * 1024**3})
    assert (disk.size, disk.size_bytes) == ("10737418240", 10 * 1024**3)


@pytest.mark.parametrize(
    ("disks", "system"),
    [
        pytest.param([{"name": "a"}, {"name": "b"}], "a", id="first-disk-without-boot-flag"),
        pytest.param([{"name": "a"}, {"name": "b", "boot": True}], "b", id="boot-flag-wins"),
    ],
)
def test_the_system_disk_is_the_boot_disk_else_the_first(
    disks: list[dict[str, Any]], system: str
) -> None:
    raw = spec_with(disks=[{"size": "1Gi"} | d for d in disks], deleteOptions=None)
    assert WukongSpec.model_validate(raw).system_disk.name == system


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(spec_with(), id="spec-example"),
        pytest.param(spec_with(networks=[], lifecycleAction=None), id="no-networks"),
        pytest.param(spec_with(runStrategy="Halted"), id="halted"),
        pytest.param(spec_with(memory="1536Mi"), id="odd-memory"),
        pytest.param(spec_with(memory="0.5Gi"), id="fractional-memory"),
        pytest.param(spec_with(lifecycleAction={"action": "resume"}), id="resume"),
        pytest.param(spec_with(lifecycleAction={"action": "restart", "force": True}), id="force"),
        pytest.param(
            spec_with(networks=[{"name": "lan", "bridge": "br0", "mtu": 9000}]), id="jumbo-frames"
        ),
        pytest.param(
            spec_with(
                disks=[{"name": "os", "size": "30G", "image": "https://x.io/f.qcow2"}],
                deleteOptions={"preserveDisks": True},
            ),
            id="http-image",
        ),
    ],
)
def test_valid_specs_are_accepted(spec: Raw) -> None:
    WukongSpec.model_validate(spec)


@pytest.mark.parametrize(
    ("spec", "path", "message"),
    [
        pytest.param(spec_with(cpu=0), "spec.cpu", "greater than or equal to 1", id="no-cpu"),
        pytest.param(
            spec_with(memory="4GB"), "spec.memory", "did you mean '4G' or '4Gi'", id="memory-in-gb"
        ),
        pytest.param(spec_with(memory="0"), "spec.memory", "at least 1M", id="no-memory"),
        pytest.param(
            spec_with(runStrategy="Once"), "spec.runStrategy", "'Always', ", id="run-strategy-once"
        ),
        pytest.param(spec_with(disks=[]), "spec.disks", "at least 1 item", id="no-disks"),
        pytest.param(
            spec_with(disks=[{"name": "Data", "size": "1Gi"}]),
            "spec.disks[0].name",
            "lowercase letters",
            id="uppercase-disk-name",
        ),
        pytest.param(
            spec_with(disks=[{"name": "d", "size": "-1Gi"}]),
            "spec.disks[0].size",
            "negative",
            id="negative-size",
        ),
        pytest.param(
            spec_with(disks=[{"name": "d", "size": "1Gi", "image": "quay.io/x"}]),
            "spec.disks[0].image",
            "docker://",
            id="image-without-scheme",
        ),
        pytest.param(
            spec_with(disks=[{"name": "d", "size": "1Gi", "bus": "sata"}]),
            "spec.disks[0].bus",
            "'virtio' or 'scsi'",
            id="sata-bus",
        ),
        pytest.param(
            spec_with(disks=[{"name": "d" * 64, "size": "1Gi"}]),
            "spec.disks[0].name",
            "1-63",
            id="long-disk-name",
        ),
        pytest.param(
            spec_with(networks=[{"name": "lan", "type": "macvlan"}]),
            "spec.networks[0].type",
            "macvlan and ipvlan cannot carry KubeVirt's bridge",
            id="macvlan",
        ),
        pytest.param(
            spec_with(networks=[{"name": "lan", "type": "ipvlan"}]),
            "spec.networks[0].type",
            "only type 'bridge' is supported",
            id="ipvlan",
        ),
        pytest.param(
            spec_with(networks=[{"name": "default"}]),
            "spec.networks[0].name",
            "taken by the pod network",
            id="network-named-default",
        ),
        pytest.param(
            spec_with(networks=[{"name": "n", "bridge": "b", "vlan": 4095}]),
            "spec.networks[0].vlan",
            "less than or equal to 4094",
            id="vlan-too-big",
        ),
        pytest.param(
            spec_with(networks=[{"name": "n", "bridge": "a-very-long-bridge"}]),
            "spec.networks[0].bridge",
            "at most 15",
            id="bridge-name-too-long",
        ),
        # Linux refuses "." and ".." as interface names: the pod failed at every start.
        pytest.param(
            spec_with(networks=[{"name": "n", "bridge": ".."}]),
            "spec.networks[0].bridge",
            "should match pattern",
            id="bridge-named-dot-dot",
        ),
        pytest.param(
            spec_with(lifecycleAction={"action": "pause"}),
            "spec.lifecycleAction.action",
            "'suspend'",
            id="unknown-action",
        ),
        pytest.param(
            spec_with(lifecycleAction={"action": "stop", "gracePeriodSeconds": -1}),
            "spec.lifecycleAction.gracePeriodSeconds",
            "greater than or equal to 0",
            id="negative-grace-period",
        ),
        pytest.param(
            spec_with(deleteOptions={"preserveDisksList": ["Data"]}),
            "spec.deleteOptions.preserveDisksList[0]",
            "not a valid name",
            id="bad-kept-disk-name",
        ),
    ],
)
def test_invalid_specs_say_which_field_and_what_to_do(spec: Raw, path: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        WukongSpec.model_validate(spec)
    problems = problems_from_error(caught.value, prefix="spec")
    assert any(p.field == path and message in p.message for p in problems), problems


def test_status_round_trips_with_rfc3339_seconds() -> None:
    status = WukongStatus(
        phase="Running",
        volumes=[VolumeStatus(name="data", pvc_name="web-1-data", bound=True, progress="45.10%")],
        conditions=set_condition([], "Ready", True, "VMRunning", "", NOW.replace(microsecond=7)),
        history=record_transition([], "Starting", "Running", "VMI running", NOW),
    )
    wire = status.to_wire()
    assert wire["volumes"][0]["pvcName"] == "web-1-data"
    assert wire["conditions"][0]["lastTransitionTime"] == "2025-05-01T12:00:00Z"
    assert wire["history"][0] == {
        "from": "Starting",
        "to": "Running",
        "reason": "VMI running",
        "time": "2025-05-01T12:00:00Z",
    }
    assert WukongStatus.model_validate(wire) == status


def test_a_timestamp_is_written_in_utc_whatever_zone_it_came_in() -> None:
    """Formatting is cached; the same instant in two zones is one UTC time on the wire, and a
    later time is not answered from an earlier one's cache entry."""
    plus_two = NOW.astimezone(timezone(timedelta(hours=2)))
    for when in (NOW, plus_two, plus_two):
        status = WukongStatus(history=record_transition([], "Starting", "Running", "up", when))
        assert status.to_wire()["history"][0]["time"] == "2025-05-01T12:00:00Z"
    an_hour_on = NOW + timedelta(hours=1)
    later = WukongStatus(history=record_transition([], "Starting", "Running", "up", an_hour_on))
    assert later.to_wire()["history"][0]["time"] == "2025-05-01T13:00:00Z"


def _ready(conditions: list[Condition]) -> Condition:
    found = find_condition(conditions, "Ready")
    assert found is not None
    return found


def test_a_condition_keeps_its_transition_time_while_its_status_holds() -> None:
    later = NOW + timedelta(minutes=5)
    first = set_condition([], "Ready", False, "Creating", "creating disks", NOW, 1)
    same = set_condition(first, "Ready", "False", "WaitingForDisks", "importing 45%", later, 2)
    flipped = set_condition(same, "Ready", True, "VMRunning", "", later, 2)
    assert _ready(same).last_transition_time == NOW
    assert (_ready(same).reason, _ready(same).observed_generation) == ("WaitingForDisks", 2)
    assert _ready(flipped).last_transition_time == later
    assert len(flipped) == 1


def test_setting_one_condition_leaves_the_others_in_place() -> None:
    conditions = set_condition([], "SpecValid", True, "Valid", "", NOW)
    conditions = set_condition(conditions, "Ready", False, "Creating", "", NOW)
    conditions = set_condition(conditions, "SpecValid", False, "DiskShrink", "no", NOW)
    assert [c.type for c in conditions] == ["SpecValid", "Ready"]


def test_a_condition_reason_must_be_camel_case_like_the_api_server_wants() -> None:
    with pytest.raises(ValidationError, match="reason"):
        set_condition([], "Ready", True, "not camel case", "", NOW)


def test_history_keeps_only_the_last_transitions() -> None:
    history: list[Any] = []
    for i in range(HISTORY_LIMIT + 3):
        history = record_transition(history, f"S{i}", f"S{i + 1}", "step", NOW)
    assert len(history) == HISTORY_LIMIT
    assert history[-1].to == f"S{HISTORY_LIMIT + 3}"


def test_agent_keys_go_to_guest_users_beyond_linux_names() -> None:
    """qemu-ga finds the user by name on Linux and Windows, and KubeVirt takes any: the
    CRD took only Linux-pattern names, so `Administrator` of a Windows guest and `john.doe`
    were refused (session 47). Names that would read as a uid or an option, or carry a
    space, are still refused, by the model and the CRD's same pattern."""
    from wukong.api.guest import GUEST_USER_PATTERN, SshKey

    users = ["Administrator", "john.doe", "j@corp.example", "fedora"]
    key = SshKey.model_validate(
        {"secretName": "keys", "propagation": "qemuGuestAgent", "users": users}
    )
    assert key.users == users
    for bad in ("1000", "-x", "john doe", "a/b"):
        with pytest.raises(ValidationError):
            SshKey.model_validate(
                {"secretName": "keys", "propagation": "qemuGuestAgent", "users": [bad]}
            )
    crd = (Path(__file__).parents[3] / "manifests/crd/wukong.yaml").read_text()
    assert f"pattern: {GUEST_USER_PATTERN}" in crd
