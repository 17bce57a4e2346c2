"""virt-controller's VMI loop plus virt-handler: phases, node, IPs, agent, volumes, shutdown.

A VMI is Pending until its claims exist (and DataVolumes succeeded), Scheduling until its PVCs
are bound and its virt-launcher pod (`launcher.py`, listed in status.activePods) runs: the
node's kube-scheduler and kubelet (`node.Kubelet`, shared with real mode) bind it, mount its
Secrets (or report FailedMount) and start it. Then the VMI is Scheduled on the pod's node and
Running after a boot delay. Deleting a VMI is a graceful shutdown: a guest that honours ACPI
powers off after acpi_shutdown_delay, otherwise it is killed when terminationGracePeriodSeconds
runs out; then the VMI is Succeeded (its launcher pod ends with it) and its finalizers are
removed.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable

from ._claims import ClaimUsers, vmi_claims
from ._informer import Informer, set_finalizers
from ._kube import VMIS, ApiError, JsonObj, Kube, key_of
from ._queue import Controller
from .config import ANN_FAIL, ANN_IGNORE_ACPI, ANN_NO_AGENT, ANN_UNSCHEDULABLE, SimConfig
from .guest import OS_INFO, Guest
from .launcher import launcher_pod
from .node import PODS
from .objects import (
    DEFAULT_GRACE_SECONDS,
    VMI_FINALIZER,
    claim_of,
    condition,
    condition_true,
    controlled_by,
    deleting,
    drop_condition,
    flag,
    is_final,
    live_migratable,
    now_iso,
    phase,
    set_condition,
)
from .vmi_status import AddressBook, interfaces, ready_condition, volume_statuses

FAILED_CREATE = "FailedCreate"  # virt-controller's reason for a launcher pod not created
REFUSED_POD_RETRY = 1.0  # seconds: virt-controller retries with its queue's backoff

UNSCHEDULABLE_MESSAGE = (
    "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: "
    "1 No preemption victims found for incoming pod."
)


class VMIHandler(Controller):
    """Moves each VMI through its phases and keeps its status like virt-handler would."""

    name = "virt-handler"

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
        super().__init__()
        self.kube, self.cfg, self.guest = kube, cfg, guest
        self.vmis, self.vms, self.dvs, self.pvcs, self.pods = vmis, vms, dvs, pvcs, pods
        self.book = AddressBook(cfg.pod_cidr_prefix)
        self._marks: dict[tuple[str, str], float] = {}
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

    def _claim_changed(self, claim: JsonObj) -> None:
        for key in self._users.of(claim):
            self.enqueue(key)

    def _age(self, uid: str, tag: str) -> float:
        now = asyncio.get_running_loop().time()
        return now - self._marks.setdefault((uid, tag), now)

    def _enter(self, vmi: JsonObj, status: JsonObj, new_phase: str) -> None:
        status["phase"] = new_phase
        stamps = list(status.get("phaseTransitionTimestamps") or [])
        stamps.append({"phase": new_phase, "phaseTransitionTimestamp": now_iso()})
        status["phaseTransitionTimestamps"] = stamps
        self._marks[(vmi["metadata"]["uid"], new_phase)] = asyncio.get_running_loop().time()

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
        if deleting(vmi):
            after = self._shut_down(vmi, vm, guest, status)
        else:
            after = await self._advance(vmi, vm, guest, status)
        if status != (vmi.get("status") or {}):
            self.vmis.apply(await self.kube.replace(VMIS, {**vmi, "status": status}, "status"))
        return after

    async def _advance(
        self, vmi: JsonObj, vm: JsonObj | None, guest: Guest, status: JsonObj
    ) -> float | None:
        ph, uid = status.get("phase", ""), vmi["metadata"]["uid"]
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
            waited = self._age(uid, "Scheduled")
            if waited < self.cfg.boot_delay:
                return self.cfg.boot_delay - waited
            if flag(ANN_FAIL, vmi, vm):
                self._power_off(vmi, status, "Failed")
                return None
            guest.power_off = None
            self._enter(vmi, status, "Running")
            if (vmi.get("spec") or {}).get("startStrategy") == "Paused":
                status["conditions"] = set_condition(
                    list(status.get("conditions") or []),
                    "Paused",
                    "True",
                    "PausedStartStrategy",
                    "VMI was paused by user",
                )
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
        uid = vmi["metadata"]["uid"]
        if flag(ANN_FAIL, vmi, vm) or guest.power_off is not None:
            self._power_off(vmi, status, guest.power_off or "Failed")
            guest.power_off = None
            return None
        up = self._age(uid, "Running")
        boot, agent_at = self.cfg.guest_boot_delay, self.cfg.guest_boot_delay + self.cfg.agent_delay
        booted = up >= boot
        agent_on = guest.agent_connected and self.cfg.agent and not flag(ANN_NO_AGENT, vmi, vm)
        agent = agent_on and up >= agent_at
        conds = list(status.get("conditions") or [])
        conds = ready_condition(conds, paused=condition_true({"status": status}, "Paused"))
        if agent:
            conds = set_condition(conds, "AgentConnected", "True")
            status["guestOSInfo"] = dict(OS_INFO)
        else:
            conds = drop_condition(conds, "AgentConnected")
            status.pop("guestOSInfo", None)
        ns = vmi["metadata"]["namespace"]
        migratable, reason, message = live_migratable(vmi, lambda c: self.pvcs.get(ns, c))
        if migratable == "False":
            conds = set_condition(conds, "LiveMigratable", migratable, reason, message)
        else:
            conds = set_condition(conds, "LiveMigratable", "True")
        status["conditions"] = conds
        status["interfaces"] = interfaces(vmi, self.book, booted, agent)
        report = volume_statuses(
            vmi,
            list(status.get("volumeStatus") or []),
            lambda c: self.pvcs.get(ns, c),
            lambda tag: self._age(uid, tag),
            self.cfg.hotplug_step_delay,
        )
        status["volumeStatus"] = report.statuses
        waits = [t - up for t in (boot, agent_at) if t > up and (t == boot or agent_on)]
        if report.next_step is not None:
            waits.append(report.next_step)
        return min(waits) if waits else None

    def _power_off(self, vmi: JsonObj, status: JsonObj, final: str) -> None:
        self._enter(vmi, status, final)
        conds = drop_condition(list(status.get("conditions") or []), "AgentConnected")
        status["conditions"] = set_condition(
            conds, "Ready", "False", "PodTerminating", "virt-launcher pod is terminating"
        )
        status.pop("guestOSInfo", None)

    def _accepts_acpi(
        self, vmi: JsonObj, vm: JsonObj | None, guest: Guest, status: JsonObj
    ) -> bool:
        features = ((vmi.get("spec") or {}).get("domain") or {}).get("features") or {}
        if (features.get("acpi") or {}).get("enabled") is False:
            return False
        if condition_true({"status": status}, "Paused"):
            return False  # a paused guest cannot react to the power button
        if guest.acpi is not None:
            return guest.acpi
        return self.cfg.acpi and not flag(ANN_IGNORE_ACPI, vmi, vm)

    def _shut_down(
        self, vmi: JsonObj, vm: JsonObj | None, guest: Guest, status: JsonObj
    ) -> float | None:
        """Graceful stop: ACPI first, killed when the grace period runs out."""
        if status.get("phase", "") != "Running":
            self._power_off(vmi, status, "Succeeded")  # never booted: nothing to wait for
            return None
        grace = (vmi.get("spec") or {}).get("terminationGracePeriodSeconds")
        grace = DEFAULT_GRACE_SECONDS if grace is None else float(grace)
        elapsed = self._age(vmi["metadata"]["uid"], "shutdown")
        acpi = self._accepts_acpi(vmi, vm, guest, status)
        done_at = min(self.cfg.acpi_shutdown_delay, grace) if acpi else grace
        if elapsed >= done_at:
            self._power_off(vmi, status, "Succeeded")
            return None
        return done_at - elapsed
