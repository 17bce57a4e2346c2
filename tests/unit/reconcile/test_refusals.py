"""Each refusal said once, where it belongs (session 49): a migration, snapshot or restore
KubeVirt refuses is the request's answer, not a child to admit again; and of two disks
detached in one pass, the one whose delete or unplug went through is detached while the
other says its refusal."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from tests.unit.reconcile.test_disks_at_runtime import LOGS, _disks, running
from tests.unit.reconcile.test_lifecycle import running_world
from tests.unit.reconcile.test_restoring import ASKED, _stopped_vm
from tests.unit.reconcile.test_settle import Cache, Server, raw_wukong, volume_calls
from tests.unit.reconcile.test_story import events
from tests.unit.reconcile.world import NOW, POLICY, bound_pvc, ready_children, wukong
from wukong.act.executor import Executor
from wukong.act.reconciler import Reconciler
from wukong.api import kinds, names
from wukong.api.conditions import CHILDREN_ADMITTED
from wukong.api.status import WukongStatus
from wukong.errors import ApiError, Forbidden, Invalid
from wukong.reconcile.actions import DeleteChild, Emit, Failed, PatchChild, told
from wukong.reconcile.decide import decide
from wukong.reconcile.outcome import fold

JsonObj = dict[str, Any]
KEY = "demo/web-1"
IN_PROGRESS = 'admission webhook "x.kubevirt.io" denied the request: another one in progress'
PROTECTED = 'admission webhook "protect.example.com" denied the request: claims labelled keep'
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
    assert _condition(server.statuses[0], "Restoring").get("status") == "True"
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


# -- two disks detached in one pass ---------------------------------------------------------


def _claim(disk: str) -> JsonObj:
    """A removed disk's claim, as the caches find it: by the Wukong's label."""
    claim = bound_pvc(f"web-1-{disk}", "10Gi")
    claim["metadata"]["labels"] = {names.LABEL_WUKONG: "web-1"}
    return claim


def _entry(disk: str, **more: Any) -> JsonObj:
    return {"name": disk, "pvcName": f"web-1-{disk}", "preserveData": False, **more}


def _volume(status: JsonObj, disk: str) -> JsonObj:
    return next((v for v in status.get("volumes") or [] if v["name"] == disk), {})


def _said(server: Server, reason: str) -> list[str]:
    return [
        b["message"]
        for m, p, b in server.writes
        if m == "POST" and p.endswith("/events") and b["reason"] == reason
    ]


def _stopped_with_two_removed() -> tuple[Cache, JsonObj]:
    """web-1 stopped (its VMI ended, Manual keeps it), disks logs and tmp removed from its
    spec: one pass deletes both claims."""
    world = running(**{"web-1-logs": _claim("logs"), "web-1-tmp": _claim("tmp")})
    ended = copy.deepcopy(world.vmi)
    ended["status"]["phase"] = "Succeeded"
    status = {
        "phase": "Stopped",
        "vmName": "web-1-vm",
        "observedGeneration": 1,
        "volumes": [_entry("logs"), _entry("tmp")],
    }
    raw = raw_wukong(status)
    cache, _, _ = volume_calls(raw, replace(world, vmi=ended))
    return cache, raw


async def test_of_two_disks_detached_the_deleted_one_is_said_detached_and_the_other_refused() -> (
    None
):
    """One `DiskDetached` named both disks and was tied to both deletes: with one refused (a
    webhook protecting the claim), neither was said detached, and the one deleted never was
    afterwards; nor did the status say which disk the refusal held (session 48's leftover)."""
    cache, raw = _stopped_with_two_removed()
    refused = Forbidden(403, "Forbidden", PROTECTED)
    server = Refusing(raw, {("DELETE", "/persistentvolumeclaims/web-1-logs"): refused})
    reconciler = Reconciler(cache, Executor(server), clock=lambda: NOW)
    after = await reconciler.reconcile(KEY)
    deleted = [p for m, p, _ in server.writes if m == "DELETE"]
    assert [p.rsplit("/", 1)[1] for p in deleted] == ["web-1-logs", "web-1-tmp"]
    assert _said(server, "DiskDetached") == ["detached disk tmp: data deleted"]
    words = f"the API server refused to delete PersistentVolumeClaim web-1-logs: {PROTECTED}"
    assert _said(server, "ChildRefused") == [words]
    status = _status(server)
    assert _volume(status, "logs")["phase"] == "Detaching"
    assert _volume(status, "logs")["message"] == words
    assert _volume(status, "tmp")["phase"] == "Detaching"  # as for any delete, until it goes
    assert "message" not in _volume(status, "tmp")
    assert _condition(status, CHILDREN_ADMITTED)["message"] == words
    assert after == 1.0

    # tmp's claim is gone; the webhook lets logs's go: logs is said detached in its turn.
    del cache.objects[kinds.PVC.cache]["web-1-tmp"]
    server.refusals.clear()
    writes = len(server.writes)
    await reconciler.reconcile(KEY)
    assert [b["message"] for m, p, b in server.writes[writes:] if p.endswith("/events")] == [
        "detached disk logs: data deleted",
        "the API server accepted every child",
    ]
    status = _status(server)
    assert _volume(status, "tmp") == {}
    assert "message" not in _volume(status, "logs")  # the refusal is over
    assert _condition(status, CHILDREN_ADMITTED) == {}
    assert _said(server, "DiskDetached") == [
        "detached disk tmp: data deleted",
        "detached disk logs: data deleted",
    ]


def test_a_disk_kept_beside_a_disk_deleted_is_said_kept_and_the_other_deleted() -> None:
    """The one Event said "detached disks logs, tmp: data kept in web-1-logs": of tmp,
    deleted, nothing."""
    world = running(**{"web-1-logs": bound_pvc("web-1-logs"), "web-1-tmp": bound_pvc("web-1-tmp")})
    ended = copy.deepcopy(world.vmi)
    ended["status"]["phase"] = "Succeeded"
    old = WukongStatus.model_validate(
        {"phase": "Stopped", "volumes": [_entry("logs", preserveData=True), _entry("tmp")]}
    )
    plan = decide(wukong(), old, replace(world, vmi=ended))
    keep = next(a for a in plan.actions if isinstance(a, PatchChild))
    delete = next(a for a in plan.actions if isinstance(a, DeleteChild))
    said = [a for a in plan.actions if isinstance(a, Emit)]
    assert [e.message for e in said] == [
        "detached disk logs: data kept in web-1-logs",
        "detached disk tmp: data deleted",
    ]
    # Each said once its own action went through.
    assert [e.message for e in told(said, {delete})] == ["detached disk tmp: data deleted"]
    assert [e.message for e in told(said, {keep})] == [
        "detached disk logs: data kept in web-1-logs"
    ]
    # And a refused delete's disk says why in its own status entry.
    written = fold(plan.status, old, {delete: Failed("permanent", PROTECTED, 403)})
    entries = {v.name: v.message for v in written.volumes if v.phase == "Detaching"}
    assert entries == {
        "logs": None,
        "tmp": f"the API server refused to delete PersistentVolumeClaim web-1-tmp: {PROTECTED}",
    }


async def test_of_two_disks_unplugged_the_refused_one_says_so_and_is_asked_again_alone() -> None:
    """Hot-unplug: virt-api refuses one `removevolume` (422) and takes the other. Each is
    answered on its own: the one taken is remembered in flight and left to KubeVirt, the
    refused one's entry says why and it alone is asked again."""
    status = {
        "phase": "Running",
        "vmName": "web-1-vm",
        "volumes": [_entry("logs", forceDetach=True), _entry("tmp", forceDetach=True)],
    }
    world = running(
        plugged=("logs", "tmp"), **{"web-1-logs": _claim("logs"), "web-1-tmp": _claim("tmp")}
    )
    cache, _, _ = volume_calls(raw_wukong(status), world)
    raw = cache.get(kinds.WUKONG.cache, "demo", "web-1")
    assert raw is not None
    no = Invalid(422, "Invalid", "volume logs is not hotpluggable")
    server = Refusing(raw, {("PUT", "/virtualmachines/web-1-vm/removevolume", "logs"): no})
    reconciler = Reconciler(cache, Executor(server), clock=lambda: NOW)
    await reconciler.reconcile(KEY)
    asked = [b["name"] for m, p, b in server.writes if p.endswith("/removevolume")]
    assert asked == ["logs", "tmp"]
    words = "KubeVirt refused to unplug disk logs: volume logs is not hotpluggable"
    assert _said(server, "ChildRefused") == [words]
    status = _status(server)
    assert _volume(status, "logs")["message"] == words
    assert "message" not in _volume(status, "tmp")
    assert _condition(status, CHILDREN_ADMITTED)["message"] == words
    # The next pass asks logs again, not tmp (asked, the VM does not show it yet).
    writes = len(server.writes)
    await reconciler.reconcile(KEY)
    again = [b["name"] for m, p, b in server.writes[writes:] if p.endswith("/removevolume")]
    assert again == ["logs"]


async def test_an_unplug_the_operators_rbac_refuses_names_the_permission_not_kubevirt() -> None:
    """Audit leftovers, session 50: virt-api's `removevolume` answered 403 by the authorizer
    (the operator's ClusterRole lacking `virtualmachines/removevolume`) was said "KubeVirt
    refused to unplug disk logs", a ChildRefused Warning blaming KubeVirt. Through the
    executor (whose `Failed` is transient, session 32) and the reconciler: tried again
    after the refusal's delay, and the Wukong says the operator's RBAC lacks it."""
    status = {
        "phase": "Running",
        "vmName": "web-1-vm",
        "volumes": [_entry("logs", forceDetach=True)],
    }
    world = running(plugged=("logs",), **{"web-1-logs": _claim("logs")})
    cache, _, _ = volume_calls(raw_wukong(status), world)
    raw = cache.get(kinds.WUKONG.cache, "demo", "web-1")
    assert raw is not None
    denied = Forbidden(
        403,
        "Forbidden",
        'virtualmachines.subresources.kubevirt.io "web-1-vm" is forbidden: User '
        '"system:serviceaccount:wukong-system:wukong" cannot update resource '
        '"virtualmachines/removevolume" in API group "subresources.kubevirt.io" in the '
        'namespace "demo"',
    )
    server = Refusing(raw, {("PUT", "/virtualmachines/web-1-vm/removevolume", "logs"): denied})
    retry = await Reconciler(cache, Executor(server), clock=lambda: NOW).reconcile(KEY)
    assert retry == 1.0
    said = _condition(_status(server), CHILDREN_ADMITTED)["message"]
    assert said == (
        "the operator may not unplug disk logs: its ServiceAccount "
        "(system:serviceaccount:wukong-system:wukong) lacks update on "
        "virtualmachines/removevolume (API group subresources.kubevirt.io); its RBAC is "
        'incomplete, see docs/install.md "Permissions"'
    )
    assert _said(server, "ChildRefused") == [said]
