"""virt-api lifecycle and guest-agent subresources (KubeVirt rest/lifecycle.go, subresource.go).

Each handler reads fresh objects from the API server, validates like virt-api and writes
through the API server; the simulated controllers then react as KubeVirt's would.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from ._kube import EVENTS, VMIS, VMS, ApiError, JsonObj, Kube
from .api_errors import Reply, bad_request, conflict, dry_run, internal, not_found
from .events import soft_rebooted
from .guest import Guest
from .objects import condition, condition_true, is_final, now_iso, phase, run_strategy
from .vm_status import change_request_ops
from .vmi_status import capacities, ready_condition

AGENT_MISSING = "VMI does not have guest agent connected"


class Lifecycle:
    """start/stop/restart (VM), pause/unpause/softreboot and guest-agent GETs (VMI)."""

    def __init__(
        self, kube: Kube, guest: Callable[[str, str], Guest], report_interval: float = 1.0
    ) -> None:
        self.kube, self.guest = kube, guest
        self.report_interval = report_interval  # SimConfig.guest_report_interval

    async def _vm(self, ns: str, name: str) -> JsonObj | Reply:
        got = await self.kube.get_or_none(VMS, ns, name)
        return not_found("virtualmachine", name) if got is None else got

    async def _patch_vm(self, ns: str, name: str, ops: list[JsonObj], sub: str, dry: bool) -> Reply:
        query = {"dryRun": "All"} if dry else None
        try:
            await self.kube.request(
                "PATCH", VMS.path(ns, name, sub), ops, "application/json-patch+json", query
            )
        except ApiError as err:
            message = str(err.body.get("message", err)) if isinstance(err.body, dict) else str(err)
            if err.status == 422 and "test" in message:  # lost the optimistic-concurrency race
                return conflict("virtualmachine", name, message)
            return internal(message)
        return Reply(202)

    async def start(self, ns: str, name: str, body: JsonObj | None) -> Reply:
        """PUT virtualmachines/NAME/start."""
        vm = await self._vm(ns, name)
        if isinstance(vm, Reply):
            return vm
        vmi = await self.kube.get_or_none(VMIS, ns, name)
        if vmi is not None and not is_final(vmi) and phase(vmi) not in ("", "Unknown"):
            return conflict("virtualmachine", name, "VM is already running")
        paused = bool((body or {}).get("paused"))
        dry = dry_run(body)
        strategy = run_strategy(vm)
        start: JsonObj = {"action": "Start"}
        if paused:
            start["data"] = {"paused": "true"}
        if strategy == "Halted":
            if paused:
                return await self._requests(vm, [start], dry)
            return await self._patch_vm(ns, name, _running_ops(vm, True), "", dry)
        if strategy in ("RerunOnFailure", "Manual"):
            if strategy == "RerunOnFailure" and phase(vmi) == "Failed":
                return conflict(
                    "virtualmachine",
                    name,
                    "RerunOnFailure does not support starting VM from failed state",
                )
            restart = vmi is not None and (
                phase(vmi) == "Succeeded" if strategy == "RerunOnFailure" else is_final(vmi)
            )
            changes = [start]
            if restart and vmi is not None:
                changes = [{"action": "Stop", "uid": vmi["metadata"]["uid"]}, start]
            return await self._requests(vm, changes, dry)
        return conflict(
            "virtualmachine", name, f"{strategy} does not support manual start requests"
        )

    async def stop(self, ns: str, name: str, body: JsonObj | None) -> Reply:
        """PUT virtualmachines/NAME/stop."""
        vm = await self._vm(ns, name)
        if isinstance(vm, Reply):
            return vm
        vmi = await self.kube.get_or_none(VMIS, ns, name)
        grace = (body or {}).get("gracePeriod")
        dry = dry_run(body)
        old_grace = None
        if vmi is not None and not is_final(vmi) and grace is not None:
            old_grace = (vmi.get("spec") or {}).get("terminationGracePeriodSeconds")
            path = "/spec/terminationGracePeriodSeconds"
            ops: list[JsonObj] = [{"op": "add", "path": path, "value": grace}]
            if old_grace is not None:
                ops.insert(0, {"op": "test", "path": path, "value": old_grace})
            try:
                await self.kube.request(
                    "PATCH",
                    VMIS.path(ns, name),
                    ops,
                    "application/json-patch+json",
                    {"dryRun": "All"} if dry else None,
                )
            except ApiError as err:
                return internal(str(err))
        strategy = run_strategy(vm)
        running = vmi is not None and not is_final(vmi)
        if strategy in ("Halted", "RerunOnFailure", "Manual"):
            if not running or vmi is None:
                return conflict("virtualmachine", name, "VM is not running")
            if strategy == "Halted" and (
                grace is None or (old_grace is not None and grace >= old_grace)
            ):
                return conflict(
                    "virtualmachine",
                    name,
                    "Halted only supports manual stop requests with a shorter graceperiod",
                )
            return await self._requests(
                vm, [{"action": "Stop", "uid": vmi["metadata"]["uid"]}], dry
            )
        return await self._patch_vm(ns, name, _running_ops(vm, False), "", dry)

    async def restart(self, ns: str, name: str, body: JsonObj | None) -> Reply:
        """PUT virtualmachines/NAME/restart."""
        grace = (body or {}).get("gracePeriodSeconds")
        if grace is not None and grace > 0:
            return bad_request("For force restart, only gracePeriod=0 is supported for now")
        if grace is not None and grace < 0:
            return bad_request("gracePeriod has to be greater or equal to 0")
        vm = await self._vm(ns, name)
        if isinstance(vm, Reply):
            return vm
        strategy = run_strategy(vm)
        if strategy in ("Halted", "Once"):
            return conflict(
                "virtualmachine",
                name,
                f"RunStategy {strategy} does not support manual restart requests",
            )
        vmi = await self.kube.get_or_none(VMIS, ns, name)
        if vmi is None:
            return conflict("virtualmachine", name, "VM is not running: Halted")
        reply = await self._requests(
            vm,
            [{"action": "Stop", "uid": vmi["metadata"]["uid"]}, {"action": "Start"}],
            dry_run(body),
        )
        if reply.status == 202 and grace == 0 and not dry_run(body):
            # Force: KubeVirt kills the launcher pod with a 1 s grace; we shorten the VMI's.
            ops = [{"op": "add", "path": "/spec/terminationGracePeriodSeconds", "value": 1}]
            try:
                await self.kube.json_patch(VMIS, ns, name, ops)
            except ApiError as err:
                if err.status != 404:
                    return internal(str(err))
        return reply

    async def _requests(self, vm: JsonObj, changes: list[JsonObj], dry: bool) -> Reply:
        try:
            ops = change_request_ops(vm, changes)
        except ValueError as err:
            return internal(str(err))
        meta = vm["metadata"]
        return await self._patch_vm(meta["namespace"], meta["name"], ops, "status", dry)

    async def _vmi_state(
        self, ns: str, name: str, check: Callable[[JsonObj], str | None]
    ) -> JsonObj | Reply:
        vmi = await self.kube.get_or_none(VMIS, ns, name)
        if vmi is None:
            return not_found("virtualmachineinstance", name)
        problem = check(vmi)
        return conflict("virtualmachineinstance", name, problem) if problem else vmi

    async def pause(self, ns: str, name: str, body: JsonObj | None) -> Reply:
        """PUT virtualmachineinstances/NAME/pause (200, empty)."""

        def check(vmi: JsonObj) -> str | None:
            if phase(vmi) != "Running":
                return "VM is not running"
            return "VMI is already paused" if condition(vmi, "Paused") is not None else None

        got = await self._vmi_state(ns, name, check)
        if isinstance(got, Reply) or dry_run(body):
            return got if isinstance(got, Reply) else Reply(200)
        return await self._set_paused(got, True)

    async def unpause(self, ns: str, name: str, body: JsonObj | None) -> Reply:
        """PUT virtualmachineinstances/NAME/unpause (200, empty)."""

        def check(vmi: JsonObj) -> str | None:
            if phase(vmi) != "Running":
                return "VMI is not running"
            return None if condition(vmi, "Paused") is not None else "VMI is not paused"

        got = await self._vmi_state(ns, name, check)
        if isinstance(got, Reply) or dry_run(body):
            return got if isinstance(got, Reply) else Reply(200)
        return await self._set_paused(got, False)

    async def _set_paused(self, vmi: JsonObj, paused: bool) -> Reply:
        """What virt-handler does once libvirt paused/resumed the domain."""
        for _ in range(5):
            status = copy.deepcopy(vmi.get("status") or {})
            conds = [c for c in status.get("conditions") or [] if c.get("type") != "Paused"]
            if paused:
                conds.append(
                    {
                        "type": "Paused",
                        "status": "True",
                        "reason": "PausedByUser",
                        "message": "VMI was paused by user",
                        "lastProbeTime": None,
                        "lastTransitionTime": now_iso(),
                    }
                )
            status["conditions"] = ready_condition(conds, paused)
            try:
                await self.kube.replace(VMIS, {**vmi, "status": status}, "status")
                return Reply(200)
            except ApiError as err:
                if err.status != 409:
                    return internal(str(err))
            meta = vmi["metadata"]
            vmi = await self.kube.get(VMIS, meta["namespace"], meta["name"])
        return internal("could not update the VMI status")

    async def softreboot(self, ns: str, name: str, body: JsonObj | None) -> Reply:
        """PUT virtualmachineinstances/NAME/softreboot (200); the guest reboots in place."""

        def check(vmi: JsonObj) -> str | None:
            if phase(vmi) != "Running":
                return "VM is not running"
            if condition_true(vmi, "Paused"):
                return "VMI is paused"
            features = ((vmi.get("spec") or {}).get("domain") or {}).get("features") or {}
            acpi_off = (features.get("acpi") or {}).get("enabled") is False
            if condition(vmi, "AgentConnected") is None and acpi_off:
                return "VMI neither have the agent connected nor the ACPI feature enabled"
            return None

        got = await self._vmi_state(ns, name, check)
        if isinstance(got, Reply):
            return got
        self.guest(ns, name).soft_reboot(got)  # what virt-handler has the domain do
        await self.kube.create(EVENTS, ns, soft_rebooted(got))
        return Reply(200)

    async def guest_get(self, ns: str, name: str, sub: str) -> Reply:
        """GET guestosinfo/userlist/filesystemlist; every failure is 500 text/plain."""

        def check(vmi: JsonObj) -> str | None:
            if phase(vmi) != "Running":
                return "VMI is not running"
            return None if condition(vmi, "AgentConnected") is not None else AGENT_MISSING

        got = await self._vmi_state(ns, name, check)
        if isinstance(got, Reply):
            return Reply(
                500, str((got.body or {}).get("message", "")) if isinstance(got.body, dict) else ""
            )
        guest = self.guest(ns, name)
        if sub == "userlist":
            return Reply(200, guest.user_list())
        interval = self.report_interval
        if sub == "filesystemlist":
            return Reply(200, {"items": guest.reported_filesystems(got, capacities(got), interval)})
        return Reply(200, guest.os_info(got, capacities(got), interval))


def _running_ops(vm: JsonObj, running: bool) -> list[JsonObj]:
    spec = vm.get("spec") or {}
    if spec.get("runStrategy") is not None:
        return [
            {"op": "test", "path": "/spec/runStrategy", "value": spec["runStrategy"]},
            {
                "op": "replace",
                "path": "/spec/runStrategy",
                "value": "Always" if running else "Halted",
            },
        ]
    return [
        {"op": "test", "path": "/spec/running", "value": spec.get("running")},
        {"op": "add", "path": "/spec/running", "value": running},
    ]
