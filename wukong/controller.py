"""The operator process: watches feed caches, events enqueue keys, workers reconcile.

controller-runtime's shape: an informer per resource keeps a Store current; every event
only enqueues the key of the Wukong it concerns; a work queue hands each key to one worker
at a time; the reconciler reads the Store, never the API server.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, cast

from kubernetes_asyncio.client import ApiClient, Configuration

from wukong.act.executor import Executor
from wukong.act.reconciler import Reconciler
from wukong.adapters.client import (
    OPERATOR_AGENT,
    identify,
    load_configuration,
    look_up_environment_once,
)
from wukong.adapters.kube import Kube
from wukong.api import kinds, names
from wukong.api.conditions import STALLED, VM_HEALTHY
from wukong.api.contract import ANSWERED_APART, apart_answers, apart_slots
from wukong.runtime import ResourceRef
from wukong.runtime.cache import Store, object_name
from wukong.runtime.leader import LeaderElector
from wukong.runtime.mapping import (
    Users,
    clones_named,
    data_sources_named,
    enqueue_disk_event,
    enqueue_launcher_event,
    enqueue_owner,
    enqueue_vmi_owner,
    enqueue_wukong,
    nads_named,
    pvc_pointed_to,
    size_classes_named,
    split_key,
)
from wukong.runtime.metrics import OUTCOMES, Metrics
from wukong.runtime.metrics_server import MetricsServer, Reviewer, ServingCert
from wukong.runtime.probes import ProbeServer
from wukong.runtime.queue import WorkQueue
from wukong.runtime.watch import Informer
from wukong.runtime.worker import Result, run_workers
from wukong.settings import Settings

log = logging.getLogger(__name__)
# Bound on finishing passes after SIGTERM, under the pod's 30 s terminationGracePeriod.
SHUTDOWN_GRACE = 20.0
# While the caches wait for a resource the API server does not serve, say so this often.
SYNC_REPORT_SECONDS = 5.0
ANSWERS = frozenset(OUTCOMES)  # lifecycleState.state values that end one
# Who installs each watched resource, for the "not served" message.
PROVIDED_BY = {
    "wukongs": "the Wukong CRD, manifests/crd/",
    "virtualmachines": "KubeVirt",
    "virtualmachineinstances": "KubeVirt",
    "virtualmachinesnapshots": "KubeVirt",
    "virtualmachinerestores": "KubeVirt",
    "datavolumes": "CDI",
    "datasources": "CDI",
    "cdiconfigs": "CDI",
    "network-attachment-definitions": "Multus",
    "virtualmachineinstancetypes": "KubeVirt",
    "virtualmachinepreferences": "KubeVirt",
}


def resources(namespace: str | None) -> dict[str, ResourceRef]:
    """Every resource the operator watches, by its cache name (`wukong.api.kinds`)."""
    return {
        k.cache: ResourceRef(
            k.group,
            k.version,
            k.plural,
            namespace if k.namespaced else None,
            field_selector=k.field_selector,
        )
        for k in kinds.WATCHED
    }


async def api_client(settings: Settings) -> ApiClient:
    """An ApiClient as `load_configuration` finds the cluster (ConfigError: none usable),
    sending `wukong-operator/<version>` as User-Agent and fieldManager."""
    configuration = Configuration()
    kubeconfig = str(settings.kubeconfig) if settings.kubeconfig is not None else None
    await load_configuration(configuration, kubeconfig, settings.context)
    api = ApiClient(configuration)
    look_up_environment_once(api)
    identify(api, OPERATOR_AGENT)
    return api


class Counted(NamedTuple):
    """What a Wukong counts under in /metrics (the key of the cache's running tally)."""

    namespace: str
    phase: str
    stalled: bool
    """Condition Stalled is True: a phase or deletion step overran (wukong_stalled)."""
    unhealthy: bool
    """Condition VMHealthy is False: KubeVirt reports the VM in trouble (wukong_unhealthy).
    The phase alone cannot say so: a crash loop hops Error -> Starting each try, and a guest
    paused on a disk error stays Running (monitoring audit, session 48)."""


def counted(cr: dict[str, Any]) -> Counted:
    """What a Wukong counts under in /metrics: namespace, phase, Stalled, VM unhealthy."""
    status = cr.get("status") or {}
    conditions = {
        c.get("type"): c.get("status")
        for c in status.get("conditions") or []
        if isinstance(c, dict)
    }
    namespace = str(cr.get("metadata", {}).get("namespace") or "")
    return Counted(
        namespace,
        str(status.get("phase") or "Pending"),
        stalled=conditions.get(STALLED) == "True",
        unhealthy=conditions.get(VM_HEALTHY) == "False",
    )


class Operator:
    """Informers + queue + workers + probes for one process."""

    def __init__(self, settings: Settings, api: ApiClient) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.store = Store(
            label_keys=[names.LABEL_WUKONG],
            reads={k.cache: k.reads for k in kinds.WATCHED},
            tallies={kinds.WUKONG.cache: counted},
        )
        # client-go's default controller rate limiter: per-key backoff and one global bucket
        # for retries (a first pass and a requeue_after are never throttled).
        self.queue = WorkQueue(global_qps=settings.retry_qps, global_burst=settings.retry_burst)
        self.refs = resources(settings.namespace)
        kube = Kube(api, on_request=self.metrics.count_api_request)
        self.executor = Executor(kube, host=settings.identity or socket.gethostname())
        self.reconciler = Reconciler(
            self.store,
            self.executor,
            stall_after=settings.stall_after,
            guest_report_interval=settings.guest_report_interval,
            scope=settings.namespace,
        )
        self.informers = {
            role: Informer(
                api,
                ref,
                self.store,
                metrics=self.metrics,
                timeout_seconds=settings.watch_timeout,
                skip_unchanged=True,
            )
            for role, ref in self.refs.items()
        }
        self.nad_users = Users(nads_named)
        self.clone_users = Users(clones_named)
        self.data_source_users = Users(data_sources_named)
        self.data_source_pvcs = Users(pvc_pointed_to)
        self.size_class_users = Users(size_classes_named)
        self._wire()
        host, port = settings.probe_host_port
        self.probes = ProbeServer(
            list(self.informers.values()), host=host, port=port, ready=self.readiness
        )
        self.metrics_server = self._metrics_server(settings, api)
        self.metrics.track_queue(self.queue, lambda: self.leading)
        self.metrics.track_caches(
            lambda: {
                (i.watched["resource"], i.watched["selector"]): i.synced.is_set()
                for i in self.informers.values()
            }
        )
        self.metrics.track_phases(self.phase_counts)
        self.metrics.track_stalled(self.stalled_counts)
        self.metrics.track_unhealthy(self.unhealthy_counts)
        self.metrics.track_crd(lambda: self.reconciler.crd_outdated() is not None)
        self._answered: dict[str, tuple[str, str]] = {}
        self.leading = not settings.leader_election
        self.lost_lease = False
        self.api = api
        self._stopping = asyncio.Event()
        self._worked = asyncio.Event()  # the leader's workers have ended

    def _metrics_server(self, settings: Settings, api: ApiClient) -> MetricsServer | None:
        where = settings.metrics_host_port
        if where is None:
            return None
        counted = Kube(api, on_request=self.metrics.count_api_request)
        reviewer = Reviewer(counted) if settings.metrics_secure else None
        tls = ServingCert(settings.metrics_cert_dir) if settings.metrics_cert_dir else None
        host, port = where
        return MetricsServer(self.metrics, reviewer=reviewer, host=host, port=port, tls=tls)

    def phase_counts(self) -> dict[tuple[str, str], int]:
        """Wukongs per (namespace, phase) in the cache, for wukong_phase at scrape time (from
        the cache's running tally: a scrape does not scan every Wukong)."""
        counts: dict[tuple[str, str], int] = {}
        for key, n in self._tally().items():
            counts[key.namespace, key.phase] = counts.get((key.namespace, key.phase), 0) + n
        return counts

    def _tally(self) -> Mapping[Counted, int]:
        return cast(Mapping[Counted, int], self.store.tally(kinds.WUKONG.cache))

    def _per_namespace(self, which: Callable[[Counted], bool]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for key, n in self._tally().items():
            if which(key) and n:
                counts[key.namespace] = counts.get(key.namespace, 0) + n
        return counts

    def stalled_counts(self) -> dict[str, int]:
        """Wukongs with condition Stalled=True per namespace, for wukong_stalled."""
        return self._per_namespace(lambda key: key.stalled)

    def unhealthy_counts(self) -> dict[str, int]:
        """Wukongs with condition VMHealthy=False per namespace, for wukong_unhealthy."""
        return self._per_namespace(lambda key: key.unhealthy)

    def _count_answers(self, event_type: str, cr: dict[str, Any]) -> None:
        """wukong_lifecycle_requests_total: each request's answer once, by the leader (a
        replica that sees an answer first on its start-up list only remembers it)."""
        meta = cr.get("metadata", {})
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        if event_type == "DELETED":
            slots = (slot for apart in ANSWERED_APART for slot in apart_slots(apart))
            for slot in (key, *(f"{key}#{slot}" for slot in slots)):
                self._answered.pop(slot, None)
            return
        status = cr.get("status") or {}
        life = status.get("lifecycleState") or {}
        # A refusal keeps the previous lastAction: the spec names the request answered,
        # unless it is one answered apart (a restore's own stop and start are answered here).
        asked = str(((cr.get("spec") or {}).get("lifecycleAction") or {}).get("action") or "")
        named = asked if asked not in ANSWERED_APART else ""
        action = str(named or life.get("lastAction") or "unknown")
        request, state = str(life.get("requestId") or ""), str(life.get("state") or "")
        self._count_once(key, action, request, state)
        # migrate, snapshot and restore are answered in status fields of their own (none yet
        # is remembered too: the first answer after it is news, as for lifecycleState).
        answers = apart_answers(status)
        for apart in ANSWERED_APART:
            for slot in apart_slots(apart):
                request, state = answers.get(slot, ("", ""))
                self._count_once(f"{key}#{slot}", apart, request, state)

    def _count_once(self, slot: str, action: str, request: str, state: str) -> None:
        seen = self._answered.get(slot)
        self._answered[slot] = (request, state)
        if state not in ANSWERS or seen is None or seen == (request, state) or not self.leading:
            return
        self.metrics.count_lifecycle(action, state)

    def _wire(self) -> None:
        add = self.queue.add
        self.informers[kinds.WUKONG.cache].add_handler(enqueue_wukong(add))
        self.informers[kinds.WUKONG.cache].add_back_handler(self._retry_failing)
        # Every event: an answer our own status write put in the cache (write-through) is
        # one the update-skipping informer would otherwise keep from the counter.
        self.informers[kinds.WUKONG.cache].add_handler(self._count_answers, every_event=True)
        owned = (kinds.VM, kinds.DATA_VOLUME, kinds.PVC, kinds.MIGRATION, kinds.SNAPSHOT)
        for kind in (*owned, kinds.RESTORE):
            self.informers[kind.cache].add_handler(enqueue_owner(add))
        vmi_owner = enqueue_vmi_owner(add, self.store, kinds.VM.cache)
        self.informers[kinds.VMI.cache].add_handler(vmi_owner)
        self.informers[kinds.WUKONG.cache].add_handler(self.nad_users.track)
        self.informers[kinds.NAD.cache].add_handler(self._on_named(self.nad_users))
        self.informers[kinds.WUKONG.cache].add_handler(self.clone_users.track)
        self.informers[kinds.PVC.cache].add_handler(self._on_named(self.clone_users, owned=False))
        self.informers[kinds.WUKONG.cache].add_handler(self.data_source_users.track)
        on_data_source = self._on_named(self.data_source_users, owned=False)
        self.informers[kinds.DATA_SOURCE.cache].add_handler(on_data_source)
        self.informers[kinds.DATA_SOURCE.cache].add_handler(self.data_source_pvcs.track)
        self.informers[kinds.PVC.cache].add_handler(self._on_pointed_pvc)
        self.informers[kinds.WUKONG.cache].add_handler(self.size_class_users.track)
        on_size_class = self._on_named(self.size_class_users, owned=False)
        for size_class in kinds.SIZE_CLASSES.values():
            self.informers[size_class.cache].add_handler(on_size_class)
        policy = self._on_policy(kinds.WUKONG.cache)
        self.informers[kinds.NETWORK_POLICY.cache].add_handler(policy)
        self.informers[kinds.CDI_CONFIG.cache].add_handler(self._on_cdi_config())
        events = enqueue_launcher_event(add, self.store, kinds.VMI.cache, kinds.VM.cache)
        self.informers[kinds.MOUNT_EVENT.cache].add_handler(events)
        self.informers[kinds.SANDBOX_EVENT.cache].add_handler(events)
        self.informers[kinds.MIGRATION_EVENT.cache].add_handler(
            enqueue_disk_event(add, self.store, (kinds.MIGRATION.cache,))
        )
        disks = (kinds.DATA_VOLUME.cache, kinds.PVC.cache)
        self.informers[kinds.CLONE_EVENT.cache].add_handler(
            enqueue_disk_event(add, self.store, disks)
        )

    def _retry_failing(self) -> None:
        """The Wukong watch is back after its stream failed (an API server restart): every
        Wukong whose pass failed meanwhile is tried again now, its backoff forgotten. Each
        failure during the outage doubled it (5 ms up to 1,000 s, as client-go's), so a
        deletion whose calls failed through a 20 s restart waited about as long again after
        it, unless an event came (CI: a deletion not done 40 s after the return)."""
        failing = self.queue.failing()
        if failing:
            log.info("the Wukong watch is back: trying %d failed Wukong(s) again", len(failing))
        for key in failing:
            self.queue.retry_now(key)

    def _on_policy(self, wukong_kind: str) -> Callable[[str, dict[str, Any]], None]:
        """The network policy changed: every Wukong that uses a network decides again."""

        def handle(event_type: str, policy: dict[str, Any]) -> None:
            self._enqueue_wukongs(wukong_kind, lambda cr: bool(cr.get("spec", {}).get("networks")))

        return handle

    def _enqueue_wukongs(
        self, wukong_kind: str, which: Callable[[dict[str, Any]], bool] = lambda _cr: True
    ) -> None:
        """Queue every cached Wukong `which` picks: a cluster-wide object they all read
        changed."""
        for cr in self.store.list(wukong_kind):
            if which(cr):
                self.queue.add(f"{cr['metadata']['namespace']}/{cr['metadata']['name']}")

    def _on_cdi_config(self) -> Callable[[str, dict[str, Any]], None]:
        """CDI's filesystem overhead changed (an administrator's CDIConfig): every Wukong
        decides again, its clones checked and its grown disks sized with the new value. Not
        on CDI's other writes to the object (its config controller rewrites it as classes
        come and go, with the same overhead). The first list queues keys the Wukong watch
        queued already: the queue holds each once, and no pass runs before every cache
        synced."""
        last: list[Any] = [object()]

        def handle(event_type: str, config: dict[str, Any]) -> None:
            overhead = (config.get("status") or {}).get("filesystemOverhead")
            if event_type == "DELETED":
                overhead = None
            if overhead == last[0]:
                return
            last[0] = overhead
            self._enqueue_wukongs(kinds.WUKONG.cache)

        return handle

    def _on_named(
        self, users: Users, *, owned: bool = True
    ) -> Callable[[str, dict[str, Any]], None]:
        """An object a Wukong may name changed (a NAD, a PVC to clone): wake every Wukong
        that names it, and its owner if `owned` (a user's NAD has no owner; another
        namespace's object is named `namespace/name`)."""
        owner = enqueue_owner(self.queue.add)

        def handle(event_type: str, obj: dict[str, Any]) -> None:
            if owned:
                owner(event_type, obj)
            meta = obj.get("metadata", {})
            for key in users.users(meta.get("namespace", ""), meta.get("name", "")):
                self.queue.add(key)

        return handle

    def _on_pointed_pvc(self, event_type: str, pvc: dict[str, Any]) -> None:
        """A PVC changed that a DataSource points to: wake every Wukong naming that
        DataSource (a disk made from it is checked against the PVC's size)."""
        namespace, name = object_name(pvc)
        for source in self.data_source_pvcs.users(namespace, name):
            for key in self.data_source_users.users(*split_key(source)):
                self.queue.add(key)

    def readiness(self) -> tuple[bool, str]:
        """Ready once every watch has listed (standby replicas are ready too: see docs), and
        while no status write showed the Wukong CRD older than the operator. A LIST or WATCH
        refused (403) fails it whether or not that cache synced before: one synced and then
        refused is frozen, and nothing else would show it."""
        refused = [i.name for i in self.informers.values() if i.refused is not None]
        if refused:
            return False, (
                f"list/watch refused (403 Forbidden): {', '.join(refused)}: the operator's "
                "RBAC does not allow it (its ClusterRole or Role, and their bindings); "
                "those caches are not kept current"
            )
        missing = [i for i in self.informers.values() if i.installed is False]
        if missing:
            named = ", ".join(
                f"{i.name} ({PROVIDED_BY.get(i.resource.plural, 'its CRD')})" for i in missing
            )
            return False, (
                f"caches not synced: the API server does not serve {named}: install it; "
                "the operator waits and retries"
            )
        waiting = [i.name for i in self.informers.values() if not i.synced.is_set()]
        if waiting:
            return False, "caches not synced: " + ", ".join(waiting)
        if (outdated := self.reconciler.crd_outdated()) is not None:
            # Known only from the leader's status writes: the Deployment shows the pod not
            # ready (a rollout not done) until the CRD is applied (docs/decisions.md).
            return False, outdated
        return True, "leading" if self.leading else "standby"

    async def _handle(self, key: str) -> Result:
        namespace, name = split_key(key)
        return Result(requeue_after=await self.reconciler.reconcile(f"{namespace}/{name}"))

    async def run(self, on_synced: Callable[[], object] = lambda: None) -> None:
        """Run until `stop()` (or until the Lease is lost): then finish passes in flight.
        `on_synced` runs once, when every cache has synced, before any pass."""
        await self.probes.start()
        try:
            if self.metrics_server is not None:
                await self.metrics_server.start()
            for informer in self.informers.values():
                informer.start()
            if not await self._synced_unless_stopped():
                log.warning("stopped before the caches synced")
                return
            log.info("caches synced: %d Wukongs", self.store.count(kinds.WUKONG.cache))
            on_synced()
            if self.settings.leader_election:
                await self._run_elected()
            else:
                self.metrics.set_leader(True)
                workers = asyncio.create_task(self._work())
                await self._stopping.wait()
                await self._drain(workers)
        finally:
            for informer in self.informers.values():
                await informer.stop()
            if self.metrics_server is not None:
                await self.metrics_server.stop()
            await self.probes.stop()

    async def _synced_unless_stopped(self) -> bool:
        """Wait for every cache to sync; False when `stop()` comes first (a SIGTERM while a
        watch is still refused, e.g. by RBAC, must not wait for the kubelet's SIGKILL)."""
        synced: asyncio.Future[Any] = asyncio.ensure_future(
            asyncio.gather(*(i.synced.wait() for i in self.informers.values()))
        )
        stopping: asyncio.Future[Any] = asyncio.ensure_future(self._stopping.wait())
        told = ""
        while not (synced.done() or stopping.done()):
            await asyncio.wait(
                {synced, stopping}, timeout=SYNC_REPORT_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            ready, why = self.readiness()
            if not ready and why != told and "does not serve" in why:
                log.error("not ready: %s", why)  # the same words as /readyz
                told = why
        for waiter in (synced, stopping):
            waiter.cancel()
        await asyncio.gather(synced, stopping, return_exceptions=True)
        return all(i.synced.is_set() for i in self.informers.values())

    async def _work(self) -> None:
        await run_workers(
            self.queue,
            self._handle,
            self.settings.concurrency,
            metrics=self.metrics,
            uid_of=self._uid_of,
        )

    def _uid_of(self, key: str) -> str | None:
        """The uid of the Wukong a key names, as cached when its pass starts: its log lines
        tell it apart from an earlier Wukong of the same name."""
        cr = self.store.get(kinds.WUKONG.cache, *split_key(key))
        uid = (cr or {}).get("metadata", {}).get("uid")
        return str(uid) if uid else None

    async def _drain(self, workers: asyncio.Task[None]) -> None:
        """Stop taking keys; give passes in flight a bounded time to finish."""
        self.queue.shutdown()
        try:
            await asyncio.wait_for(workers, SHUTDOWN_GRACE)
        except TimeoutError:
            log.warning("passes still running after %ss: cancelled", SHUTDOWN_GRACE)

    def _elector(self) -> LeaderElector:
        """The Lease's elector; its requests count in wukong_kube_api_requests_total as every
        other request does (a GET or PUT every retry period per replica: the largest share of
        an idle operator's requests, and the first to look at when the Lease changes hands)."""
        settings = self.settings
        return LeaderElector(
            self.api,
            settings.lease_namespace or settings.namespace or "default",
            settings.lease_name,
            settings.identity or socket.gethostname(),
            lease_duration=settings.lease_duration,
            renew_deadline=settings.renew_deadline,
            retry_period=settings.retry_period,
            on_request=self.metrics.count_api_request,
        )

    async def _run_elected(self) -> None:
        """Reconcile only while holding the Lease; informers keep the standby's cache warm."""
        elector = self._elector()
        self.metrics.track_lease(lambda: elector.transitions)
        election = asyncio.create_task(elector.run(self._lead, self._lost))
        stopping = asyncio.create_task(self._stopping.wait())
        await asyncio.wait({election, stopping}, return_when=asyncio.FIRST_COMPLETED)
        self.queue.shutdown()
        if not election.done() and self.leading:
            # The passes in flight end (the queue takes no new key), bounded; then the Lease
            # goes back at once. Waiting for the election waited the whole grace on every
            # SIGTERM (20 s without reconciles per rollout, and a false "cancelled"): it
            # renews on while its work ends normally (found by a helper, session 42). A
            # standby has no passes: its campaign is cancelled at once.
            try:
                await asyncio.wait_for(asyncio.shield(self._worked.wait()), SHUTDOWN_GRACE)
            except TimeoutError:
                log.warning("passes still running after %ss: cancelled", SHUTDOWN_GRACE)
        if elector.is_leader or self.leading:
            await elector.release()
        election.cancel()
        stopping.cancel()
        await asyncio.gather(election, stopping, return_exceptions=True)

    async def _lead(self) -> None:
        log.info("leading: reconciling")
        self.leading = True
        self.metrics.set_leader(True)
        try:
            await self._work()
        finally:
            self._worked.set()

    def _lost(self) -> None:
        self.leading = False
        self.metrics.set_leader(False)
        if not self._stopping.is_set():
            # Another replica may already reconcile: stop at once and let the pod restart.
            log.error("lost the leader Lease: stopping")
            self.lost_lease = True
            self.queue.shutdown()
            self._stopping.set()

    def stop(self) -> None:
        """Ask `run()` to wind down (SIGTERM)."""
        self._stopping.set()
