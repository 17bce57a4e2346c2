"""Placement and sizing in the VM template (issue 16): what goes in, what a change costs."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from wukong.api.v1alpha1 import Wukong
from wukong.reconcile.actions import PatchChild
from wukong.reconcile.observed import Observed
from wukong.reconcile.vm import build_vm, plan_vm, restart_required

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def cr(**spec: Any) -> Wukong:
    body: dict[str, Any] = {
        "cpu": 1,
        "memory": "1Gi",
        "disks": [{"name": "system", "size": "1Gi"}],
    } | spec
    body = {k: v for k, v in body.items() if v is not None}
    return Wukong.from_dict(
        {
            "apiVersion": "vm.novasphere.dev/v1alpha1",
            "kind": "Wukong",
            "metadata": {"name": "web", "namespace": "ns", "uid": "u-1", "generation": 1},
            "spec": body,
        }
    )


def owned(vm: dict[str, Any]) -> dict[str, Any]:
    vm["metadata"]["ownerReferences"] = [{"uid": "u-1"}]
    return vm


def test_placement_fields_go_to_the_template_as_written() -> None:
    spec = {
        "nodeSelector": {"disktype": "ssd"},
        "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
        "evictionStrategy": "LiveMigrate",
    }
    tmpl = build_vm(cr(**spec), Observed(now=NOW), "Always")["spec"]["template"]["spec"]
    assert tmpl["nodeSelector"] == {"disktype": "ssd"}
    assert tmpl["tolerations"] == [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}]
    assert tmpl["evictionStrategy"] == "LiveMigrate"


def test_an_instancetype_sizes_the_vm_instead_of_cpu_and_memory() -> None:
    wk = cr(cpu=None, memory=None, instancetype={"name": "u1.small"}, preference={"name": "f"})
    vm = build_vm(wk, Observed(now=NOW), "Always")
    assert vm["spec"]["instancetype"] == {
        "name": "u1.small",
        "kind": "VirtualMachineClusterInstancetype",
    }
    assert vm["spec"]["preference"]["kind"] == "VirtualMachineClusterPreference"
    domain = vm["spec"]["template"]["spec"]["domain"]
    assert "cpu" not in domain and "memory" not in domain and "resources" not in domain


def test_a_dropped_node_selector_key_is_removed_from_the_vm_not_merged_back() -> None:
    before = owned(build_vm(cr(nodeSelector={"a": "1", "b": "2"}), Observed(now=NOW), "Always"))
    plan = plan_vm(cr(nodeSelector={"b": "2"}), Observed(now=NOW, vm=before), ready=True,
                   run_strategy="Always")  # fmt: skip
    patch = next(a for a in plan.actions if isinstance(a, PatchChild)).patch
    assert patch["spec"]["template"]["spec"]["nodeSelector"] == {"a": None}


def running(wk: Wukong, **annotations: str) -> dict[str, Any]:
    """The VMI KubeVirt runs for this Wukong's template (what a restart would give)."""
    spec = copy.deepcopy(build_vm(wk, Observed(now=NOW), "Always")["spec"]["template"]["spec"])
    return {"metadata": {"annotations": annotations}, "spec": spec}


def test_live_fields_need_no_restart_the_others_are_named() -> None:
    vmi = running(cr(nodeSelector={"a": "1"}, evictionStrategy="None"))
    live = build_vm(cr(nodeSelector={"b": "2"}, evictionStrategy="None"), Observed(now=NOW), "x")
    assert restart_required(live["spec"]["template"]["spec"], vmi) == []
    evict = build_vm(cr(nodeSelector={"a": "1"}, evictionStrategy="LiveMigrate"),
                     Observed(now=NOW), "x")  # fmt: skip
    assert restart_required(evict["spec"]["template"]["spec"], vmi) == ["evictionStrategy"]


def test_a_new_instancetype_needs_a_restart() -> None:
    small = cr(cpu=None, memory=None, instancetype={"name": "u1.small"})
    vmi = running(small, **{"kubevirt.io/cluster-instancetype-name": "u1.small"})
    large = cr(cpu=None, memory=None, instancetype={"name": "u1.large"})
    tmpl = build_vm(large, Observed(now=NOW), "Always")["spec"]["template"]["spec"]
    assert restart_required(tmpl, vmi, small) == []
    assert restart_required(tmpl, vmi, large) == ["instancetype"]
