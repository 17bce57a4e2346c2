"""What the operator reports: `Wukong.status` (SPEC §1), written only through the subresource.

No field here has a schema default: the API server would fill it in, and the operator would
then see a status that differs from the one it computed and write it again.
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import Field

from wukong.api._base import Timestamp, WireModel
from wukong.api.conditions import HISTORY_LIMIT, Condition, Transition


def _bounded(limit: int, **extra: Any) -> Any:
    return Field(max_length=limit, json_schema_extra=extra or None)


MAX_INTERFACES = 16
"""status.interfaces holds at most this many (the Wukong has at most 9 networks)."""


class InterfaceStatus(WireModel):
    """A guest network interface as the VMI reports it."""

    name: str
    """Network name (the pod network is 'default')."""
    ip_address: str | None = None
    """Primary address, no prefix length."""
    ip_addresses: list[str] = Field(default_factory=list)
    """All addresses."""
    mac: str | None = None
    """MAC address."""


class VolumeStatus(WireModel):
    """A disk's claim, binding, attachment and import progress."""

    name: str
    """Disk name."""
    pvc_name: str | None = None
    """The PersistentVolumeClaim behind the disk."""
    size: str | None = None
    """Requested size."""
    capacity: str | None = None
    """Size the PVC reports."""
    bound: bool = False
    """The PVC is Bound."""
    attached: bool = False
    """The disk is in the VM."""
    hotplugged: bool = False
    """The disk was hot-plugged into a running VM."""
    phase: str | None = None
    """DataVolume or volume phase, e.g. ImportInProgress, Ready."""
    progress: str | None = None
    """Import progress as CDI reports it, e.g. '45.10%'."""
    message: str | None = None
    """Why the disk is not usable (CDI's import error, an expansion refusal, a mount)."""
    expansion_refused: str | None = None
    """A size the API server refused to grow the claim to; not asked again until the spec
    asks for another size."""
    preserve_data: bool | None = None
    """detachOptions.preserveData, remembered for when the disk leaves the spec."""
    force_detach: bool | None = None
    """detachOptions.force, remembered for when the disk leaves the spec."""
    unmounted_since: Timestamp | None = None
    """Leaving the spec: when the guest agent's report first showed the disk unmounted.
    KubeVirt refreshes that report every few minutes, so it may predate the detach: the
    disk is unplugged once a report made after the detach was asked shows it unmounted."""
    seen_mounted: bool | None = None
    """Leaving the spec: a report showed the disk mounted. A later one that shows it
    unmounted was made since (the report changed), so after the detach was asked."""


class NetworkStatus(WireModel):
    """Which NAD a network uses and whether the operator owns it."""

    name: str
    """Network name."""
    nad_name: str | None = None
    """The NetworkAttachmentDefinition used."""
    owned_by_wukong: bool = False
    """The operator created the NAD and deletes it with the Wukong."""
    config_changed: Timestamp | None = None
    """When the operator last changed its NAD's config (bridge, VLAN, MTU)."""
    changed_under: str | None = Field(None, max_length=64)
    """The uid of the VMI that ran then: its pod keeps the old config until the VM restarts
    or migrates (Multus reads a NAD when a pod starts)."""


class LifecycleState(WireModel):
    """The answer to the last spec.lifecycleAction."""

    state: str | None = None
    """Where the request stands, e.g. InProgress, Done, Refused."""
    last_action: str | None = None
    """The action last executed."""
    last_action_time: Timestamp | None = None
    """When it was executed."""
    message: str | None = None
    """What happened, or why it was refused."""
    generation: int | None = None
    """The metadata.generation of the request this answers; each runs once."""
    deadline: Timestamp | None = None
    """When a graceful stop turns into a forced one."""
    request_id: str | None = None
    """Fingerprint of the lifecycleAction answered; a request runs once per fingerprint."""
    issued: bool | None = None
    """The KubeVirt call was made (false: accepted, call pending on the next pass)."""
    call: str | None = None
    """The call the state machine asked for when it accepted the request (e.g. STOP_VM);
    made on the next pass. A forced restart made as a forced stop records FORCE_STOP_VM,
    then START_VM for the start it owes under Manual and RerunOnFailure."""
    force: bool | None = None
    """The request asked for an immediate power-off."""
    grace_period_seconds: int | None = None
    """Graceful shutdown window of the request."""
    vmi_uid: str | None = None
    """UID of the VMI when the request was accepted: a different one means it restarted."""
    escalated: bool | None = None
    """The grace period ran out and a forced stop was issued."""
    forced_at: Timestamp | None = None
    """When the grace period ran out and the guest was first forced off (with a
    GracePeriodExpired Warning); a forced call that failed is made again without another."""


class DeletionStatus(WireModel):
    """Progress of the deletion flow."""

    step: str | None = None
    """The current step: CancelMigration, CancelRestore, WaitForRestore, Retain, StopVM,
    DeleteVM, DeleteDisks, DeleteNetworks, Finalize; or
    Blocked while the deletion-protection annotation holds it (nothing is touched); or
    Orphaning while the garbage collector orphans the children of a delete with
    propagationPolicy Orphan (nothing is touched before)."""
    remaining: list[str] = Field(default_factory=list)
    """Objects still to delete."""
    kept: list[str] = Field(default_factory=list)
    """Objects kept on purpose (preserved disks)."""
    message: str | None = None
    """What is happening or blocking."""
    started_at: Timestamp | None = None
    """When the deletion began."""
    step_since: Timestamp | None = None
    """When the current step began (a step that overruns raises Stalled)."""
    stop_deadline: Timestamp | None = None
    """When the graceful VM stop turns into a forced one."""
    forced: bool | None = None
    """The VM was powered off after the grace period."""
    grace_period_seconds: int | None = None
    """The graceful stop's window: deleteOptions.gracePeriodSeconds (60 s by default), cut
    to end 5 s before Kubernetes would end the VM's pod."""
    orphaned: bool | None = None
    """The deletion went through Orphaning (propagationPolicy Orphan): from then on only what
    still has an ownerReference to the Wukong is its to delete. Kept for good: the garbage
    collector removes the finalizer `orphan`, never the labels of a disk held for a keep
    (deletion audit, session 48, finding 2)."""
    refused_releases: list[str] = Field(default_factory=list)
    """DataVolumes of kept disks CDI would not let go: its webhook checks a clone's source on
    every change of a DataVolume and refuses them all once the DataSource or the namespace
    it cloned from is gone. Their claims are kept, with the data; they are deleted."""


class ApartAnswer(WireModel):
    """A request answered in a status field of its own (migrate, snapshot, restore): the
    one accepted last, and a later one refused while it ran."""

    request_id: str | None = None
    """Fingerprint of the lifecycleAction answered; a request runs once per fingerprint."""
    result: str | None = None
    """Refused, Succeeded or Failed, once there is one."""
    message: str | None = None
    """What happened, or why it was refused."""
    refusal: str | None = None
    """Why the last request was refused: requestId's, or refusedRequestId's when it came
    while this one ran."""
    refused_request_id: str | None = None
    """Fingerprint of a request refused while this one ran (requestId stays this one's, so
    whoever waits for it still finds its answer)."""
    started_at: Timestamp | None = None
    """When the request was accepted."""
    ended_at: Timestamp | None = None
    """When it ended."""

    def answers(self, request_id: str) -> bool:
        """Whether `request_id` was answered here already (accepted, or refused beside)."""
        return request_id in (self.request_id, self.refused_request_id)

    def refused_beside(self, request_id: str, why: str) -> Self:
        """This request going on, and `request_id`, asked meanwhile, refused for `why`."""
        return self.model_copy(update={"refused_request_id": request_id, "refusal": why})


class MigrationStatus(ApartAnswer):
    """The live migration last requested (lifecycleAction migrate) and how it went."""

    name: str | None = None
    """The VirtualMachineInstanceMigration carrying it."""
    uid: str | None = None
    """Its uid, once seen: the VMI's migrationState names the migration by it, and keeps
    how it ended after the object is deleted (virtctl migrate-cancel deletes it)."""
    phase: str | None = None
    """KubeVirt's migration phase: Pending, Scheduling, ..., Running, Succeeded, Failed."""
    source_node: str | None = None
    """The node the VM ran on."""
    target_node: str | None = None
    """The node it moves to."""


class SnapshotStatus(ApartAnswer):
    """The VM snapshot last requested (lifecycleAction snapshot) and how it went."""

    name: str | None = None
    """The VirtualMachineSnapshot carrying it (it outlives the Wukong, as KubeVirt's own
    snapshots outlive their VM)."""
    uid: str | None = None
    """Its uid, once seen: gone after that means deleted."""
    phase: str | None = None
    """KubeVirt's snapshot phase: InProgress, Succeeded, Failed."""
    ready_to_use: bool | None = None
    """KubeVirt's readyToUse: every volume's snapshot is taken."""
    indications: Annotated[list[str], _bounded(8)] = Field(default_factory=list)
    """How KubeVirt took it: Online, GuestAgent (the guest's filesystems frozen), NoGuestAgent
    (crash-consistent), Paused, QuiesceFailed."""
    left_out: Annotated[list[str], _bounded(64)] = Field(default_factory=list)
    """Volumes KubeVirt left out (no VolumeSnapshotClass for their StorageClass, say)."""


class RestoreStatus(ApartAnswer):
    """The restore last requested (lifecycleAction restore) and how it went."""

    name: str | None = None
    """The VirtualMachineRestore carrying it."""
    uid: str | None = None
    """Its uid, once seen: gone after that means deleted."""
    snapshot: str | None = None
    """The VirtualMachineSnapshot restored."""
    phase: str | None = None
    """StoppingVM (a running VM is stopped first), WaitingForVMI, Restoring (KubeVirt
    replaces the disks and the VM's spec), Succeeded, Failed."""
    start_after: bool | None = None
    """The VM ran when the restore was asked: the operator stopped it for the restore and
    starts it again once the disks are restored."""
    lost_claims: Annotated[list[str], _bounded(64)] | None = None
    """Set when it ended without completing: the claims of the spec's disks missing then
    (KubeVirt deletes a claim before making it again from the snapshot). Only those are
    held as `RestoreIncomplete`; a claim deleted by hand afterwards is another story."""


class WukongStatus(WireModel):
    """Everything the operator observed and decided, for kubectl get/describe."""

    phase: str | None = None
    """The state machine's state: Pending, Creating, Running, Stopped, ..."""
    observed_generation: int | None = None
    """The last metadata.generation fully reconciled."""
    vm_name: str | None = None
    """The VirtualMachine's name."""
    auto_start: bool | None = None
    """spec.startStrategy.autoStart as it was when the VM was first seen: whether it runs
    until the first lifecycle request. A later edit of the spec's changes nothing."""
    node_name: str | None = None
    """The node the VM runs on."""
    interfaces: Annotated[list[InterfaceStatus], _bounded(MAX_INTERFACES)] = Field(
        default_factory=list
    )
    """Guest interfaces and their addresses."""
    volumes: Annotated[list[VolumeStatus], _bounded(64)] = Field(default_factory=list)
    """Disks, including ones still being detached."""
    networks: Annotated[list[NetworkStatus], _bounded(16)] = Field(default_factory=list)
    """Networks and their NADs."""
    lifecycle_state: LifecycleState | None = None
    """The answer to the last lifecycle action."""
    deletion: DeletionStatus | None = None
    """Progress while deleting."""
    migration: MigrationStatus | None = None
    """The last live migration (lifecycleAction migrate)."""
    snapshot: SnapshotStatus | None = None
    """The last VM snapshot (lifecycleAction snapshot)."""
    restore: RestoreStatus | None = None
    """The last restore from a snapshot (lifecycleAction restore)."""
    conditions: Annotated[
        list[Condition],
        # atomic: the operator alone writes the list, whole, with a merge patch; a map keyed
        # by type only made managedFields track each entry (docs/decisions.md).
        _bounded(32, **{"x-kubernetes-list-type": "atomic"}),
    ] = Field(default_factory=list)
    """Ready, NetworksConfigured, VolumesBound, SpecValid, and per-operation ones."""
    history: Annotated[list[Transition], _bounded(HISTORY_LIMIT)] = Field(default_factory=list)
    """The last state transitions, oldest first."""
