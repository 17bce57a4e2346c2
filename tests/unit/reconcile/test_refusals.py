"""Each refusal said once, where it belongs (session 49): a migration, snapshot or restore
KubeVirt refuses is the request's answer, not a child to admit again."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.unit.reconcile.test_disks_at_runtime import LOGS, _disks
from tests.unit.reconcile.test_lifecycle import running_world
from tests.unit.reconcile.test_restoring import ASKED, _stopped_vm
from tests.unit.reconcile.test_settle import Cache, Server, raw_wukong
from tests.unit.reconcile.test_story import events
from tests.unit.reconcile.world import NOW, POLICY, ready_children, wukong
from wukong.act.executor import Executor
from wukong.act.reconciler import Reconciler
from wukong.api import kinds
from wukong.api.conditions import CHILDREN_ADMITTED
from wukong.errors import ApiError, Forbidden, Invalid

JsonObj = dict[str, Any]
KEY = "demo/web-1"
IN_PROGRESS = 'admission webhook "x.kubevirt.io" denied the request: another one in progress'
QUOTA = (
    'persistentvolumeclaims "web-1-logs" is forbidden: exceeded quota: disks, requested: '
    "requests.storage=10Gi, used: requests.storage=0, limited: requests.storage=1Gi"
)


class Refusing(Server):
    """The API server answers each (method, path ending) in `refusals` with its error; a
    third item, when there is one, is the `name` the body must carry (removevolume's)."""

    def __init__(self, raw: JsonObj, refusals: dict[tuple[str, ...], ApiError]) -> None:
        super().__init__(raw)
        self.refusals = refusals

    async def request(self, method: str, path: str, *, body: Any = None, **kw: Any) -> Any:
        for (verb, end, *named), error in self.refusals.items():
            if method == verb and path.endswith(end) and named in ([], [(body or {}).get("name")]):
                self.writes.append((method, path, body))
                raise error
        return await super().request(method, path, body=body, **kw)


def _caches(raw: JsonObj, world: Any, **more: list[JsonObj]) -> Cache:
    return Cache(
        {
            kinds.WUKONG.cache: [raw],
            kinds.VM.cache: [world.vm],
            kinds.VMI.cache: [world.vmi] if world.vmi else [],
            kinds.PVC.cache: list(world.claims.values()),
            kinds.DATA_VOLUME.cache: list(world.data_volumes.values()),
            kinds.NAD.cache: list(world.nads.values()),
            kinds.NETWORK_POLICY.cache: [POLICY],
            **more,
        }
    )


def _asking(action: str, **spec: Any) -> tuple[JsonObj, Cache]:
    """web-1 asked to `action`: running for a migration or a snapshot, stopped for a restore
    of snapshot good."""
    if action != "restore":
        world = running_world()
        body = wukong(lifecycleAction={"action": action}, **spec)
        raw = raw_wukong({"phase": "Running", "vmName": "web-1-vm", "observedGeneration": 1}, body)
        return raw, _caches(raw, world)
    body = wukong(lifecycleAction=ASKED, startStrategy={"autoStart": False})
    world = replace(ready_children(), vm=_stopped_vm(body, ready_children()))
    good = {
        "metadata": {"name": "good", "namespace": "demo"},
        "spec": {
            "source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "web-1-vm"}
        },
        "status": {"readyToUse": True, "phase": "Succeeded"},
    }
    raw = raw_wukong({"phase": "Stopped", "vmName": "web-1-vm", "observedGeneration": 1}, body)
    return raw, _caches(raw, world, **{kinds.SNAPSHOT.cache: [good]})


def _status(server: Server) -> JsonObj:
    return dict(server.raw.get("status") or {})


def _condition(status: JsonObj, type_: str) -> JsonObj:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


REQUESTS = [
    ("migrate", "/virtualmachineinstancemigrations", "migration", "MigrationRefused"),
    ("snapshot", "/virtualmachinesnapshots", "snapshot", "SnapshotRefused"),
    ("restore", "/virtualmachinerestores", "restore", "RestoreRefused"),
]


@pytest.mark.parametrize(("action", "path", "field", "reason"), REQUESTS)
async def test_a_request_kubevirt_refuses_is_said_once_and_is_no_child_to_admit(
    action: str, path: str, field: str, reason: str
) -> None:
    """A refused migration, snapshot or restore posted its own Warning and `ChildRefused`
    with the same words, set `ChildrenAdmitted=False` and asked a retry a second later,
    whose pass made nothing (the request is answered) and cleared the condition with a
    Normal `ChildrenAdmitted`: three Events and two writes for one refusal (session 49)."""
    raw, cache = _asking(action)
    server = Refusing(raw, {("POST", path): Invalid(422, "Invalid", IN_PROGRESS)})
    reconciler = Reconciler(cache, Executor(server), clock=lambda: NOW)
    after = await reconciler.reconcile(KEY)
    assert [e for e in events(server) if e[0] == "Warning"] == [("Warning", reason)]
    status = _status(server)
    assert status[field]["result"] in ("Refused", "Failed")
    assert IN_PROGRESS in status[field]["message"]
    assert _condition(status, CHILDREN_ADMITTED) == {}
    assert after is None  # answered: nothing to try again
    # Nor does a later pass make it again, say anything, or write.
    writes = len(server.writes)
    assert await reconciler.reconcile(KEY) is None
    assert server.writes[writes:] == []
    made = [p for m, p, _ in server.writes if m == "POST" and p.endswith(path)]
    assert len(made) == 1


async def test_a_refused_restore_ends_its_restoring_condition_at_once() -> None:
    """The refusal's pass writes the status it planned for a restore under way
    (`Restoring=True`); the retry `admit` asked for was what took it away. Without that
    retry, the pass after the write follows at once, as after a call KubeVirt refused."""
    raw, cache = _asking("restore")
    server = Refusing(raw, {("POST", "/virtualmachinerestores"): Invalid(422, "x", IN_PROGRESS)})
    await Reconciler(cache, Executor(server), clock=lambda: NOW).reconcile(KEY)
    statuses = [b["status"] for m, p, b in server.writes if p.endswith("/status")]
    assert _condition(statuses[0], "Restoring").get("status") == "True"
    assert _condition(_status(server), "Restoring") == {}


async def test_a_child_refused_beside_a_refused_request_is_still_admitted_and_retried() -> None:
    """A new disk's claim over the quota in the pass whose migration KubeVirt refused: the
    claim is a child to admit (its condition, its Warning, its retry); the migration is
    not."""
    raw, cache = _asking("migrate", disks=_disks(LOGS))
    refusals: dict[tuple[str, ...], ApiError] = {
        ("POST", "/virtualmachineinstancemigrations"): Invalid(422, "Invalid", IN_PROGRESS),
        ("POST", "/persistentvolumeclaims"): Forbidden(403, "Forbidden", QUOTA),
    }
    server = Refusing(raw, refusals)
    after = await Reconciler(cache, Executor(server), clock=lambda: NOW).reconcile(KEY)
    assert [e for e in events(server) if e[0] == "Warning"] == [
        ("Warning", "MigrationRefused"),
        ("Warning", "ChildRefused"),
    ]
    admitted = _condition(_status(server), CHILDREN_ADMITTED)
    assert admitted["reason"] == "Refused"
    assert (
        admitted["message"]
        == f"the API server refused to create PersistentVolumeClaim web-1-logs: {QUOTA}"
    )
    assert after == 1.0  # admission.py: the claim is tried again
