"""A pass decides again after its own creations, so one status write tells what they did."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.reconcile.test_disks_at_runtime import LOGS, _disks, running
from tests.unit.reconcile.world import NOW, POLICY, bound_pvc, ready_children, wukong
from wukong.act.executor import Executor
from wukong.act.reconciler import LOOK_AFTER_PATCH, Reconciler
from wukong.adapters.kube import Kube
from wukong.api import kinds, names
from wukong.errors import Conflict, TransientError
from wukong.testing.jsonpatch import json_patched

JsonObj = dict[str, Any]


class Cache:
    """The watch caches as a pass reads them, with the operator's write-through."""

    def __init__(self, objects: dict[str, list[JsonObj]]) -> None:
        self.objects = {
            kind: {o["metadata"]["name"]: o for o in objs} for kind, objs in objects.items()
        }
        self.remembered: list[str] = []

    def get(self, kind: str, namespace: str, name: str) -> JsonObj | None:
        return self.objects.get(kind, {}).get(name)

    def by_label(self, kind: str, label: str, value: str) -> list[JsonObj]:
        return [
            o
            for o in self.objects.get(kind, {}).values()
            if (o["metadata"].get("labels") or {}).get(label) == value
        ]

    def list(self, kind: str, namespace: str | None = None, selector: Any = None) -> list[JsonObj]:
        return list(self.objects.get(kind, {}).values())

    def remember(self, kind: str, obj: JsonObj) -> None:
        self.remembered.append(f"{kind}/{obj['metadata']['name']}")
        self.objects.setdefault(kind, {})[obj["metadata"]["name"]] = obj


class Cluster(Kube):
    """Accepts every write and records it; a created object comes back as the server's."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, str, Any]] = []

    async def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> Any:
        self.writes.append((method, path, body))
        if method == "POST":
            return {**body, "metadata": {**body["metadata"], "uid": "new", "resourceVersion": "9"}}
        return {}


def cache_for(raw: JsonObj, **extra: Any) -> Cache:
    world = ready_children(**extra)
    return Cache(
        {
            kinds.WUKONG.cache: [raw],
            kinds.VM.cache: [world.vm] if world.vm else [],
            kinds.PVC.cache: list(world.claims.values()),
            kinds.DATA_VOLUME.cache: list(world.data_volumes.values()),
            kinds.NAD.cache: list(world.nads.values()),
            kinds.NETWORK_POLICY.cache: [POLICY],
        }
    )


def raw_wukong(status: JsonObj, cr: Any = None) -> JsonObj:
    raw = (cr or wukong()).to_dict()
    raw["metadata"]["resourceVersion"] = "5"
    raw["metadata"]["creationTimestamp"] = "2026-11-23T11:59:00Z"
    raw["status"] = status
    return raw


async def test_the_vm_a_pass_creates_makes_the_wukong_starting_in_the_same_status_write() -> None:
    raw = raw_wukong({"phase": "Creating"})
    cache, cluster = cache_for(raw), Cluster()
    reconciler = Reconciler(cache, Executor(cluster), clock=lambda: NOW)
    await reconciler.reconcile("demo/web-1")
    posts = [body for method, _, body in cluster.writes if method == "POST"]
    assert [b["kind"] for b in posts if b["kind"] != "Event"] == ["VirtualMachine"]
    assert [b["reason"] for b in posts if b["kind"] == "Event"] == ["VMCreated"]
    assert cache.remembered == [f"{kinds.VM.cache}/web-1-vm"]
    statuses = [body for method, path, body in cluster.writes if path.endswith("/status")]
    assert len(statuses) == 1
    status = status_written(raw, statuses[0])
    assert status["phase"] == "Starting" and status["vmName"] == "web-1-vm"
    assert [h["reason"] for h in status["history"]] == ["VMCreated"]


def status_written(raw: JsonObj, ops: list[JsonObj]) -> JsonObj:
    """The status a status write (its RFC 6902 `ops`) makes of the Wukong `raw`, the one
    the pass read: as the API server applies it, to the whole object."""
    return dict(json_patched(raw, ops).get("status") or {})


class Server(Cluster):
    """A status PATCH comes back as the object it made, as the API server answers it; each
    status it made is in `statuses`."""

    def __init__(self, raw: JsonObj) -> None:
        super().__init__()
        self.raw = raw
        self.statuses: list[JsonObj] = []

    async def request(self, method: str, path: str, *, body: Any = None, **kw: Any) -> Any:
        if method == "PATCH" and path.endswith("/status"):
            self.writes.append((method, path, body))
            patched = json_patched(self.raw, body, path)
            version = int(self.raw["metadata"]["resourceVersion"]) + 1
            meta = {**self.raw["metadata"], "resourceVersion": str(version)}
            self.raw = {**self.raw, "metadata": meta, "status": patched["status"]}
            self.statuses.append(self.raw["status"])
            return self.raw
        return await super().request(method, path, body=body, **kw)


def merged(old: Any, patch: Any) -> Any:
    """RFC 7386 applied."""
    if not isinstance(patch, dict) or not isinstance(old, dict):
        return patch
    out = dict(old)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merged(old.get(key), value)
    return out


def running_with_request(action: str) -> tuple[JsonObj, Cache]:
    """A running web-1 whose spec carries lifecycle `action`, and the caches a pass reads."""
    from tests.unit.reconcile.test_lifecycle import running_world

    world = running_world()
    raw = wukong(lifecycleAction={"action": action}).to_dict()
    raw["metadata"] |= {"resourceVersion": "5", "creationTimestamp": "2026-11-23T11:59:00Z"}
    raw["status"] = {"phase": "Running", "vmName": "web-1-vm", "observedGeneration": 1}
    cache = Cache(
        {
            kinds.WUKONG.cache: [raw],
            kinds.VM.cache: [world.vm],
            kinds.VMI.cache: [world.vmi],
            kinds.PVC.cache: list(world.claims.values()),
            kinds.DATA_VOLUME.cache: list(world.data_volumes.values()),
            kinds.NAD.cache: list(world.nads.values()),
            kinds.NETWORK_POLICY.cache: [POLICY],
        }
    )
    return raw, cache


async def test_the_call_follows_its_accepted_record_in_the_same_reconcile() -> None:
    """Exactly once: `Accepted` is written before the restart is called; the pass that calls
    runs right after that write, in the same worker, not behind the rest of the queue."""
    raw, cache = running_with_request("restart")
    server = Server(raw)
    reconciler = Reconciler(cache, Executor(server), clock=lambda: NOW)
    again = await reconciler.reconcile("demo/web-1")
    statuses = iter(server.statuses)
    steps = [
        next(statuses)["lifecycleState"]["state"] if path.endswith("/status") else path
        for method, path, body in server.writes
        if method != "POST"
    ]
    restart = [p for p in steps if p.endswith("/restart")]
    assert len(restart) == 1
    assert steps.index("Accepted") < steps.index(restart[0]) < steps.index("Issued")
    assert again != 0.0  # nothing left waiting for a write: the queue has no more to do now


class Patching(Server):
    """A child's PATCH comes back as the object it made (kind and all), one version on."""

    def __init__(self, raw: JsonObj, vm: JsonObj) -> None:
        super().__init__(raw)
        self.vm = vm

    async def request(self, method: str, path: str, *, body: Any = None, **kw: Any) -> Any:
        if method == "PATCH" and path.endswith("/virtualmachines/web-1-vm"):
            self.writes.append((method, path, body))
            version = int(self.vm["metadata"].get("resourceVersion") or "10") + 1
            meta = {**self.vm["metadata"], "resourceVersion": str(version)}
            self.vm = {**merged(self.vm, body), "metadata": meta}
            return self.vm
        return await super().request(method, path, body=body, **kw)


def halted_vm_patching() -> tuple[Cache, Patching]:
    """A running web-1 whose VM someone set Halted (the pass patches runStrategy back to
    Always), and a server that answers the patch as the API server does."""
    from tests.unit.reconcile.test_lifecycle import running_world

    world = running_world("Halted")  # the user wants it running: runStrategy goes back
    vm = {**world.vm, "kind": "VirtualMachine", "apiVersion": "kubevirt.io/v1"}
    vm["metadata"] = {**vm["metadata"], "resourceVersion": "10"}
    raw = raw_wukong({"phase": "Running", "vmName": "web-1-vm", "observedGeneration": 1})
    return running_cache(raw, vm, world), Patching(raw, vm)


def running_cache(raw: JsonObj, vm: JsonObj, world: Any) -> Cache:
    """The caches of a running Wukong `raw`: its VM `vm` and the rest of `world`."""
    return Cache(
        {
            kinds.WUKONG.cache: [raw],
            kinds.VM.cache: [vm],
            kinds.VMI.cache: [world.vmi],
            kinds.PVC.cache: list(world.claims.values()),
            kinds.DATA_VOLUME.cache: list(world.data_volumes.values()),
            kinds.NAD.cache: list(world.nads.values()),
            kinds.NETWORK_POLICY.cache: [POLICY],
        }
    )


async def test_a_patched_child_is_written_through_so_the_next_pass_does_not_patch_again() -> None:
    """The audit log once showed two identical runStrategy patches in a row: the pass after
    the first read the VM from before it, because only creates were written through."""
    cache, server = halted_vm_patching()
    reconciler = Reconciler(cache, Executor(server), clock=lambda: NOW)
    await reconciler.reconcile("demo/web-1")
    await reconciler.reconcile("demo/web-1")  # woken again before the VM's watch event
    patches = [body for method, path, body in server.writes if path.endswith("/web-1-vm")]
    # Pinned to the VM it was decided from (PatchChild.uid) since session 49.
    assert patches == [{"spec": {"runStrategy": "Always"}, "metadata": {"uid": "vm-uid"}}]
    assert cache.get(kinds.VM.cache, "demo", "web-1-vm")["spec"]["runStrategy"] == "Always"


async def test_a_pass_that_patched_a_child_looks_again_soon() -> None:
    """CI, session 24: written through, the patch's own watch event changes nothing in the
    cache and wakes no pass. A re-created Wukong adopted its kept claim and then waited, in
    `Creating`, for an event that never came, instead of making the claim's DataVolume."""
    cache, server = halted_vm_patching()
    reconciler = Reconciler(cache, Executor(server), clock=lambda: NOW)
    after = await reconciler.reconcile("demo/web-1")
    assert after is not None and 0 < after <= LOOK_AFTER_PATCH
    again = await reconciler.reconcile("demo/web-1")  # nothing patched: no look for that
    assert again is None or again > LOOK_AFTER_PATCH


class Refusing(Server):
    """KubeVirt refuses the pause: a snapshot is in progress."""

    async def request(self, method: str, path: str, *, body: Any = None, **kw: Any) -> Any:
        if path.endswith("/pause"):
            self.writes.append((method, path, body))
            raise Conflict(409, "Conflict", "VM snapshot is in progress", path=path)
        return await super().request(method, path, body=body, **kw)


async def test_the_phase_goes_back_in_the_same_reconcile_as_the_refused_call() -> None:
    """Our own status write wakes no pass: the hop back from a call KubeVirt refused waited
    for the next event or the stall timer (300 s), Suspending all that time."""
    raw, cache = running_with_request("suspend")
    server = Refusing(raw)
    await Reconciler(cache, Executor(server), clock=lambda: NOW).reconcile("demo/web-1")
    phases = [status.get("phase") for status in server.statuses]
    assert phases[-1] == "Running"
    events = [b["reason"] for m, _, b in server.writes if m == "POST" and b["kind"] == "Event"]
    assert "CallRefused" in events


class ConflictOnce(Server):
    """A child's PATCH is answered 409 the first time (someone wrote it meanwhile), then
    comes back as the object it made."""

    def __init__(self, raw: JsonObj, children: dict[str, JsonObj]) -> None:
        super().__init__(raw)
        self.children = children
        self.conflicts = 1

    async def request(self, method: str, path: str, *, body: Any = None, **kw: Any) -> Any:
        name = path.rpartition("/")[2]
        if method == "PATCH" and name in self.children:
            self.writes.append((method, path, body))
            if self.conflicts:
                self.conflicts -= 1
                raise Conflict(409, "Conflict", "the object has been modified", path=path)
            child = self.children[name]
            version = int(child["metadata"].get("resourceVersion") or "10") + 1
            meta = {**merged(child["metadata"], body["metadata"]), "resourceVersion": str(version)}
            self.children[name] = {**child, "metadata": meta}
            return self.children[name]
        return await super().request(method, path, body=body, **kw)


def keeping_data_conflict_once() -> tuple[Cache, ConflictOnce]:
    """web-1 being deleted, keeping disk data, and a server that answers the release of its
    claim 409 once."""
    raw = raw_wukong({"phase": "Running", "vmName": "web-1-vm"})
    raw["metadata"] |= {
        "deletionTimestamp": "2026-11-23T12:00:00Z",
        "finalizers": [names.FINALIZER],
    }
    raw["spec"]["deleteOptions"] = {"preserveDisksList": ["data"]}
    cache = cache_for(raw)
    claims = {c["metadata"]["name"]: c for c in cache.list(kinds.PVC.cache)}
    claim = {**claims["web-1-data"], "kind": "PersistentVolumeClaim", "apiVersion": "v1"}
    return cache, ConflictOnce(raw, {"web-1-data": claim})


async def test_a_deletion_step_that_patched_after_a_conflict_looks_again_soon() -> None:
    """CI, session 25 (test_spec_parity, seed 1248171293): the release of a kept disk got a
    409; the pass after it released the disk but wrote no status (Retain already was the
    step), and its written-through patch woke nothing. The Wukong stayed in Retain for good
    with every disk released."""
    cache, server = keeping_data_conflict_once()
    reconciler = Reconciler(cache, Executor(server), clock=lambda: NOW)
    with pytest.raises(TransientError):
        await reconciler.reconcile("demo/web-1")  # Retain written, its patch refused
    cache.remember(kinds.WUKONG.cache, server.raw)
    after = await reconciler.reconcile("demo/web-1")  # released; the status says the same
    released = cache.get(kinds.PVC.cache, "demo", "web-1-data")
    assert names.LABEL_RETAINED_FROM in (released["metadata"].get("labels") or {})
    assert after is not None and 0 < after <= LOOK_AFTER_PATCH


def volume_calls(raw: JsonObj, world: Any) -> tuple[Cache, Server, Reconciler]:
    """A running Wukong's caches, a server that records its writes, and a reconciler."""
    assert world.vm is not None and world.vmi is not None
    cache = Cache(
        {
            kinds.WUKONG.cache: [raw],
            kinds.VM.cache: [world.vm],
            kinds.VMI.cache: [world.vmi],
            kinds.PVC.cache: list(world.claims.values()),
            kinds.DATA_VOLUME.cache: list(world.data_volumes.values()),
            kinds.NAD.cache: list(world.nads.values()),
            kinds.NETWORK_POLICY.cache: [POLICY],
        }
    )
    cluster = Server(raw)
    return cache, cluster, Reconciler(cache, Executor(cluster), clock=lambda: NOW)


def called(cluster: Server, subresource: str) -> int:
    return sum(1 for _, path, _ in cluster.writes if path.endswith(f"/{subresource}"))


async def test_a_disk_asked_for_is_not_asked_again_before_the_vm_shows_the_request() -> None:
    """virt-api answers addvolume before the VM shows the request; a pass woken meanwhile by
    another event found the cached VM unchanged and asked again (409, test_disks under load).
    Once the VM shows it, nothing more is remembered."""
    raw = raw_wukong({"phase": "Running"}, wukong(disks=_disks(LOGS)))
    world = running(**{"web-1-logs": bound_pvc("web-1-logs", "10Gi")})
    cache, cluster, reconciler = volume_calls(raw, world)
    await reconciler.reconcile("demo/web-1")
    await reconciler.reconcile("demo/web-1")  # woken by something else; the VM as it was
    assert called(cluster, "addvolume") == 1
    requested = {"volumeRequests": [{"addVolumeOptions": {"name": "logs"}}]}
    cache.objects[kinds.VM.cache]["web-1-vm"] = world.vm | {"status": requested}
    await reconciler.reconcile("demo/web-1")
    assert called(cluster, "addvolume") == 1 and reconciler._volume_calls == {}


async def test_a_disk_asked_out_is_not_asked_out_again_before_the_vm_shows_the_request() -> None:
    status = {  # logs is gone from the spec; it is forced out, no guest check
        "phase": "Running",
        "volumes": [{"name": "logs", "pvcName": "web-1-logs", "forceDetach": True}],
    }
    world = running(plugged=("logs",), **{"web-1-logs": bound_pvc("web-1-logs", "10Gi")})
    cache, cluster, reconciler = volume_calls(raw_wukong(status), world)
    await reconciler.reconcile("demo/web-1")
    await reconciler.reconcile("demo/web-1")
    assert called(cluster, "removevolume") == 1
    requested = {"volumeRequests": [{"removeVolumeOptions": {"name": "logs"}}]}
    cache.objects[kinds.VM.cache]["web-1-vm"] = world.vm | {"status": requested}
    await reconciler.reconcile("demo/web-1")
    assert called(cluster, "removevolume") == 1 and reconciler._volume_calls == {}


class Busy(Server):
    """The VM's template PATCH meets a 409 (another writer came first) the first `times`."""

    def __init__(self, raw: JsonObj, times: int) -> None:
        super().__init__(raw)
        self.times = times

    async def request(self, method: str, path: str, *, body: Any = None, **kw: Any) -> Any:
        if method == "PATCH" and path.endswith("/virtualmachines/web-1-vm") and self.times:
            self.times -= 1
            self.writes.append(("409", path, body))
            raise Conflict(409, "Conflict", "the object has been modified")
        return await super().request(method, path, body=body, **kw)


async def test_a_restart_waits_for_the_template_patch_that_carries_what_it_applies() -> None:
    """Session 43's note feared a restart asked in a pass whose template patch met a 409 would
    boot the old template (new cloud-init lost until the next restart). It does not: the
    patch comes before the call, and a 409 stops the pass there; the next pass patches, then
    calls. Pinned here so that an order change cannot bring the fear true."""
    raw, cache = running_with_request("restart")
    raw["spec"]["cloudInit"] = {"userData": "#cloud-config\nhostname: web-1-new\n"}
    raw["metadata"]["generation"] = 2
    server = Busy(raw, times=1)
    reconciler = Reconciler(cache, Executor(server), clock=lambda: NOW)
    with pytest.raises(TransientError):  # the 409: the queue tries the key again
        await reconciler.reconcile("demo/web-1")
    assert not [p for _, p, _ in server.writes if p.endswith("/restart")]
    for _ in range(3):
        await reconciler.reconcile("demo/web-1")
    steps = [(method, path) for method, path, _ in server.writes if "/status" not in path]
    vm = [s for s in steps if "web-1-vm" in s[1]]
    calls = [i for i, (_, path) in enumerate(vm) if path.endswith("/restart")]
    patches = [i for i, (method, _) in enumerate(vm) if method == "PATCH"]
    assert vm[0][0] == "409" and calls and patches, vm
    assert patches[0] < calls[0]  # the restart only after the template has the new user data


class OlderCrd(Server):
    """The API server of a cluster that still has 0.1.0's Wukong CRD: its structural schema
    prunes the status fields added since (`lifecycleState.call`, `autoStart`), as
    apiextensions-apiserver's pruning does on every decode of a status patch's result."""

    pruning = True

    async def request(self, method: str, path: str, *, body: Any = None, **kw: Any) -> Any:
        answer = await super().request(method, path, body=body, **kw)
        if self.pruning and method == "PATCH" and path.endswith("/status"):
            status = dict(self.raw["status"])
            status.pop("autoStart", None)
            if "lifecycleState" in status:
                status["lifecycleState"] = {
                    k: v for k, v in status["lifecycleState"].items() if k != "call"
                }
            self.raw = answer = {**self.raw, "status": status}
        return answer


def _vm_calls(server: Server) -> list[str]:
    return [p.rsplit("/", 1)[1] for method, p, _ in server.writes if method == "PUT"]


def _events(server: Server) -> list[JsonObj]:
    return [b for method, _, b in server.writes if method == "POST" and b["kind"] == "Event"]


async def test_an_older_crd_pruning_the_call_is_said_and_no_call_is_marked_sent() -> None:
    """Upgrade audit, session 47, finding 3: with 0.1.0's CRD still installed the API server
    pruned `lifecycleState.call` from the record written before the call, and the pass after
    answered "restart sent to KubeVirt" without making it: every start, stop and restart."""
    raw, cache = running_with_request("restart")
    server = OlderCrd(raw)
    reconciler = Reconciler(cache, Executor(server), clock=lambda: NOW)
    await reconciler.reconcile("demo/web-1")
    assert _vm_calls(server) == []
    life = server.raw["status"]["lifecycleState"]
    assert life["state"] == "Failed", life
    assert life["message"].startswith("restart not made: the Wukong CRD in the cluster is older")
    assert "status.lifecycleState.call" in life["message"]
    assert "manifests/crd" in life["message"]
    # The phase follows: nothing restarts.
    assert server.raw["status"]["phase"] == "Running"
    outdated = [e for e in _events(server) if e["reason"] == "CRDOutdated"]
    assert len(outdated) == 1 and outdated[0]["type"] == "Warning"
    assert "status.autoStart" in outdated[0]["message"]
    why = reconciler.crd_outdated()
    assert why is not None and "status.lifecycleState.call" in why
    # Said once per Wukong: another pass that writes posts no second CRDOutdated.
    asked = {"action": "restart", "requestedAt": "2"}
    cache.objects[kinds.WUKONG.cache]["web-1"] = {
        **server.raw,
        "spec": {**server.raw["spec"], "lifecycleAction": asked},
    }
    await reconciler.reconcile("demo/web-1")
    assert [e["reason"] for e in _events(server)].count("CRDOutdated") == 1
    assert _vm_calls(server) == []


async def test_once_the_crd_is_applied_the_next_request_is_called() -> None:
    raw, cache = running_with_request("restart")
    server = OlderCrd(raw)
    reconciler = Reconciler(cache, Executor(server), clock=lambda: NOW)
    await reconciler.reconcile("demo/web-1")
    assert reconciler.crd_outdated() is not None
    server.pruning = False  # `kubectl apply -f manifests/crd`
    asked = {"action": "restart", "requestedAt": "again"}
    cache.objects[kinds.WUKONG.cache]["web-1"] = {
        **server.raw,
        "spec": {**server.raw["spec"], "lifecycleAction": asked},
    }
    await reconciler.reconcile("demo/web-1")
    assert _vm_calls(server) == ["restart"]
    assert reconciler.crd_outdated() is None
