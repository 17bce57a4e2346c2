"""Saying what is wrong (issue 15 points 1-3): refused children, the VM's own trouble, and a
Stalled condition that names the cause rather than healthy conditions."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any, Literal

import pytest

from tests.unit.reconcile.test_lifecycle import running_world
from tests.unit.reconcile.world import NOW, decide, ready_children, wukong
from wukong.api.conditions import CHILDREN_ADMITTED
from wukong.api.status import WukongStatus
from wukong.controller import counted
from wukong.reconcile.actions import (
    Action,
    AddVolume,
    CreateChild,
    Emit,
    Failed,
    PatchChild,
    RemoveVolume,
)
from wukong.reconcile.admission import admit
from wukong.reconcile.observed import Observed
from wukong.reconcile.timefmt import iso
from wukong.reconcile.vm import build_vm
from wukong.reconcile.vm_health import LASTING, NOT_READY_LASTING, health_due, vm_health

QUOTA = (
    'persistentvolumeclaims "web-1-data" is forbidden: exceeded quota: disks, '
    "requested: requests.storage=100Gi, used: requests.storage=0, limited: requests.storage=10Gi"
)
PVC = CreateChild("PersistentVolumeClaim", {"metadata": {"name": "web-1-data"}})


def cond(conditions: list[dict[str, Any]], type_: str) -> dict[str, Any]:
    return next((c for c in conditions if c["type"] == type_), {})


# -- 1. refused children ----------------------------------------------------------------------


def admitted(
    failed: dict[Action, Failed], conditions: list[dict[str, Any]], now: Any = NOW
) -> tuple[dict[str, Any], list[Emit], float | None]:
    """`admit` from and to the wire form of the conditions."""
    status = WukongStatus.model_validate({"conditions": conditions})
    after, events, retry = admit(status, failed, now, 1)
    return cond(after.to_wire().get("conditions") or [], CHILDREN_ADMITTED), events, retry


def test_a_create_refused_by_a_quota_is_a_condition_with_the_servers_message_and_a_warning() -> (
    None
):
    verdict, events, retry = admitted({PVC: Failed("permanent", QUOTA, 403)}, [])
    assert (verdict["status"], verdict["reason"]) == ("False", "Refused")
    assert "create PersistentVolumeClaim web-1-data" in verdict["message"]
    assert QUOTA in verdict["message"]
    assert events == [Emit("Warning", "ChildRefused", verdict["message"])]
    assert retry == 1.0


def test_the_same_refusal_again_is_not_a_new_event_and_its_retry_backs_off_to_a_cap() -> None:
    failed = {PVC: Failed("permanent", QUOTA, 403)}
    first, _, _ = admitted(failed, [])
    old = [first | {"lastTransitionTime": "2026-11-23T11:59:40Z"}]
    _, events, retry = admitted(failed, old)
    assert events == [] and retry == 20.0  # refused for 20 s: look again in 20 s
    _, _, later = admitted(failed, old, NOW + timedelta(hours=1))
    assert later == 60.0


def test_a_webhook_refusing_a_vm_patch_is_reported_too() -> None:
    patch = PatchChild("VirtualMachine", "web-1-vm", {"spec": {}}, "template", uid="web-1-vm-uid")
    denied = 'admission webhook "vm.example" denied the request: no GPUs'
    verdict, _, _ = admitted({patch: Failed("permanent", denied, 422)}, [])
    assert "update VirtualMachine web-1-vm" in verdict["message"]
    assert "no GPUs" in verdict["message"]


def test_cdis_webhook_refusing_a_data_volume_with_400_is_a_refusal_tried_again() -> None:
    """CDI's webhook answers 400 for a DataSource or a clone's namespace that does not exist
    yet: taken for a bad request, the DataVolume was never made again once it existed."""
    dv = CreateChild("DataVolume", {"metadata": {"name": "web-1-system"}})
    denied = (
        'admission webhook "datavolume-mutate.cdi.kubevirt.io" denied the request: '
        'datasources.cdi.kubevirt.io "fedora" not found'
    )
    verdict, events, retry = admitted({dv: Failed("permanent", denied, 400)}, [])
    assert (verdict["status"], verdict["reason"]) == ("False", "Refused")
    assert "create DataVolume web-1-system" in verdict["message"] and denied in verdict["message"]
    assert [e.reason for e in events] == ["ChildRefused"] and retry == 1.0
    # A 400 of the API server's own (a body it cannot read) is our bug, not a refusal.
    verdict, events, retry = admitted({dv: Failed("permanent", "bad body", 400)}, [])
    assert verdict == {} and events == [] and retry is None


GATE = (
    "Unable to Add Volume: Enable DeclarativeHotplugVolumes or HotplugVolumes feature gate to use "
    "this API."
)


@pytest.mark.parametrize(
    "call", [AddVolume("web-1-vm", "logs", {}, {}), RemoveVolume("web-1-vm", "logs")]
)
def test_a_disk_virt_api_refuses_to_plug_or_unplug_is_said_and_tried_again(call: Action) -> None:
    """virt-api answers 400 while neither hot-plug feature gate is on (both Alpha in KubeVirt
    v1.7.0): the reason was only in the operator's log, and the Wukong said Attaching, or
    nothing at all for a detach (found by review, session 37)."""
    verdict, events, retry = admitted({call: Failed("permanent", GATE, 400)}, [])
    verb = "hot-plug" if isinstance(call, AddVolume) else "unplug"
    assert (verdict["status"], verdict["reason"]) == ("False", "Refused")
    assert verdict["message"] == f"KubeVirt refused to {verb} disk logs: {GATE}"
    assert events == [Emit("Warning", "ChildRefused", verdict["message"])]
    assert retry == 1.0  # the gate may be turned on: looked at again, less and less often
    # A volume call that is only busy (5xx) is not a refusal.
    assert admitted({call: Failed("transient", "busy", 503)}, []) == ({}, [], None)


REFUSED = {
    "type": CHILDREN_ADMITTED,
    "status": "False",
    "reason": "Refused",
    "message": "refused",
    "lastTransitionTime": "2026-11-23T11:59:40Z",
}


def test_admitted_again_clears_the_condition_with_a_normal_event() -> None:
    verdict, events, retry = admitted({}, [REFUSED])
    assert verdict == {}  # absent: nothing refused any more
    assert [(e.type, e.reason) for e in events] == [("Normal", "ChildrenAdmitted")]
    assert retry is None


def test_other_failures_say_nothing_about_admission() -> None:
    busy = {PVC: Failed("transient", "busy", 503)}
    assert admitted(busy, []) == ({}, [], None)
    # A pass cut short by a 5xx cannot tell whether the child would now be admitted.
    verdict, events, _ = admitted(busy, [REFUSED])
    assert verdict["status"] == "False" and events == []


# -- 2. the VM's own trouble ------------------------------------------------------------------


def vm_world(printable: str, *conditions: dict[str, Any], vmi_phase: str | None = None) -> Observed:
    cr = wukong()
    vm = build_vm(cr, ready_children(), "Always")
    vm["status"] = {"printableStatus": printable, "conditions": list(conditions)}
    vmi = None
    if vmi_phase:
        vmi = {
            "metadata": {"name": "web-1-vm", "uid": "vmi-1"},
            "status": {
                "phase": vmi_phase,
                "nodeName": "node-3",
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }
    return ready_children(vm=vm, vmi=vmi)


UNSCHEDULABLE = {
    "type": "PodScheduled",
    "status": "False",
    "reason": "Unschedulable",
    "message": "0/3 nodes are available: 3 Insufficient memory.",
}


@pytest.mark.parametrize(
    ("printable", "conditions", "expected"),
    [
        ("ErrorUnschedulable", [UNSCHEDULABLE], "VM ErrorUnschedulable: 0/3 nodes are available"),
        ("ErrImagePull", [], "VM ErrImagePull: the container disk image cannot be pulled"),
        ("ImagePullBackOff", [], "VM ImagePullBackOff"),
        (
            "CrashLoopBackOff",
            [{"type": "Failure", "status": "True", "message": "virt-launcher crashed"}],
            "VM CrashLoopBackOff: virt-launcher crashed",
        ),
        (
            "DataVolumeError",
            [{"type": "DataVolumesReady", "status": "False", "message": "DV web-1-system failed"}],
            "VM DataVolumeError: DV web-1-system failed",
        ),
        ("ErrorPvcNotFound", [], "VM ErrorPvcNotFound: a PVC the VM uses does not exist"),
    ],
)
def test_each_vm_error_becomes_vm_healthy_false_with_kubevirts_words(
    printable: str, conditions: list[dict[str, Any]], expected: str
) -> None:
    verdict = vm_health(vm_world(printable, *conditions))
    assert verdict is not None and (verdict.status, verdict.reason) == (False, printable)
    assert verdict.message.startswith(expected)


def test_a_vmi_whose_node_was_lost_is_not_ready_and_says_so() -> None:
    world = vm_world("Running", vmi_phase="Unknown")
    verdict = vm_health(world)
    assert verdict is not None and (verdict.status, verdict.reason) == (False, "NodeLost")
    assert "node-3" in verdict.message
    plan = decide(wukong(), {"phase": "Running"}, world)
    conditions = plan.status["conditions"]
    assert cond(conditions, "Ready")["status"] == "False"
    assert cond(conditions, "VMHealthy")["reason"] == "NodeLost"
    warnings = [e for e in plan.actions if isinstance(e, Emit) and e.type == "Warning"]
    assert "NodeLost" in [e.reason for e in warnings]
    # `kubectl get wk` keeps naming the node: it is the question now (monitoring audit, s42).
    assert plan.status.get("nodeName") == "node-3"


def _loop_world(printable: str, fails: int, vmi_phase: str | None) -> Observed:
    """A VM in KubeVirt's crash loop: `fails` VMIs failed before they ran."""
    world = vm_world(printable, vmi_phase=vmi_phase)
    assert world.vm is not None
    if fails:
        world.vm["status"]["startFailure"] = {"consecutiveFailCount": fails}
    if world.vmi is not None:
        world.vmi["spec"] = world.vm["spec"]["template"]["spec"]
        world.vmi["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
        if vmi_phase == "Failed":
            world.vmi["status"]["reason"] = "PodFailed"
    return world


def test_a_crash_loop_is_one_warning_not_no_error_at_every_try() -> None:
    """Found by a monitoring audit (session 42): printableStatus says CrashLoopBackOff only
    while no VMI is there. Each new VMI read as "no error" (a Normal NoError Event) and its
    failure as a new one: two Warnings and a false all-clear every few minutes."""
    loop = [
        ("Starting", 0, "Failed"),
        ("CrashLoopBackOff", 1, None),
        ("Starting", 1, "Scheduling"),
        ("Starting", 1, "Failed"),
        ("CrashLoopBackOff", 2, None),
        ("Starting", 2, "Scheduling"),
        ("Starting", 2, "Failed"),
        ("CrashLoopBackOff", 3, None),
    ]
    status: dict[str, Any] = {"phase": "Starting"}
    said: list[tuple[str, str]] = []
    for printable, fails, phase in loop:
        plan = decide(wukong(), status, _loop_world(printable, fails, phase))
        said += [(e.type, e.reason) for e in plan.actions if isinstance(e, Emit)]
        status = plan.status
        assert cond(status["conditions"], "VMHealthy")["status"] == "False"
        # What /metrics counts it under says so at every step, though the phase hops and
        # Stalled stays False (monitoring audit, session 48): wukong_unhealthy pages.
        key = counted({"metadata": {"namespace": "ns"}, "status": status})
        assert key.unhealthy, (printable, fails, phase, key)
    # The phase hops (Error, Starting) are the loop's own story: KubeVirt's recorder and
    # ours count repeats of one Event (adapters/events.py).
    health = [s for s in said if s[1] not in ("VMIFailed", "VMIRestarting")]
    assert health == [("Warning", "PodFailed"), ("Warning", "CrashLoopBackOff")], said
    # A VMI that runs ends it (KubeVirt clears the count then; the pass may see it first).
    world = _loop_world("Starting", 3, "Running")
    assert vm_health(world) is None


def paused_world(reason: str, message: str) -> Observed:
    """A running VMI that virt-handler reports paused: its launcher pod's readiness gate
    (kubevirt.io/virtual-machine-unpaused) makes the VMI not Ready too."""
    world = vm_world("Paused", vmi_phase="Running")
    assert world.vmi is not None
    world.vmi["status"]["conditions"] = [
        {"type": "Ready", "status": "False"},
        {"type": "Paused", "status": "True", "reason": reason, "message": message},
    ]
    return world


def test_a_guest_paused_on_a_disk_error_is_in_trouble_not_suspended() -> None:
    """QEMU stops a guest on a disk I/O error (errorPolicy stop, KubeVirt's default); the
    Wukong called it Suspended, with a Normal Event, as if someone had paused it."""
    world = paused_world("PausedIOError", "VMI was paused, low-level IO error detected")
    plan = decide(wukong(), {"phase": "Running"}, world)
    assert plan.status["phase"] == "Running"
    conditions = plan.status["conditions"]
    assert (cond(conditions, "Ready")["status"], cond(conditions, "Ready")["reason"]) == (
        "False",
        "PausedIOError",
    )
    health = cond(conditions, "VMHealthy")
    assert (health["status"], health["reason"]) == ("False", "PausedIOError")
    assert "low-level IO error" in health["message"]
    assert "KubeVirt keeps trying to resume it" in health["message"]
    warnings = [e.reason for e in plan.actions if isinstance(e, Emit) and e.type == "Warning"]
    assert "PausedIOError" in warnings
    # Running, not Stalled: only wukong_unhealthy says the guest is frozen (audit s48).
    key = counted({"metadata": {"namespace": "ns"}, "status": plan.status})
    assert key.unhealthy and not key.stalled


def test_a_pause_by_the_migration_monitor_keeps_the_wukong_running() -> None:
    world = paused_world("PausedByMigrationMonitor", "VMI was paused by the migration monitor")
    plan = decide(wukong(), {"phase": "Running"}, world)
    assert plan.status["phase"] == "Running"
    assert "VMHealthy" not in [c["type"] for c in plan.status["conditions"]]
    assert cond(plan.status["conditions"], "Ready")["reason"] == "PausedByMigrationMonitor"


def test_a_pause_by_a_user_is_suspended() -> None:
    world = paused_world("PausedByUser", "VMI was paused by user")
    assert decide(wukong(), {"phase": "Running"}, world).status["phase"] == "Suspended"


def test_a_vmi_failed_on_an_unresponsive_node_says_so_and_shows_no_address() -> None:
    """What KubeVirt v1.7.0 does with a lost node (it never writes phase Unknown): the
    node controller marks the VMI Failed, reason NodeUnresponsive. The Wukong said only
    "Running → Error", with the dead VM's IP still in `kubectl get wk`."""
    world = vm_world("Stopped", vmi_phase="Failed")
    assert world.vmi is not None
    world.vmi["status"]["reason"] = "NodeUnresponsive"
    world.vmi["status"]["interfaces"] = [{"name": "default", "ipAddress": "10.244.1.7"}]
    plan = decide(wukong(), {"phase": "Running"}, world)
    assert plan.status["phase"] == "Error"
    health = cond(plan.status["conditions"], "VMHealthy")
    assert (health["status"], health["reason"]) == ("False", "NodeLost")
    assert "node-3 stopped responding" in health["message"]
    assert "NodeLost" in [e.reason for e in plan.actions if isinstance(e, Emit)]
    assert plan.status.get("interfaces", []) == []


def test_a_running_vmi_that_is_not_ready_gives_kubevirts_reason() -> None:
    world = vm_world("Running", vmi_phase="Running")
    assert world.vmi is not None
    world.vmi["status"]["conditions"] = [
        {"type": "Ready", "status": "False", "reason": "PodNotReady", "message": "node NotReady"}
    ]
    ready = cond(decide(wukong(), {"phase": "Running"}, world).status["conditions"], "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False",
        "PodNotReady",
        "node NotReady",
    )


def test_a_healthy_vm_has_no_vm_healthy_condition() -> None:
    assert vm_health(running_world()) is None


# -- 3. Stalled names the cause ---------------------------------------------------------------


def test_stalled_names_the_vms_trouble_and_no_healthy_condition() -> None:
    world = vm_world("ErrorUnschedulable", UNSCHEDULABLE)
    status = {
        "phase": "Starting",
        "history": [
            {
                "from": "Creating",
                "to": "Starting",
                "reason": "VMCreated",
                "time": "2026-11-23T11:50:00Z",
            }
        ],
    }
    plan = decide(wukong(), status, world, stall_after=300)
    stalled = cond(plan.status["conditions"], "Stalled")
    assert stalled["status"] == "True"
    assert "VM ErrorUnschedulable: 0/3 nodes are available" in stalled["message"]
    for healthy in ("FileSystemResizePending", "RestartRequired", "NetworksConfigured"):
        assert healthy not in stalled["message"], stalled["message"]


def test_a_stalled_wukong_writes_the_same_condition_on_every_later_pass() -> None:
    """Found by the 5,000-Wukong bench: the message carried the stall's age, so every pass a
    child's status update woke rewrote the Wukong's status (5.6 status writes per create)."""
    world = vm_world("ErrorUnschedulable", UNSCHEDULABLE)
    history = [
        {
            "from": "Creating",
            "to": "Starting",
            "reason": "VMCreated",
            "time": "2026-11-23T11:50:00Z",
        }
    ]
    first = decide(wukong(), {"phase": "Starting", "history": history}, world, stall_after=300)
    later = decide(
        wukong(),
        first.status,
        replace(world, now=world.now + timedelta(seconds=97)),
        stall_after=300,
    )
    stalled = cond(later.status["conditions"], "Stalled")
    assert stalled == cond(first.status["conditions"], "Stalled") and stalled["status"] == "True"
    assert "Starting since 2026-11-23T11:50:00Z (more than 300s)" in stalled["message"]
    assert later.status == first.status


def test_stalled_names_a_refused_child() -> None:
    status = {
        "phase": "Creating",
        "history": [
            {
                "from": "Pending",
                "to": "Creating",
                "reason": "SpecAccepted",
                "time": "2026-11-23T11:50:00Z",
            }
        ],
        "conditions": [
            {
                "type": CHILDREN_ADMITTED,
                "status": "False",
                "reason": "Refused",
                "message": f"the API server refused to create PVC: {QUOTA}",
                "lastTransitionTime": "2026-11-23T11:50:00Z",
            }
        ],
    }
    plan = decide(wukong(), status, ready_children(claims={}), stall_after=300)
    stalled = cond(plan.status["conditions"], "Stalled")
    assert "exceeded quota" in stalled["message"]


@pytest.mark.parametrize("reason", ["FailedFindPreference", "FailedFindInstancetype"])
def test_a_vm_naming_a_missing_preference_or_instancetype_says_so(reason: str) -> None:
    """Found by test_spec_parity against KubeVirt's virt-controller (seed 3447028866): no VMI
    is made and printableStatus says only Stopped, so the Wukong sat in Starting saying
    nothing until Stalled. virt-controller's Failure condition names the missing object."""
    failure = {
        "type": "Failure",
        "status": "True",
        "reason": reason,
        "message": 'virtualmachineclusterpreference.instancetype.kubevirt.io "ba.va" not found',
    }
    world = vm_world("Stopped", failure)
    verdict = vm_health(world)
    assert verdict is not None and (verdict.status, verdict.reason) == (False, reason)
    assert verdict.message == f"VM cannot start: {failure['message']}"
    plan = decide(wukong(), {"phase": "Starting"}, world)
    assert cond(plan.status["conditions"], "VMHealthy")["reason"] == reason
    warnings = [e.reason for e in plan.actions if isinstance(e, Emit) and e.type == "Warning"]
    assert reason in warnings


def test_a_passing_sync_failure_is_not_the_vms_health() -> None:
    """Other Failure reasons (a conflict, a failed VMI create) clear on virt-controller's next
    sync: reporting them would flap."""
    failure = {"type": "Failure", "status": "True", "reason": "FailedCreate", "message": "409"}
    assert vm_health(vm_world("Stopped", failure)) is None


VMI_QUOTA = (
    'Failure while starting VMI: virtualmachineinstances.kubevirt.io "web-1-vm" is forbidden: '
    "exceeded quota: vmis, requested: count/virtualmachineinstances.kubevirt.io=1, used: "
    "count/virtualmachineinstances.kubevirt.io=0, limited: "
    "count/virtualmachineinstances.kubevirt.io=0"
)


def _failed_create(age: float) -> dict[str, Any]:
    since = NOW - timedelta(seconds=age)
    return {"type": "Failure", "status": "True", "reason": "FailedCreate", "message": VMI_QUOTA,
            "lastTransitionTime": iso(since)}  # fmt: skip


def test_a_vmi_create_refused_for_long_is_vm_healthy_false() -> None:
    """A quota on VMIs or a webhook refuses every create: no VMI, printableStatus Stopped or
    Starting, only the VM's Failure condition, which KubeVirt leaves dated from the first
    refusal. Once it has lasted LASTING seconds it is the VM's health."""
    world = vm_world("Starting", _failed_create(LASTING + 1))
    verdict = vm_health(world)
    assert verdict is not None and (verdict.status, verdict.reason) == (False, "FailedCreate")
    assert verdict.message == f"VM cannot start: {VMI_QUOTA}"
    assert health_due(world) is None
    plan = decide(wukong(), {"phase": "Starting"}, world)
    assert cond(plan.status["conditions"], "VMHealthy")["reason"] == "FailedCreate"
    warnings = [e.reason for e in plan.actions if isinstance(e, Emit) and e.type == "Warning"]
    assert "FailedCreate" in warnings


def test_a_young_vmi_create_failure_waits_and_the_pass_comes_back_when_it_would_count() -> None:
    world = vm_world("Starting", _failed_create(3))
    assert vm_health(world) is None
    due = health_due(world)
    assert due is not None and LASTING - 3 <= due <= LASTING - 3 + 0.1
    plan = decide(wukong(), {"phase": "Starting"}, world)
    assert cond(plan.status["conditions"], "VMHealthy") == {}
    assert plan.requeue_after is not None and plan.requeue_after <= due
    later = replace(world, now=world.now + timedelta(seconds=due))
    assert vm_health(later) is not None


def _synchronized(message: str) -> dict[str, Any]:
    return {"type": "Synchronized", "status": "False", "reason": "FailedCreate", "message": message}


@pytest.mark.parametrize(
    "message",
    [
        'failed to create virtual machine pod: pods "virt-launcher-web-1-vm-x" is forbidden: '
        "exceeded quota: pods, requested: pods=1, used: pods=0, limited: pods=0",
        "failed to create pod for vmi ns/web-1-vm, it needs a privileged namespace to run: "
        'pods "virt-launcher-web-1-vm-x" is forbidden: violates PodSecurity "restricted"',
    ],
)
def test_a_launcher_pod_the_api_server_refuses_is_vm_healthy_false(message: str) -> None:
    """virt-controller writes it only on the VMI; the VM's printableStatus stays Starting."""
    world = vm_world("Starting", vmi_phase="Pending")
    assert world.vmi is not None
    world.vmi["status"]["conditions"] = [_synchronized(message)]
    verdict = vm_health(world)
    assert verdict is not None and (verdict.status, verdict.reason) == (False, "LauncherPodRefused")
    assert verdict.message == f"VM cannot start: {message}"


def test_a_launcher_pod_waiting_for_a_migration_is_not_trouble() -> None:
    """The same reason, FailedCreate, also says a migration is still under way: it passes."""
    world = vm_world("Starting", vmi_phase="Pending")
    assert world.vmi is not None
    world.vmi["status"]["conditions"] = [_synchronized("active migration exists")]
    assert vm_health(world) is None


# -- virt-launcher cannot start the guest (session 46) ----------------------------------------

# What virt-handler writes on the VMI when virt-launcher cannot read the cloud-init data
# (pkg/virt-handler/vm.go handleSyncError; cmd-client/errors.go quotes the launcher's error).
CLOUD_INIT_FAILED = (
    'server error. command SyncVMI failed: "ReadCloudInitVolumeDataSource failed: '
    "userDataBase64, userData, networkDataBase64 or networkData is required for a cloud-init "
    'data source"'
)


def sync_failed_world(
    age: float, message: str = CLOUD_INIT_FAILED, vmi_phase: str = "Scheduled", **source: Any
) -> Observed:
    """A VMI on node-3 whose domain virt-handler has failed to start for `age` seconds, its
    cloud-init volume a Secret reference (`source`: the volume's cloudInitNoCloud)."""
    world = vm_world("Starting", vmi_phase=vmi_phase)
    assert world.vmi is not None
    volume = {"name": "cloudinitdisk", "cloudInitNoCloud": source or {"secretRef": {"name": "ud"}}}
    world.vmi["spec"] = {"volumes": [{"name": "system", "dataVolume": {}}, volume]}
    world.vmi["status"]["conditions"] = [
        {"type": "Ready", "status": "False", "reason": "PodNotReady"},
        {
            "type": "Synchronized",
            "status": "False",
            "reason": "Synchronizing with the Domain failed.",
            "message": message,
            "lastTransitionTime": iso(NOW - timedelta(seconds=age)),
        },
    ]
    return world


# A Wukong Starting since 10 minutes ago: past --stall-after (300 s), so Stalled speaks.
STARTING_TEN_MINUTES = {
    "phase": "Starting",
    "history": [
        {"from": "Creating", "to": "Starting", "reason": "VMCreated",
         "time": iso(NOW - timedelta(minutes=10))}
    ],
}  # fmt: skip


def test_a_guest_virt_launcher_cannot_start_is_vm_healthy_false_with_kubevirts_words() -> None:
    """Audit s46 access #4: a cloud-init Secret made `--from-file=user-data` has no key
    `userdata`; virt-launcher fails to read it and virt-handler retries for ever, the VMI
    Scheduled and the VM Starting. The Wukong said nothing until Stalled's "waiting for
    KubeVirt"."""
    world = sync_failed_world(LASTING + 1)
    verdict = vm_health(world)
    assert verdict is not None
    assert (verdict.status, verdict.reason) == (False, "DomainSyncFailed")
    assert verdict.message.startswith(
        f"VM cannot start: KubeVirt cannot start the guest on node-3: {CLOUD_INIT_FAILED}. "
    )
    # Which Secret, which keys, and that the running pod will not see a fix.
    assert "key `userdata` (or `userData`) of Secret 'ud'" in verdict.message
    assert "--from-file=userdata=FILE" in verdict.message
    assert "stop and start the VM" in verdict.message
    assert health_due(world) is None
    plan = decide(wukong(), STARTING_TEN_MINUTES, world, stall_after=300)
    said = cond(plan.status["conditions"], "VMHealthy")
    assert (said["status"], said["reason"]) == ("False", "DomainSyncFailed")
    warnings = [e for e in plan.actions if isinstance(e, Emit) and e.type == "Warning"]
    assert ("DomainSyncFailed", said["message"]) in [(e.reason, e.message) for e in warnings]
    stalled = cond(plan.status["conditions"], "Stalled")
    assert stalled["status"] == "True" and "ReadCloudInitVolumeDataSource" in stalled["message"]
    assert "waiting for KubeVirt" not in stalled["message"]


def test_a_network_data_secret_is_named_with_its_keys_too() -> None:
    """Both references: virt-launcher says "no cloud-init data-source found" when neither
    Secret has its key."""
    message = (
        'server error. command SyncVMI failed: "ReadCloudInitVolumeDataSource failed: no '
        'cloud-init data-source found at volume: cloudinitdisk"'
    )
    world = sync_failed_world(
        LASTING + 1,
        message,
        secretRef={"name": "ud"},
        networkDataSecretRef={"name": "nd"},
    )
    verdict = vm_health(world)
    assert verdict is not None and message in verdict.message
    assert "user data from key `userdata` (or `userData`) of Secret 'ud'" in verdict.message
    assert "network data from key `networkdata` (or `networkData`) of Secret 'nd'" in (
        verdict.message
    )


def test_another_launcher_failure_is_said_without_the_cloud_init_advice() -> None:
    message = 'server error. command SyncVMI failed: "virError(Code=1, Msg=internal error)"'
    verdict = vm_health(sync_failed_world(LASTING + 1, message))
    assert verdict is not None and verdict.reason == "DomainSyncFailed"
    assert verdict.message == (
        f"VM cannot start: KubeVirt cannot start the guest on node-3: {message}"
    )


def test_a_young_launcher_failure_waits_and_the_pass_comes_back_when_it_would_count() -> None:
    """A first sync may fail while virt-launcher comes up: reported once it lasts, as
    virt-controller's FailedCreate (KubeVirt keeps the condition's time while it holds)."""
    world = sync_failed_world(3)
    assert vm_health(world) is None
    due = health_due(world)
    assert due is not None and LASTING - 3 <= due <= LASTING - 3 + 0.1
    plan = decide(wukong(), {"phase": "Starting"}, world)
    assert cond(plan.status["conditions"], "VMHealthy") == {}
    assert plan.requeue_after is not None and plan.requeue_after <= due
    assert vm_health(replace(world, now=NOW + timedelta(seconds=due))) is not None


def test_a_launcher_failure_goes_once_the_guest_runs_and_says_so() -> None:
    """virt-handler drops its condition on the first sync that works; a running VMI with a
    later sync error (a hot-plug, say) is not a VM that cannot start."""
    reported = decide(wukong(), {"phase": "Starting"}, sync_failed_world(LASTING + 1)).status
    assert cond(reported["conditions"], "VMHealthy")["reason"] == "DomainSyncFailed"
    running = running_world()
    plan = decide(wukong(), reported, running)
    assert cond(plan.status["conditions"], "VMHealthy") == {}
    said = [(e.type, e.reason) for e in plan.actions if isinstance(e, Emit)]
    assert ("Normal", "NoError") in said
    assert vm_health(sync_failed_world(LASTING + 1, vmi_phase="Running")) is None


# -- the kubelet cannot make the VM pod's sandbox (session 46) --------------------------------

SANDBOX_MESSAGE = (
    "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network "
    'for sandbox "4f1c": plugin type="multus" name="multus-cni-network" failed (add): '
    "[demo/virt-launcher-web-1-vm-abcde/pod-uid:web-1-vlan100]: error adding container to "
    'network "web-1-vlan100": "br0" already exists but is not a bridge'
)


def sandbox_event(age: float, message: str = SANDBOX_MESSAGE, uid: str = "pod-uid") -> Any:
    """The kubelet's Warning on the VM's pod, first said `age` seconds ago."""
    return {
        "reason": "FailedCreatePodSandBox",
        "type": "Warning",
        "involvedObject": {"kind": "Pod", "name": "virt-launcher-web-1-vm-abcde", "uid": uid},
        "message": message,
        "firstTimestamp": iso(NOW - timedelta(seconds=age)),
        "lastTimestamp": iso(NOW - timedelta(seconds=1)),
    }


def sandbox_world(*events: Any, vmi_phase: str = "Scheduling") -> Observed:
    """A VMI waiting for its pod (bound to node-1), which the kubelet cannot start."""
    world = vm_world("Starting", vmi_phase=vmi_phase)
    assert world.vmi is not None
    world.vmi["status"].pop("nodeName")
    world.vmi["status"]["activePods"] = {"pod-uid": "node-1"}
    world.vmi["status"]["conditions"] = [
        {"type": "Ready", "status": "False", "reason": "PodNotReady"},
        {"type": "PodScheduled", "status": "True"},
    ]
    return replace(world, sandbox_events=events)


def test_a_pod_whose_networks_cannot_attach_is_vm_healthy_false_in_kubelet_words() -> None:
    """Audit s46 networks #2: CNI ADD fails, the pod has no sandbox, and the kubelet says so
    only in an Event on the pod. The Wukong said NetworksConfigured=True and, after 5
    minutes, Stalled "waiting for KubeVirt"."""
    world = sandbox_world(sandbox_event(LASTING + 1))
    verdict = vm_health(world)
    assert verdict is not None
    assert (verdict.status, verdict.reason) == (False, "PodSandboxFailed")
    assert verdict.message.startswith(
        "VM cannot start: the kubelet on node-1 cannot create the sandbox of pod "
        f"virt-launcher-web-1-vm-abcde: {SANDBOX_MESSAGE}. A network of the VM cannot be "
        "attached"
    )
    assert health_due(world) is None
    plan = decide(wukong(), STARTING_TEN_MINUTES, world, stall_after=300)
    said = cond(plan.status["conditions"], "VMHealthy")
    assert (said["status"], said["reason"]) == ("False", "PodSandboxFailed")
    warnings = [(e.reason, e.message) for e in plan.actions if isinstance(e, Emit)]
    assert ("PodSandboxFailed", said["message"]) in warnings
    stalled = cond(plan.status["conditions"], "Stalled")
    assert stalled["status"] == "True" and "is not a bridge" in stalled["message"]
    assert "waiting for KubeVirt" not in stalled["message"]


def test_the_kubelets_newest_word_is_the_one_said() -> None:
    """The kubelet retries with a back-off; what it says may change (an admin fixed one
    thing, the next fails). Timed from its first Event."""
    newer = {**sandbox_event(2, "Failed to create pod sandbox: rpc error: no space left")}
    newer["lastTimestamp"] = iso(NOW)
    verdict = vm_health(sandbox_world(sandbox_event(LASTING + 30), newer))
    assert verdict is not None and verdict.message.endswith("no space left")
    assert "network" not in verdict.message.lower()


def test_a_kubelet_retry_with_a_new_sandbox_id_says_the_same() -> None:
    """containerd names the sandbox it tore down (64 hex digits), a new one at each kubelet
    retry: the condition's message changed with it, a status write and a Warning per retry
    (noticed in session 46). The id is left out; the rest is the kubelet's words."""
    said = []
    for sandbox in ("a" * 64, "0123456789abcdef" * 4):
        message = SANDBOX_MESSAGE.replace('"4f1c"', f'"{sandbox}"')
        verdict = vm_health(sandbox_world(sandbox_event(LASTING + 1, message)))
        assert verdict is not None and sandbox not in verdict.message
        said.append(verdict.message)
    assert said[0] == said[1] and 'for sandbox "…": plugin type="multus"' in said[0]


def test_a_sandbox_failure_for_a_moment_waits_and_the_pass_comes_back_when_it_counts() -> None:
    world = sandbox_world(sandbox_event(4))
    assert vm_health(world) is None
    due = health_due(world)
    assert due is not None and LASTING - 4 <= due <= LASTING - 4 + 0.1
    plan = decide(wukong(), {"phase": "Starting"}, world)
    assert cond(plan.status["conditions"], "VMHealthy") == {}
    assert plan.requeue_after is not None and plan.requeue_after <= due
    assert vm_health(replace(world, now=NOW + timedelta(seconds=due))) is not None


def test_a_sandbox_failure_goes_once_the_pod_runs_and_says_so() -> None:
    """The Events stay an hour; once the pod runs (the VMI Scheduled, then Running) they are
    about a try that came through."""
    world = sandbox_world(sandbox_event(LASTING + 1))
    reported = decide(wukong(), {"phase": "Starting"}, world).status
    assert cond(reported["conditions"], "VMHealthy")["reason"] == "PodSandboxFailed"
    assert vm_health(sandbox_world(sandbox_event(LASTING + 1), vmi_phase="Scheduled")) is None
    running = replace(running_world(), sandbox_events=(sandbox_event(LASTING + 1),))
    plan = decide(wukong(), reported, running)
    assert cond(plan.status["conditions"], "VMHealthy") == {}
    said = [(e.type, e.reason) for e in plan.actions if isinstance(e, Emit)]
    assert ("Normal", "NoError") in said


def test_the_pass_sees_sandbox_events_about_the_vmis_pods_only() -> None:
    from tests.unit.reconcile.test_settle import Cache
    from wukong.act.reconciler import observe
    from wukong.api import kinds

    world = sandbox_world()
    ours, other = sandbox_event(20), sandbox_event(20, uid="an-earlier-pod")
    other["metadata"] = {"name": "b"}
    ours["metadata"] = {"name": "a"}
    assert world.vm is not None and world.vmi is not None
    world.vm["metadata"]["uid"] = "vm-uid"
    world.vmi["metadata"].update(
        name="web-1-vm", namespace="demo",
        ownerReferences=[{"kind": "VirtualMachine", "uid": "vm-uid", "controller": True}],
    )  # fmt: skip
    cache = Cache({
        kinds.VM.cache: [world.vm], kinds.VMI.cache: [world.vmi],
        kinds.SANDBOX_EVENT.cache: [ours, other],
    })  # fmt: skip
    seen = observe(cache, wukong(), NOW)
    assert seen.sandbox_events == (ours,) and seen.pod_events == ()


def test_a_hotplug_virt_controller_cannot_apply_is_vm_healthy_false_once_it_lasts() -> None:
    """virt-controller's SyncError HotPlugVolumeError (e.g. no free PCIe port) showed only
    as DiskHotplug=True Attaching, for good, with no warning."""
    since = iso(NOW - timedelta(seconds=LASTING + 1))
    message = "failed to patch VMI: no free PCIe port"
    failure = {
        "type": "Failure",
        "status": "True",
        "reason": "HotPlugVolumeError",
        "message": message,
        "lastTransitionTime": since,
    }
    verdict = vm_health(vm_world("Running", failure, vmi_phase="Running"))
    assert verdict is not None
    assert (verdict.status, verdict.reason) == (False, "HotPlugVolumeError")
    assert verdict.message == f"VM cannot hot-plug a disk: {message}"
    young = {**failure, "lastTransitionTime": iso(NOW - timedelta(seconds=2))}
    assert vm_health(vm_world("Running", young, vmi_phase="Running")) is None


# -- a running VMI that stays not Ready: its node lost ----------------------------------------


def not_ready_world(age: float, **ready: Any) -> Observed:
    """A running VMI whose launcher pod stopped being Ready `age` seconds ago: what the node
    lifecycle controller does to every pod of a node that stopped reporting."""
    world = vm_world("Running", vmi_phase="Running")
    assert world.vmi is not None
    since = iso(NOW - timedelta(seconds=age))
    world.vmi["status"]["conditions"] = [
        {"type": "Ready", "status": "False", "lastTransitionTime": since, **ready}
    ]
    return world


def test_a_vmi_not_ready_for_long_is_vm_healthy_false_and_says_what_to_do() -> None:
    """A node that stops reporting leaves its VMIs Running and not Ready, for as long as
    nobody deletes the node or marks it out of service: the Wukong said only Ready=False
    "the VMI is not Ready", with no Warning."""
    world = not_ready_world(NOT_READY_LASTING + 1)
    verdict = vm_health(world)
    assert verdict is not None and (verdict.status, verdict.reason) == (False, "VMINotReady")
    since = iso(NOW - timedelta(seconds=NOT_READY_LASTING + 1))
    assert verdict.message.startswith(f"VMI not Ready on node-3 since {since}: ")
    assert "its virt-launcher pod is not Ready" in verdict.message
    assert "node.kubernetes.io/out-of-service" in verdict.message
    assert vm_health(replace(world, now=NOW + timedelta(seconds=60))) == verdict  # stable
    plan = decide(wukong(), {"phase": "Running"}, world)
    assert plan.status["phase"] == "Running"
    assert cond(plan.status["conditions"], "VMHealthy")["reason"] == "VMINotReady"
    warnings = [e.reason for e in plan.actions if isinstance(e, Emit) and e.type == "Warning"]
    assert "VMINotReady" in warnings


def test_a_vmi_not_ready_for_long_gives_kubevirts_words_when_it_has_some() -> None:
    world = not_ready_world(
        NOT_READY_LASTING + 1, reason="PodTerminating", message="virt-launcher pod is terminating"
    )
    verdict = vm_health(world)
    assert verdict is not None
    assert ": virt-launcher pod is terminating. If node-3 is down" in verdict.message


def test_a_vmi_not_ready_for_a_moment_waits_and_the_pass_comes_back_when_it_would_count() -> None:
    world = not_ready_world(5)
    assert vm_health(world) is None
    due = health_due(world)
    assert due is not None and NOT_READY_LASTING - 5 <= due <= NOT_READY_LASTING - 5 + 0.1
    plan = decide(wukong(), {"phase": "Running"}, world)
    assert cond(plan.status["conditions"], "VMHealthy") == {}
    assert plan.requeue_after is not None and plan.requeue_after <= due
    assert vm_health(replace(world, now=NOW + timedelta(seconds=due))) is not None


@pytest.mark.parametrize(
    "other",
    [
        {"type": "Paused", "status": "True", "reason": "PausedByUser"},
        {"type": "Paused", "status": "True", "reason": "PausedByMigrationMonitor"},
    ],
)
def test_a_paused_vmi_is_not_ready_without_being_in_trouble(other: dict[str, Any]) -> None:
    world = not_ready_world(NOT_READY_LASTING + 100)
    assert world.vmi is not None
    world.vmi["status"]["conditions"].append(other)
    assert vm_health(world) is None and health_due(world) is None


def test_a_vmi_handed_over_by_a_migration_is_not_ready_without_being_in_trouble() -> None:
    """From the handover (the target's virt-handler names its node in the VMI) to the end,
    its Ready may be the target pod's, not Ready since that pod began."""
    world = not_ready_world(NOT_READY_LASTING + 100)
    assert world.vmi is not None
    state = {"targetNode": "node-4", "startTimestamp": iso(NOW - timedelta(seconds=200))}
    world.vmi["status"]["migrationState"] = state
    world.vmi["status"]["nodeName"] = "node-4"
    assert vm_health(world) is None and health_due(world) is None
    state |= {"completed": True}  # then timed from its end, when there is one
    assert vm_health(world) is not None


def test_a_vmi_whose_target_runs_the_domain_is_still_on_its_source() -> None:
    """Review s21 F1: the target runs the domain (targetNodeDomainReadyTimestamp) at the
    switch-over, or at the start of post-copy, but the VMI names the target only once the
    target acknowledges the end: until then its Ready is the source pod's. A source lost in
    post-copy leaves it so for good."""
    world = not_ready_world(NOT_READY_LASTING + 100)
    assert world.vmi is not None
    world.vmi["status"]["migrationState"] = {
        "targetNode": "node-4",
        "startTimestamp": iso(NOW - timedelta(seconds=200)),
        "mode": "PostCopy",
        "targetNodeDomainReadyTimestamp": iso(NOW - timedelta(seconds=150)),
    }
    verdict = vm_health(world)
    assert verdict is not None and verdict.reason == "VMINotReady"
    assert "(the migration to node-4 cannot finish then)" in verdict.message


def test_a_failed_migration_does_not_restart_the_clock() -> None:
    """Review s21 F4: the VMI never moved, so its Ready is still the source pod's."""
    world = not_ready_world(NOT_READY_LASTING + 100)
    assert world.vmi is not None
    world.vmi["status"]["migrationState"] = {
        "targetNode": "node-4",
        "completed": True,
        "failed": True,
        "endTimestamp": iso(NOW - timedelta(seconds=2)),
    }
    assert vm_health(world) is not None


def test_a_vmi_reported_on_its_source_is_timed_afresh_once_it_moved() -> None:
    """Review s21 F3: reported not Ready on the source, then moved after all (its node came
    back): the report was about the source, and kept it named the healthy target."""
    world = not_ready_world(NOT_READY_LASTING + 1)
    assert world.vmi is not None
    world.vmi["metadata"]["creationTimestamp"] = iso(NOW - timedelta(days=1))
    world.vmi["status"]["migrationState"] = {"targetNode": "node-4"}
    status = _reported(world)
    before = next(c for c in status.conditions if c.type == "VMHealthy")
    moved = not_ready_world(200, reason="ContainersNotReady")  # the target pod's, since it began
    assert moved.vmi is not None
    moved.vmi["metadata"]["creationTimestamp"] = iso(NOW - timedelta(days=1))
    later = NOW + timedelta(seconds=5)
    moved.vmi["status"] |= {
        "nodeName": "node-4",
        "migrationState": {"targetNode": "node-4", "completed": True, "endTimestamp": iso(later)},
    }
    assert vm_health(replace(moved, now=later), before) is None
    handing = not_ready_world(200)
    assert handing.vmi is not None
    handing.vmi["metadata"]["creationTimestamp"] = iso(NOW - timedelta(days=1))
    handing.vmi["status"] |= {"nodeName": "node-4", "migrationState": {"targetNode": "node-4"}}
    assert vm_health(handing, before) is None


def test_a_vmi_not_ready_on_the_source_of_a_migration_is_its_nodes_trouble() -> None:
    """The source node lost in the middle of a migration: virt-handler there neither sends
    the domain nor gives up, so the migration never ends, and the source pod, marked not
    Ready, is the VMI's Ready. The Wukong said nothing but the migration's phase."""
    world = not_ready_world(NOT_READY_LASTING + 1)
    assert world.vmi is not None
    started = iso(NOW - timedelta(seconds=NOT_READY_LASTING + 20))
    world.vmi["status"]["migrationState"] = {"targetNode": "node-4", "startTimestamp": started}
    verdict = vm_health(world)
    assert verdict is not None and verdict.reason == "VMINotReady"
    assert "If node-3 is down (the migration to node-4 cannot finish then), " in verdict.message
    young = not_ready_world(5)
    assert young.vmi is not None
    young.vmi["status"]["migrationState"] = {"targetNode": "node-4", "startTimestamp": started}
    assert vm_health(young) is None
    due = health_due(young)
    assert due is not None and NOT_READY_LASTING - 5 <= due <= NOT_READY_LASTING - 5 + 0.1


def test_a_vmi_whose_pod_went_away_while_it_ran_does_not_say_it_was_never_scheduled() -> None:
    """What virt-controller does when a running VMI's pod is gone (force-deleted off a lost
    node, say): Failed with no reason, and Ready's PodNotExists "virt-launcher pod has not yet
    been scheduled", which the Wukong repeated for a VM that had run for days."""
    world = vm_world("Stopped", vmi_phase="Failed")
    assert world.vmi is not None
    world.vmi["status"]["conditions"] = [
        {
            "type": "Ready",
            "status": "False",
            "reason": "PodNotExists",
            "message": "virt-launcher pod has not yet been scheduled",
        }
    ]
    verdict = vm_health(world)
    assert verdict is not None and verdict.reason == "VMIFailed"
    assert verdict.message == (
        "VMI failed on node-3: its virt-launcher pod is gone (deleted, evicted, or its node lost)"
    )


def test_a_vmi_being_stopped_is_not_ready_without_being_in_trouble() -> None:
    """virt-controller deletes a deleted VMI's launcher pod at once (lifecycle.go), so the VMI
    is not Ready, PodTerminating, for as long as a guest that ignores ACPI takes to stop."""
    world = not_ready_world(
        NOT_READY_LASTING + 100, reason="PodTerminating", message="virt-launcher pod is terminating"
    )
    assert world.vmi is not None
    world.vmi["metadata"]["deletionTimestamp"] = iso(NOW - timedelta(seconds=NOT_READY_LASTING))
    assert vm_health(world) is None and health_due(world) is None


def test_a_vmi_just_resumed_after_a_long_pause_is_not_in_trouble() -> None:
    """On unpause virt-handler drops Paused first; the pod's readiness gate, its Ready and the
    VMI's copy follow in later writes, still dated from when the pause began."""
    world = not_ready_world(
        NOT_READY_LASTING + 600,
        reason="ReadinessGatesNotReady",
        message='the status of pod readiness gate "kubevirt.io/virtual-machine-unpaused" is '
        'not "True", but False',
    )
    assert vm_health(world) is None and health_due(world) is None


def test_a_migrated_vmi_is_timed_from_the_migrations_end() -> None:
    """After the switch the VMI's Ready is the target pod's, not Ready since that pod began."""
    world = not_ready_world(NOT_READY_LASTING + 60)
    assert world.vmi is not None
    ended = NOW - timedelta(seconds=2)
    world.vmi["status"]["migrationState"] = {"completed": True, "endTimestamp": iso(ended)}
    assert vm_health(world) is None
    due = health_due(world)
    assert due is not None and NOT_READY_LASTING - 2 <= due <= NOT_READY_LASTING - 2 + 0.1


def _reported(world: Observed) -> WukongStatus:
    """The status a pass wrote once the VMI's not being Ready had lasted."""
    written = decide(wukong(), {"phase": "Running"}, world).status
    assert cond(written["conditions"], "VMHealthy")["reason"] == "VMINotReady"
    return WukongStatus.model_validate(written)


def test_a_reported_vmi_stays_reported_when_kubevirt_restarts_its_clock() -> None:
    """A lost node's pod evicted: KubeVirt replaces the VMI's Ready condition, reason
    PodTerminating, dated now. Counting 30 s again cleared VMHealthy, with a Normal NoError,
    and warned again 30 s later."""
    world = not_ready_world(NOT_READY_LASTING + 300)
    assert world.vmi is not None
    world.vmi["metadata"]["creationTimestamp"] = iso(NOW - timedelta(days=3))
    status = _reported(world)
    evicted = not_ready_world(
        1, reason="PodTerminating", message="virt-launcher pod is terminating"
    )
    assert evicted.vmi is not None
    evicted.vmi["metadata"]["creationTimestamp"] = iso(NOW - timedelta(days=3))
    before = next(c for c in status.conditions if c.type == "VMHealthy")
    verdict = vm_health(evicted, before)
    assert verdict is not None and verdict.reason == "VMINotReady"
    assert "virt-launcher pod is terminating" in verdict.message
    plan = decide(wukong(), status.to_wire(), evicted)
    assert cond(plan.status["conditions"], "VMHealthy")["reason"] == "VMINotReady"
    reasons = [e.reason for e in plan.actions if isinstance(e, Emit)]
    assert "VMINotReady" not in reasons and "NoError" not in reasons


def test_a_new_vmi_is_not_reported_for_the_old_ones_trouble() -> None:
    world = not_ready_world(NOT_READY_LASTING + 300)
    status = _reported(world)
    before = next(c for c in status.conditions if c.type == "VMHealthy")
    booting = not_ready_world(1)
    assert booting.vmi is not None
    booting.vmi["metadata"]["creationTimestamp"] = iso(NOW + timedelta(seconds=1))
    assert vm_health(booting, before) is None


def test_a_stop_on_a_lost_node_keeps_the_trouble_reported() -> None:
    """The stop deletes the VMI, whose pod cannot go: no Normal NoError while it hangs."""
    world = not_ready_world(NOT_READY_LASTING + 300)
    assert world.vmi is not None
    world.vmi["metadata"]["creationTimestamp"] = iso(NOW - timedelta(days=3))
    status = _reported(world)
    before = next(c for c in status.conditions if c.type == "VMHealthy")
    world.vmi["metadata"]["deletionTimestamp"] = iso(NOW)
    verdict = vm_health(world, before)
    assert verdict is not None and verdict.reason == "VMINotReady"
    world.vmi["status"]["conditions"][0]["status"] = "True"
    assert vm_health(world, before) is None


def test_networks_and_volumes_are_said_unknown_while_the_spec_is_invalid() -> None:
    """SPEC §8: NetworksConfigured and VolumesBound are always present. A Wukong invalid from
    its creation had neither, and one made invalid later kept saying True of the spec
    before (found by review, session 37). Said by SpecValid: no Warning of their own."""
    both = [
        {"name": "system", "size": "10Gi", "boot": True},
        {"name": "data", "size": "1Gi", "boot": True},
    ]
    invalid = wukong(disks=both)
    plan = decide(invalid, {}, ready_children())
    conds = plan.status["conditions"]
    assert cond(conds, "SpecValid")["status"] == "False"
    for type_ in ("NetworksConfigured", "VolumesBound"):
        said = cond(conds, type_)
        assert (said["status"], said["reason"]) == ("Unknown", "NotEvaluated"), said
        assert "the spec is invalid" in said["message"]
    warned = [a.reason for a in plan.actions if isinstance(a, Emit) and a.type == "Warning"]
    assert "NotEvaluated" not in warned
    # Valid first, then made invalid: the True of the spec before does not stand.
    valid = decide(wukong(), {}, ready_children())
    assert cond(valid.status["conditions"], "VolumesBound")["status"] == "True"
    later = decide(invalid, valid.status, ready_children())
    assert cond(later.status["conditions"], "VolumesBound")["status"] == "Unknown"


def rbac(verb: str, resource: str, group: str) -> str:
    """kube-apiserver's authorizer refusing the operator's ServiceAccount (forbiddenMessage)."""
    return (
        f'{resource.split("/")[0]}.{group} "web-1-vm" is forbidden: User '
        f'"system:serviceaccount:wukong-system:wukong" cannot {verb} resource "{resource}" '
        f'in API group "{group}" in the namespace "demo"'
    )


SA = "system:serviceaccount:wukong-system:wukong"
DOCS = 'its RBAC is incomplete, see docs/install.md "Permissions"'


@pytest.mark.parametrize("kind", ["transient", "permanent"])
def test_the_operators_own_rbac_refusing_a_child_says_so_not_kubevirt_nor_the_spec(
    kind: Literal["transient", "permanent"],
) -> None:
    """Audit leftovers, session 50: an RBAC 403 to the operator (its ServiceAccount lacking a
    verb) was "KubeVirt refused to unplug disk logs: …" or "the API server refused to update
    …", and a ChildRefused Warning, as if a webhook refused the user's spec. It is the
    installation: said so, naming the missing permission. (The executor takes an unplug's as
    transient, session 32; a child's write's as permanent: said the same either way.)"""
    unplug = RemoveVolume("web-1-vm", "logs")
    denied = rbac("update", "virtualmachines/removevolume", "subresources.kubevirt.io")
    verdict, events, retry = admitted({unplug: Failed(kind, denied, 403)}, [])
    assert (verdict["status"], verdict["reason"]) == ("False", "Refused")
    assert verdict["message"] == (
        f"the operator may not unplug disk logs: its ServiceAccount ({SA}) lacks update on "
        f"virtualmachines/removevolume (API group subresources.kubevirt.io); {DOCS}"
    )
    assert events == [Emit("Warning", "ChildRefused", verdict["message"])] and retry == 1.0
    patch = PatchChild("VirtualMachine", "web-1-vm", {"spec": {}}, "template", uid="web-1-vm-uid")
    verdict, _, _ = admitted(
        {patch: Failed(kind, rbac("patch", "virtualmachines", "kubevirt.io"), 403)}, []
    )
    assert verdict["message"] == (
        f"the operator may not update VirtualMachine web-1-vm: its ServiceAccount ({SA}) lacks "
        f"patch on virtualmachines (API group kubevirt.io); {DOCS}"
    )
    missing = rbac("patch", "virtualmachines", "kubevirt.io") + (
        ': RBAC: clusterrole.rbac.authorization.k8s.io "wukong-operator" not found'
    )
    verdict, _, _ = admitted({patch: Failed(kind, missing, 403)}, [])
    assert verdict["message"].endswith(
        "lacks patch on virtualmachines (API group kubevirt.io) (RBAC: clusterrole.rbac."
        f'authorization.k8s.io "wukong-operator" not found); {DOCS}'
    )
    core = rbac("create", "persistentvolumeclaims", "")
    verdict, _, _ = admitted({PVC: Failed(kind, core, 403)}, [])
    assert "may not create PersistentVolumeClaim web-1-data" in verdict["message"]
    assert "lacks create on persistentvolumeclaims;" in verdict["message"]


@pytest.mark.parametrize(
    "denied",
    [
        'admission webhook "vm.example" denied the request: User "bob" cannot patch resource "x"',
        "ValidatingAdmissionPolicy 'no-gpus' with binding 'all' denied request: no GPUs",
        'persistentvolumeclaims "web-1-data" is forbidden: exceeded quota: disks, requested: '
        "requests.storage=100Gi, used: requests.storage=0, limited: requests.storage=10Gi",
    ],
    ids=["webhook", "policy", "quota"],
)
def test_a_403_that_judges_the_request_is_still_the_api_server_refusing_it(denied: str) -> None:
    verdict, _, _ = admitted({PVC: Failed("permanent", denied, 403)}, [])
    assert verdict["message"] == (
        f"the API server refused to create PersistentVolumeClaim web-1-data: {denied}"
    )
