"""virt-controller's VMI loop plus virt-handler: phases, node, IPs, agent, volumes, shutdown.

A VMI is Pending until its claims exist (and DataVolumes succeeded), Scheduling until its PVCs
are bound and its virt-launcher pod (`launcher.py`, listed in status.activePods) runs: the
node's kube-scheduler and kubelet (`node.Kubelet`, shared with real mode) bind it, mount its
Secrets (or report FailedMount) and start it. Then the VMI is Scheduled on the pod's node and
Running after a boot delay. Deleting a VMI is a graceful shutdown: a guest that honours ACPI
powers off after acpi_shutdown_delay, otherwise it is killed when terminationGracePeriodSeconds
runs out; then the VMI is Succeeded (Failed when killed so with ACPI on, as virt-handler
says of a destroyed domain; its launcher pod ends with it) and its finalizers are removed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from ._claims import ClaimUsers, vmi_claims
from ._handler import GuestHost, soonest
from ._informer import Informer, set_finalizers
from ._kube import EVENTS, VMIS, ApiError, JsonObj, Kube, key_of
from .access_credentials import credentials_event
from .config import ANN_UNSCHEDULABLE, SimConfig
from .guest import Guest
from .launcher import launcher_pod
from .node import PODS
from .objects import (
    VMI_FINALIZER,
    claim_of,
    condition,
    condition_true,
    controlled_by,
    deleting,
    drop_condition,
    flag,
    is_final,
    now_iso,
    phase,
    set_condition,
)
from .vmi_status import AddressBook, interfaces, ready_condition, volume_statuses

TERMINATING = "virt-launcher pod is terminating"
FAILED_CREATE = "FailedCreate"  # virt-controller's reason for a launcher pod not created
REFUSED_POD_RETRY = 1.0  # seconds: virt-controller retries with its queue's backoff

UNSCHEDULABLE_MESSAGE = (
    "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: "
    "1 No preemption victims found for incoming pod."
)


class VMIHandler(GuestHost):
    """Moves each VMI through its phases and keeps its status like virt-controller and
    virt-handler would."""

    def __init__(
        self,
        kube: Kube,
        cfg: SimConfig,
        vmis: Informer,
        vms: Informer,
        dvs: Informer,
        pvcs: Informer,
        guest: Callable[[str, str], Guest],
        pods: Informer,
    ) -> None:
        super().__init__(cfg)
        self.kube, self.guest = kube, guest
        self.vmis, self.vms, self.dvs, self.pvcs, self.pods = vmis, vms, dvs, pvcs, pods
        self.book = AddressBook(cfg.pod_cidr_prefix)
        self.lost: set[str] = set()  # the Kubelet's: nodes whose machine is gone
        vmis.handlers.append(lambda obj: self.enqueue(key_of(obj)))
        vms.handlers.append(lambda obj: self.enqueue(key_of(obj)))
        self._users = ClaimUsers(vmis, vmi_claims)
        dvs.handlers.append(self._claim_changed)
        pvcs.handlers.append(self._claim_changed)
        pods.handlers.append(self._pod_changed)

    def _pod_changed(self, pod: JsonObj) -> None:
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref.get("kind") == "VirtualMachineInstance" and ref.get("controller"):
                self.enqueue(f"{pod['metadata']['namespace']}/{ref['name']}")

    def _launcher_of(self, vmi: JsonObj) -> JsonObj | None:
        for pod in self.pods.owned_by(vmi["metadata"].get("uid")):
            if controlled_by(pod, vmi) and not deleting(pod):
                return pod
        return None

    async def _launcher(self, vmi: JsonObj, status: JsonObj) -> JsonObj | None:
        """virt-controller's part: the VMI's virt-launcher pod, created when first needed,
        listed in status.activePods (uid -> node). A create the API server refuses (a quota,
        Pod Security, a webhook) is the VMI's `Synchronized=False` `FailedCreate` with the
        server's words, as virt-controller writes it (pkg/virt-controller/watch/vmi/
        lifecycle.go); None then, and it is tried again."""
        pod = self._launcher_of(vmi)
        conds = list(status.get("conditions") or [])
        if pod is None:
            try:
                pod = await self.kube.create(PODS, vmi["metadata"]["namespace"], launcher_pod(vmi))
            except ApiError as err:
                if err.status not in (403, 422):
                    raise
                message = f"failed to create virtual machine pod: {err.body_message}"
                conds = set_condition(conds, "Synchronized", "False", FAILED_CREATE, message)
                status["conditions"] = conds
                return None
            self.pods.apply(pod)
        if any(c.get("reason") == FAILED_CREATE for c in conds):
            status["conditions"] = drop_condition(conds, "Synchronized")
        node = (pod.get("spec") or {}).get("nodeName") or ""
        status["activePods"] = {pod["metadata"]["uid"]: node}
        return pod

    def _on_lost_node(self, vmi: JsonObj, status: JsonObj) -> None:
        """virt-controller's part alone, for a VMI whose node (and virt-handler) is gone: its
        Ready follows its launcher pod's, and it fails once the pod is gone
        (pkg/virt-controller/watch/vmi/lifecycle.go: syncReadyConditionFromPod, and "setting
        VMI to failed while running because pod does not exist")."""
        owned = self.pods.owned_by(vmi["metadata"]["uid"])
        pod = next((p for p in owned if controlled_by(p, vmi)), None)
        if pod is None:
            status["phase"] = "Failed"
            ready = {"status": "False", "reason": "PodNotExists"}
            ready["message"] = "virt-launcher pod has not yet been scheduled"
        elif deleting(pod) or phase(pod) in ("Failed", "Succeeded"):
            ready = {"status": "False", "reason": "PodTerminating"}
            ready["message"] = "virt-launcher pod is terminating"
        else:
            ready = dict(condition(pod, "Ready") or {})  # its lastTransitionTime too
        if not ready:
            return
        conds = list(status.get("conditions") or [])
        mine = condition({"status": status}, "Ready") or {}
        # VMI UpdateCondition: the whole condition is replaced when its status or reason
        # changes (the clock starts again), else kept as it is.
        if (mine.get("status"), mine.get("reason")) != (ready.get("status"), ready.get("reason")):
            ready = {"type": "Ready", "lastTransitionTime": now_iso(), **ready}
            status["conditions"] = [c for c in conds if c.get("type") != "Ready"] + [ready]

    def _claim_changed(self, claim: JsonObj) -> None:
        for key in self._users.of(claim):
            self.enqueue(key)

    async def reconcile(self, key: str) -> float | None:
        """One pass for one VMI."""
        ns, _, name = key.partition("/")
        vmi = self.vmis.get(ns, name)
        if vmi is None:
            return None
        vm = self.vms.get(ns, name)
        vm = vm if controlled_by(vmi, vm or {"metadata": {}}) else None
        if is_final(vmi):
            self.book.forget(vmi["metadata"]["uid"])
            await set_finalizers(self.kube, self.vmis, VMIS, vmi, remove=VMI_FINALIZER)
            return None
        if self.cfg.finalizers and not deleting(vmi):
            vmi = await set_finalizers(self.kube, self.vmis, VMIS, vmi, add=VMI_FINALIZER)
        status = copy.deepcopy(vmi.get("status") or {})
        guest = self.guest(ns, name)
        after: float | None = None
        if status.get("nodeName") in self.lost:
            self._on_lost_node(vmi, status)
        elif deleting(vmi):
            after = self._shut_down(vmi, vm, guest, status)
        else:
            after = await self._advance(vmi, vm, guest, status)
        if status != (vmi.get("status") or {}):
            self.vmis.apply(await self.kube.replace(VMIS, {**vmi, "status": status}, "status"))
            if is_final({"status": status}):
                guest.power_off = None  # consumed once written (GuestHost)
            if (told := credentials_event(vmi, vmi.get("status") or {}, status)) is not None:
                await self.kube.create(EVENTS, ns, told)
        return after

    async def _advance(
        self, vmi: JsonObj, vm: JsonObj | None, guest: Guest, status: JsonObj
    ) -> float | None:
        ph = status.get("phase", "")
        if ph == "":
            self._enter(vmi, status, "Pending")
            ph = "Pending"
        if ph == "Pending":
            if not self._volumes_ready(vmi, status):
                return None
            return self._wait_then(vmi, status, "Pending", self.cfg.schedule_delay, "Scheduling")
        if ph == "Scheduling":
            conds = list(status.get("conditions") or [])
            if flag(ANN_UNSCHEDULABLE, vmi, vm):
                status["conditions"] = set_condition(
                    conds, "PodScheduled", "False", "Unschedulable", UNSCHEDULABLE_MESSAGE
                )
                return None
            status["conditions"] = drop_condition(conds, "PodScheduled")
            if not self._claims_bound(vmi):
                return None
            pod = await self._launcher(vmi, status)
            if pod is None:
                return REFUSED_POD_RETRY
            scheduled = condition(pod, "PodScheduled")
            if scheduled is not None and scheduled.get("status") == "False":
                # virt-controller copies the pod's scheduling trouble onto the VMI.
                status["conditions"] = set_condition(
                    list(status.get("conditions") or []),
                    "PodScheduled",
                    "False",
                    str(scheduled.get("reason", "")),
                    str(scheduled.get("message", "")),
                )
            if phase(pod) != "Running":
                return None  # the kubelet has not started it (yet): a pod event wakes us
            after = self._wait_then(vmi, status, "Scheduling", self.cfg.schedule_delay, "Scheduled")
            if status["phase"] == "Scheduled":
                node = pod["spec"]["nodeName"]
                status["nodeName"] = node
                labels = {"kubevirt.io/nodeName": node}
                ns, name = vmi["metadata"]["namespace"], vmi["metadata"]["name"]
                await self.kube.merge_patch(VMIS, ns, name, {"metadata": {"labels": labels}})
            return after
        if ph == "Scheduled":
            if failed := await self._launcher_error(vmi):
                return await self._sync_failed(vmi, status, failed)
            wait = self._boot(vmi, vm, guest, status)
            if status["phase"] != "Running":
                return wait
        return self._running(vmi, vm, guest, status)

    def _wait_then(self, vmi: JsonObj, status: JsonObj, now: str, delay: float, then: str) -> float:
        waited = self._age(vmi["metadata"]["uid"], now)
        if waited < delay:
            return delay - waited
        self._enter(vmi, status, then)
        return 0.0

    def _volumes_ready(self, vmi: JsonObj, status: JsonObj) -> bool:
        """Pending until every claim exists and every DataVolume has succeeded."""
        ns = vmi["metadata"]["namespace"]
        conds = list(status.get("conditions") or [])
        missing, dvs_waiting, has_dv = [], False, False
        for volume in (vmi.get("spec") or {}).get("volumes") or []:
            claim = claim_of(volume)
            if claim is None:
                continue
            dv = self.dvs.get(ns, claim) if "dataVolume" in volume else None
            has_dv = has_dv or dv is not None
            if dv is not None and phase(dv) != "Succeeded":
                dvs_waiting = True
            elif dv is None and self.pvcs.get(ns, claim) is None:
                missing.append(claim)
        if missing:
            msg = f"PVC {ns}/{missing[0]} does not exist, waiting for it to appear"
            conds = set_condition(conds, "Synchronized", "False", "FailedPvcNotFound", msg)
        else:
            conds = drop_condition(conds, "Synchronized")
        if has_dv:
            ready = "False" if dvs_waiting else "True"
            reason = "NotAllDVsReady" if dvs_waiting else "AllDVsReady"
            conds = set_condition(conds, "DataVolumesReady", ready, reason)
        status["conditions"] = conds
        return not missing and not dvs_waiting

    def _claims_bound(self, vmi: JsonObj) -> bool:
        ns = vmi["metadata"]["namespace"]
        claims = [claim_of(v) for v in (vmi.get("spec") or {}).get("volumes") or []]
        return all(phase(self.pvcs.get(ns, c)) == "Bound" for c in claims if c)

    def _running(
        self, vmi: JsonObj, vm: JsonObj | None, guest: Guest, status: JsonObj
    ) -> float | None:
        uptime = self._uptime(vmi, vm, guest, status)
        if uptime is None:
            return None
        io_retry = self._disk_error(vmi, guest, status)
        paused = condition_true({"status": status}, "Paused")
        conds = ready_condition(list(status.get("conditions") or []), paused=paused)
        status["conditions"] = self._live_migratable(vmi, conds)
        ns, uid = vmi["metadata"]["namespace"], vmi["metadata"]["uid"]
        status["interfaces"] = interfaces(vmi, self.book, uptime.booted, uptime.agent, guest.nics)
        report = volume_statuses(
            vmi,
            list(status.get("volumeStatus") or []),
            lambda c: self.pvcs.get(ns, c),
            lambda tag: self._age(uid, tag),
            self.cfg.hotplug_step_delay,
        )
        status["volumeStatus"] = report.statuses
        return soonest(uptime.next_step, report.next_step, io_retry)

    def _power_off(self, vmi: JsonObj, status: JsonObj, final: str) -> None:
        """virt-controller's share too: the launcher pod ends, so the VMI is not Ready."""
        super()._power_off(vmi, status, final)
        status["conditions"] = set_condition(
            status["conditions"],
            "Ready",
            "False",
            "PodTerminating",
            "virt-launcher pod is terminating",
        )
