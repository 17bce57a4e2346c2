"""Fault matrix, issue 15 point 13: 500 specs generated from the CRD's own schema (valid and
invalid). Each is refused by the API server with a message, or accepted and answered by the
operator with conditions; the operator never crashes; and plain Wukongs created in the middle
of the flood still run within a generous bound (one bad or slow Wukong delays no other).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.integration.crd_specs import corpus
from tests.integration.scenario import create, get, k, operator, sim, wait_phase, wukong
from wukong.adapters.kube import Kube
from wukong.errors import ApiError
from wukong.testing.eventually import eventually
from wukong.testing.kubevirt import Simulator
from wukong.testing.operator import InProcessOperator

__all__ = ["k", "operator", "sim"]  # fixtures
COUNT = 500
IN_FLIGHT = 16
CANARIES = 5
ANSWER_WITHIN = 240.0  # seconds for the operator to answer every accepted spec
CANARY_WITHIN = 90.0  # seconds for a plain Wukong to run amid the flood (generous: 2 cores)


# A disk's dataSource in another namespace: the operator watches only the test's, so it
# cannot check that the DataSource exists and leaves that to CDI, whose webhook refuses the
# DataVolume (400) until it does (docs/decisions.md, "A webhook's 400 is a refusal").
CDI_CANNOT_RESOLVE = (
    r'^datavolumes create [^:]+: 400 admission webhook "datavolume-mutate\.cdi\.kubevirt\.io" '
    r'denied the request: (datasources\.cdi\.kubevirt\.io|namespaces) "[^"]+" not found$'
)


@pytest.mark.timeout(900)
@pytest.mark.kubevirt_refusal_expected(CDI_CANNOT_RESOLVE)
async def test_generated_specs_are_refused_with_a_message_or_answered_and_none_starves_others(
    k: Kube, namespace: str, sim: Simulator, operator: InProcessOperator
) -> None:
    specs = await asyncio.to_thread(corpus, COUNT)
    assert len(specs) == COUNT
    refused: dict[str, str] = {}
    accepted: list[str] = []
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def submit(index: int, spec: dict[str, Any]) -> None:
        name = f"gen-{index:03d}"
        body = {
            "apiVersion": "vm.novasphere.dev/v1alpha1",
            "kind": "Wukong",
            "metadata": {"name": name},
            "spec": spec,
        }
        async with gate:
            try:
                await create(k, "wukong", namespace, body)
            except ApiError as error:
                assert error.status in (400, 422), f"{name}: {error}"
                refused[name] = error.message
            else:
                accepted.append(name)

    flood = asyncio.gather(*(submit(i, s) for i, s in enumerate(specs)))
    await asyncio.sleep(1.0)  # the flood is under way
    began = time.monotonic()
    for i in range(CANARIES):
        await create(
            k, "wukong", namespace, wukong(f"canary-{i}", disks=[{"name": "d", "size": "1Gi"}])
        )
    canary_seconds = []
    for i in range(CANARIES):
        await wait_phase(k, namespace, f"canary-{i}", "Running", within=CANARY_WITHIN)
        canary_seconds.append(time.monotonic() - began)
    await flood
    print(
        f"\n{len(accepted)} accepted, {len(refused)} refused by the API server; canaries "
        f"Running after {', '.join(f'{s:.1f}' for s in canary_seconds)} s amid the flood"
    )
    assert all(message.strip() for message in refused.values()), "a refusal without a message"
    assert accepted and refused, "the corpus should hold valid and invalid specs"

    async def unanswered() -> list[str]:
        missing = []
        for name in accepted:
            cr = await get(k, "wukong", namespace, name)
            conditions = ((cr or {}).get("status") or {}).get("conditions") or []
            if not any(c.get("type") == "SpecValid" for c in conditions):
                missing.append(name)
        return missing

    started = time.monotonic()
    await eventually(lambda: _none(unanswered()), timeout=ANSWER_WITHIN, interval=2.0)
    print(f"every accepted spec answered with conditions {time.monotonic() - started:.1f}s later")
    assert operator.operator is not None and operator._task is not None
    assert not operator._task.done(), "the operator stopped"


async def _none(value: Any) -> bool:
    missing = await value
    assert missing == [], f"{len(missing)} without conditions, e.g. {missing[:5]}"
    return True
