"""Leader election on a coordination.k8s.io/v1 Lease, the way client-go's leaderelection does it.

A candidate takes the Lease when it is free, released (empty holder) or expired; the leader
renews it every retry period and gives up once `renew_deadline` passes without a successful
renew. Expiry is judged on *this* process's monotonic clock from the moment the record last
changed (never from the `renewTime` another node wrote), so clock skew between nodes is
harmless. Writes use the Lease's resourceVersion: two candidates never both win.

    elector = LeaderElector(api, "wukong-system", "wukong-operator", identity=pod_name)
    await elector.run(on_started_leading=start_reconciling, on_stopped_leading=stop_reconciling)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio.client import ApiClient

from wukong.adapters.kube import Kube, RequestHook, api_path
from wukong.api import JsonObj
from wukong.errors import AlreadyExists, ApiError, Conflict, NotFound
from wukong.runtime.clock import Clock, MonotonicClock

log = logging.getLogger(__name__)

MICROTIME = "%Y-%m-%dT%H:%M:%S.%fZ"
# client-go's wait.JitterUntil factor: candidates spread their polls over [1, 2.2] x retry.
JITTER = 1.2
EXPIRY_MARGIN = 0.05


def microtime(moment: datetime) -> str:
    """A Kubernetes MicroTime string ("2006-01-02T15:04:05.000000Z")."""
    return moment.astimezone(UTC).strftime(MICROTIME)


@dataclass(frozen=True)
class LeaseRecord:
    """The spec of a Lease: who holds it, for how long, and how often it changed hands."""

    holder: str = ""
    duration: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0

    @classmethod
    def from_lease(cls, lease: JsonObj) -> LeaseRecord:
        """Read the record out of a Lease object."""
        spec = lease.get("spec") or {}
        return cls(
            holder=spec.get("holderIdentity") or "",
            duration=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def to_spec(self) -> JsonObj:
        """The Lease spec carrying this record."""
        spec: JsonObj = {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.duration,
            "leaseTransitions": self.transitions,
        }
        if self.acquire_time is not None:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time is not None:
            spec["renewTime"] = self.renew_time
        return spec


@dataclass(frozen=True)
class Observed:
    """A record and the local monotonic time at which it was first seen in that form."""

    record: LeaseRecord
    at: float


def observe(previous: Observed | None, record: LeaseRecord, now: float) -> Observed:
    """Restart the expiry countdown only when the record changed (someone renewed or took it)."""
    if previous is not None and previous.record == record:
        return previous
    return Observed(record, now)


def lease_expired(observed: Observed, now: float) -> bool:
    """The holder has not renewed within its lease duration, as measured on our clock."""
    return observed.at + observed.record.duration <= now


def may_acquire(observed: Observed | None, identity: str, now: float) -> bool:
    """No Lease yet, released, ours already, or expired."""
    if observed is None:
        return True
    holder = observed.record.holder
    return holder in ("", identity) or lease_expired(observed, now)


def campaign_wait(
    observed: Observed | None, identity: str, now: float, retry: float, draw: float
) -> float:
    """Seconds until a candidate retries: jittered (`draw` in [0, 1)), or at the holder's expiry."""
    wait = retry * (1 + draw * JITTER)
    # Waking at the expiry instead of the next jittered poll saves up to one poll on takeover.
    if observed is not None and observed.record.holder not in ("", identity):
        expires_in = observed.at + observed.record.duration - now
        # A little past expiry: asyncio may wake a timer up to its clock resolution early.
        wait = min(wait, max(expires_in, 0.0) + EXPIRY_MARGIN * retry)
    return wait


def next_renew(last_attempt: float, last_renew: float, retry: float, deadline: float) -> float:
    """When a leader acts next: a retry period after its last try, at the latest its deadline."""
    return min(last_attempt + retry, last_renew + deadline)


def lease_lost(last_renew: float, now: float, renew_deadline: float) -> bool:
    """No successful renew for `renew_deadline`: stop acting as leader now, before it expires."""
    return now - last_renew >= renew_deadline


def claim(old: LeaseRecord | None, identity: str, duration: int, stamp: str) -> LeaseRecord:
    """The record to write to take or renew the Lease (a new holder counts a transition)."""
    if old is not None and old.holder == identity:
        return replace(old, duration=duration, renew_time=stamp)
    transitions = old.transitions + 1 if old is not None else 0
    return LeaseRecord(identity, duration, stamp, stamp, transitions)


def released(old: LeaseRecord, stamp: str) -> LeaseRecord:
    """The record that hands the Lease back: no holder, 1 s duration, so a standby takes it now."""
    return LeaseRecord("", 1, stamp, stamp, old.transitions)


class LeaseApi:
    """GET, POST and PUT of one Lease through the shared JSON client (`on_request` counts
    each, as every other client of the operator's does)."""

    def __init__(
        self,
        api_client: ApiClient,
        namespace: str,
        name: str,
        *,
        on_request: RequestHook | None = None,
    ) -> None:
        self.kube = Kube(api_client, on_request=on_request)
        self.namespace = namespace
        self.name = name

    async def get(self) -> tuple[LeaseRecord, str] | None:
        """The record and resourceVersion, or None when no Lease exists."""
        try:
            lease = await self.kube.get(self._path(self.name))
        except NotFound:
            return None
        return LeaseRecord.from_lease(lease), lease["metadata"]["resourceVersion"]

    async def create(self, record: LeaseRecord) -> str:
        """Create the Lease; AlreadyExists when another candidate was first."""
        lease = await self.kube.create(self._path(None), self._lease(record, None))
        return str(lease["metadata"]["resourceVersion"])

    async def update(self, record: LeaseRecord, resource_version: str) -> str:
        """Replace the Lease; Conflict when it changed since `resource_version`."""
        lease = await self.kube.replace(
            self._path(self.name), self._lease(record, resource_version)
        )
        return str(lease["metadata"]["resourceVersion"])

    def _path(self, name: str | None) -> str:
        return api_path("coordination.k8s.io", "v1", "leases", self.namespace, name)

    def _lease(self, record: LeaseRecord, resource_version: str | None) -> JsonObj:
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": record.to_spec(),
        }


class LeaderElector:
    """Campaigns for one Lease, runs a callback while leading, and says at once when it stops."""

    def __init__(
        self,
        api_client: ApiClient,
        namespace: str,
        name: str,
        identity: str,
        *,
        lease_duration: float = 15,
        renew_deadline: float = 10,
        retry_period: float = 2,
        clock: Clock | None = None,
        on_request: RequestHook | None = None,
    ) -> None:
        if not lease_duration > renew_deadline > JITTER * retry_period > 0:
            raise ValueError(
                "need lease_duration > renew_deadline > 1.2 * retry_period > 0, got "
                f"{lease_duration} / {renew_deadline} / {retry_period}"
            )
        if not identity:
            raise ValueError("identity must not be empty: an empty holder means a free Lease")
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.leading = asyncio.Event()
        self._leases = LeaseApi(api_client, namespace, name, on_request=on_request)
        self._lease_name = f"{namespace}/{name}"
        self._clock: Clock = clock or MonotonicClock()
        self._observed: Observed | None = None
        self._version: str | None = None
        self._write = asyncio.Lock()
        self._released = False

    @property
    def transitions(self) -> int | None:
        """The Lease's leaseTransitions as last read or written; None before the first."""
        return self._observed.record.transitions if self._observed is not None else None

    @property
    def is_leader(self) -> bool:
        """True while this process holds the Lease and has renewed it within the deadline."""
        return self.leading.is_set()

    async def run(
        self,
        on_started_leading: Callable[[], Awaitable[None]] | None,
        on_stopped_leading: Callable[[], None],
    ) -> None:
        """Campaign until leading, renew until the Lease is lost or released, then return."""
        # Contract (client-go's callbacks): on_started_leading runs as a task while leading and
        # is cancelled when leadership ends; on_stopped_leading is called exactly once if
        # leadership was gained (lost, released, work failed, or run() cancelled), before run()
        # returns. run() may be called again to campaign again.
        self._released = False
        if not await self._campaign():
            return
        self.leading.set()
        log.info("became leader of Lease %s", self._lease_name)
        work = asyncio.ensure_future(on_started_leading()) if on_started_leading else None
        try:
            await self._keep(work)
        finally:
            self.leading.clear()
            if work is not None and not work.done():
                work.cancel()
            on_stopped_leading()
            if work is not None:
                # Re-raises what made on_started_leading fail; a cancel we caused is expected.
                with contextlib.suppress(asyncio.CancelledError):
                    await work

    async def release(self) -> None:
        """Hand the Lease back if we hold it: a standby takes over on its next poll."""
        self._released = True
        self.leading.clear()
        async with self._write:
            if self._observed is None or self._observed.record.holder != self.identity:
                return
            if self._version is None:
                return
            record = released(self._observed.record, microtime(datetime.now(UTC)))
            try:
                async with asyncio.timeout(self.renew_deadline):
                    self._version = await self._leases.update(record, self._version)
            except (ApiError, TimeoutError) as error:
                # Someone else holds it now, or the API is unreachable: it expires on its own.
                log.warning("could not release Lease %s: %r", self._lease_name, error)
                return
            self._observed = Observed(record, self._clock.now())
            log.info("released Lease %s", self._lease_name)

    async def _campaign(self) -> bool:
        """Poll (with jitter) until the Lease is ours (True) or release() was called (False)."""
        while not await self._try_acquire_or_renew(self.retry_period):
            if self._released:
                return False
            wait = campaign_wait(
                self._observed, self.identity, self._clock.now(), self.retry_period, random.random()
            )
            await self._clock.sleep(wait)
        return True

    async def _keep(self, work: asyncio.Future[None] | None) -> None:
        """Renew every retry period; return when the Lease is lost or released, or work failed."""
        last_renew = last_attempt = self._clock.now()
        while True:
            wake = next_renew(last_attempt, last_renew, self.retry_period, self.renew_deadline)
            await self._clock.sleep(wake - self._clock.now())
            if self._released or _failed(work):
                return
            now = last_attempt = self._clock.now()
            if lease_lost(last_renew, now, self.renew_deadline):
                log.error("lost Lease %s: no renew for %ss", self._lease_name, self.renew_deadline)
                return
            if await self._try_acquire_or_renew(last_renew + self.renew_deadline - now):
                last_renew = self._clock.now()

    async def _try_acquire_or_renew(self, budget: float) -> bool:
        """One attempt, bounded by `budget` seconds: a hung request cannot outlive the deadline."""
        try:
            async with self._write, asyncio.timeout(max(budget, 0.001)):
                if self._released:
                    return False
                return await self._attempt()
        except TimeoutError:
            log.warning("Lease %s: request timed out", self._lease_name)
        except ApiError as error:
            log.warning("Lease %s: %s", self._lease_name, error)
        return False

    async def _attempt(self) -> bool:
        stamp = microtime(datetime.now(UTC))
        duration = max(1, round(self.lease_duration))
        observed, version = self._observed, self._version
        ours = observed is not None and observed.record.holder == self.identity
        if self.is_leader and observed is not None and version is not None and ours:
            # Fast path: we wrote the last record, so PUT on its resourceVersion without a GET.
            # Not after a GET showed another holder (the Lease was handed over): renewing that
            # record would take it back (issue 15).
            # Any refusal falls back to the slow path, as client-go's does: a Lease someone
            # deleted (404) is made again there; the renew loop would otherwise PUT into the
            # void until its deadline and give the leadership up (found in session 42).
            record = claim(observed.record, self.identity, duration, stamp)
            with contextlib.suppress(ApiError):
                return self._wrote(record, await self._leases.update(record, version))
        current = await self._leases.get()
        if current is None:
            record = claim(None, self.identity, duration, stamp)
            try:
                return self._wrote(record, await self._leases.create(record))
            except AlreadyExists:
                return False
        old, version = current
        self._observed = observe(self._observed, old, self._clock.now())
        self._version = version
        if not may_acquire(self._observed, self.identity, self._clock.now()):
            return False
        record = claim(old, self.identity, duration, stamp)
        try:
            return self._wrote(record, await self._leases.update(record, version))
        except Conflict:
            return False

    def _wrote(self, record: LeaseRecord, version: str) -> bool:
        self._observed = Observed(record, self._clock.now())
        self._version = version
        return True


def _failed(work: asyncio.Future[None] | None) -> bool:
    """on_started_leading ended with an error: leading on without it would reconcile nothing."""
    return work is not None and work.done() and (work.cancelled() or work.exception() is not None)
