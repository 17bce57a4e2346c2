"""The simulator's KubeVirt contract, checked against KubeVirt itself.

test_simulator.py pins down what our simulator answers for KubeVirt's run-strategy table,
virt-api's wrong-state refusals (its own 409s and their messages), pause, hot-plug through the
VM, graceful stop with and without ACPI, a guest crash under RerunOnFailure, and the guest-agent
GETs. In real mode (the default) the same tests run here a second time against KubeVirt's own
virt-api and virt-controller, with the simulator playing only the node: where KubeVirt answers
differently, the contract (and so the simulator) was wrong. In sim mode this module defines no
tests: test_simulator.py already runs them against the simulator.

Two contract tests disagree with KubeVirt and are not run here until resolved (listed in
docs/kubevirt-fidelity.md): a paused VM's `status.ready` (KubeVirt keeps it True here: the
node's kubelet does not yet turn the launcher pod's `kubevirt.io/virtual-machine-unpaused`
readiness gate into pod readiness as a real kubelet would), and the ACPI stop's speed (the
real stop path, pod termination and finalizers included, takes ~2 s, not the simulator's
< 1.5 s).
"""

from __future__ import annotations

from tests.integration import test_simulator as contract
from tests.integration.conftest import kubevirt_mode
from tests.integration.scenario import sim

__all__ = ["sim"]  # the node-only simulator next to real KubeVirt (scenario.sim)

if kubevirt_mode() == "real":
    test_run_strategy_table_and_virt_apis_own_409s = (
        contract.test_start_stop_restart_through_the_api_server_follow_the_run_strategy_table
    )
    test_manual_vm_is_driven_by_state_change_requests = (
        contract.test_manual_vm_is_driven_by_state_change_requests
    )
    test_a_crashed_guest_is_restarted_under_rerun_on_failure = (
        contract.test_rerun_on_failure_restarts_after_a_crash_but_not_after_a_guest_shutdown
    )
    test_filesystemlist_through_virt_api_and_virt_handler = (
        contract.test_filesystemlist_reports_guest_mounts_and_fails_as_text_without_agent
    )
    test_deleting_a_vm_stops_its_vmi_gracefully = (
        contract.test_deleting_a_vm_stops_its_vmi_gracefully_before_the_vm_goes
    )
