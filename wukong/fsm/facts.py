"""What the state machine's guards read: one frozen snapshot of the cluster per pass.

The reconciler computes a `Facts` from the Wukong, its VirtualMachine and VMI and its
disks; the machine only reads it. `Facts()` means "nothing exists yet, the spec is fine".
Derived guards (`vmi_gone`, `vmi_up`, ...) are properties so the transition table and the
Mermaid diagram name them exactly like the raw facts.
"""

from __future__ import annotations

from dataclasses import dataclass

# VMI phases after which the VMI will never run again (KubeVirt's "final" phases).
FINAL_VMI_PHASES = frozenset({"Succeeded", "Failed"})
# A fresh VMI on its way up: seen while Running, it means the VM restarted under us.
BOOTING_VMI_PHASES = frozenset({"Pending", "Scheduling", "Scheduled"})
# Run strategies under which KubeVirt itself brings a stopped VMI back.
SELF_RESTARTING_RUN_STRATEGIES = frozenset({"Always"})


@dataclass(frozen=True)
class Facts:
    """Observed facts about one Wukong and its children, as of this pass."""

    deleting: bool = False
    """metadata.deletionTimestamp is set."""
    spec_valid: bool = True
    """The spec passed the operator's own validation (beyond the CRD schema)."""
    children_ready: bool = False
    """Networks configured and disks bound/imported (informational for the reconciler)."""
    provisioning_failed: bool = False
    """A child the VM needs failed for good, e.g. a DataVolume import failed."""
    vm_exists: bool = False
    """The KubeVirt VirtualMachine `<name>-vm` exists and is not being deleted."""
    vm_was_seen: bool = False
    """The last status named a VM: one existed (a Wukong in Error may never have had one)."""
    want_running: bool = False
    """Desired run state from runStrategy/autoStart and the last lifecycle request."""
    run_strategy: str | None = None
    """The VM's current spec.runStrategy, None when there is no VM."""
    vmi_exists: bool = False
    """A VirtualMachineInstance exists (in any phase)."""
    vmi_phase: str | None = None
    """VMI status.phase: Pending|Scheduling|Scheduled|Running|Succeeded|Failed|Unknown."""
    vmi_ready: bool = False
    """The VMI's Ready condition is True."""
    vmi_paused: bool = False
    """The VMI's Paused condition is True because its user paused it (a suspend)."""
    vmi_paused_otherwise: bool = False
    """KubeVirt paused the VMI itself: QEMU on a disk I/O error, or a migration converging."""
    vmi_restarted: bool = False
    """A VMI newer than the one seen when the restart was requested is present."""
    stop_deadline_passed: bool = False
    """The graceful stop/restart deadline (gracePeriodSeconds) has expired."""
    force_issued: bool = False
    """A forced stop/restart was already issued for the current request: escalate once."""
    left_off: bool = False
    """KubeVirt reports the VM Stopped with nothing pending under Manual or RerunOnFailure,
    and no start of ours is to follow: nothing will start the guest (someone stopped it
    with `virtctl stop` while it restarted)."""
    start_pending: bool = False
    """KubeVirt has a Start request pending on the VM (a restart's second step, under Manual
    or RerunOnFailure): a VMI gone now is made again."""
    start_refused: bool = False
    """KubeVirt refused the start a forced restart owed after its forced stop."""
    call_refused: bool = False
    """KubeVirt refused the call of the request recorded before this pass (lifecycleState
    Failed, read from the stored record so a request sent meanwhile does not hide it), and
    the VMI is still the one that request was made for: nothing changed. A request the
    machine accepts in this pass clears it (`machine._request`)."""

    @property
    def vmi_final(self) -> bool:
        """The VMI exists but has ended (Succeeded or Failed)."""
        return self.vmi_exists and self.vmi_phase in FINAL_VMI_PHASES

    @property
    def vmi_gone(self) -> bool:
        """No VMI runs: none exists, or it has ended."""
        return not self.vmi_exists or self.vmi_phase in FINAL_VMI_PHASES

    @property
    def vmi_alive(self) -> bool:
        """A VMI exists and has not ended (booting, running or unknown)."""
        return not self.vmi_gone

    @property
    def vmi_booting(self) -> bool:
        """A VMI exists and is still on its way to Running."""
        return self.vmi_exists and self.vmi_phase in BOOTING_VMI_PHASES

    @property
    def vmi_up(self) -> bool:
        """The guest runs and serves: VMI Running, Ready and not paused."""
        return (
            self.vmi_exists
            and self.vmi_phase == "Running"
            and self.vmi_ready
            and not self.vmi_paused
        )

    @property
    def guest_unsuspended(self) -> bool:
        """A VMI runs that its user has not paused (Ready or not: KubeVirt may pause it)."""
        return self.vmi_exists and self.vmi_phase == "Running" and not self.vmi_paused

    @property
    def guest_paused(self) -> bool:
        """The running VMI is paused (a stale Paused flag on a gone VMI means nothing)."""
        return self.vmi_exists and self.vmi_phase == "Running" and self.vmi_paused

    @property
    def vmi_failed(self) -> bool:
        """The VMI failed while the user wanted it running (a failure after a stop is a stop)."""
        return self.vmi_exists and self.vmi_phase == "Failed" and self.want_running

    @property
    def kubevirt_restarts(self) -> bool:
        """KubeVirt will bring a vanished VMI back by itself: runStrategy Always, or a Start
        pending on the VM (KubeVirt's own restart under Manual or RerunOnFailure: virtctl
        restart, a crash under RerunOnFailure). Read as a stop, the gap between the old VMI
        and the new one wrote a false VMIStopped/VMIStarted pair, and a stop sent in it was
        refused "already stopped" while the VM came back (audit, session 43)."""
        return self.run_strategy in SELF_RESTARTING_RUN_STRATEGIES or self.start_pending

    @property
    def vm_should_run(self) -> bool:
        """The new VM is meant to run, or already does."""
        return self.want_running or self.vmi_alive
