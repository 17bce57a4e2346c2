"""The one place a pass's decisions touch the cluster."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from wukong.adapters.cdi import Cdi
from wukong.adapters.events import EventRecorder
from wukong.adapters.kube import Kube
from wukong.adapters.kubevirt import KubeVirt
from wukong.adapters.multus import Multus
from wukong.adapters.storage import Storage
from wukong.adapters.wukongs import Wukongs
from wukong.api import JsonObj
from wukong.errors import (
    AlreadyExists,
    ApiError,
    Conflict,
    Forbidden,
    TransientError,
    WukongError,
)
from wukong.reconcile.actions import (
    Action,
    AddVolume,
    CreateChild,
    DeleteChild,
    Emit,
    ExpandDisk,
    Failed,
    PatchChild,
    RemoveVolume,
    VmCall,
    told,
)
from wukong.reconcile.admission import OPERATOR_DENIED

log = logging.getLogger(__name__)
KUBEVIRT_CALLS = (VmCall, AddVolume, RemoveVolume)


@dataclass
class Outcome:
    """What happened to a pass's actions: failures by action, and whether to stop."""

    failures: dict[Action, WukongError] = field(default_factory=dict)
    transient: bool = False
    created: list[JsonObj] = field(default_factory=list)  # children this pass created
    patched: list[JsonObj] = field(default_factory=list)  # children as its patches left them
    done: set[Action] = field(default_factory=set)  # the actions that went through

    @property
    def failed(self) -> dict[Action, Failed]:
        """The failures as the planners' `fold` reads them."""
        return {action: classify(action, error) for action, error in self.failures.items()}


# virt-api writes a start, stop or restart into the VM's stateChangeRequests with a JSON
# patch that first tests what it read; when virt-controller changes them in between, virt-api
# means to answer 409 with these words (pkg/virt-api/rest/lifecycle.go). A lost race, not the
# VM's state: tried again. (v1.7.0 answers 500 instead, the API server's 422 lacking the
# words it looks for: a 5xx, retried anyway.)
LOST_RACE = "jsonpatch test operation does not apply"
# kube-apiserver's authorizer, refusing the operator itself: 'User "system:serviceaccount:…"
# cannot update resource "virtualmachines/stop" in API group …' (and, right after an API
# server restart, "RBAC: clusterrole … not found" while its informers sync). KubeVirt's own
# 403s (a pause of a VMI with a liveness probe) do not say this. One pattern with the
# planners' (admission.OPERATOR_DENIED), which word it for the Wukong's status.
DENIED_TO_OPERATOR = OPERATOR_DENIED


def wrong_state(action: Action, error: WukongError) -> bool:
    """KubeVirt's 409 to a call: the VM is in the wrong state for it, an answer to report.
    Not for a stop: its 409 "VM is not running" means the VM has stopped already, or is
    between a restart's two steps (whose pending Start would run it again); either way the
    next pass looks again, after the queue's backoff, and finds it Done or stops the VMI
    the restart makes (docs/decisions.md, "A stop right after a restart")."""
    if not isinstance(error, Conflict) or not isinstance(action, KUBEVIRT_CALLS):
        return False
    if LOST_RACE in str(getattr(error, "message", "") or error):
        return False
    return not (isinstance(action, VmCall) and action.verb == "stop")


def classify(action: Action, error: WukongError) -> Failed:
    """Transient (retry), refused (KubeVirt's 409: the VM is in the wrong state) or
    permanent; with the API's own message, as `ApiError.said` says it (a proxy's HTML
    page as its title, not whole: conditions and Events quote it)."""
    message = str(getattr(error, "message", "") or error)
    code = error.status if isinstance(error, ApiError) else None
    said = (error.said or message) if isinstance(error, ApiError) else message
    if wrong_state(action, error):
        return Failed("refused", said, code)
    if (
        isinstance(error, Forbidden)
        and isinstance(action, KUBEVIRT_CALLS)
        and DENIED_TO_OPERATOR.search(message)
    ):
        # Not KubeVirt refusing the user's request: the operator's own rights, as the API
        # server's authorizer sees them now. Made again, with the queue's backoff.
        return Failed("transient", said, code)
    if isinstance(error, TransientError):
        return Failed("transient", said, code)
    return Failed("permanent", said, code)


def stopped_at(outcome: Outcome) -> tuple[Action, WukongError]:
    """The failure that stopped a run's actions: the last one met (those before it, gone
    past, were logged as they came)."""
    action, error = list(outcome.failures.items())[-1]
    return action, error


class Executor:
    """Performs actions through the adapters; each action is idempotent."""

    def __init__(self, kube: Kube, *, host: str = "") -> None:
        self.kubevirt = KubeVirt(kube)
        self.cdi = Cdi(kube)
        self.storage = Storage(kube)
        self.multus = Multus(kube)
        self.wukongs = Wukongs(kube)
        self.events = EventRecorder(kube, host=host)

    async def run(
        self, owner: JsonObj, actions: list[Action], *, stop_on_failure: bool = False
    ) -> Outcome:
        """Perform `actions` in order; stop at the first transient failure (retry later),
        note permanent ones and go on (they are reported in status and Events). With
        `stop_on_failure` (deletion), any failure stops: later steps rely on earlier ones.

        Events are best-effort and describe the status this pass writes whatever the
        actions do, so outside deletion they are posted concurrently with the actions,
        not in their way (their timestamps still follow the plan's order); but an Event
        tied to actions (`Emit.after`: "MigrationStarted" with its create) goes only once
        they went through, in deletion too, where it follows them."""
        outcome = Outcome()
        if stop_on_failure:
            await self._in_order(owner, actions, outcome, stop_on_failure=True)
            return outcome
        events = [a for a in actions if isinstance(a, Emit) and not a.after]
        rest: list[Action] = [a for a in actions if not isinstance(a, Emit)]
        await asyncio.gather(
            self._in_order(owner, rest, outcome, stop_on_failure=False),
            *(self.events.post(owner, e.type, e.reason, e.message) for e in events),
        )
        tied = [a for a in actions if isinstance(a, Emit) and a.after]
        await self.post_events(owner, told(tied, outcome.done))
        return outcome

    async def post_events(self, owner: JsonObj, events: list[Emit]) -> None:
        """Post Events one after the other, so their order is the plan's; best-effort (the
        recorder logs and drops a failure)."""
        for event in events:
            await self.events.post(owner, event.type, event.reason, event.message)

    async def _in_order(
        self, owner: JsonObj, actions: list[Action], outcome: Outcome, *, stop_on_failure: bool
    ) -> None:
        """Perform `actions` one by one. A failure that stops them is not logged here: the
        pass raises it (`stopped_at`) and its worker logs it, once; one gone past is."""
        namespace = owner["metadata"]["namespace"]
        for action in actions:
            if isinstance(action, Emit) and not all(a in outcome.done for a in action.after):
                continue  # what it reports did not happen (`Emit.after`)
            try:
                written = await self._one(namespace, owner, action)
            except WukongError as exc:
                outcome.failures[action] = exc
                # KubeVirt answers 409 when the VM is in the wrong state: a refusal to
                # report, not a race to retry.
                refused = wrong_state(action, exc)
                if isinstance(exc, TransientError) and not refused:
                    outcome.transient = True
                    break
                if stop_on_failure:
                    break
                # Reported in status and an Event: a refusal is the answer to a request in
                # the wrong state (a user's), a permanent failure one for the administrator.
                level = logging.INFO if refused else logging.WARNING
                log.log(level, "%s failed: %s", type(action).__name__, exc)
            else:
                outcome.done.add(action)
                if written is None:
                    continue
                if isinstance(action, PatchChild):
                    outcome.patched.append(written)
                else:
                    outcome.created.append(written)

    async def _one(self, namespace: str, owner: JsonObj, action: Action) -> JsonObj | None:
        """Perform one action; return the object it created or patched, if it did either."""
        match action:
            case Emit(type=type_, reason=reason, message=message):
                await self.events.post(owner, type_, reason, message)
            case CreateChild():
                try:
                    return await self._create(namespace, action)
                except AlreadyExists:
                    pass  # our earlier pass (or a crashed one) already made it
            case PatchChild(kind=kind, name=name, patch=patch, uid=uid):
                return await self._patch(namespace, kind, name, patch, uid)
            case DeleteChild():
                await self._delete(namespace, action)
            case ExpandDisk(claim=claim, request=request, uid=uid):
                await self.storage.expand_pvc(namespace, claim, request, uid=uid)
            case VmCall():
                await self._call(namespace, action)
            case AddVolume(vm=vm, disk=disk, device=device, source=source):
                await self.kubevirt.add_volume(namespace, vm, disk, device, source)
            case RemoveVolume(vm=vm, disk=disk):
                await self.kubevirt.remove_volume(namespace, vm, disk)
        return None

    async def _create(self, namespace: str, action: CreateChild) -> JsonObj:
        creators = {
            "VirtualMachine": self.kubevirt.create_vm,
            "DataVolume": self.cdi.create_dv,
            "PersistentVolumeClaim": self.storage.create_pvc,
            "NetworkAttachmentDefinition": self.multus.create_nad,
            "VirtualMachineInstanceMigration": self.kubevirt.create_migration,
            "VirtualMachineSnapshot": self.kubevirt.create_snapshot,
            "VirtualMachineRestore": self.kubevirt.create_restore,
        }
        return await creators[action.kind](namespace, action.body)

    async def _patch(
        self, namespace: str, kind: str, name: str, patch: JsonObj, uid: str | None
    ) -> JsonObj:
        """Every patch of a child is pinned to the object it was decided from (`uid`): one
        made anew under its name (by a user, another controller, or our own recreate) is
        not changed by a decision about its predecessor (a Conflict: decided again)."""
        if kind == "VirtualMachine":
            return await self.kubevirt.patch_vm(namespace, name, patch, uid=uid)
        if kind == "NetworkAttachmentDefinition":
            config = patch["spec"]["config"]
            return await self.multus.set_config(namespace, name, config, uid=uid)
        meta = patch.get("metadata", {})
        if kind == "DataVolume":
            return await self.cdi.patch_dv_metadata(namespace, name, meta, uid=uid)
        return await self.storage.patch_pvc_metadata(namespace, name, meta, uid=uid)

    async def _delete(self, namespace: str, action: DeleteChild) -> None:
        name, uid = action.name, action.uid
        if action.kind == "VirtualMachine":
            await self.kubevirt.delete_vm(namespace, name, uid=uid)
        elif action.kind == "DataVolume":
            await self.cdi.delete_dv(
                namespace, name, uid=uid, orphan=action.orphan, foreground=action.foreground
            )
        elif action.kind == "PersistentVolumeClaim":
            await self.storage.delete_pvc(namespace, name, uid=uid)
        elif action.kind == "VirtualMachineInstance":
            await self.kubevirt.delete_vmi(namespace, name, uid=uid)
        elif action.kind == "VirtualMachineInstanceMigration":
            await self.kubevirt.delete_migration(namespace, name, uid=uid)
        elif action.kind == "VirtualMachineRestore":
            await self.kubevirt.delete_restore(namespace, name, uid=uid)
        else:
            await self.multus.delete_nad(namespace, name, uid=uid)

    async def _call(self, namespace: str, call: VmCall) -> None:
        if call.verb == "start":
            await self.kubevirt.start(namespace, call.vm)
        elif call.verb == "stop":
            await self.kubevirt.stop(namespace, call.vm, call.grace_period)
        elif call.verb == "restart":
            await self.kubevirt.restart(namespace, call.vm, force=call.force)
        elif call.verb == "pause":
            await self.kubevirt.pause(namespace, call.vm)
        else:
            await self.kubevirt.unpause(namespace, call.vm)
