"""virt-controller's VM loop: run strategies, state change requests, DataVolume templates,
declarative hotplug and VM status (KubeVirt pkg/virt-controller/watch/vm/vm.go)."""

from __future__ import annotations

import copy
from typing import Any

from ._claims import ClaimUsers, vm_claims
from ._informer import Informer, set_finalizers
from ._kube import DATAVOLUMES, VMIS, VMS, ApiError, JsonObj, Kube, key_of
from ._queue import Controller
from .cloud_init import legacy_firmware_uuid
from .config import SimConfig
from .hotplug import live_updates, plan_hotplug, plugged_nics, restart_required
from .instancetype import Instancetypes, SyncError, apply_to_vmi, has_matchers
from .objects import (
    DEFAULT_GRACE_SECONDS,
    VM_CONTROLLER_FINALIZER,
    VMI_FINALIZER,
    condition_true,
    controlled_by,
    deleting,
    disks,
    is_final,
    owner_ref,
    phase,
    run_strategy,
    template_spec,
)
from .placement import changed_placement, migration_refusal, placement_patch
from .vm_status import (
    GENERATION_ANN,
    change_request_ops,
    has_start_request,
    has_stop_request_for,
    observed_generation,
    printable_status,
    start_backoff_left,
    start_paused_requested,
    sync_conditions,
    sync_start_failure,
    trim_first_request,
)
from .vmi_resize import default_hotplug

Failure = tuple[str, str] | None
SYNC_ERROR_RETRY = 1.0  # seconds: virt-controller requeues a failed sync with its backoff


def build_vmi(vm: JsonObj, paused: bool) -> JsonObj:
    """The VMI KubeVirt creates from a VM template (same name, owned by the VM)."""
    template = copy.deepcopy((vm.get("spec") or {}).get("template") or {})
    tmeta, spec = template.get("metadata") or {}, template.get("spec") or {}
    annotations = dict(tmeta.get("annotations") or {})
    annotations[GENERATION_ANN] = str(vm["metadata"].get("generation", 1))
    spec.setdefault("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
    if not spec.get("networks") and not ((spec.get("domain") or {}).get("devices") or {}).get(
        "interfaces"
    ):
        # KubeVirt adds the pod network with the cluster default binding (bridge).
        spec["networks"] = [{"name": "default", "pod": {}}]
        devices = spec.setdefault("domain", {}).setdefault("devices", {})
        devices["interfaces"] = [{"name": "default", "bridge": {}}]
    if paused:
        spec["startStrategy"] = "Paused"
    # virt-controller's firmware controller gives a VM without one a firmware UUID named after
    # it (kept in the VM template there; here in each VMI): cloud-init's instance-id.
    firmware = spec.setdefault("domain", {}).setdefault("firmware", {})
    firmware.setdefault("uuid", legacy_firmware_uuid(vm["metadata"]["name"]))
    default_hotplug(spec)
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {
            "name": vm["metadata"]["name"],
            "namespace": vm["metadata"]["namespace"],
            "labels": dict(tmeta.get("labels") or {}),
            "annotations": annotations,
            "ownerReferences": [owner_ref(vm, "VirtualMachine", "kubevirt.io/v1")],
        },
        "spec": spec,
    }


class VMController(Controller):
    """Keeps a VMI in line with each VM's runStrategy and requests, and reports VM status."""

    name = "virt-controller"

    def __init__(
        self,
        kube: Kube,
        cfg: SimConfig,
        vms: Informer,
        vmis: Informer,
        dvs: Informer,
        pvcs: Informer,
    ) -> None:
        super().__init__()
        self.kube, self.cfg = kube, cfg
        self.vms, self.vmis, self.dvs, self.pvcs = vms, vmis, dvs, pvcs
        self._started_from: dict[str, JsonObj] = {}  # VMI uid -> template it booted with
        self._restart_owed: set[str] = set()  # VMI uids that need a restart
        self.instancetypes = Instancetypes(kube)
        vms.handlers.append(lambda obj: self.enqueue(key_of(obj)))
        vmis.handlers.append(lambda obj: self.enqueue(key_of(obj)))
        self._users = ClaimUsers(vms, vm_claims)
        dvs.handlers.append(self._claim_changed)
        pvcs.handlers.append(self._claim_changed)

    def _claim_changed(self, claim: JsonObj) -> None:
        for key in self._users.of(claim):
            self.enqueue(key)

    def _vmi_of(self, vm: JsonObj) -> JsonObj | None:
        vmi = self.vmis.get(vm["metadata"]["namespace"], vm["metadata"]["name"])
        return vmi if controlled_by(vmi, vm) else None

    async def reconcile(self, key: str) -> float | None:
        """One pass of the VM loop."""
        ns, _, name = key.partition("/")
        vm = self.vms.get(ns, name)
        if vm is None:
            return None
        vmi = self._vmi_of(vm)
        failure: Failure = None
        after: float | None = None
        if deleting(vm):
            await self._stop(vmi)
            if self._vmi_of(vm) is None:
                await set_finalizers(self.kube, self.vms, VMS, vm, remove=VM_CONTROLLER_FINALIZER)
                return None
        else:
            if self.cfg.finalizers:
                vm = await set_finalizers(self.kube, self.vms, VMS, vm, add=VM_CONTROLLER_FINALIZER)
            try:
                vm = await self._sync_instancetype(vm)
                ready = await self._ensure_data_volumes(vm)
                if ready or run_strategy(vm) == "Halted":
                    after = await self._sync_run_strategy(vm, vmi)
            except SyncError as err:
                failure = (err.reason, err.message)
                after = SYNC_ERROR_RETRY
            vm = self.vms.get(ns, name) or vm
            vmi = self._vmi_of(vm)
            if failure is None and vmi is not None and phase(vmi) == "Running":
                if not deleting(vmi):
                    failure = await self._sync_running(vm, vmi)
        await self._update_status(vm, self._vmi_of(vm), failure)
        return after

    async def _sync_instancetype(self, vm: JsonObj) -> JsonObj:
        """instancetype controller Sync: revisions stored and referenced from the status."""
        if not has_matchers(vm):
            return vm
        patch = await self.instancetypes.sync(vm)
        if not patch:
            return vm
        ns, name = vm["metadata"]["namespace"], vm["metadata"]["name"]
        updated = await self.kube.merge_patch(VMS, ns, name, {"status": patch}, sub="status")
        self.vms.apply(updated)
        return updated

    async def _ensure_data_volumes(self, vm: JsonObj) -> bool:
        ready = True
        ns = vm["metadata"]["namespace"]
        for template in (vm.get("spec") or {}).get("dataVolumeTemplates") or []:
            tmeta = template.get("metadata") or {}
            dv = self.dvs.get(ns, tmeta.get("name", ""))
            if dv is None:
                ready = False
                manifest = {
                    "apiVersion": "cdi.kubevirt.io/v1beta1",
                    "kind": "DataVolume",
                    "metadata": {
                        "name": tmeta["name"],
                        "namespace": ns,
                        "labels": dict(tmeta.get("labels") or {}),
                        "annotations": dict(tmeta.get("annotations") or {}),
                        "ownerReferences": [owner_ref(vm, "VirtualMachine", "kubevirt.io/v1")],
                    },
                    "spec": copy.deepcopy(template.get("spec") or {}),
                }
                try:
                    self.dvs.apply(await self.kube.create(DATAVOLUMES, ns, manifest))
                except ApiError as err:
                    if err.status != 409:
                        raise
            elif phase(dv) not in ("Succeeded", "WaitForFirstConsumer", "PendingPopulation"):
                ready = False
        return ready

    async def _sync_run_strategy(self, vm: JsonObj, vmi: JsonObj | None) -> float | None:
        """vm.go syncRunStrategy, strategy by strategy."""
        strategy = run_strategy(vm)
        stop_req = has_stop_request_for(vm, vmi)
        if strategy == "Always":
            if vmi is not None:
                if stop_req or is_final(vmi):
                    await self._stop(vmi)
                return None
            return await self._start(vm)
        if strategy == "RerunOnFailure":
            if vmi is not None:
                failed, succeeded = phase(vmi) == "Failed", phase(vmi) == "Succeeded"
                if not deleting(vmi) and (stop_req or failed or succeeded):
                    await self._stop(vmi)
                    if failed:
                        await self._patch_status_ops(
                            vm, change_request_ops(vm, [{"action": "Start"}])
                        )
                return None
            last_seen = (vm.get("status") or {}).get("runStrategy")
            if not has_start_request(vm) and last_seen == strategy:
                return None
            return await self._start(vm)
        if strategy == "Manual":
            if vmi is not None:
                if stop_req:
                    await self._stop(vmi)
            elif has_start_request(vm):
                return await self._start(vm)
            return None
        if strategy == "Halted":
            if vmi is None:
                if has_start_request(vm):
                    await self._patch_run_strategy(vm, "Always")
                return None
            await self._stop(vmi)
            return None
        if strategy == "Once" and vmi is None:
            return await self._start(vm)
        return None

    async def _start(self, vm: JsonObj) -> float | None:
        left = start_backoff_left(vm)
        if left > 0:
            return left
        body = build_vmi(vm, paused=start_paused_requested(vm))
        if has_matchers(vm):
            instancetype, preference = await self.instancetypes.specs(vm)
            conflict = apply_to_vmi(vm, body, instancetype, preference)
            if conflict is not None:
                raise SyncError("FailedCreate", f"Failure while starting VMI: {conflict}")
            default_hotplug(body["spec"])  # virt-api defaults the VMI as virt-controller sized it
        if self.cfg.finalizers:
            body["metadata"]["finalizers"] = [VM_CONTROLLER_FINALIZER, VMI_FINALIZER]
        try:
            created = await self.kube.create(VMIS, vm["metadata"]["namespace"], body)
        except ApiError as err:
            if err.status == 409:
                return None
            if err.status in (403, 422):  # a quota, a webhook: the VM's Failure condition
                message = f"Failure while starting VMI: {err.body_message}"
                raise SyncError("FailedCreate", message) from err
            raise
        self._started_from[created["metadata"]["uid"]] = copy.deepcopy(template_spec(vm))
        self.vmis.apply(created)
        return None

    async def _stop(self, vmi: JsonObj | None) -> None:
        if vmi is None or deleting(vmi):
            return
        got = await self.kube.delete(VMIS, vmi["metadata"]["namespace"], vmi["metadata"]["name"])
        if got is not None:
            self.vmis.apply(got)
        else:
            self.vmis.forget(vmi)

    async def _patch_status_ops(self, vm: JsonObj, ops: list[JsonObj]) -> None:
        ns, name = vm["metadata"]["namespace"], vm["metadata"]["name"]
        self.vms.apply(await self.kube.json_patch(VMS, ns, name, ops, "status"))

    async def _patch_run_strategy(self, vm: JsonObj, strategy: str) -> None:
        ns, name = vm["metadata"]["namespace"], vm["metadata"]["name"]
        spec = vm.get("spec") or {}
        if spec.get("runStrategy"):
            ops = [
                {"op": "test", "path": "/spec/runStrategy", "value": spec["runStrategy"]},
                {"op": "replace", "path": "/spec/runStrategy", "value": strategy},
            ]
        else:
            ops = [{"op": "add", "path": "/spec/running", "value": strategy == "Always"}]
        self.vms.apply(await self.kube.json_patch(VMS, ns, name, ops))

    async def _sync_running(self, vm: JsonObj, vmi: JsonObj) -> Failure:
        """Declarative hotplug and live updates of a running VMI."""
        ns, name = vmi["metadata"]["namespace"], vmi["metadata"]["name"]
        template, spec = template_spec(vm), vmi.get("spec") or {}
        self._started_from.setdefault(vmi["metadata"]["uid"], copy.deepcopy(template))
        plan = plan_hotplug(template, spec)
        if plan is not None and plan.error:
            return ("HotPlugVolumeError", plan.error)
        if plan is not None:
            ops = _swapped(
                ("/spec/volumes", spec.get("volumes"), plan.volumes),
                ("/spec/domain/devices/disks", disks(spec) or None, plan.disks),
            )
            self.vmis.apply(await self.kube.json_patch(VMIS, ns, name, ops))
        interfaces, networks = plugged_nics(template, spec)
        if interfaces:  # network sync: not held by a restart owed (vm.go)
            devices = (spec.get("domain") or {}).get("devices") or {}
            nics = _swapped(
                ("/spec/networks", spec.get("networks"), networks),
                ("/spec/domain/devices/interfaces", devices.get("interfaces"), interfaces),
            )
            self.vmis.apply(await self.kube.json_patch(VMIS, ns, name, nics))
        if self._owes_restart(vm, vmi):
            return None  # vm.go: nothing is live-updated while a restart is owed
        live = live_updates(template, spec)
        if live is not None:
            self.vmis.apply(await self.kube.merge_patch(VMIS, ns, name, live))
        return await self._sync_placement(vmi, template)

    def _owes_restart(self, vm: JsonObj, vmi: JsonObj) -> bool:
        """A non-live-updatable template field changed since this VMI started. Once owed, a
        restart stays owed until the VMI is gone (vm.go clears RestartRequired only when it
        stops or starts a VMI), even if the template is changed back."""
        uid = vmi["metadata"]["uid"]
        if restart_required(self._started_from.get(uid), template_spec(vm)):
            self._restart_owed.add(uid)
        return uid in self._restart_owed

    async def _sync_placement(self, vmi: JsonObj, template: JsonObj) -> Failure:
        """vm.go handleAffinityChangeRequest and handleTolerationsChangeRequest."""
        ns, name = vmi["metadata"]["namespace"], vmi["metadata"]["name"]
        fields = changed_placement(template, vmi.get("spec") or {})
        if not fields:
            return None
        refused = migration_refusal(vmi, fields)
        if refused is not None:
            return refused
        for field in fields:
            current = self.vmis.get(ns, name) or vmi
            ops = placement_patch(field, template, current.get("spec") or {})
            self.vmis.apply(await self.kube.json_patch(VMIS, ns, name, ops))
        return None

    async def _update_status(self, vm: JsonObj, vmi: JsonObj | None, failure: Failure) -> None:
        status = copy.deepcopy(vm.get("status") or {})
        status["created"] = vmi is not None
        status["ready"] = vmi is not None and condition_true(vmi, "Ready")
        if status.get("runStrategy") or status["created"]:
            status["runStrategy"] = run_strategy(vm)
        if trim_first_request(vm, vmi):
            rest = status.get("stateChangeRequests", [])[1:]
            if rest:
                status["stateChangeRequests"] = rest
            else:
                status.pop("stateChangeRequests", None)
        sync_start_failure(vm, vmi, status, self.cfg.crash_loop_base_delay)
        alive = vmi is not None and not is_final(vmi) and not deleting(vmi)
        restart = alive and vmi is not None and self._owes_restart(vm, vmi)
        status["conditions"] = sync_conditions(vm, vmi, failure, restart)
        ns = vm["metadata"]["namespace"]
        status["printableStatus"] = printable_status(
            {**vm, "status": status},
            vmi,
            lambda n: self.dvs.get(ns, n),
            lambda n: self.pvcs.get(ns, n),
        )
        generation = observed_generation(vmi)
        if generation is not None:
            status["observedGeneration"] = generation
        status["desiredGeneration"] = vm["metadata"].get("generation", 1)
        if status != (vm.get("status") or {}):
            self.vms.apply(await self.kube.replace(VMS, {**vm, "status": status}, "status"))
        if vmi is not None and is_final(vmi):
            await set_finalizers(self.kube, self.vmis, VMIS, vmi, remove=VM_CONTROLLER_FINALIZER)


def _swapped(*lists: tuple[str, Any, Any]) -> list[JsonObj]:
    """A JSON patch putting each (path, now, value) list in place, tested against what it
    was read as (when there was one), as virt-controller's patches of a VMI's lists are."""
    ops: list[JsonObj] = []
    for path, now, value in lists:
        if now is not None:
            ops.append({"op": "test", "path": path, "value": now})
        ops.append({"op": "add", "path": path, "value": value})
    return ops
