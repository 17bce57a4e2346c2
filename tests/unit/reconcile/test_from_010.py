"""Upgrading from 0.1.0: what 0.1.0's own code left, fed to today's planners.

The objects and statuses come from data/world-0.1.0.json, which data/make_010_world.py
made by driving a5667a9's planners (0.1.0) over a fake cluster (see its docstring to
regenerate). Each test checks a promise of docs/upgrade.md, "From 0.1.0": the admin wrote
the WukongNetworkPolicy first (step 1), pinned the bridges of long network names (step 2),
expects RestartRequired on VLAN VMs (step 4), and in-flight requests are made once (step 5).
Whatever the steps, no disk is deleted or made again.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.unit.reconcile.test_settle import Cache
from tests.unit.reconcile.world import WirePlan, decide, pruned_fields
from wukong.act.reconciler import observe
from wukong.api import kinds, names
from wukong.api.v1alpha1 import Wukong
from wukong.reconcile.actions import CreateChild, DeleteChild, PatchChild, VmCall
from wukong.reconcile.observed import Observed

FIXTURE: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "world-0.1.0.json").read_text()
)
CASES = sorted(FIXTURE["cases"])
CACHES = {
    "VirtualMachine": kinds.VM.cache,
    "VirtualMachineInstance": kinds.VMI.cache,
    "DataVolume": kinds.DATA_VOLUME.cache,
    "PersistentVolumeClaim": kinds.PVC.cache,
    "NetworkAttachmentDefinition": kinds.NAD.cache,
}
# Step 1: the rules an administrator writes from what the step's jq command prints for
# these Wukongs (namespace, bridge, VLAN or untagged).
POLICY: dict[str, Any] = {
    "metadata": {"name": "cluster"},
    "spec": {
        "rules": [
            {"namespaces": ["demo"], "bridges": ["br-management-n"], "untagged": True},
            {"namespaces": ["demo"], "bridges": ["br-backup"], "vlans": [{"from": 200, "to": 200}]},
            {"namespaces": ["demo"], "bridges": ["br-trunk"], "vlans": [{"from": 300, "to": 300}]},
        ]
    },
}


def objects(case: str, kind: str) -> list[dict[str, Any]]:
    return copy.deepcopy(FIXTURE["cases"][case]["objects"][kind])


def upgraded(
    case: str, *, policy: dict[str, Any] | None = POLICY, pin: bool = True, **spec: Any
) -> tuple[Wukong, dict[str, Any], Observed]:
    """The Wukong, its stored status and what today's operator observes at its first pass."""
    got = copy.deepcopy(FIXTURE["cases"][case])
    raw = got["wukong"]
    for net in raw["spec"].get("networks") or []:
        if pin and net["name"] == "management-net":
            net["bridge"] = "br-management-n"
    if spec:
        raw["spec"] |= spec
        raw["metadata"]["generation"] += 1
    cache = {CACHES[kind]: objs for kind, objs in got["objects"].items()}
    cache[kinds.STORAGE_CLASS.cache] = FIXTURE["storageClasses"]
    if policy is not None:
        cache[kinds.NETWORK_POLICY.cache] = [policy]
    cr = Wukong.from_dict(raw)
    now = datetime.fromisoformat(got["now"].replace("Z", "+00:00"))
    return cr, raw["status"], observe(Cache(cache), cr, now)


def first_pass(case: str, **kw: Any) -> WirePlan:
    cr, status, seen = upgraded(case, **kw)
    return decide(cr, status, seen)


def cond(plan: WirePlan, type_: str) -> dict[str, Any] | None:
    return next((c for c in plan.status["conditions"] if c["type"] == type_), None)


def strategy_patches(plan: WirePlan) -> list[str]:
    return [
        a.patch["spec"]["runStrategy"]
        for a in plan.actions
        if isinstance(a, PatchChild)
        and a.kind == "VirtualMachine"
        and "runStrategy" in a.patch.get("spec", {})
    ]


DISK_KINDS = ("PersistentVolumeClaim", "DataVolume")


def test_the_fixture_is_what_010_made() -> None:
    """The premises: names 0.1.0 did not bound, records with no `call`."""
    assert FIXTURE["generatedBy"].endswith("a5667a9 (0.1.0)")
    claims = [o["metadata"]["name"] for o in objects("disk", "PersistentVolumeClaim")]
    assert max(len(c) for c in claims) > 63
    nads = [o["metadata"]["name"] for o in objects("vlan", "NetworkAttachmentDefinition")]
    assert max(len(n) for n in nads) > 63
    vm = objects("vlan", "VirtualMachine")[0]
    configs = [
        json.loads(o["spec"]["config"]) for o in objects("vlan", "NetworkAttachmentDefinition")
    ]
    assert {c["plugins"][0]["bridge"] for c in configs} == {"br-management-n", "br-backup"}
    assert vm["spec"]["runStrategy"] == "Always"
    records = {c: FIXTURE["cases"][c]["wukong"]["status"].get("lifecycleState") for c in CASES}
    assert records["restart-accepted"]["state"] == "Accepted"
    assert records["stop-retried"]["state"] == "Issued"
    assert not any("call" in r for r in records.values() if r)
    assert FIXTURE["cases"]["stopped"]["objects"]["VirtualMachineInstance"] == []


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("policy", [POLICY, None], ids=["steps-followed", "no-policy"])
def test_no_disk_is_deleted_or_made_again_and_each_keeps_its_claim(
    case: str, policy: dict[str, Any] | None
) -> None:
    """Whatever the steps: the claims 0.1.0 made (one over 63 characters: 0.1.0 did not
    bound `<wukong>-<disk>`; today's are cut only past 253) are the disks' claims still."""
    plan = first_pass(case, policy=policy)
    for action in plan.actions:
        assert not isinstance(action, DeleteChild), action
        assert not (isinstance(action, CreateChild) and action.kind in DISK_KINDS), action
    claims = {o["metadata"]["name"] for o in objects(case, "PersistentVolumeClaim")}
    cr, _, _ = upgraded(case)
    for disk in cr.spec.disks:
        assert names.disk_claim_name(cr.metadata.name, disk.name) in claims
    if policy is not None:
        assert {v["pvcName"] for v in plan.status["volumes"]} == claims
        assert cond(plan, "VolumesBound")["status"] == "True"  # type: ignore[index]


@pytest.mark.parametrize("case", CASES)
def test_with_the_steps_followed_the_spec_is_valid_and_the_vm_is_left_running(case: str) -> None:
    """Steps 1 and 2 followed: no NetworkNotAllowed, no `runStrategy: Manual` (held off), no
    call but the request 0.1.0 had taken, and the status fits today's CRD."""
    plan = first_pass(case)
    assert cond(plan, "SpecValid")["status"] == "True"  # type: ignore[index]
    assert cond(plan, "NetworksConfigured")["status"] == "True"  # type: ignore[index]
    assert strategy_patches(plan) == []
    pending = FIXTURE["cases"][case]["wukong"]["status"].get("lifecycleState") or {}
    if pending.get("issued") is not False:
        assert [a for a in plan.actions if isinstance(a, VmCall)] == []
        assert plan.status["phase"] == FIXTURE["cases"][case]["wukong"]["status"]["phase"]
    assert pruned_fields(plan.status) == []


@pytest.mark.parametrize("case", ["vlan", "stopped"])
def test_without_the_policy_a_bridge_network_is_refused_and_a_running_vm_held_off(
    case: str,
) -> None:
    """Step 1 skipped: what upgrade.md says happens (and why the step comes first)."""
    plan = first_pass(case, policy=None)
    valid = cond(plan, "SpecValid")
    assert valid is not None and (valid["status"], valid["reason"]) == (
        "False",
        "NetworkNotAllowed",
    )
    running = case == "vlan"
    assert strategy_patches(plan) == (["Manual"] if running else [])


def test_without_the_policy_a_stopped_wukong_is_not_started() -> None:
    start = {"action": "start", "requestedAt": "2026-11-23T11:00:00Z"}
    plan = first_pass("stopped", policy=None, lifecycleAction=start)
    assert [a for a in plan.actions if isinstance(a, VmCall)] == []
    assert plan.status["lifecycleState"]["state"] == "Refused"
    assert "may not use bridge" in plan.status["lifecycleState"]["message"]


def test_with_the_policy_a_stopped_wukong_starts() -> None:
    start = {"action": "start", "requestedAt": "2026-11-23T11:00:00Z"}
    cr, status, seen = upgraded("stopped", lifecycleAction=start)
    accepted = decide(cr, status, seen)
    assert accepted.status["lifecycleState"]["state"] == "Accepted"
    called = decide(cr, accepted.status, seen)
    assert [a for a in called.actions if isinstance(a, VmCall)] == [
        VmCall("start", names.vm_name(cr.metadata.name))
    ]
    assert pruned_fields(called.status) == []


def test_a_long_network_name_left_unpinned_moves_to_another_bridge() -> None:
    """Step 2 skipped: the NAD is rewritten to the hashed bridge (which the nodes do not
    have), so the policy written from the step 1 command refuses it and holds the VM off."""
    plan = first_pass("vlan", pin=False)
    valid = cond(plan, "SpecValid")
    assert valid is not None and valid["reason"] == "NetworkNotAllowed"
    assert "br-man-e7d6baf0" in valid["message"]
    granted = copy.deepcopy(POLICY)
    granted["spec"]["rules"][0]["bridges"].append("br-man-e7d6baf0")
    plan = first_pass("vlan", pin=False, policy=granted)
    rewritten = [
        json.loads(a.patch["spec"]["config"])["plugins"][0]["bridge"]
        for a in plan.actions
        if isinstance(a, PatchChild) and a.kind == "NetworkAttachmentDefinition"
    ]
    assert "br-man-e7d6baf0" in rewritten


def test_pinned_bridges_keep_the_untagged_nad_and_vlan_ones_owe_a_restart() -> None:
    """Step 2 followed: the untagged NAD gets only the `mac` capability (no restart owed for
    it); step 4: the VLAN NAD's `preserveDefaultVlan: false` owes the running VM a restart."""
    plan = first_pass("vlan")
    patched = {
        a.name: (json.loads(a.patch["spec"]["config"])["plugins"][0], a.why)
        for a in plan.actions
        if isinstance(a, PatchChild) and a.kind == "NetworkAttachmentDefinition"
    }
    management = "frontend-web-east-datacenter-1-management-net"
    plugin, why = patched[management]
    assert (plugin["bridge"], why) == ("br-management-n", "mac capability added")
    restart = cond(plan, "RestartRequired")
    assert restart is not None and restart["status"] == "True"
    assert [a for a in plan.actions if isinstance(a, VmCall)] == []


@pytest.mark.parametrize(
    ("case", "call"),
    [
        ("restart-accepted", VmCall("restart", "web-restart-vm")),
        ("stop-retried", VmCall("stop", "web-stop-vm", grace_period=60)),
    ],
)
def test_a_request_010_took_and_had_not_made_is_made_once(case: str, call: VmCall) -> None:
    """Step 5: a restart 0.1.0 accepted (not called) and a stop whose call failed
    transiently (stored `Issued`, `issued: false`, to retry) are each made once, as the
    call 0.1.0 would have made: a stop with its grace period, not a Halted patch."""
    cr, status, seen = upgraded(case)
    made = decide(cr, status, seen)
    assert [a for a in made.actions if isinstance(a, VmCall)] == [call]
    assert strategy_patches(made) == []
    assert made.status["lifecycleState"]["state"] == "Issued"
    assert pruned_fields(made.status) == []
    later = Observed(**{**seen.__dict__, "now": seen.now + timedelta(seconds=5)})
    again = decide(cr, made.status, later)
    assert [a for a in again.actions if isinstance(a, VmCall)] == []


def test_a_disk_keeps_the_serial_010_gave_it() -> None:
    """0.1.0 cut a disk's serial to its name's first 36 characters; issue 18 ends a long one
    in a hash. Today's template patched the running VM's serial silently (no RestartRequired
    of ours; KubeVirt's own at its next look), and the next boot showed a SCSI guest another
    /dev/disk/by-id name for the disk (a virtio guest sees 20 bytes, the same in both)."""
    plan = first_pass("disk")
    assert [a for a in plan.actions if isinstance(a, PatchChild)] == []
    long = next(d for d in upgraded("disk")[0].spec.disks if len(d.name) > names.MAX_SERIAL)
    old = long.name[: names.MAX_SERIAL]
    # The mount check before a detach knows the disk by the serial its guest reports.
    assert names.reports_serial(f"0QEMU_QEMU_HARDDISK_{old}", long.name)
    assert names.reports_serial(old[: names.VIRTIO_SERIAL], long.name)


def test_a_nad_010_named_past_63_characters_is_made_again_and_the_old_one_kept_meanwhile() -> None:
    """Not fixed (session 48): 0.1.0 named an operator-made NAD `<wukong>-<network>` at any
    length; today's name is cut past 63 characters with a hash, and the old one is not found
    under it. What docs/upgrade.md (From 0.1.0, item 7) says happens: the NAD of the new name
    is made on the same bridge and VLAN, the running VM owes a restart, and the old NAD stays
    while the VM runs on it."""
    plan = first_pass("vlan")
    old = {o["metadata"]["name"] for o in objects("vlan", "NetworkAttachmentDefinition")}
    long = {n for n in old if len(n) > 63}
    assert long, "the fixture has a NAD 0.1.0 named past 63 characters"
    made = [a for a in plan.actions if isinstance(a, CreateChild)]
    assert [a.kind for a in made] == ["NetworkAttachmentDefinition"]
    assert made[0].body["metadata"]["name"] not in old
    assert [a for a in plan.actions if isinstance(a, DeleteChild)] == []
