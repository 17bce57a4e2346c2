"""Placement and sizing in the VM template (issue 16): what goes in, what a change costs."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from wukong.api.v1alpha1 import Wukong
from wukong.reconcile.actions import DeleteChild, Emit, PatchChild
from wukong.reconcile.observed import Observed
from wukong.reconcile.vm import (
    build_vm,
    placement_behind,
    plan_vm,
    restart_reasons,
    restart_required,
)

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


def test_an_empty_toleration_key_with_exists_tolerates_every_taint_as_in_kubernetes() -> None:
    """`key: ""` with operator Exists is Kubernetes' toleration of every taint; the pattern
    of a label key refused the empty string, so only a toleration without a key was taken
    (session 44's list). KubeVirt drops the empty key (omitempty): the template does too."""
    wk = cr(tolerations=[{"key": "", "operator": "Exists"}])
    tmpl = build_vm(wk, Observed(now=NOW), "Always")["spec"]["template"]["spec"]
    assert tmpl["tolerations"] == [{"operator": "Exists"}]
    with pytest.raises(ValidationError, match="needs operator: Exists"):
        cr(tolerations=[{"key": "", "operator": "Equal", "value": "v"}])
    with pytest.raises(ValidationError, match="should match pattern"):
        cr(tolerations=[{"key": "bad key!", "operator": "Exists"}])


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


def test_the_template_patch_holds_only_for_the_vm_it_was_computed_from() -> None:
    # It replaces the template's volumes, disks and interfaces whole: a volume virt-api put
    # in the template since the cache's copy (a hot-plug) must make it a 409, not vanish.
    before = owned(build_vm(cr(nodeSelector={"a": "1"}), Observed(now=NOW), "Always"))
    before["metadata"]["resourceVersion"] = "41"
    plan = plan_vm(cr(nodeSelector={"a": "2"}), Observed(now=NOW, vm=before), ready=True,
                   run_strategy="Always")  # fmt: skip
    patch = next(a for a in plan.actions if isinstance(a, PatchChild)).patch
    assert patch["metadata"] == {"resourceVersion": "41"}
    assert "volumes" in patch["spec"]["template"]["spec"]


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


SMALL = {"kubevirt.io/cluster-instancetype-name": "u1.small"}
CANNOT_MIGRATE = {
    "type": "LiveMigratable",
    "status": "False",
    "reason": "DisksNotLiveMigratable",
    "message": "PVC web-system is not shared",
}


def _sized(name: str) -> Wukong:
    return cr(cpu=None, memory=None, instancetype={"name": name})


def test_a_new_instancetype_is_applied_live_by_kubevirt_not_a_restart() -> None:
    """KubeVirt v1.7.0 expands both specs and hot-plugs a new instancetype's CPUs and memory
    (vm.go addRestartRequiredIfNeeded, handleCPUChangeRequest; its e2e test
    tests/hotplug/instancetype.go expects no RestartRequired). The Wukong said "restart it
    to apply" until the next restart (source audit, session 47)."""
    vmi = running(_sized("u1.small"), **SMALL)
    vmi["spec"]["domain"]["cpu"] = {"sockets": 1, "cores": 1, "threads": 1, "maxSockets": 4}
    vmi["status"] = {"currentCPUTopology": {"sockets": 1}}
    large = _sized("u1.large")
    tmpl = build_vm(large, Observed(now=NOW), "Always")["spec"]["template"]["spec"]
    assert restart_required(tmpl, vmi, _sized("u1.small")) == []
    assert restart_required(tmpl, vmi, large) == []
    # KubeVirt copies the new sockets into the VMI: the live part is reported as cpu's is.
    vmi["spec"]["domain"]["cpu"]["sockets"] = 2
    reasons, resize = restart_reasons(tmpl, vmi, large)
    assert reasons == []
    live = resize.condition
    assert live is not None and live.message.startswith("cpu 1 → 2: applied live by KubeVirt")
    assert "instancetype u1.large" in live.message


def test_what_kubevirt_cannot_apply_of_a_new_instancetype_is_said_in_its_words() -> None:
    vmi = running(_sized("u1.large"), **{"kubevirt.io/cluster-instancetype-name": "u1.large"})
    small = _sized("u1.small")
    vm = owned(build_vm(small, Observed(now=NOW), "Always"))
    words = "Reduction of CPU socket count requires a restart"
    vm["status"] = {"conditions": [{"type": "RestartRequired", "status": "True", "message": words}]}
    tmpl = vm["spec"]["template"]["spec"]
    assert restart_reasons(tmpl, vmi, small, vm)[0] == [("the VM template", words)]


def test_a_new_instancetype_of_a_vm_that_cannot_migrate_waits_for_its_restart() -> None:
    """KubeVirt would copy its sockets into the VMI all the same, and its workload updater
    evicts a VMI it cannot migrate where the KubeVirt CR lists Evict: the matcher is held
    back in the VM, as `cpu` is, and written with the restart."""
    small, large = _sized("u1.small"), _sized("u1.large")
    vm = owned(build_vm(small, Observed(now=NOW), "Always"))
    vmi = running(small, **SMALL) | {"status": {"conditions": [CANNOT_MIGRATE]}}
    vmi["metadata"] |= {"name": "web-vm", "uid": "vmi-1"}
    seen = Observed(now=NOW, vm=vm, vmi=vmi)
    plan = plan_vm(large, seen, ready=True, run_strategy="Always")
    patches = [a.patch for a in plan.actions if isinstance(a, PatchChild)]
    assert all("instancetype" not in p["spec"] for p in patches), patches
    [restart] = [c for c in plan.conditions if c.type == "RestartRequired"]
    assert restart.message.startswith("instancetype changed while the VM runs"), restart.message
    assert "DisksNotLiveMigratable: PVC web-system is not shared" in restart.message
    # The restart this pass asks for writes it first.
    plan = plan_vm(large, seen, ready=True, run_strategy="Always", restarting=True)
    [patch] = [a.patch for a in plan.actions if isinstance(a, PatchChild)]
    assert patch["spec"]["instancetype"]["name"] == "u1.large"


NIC = {"name": "lan", "bridge": {}}
LAN = {"name": "lan", "multus": {"networkName": "web-lan"}}
DEFAULT_NIC = {"name": "default", "masquerade": {}}
POD = {"name": "default", "pod": {}}
OTHER_LAN = {"name": "lan", "multus": {"networkName": "other"}}


def _spec(*pairs: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
    return {
        "domain": {"devices": {"interfaces": [i for i, _ in pairs]}},
        "networks": [n for _, n in pairs],
    }


@pytest.mark.parametrize(
    ("want", "have", "restart"),
    [
        pytest.param(_spec((DEFAULT_NIC, POD), (NIC, LAN)), _spec((DEFAULT_NIC, POD)), [],
                     id="bridge-added-kubevirt-plugs-it"),
        pytest.param(_spec((NIC, LAN), (DEFAULT_NIC, POD)),
                     _spec((DEFAULT_NIC, POD), (NIC, LAN)), [], id="same-networks-other-order"),
        pytest.param(_spec((DEFAULT_NIC, POD)), _spec((DEFAULT_NIC, POD), (NIC, LAN)),
                     ["networks"], id="removed"),
        pytest.param(_spec((DEFAULT_NIC, POD), ({"name": "lan", "masquerade": {}}, LAN)),
                     _spec((DEFAULT_NIC, POD)), ["networks"], id="added-not-hot-pluggable"),
        pytest.param(_spec((DEFAULT_NIC, POD), (NIC, OTHER_LAN)),
                     _spec((DEFAULT_NIC, POD), (NIC, LAN)), ["networks"], id="changed"),
    ],
)  # fmt: skip
def test_networks_are_compared_by_name_as_kubevirt_does(
    want: dict[str, Any], have: dict[str, Any], restart: list[str]
) -> None:
    """KubeVirt plugs an added bridge or SR-IOV NIC into the running VMI (appended) and owes
    a restart only for one removed or changed (vmliveupdate/restart.go); compared item by
    item, an insertion or KubeVirt's plug not yet landed read as a restart owed."""
    assert restart_required(want, {"spec": have}) == restart


def test_a_network_plugged_into_the_vm_but_not_its_guest_says_how_it_arrives() -> None:
    """Without a dynamic-networks controller KubeVirt cannot put the NIC into the guest in
    place: the VMI says MigrationRequired, and the Wukong said nothing (network audit, s41)."""
    both = _spec((DEFAULT_NIC, POD), (NIC, LAN))
    required = {"type": "MigrationRequired", "status": "True"}
    vmi = {"spec": both, "status": {"conditions": [required], "interfaces": [{"name": "default"}]}}
    reasons, _ = restart_reasons(both, vmi)
    assert reasons == [
        (
            "networks",
            "lan plugged into the running VM, not into its guest: KubeVirt delivers a new "
            "network by a live migration (MigrationRequired), which it starts itself when the "
            "VM can migrate; or restart it",
        )
    ]
    both_reported = [{"name": "default"}, {"name": "lan"}]
    arrived = {**vmi, "status": {"conditions": [required], "interfaces": both_reported}}
    assert restart_reasons(both, arrived)[0] == []


UNSCHEDULABLE = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}


def _waiting_for_a_node(desired: int, observed: int, **vmi_status: Any) -> Observed:
    vm = owned(build_vm(cr(nodeSelector={"a": "1"}), Observed(now=NOW), "Always"))
    vm["status"] = {"desiredGeneration": desired, "observedGeneration": observed}
    status = {"phase": "Scheduling", "conditions": [UNSCHEDULABLE]} | vmi_status
    vmi = {"metadata": {"name": "web-vm", "namespace": "ns", "uid": "vmi-1"}, "status": status}
    return Observed(now=NOW, vm=vm, vmi=vmi)


@pytest.mark.parametrize(
    ("seen", "remade"),
    [
        pytest.param(_waiting_for_a_node(3, 2), True, id="made-before-the-change"),
        pytest.param(_waiting_for_a_node(2, 2), False, id="made-from-the-template-as-it-is"),
        pytest.param(_waiting_for_a_node(3, 2, nodeName="node-1"), False, id="scheduled"),
        pytest.param(_waiting_for_a_node(3, 2, conditions=[]), False, id="not-refused-a-node"),
    ],
)
def test_a_vmi_no_node_took_made_before_the_change_is_made_again(
    seen: Observed, remade: bool
) -> None:
    """KubeVirt patches a new nodeSelector into a VMI waiting for a node, but its launcher
    pod keeps the old one and nothing asks for a restart (placement audit, session 41)."""
    plan = plan_vm(cr(nodeSelector={"a": "1"}), seen, ready=True, run_strategy="Always")
    deleted = [a for a in plan.actions if isinstance(a, DeleteChild)]
    assert deleted == ([DeleteChild("VirtualMachineInstance", "web-vm", "vmi-1")] if remade else [])
    said = [a.reason for a in plan.actions if isinstance(a, Emit)]
    assert said == (["Rescheduling"] if remade else [])


def test_empty_strings_kubevirt_drops_are_not_in_the_template() -> None:
    """A toleration's strings and cloud-init's userData/networkData are omitempty in
    KubeVirt's Go types: its webhook stored the VM without an empty one, the template with it
    never covered the VM, and every pass patched it again, each patch an update that woke the
    next (found in session 42: spec_parity's seed 777 made 103 VM patches for 56 VMs)."""
    spec = {
        "tolerations": [{"key": "k", "operator": "Equal", "value": "", "effect": "NoSchedule"}],
        "cloudInit": {"userData": "", "networkData": "version: 2"},
    }
    wk = cr(**spec)
    tmpl = build_vm(wk, Observed(now=NOW), "Always")["spec"]["template"]
    kept = {"key": "k", "operator": "Equal", "effect": "NoSchedule"}
    assert tmpl["spec"]["tolerations"] == [kept]
    [init] = [v for v in tmpl["spec"]["volumes"] if "cloudInitNoCloud" in v]
    assert init["cloudInitNoCloud"] == {"networkData": "version: 2"}
    # The VM as KubeVirt stores it is in line: no patch.
    stored = owned(build_vm(wk, Observed(now=NOW), "Always"))
    plan = plan_vm(wk, Observed(now=NOW, vm=stored), ready=True, run_strategy="Always")
    assert not [a for a in plan.actions if isinstance(a, PatchChild)]


@pytest.mark.parametrize(
    ("requirement", "words"),
    [
        ({"key": "zone", "operator": "In", "values": ["eu west"]}, "should match pattern"),
        ({"key": "cpus", "operator": "Gt", "values": ["many"]}, "is an integer"),
    ],
)
def test_node_affinity_values_kubernetes_or_the_scheduler_cannot_use_are_refused(
    requirement: dict[str, Any], words: str
) -> None:
    """KubeVirt's webhook took them; Kubernetes refused the launcher pod (a value that is not
    a label value), or the scheduler matched no node (Gt/Lt not an integer): audit, s43."""
    terms = {"nodeSelectorTerms": [{"matchExpressions": [requirement]}]}
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": terms}}
    with pytest.raises(ValidationError, match=words):
        cr(affinity=affinity)
    fine = {**requirement, "values": ["8"] if requirement["operator"] == "Gt" else ["eu-west"]}
    terms["nodeSelectorTerms"][0]["matchExpressions"] = [fine]
    assert cr(affinity=affinity).spec.affinity is not None


@pytest.mark.parametrize("key", ["a..b/disk", "a.-b/disk"])
def test_a_label_key_prefix_that_is_no_dns_subdomain_is_refused(key: str) -> None:
    """Kubernetes refused the launcher pod with such a nodeSelector key (audit, s43)."""
    with pytest.raises(ValidationError, match="should match pattern"):
        cr(nodeSelector={key: "ssd"})
    assert cr(nodeSelector={"a.b/disk": "ssd"}).spec.node_selector == {"a.b/disk": "ssd"}


def test_a_placement_kubevirt_holds_back_while_a_restart_is_owed_is_named() -> None:
    """KubeVirt applies no placement live while the VM owes a restart (vm.go gates
    handleAffinityChangeRequest on it): the new nodeSelector was applied nowhere and
    RestartRequired named only evictionStrategy (source audit, session 47)."""
    vmi = running(cr(nodeSelector={"zone": "a"}))
    moved = build_vm(cr(nodeSelector={"zone": "b"}), Observed(now=NOW), "x")
    tmpl = moved["spec"]["template"]["spec"]
    assert restart_required(tmpl, vmi) == []  # nothing owed: KubeVirt applies it live
    both = build_vm(cr(nodeSelector={"zone": "b"}, evictionStrategy="None"), Observed(now=NOW), "x")
    reasons, _ = restart_reasons(both["spec"]["template"]["spec"], vmi)
    assert [field for field, _ in reasons] == ["evictionStrategy", "nodeSelector"]
    assert "a migration's target pod is placed by the running VM's" in reasons[1][1]
    # KubeVirt's own RestartRequired holds it back too.
    vm = owned(copy.deepcopy(moved))
    vm["status"] = {"conditions": [{"type": "RestartRequired", "status": "True", "message": "m"}]}
    said = restart_reasons(tmpl, vmi, cr(nodeSelector={"zone": "b"}), vm)[0]
    assert said == [("the VM template", "m"), ("nodeSelector", reasons[1][1])]


def test_node_selector_keys_an_instancetype_brings_are_not_a_placement_behind() -> None:
    """An instancetype's nodeSelector is in the VMI, not in the template (pkg/instancetype/
    apply/nodeselector.go): only the keys the spec sets are compared then."""
    sized = _sized("u1.small")
    vmi = running(sized)
    vmi["spec"]["nodeSelector"] = {"gpu": "yes"}
    tmpl = build_vm(sized, Observed(now=NOW), "x")["spec"]["template"]["spec"]
    assert placement_behind(tmpl, vmi, sized=True) == []
    assert placement_behind(tmpl, vmi, sized=False) == ["nodeSelector"]


def test_the_operator_cache_keeps_the_placement_of_the_running_vmi() -> None:
    """The VMI cache keeps only the fields the planners read: without its placement every
    Wukong with a nodeSelector read as "behind", and every migrate waited then was refused
    (found by the integration test of session 47's fix)."""
    from wukong.api import kinds

    wk = cr(nodeSelector={"zone": "a"}, tolerations=[{"key": "k", "operator": "Exists"}])
    vmi = running(wk) | {"metadata": {"name": "web-vm", "namespace": "ns", "uid": "vmi-1"}}
    cached = kinds.project(vmi, kinds.VMI.reads)
    tmpl = build_vm(wk, Observed(now=NOW), "x")["spec"]["template"]["spec"]
    assert placement_behind(tmpl, cached) == []


@pytest.mark.parametrize(
    ("strategy", "migratable", "blocked"),
    [
        pytest.param("LiveMigrate", "False", True, id="live-migrate-cannot-migrate"),
        pytest.param("LiveMigrate", "True", False, id="live-migrate-can-migrate"),
        pytest.param("LiveMigrateIfPossible", "False", False, id="if-possible"),
        pytest.param(None, "False", False, id="none-said"),
    ],
)
def test_live_migrate_eviction_of_a_vm_that_cannot_migrate_says_drains_wait(
    strategy: str | None, migratable: str, blocked: bool
) -> None:
    """KubeVirt answers every eviction of such a VM's pod with 429, which `kubectl drain`
    retries for good, and says so only in a Prometheus alert; the default ReadWriteOnce
    disks make it the usual case (source audit, session 47)."""
    wk = cr()
    vm = owned(build_vm(wk, Observed(now=NOW), "Always"))
    vmi = running(wk)
    vmi["metadata"] |= {"name": "web-vm", "uid": "vmi-1"}
    if strategy is not None:
        vmi["spec"]["evictionStrategy"] = strategy  # the spec's, or the cluster's default
    can = CANNOT_MIGRATE | {"status": migratable}
    vmi["status"] = {"phase": "Running", "nodeName": "node-1", "conditions": [can]}
    plan = plan_vm(wk, Observed(now=NOW, vm=vm, vmi=vmi), ready=True, run_strategy="Always")
    found = [c for c in plan.conditions if c.type == "EvictionBlocked"]
    if not blocked:
        assert found == []
        return
    [cond] = found
    assert (cond.status, cond.reason) == (True, "NotLiveMigratable")
    assert cond.message == (
        "evictionStrategy LiveMigrate, but KubeVirt cannot live-migrate this VM "
        "(DisksNotLiveMigratable: PVC web-system is not shared): a drain of node-1 waits for "
        "it until it stops; use ReadWriteMany disks, or evictionStrategy LiveMigrateIfPossible "
        "or None"
    )
