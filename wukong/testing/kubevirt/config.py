"""Knobs of the simulator and the annotations tests put on objects to steer it."""

from __future__ import annotations

from dataclasses import dataclass, field

# Annotations read from a VirtualMachine (or its VMI) / DataVolume. Only the simulator knows them.
ANN_IGNORE_ACPI = "sim.kubevirt.io/ignore-acpi"  # "true": guest ignores ACPI, stop waits the grace
# "true": virt-handler kills a guest that ignored ACPI only KILL_LATE seconds after the grace
# period (a node slow to act), a forced stop (grace 0) at once: what the operator's own
# escalation is for, with no race against the kill.
ANN_KILL_LATE = "sim.kubevirt.io/kill-late"
KILL_LATE = 10.0
ANN_FAIL = "sim.kubevirt.io/fail"  # "true": the VMI fails (at boot, or at once when running)
ANN_UNSCHEDULABLE = "sim.kubevirt.io/unschedulable"  # "true": the VMI never leaves Scheduling
ANN_NO_AGENT = "sim.kubevirt.io/no-agent"  # "true": the guest agent never connects
ANN_FAIL_IMPORT = "sim.kubevirt.io/fail-import"  # "true" on a DataVolume: the import fails
# On a NetworkAttachmentDefinition: its CNI ADD fails with this text, so a pod naming it gets
# no sandbox (the kubelet's FailedCreatePodSandBox) until the annotation goes (cni.py).
ANN_FAIL_ATTACH = "sim.kubevirt.io/fail-attach"

NODE_NAME = "node-1"


@dataclass
class SimConfig:
    """Delays are seconds; every one may be 0. Defaults keep a VM boot under half a second."""

    schedule_delay: float = 0.05  # Pending -> Scheduling -> Scheduled, each
    boot_delay: float = 0.1  # Scheduled -> Running
    guest_boot_delay: float = 0.1  # Running -> IP addresses reported
    agent_delay: float = 0.05  # after the IPs: AgentConnected, guestOSInfo
    acpi_shutdown_delay: float = 0.1  # a guest that honours ACPI powers off this fast
    hotplug_step_delay: float = 0.05  # volumeStatus Bound -> MountedToPod -> Ready
    migration_step_delay: float = 0.3  # each step of a live migration on the nodes
    bind_delay: float = 0.05  # PVC Pending -> Bound
    resize_step_delay: float = 0.05  # Resizing -> FileSystemResizePending -> capacity grown
    import_steps: int = 4  # progress updates between 0% and 100%
    import_step_delay: float = 0.1
    import_retry_delay: float = 0.2  # failing importer restarts this often (min 0.05)
    acpi: bool = True  # default guest behaviour; VM annotation ANN_IGNORE_ACPI overrides
    agent: bool = True  # guests run a guest agent unless ANN_NO_AGENT
    # A URL containing one of these fails like an unreachable source.
    failing_import_markers: tuple[str, ...] = ("bad", "notfound")
    # "retry" (real CDI: ImportInProgress, restartCount grows) or "fail" (phase Failed).
    import_failure_mode: str = "retry"
    # Real CSI drivers finish a filesystem resize only once a pod mounts the claim.
    expansion_waits_for_consumer: bool = False
    crash_loop_base_delay: float = 0.2  # KubeVirt uses 10 s * failures^2, capped at 300 s
    # virt-handler resumes a guest QEMU paused on a disk error after this, doubling while the
    # error lasts up to 180 s (KubeVirt: 10 s, the ioErrorRetryManager in pkg/virt-handler/vm.go)
    io_error_retry_delay: float = 0.2
    # virt-handler's pause answers once libvirt paused the domain; the VMI's Paused condition
    # follows on its next sync of the domain (pkg/virt-handler/vm.go), this much later. With
    # real KubeVirt only: the pure simulator's virt-api writes it before it answers.
    pause_report_delay: float = 0.1
    # virt-launcher answers filesystemlist (and guestosinfo's fsInfo) from its cache of the
    # guest agent's report, refreshed this often (KubeVirt: 300 s, --qemu-agent-file-interval;
    # agent_poller.go): a mount since the last refresh is not in it. The operator under test
    # is told the same interval (InProcessOperator's default).
    guest_report_interval: float = 1.0
    node_name: str = NODE_NAME
    # With real KubeVirt: the nodes pods are scheduled on, and extra labels per node.
    nodes: tuple[str, ...] = (NODE_NAME, "node-2")
    node_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    # VMI and pod addresses are PREFIX.x.y. In 127/8 (this machine's loopback) each running
    # guest listens on its address (guest_net.py), so virt-api's port-forward reaches it.
    pod_cidr_prefix: str = "10.244"
    # Storage classes installed at start: name -> (binding mode, allowVolumeExpansion, default).
    storage_classes: dict[str, tuple[str, bool, bool]] = field(
        default_factory=lambda: {
            "standard": ("Immediate", True, True),
            "fast": ("Immediate", True, False),
            "slow-wffc": ("WaitForFirstConsumer", True, False),
            "fixed": ("Immediate", False, False),
        }
    )
    serve_subresources: bool = True  # run the aggregated subresources.kubevirt.io server
    finalizers: bool = True  # put KubeVirt's finalizers on VMs/VMIs (released on stop())
    api_timeout: float = 30.0  # how long start() waits for the APIService to be Available
