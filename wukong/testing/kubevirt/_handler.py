"""What virt-handler does to a VMI on its node, the same in both modes: each phase's clock, the
boot, the guest agent, the power button and the grace period.

`virt_handler.VMIHandler` (the pure simulator, which plays virt-controller too) and
`node.NodeHandler` (beside KubeVirt's own virt-controller) build on it, so what a guest does
cannot differ between the two modes; what each adds is what the other side's virt-controller
does (the pure simulator's Ready condition) or what only real KubeVirt reads (the node's
selinuxContext).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from ._informer import Informer
from ._kube import SECRETS, ApiError, JsonObj, Kube
from ._queue import Controller
from .access_credentials import credentials_condition
from .cloud_init_read import read_error, secret_names, sync_failed_message
from .config import ANN_FAIL, ANN_IGNORE_ACPI, ANN_KILL_LATE, ANN_NO_AGENT, KILL_LATE, SimConfig
from .events import record, sync_failed
from .guest import OS_INFO, Guest
from .objects import (
    DEFAULT_GRACE_SECONDS,
    condition,
    condition_true,
    drop_condition,
    flag,
    live_migratable,
    now_iso,
    set_condition,
)
from .serial_log import boot_lines, panic_lines, power_down_lines

log = logging.getLogger(__name__)

IO_ERROR_PAUSE = ("PausedIOError", "VMI was paused, low-level IO error detected")
MAX_IO_ERROR_RETRY = 180.0  # virt-handler's ioErrorRetryManager: 10 s, doubling up to 3 min
# virt-handler's reason when virt-launcher cannot start the domain (vm.go handleSyncError).
DOMAIN_SYNC_FAILED = "Synchronizing with the Domain failed."
# virt-handler retries a failed sync with its queue's backoff (5 ms doubling); here, this often.
SYNC_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class Uptime:
    """How far a Running guest is: booted (it has addresses), its agent connected, and when
    the next of those is due (seconds; None when nothing is)."""

    booted: bool
    agent: bool
    next_step: float | None


class GuestHost(Controller):
    """A node's virt-handler: the part of a VMI's life that needs a machine.

    `guest.power_off` (a shutdown or crash inside the guest) is consumed by the subclass once
    the final phase it led to is written: a write that loses a race must not lose it."""

    name = "virt-handler"
    pvcs: Informer  # the claims a VMI's volumes use (set by the subclass)
    kube: Kube  # (set by the subclass)

    def __init__(self, cfg: SimConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self._marks: dict[tuple[str, str], float] = {}
        self._io_retry: dict[str, tuple[float, float]] = {}  # uid -> (next try, its wait)
        # What virt-launcher answers each VMI's SyncVMI (uid -> the Synchronized message, None
        # when the domain starts), fixed when first asked: its pod's view of the Secrets.
        self._launcher_errors: dict[str, str | None] = {}

    def _clock(self) -> float:
        """The node's clock: the event loop's monotonic time."""
        return asyncio.get_running_loop().time()

    def _age(self, uid: str, tag: str) -> float:
        """Seconds since `tag` was first asked about for the VMI `uid`."""
        now = self._clock()
        return now - self._marks.setdefault((uid, tag), now)

    def _enter(self, vmi: JsonObj, status: JsonObj, new_phase: str) -> None:
        status["phase"] = new_phase
        stamps = list(status.get("phaseTransitionTimestamps") or [])
        stamps.append({"phase": new_phase, "phaseTransitionTimestamp": now_iso()})
        status["phaseTransitionTimestamps"] = stamps
        self._marks[(vmi["metadata"]["uid"], new_phase)] = self._clock()

    async def _launcher_error(self, vmi: JsonObj) -> str | None:
        """What virt-launcher answers virt-handler's SyncVMI for a Scheduled VMI, as virt-handler
        writes it in the VMI's Synchronized message; None when it starts the domain. Read
        once per VMI: a subPath mount shows the Secret as it was when the pod started."""
        uid = vmi["metadata"]["uid"]
        if uid not in self._launcher_errors:
            ns = vmi["metadata"]["namespace"]
            secrets = {n: await self.kube.get_or_none(SECRETS, ns, n) for n in secret_names(vmi)}
            error = read_error(vmi, secrets)
            self._launcher_errors[uid] = None if error is None else sync_failed_message(error)
        return self._launcher_errors[uid]

    async def _sync_failed(self, vmi: JsonObj, status: JsonObj, message: str) -> float:
        """virt-handler's answer to a failed sync: Synchronized=False (kept as it was, time
        and message, while the reason holds: CheckFailure), a Warning `SyncFailed` on the
        VMI, and a retry. The VMI stays Scheduled."""
        held = condition({"status": status}, "Synchronized") or {}
        if (held.get("status"), held.get("reason")) != ("False", DOMAIN_SYNC_FAILED):
            failed = {
                "type": "Synchronized",
                "status": "False",
                "reason": DOMAIN_SYNC_FAILED,
                "message": message,
                "lastProbeTime": None,
                "lastTransitionTime": now_iso(),
            }
            status["conditions"] = [
                *drop_condition(list(status.get("conditions") or []), "Synchronized"),
                failed,
            ]
        try:
            await record(self.kube, sync_failed(vmi, message))
        except ApiError as err:  # e.g. its namespace going: the status says it all the same
            log.debug("virt-handler: no SyncFailed Event for %s: %s", vmi["metadata"]["name"], err)
        return SYNC_RETRY_SECONDS

    def _boot(
        self, vmi: JsonObj, vm: JsonObj | None, guest: Guest, status: JsonObj
    ) -> float | None:
        """A Scheduled VMI: Running once the boot delay has passed (Failed when the VM asks
        to fail, and paused when it starts paused). The wait left while it is still
        Scheduled, else None."""
        waited = self._age(vmi["metadata"]["uid"], "Scheduled")
        if waited < self.cfg.boot_delay:
            return self.cfg.boot_delay - waited
        if flag(ANN_FAIL, vmi, vm):
            self._power_off(vmi, status, "Failed")
            return None
        guest.power_off = None  # from a run before this one
        self._enter(vmi, status, "Running")
        guest.serial(vmi["metadata"]["uid"]).write_once("boot", boot_lines(vmi, OS_INFO))
        if (vmi.get("spec") or {}).get("startStrategy") == "Paused":
            status["conditions"] = set_condition(
                list(status.get("conditions") or []),
                "Paused",
                "True",
                "PausedByUser",  # virt-launcher starts the domain paused for the user
                "VMI was paused by user",
            )
        return None

    def _uptime(
        self, vmi: JsonObj, vm: JsonObj | None, guest: Guest, status: JsonObj
    ) -> Uptime | None:
        """A Running VMI's guest: powered off when it failed or shut itself down (None),
        else its boot and agent as time goes (AgentConnected and guestOSInfo in `status`)."""
        if flag(ANN_FAIL, vmi, vm) or guest.power_off is not None:
            final = guest.power_off or "Failed"
            log = guest.serial(vmi["metadata"]["uid"])
            last = power_down_lines() if final == "Succeeded" else panic_lines(OS_INFO)
            log.write_once("end", last)
            log.end()
            self._power_off(vmi, status, final)
            return None
        up = self._age(vmi["metadata"]["uid"], "Running")
        boot, agent_at = self.cfg.guest_boot_delay, self.cfg.guest_boot_delay + self.cfg.agent_delay
        agent_on = guest.agent_connected and self.cfg.agent and not flag(ANN_NO_AGENT, vmi, vm)
        agent = agent_on and up >= agent_at
        conds = list(status.get("conditions") or [])
        if agent:
            conds = set_condition(conds, "AgentConnected", "True")
            status["guestOSInfo"] = dict(OS_INFO)
        else:
            conds = drop_condition(conds, "AgentConnected")
            status.pop("guestOSInfo", None)
        status["conditions"] = conds
        credentials_condition(vmi, guest, status)
        waits = [t - up for t in (boot, agent_at) if t > up and (t == boot or agent_on)]
        return Uptime(up >= boot, agent, soonest(*waits))

    def _disk_error(self, vmi: JsonObj, guest: Guest, status: JsonObj) -> float | None:
        """A Running guest whose storage fails: QEMU pauses it (errorPolicy stop, KubeVirt's
        default) and virt-handler reports Paused, reason PausedIOError. virt-handler then
        resumes the domain itself (virt-launcher's SyncVMI resumes any pause it did not make
        for a user), retrying on the ioErrorRetryManager's back-off while the error lasts:
        one wait, doubling up to 3 min. Each failed try pauses the guest again at once; the
        condition is kept across it here (KubeVirt drops and re-adds it). A repaired disk
        lets the next try resume it for good; so does an unpause. A guest paused for its
        user does no I/O. The wait until the next try, or None."""
        uid = vmi["metadata"]["uid"]
        now = self._clock()
        paused = condition({"status": status}, "Paused")
        if paused is not None and paused.get("reason") != IO_ERROR_PAUSE[0]:
            return None
        conds = list(status.get("conditions") or [])
        if paused is None:
            if not guest.disk_failing:
                self._io_retry.pop(uid, None)
                return None
            wait = self.cfg.io_error_retry_delay
            status["conditions"] = set_condition(conds, "Paused", "True", *IO_ERROR_PAUSE)
            self._io_retry[uid] = (now + wait, wait)
            return wait
        due, wait = self._io_retry.get(uid, (now, self.cfg.io_error_retry_delay))
        if now < due:
            return due - now
        if guest.disk_failing:  # resumed, and paused again by the next write that failed
            wait = min(2 * wait, MAX_IO_ERROR_RETRY)
            self._io_retry[uid] = (now + wait, wait)
            return wait
        self._io_retry.pop(uid, None)
        status["conditions"] = drop_condition(conds, "Paused")
        return None

    def _live_migratable(self, vmi: JsonObj, conds: list[JsonObj]) -> list[JsonObj]:
        """LiveMigratable as virt-handler reports it: False while a PVC is not shared (RWX)."""
        ns = vmi["metadata"]["namespace"]
        status, reason, message = live_migratable(vmi, lambda c: self.pvcs.get(ns, c))
        if status == "False":
            return set_condition(conds, "LiveMigratable", status, reason, message)
        return set_condition(conds, "LiveMigratable", "True")

    def _power_off(self, vmi: JsonObj, status: JsonObj, final: str) -> None:
        self._launcher_errors.pop(vmi["metadata"]["uid"], None)
        self._enter(vmi, status, final)
        status["conditions"] = drop_condition(
            list(status.get("conditions") or []), "AgentConnected"
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
        late = KILL_LATE if grace > 0 and flag(ANN_KILL_LATE, vmi, vm) else 0.0
        done_at = min(self.cfg.acpi_shutdown_delay, grace) if acpi else grace + late
        if elapsed >= done_at:
            log = guest.serial(vmi["metadata"]["uid"])
            if acpi:  # else killed at the end of the grace period: the guest says nothing
                log.write_once("end", power_down_lines())
            log.end()
            self._power_off(vmi, status, "Succeeded" if acpi else _destroyed(vmi, grace))
            return None
        return done_at - elapsed


def _destroyed(vmi: JsonObj, grace: float) -> str:
    """The phase of a VMI whose domain was destroyed at the end of its grace period: Failed
    when the domain has ACPI and the VMI a grace period (it was asked to shut down and did
    not), Succeeded otherwise, a forced stop's grace of 0 too (virt-handler's
    calculateVmPhaseForStatusReason, isACPIEnabled). The simulator said Succeeded always."""
    features = ((vmi.get("spec") or {}).get("domain") or {}).get("features") or {}
    has_acpi = (features.get("acpi") or {}).get("enabled") is not False
    return "Failed" if has_acpi and grace > 0 else "Succeeded"


def soonest(*waits: float | None) -> float | None:
    """The earliest of the waits given, None when there is none."""
    due = [w for w in waits if w is not None]
    return min(due) if due else None
