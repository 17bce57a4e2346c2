"""One reconcile pass (SPEC §2): read the cache, decide, act, write status once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from wukong.act.executor import Executor, Outcome, stopped_at
from wukong.api import JsonObj, kinds, names
from wukong.api.objects import controlled_by
from wukong.api.spec import Action as LifecycleVerb
from wukong.api.status import WukongStatus
from wukong.api.v1alpha1 import Wukong
from wukong.errors import ApiError, NotFound, TransientError, WukongError
from wukong.reconcile.actions import (
    Action,
    AddVolume,
    CreateChild,
    Emit,
    ExpandDisk,
    RemoveVolume,
    VmCall,
    told,
)
from wukong.reconcile.admission import admit
from wukong.reconcile.children import owned_by
from wukong.reconcile.decide import Plan, decide, plan_unreadable
from wukong.reconcile.deletion import plan_deletion, stand_in
from wukong.reconcile.disks import template_volumes
from wukong.reconcile.hotplug import requested_volumes
from wukong.reconcile.lifecycle import waits_for_write
from wukong.reconcile.observed import (
    Observed,
    chained_data_source,
    own_view,
    pointed_pvc,
)
from wukong.reconcile.outcome import (
    answered_requests,
    as_written,
    deletion_refusals,
    fold,
    fold_deletion,
    not_made_events,
)
from wukong.reconcile.tenancy import POLICY_NAME

log = logging.getLogger(__name__)

# A pass decides again after creating children at most this many times (networks, then
# disks, then the VM is the longest chain).
SETTLE_ROUNDS = 3
CHAINABLE = (CreateChild, Emit)
# Passes one reconcile may run back to back when each waits for the status the last wrote
# (a request written `Accepted`, then called; a deletion step, then the next).
FOLLOW_UPS = 4
NOW = 0.0
# A pass that patched a child looks again this soon. The patch's answer is written through
# to the cache, so its own watch event changes nothing there and wakes no pass
# (`Informer.skip_unchanged`): a plan that waits on what the patch changed (an adopted
# claim, then its DataVolume) would wait for an unrelated event. Seconds, not at once: a
# planner that patched the same again each pass would write once a second, not in a loop.
LOOK_AFTER_PATCH = 1.0
# virt-api answers `addvolume` and `removevolume` before the VM shows the request (its
# volumeRequests, then its template). A pass woken meanwhile by another event (the claim's,
# the VMI's) found the VM in the cache unchanged and asked again, answered 409 "already
# exists" (test_disks, under load). The disk counts as requested until the VM in the cache
# shows it, or for this long.
VOLUME_CALL_SEEN_WITHIN = 30.0


class Reader(Protocol):
    """What a pass reads: the watch caches."""

    def get(self, kind: str, namespace: str, name: str) -> JsonObj | None:
        """One cached object."""

    def by_label(self, kind: str, label: str, value: str) -> list[JsonObj]:
        """Cached objects with a label value."""

    def list(self, kind: str, namespace: str | None = None, selector: Any = None) -> list[JsonObj]:
        """Cached objects of a kind."""

    def remember(self, kind: str, obj: JsonObj) -> None:
        """Write-through after our own write, unless the watch already brought something newer."""


def observe(store: Reader, cr: Wukong, now: datetime, scope: str | None = None) -> Observed:
    """Gather a Wukong's children from the caches into one frozen `Observed`; `scope` is the
    one namespace the caches watch (`run --namespace`), None for all."""
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
        nad_ns, nad = names.object_ref(ns, ref)
        if (obj := store.get(kinds.NAD.cache, nad_ns, nad)) is not None:
            nads[f"{nad_ns}/{nad}"] = obj
    for obj in store.by_label(kinds.NAD.cache, names.LABEL_WUKONG, name):
        if obj["metadata"].get("namespace") == ns:
            nads[f"{ns}/{obj['metadata']['name']}"] = obj
    clone_sources: dict[str, JsonObj | None] = {}
    data_sources: dict[str, JsonObj | None] = {}
    cloned: set[str] = set()
    for disk in cr.spec.disks:
        if disk.clone_source(ns) is not None or disk.data_source_ref(ns) is not None:
            cloned.add(names.disk_claim_name(name, disk.name))
        if (source := disk.clone_source(ns)) is not None and scope in (None, source[0]):
            clone_sources["/".join(source)] = store.get(kinds.PVC.cache, *source)
        if (named := disk.data_source_ref(ns)) is not None and scope in (None, named[0]):
            found = data_sources["/".join(named)] = store.get(kinds.DATA_SOURCE.cache, *named)
            if (hop := chained_data_source(found)) is not None and scope in (None, hop[0]):
                key = "/".join(hop)
                data_sources.setdefault(key, store.get(kinds.DATA_SOURCE.cache, *hop))
            if (pvc := pointed_pvc(found)) is not None and scope in (None, pvc[0]):
                clone_sources["/".join(pvc)] = store.get(kinds.PVC.cache, *pvc)
    snapshots = collect(kinds.SNAPSHOT.cache)
    asked = cr.spec.lifecycle_action
    if asked is not None and asked.snapshot_name and asked.snapshot_name not in snapshots:
        # A name the user asked for may be taken by a snapshot not of this Wukong.
        if (taken := store.get(kinds.SNAPSHOT.cache, ns, asked.snapshot_name)) is not None:
            snapshots[asked.snapshot_name] = taken
    snapshot_claims: dict[str, JsonObj] = {}
    for shot in _restore_snapshots(cr):
        if shot not in snapshots and (restored := store.get(kinds.SNAPSHOT.cache, ns, shot)):
            snapshots[shot] = restored  # a user's snapshot of the VM, not labelled
        for claim in _volume_claims(cr, snapshots.get(shot)):
            if (replaced := store.get(kinds.PVC.cache, ns, claim)) is not None:
                snapshot_claims[claim] = replaced
    vm_obj = store.get(kinds.VM.cache, ns, vm)
    vmi = store.get(kinds.VMI.cache, ns, vm)
    if vm_obj is not None and not owned_by(vm_obj, cr.metadata.uid):
        vmi = None  # another's VM's guest: not looked at (`own_view`)
    elif vmi is not None and vm_obj is not None and not controlled_by(vmi, vm_obj):
        # An earlier VM's (deleted outside Wukong, its VM made again): still terminating, or
        # still in the cache (VMs and VMIs come on two watch streams). Not this VM's guest.
        vmi = None
    pods = ((vmi or {}).get("status") or {}).get("activePods") or {}

    def about(kind: kinds.Kind, uids: Collection[str]) -> tuple[JsonObj, ...]:
        """The cached Events of `kind` about the objects of `uids`."""
        if not uids:
            return ()
        return tuple(
            e
            for e in store.list(kind.cache, ns)
            if (e.get("involvedObject") or {}).get("uid") in uids
        )

    # By owner, not only by label: a migration an earlier Wukong of this name made (its
    # label stays once `--cascade=orphan` took its ownerReference) is not this one's, even
    # when its request's fingerprint is the same (found by a source audit, s47).
    migrations = {
        n: o for n, o in collect(kinds.MIGRATION.cache).items() if owned_by(o, cr.metadata.uid)
    }
    restores = collect(kinds.RESTORE.cache)
    seen = Observed(
        now=now,
        vm=vm_obj,
        vmi=vmi,
        pod_events=about(kinds.MOUNT_EVENT, pods),
        sandbox_events=about(kinds.SANDBOX_EVENT, pods),
        data_volumes=collect(kinds.DATA_VOLUME.cache),
        claims=collect(kinds.PVC.cache),
        migrations=migrations,
        migration_events=about(
            kinds.MIGRATION_EVENT, {m["metadata"].get("uid") for m in migrations.values()}
        ),
        snapshots=snapshots,
        restores=restores,
        outside_restores=_outside_restores(store, cr, vm_obj, restores),
        snapshot_claims=snapshot_claims,
        nads=nads,
        clone_sources=clone_sources,
        data_sources=data_sources,
        clone_events=tuple(
            e
            for e in store.list(kinds.CLONE_EVENT.cache, ns)
            if (e.get("involvedObject") or {}).get("name") in cloned
        )
        if cloned
        else (),
        storage_classes={o["metadata"]["name"]: o for o in store.list(kinds.STORAGE_CLASS.cache)},
        filesystem_overhead=_filesystem_overhead(store),
        network_policy=store.get(kinds.NETWORK_POLICY.cache, "", POLICY_NAME),
        scope=scope,
        size_classes=_size_classes(store, cr),
    )
    return own_view(seen, cr)


def _outside_restores(
    store: Reader, cr: Wukong, vm: JsonObj | None, ours: Mapping[str, JsonObj]
) -> tuple[JsonObj, ...]:
    """The VirtualMachineRestore KubeVirt has locked the Wukong's VM for (its
    `status.restoreInProgress`) when it is not the Wukong's own (made by hand or by a backup
    tool): KubeVirt's InPlace restore deletes each claim and makes it again from the
    snapshot, and a claim the disk planner made again meanwhile (empty) would be taken as
    restored (deletion audit, session 48). Only while KubeVirt holds the lock: a restore it
    never takes up (a snapshot not ready, a running VM it waits for) holds nothing (session
    review: held from its creation, such a restore held the Wukong for good)."""
    if vm is None or not owned_by(vm, cr.metadata.uid):
        return ()
    locked = (vm.get("status") or {}).get("restoreInProgress")
    if not locked or locked in ours:
        return ()
    found = store.get(kinds.RESTORE.cache, cr.metadata.namespace, locked)
    return (found or {"metadata": {"name": locked, "namespace": cr.metadata.namespace}},)


def _restore_snapshots(cr: Wukong) -> list[str]:
    """The snapshots a restore uses: the one the spec asks to restore, and the one the
    restore in flight (or the last one) came from, which a later request would hide."""
    asked = cr.spec.lifecycle_action
    found = []
    if asked is not None and asked.action is LifecycleVerb.RESTORE and asked.snapshot_name:
        found.append(asked.snapshot_name)
    last = cr.status.restore
    if last is not None and last.snapshot and last.snapshot not in found:
        found.append(last.snapshot)
    return found


def _volume_claims(cr: Wukong, snapshot: JsonObj | None) -> list[str]:
    """The claim names of the snapshot's volumes the spec has no disk for."""
    lists = ((snapshot or {}).get("status") or {}).get("snapshotVolumes") or {}
    disks = {d.name for d in cr.spec.disks}
    return [
        names.disk_claim_name(cr.metadata.name, str(volume))
        for volume in lists.get("includedVolumes") or []
        if volume not in disks
    ]


def _size_classes(store: Reader, cr: Wukong) -> dict[str, JsonObj]:
    """The namespaced instancetype and preference the spec names, as cached, by kind."""
    found: dict[str, JsonObj] = {}
    for ref in (cr.spec.instancetype, cr.spec.preference):
        if ref is None or (kind := kinds.SIZE_CLASSES.get(ref.kind.value)) is None:
            continue
        if (obj := store.get(kind.cache, cr.metadata.namespace, ref.name)) is not None:
            found[kind.kind] = obj
    return found


def _filesystem_overhead(store: Reader) -> JsonObj | None:
    """CDI's settled filesystem overhead (its CDIConfig's status), None without CDI."""
    config = store.get(kinds.CDI_CONFIG.cache, "", names.CDI_CONFIG_NAME)
    settled = ((config or {}).get("status") or {}).get("filesystemOverhead")
    return settled if isinstance(settled, dict) else None


def status_ops(old: JsonObj, new: JsonObj) -> list[JsonObj]:
    """The RFC 6902 operations that turn the cached status `old` into `new` (a clean one:
    no None), as small as the change: the whole status onto none; else per key, recursively
    for objects, `add` for a new or changed value (lists whole, as a merge patch sends them)
    and `remove` for one that vanished at any depth (or is null: `_clean` drops those)."""
    if not old:
        return [{"op": "add", "path": "/status", "value": new}]
    return _changes(old, new, "/status")


def _changes(old: JsonObj, new: JsonObj, at: str) -> list[JsonObj]:
    ops: list[JsonObj] = [
        {"op": "remove", "path": f"{at}/{_token(key)}"} for key in old if key not in new
    ]
    for key, value in new.items():
        path, before = f"{at}/{_token(key)}", old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            ops += _changes(before, value, path)
        elif key not in old or before != value:
            ops.append({"op": "add", "path": path, "value": value})
    return ops


def _token(key: str) -> str:
    """`key` as a JSON-pointer token (RFC 6901): a condition type or a disk name may hold
    `/` (`~1`), and `~` is `~0`."""
    return key.replace("~", "~0").replace("/", "~1")


def dropped(sent: Any, answer: Any, path: str = "status") -> list[str]:
    """The fields of `sent` the API server's `answer` lacks, as paths (`[]` for any list
    item): the structural schema of its CRD has no place for them and pruned them."""
    lost: list[str] = []
    if isinstance(sent, dict) and isinstance(answer, dict):
        for key, value in sent.items():
            if value is None:
                continue
            if key not in answer:
                lost.append(f"{path}.{key}")
            else:
                lost += dropped(value, answer[key], f"{path}.{key}")
    elif isinstance(sent, list) and isinstance(answer, list):
        for mine, theirs in zip(sent, answer, strict=False):
            lost += dropped(mine, theirs, f"{path}[]")
    return sorted(set(lost))


def outdated_words(fields: Sequence[str]) -> str:
    """What the operator says of a Wukong CRD that dropped `fields` from its status write."""
    return (
        "the Wukong CRD in the cluster is older than this operator: the API server dropped "
        f"{', '.join(fields)} from its status write; apply the operator's CRD "
        "(kubectl apply --server-side -f manifests/crd/wukong.yaml, or dist/install.yaml)"
    )


# The field whose loss keeps lifecycle calls from being made (exactly once needs it stored).
CALL_FIELD = "status.lifecycleState.call"


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
        guest_report_interval: float = 300.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        scope: str | None = None,
    ) -> None:
        self.store = store
        self.executor = executor
        self.stall_after = stall_after
        self.guest_report_interval = guest_report_interval
        self.clock = clock
        self.scope = scope
        """The one namespace the caches watch (`run --namespace`); None: all of them."""
        # Per Wukong key, ("add" | "remove", disk) of each answered addvolume/removevolume,
        # with when to stop waiting for the VM to show it (monotonic seconds). Lost with the
        # process: a restarted operator's cache is a fresh list, showing every request made.
        self._volume_calls: dict[str, dict[tuple[str, str], float]] = {}
        # Status fields the API server dropped from our writes (the Wukong CRD is older than
        # the operator), and the Wukongs told so by an Event; forgotten once a dropped field
        # comes back (the CRD was updated: the next writes say whether all of them do).
        self._dropped: set[str] = set()
        self._told: set[str] = set()

    def crd_outdated(self) -> str | None:
        """Why this operator cannot work with the Wukong CRD served (None: it can, as far as
        its status writes showed): for the readiness probe and the lifecycle planner."""
        return outdated_words(sorted(self._dropped)) if self._dropped else None

    def _decide(self, cr: Wukong, status: WukongStatus, seen: Observed) -> Plan:
        return decide(
            cr,
            status,
            seen,
            stall_after=self.stall_after,
            guest_report_interval=self.guest_report_interval,
            call_unstorable=self.crd_outdated() if CALL_FIELD in self._dropped else None,
        )

    async def reconcile(self, key: str) -> float | None:
        """Pass on `namespace/name` until nothing waits for the status just written: the
        pass after an `Accepted` write makes the call at once, in this worker, instead of
        waiting behind every key in the queue (or for our own watch event)."""
        for _ in range(FOLLOW_UPS):
            after = await self._pass(key)
            if after != NOW:
                return after
        return NOW

    async def _pass(self, key: str) -> float | None:
        """One pass for `namespace/name`: seconds until the next look, NOW, or None."""
        namespace, _, name = key.partition("/")
        raw = self.store.get(kinds.WUKONG.cache, namespace, name)
        if raw is None:
            return None  # gone: nothing to do, its children go with the garbage collector
        finalizers: list[str] = list(raw["metadata"].get("finalizers") or [])
        try:
            cr = Wukong.from_dict(raw)
        except ValidationError as exc:
            if raw["metadata"].get("deletionTimestamp") and (read := stand_in(raw)):
                return await self._delete_unreadable(raw, exc, *read, finalizers)
            await self._unreadable(raw, exc)
            return None
        if cr.metadata.deletion_timestamp is not None:
            return await self._delete(raw, cr, finalizers)
        if names.FINALIZER not in finalizers:
            raw = await self.executor.wukongs.set_finalizers(
                namespace, name, [*finalizers, names.FINALIZER], finalizers
            )
            # Go on: the write's own watch event finds this pass's work done.
            self.store.remember(kinds.WUKONG.cache, raw)
        seen = self._observe(cr)
        plan = self._decide(cr, cr.status, seen)
        if plan.needs_guest_check:  # the guest agent is not watchable: ask, then decide again
            seen = await self._ask_guest(cr, seen)
            plan = self._decide(cr, cr.status, seen)
        outcome = await self.executor.run(raw, _acts(plan))
        # An Event that reports an action is said only if the action went through
        # (`Emit.after`): not "MigrationStarted" for a create refused or lost on its way.
        events = told([a for a in plan.actions if isinstance(a, Emit)], outcome.done)
        self._write_through(outcome)
        self._asked(key, plan, outcome)
        plan, outcome = await self._settle(raw, cr, plan, outcome, events)
        wrote = False
        retry: float | None = None
        answers: set[Action] = set()
        if plan.hold_status is None or outcome.failed:
            # Events describe the status this pass writes: they go out beside the write.
            status = fold(plan.status, cr.status, outcome.failed)
            events = as_written(events, plan.status, status)
            not_made = not_made_events(plan.status, status)
            # A request KubeVirt refused is answered by its own Warning and status, and is
            # not made again: no child to admit (`answered_requests`).
            answers = answered_requests(plan.status, outcome.failed)
            children = {a: f for a, f in outcome.failed.items() if a not in answers}
            status, refusals, retry = admit(status, children, self.clock(), cr.metadata.generation)
            refusals = [*not_made, *refusals]
            wrote, _ = await asyncio.gather(
                self._write_status(raw, status),
                self.executor.post_events(raw, [*events, *refusals]),
            )
        if outcome.transient:
            # Said once, by the worker, with the cause (the executor leaves it to us).
            action, error = stopped_at(outcome)
            raise TransientError(f"{type(action).__name__} failed: {error}") from error
        if (
            wrote
            and retry is None
            and (waits_for_write(status) or _call_answered(outcome) or answers)
        ):
            # What waited for this status to be written (a lifecycle call: exactly once; the
            # phase's way back from a call KubeVirt refused; the end of the Restoring
            # condition of a restore KubeVirt refused to make) runs now, from the
            # written-through cache, not when our own watch event comes.
            return NOW
        after = _looking_after(plan.requeue_after, outcome)
        if retry is not None and (after is None or retry < after):
            return retry  # a child the API server refused: try again later (admission.py)
        return after

    async def _settle(
        self, raw: JsonObj, cr: Wukong, plan: Plan, outcome: Outcome, events: list[Emit]
    ) -> tuple[Plan, Outcome]:
        """Decide again while this pass's creations change the picture, so one status write
        says what the watch would otherwise make the next passes write one by one (the VM
        we just created makes the Wukong Starting at once). Only creations and Events may
        follow in the same pass: anything else (a KubeVirt call above all) waits until the
        status that led to it is written, as exactly-once asks."""
        for _ in range(SETTLE_ROUNDS):
            if outcome.failures or not outcome.created:
                break
            seen = self._observe(cr)
            again = self._decide(cr, plan.status, seen)
            if again.needs_guest_check or not all(isinstance(a, CHAINABLE) for a in again.actions):
                break
            if plan.hold_status is None:
                # A round before did more than create (a kept disk adopted): its Events are
                # not ones the next pass would say again, so the status (and they) go now.
                again.hold_status = None
            plan, outcome = again, await self.executor.run(raw, _acts(again))
            events += told([a for a in again.actions if isinstance(a, Emit)], outcome.done)
            self._write_through(outcome)
        return plan, outcome

    def _write_through(self, outcome: Outcome) -> None:
        """Put what this pass's creates and patches answered in the caches: a pass woken
        before their watch events must not decide from the objects as they were (it would
        create or patch the same again)."""
        for obj in [*outcome.created, *outcome.patched]:
            if obj.get("kind") in kinds.CHILDREN:
                self.store.remember(kinds.CHILDREN[obj["kind"]].cache, obj)

    async def _ask_guest(self, cr: Wukong, seen: Observed) -> Observed:
        """Read the guest's mounted filesystems through KubeVirt's guest-agent call."""
        vm = names.vm_name(cr.metadata.name)
        try:
            found = await self.executor.kubevirt.filesystems(cr.metadata.namespace, vm)
        except WukongError as exc:
            # virt-api's plain text, or a proxy's page: as ApiError.said says it, short
            message = (exc.said if isinstance(exc, ApiError) else "") or str(exc)
            return replace(seen, guest_error=message.strip())
        return replace(seen, guest_filesystems=tuple(found))

    async def _delete(self, raw: JsonObj, cr: Wukong, finalizers: list[str]) -> float | None:
        if names.FINALIZER not in finalizers:
            return None
        now = self.clock()
        seen = observe(self.store, cr, now, self.scope)
        plan = plan_deletion(cr, cr.status, seen, stall_after=self.stall_after)
        outcome = await self.executor.run(raw, plan.actions, stop_on_failure=True)
        self._write_through(outcome)
        if plan.finalize and not outcome.failures:
            rest = [f for f in finalizers if f != names.FINALIZER]
            meta = raw["metadata"]
            try:
                gone = await self.executor.wukongs.set_finalizers(
                    meta["namespace"], meta["name"], rest, finalizers
                )
                # Write-through: a pass woken before the DELETED event must not see our
                # finalizer still there and remove it again. (Releasing the last finalizer
                # deletes the object: the answer keeps the resourceVersion it had.)
                if gone.get("metadata"):
                    self.store.remember(kinds.WUKONG.cache, gone)
            except NotFound:
                log.info("Wukong %s/%s is already gone", meta["namespace"], meta["name"])
            return None
        status = fold_deletion(plan.status, outcome.failed)
        try:
            wrote = await self._write_status(raw, status)
        except NotFound:
            return None  # finished meanwhile (another pass removed the finalizer): done
        if outcome.failures:
            refusals = deletion_refusals(cr.status, status, outcome.failed)
            await self.executor.post_events(raw, refusals)
            _, error = stopped_at(outcome)
            raise TransientError(f"deletion step failed: {error}") from error
        if wrote:
            return NOW
        # A step that patched and wrote no status (it was already the step: the pass retried
        # after a 409 on one of its patches) is woken by nothing else (test_spec_parity,
        # seed 1248171293: a Wukong left in Retain for good with every disk released).
        return _looking_after(plan.requeue_after, outcome)

    def _observe(self, cr: Wukong) -> Observed:
        """What the caches show of the Wukong's children now, with the volume calls this
        operator made that they do not show yet."""
        seen = observe(self.store, cr, self.clock(), self.scope)
        plugging, unplugging = self._in_flight(_key(cr), seen.vm)
        if plugging or unplugging:
            seen = replace(seen, plugging=plugging, unplugging=unplugging)
        return seen

    def _asked(self, key: str, plan: Plan, outcome: Outcome) -> None:
        """Remember the disks this pass's answered addvolume and removevolume calls named."""
        until = time.monotonic() + VOLUME_CALL_SEEN_WITHIN
        for action in plan.actions:
            if isinstance(action, AddVolume | RemoveVolume) and action not in outcome.failures:
                verb = "add" if isinstance(action, AddVolume) else "remove"
                self._volume_calls.setdefault(key, {})[(verb, action.disk)] = until

    def _in_flight(self, key: str, vm: JsonObj | None) -> tuple[frozenset[str], frozenset[str]]:
        """The disks asked to be plugged and unplugged whose request the VM in the cache
        does not show yet (neither in its volumeRequests nor done in its template)."""
        asked = self._volume_calls.get(key)
        if not asked:
            return frozenset(), frozenset()
        adding, removing = requested_volumes(vm)
        in_template = set(template_volumes(vm))
        shown = {("add", d) for d in adding | in_template}
        shown |= {("remove", d) for d in removing} | {
            ("remove", d) for verb, d in asked if verb == "remove" and d not in in_template
        }
        now = time.monotonic()
        for call in [c for c, until in asked.items() if c in shown or until <= now]:
            del asked[call]
        if not asked:
            del self._volume_calls[key]
        return (
            frozenset(d for verb, d in asked if verb == "add"),
            frozenset(d for verb, d in asked if verb == "remove"),
        )

    async def _write_status(self, raw: JsonObj, new: WukongStatus) -> bool:
        """Patch status only when it changed (True when it did), with the change from the
        cached status (`status_ops`), pinned to the Wukong it was decided for: on another
        of the name, or a stored status the cache is behind on, the patch does not apply
        and `patch_status` raises a Conflict (decide again from the cache)."""
        old: JsonObj = raw.get("status") or {}
        wire = _clean(new.to_wire())
        if wire == _clean(old):
            return False
        meta = raw["metadata"]
        written = await self.executor.wukongs.patch_status(
            meta["namespace"], meta["name"], meta["uid"], status_ops(old, wire)
        )
        # Write-through: a pass woken before the watch delivers this write must not decide
        # from the old status (it would post the same Events and write the same status again).
        if written.get("metadata"):
            self.store.remember(kinds.WUKONG.cache, written)
            await self._kept(raw, wire, written.get("status") or {})
        return True

    async def _kept(self, raw: JsonObj, sent: JsonObj, answer: JsonObj) -> None:
        """Whether the API server kept every status field written: one it dropped means the
        Wukong CRD is older than the operator (its schema prunes what it does not know), and
        lifecycle calls would be answered "sent" with no record of them. Said once in the
        log, once per Wukong as a Warning Event, and by the readiness probe until a dropped
        field is kept again."""
        lost = dropped(sent, answer)
        back = [f for f in self._dropped if f not in lost and _sent(sent, f)]
        if back:
            log.info("the Wukong CRD now keeps %s: it was updated", ", ".join(sorted(back)))
            self._dropped.clear()
            self._told.clear()
        if not lost:
            return
        if not set(lost) <= self._dropped:
            self._dropped.update(lost)
            log.error("%s", outdated_words(sorted(self._dropped)))
        meta = raw["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        if key not in self._told:
            self._told.add(key)
            words = outdated_words(lost)
            await self.executor.post_events(raw, [Emit("Warning", "CRDOutdated", words)])

    async def _delete_unreadable(
        self, raw: JsonObj, exc: ValidationError, cr: Wukong, said: str, finalizers: list[str]
    ) -> float | None:
        """The deletion of a Wukong whose spec cannot be read, with what can be (`stand_in`);
        said once, as it starts."""
        if names.FINALIZER in finalizers and cr.status.deletion is None:
            told = f"the spec cannot be read ({_errors(exc)}); deleting with {said}"
            log.warning("Wukong %s: %s", raw["metadata"].get("name"), told)
            await self.executor.post_events(raw, [Emit("Warning", "InvalidSpec", told)])
        return await self._delete(raw, cr, finalizers)

    async def _unreadable(self, raw: JsonObj, exc: ValidationError) -> None:
        """An object the models cannot read (e.g. written before the CRD's rules): say so."""
        message = _errors(exc)
        log.warning("invalid Wukong %s: %s", raw["metadata"].get("name"), message)
        status, warnings = plan_unreadable(raw, message, self.clock())
        if status is not None:
            await self.executor.run(raw, [Emit("Warning", "InvalidSpec", message), *warnings])
            await self._write_status(raw, status)


def _sent(status: JsonObj, field: str) -> bool:
    """Whether `status` (a written one, without None) holds the field at path `field`
    (`dropped`'s form: `status.a.b`, `[]` for any list item)."""
    values: list[Any] = [status]
    for part in field.split(".")[1:]:
        many = part.endswith("[]")
        key = part.removesuffix("[]")
        values = [v[key] for v in values if isinstance(v, dict) and key in v]
        if many:
            values = [item for v in values if isinstance(v, list) for item in v]
    return bool(values)


def _errors(exc: ValidationError) -> str:
    """The model's first five complaints, each with where it is."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])


def _key(cr: Wukong) -> str:
    return f"{cr.metadata.namespace}/{cr.metadata.name}"


def _acts(plan: Plan) -> list[Action]:
    """The plan's actions but its Events (those go with the status write)."""
    return [a for a in plan.actions if not isinstance(a, Emit)]


def _looking_after(after: float | None, outcome: Outcome) -> float | None:
    """The plan's next look, within LOOK_AFTER_PATCH if the pass patched a child: written
    through, the patch's own watch event changes nothing in the cache and wakes no pass."""
    if outcome.patched and (after is None or after > LOOK_AFTER_PATCH):
        return LOOK_AFTER_PATCH
    return after


def _call_answered(outcome: Outcome) -> bool:
    """A KubeVirt call of this pass was answered for good (refused, or nothing to call):
    the phase follows on the next pass. Likewise a claim's growth the API server refused:
    the next pass says it from `expansionRefused` (nothing else wakes it: the claim did not
    change, and our own status write is skipped)."""
    return any(
        isinstance(action, VmCall | ExpandDisk) and failure.kind != "transient"
        for action, failure in outcome.failed.items()
    )
