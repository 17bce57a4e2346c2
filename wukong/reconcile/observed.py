"""`Observed`: everything one pass knows about the cluster, read from the watch caches."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from wukong.api import JsonObj, names
from wukong.api.v1alpha1 import Wukong
from wukong.reconcile.children import owned_by


@dataclass(frozen=True)
class Observed:
    """The children of one Wukong as the cluster shows them now (raw API objects)."""

    now: datetime
    vm: JsonObj | None = None
    vmi: JsonObj | None = None
    data_volumes: Mapping[str, JsonObj] = field(default_factory=dict)
    claims: Mapping[str, JsonObj] = field(default_factory=dict)
    nads: Mapping[str, JsonObj] = field(default_factory=dict)
    clone_sources: Mapping[str, JsonObj | None] = field(default_factory=dict)
    """The PVCs the disks clone (`cloneFrom`), by "namespace/name"; None for one that does
    not exist. One in a namespace the caches do not watch (`run --namespace`) is absent:
    not known."""
    data_sources: Mapping[str, JsonObj | None] = field(default_factory=dict)
    """The CDI DataSources the disks name (`dataSource`), the same way, and the DataSource
    each of those names in turn (`chained_data_source`); the PVC each points to is in
    `clone_sources`."""
    clone_events: tuple[JsonObj, ...] = ()
    """CDI's `CloneSourceInUse` Events about the cloned disks' DataVolumes and claims (by
    name: the planner matches their uid)."""
    storage_classes: Mapping[str, JsonObj] = field(default_factory=dict)
    filesystem_overhead: JsonObj | None = None
    """CDIConfig 'config''s `status.filesystemOverhead` (global and per class); None when
    the cluster has no CDI."""
    migrations: Mapping[str, JsonObj] = field(default_factory=dict)
    """The VirtualMachineInstanceMigrations the Wukong owns, by name."""
    snapshots: Mapping[str, JsonObj] = field(default_factory=dict)
    """The VirtualMachineSnapshots labelled with the Wukong, by name (and the one its
    lifecycleAction names, whoever's it is)."""
    restores: Mapping[str, JsonObj] = field(default_factory=dict)
    """The VirtualMachineRestores the Wukong owns, by name."""
    outside_restores: tuple[JsonObj, ...] = ()
    """The VirtualMachineRestore of the Wukong's VM made outside Wukong (`kubectl create`, a
    backup tool) that KubeVirt has locked the VM for (`status.restoreInProgress`): it
    deletes and makes again the VM's claims, so the planners keep off the disks and the VM
    as for one of the Wukong's own (`decide`)."""
    snapshot_claims: Mapping[str, JsonObj] = field(default_factory=dict)
    """For a restore asked or in flight: the claims named for the volumes of its snapshot
    that the spec has no disk for (`<wukong>-<volume>`), whoever's they are, by name.
    KubeVirt's in-place restore deletes and makes again every one of them."""
    pod_events: tuple[JsonObj, ...] = ()
    """The kubelet's FailedMount Events about the VMI's virt-launcher pods."""
    sandbox_events: tuple[JsonObj, ...] = ()
    """The kubelet's FailedCreatePodSandBox Events about the VMI's virt-launcher pods."""
    migration_events: tuple[JsonObj, ...] = ()
    """virt-controller's migrationTargetPodUnschedulable Events about the Wukong's
    migrations."""
    guest_filesystems: tuple[JsonObj, ...] | None = None
    """The guest agent's filesystem list; None when not asked this pass."""
    guest_error: str | None = None
    """Why the guest agent could not tell (not connected, VMI not running)."""
    network_policy: JsonObj | None = None
    """The administrator's WukongNetworkPolicy 'cluster'; None when there is none."""
    scope: str | None = None
    """The one namespace the caches watch (`run --namespace`), None for all: an object of
    another namespace is not known, not missing."""
    size_classes: Mapping[str, JsonObj] = field(default_factory=dict)
    """The instancetype and preference the spec names, by kind; one not cached is absent."""
    plugging: frozenset[str] = frozenset()
    """Disks this operator asked KubeVirt to plug (`addvolume` answered) that the VM in the
    cache does not show yet: in flight, as a request in its `volumeRequests` is."""
    unplugging: frozenset[str] = frozenset()
    """The same for `removevolume`: asked, and not yet shown by the cached VM."""
    foreign_vm: JsonObj | None = None
    """A VirtualMachine of the Wukong's VM name it does not own (another user's, or its own
    left by `kubectl delete --cascade=orphan`), None when there is none. `vm` and `vmi` are
    None then: only the name-conflict check reads it (`own_view`)."""
    foreign_vmi: JsonObj | None = None
    """A VirtualMachineInstance of the Wukong's VM name that no VirtualMachine controls and
    that does not carry the Wukong's labels (made directly, by another user), while the
    Wukong has no VM. KubeVirt's VM controller adopts a VMI of its name that no one controls
    (`ClaimVirtualMachineInstanceByName`, controller_ref_manager.go), so the VM is not made:
    the Wukong's stop would delete that user's guest. `vmi` is None then (`own_view`)."""

    @property
    def name_taken(self) -> bool:
        """Whether the Wukong's VM name is another's VM or VMI (`own_view`)."""
        return self.foreign_vm is not None or self.foreign_vmi is not None

    @property
    def vmi_phase(self) -> str | None:
        """The VMI's phase, None when there is no VMI."""
        if self.vmi is None:
            return None
        return str(self.vmi.get("status", {}).get("phase") or "Pending")

    @property
    def run_strategy(self) -> str | None:
        """The VM's spec.runStrategy, None when there is no VM (or it has none)."""
        if self.vm is None:
            return None
        strategy = self.vm.get("spec", {}).get("runStrategy")
        return None if strategy is None else str(strategy)

    @property
    def synced_run_strategy(self) -> str | None:
        """The runStrategy virt-controller last synced the VM with (its status.runStrategy),
        None before it first made a VMI or when there is no VM."""
        strategy = (self.vm or {}).get("status", {}).get("runStrategy")
        return None if strategy is None else str(strategy)

    @property
    def pending_requests(self) -> list[str]:
        """The actions of the VM's pending state-change requests (virt-api's Stop and Start,
        which virt-controller removes once it has served them)."""
        requests = (self.vm or {}).get("status", {}).get("stateChangeRequests") or []
        return [str(r.get("action")) for r in requests]

    def vmi_condition(self, type_: str) -> bool:
        """Whether the VMI has condition `type_` with status True."""
        return (condition_of(self.vmi, type_) or {}).get("status") == "True"

    @property
    def vmi_ended(self) -> bool:
        """The VMI has ended (Succeeded or Failed). Under Manual KubeVirt leaves it in place
        until the next start (pkg/virt-controller/watch/vm/vm.go), with the spec and the
        addresses it had: no guest runs, whatever it still says."""
        return self.vmi_phase in FINAL_VMI_PHASES

    def vmi_pause(self) -> str | None:
        """Why the VMI is paused (the Paused condition's reason, "" when it gives none), or
        None when it is not. virt-handler says PausedByUser for the pause subresource,
        PausedIOError when QEMU stopped the guest on a disk error (errorPolicy: stop, the
        default) and PausedByMigrationMonitor while a migration converges
        (pkg/virt-handler/vm.go calculatePausedCondition)."""
        cond = condition_of(self.vmi, "Paused") or {}
        return str(cond.get("reason") or "") if cond.get("status") == "True" else None

    def vmi_pause_message(self) -> str:
        """What virt-handler says about the pause ("" when the VMI is not paused)."""
        cond = condition_of(self.vmi, "Paused") or {}
        return str(cond.get("message") or "") if cond.get("status") == "True" else ""

    def vmi_paused_by_user(self) -> bool:
        """Paused as a suspend pauses it: what the Suspended phase means. A guest QEMU
        paused on a disk error is in trouble, and one paused by the migration monitor is
        migrating: neither is suspended."""
        return self.vmi_pause() in (USER_PAUSE, "")

    def vm_condition(self, type_: str) -> bool:
        """Whether the VM has condition `type_` with status True."""
        return (condition_of(self.vm, type_) or {}).get("status") == "True"


def own_view(seen: Observed, cr: Wukong) -> Observed:
    """`seen` as the Wukong `cr` may act on it: a VirtualMachine of its VM name that it does
    not own is moved out of `vm` into `foreign_vm`, and its VMI, its launcher pods' Events and
    what its guest agent said go with it; so does a VMI of that name no VM controls and not
    labelled the Wukong's, into `foreign_vmi`, while there is no VM. Every planner then sees no
    VM: none stops, starts, patches, migrates, hot-plugs into, snapshots or restores a VM that
    is not the Wukong's, nor reports its node, addresses or health as the Wukong's (found by
    a source audit, session 47: only the VM planner checked the owner, after the others had
    planned on that VM). Idempotent: `observe` makes the view, and the planners make it
    again of a world built by hand."""
    vm, vmi = seen.vm, seen.vmi
    if vm is None and vmi is not None and not _ours_alone(vmi, cr.metadata.name):
        return replace(_without_guest(seen), foreign_vmi=vmi)
    if vm is None or owned_by(vm, cr.metadata.uid):
        return seen
    return replace(_without_guest(seen), foreign_vm=vm)


def own_vm_uid(seen: Observed, cr: Wukong) -> str | None:
    """The uid of the Wukong's own VM in sight (one it owns), None when there is none."""
    vm = own_view(seen, cr).vm
    uid = (vm or {}).get("metadata", {}).get("uid")
    return str(uid) if uid else None


def _ours_alone(vmi: JsonObj, name: str) -> bool:
    """Whether a VMI with no VM beside it may be read as the Wukong's guest: one a
    VirtualMachine controls (the Wukong's VM deleted outside it, its guest still going), or
    one carrying the Wukong's labels (its VM's guest, the VM deleted with
    `--cascade=orphan`: the VM made again takes it back)."""
    refs = vmi.get("metadata", {}).get("ownerReferences") or []
    if any(r.get("kind") == "VirtualMachine" and r.get("controller") for r in refs):
        return True
    said = vmi.get("metadata", {}).get("labels") or {}
    return said.get(names.LABEL_WUKONG) == name and (
        said.get(names.LABEL_MANAGED_BY) == names.MANAGED_BY
    )


def _without_guest(seen: Observed) -> Observed:
    """`seen` with no VM, no guest, and nothing its guest or launcher said."""
    return replace(
        seen,
        vm=None,
        vmi=None,
        pod_events=(),
        sandbox_events=(),
        guest_filesystems=None,
        guest_error=None,
        plugging=frozenset(),
        unplugging=frozenset(),
    )


FINAL_VMI_PHASES = frozenset({"Succeeded", "Failed"})
USER_PAUSE = "PausedByUser"
IO_ERROR_PAUSE = "PausedIOError"


def migration_under_way(state: Mapping[str, Any] | None) -> bool:
    """A VMI's `migrationState` of a migration still running: neither completed nor failed.
    KubeVirt marks a failed or aborted migration `failed` and leaves `completed` false
    (virt-handler migration-source.go; its e2e ConfirmVMIPostMigrationFailed and
    ConfirmVMIPostMigrationAborted expect Completed false): the state stays so until the
    next migration or the VMI's end."""
    return bool(state) and not (state or {}).get("completed") and not (state or {}).get("failed")


def pointed_pvc(data_source: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(namespace, name) of the PVC a CDI DataSource points to: as CDI resolved it
    (`status.source`, through DataSources pointing to DataSources), else its own spec."""
    for part in ("status", "spec"):
        pvc = (((data_source or {}).get(part) or {}).get("source") or {}).get("pvc") or {}
        if pvc.get("name"):
            meta = (data_source or {}).get("metadata") or {}
            return str(pvc.get("namespace") or meta.get("namespace") or ""), str(pvc["name"])
    return None


def chained_data_source(data_source: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(namespace, name) of the DataSource a CDI DataSource's spec names as its source
    (`spec.source.dataSource`; its namespace defaults to the DataSource's). CDI follows one
    such hop, within the namespace (common/util.go ResolveDataSourceChain)."""
    ref = (((data_source or {}).get("spec") or {}).get("source") or {}).get("dataSource") or {}
    if not isinstance(ref, Mapping) or not ref.get("name"):
        return None
    meta = (data_source or {}).get("metadata") or {}
    return str(ref.get("namespace") or meta.get("namespace") or ""), str(ref["name"])


def condition_of(obj: JsonObj | None, type_: str) -> JsonObj | None:
    """The condition `type_` in a child's status.conditions (KubeVirt keeps one per type), or
    None."""
    conds = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conds if c.get("type") == type_), None)
