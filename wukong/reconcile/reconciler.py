"""One reconcile pass (SPEC §2): read the cache, decide, act, write status once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from wukong.adapters.kube import JsonObj
from wukong.api import names
from wukong.api.v1alpha1 import Wukong
from wukong.errors import Conflict, NotFound, PermanentError, TransientError, WukongError
from wukong.reconcile.actions import CreateChild, Emit, ExpandDisk, VmCall
from wukong.reconcile.admission import admission_verdict
from wukong.reconcile.conditions import Cond
from wukong.reconcile.decide import Plan, decide
from wukong.reconcile.deletion import plan_deletion
from wukong.reconcile.disks import refusal_message
from wukong.reconcile.executor import Executor, Outcome
from wukong.reconcile.observed import Observed
from wukong.reconcile.status import merge_conditions
from wukong.reconcile.tenancy import POLICY_NAME
from wukong.reconcile.timefmt import iso

log = logging.getLogger(__name__)

# Cache kinds (the informers' names for the resources the operator watches).
WUKONGS = "wukongs"
VMS = "virtualmachines"
VMIS = "virtualmachineinstances"
DVS = "datavolumes"
PVCS = "persistentvolumeclaims"
NADS = "network-attachment-definitions"
STORAGE_CLASSES = "storageclasses"
NETWORK_POLICIES = "wukongnetworkpolicies"
CHILD_KINDS = {
    "VirtualMachine": VMS,
    "DataVolume": DVS,
    "PersistentVolumeClaim": PVCS,
    "NetworkAttachmentDefinition": NADS,
}
# A pass decides again after creating children at most this many times (networks, then
# disks, then the VM is the longest chain).
SETTLE_ROUNDS = 3
CHAINABLE = (CreateChild, Emit)


class Reader(Protocol):
    """What a pass reads: the watch caches."""

    def get(self, kind: str, namespace: str, name: str) -> JsonObj | None:
        """One cached object."""

    def by_label(self, kind: str, label: str, value: str) -> list[JsonObj]:
        """Cached objects with a label value."""

    def list(self, kind: str, namespace: str | None = None, selector: Any = None) -> list[JsonObj]:
        """Cached objects of a kind."""


def observe(store: Reader, cr: Wukong, now: datetime) -> Observed:
    """Gather a Wukong's children from the caches into one frozen `Observed`."""
    ns, name = cr.metadata.namespace, cr.metadata.name
    vm = names.vm_name(name)

    def collect(kind: str) -> dict[str, JsonObj]:
        found = {
            o["metadata"]["name"]: o
            for o in store.by_label(kind, names.LABEL_WUKONG, name)
            if o["metadata"].get("namespace") == ns
        }
        for disk in cr.spec.disks:
            claim = names.disk_claim_name(name, disk.name)
            if claim not in found and (obj := store.get(kind, ns, claim)) is not None:
                found[claim] = obj
        return found

    nads: dict[str, JsonObj] = {}
    for net in cr.spec.networks:
        ref = net.nad_name or names.nad_name(name, net.name)
        nad_ns, _, nad = ref.rpartition("/")
        if (obj := store.get(NADS, nad_ns or ns, nad)) is not None:
            nads[f"{nad_ns or ns}/{nad}"] = obj
    for obj in store.by_label(NADS, names.LABEL_WUKONG, name):
        if obj["metadata"].get("namespace") == ns:
            nads[f"{ns}/{obj['metadata']['name']}"] = obj
    return Observed(
        now=now,
        vm=store.get(VMS, ns, vm),
        vmi=store.get(VMIS, ns, vm),
        data_volumes=collect(DVS),
        claims=collect(PVCS),
        nads=nads,
        storage_classes={o["metadata"]["name"]: o for o in store.list(STORAGE_CLASSES)},
        network_policy=store.get(NETWORK_POLICIES, "", POLICY_NAME),
    )


def merge_patch(old: Any, new: Any) -> Any:
    """The RFC 7386 merge patch that turns `old` into `new`: keys that vanished, at any
    depth, are sent as null (a plain `new` would leave them behind, e.g. a stale deadline)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch = {k: None for k in old if k not in new or new[k] is None}
    for key, value in new.items():
        if value is None:
            continue
        patch[key] = merge_patch(old.get(key), value) if key in old else value
    return patch


def _clean(value: Any) -> Any:
    """Drop None values so a status compares equal to what the API server stored."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


class Reconciler:
    """Reconciles one Wukong key per call; returns seconds until the next look, or None."""

    def __init__(
        self,
        store: Reader,
        executor: Executor,
        *,
        stall_after: float = 300.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.executor = executor
        self.stall_after = stall_after
        self.clock = clock

    async def reconcile(self, key: str) -> float | None:
        """One pass for `namespace/name`."""
        namespace, _, name = key.partition("/")
        raw = self.store.get(WUKONGS, namespace, name)
        if raw is None:
            return None  # gone: nothing to do, its children go with the garbage collector
        try:
            cr = Wukong.from_dict(raw)
        except ValidationError as exc:
            await self._unreadable(raw, exc)
            return None
        status: JsonObj = dict(raw.get("status") or {})
        finalizers: list[str] = list(raw["metadata"].get("finalizers") or [])
        if cr.metadata.deletion_timestamp is not None:
            return await self._delete(raw, cr, status, finalizers)
        if names.FINALIZER not in finalizers:
            await self.executor.wukongs.set_finalizers(
                namespace, name, [*finalizers, names.FINALIZER], raw["metadata"]["resourceVersion"]
            )
            return None  # the write wakes us again
        now = self.clock()
        seen = observe(self.store, cr, now)
        plan = decide(cr, status, seen, stall_after=self.stall_after)
        if plan.needs_guest_check:  # the guest agent is not watchable: ask, then decide again
            seen = await self._ask_guest(cr, seen)
            plan = decide(cr, status, seen, stall_after=self.stall_after)
        outcome = await self.executor.run(raw, plan.actions)
        plan, outcome = await self._settle(raw, cr, plan, outcome)
        new_status = _after(plan.status, status, outcome)
        retry = await self._refusals(raw, cr, status, new_status, outcome)
        await self._write_status(raw, status, new_status)
        if outcome.transient:
            raise TransientError(f"{len(outcome.failures)} action(s) failed; retrying")
        if retry is not None and (plan.requeue_after is None or retry < plan.requeue_after):
            return retry
        return plan.requeue_after

    async def _refusals(
        self, raw: JsonObj, cr: Wukong, old: JsonObj, new: JsonObj, outcome: Outcome
    ) -> float | None:
        """Children the API server refused: condition and Event now, a retry later."""
        now = self.clock()
        cond, events, retry = admission_verdict(outcome.failures, old.get("conditions") or [], now)
        if cond is not None:
            conds = new.get("conditions") or []
            new["conditions"] = merge_conditions(conds, [cond], now, cr.metadata.generation)
        if events:
            await self.executor.run(raw, list(events))
        return retry

    async def _settle(
        self, raw: JsonObj, cr: Wukong, plan: Plan, outcome: Outcome
    ) -> tuple[Plan, Outcome]:
        """Decide again while this pass's creations change the picture, so one status write
        says what the watch would otherwise make the next passes write one by one (the VM
        we just created makes the Wukong Starting at once). Only creations and Events may
        follow in the same pass: anything else (a KubeVirt call above all) waits until the
        status that led to it is written, as exactly-once asks."""
        remember = getattr(self.store, "remember", None)
        for _ in range(SETTLE_ROUNDS):
            if remember is None or outcome.failures or not outcome.created:
                break
            for obj in outcome.created:
                if obj.get("kind") in CHILD_KINDS:
                    remember(CHILD_KINDS[obj["kind"]], obj)
            seen = observe(self.store, cr, self.clock())
            again = decide(cr, _clean(plan.status), seen, stall_after=self.stall_after)
            if again.needs_guest_check or not all(isinstance(a, CHAINABLE) for a in again.actions):
                break
            plan, outcome = again, await self.executor.run(raw, again.actions)
        return plan, outcome

    async def _ask_guest(self, cr: Wukong, seen: Observed) -> Observed:
        """Read the guest's mounted filesystems through KubeVirt's guest-agent call."""
        vm = names.vm_name(cr.metadata.name)
        try:
            found = await self.executor.kubevirt.filesystems(cr.metadata.namespace, vm)
        except WukongError as exc:
            message = getattr(exc, "message", str(exc)) or str(exc)
            return replace(seen, guest_error=message.strip())
        return replace(seen, guest_filesystems=tuple(found))

    async def _delete(
        self, raw: JsonObj, cr: Wukong, status: JsonObj, finalizers: list[str]
    ) -> float | None:
        if names.FINALIZER not in finalizers:
            return None
        now = self.clock()
        plan = plan_deletion(cr, status, observe(self.store, cr, now), stall_after=self.stall_after)
        outcome = await self.executor.run(raw, plan.actions, stop_on_failure=True)
        if plan.finalize and not outcome.failures:
            rest = [f for f in finalizers if f != names.FINALIZER]
            meta = raw["metadata"]
            try:
                await self.executor.wukongs.set_finalizers(
                    meta["namespace"], meta["name"], rest, meta["resourceVersion"]
                )
            except NotFound:
                log.info("Wukong %s/%s is already gone", meta["namespace"], meta["name"])
            return None
        new_status = dict(status)
        new_status["phase"] = "Deleting"
        new_status["deletion"] = plan.deletion
        if status.get("phase") != "Deleting":
            history = list(status.get("history") or [])
            history.append(
                {
                    "from": status.get("phase") or "Pending",
                    "to": "Deleting",
                    "reason": "DeletionRequested",
                    "time": iso(now),
                }
            )
            new_status["history"] = history[-10:]
        new_status["conditions"] = merge_conditions(
            status.get("conditions") or [], plan.conditions, now, cr.metadata.generation
        )
        try:
            await self._write_status(raw, status, new_status)
        except NotFound:
            return None  # finished meanwhile (another pass removed the finalizer): done
        if outcome.failures:
            raise TransientError(f"deletion step failed: {next(iter(outcome.failures.values()))}")
        return plan.requeue_after

    async def _write_status(self, raw: JsonObj, old: JsonObj, new: JsonObj) -> None:
        """Patch status only when it changed; vanished keys are nulled by the merge patch."""
        if _clean(new) == _clean(old):
            return
        meta = raw["metadata"]
        written = await self.executor.wukongs.patch_status(
            meta["namespace"], meta["name"], meta["uid"], merge_patch(old, new)
        )
        # Write-through: a pass woken before the watch delivers this write must not decide
        # from the old status (it would post the same Events and write the same status again).
        remember = getattr(self.store, "remember", None)
        if remember is not None and written.get("metadata"):
            remember(WUKONGS, written)

    async def _unreadable(self, raw: JsonObj, exc: ValidationError) -> None:
        """An object the models cannot read (e.g. written before the CRD's rules): say so."""
        message = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        log.warning("invalid Wukong %s: %s", raw["metadata"].get("name"), message)
        status: JsonObj = dict(raw.get("status") or {})
        conds = merge_conditions(
            status.get("conditions") or [],
            [Cond("SpecValid", False, "InvalidSpec", message)],
            self.clock(),
            raw["metadata"].get("generation"),
        )
        # Any spec the API server accepted gets a phase: it waits in Pending (or stays where
        # it was) and observedGeneration says this generation was looked at.
        new = status | {
            "phase": status.get("phase") or "Pending",
            "observedGeneration": raw["metadata"].get("generation"),
            "conditions": conds,
        }
        if _clean(new) != _clean(status):
            await self.executor.run(raw, [Emit("Warning", "InvalidSpec", message)])
            await self._write_status(raw, status, new)


def _after(planned: JsonObj, old: JsonObj, outcome: Outcome) -> JsonObj:
    """Fold what failed into the status: a lifecycle call that failed transiently is retried
    next pass; one KubeVirt refused (409) is reported and not retried; observedGeneration
    moves only when every action succeeded."""
    status = dict(planned)
    if outcome.failures:
        status["observedGeneration"] = old.get("observedGeneration")
    for action, error in outcome.failures.items():
        if isinstance(action, ExpandDisk) and isinstance(error, PermanentError):
            # Remembered per size, so the planner does not ask again until the spec changes.
            reason = getattr(error, "message", str(error))
            status["volumes"] = [
                v | {"message": f"{refusal_message(action.size)}: {reason}"}
                if v.get("name") == action.disk
                else v
                for v in status.get("volumes") or []
            ]
        if isinstance(action, VmCall) and status.get("lifecycleState"):
            state = dict(status["lifecycleState"])
            if isinstance(error, PermanentError | Conflict):
                state |= {
                    "state": "Failed",
                    "issued": True,
                    "message": f"KubeVirt refused {action.verb}: {error}",
                }
            elif action.force and state.get("escalated") and not state.get("force"):
                # The forced escalation of a graceful stop failed (5xx, timeout): clear the
                # mark so the next pass escalates again, forced (issue 15).
                state |= {"escalated": False, "message": f"forced {action.verb} failed: {error}"}
            else:
                state["issued"] = False
            status["lifecycleState"] = state
    return status
