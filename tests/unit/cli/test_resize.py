"""`wukong resize`: the pinned patch, the refusals said before anything is written, and how the
operator's conditions tell a change in effect from one that waits (KubeVirt, the storage) or
needs a restart."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.cli.objects import IMAGE, running
from wukong.console.errors import USAGE, CliError
from wukong.console.lifecycle import Outcome
from wukong.console.resize import Resize, answer, done, plan

DISKS = [{"name": "system", "size": "10Gi", "image": IMAGE}, {"name": "data", "size": "5Gi"}]


def cr_with(**status: Any) -> dict[str, Any]:
    cr = running(disks=DISKS)
    cr["metadata"]["generation"] = 4
    cr["status"] |= {"observedGeneration": 4, **status}
    return cr


def test_the_patch_carries_only_what_changes_pinned_to_what_was_read() -> None:
    patch, changes = plan(cr_with(), Resize(cpu=4, memory="1Gi", disks={"data": "20Gi"}))
    assert changes == ["cpu 1 → 4", "disk data 5Gi → 20Gi"]  # memory is 1Gi already
    assert patch == {
        "metadata": {"resourceVersion": "42"},
        "spec": {
            "cpu": 4,
            "disks": [
                {"name": "system", "size": "10Gi", "image": IMAGE},
                {"name": "data", "size": "20Gi"},
            ],
        },
    }
    same = Resize(cpu=1, memory="1024Mi", disks={"data": "5120Mi"})
    assert plan(cr_with(), same) == (None, [])  # the same sizes, written otherwise


@pytest.mark.parametrize(
    ("resize", "said"),
    [
        (Resize(disks={"data": "1Gi"}), "disk data of web-1 is 5Gi: a disk grows, never shrinks"),
        (Resize(disks={"logs": "1Gi"}), "web-1 has no disk logs (disks: system, data)"),
    ],
)
def test_what_cannot_be_is_refused_before_anything_is_written(resize: Resize, said: str) -> None:
    with pytest.raises(CliError) as refused:
        plan(cr_with(), resize)
    assert refused.value.message.startswith(said)


def test_a_size_the_api_would_refuse_is_a_usage_error() -> None:
    with pytest.raises(CliError) as refused:
        plan(cr_with(), Resize(memory="8GB"))
    assert refused.value.code == USAGE
    assert refused.value.message.startswith("memory: '8GB' is not a Kubernetes quantity")


def test_an_instancetype_sizes_cpu_and_memory_not_the_flags() -> None:
    cr = cr_with()
    cr["spec"] = {"instancetype": {"name": "u1.small"}, "disks": DISKS}
    with pytest.raises(
        CliError, match=r"sized by instancetype u1\.small: change spec\.instancetype"
    ):
        plan(cr, Resize(cpu=2))
    assert plan(cr, Resize(disks={"data": "6Gi"}))[1] == ["disk data 5Gi → 6Gi"]


def test_a_wukong_being_deleted_is_not_resized() -> None:
    cr = cr_with()
    cr["metadata"]["deletionTimestamp"] = "2026-05-01T12:00:00Z"
    with pytest.raises(CliError, match="being deleted"):
        plan(cr, Resize(cpu=2))


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        ((None, None, ()), "say what to resize"),
        ((None, None, ("data",)), "--disk takes DISK=SIZE"),
        ((None, None, ("data=1Gi", "data=2Gi")), "--disk data is given twice"),
    ],
)
def test_flags_that_say_nothing_or_twice_are_usage_errors(flags: Any, said: str) -> None:
    with pytest.raises(CliError, match=said) as refused:
        Resize.from_flags(*flags)
    assert refused.value.code == USAGE


def condition(type_: str, status: str, reason: str, message: str) -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


RESTART = condition("RestartRequired", "True", "SpecChanged", "cpu changed: restart it")
LIVE = condition("CPUMemoryHotplug", "True", "Migrating", "cpu 1 → 2: applied live")
GROWING = condition("VolumesResized", "False", "Resizing", "growing data to 20Gi")
REFUSED = condition("VolumesResized", "False", "ExpansionNotSupported", "class cannot grow")
NODE = condition("FileSystemResizePending", "True", "NodeResizePending", "when it next starts")


def test_the_first_answer_says_how_the_change_applies() -> None:
    assert answer(cr_with(observedGeneration=3), 4) is None  # not seen yet
    assert answer(cr_with(), 4) == Outcome(True, "applied")
    assert answer(cr_with(conditions=[RESTART]), 4) == Outcome(True, "cpu changed: restart it")
    assert answer(cr_with(conditions=[LIVE, GROWING]), 4) == Outcome(
        True,
        "cpu 1 → 2: applied live; growing data to 20Gi",
    )
    assert answer(cr_with(conditions=[REFUSED]), 4) == Outcome(
        False, "resize refused: class cannot grow"
    )
    assert answer(None, 4) == Outcome(False, "the Wukong was deleted")


def volumes(capacity: str) -> list[dict[str, str]]:
    return [{"name": "data", "pvcName": "web-1-data", "capacity": capacity}]


def test_the_wait_ends_when_every_change_is_in_effect_or_waits_for_a_restart() -> None:
    grow, cpu = Resize(disks={"data": "20Gi"}), Resize(cpu=2)
    assert done(cr_with(volumes=volumes("5Gi"), conditions=[GROWING]), 4, grow) is None
    assert done(cr_with(volumes=volumes("20Gi")), 4, grow) == Outcome(True, "web-1 is resized")
    # The node grows the filesystem under a running VM soon: wait for it. A stopped VM's
    # waits for its next start: say so instead.
    assert done(cr_with(volumes=volumes("5Gi"), conditions=[NODE]), 4, grow) is None
    stopped = cr_with(phase="Stopped", volumes=volumes("5Gi"), conditions=[NODE])
    assert done(stopped, 4, grow) == Outcome(True, "web-1 is resized: when it next starts")
    assert done(cr_with(conditions=[LIVE]), 4, cpu) is None
    assert done(cr_with(conditions=[RESTART]), 4, cpu) == Outcome(
        True,
        "web-1 is resized: cpu changed: restart it",
    )
    assert done(cr_with(conditions=[REFUSED]), 4, grow) == Outcome(
        False,
        "resize refused: class cannot grow",
    )


def test_an_imported_disk_bigger_than_asked_waits_while_it_still_grows() -> None:
    """With real CDI an imported 10Gi disk's claim has 10.6Gi already: grown to 10.5Gi, the
    operator grows it on to 10.5Gi plus CDI's filesystem overhead. The capacity alone said
    the resize was done at once."""
    grow = Resize(disks={"system": "10752Mi"})
    padded = [{"name": "system", "capacity": "11327976244"}, {"name": "data", "capacity": "5Gi"}]
    assert done(cr_with(volumes=padded, conditions=[GROWING]), 4, grow) is None
    assert done(cr_with(volumes=padded), 4, grow) == Outcome(True, "web-1 is resized")


@pytest.mark.parametrize(
    ("cpu", "memory", "disks", "said"),
    [
        (0, None, [], "--cpu: 0 is not a vCPU count from 1 to 2147483647"),
        (None, "1GB", [], "--memory: '1GB' is not a Kubernetes quantity (did you mean"),
        (None, None, ["data=5GB"], "--disk data: '5GB' is not a Kubernetes quantity"),
    ],
)
def test_values_the_api_would_refuse_are_usage_errors_before_the_cluster_is_asked(
    cpu: int | None, memory: str | None, disks: list[str], said: str
) -> None:
    """`--memory 1GB` was checked only after the Wukong was read: with the cluster down it
    said "cannot reach the cluster" (CLI audit, session 41)."""
    with pytest.raises(CliError) as refused:
        Resize.from_flags(cpu, memory, disks)
    assert refused.value.code == USAGE and refused.value.message.startswith(said)
