"""Facts describing a cluster that agrees with each phase: the phase is stable under them."""

from dataclasses import replace

from wukong.fsm import Facts, Phase

UP = Facts(
    vm_exists=True,
    want_running=True,
    run_strategy="Always",
    vmi_exists=True,
    vmi_phase="Running",
    vmi_ready=True,
)
PAUSED = replace(UP, vmi_paused=True)
HALTED = Facts(vm_exists=True, run_strategy="Halted")

WORLD: dict[Phase, Facts] = {
    Phase.Pending: Facts(spec_valid=False),
    Phase.Creating: Facts(),
    Phase.Starting: replace(UP, vmi_phase="Scheduling", vmi_ready=False),
    Phase.Running: UP,
    Phase.Stopping: replace(UP, want_running=False, run_strategy="Halted"),
    Phase.Stopped: HALTED,
    Phase.Restarting: UP,
    Phase.Suspending: UP,
    Phase.Suspended: PAUSED,
    Phase.Resuming: PAUSED,
    Phase.Deleting: replace(UP, deleting=True),
    Phase.Error: replace(UP, run_strategy="Manual", vmi_phase="Failed", vmi_ready=False),
}
