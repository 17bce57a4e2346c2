"""CPU and memory of a running VM (issue 16 point 2): live where KubeVirt hot-plugs them,
RestartRequired naming the field where it cannot; the template Wukong writes for each."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from wukong.api.conditions import CPU_MEMORY_HOTPLUG, RESTART_REQUIRED, Condition
from wukong.reconcile.actions import Emit, PatchChild
from wukong.reconcile.observed import Observed
from wukong.reconcile.resources import hotplug_events, plan_resize
from wukong.reconcile.vm import build_vm, plan_vm, restart_reasons

from .test_placement import cr, owned

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def template(**spec: Any) -> dict[str, Any]:
    return build_vm(cr(**spec), Observed(now=NOW), "Always")["spec"]["template"]["spec"]


def running(tmpl: dict[str, Any], **status: Any) -> dict[str, Any]:
    """The VMI KubeVirt starts from this template (virt-api's hot-plug defaults included)."""
    spec = copy.deepcopy(tmpl)
    cpu, memory = spec["domain"]["cpu"], spec["domain"]["memory"]
    cpu.setdefault("maxSockets", cpu["sockets"] * 4)
    memory.setdefault("maxGuest", "4Gi")
    guest = memory["guest"]
    body = {
        "currentCPUTopology": {k: cpu[k] for k in ("sockets", "cores", "threads")},
        "memory": {"guestAtBoot": guest, "guestCurrent": guest, "guestRequested": guest},
        "conditions": [{"type": "LiveMigratable", "status": "True"}],
    }
    return {"metadata": {"uid": "vmi-1"}, "spec": spec, "status": body | status}


def test_without_hotplug_vcpus_are_cores_and_memory_is_requested() -> None:
    domain = template(cpu=2)["domain"]
    assert domain["cpu"] == {"cores": 2, "sockets": 1, "threads": 1}
    assert domain["resources"] == {"requests": {"memory": "1Gi"}}


def test_with_hotplug_vcpus_are_sockets_with_the_maximum_and_kubevirt_sizes_the_pod() -> None:
    domain = template(cpu=2, hotplug={"maxCpu": 8, "maxMemory": "8Gi"})["domain"]
    assert domain["cpu"] == {"sockets": 2, "cores": 1, "threads": 1, "maxSockets": 8}
    assert domain["memory"] == {"guest": "1Gi", "maxGuest": "8Gi"}
    assert "resources" not in domain
    # Without maxima, KubeVirt's defaults apply: nothing of ours in the template.
    domain = template(cpu=2, hotplug={})["domain"]
    assert "maxSockets" not in domain["cpu"] and domain["memory"] == {"guest": "1Gi"}


def test_turning_hotplug_off_removes_the_maxima_and_restores_the_request() -> None:
    vm = owned(build_vm(cr(hotplug={"maxCpu": 4, "maxMemory": "4Gi"}), Observed(now=NOW), "Always"))
    plan = plan_vm(cr(), Observed(now=NOW, vm=vm), ready=True, run_strategy="Always")
    patch = next(a for a in plan.actions if isinstance(a, PatchChild)).patch
    domain = patch["spec"]["template"]["spec"]["domain"]
    assert domain["cpu"]["maxSockets"] is None and domain["memory"]["maxGuest"] is None
    assert domain["resources"] == {"requests": {"memory": "1Gi"}}


def test_more_sockets_within_the_maximum_are_live() -> None:
    vmi = running(template(cpu=1, hotplug={"maxCpu": 4}))
    resize = plan_resize(template(cpu=3, hotplug={"maxCpu": 4}), vmi, held=False)
    assert resize.restart == ()
    assert resize.live == ("cpu 1 → 3",)
    cond = resize.condition
    assert cond is not None and cond.type == CPU_MEMORY_HOTPLUG and cond.reason == "Requested"


def test_progress_follows_kubevirt_until_the_guest_has_the_cpus() -> None:
    tmpl = template(cpu=3, hotplug={"maxCpu": 4})
    vmi = running(template(cpu=1, hotplug={"maxCpu": 4}))
    vmi["spec"]["domain"]["cpu"]["sockets"] = 3  # virt-controller copied it in
    vmi["status"]["conditions"].append({"type": "HotVCPUChange", "status": "True"})
    waiting = plan_resize(tmpl, vmi, held=True)  # a later restart need does not stop it
    assert (waiting.live, waiting.stage) == (("cpu 1 → 3",), "WaitingForMigration")
    vmi["status"]["migrationState"] = {"migrationUid": "m-1", "targetNode": "node-2"}
    moving = plan_resize(tmpl, vmi, held=False)
    assert moving.stage == "Migrating" and "node-2" in moving.detail
    vmi["status"]["migrationState"]["completed"] = True
    vmi["status"]["currentCPUTopology"]["sockets"] = 3
    vmi["status"]["conditions"].pop()
    assert plan_resize(tmpl, vmi, held=False).condition is None


@pytest.mark.parametrize(
    ("new", "why"),
    [
        pytest.param(9, "9 is above the 8 vCPUs the VM can have live", id="beyond-max"),
        pytest.param(1, "KubeVirt removes vCPUs only on a restart", id="fewer"),
    ],
)
def test_cpu_kubevirt_cannot_add_live_needs_a_restart(new: int, why: str) -> None:
    vmi = running(template(cpu=2, hotplug={}))
    resize = plan_resize(template(cpu=new, hotplug={}), vmi, held=False)
    assert resize.restart == (("cpu", why),) and resize.condition is None


def test_cpu_as_cores_needs_a_restart_and_toggling_hotplug_is_named() -> None:
    vmi = running(template(cpu=2))
    assert plan_resize(template(cpu=3), vmi, held=False).restart[0][0] == "cpu"
    # Same vCPUs, other layout: it is the hotplug switch that changed.
    assert plan_resize(template(cpu=2, hotplug={}), vmi, held=False).restart[0][0] == "hotplug"


def test_a_new_maximum_needs_a_restart() -> None:
    vmi = running(template(cpu=2, hotplug={"maxCpu": 4, "maxMemory": "4Gi"}))
    tmpl = template(cpu=6, memory="6Gi", hotplug={"maxCpu": 8, "maxMemory": "8Gi"})
    fields = [f for f, _ in plan_resize(tmpl, vmi, held=False).restart]
    assert fields == ["hotplug.maxCpu", "hotplug.maxMemory"]


def test_nothing_is_live_while_another_field_needs_a_restart() -> None:
    vmi = running(template(cpu=1, hotplug={}))
    resize = plan_resize(template(cpu=2, hotplug={}), vmi, held=True)
    assert resize.restart == (("cpu", "another change needs a restart first"),)


def test_memory_within_the_maximum_is_live_for_a_migratable_vm() -> None:
    vmi = running(template(hotplug={"maxMemory": "4Gi"}))
    resize = plan_resize(template(memory="2Gi", hotplug={"maxMemory": "4Gi"}), vmi, held=False)
    assert resize.live == ("memory 1Gi → 2Gi",) and resize.restart == ()


@pytest.mark.parametrize(
    ("memory", "change", "why"),
    [
        pytest.param("8Gi", {}, "above the 4Gi the VM can have live", id="beyond-max"),
        pytest.param(
            "2Gi",
            {"conditions": [{"type": "LiveMigratable", "status": "False", "reason": "Disks"}]},
            "KubeVirt adds memory only to a VM that can migrate (Disks)",
            id="not-migratable",
        ),
        pytest.param(
            "2Gi",
            {"memory": {"guestAtBoot": "3Gi", "guestRequested": "1Gi"}},
            "below the 3Gi the VM booted with",
            id="below-boot",
        ),
        # Found by a source audit (session 42): KubeVirt reads a VMI that does not say yet as
        # one that cannot migrate (types.go IsMigratable) and owes a restart for good.
        pytest.param(
            "2Gi",
            {"conditions": []},
            "KubeVirt adds memory only to a VM that can migrate (its VMI does not say yet "
            "whether it can)",
            id="migratable-not-said-yet",
        ),
        # ValidateLiveUpdateMemory: "Guest memory must be 2Mi aligned" (restart for good).
        pytest.param(
            "1025Mi", {}, "KubeVirt hot-plugs memory only in steps of 2Mi", id="not-2mi-steps"
        ),
        pytest.param(
            "2Gi",
            {
                "conditions": [
                    {"type": "LiveMigratable", "status": "True"},
                    {"type": "HotMemoryChange", "status": "False", "message": "not supported"},
                ]
            },
            "not supported",
            id="failed-before",
        ),
    ],
)
def test_memory_kubevirt_cannot_add_live_needs_a_restart(
    memory: str, change: dict[str, Any], why: str
) -> None:
    vmi = running(template(hotplug={}), **change)
    resize = plan_resize(template(memory=memory, hotplug={}), vmi, held=False)
    assert resize.restart == (("memory", why),) and resize.live == ()


def test_memory_without_hotplug_changes_the_request_and_needs_a_restart() -> None:
    vmi = running(template())
    resize = plan_resize(template(memory="2Gi"), vmi, held=False)
    assert resize.restart == (("memory", "the pod's memory request changes only on a restart"),)


def test_cpu_of_a_vm_that_cannot_migrate_needs_a_restart() -> None:
    no = [{"type": "LiveMigratable", "status": "False", "reason": "DisksNotLiveMigratable"}]
    vmi = running(template(cpu=1, hotplug={}), conditions=no)
    resize = plan_resize(template(cpu=2, hotplug={}), vmi, held=False)
    assert resize.restart[0][0] == "cpu" and "live migration" in resize.restart[0][1]
    assert resize.condition is None


def _template_sockets(plan: Any) -> Any:
    [patch] = [a for a in plan.actions if isinstance(a, PatchChild)]
    return patch.patch["spec"]["template"]["spec"]["domain"]["cpu"]["sockets"]


def test_the_cpu_of_a_vm_that_cannot_migrate_waits_in_the_spec_until_a_restart() -> None:
    """Found by a source audit (session 42): KubeVirt copies a new socket count into the VMI
    whether it can migrate or not, and where its CR lists Evict among workloadUpdateMethods
    the workload updater evicts a VMI it cannot migrate: the guest shut down unasked. The
    template keeps the running count until the restart that applies the new one."""
    vm = owned(build_vm(cr(cpu=1, hotplug={}), Observed(now=NOW), "Always"))
    no = [{"type": "LiveMigratable", "status": "False", "reason": "DisksNotLiveMigratable"}]
    vmi = running(vm["spec"]["template"]["spec"], conditions=no)
    seen = Observed(now=NOW, vm=vm, vmi=vmi)
    wanted = cr(cpu=2, hotplug={})
    plan = plan_vm(wanted, seen, ready=True, run_strategy="Always")
    assert not [a for a in plan.actions if isinstance(a, PatchChild)]  # nothing else changed
    cond = next(c for c in plan.conditions if c.type == RESTART_REQUIRED)
    assert cond.message.startswith("cpu") and "waits in the spec until a restart" in cond.message
    # The pass that restarts it writes the new count before its restart call.
    restarting = plan_vm(wanted, seen, ready=True, run_strategy="Always", restarting=True)
    assert _template_sockets(restarting) == 2
    # So does one with no VMI running (stopped, crashed): the next start has it.
    assert _template_sockets(plan_vm(wanted, Observed(now=NOW, vm=vm), ready=True,
                                     run_strategy="Always")) == 2  # fmt: skip
    # A VMI that can migrate gets it live, as before.
    live = Observed(now=NOW, vm=vm, vmi=running(vm["spec"]["template"]["spec"]))
    assert _template_sockets(plan_vm(wanted, live, ready=True, run_strategy="Always")) == 2


def _vm(tmpl: dict[str, Any], restart: bool) -> dict[str, Any]:
    conds = [{"type": "RestartRequired", "status": "True", "message": "a non-live field"}]
    return {
        "spec": {"template": {"spec": tmpl}},
        "status": {"conditions": conds if restart else []},
    }


def _told(message: str, at: datetime) -> Any:
    """The Wukong (no evictionStrategy) with the RestartRequired it was last given."""
    wk = cr()
    told = Condition(
        type=RESTART_REQUIRED, status="True", reason="SpecChanged", message=message,
        lastTransitionTime=at,
    )  # fmt: skip
    return wk.model_copy(update={"status": wk.status.model_copy(update={"conditions": [told]})})


def test_a_dropped_eviction_strategy_is_named_while_the_same_vmi_runs() -> None:
    vmi = running(template(evictionStrategy="External"))
    vmi["metadata"]["creationTimestamp"] = "2026-12-01T00:00:00Z"
    tmpl = template()
    # The pass that drops it from the VM: the VM still has it.
    dropping = _vm(template(evictionStrategy="External"), restart=False)
    reasons, _ = restart_reasons(tmpl, vmi, cr(), dropping)
    assert [field for field, _ in reasons] == ["evictionStrategy"]
    # Later passes: remembered through the condition written for this VMI.
    named = _told("evictionStrategy changed while the VM runs", NOW)
    reasons, _ = restart_reasons(tmpl, vmi, named, _vm(tmpl, restart=True))
    assert [field for field, _ in reasons] == ["evictionStrategy"]
    # A VMI started after that condition (a restart) has the cluster default: nothing owed.
    vmi["metadata"]["creationTimestamp"] = "2026-12-02T00:00:00Z"
    assert restart_reasons(tmpl, vmi, named, _vm(tmpl, restart=False))[0] == []


def test_kubevirts_restart_required_is_passed_on_when_no_field_explains_it() -> None:
    # E.g. a cpu change reverted: KubeVirt's RestartRequired stays until the next start.
    vmi = running(template())
    tmpl = template()
    assert restart_reasons(tmpl, vmi, cr(), _vm(tmpl, restart=False))[0] == []
    reasons, _ = restart_reasons(tmpl, vmi, cr(), _vm(tmpl, restart=True))
    assert reasons == [("the VM template", "a non-live field")]


def test_a_change_kubevirt_refused_live_is_told_in_its_words_not_as_another_change() -> None:
    """Found by a source audit (session 42): KubeVirt's RestartRequired held every live
    change back as "another change needs a restart first" when the change itself was what
    KubeVirt refused (a cluster without the LiveUpdate rollout strategy, say): there was no
    other change."""
    vmi = running(template(cpu=1, hotplug={}))
    tmpl = template(cpu=2, hotplug={})
    vm = _vm(tmpl, restart=True)
    vm["status"]["conditions"][0]["message"] = "a non-live-updatable field was changed"
    reasons, resize = restart_reasons(tmpl, vmi, cr(cpu=2, hotplug={}), vm)
    assert reasons == [("cpu", "a non-live-updatable field was changed")]
    assert resize.live == ()
    # With a change of ours that needs the restart, that one is the reason.
    held = plan_resize(tmpl, vmi, held=True)
    assert held.restart == (("cpu", "another change needs a restart first"),)


def test_plan_vm_names_the_field_and_why() -> None:
    vm = owned(build_vm(cr(hotplug={}), Observed(now=NOW), "Always"))
    vmi = running(vm["spec"]["template"]["spec"])
    plan = plan_vm(
        cr(cpu=9, hotplug={}), Observed(now=NOW, vm=vm, vmi=vmi), ready=True, run_strategy="Always"
    )
    cond = next(c for c in plan.conditions if c.type == RESTART_REQUIRED)
    assert cond.message.startswith("cpu changed while the VM runs: restart it to apply")
    assert cond.message.endswith("(cpu: 9 is above the 4 vCPUs the VM can have live)")


def _cond(type_: str, reason: str, message: str) -> Condition:
    return Condition(
        type=type_, status="True", reason=reason, message=message, lastTransitionTime=NOW
    )


def test_events_tell_the_live_change_from_start_to_end() -> None:
    started = [_cond(CPU_MEMORY_HOTPLUG, "Requested", "cpu 1 → 3: applied live by KubeVirt (x)")]
    moving = [_cond(CPU_MEMORY_HOTPLUG, "Migrating", "cpu 1 → 3: applied live by KubeVirt (y)")]
    assert hotplug_events([], started) == [Emit("Normal", "HotplugRequested", started[0].message)]
    assert [e.reason for e in hotplug_events(started, moving)] == ["HotplugMigrating"]
    assert hotplug_events(moving, moving) == []
    done = hotplug_events(moving, [])
    assert done == [Emit("Normal", "Resized", "cpu 1 → 3: the running VM has it now")]
    # Gone because a restart is owed instead: no "Resized".
    owed = [_cond(RESTART_REQUIRED, "SpecChanged", "cpu changed")]
    assert hotplug_events(moving, owed) == []
    # A VM stopped before it had it: nothing was resized live (the next boot has the size).
    assert hotplug_events(moving, [], running=False) == []


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"cpu": 8, "hotplug": {"maxCpu": 4}}, "cpu is above hotplug.maxCpu"),
        ({"memory": "8Gi", "hotplug": {"maxMemory": "4Gi"}}, "memory is above hotplug.maxMemory"),
        ({"memory": "512Mi", "hotplug": {"maxMemory": "4Gi"}}, "at least 1Gi of guest memory"),
        ({"memory": "1025Mi", "hotplug": {"maxMemory": "4Gi"}}, "must be 2Mi aligned"),
        # Exact at any size: Decimal's % raised DivisionImpossible, not a ValidationError.
        ({"memory": "4Gi", "hotplug": {"maxMemory": "1e99"}}, "less than 8Ei"),
        ({"memory": "1e40", "hotplug": {}}, "memory must be less than 8Ei"),
        (
            {"cpu": None, "memory": None, "instancetype": {"name": "u1"}, "hotplug": {}},
            "hotplug needs cpu and memory",
        ),
    ],
)
def test_the_model_refuses_what_the_crd_refuses(spec: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        cr(**spec)


def test_switching_hotplug_on_or_off_is_named_even_when_the_layout_is_the_same() -> None:
    # 1 vCPU is 1 socket of 1 core either way: it is the memory request that changes.
    cold, hot = template(), template(hotplug={"maxMemory": "4Gi"})
    assert plan_resize(hot, running(cold), held=False).restart[0][0] == "hotplug"
    assert plan_resize(cold, running(hot), held=False).restart[0][0] == "hotplug"


def test_a_memory_bigger_than_any_decimal_context_is_told_not_raised() -> None:
    """A running VM edited to a huge memory (one the CRD let in before its 8Ei rule): the
    2Mi check divided a Decimal of 41 digits in the 28-digit default context and raised on
    every pass, with no condition and no Event (audit, session 43)."""
    tmpl = template(memory="1Gi", hotplug={"maxCpu": 8})
    huge = copy.deepcopy(tmpl)
    huge["domain"]["memory"]["guest"] = "1e40"
    resize = plan_resize(huge, running(tmpl), held=False)
    assert resize.live == ()
    [(what, why)] = resize.restart
    assert what == "memory" and "above the 4Gi the VM can have live" in why
