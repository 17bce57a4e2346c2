"""Leader election against a real kube-apiserver: one leader, failover on a crash, handover on
release. Short timings (4 s / 3 s / 0.5 s) keep it quick; the defaults scale the same way."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient

from wukong.runtime.leader import LeaderElector
from wukong.testing.eventually import eventually

LEASE = "wukong-operator"
DURATION, DEADLINE, RETRY = 4.0, 3.0, 0.5
# A standby notices a change only on its next (jittered) poll: up to 2.2 retry periods late.
POLL = 2.2 * RETRY
MICROTIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@dataclass
class Replica:
    """One operator replica's elector, run as a task like `wukong run --leader-election`."""

    elector: LeaderElector
    task: asyncio.Task[None] | None = None
    started: list[float] = field(default_factory=list)
    stopped: list[float] = field(default_factory=list)

    def start(self) -> None:
        self.task = asyncio.create_task(self.elector.run(self._lead, self._stop))

    async def _lead(self) -> None:
        self.started.append(time.monotonic())

    def _stop(self) -> None:
        self.stopped.append(time.monotonic())

    async def crash(self) -> None:
        """Stop renewing without releasing, as a SIGKILLed pod would."""
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
async def replicas(kube: ApiClient, namespace: str) -> AsyncIterator[tuple[Replica, Replica]]:
    """Two candidates for one Lease; each stopped (not released) at the end."""
    pair = tuple(
        Replica(
            LeaderElector(
                kube,
                namespace,
                LEASE,
                identity,
                lease_duration=DURATION,
                renew_deadline=DEADLINE,
                retry_period=RETRY,
            )
        )
        for identity in ("wukong-0", "wukong-1")
    )
    for replica in pair:
        replica.start()
    yield pair[0], pair[1]
    for replica in pair:
        await replica.crash()


async def leader_of(replicas: tuple[Replica, Replica]) -> tuple[Replica, Replica]:
    """(leader, standby) once exactly one leads."""
    await eventually(
        lambda: sum(r.elector.is_leader for r in replicas) == 1, timeout=DURATION + POLL + 2
    )
    first, second = replicas
    return (first, second) if first.elector.is_leader else (second, first)


async def lease_spec(kube: ApiClient, namespace: str) -> client.V1LeaseSpec:
    """The Lease as the API server stores it."""
    lease = await client.CoordinationV1Api(kube).read_namespaced_lease(LEASE, namespace)
    return lease.spec


async def test_of_two_replicas_exactly_one_leads_and_keeps_the_lease(
    kube: ApiClient, namespace: str, replicas: tuple[Replica, Replica]
) -> None:
    leader, standby = await leader_of(replicas)
    first = await lease_spec(kube, namespace)
    # Several renew periods later: still one leader, the same one, renewing.
    await asyncio.sleep(4 * RETRY)
    assert leader.elector.is_leader and not standby.elector.is_leader
    assert leader.started and not standby.started
    spec = await lease_spec(kube, namespace)
    assert spec.holder_identity == leader.elector.identity
    assert spec.lease_duration_seconds == int(DURATION)
    assert spec.lease_transitions == 0
    assert spec.renew_time > first.renew_time, "the leader must keep renewing"
    # MicroTime on the wire, as client-go writes it; read raw to see the exact string.
    raw = await kube.call_api(
        f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{LEASE}",
        "GET",
        auth_settings=["BearerToken"],
        _preload_content=False,
    )
    async with raw:
        body = await raw.json()
    assert MICROTIME.match(body["spec"]["renewTime"]), body["spec"]
    assert MICROTIME.match(body["spec"]["acquireTime"]), body["spec"]


async def test_the_standby_takes_over_within_the_lease_duration_when_the_leader_dies(
    kube: ApiClient, namespace: str, replicas: tuple[Replica, Replica]
) -> None:
    leader, standby = await leader_of(replicas)
    await leader.crash()
    died = time.monotonic()
    # on_started_leading runs as a task once the elector leads (client-go's contract): wait
    # for it to have run (the moment measured), as the handover test below does.
    await eventually(
        lambda: standby.elector.is_leader and standby.started, timeout=DURATION + POLL + 3
    )
    takeover = standby.started[0] - died
    print(f"\ntakeover after a crashed leader: {takeover:.2f}s (lease duration {DURATION:g}s)")
    # The lease runs from when the standby saw the last renewal: at most one poll after it.
    assert DURATION - RETRY - 0.5 <= takeover <= DURATION + POLL + 0.5
    spec = await lease_spec(kube, namespace)
    assert spec.holder_identity == standby.elector.identity
    assert spec.lease_transitions == 1


async def test_a_released_lease_is_taken_over_at_once(
    kube: ApiClient, namespace: str, replicas: tuple[Replica, Replica]
) -> None:
    leader, standby = await leader_of(replicas)
    await leader.elector.release()
    released = time.monotonic()
    assert not leader.elector.is_leader
    # Leading is the callback having run, not only the flag: the flag is set a moment earlier.
    await eventually(lambda: standby.elector.is_leader and standby.started, timeout=POLL + 2)
    handover = standby.started[0] - released
    print(f"\ntakeover after release(): {handover:.2f}s (lease duration {DURATION:g}s)")
    assert handover <= POLL + 0.5 < DURATION
    # The old leader's run() ends within one retry period and reports it stopped leading.
    assert leader.task is not None
    await asyncio.wait_for(asyncio.shield(leader.task), RETRY + 1)
    assert leader.stopped
