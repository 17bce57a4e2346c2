"""Every patch of a child is pinned to the object it was decided from (`PatchChild.uid`).

A VM (DataVolume, claim, NAD) deleted and made again under its name between the cache and
the patch is another object: a decision about its predecessor must not land on it. The patch
carries `metadata.uid`; kube-apiserver refuses it on another object (422, "metadata.uid ...
field is immutable", rest.BeforeUpdate), which the operator takes for a Conflict: the pass
decides again from the cache, nothing is said to the user (docs/decisions.md, "A patch lands
only on the object it was decided for").

Every planner test also checks the rule for each patch it sees (world.assert_pinned).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.reconcile.test_deletion import deleting, world_with_vm
from tests.unit.reconcile.test_lifecycle import running_world
from tests.unit.reconcile.test_settle import (
    Cache,
    merged,
    raw_wukong,
    running_cache,
    status_written,
)
from tests.unit.reconcile.world import NOW, decide, plan_deletion, wukong
from wukong.act.executor import Executor, classify
from wukong.act.reconciler import Reconciler
from wukong.adapters.kube import Kube
from wukong.api import kinds
from wukong.errors import Conflict, Invalid, TransientError
from wukong.errors import classify as classify_http
from wukong.reconcile.actions import Action, ExpandDisk, PatchChild, uid_of

JsonObj = dict[str, Any]
OWNER = {
    "apiVersion": "vm.novasphere.dev/v1alpha1",
    "kind": "Wukong",
    "metadata": {"name": "web-1", "namespace": "demo", "uid": "uid-web-1"},
}
VMS = "/apis/kubevirt.io/v1/namespaces/demo/virtualmachines"


def uid_refusal(kind: str, name: str, uid: str) -> str:
    """kube-apiserver's answer to a patch whose metadata.uid is not the object's (v1.37)."""
    message = (
        f'{kind} "{name}" is invalid: metadata.uid: Invalid value: "{uid}": field is immutable'
    )
    cause = {
        "reason": "FieldValueInvalid",
        "message": "field is immutable",
        "field": "metadata.uid",
    }
    return json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": message,
            "reason": "Invalid",
            "details": {"name": name, "kind": kind, "causes": [cause]},
            "code": 422,
        }
    )


class ApiServer(Kube):
    """Objects by path; a merge PATCH applies as kube-apiserver applies it, `metadata.uid`
    included: the uid of another object is refused (422). Anything else is recorded and
    answered empty (Events, the Wukong's status)."""

    def __init__(self, objects: dict[str, JsonObj]) -> None:
        self.objects = objects
        self.writes: list[tuple[str, str, Any]] = []

    async def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> Any:
        self.writes.append((method, path, body))
        if method != "PATCH" or path not in self.objects:
            return {}
        obj = self.objects[path]
        meta = obj["metadata"]
        uid = (body.get("metadata") or {}).get("uid")
        if uid is not None and uid != meta["uid"]:
            raise classify_http(422, uid_refusal(obj["kind"], meta["name"], uid), path)
        self.objects[path] = merged(obj, body)
        return self.objects[path]


def vm(uid: str, strategy: str, **meta: Any) -> JsonObj:
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": "web-1-vm", "namespace": "demo", "uid": uid, **meta},
        "spec": {"runStrategy": strategy},
    }


# The planners: the uid of the cached object each patch is decided from.


def test_the_run_strategy_patch_carries_the_uid_of_the_vm_it_was_decided_from() -> None:
    world = running_world("Halted")  # the user wants it running: runStrategy goes back
    status = {"phase": "Running", "vmName": "web-1-vm", "observedGeneration": 1}
    plan = decide(wukong(), status, world)
    (patch,) = [a for a in plan.actions if isinstance(a, PatchChild)]
    assert patch.patch == {"spec": {"runStrategy": "Always"}}
    assert patch.uid == "vm-uid" == uid_of(world.vm)


def test_a_template_patch_carries_the_uid_too_beside_its_resource_version() -> None:
    world = running_world()
    assert world.vm is not None
    world.vm["metadata"]["resourceVersion"] = "10"
    cr = wukong(cpu=4)
    plan = decide(cr, {"phase": "Running", "vmName": "web-1-vm", "observedGeneration": 1}, world)
    (patch,) = [a for a in plan.actions if isinstance(a, PatchChild)]
    assert patch.why == "spec changed" and patch.uid == "vm-uid"
    assert patch.patch["metadata"] == {"resourceVersion": "10"}


def test_the_releases_of_kept_disks_carry_the_uid_of_each_claim() -> None:
    plan = plan_deletion(
        deleting(deleteOptions={"preserveDisksList": ["data"]}), {}, world_with_vm()
    )
    (release,) = [a for a in plan.actions if isinstance(a, PatchChild)]
    assert (release.kind, release.name, release.uid) == (
        "PersistentVolumeClaim",
        "web-1-data",
        "web-1-data-uid",
    )


def test_patch_child_cannot_be_made_without_saying_which_object_it_is_for() -> None:
    with pytest.raises(TypeError, match="uid"):
        PatchChild("VirtualMachine", "web-1-vm", {"spec": {}}, "run strategy")  # type: ignore[call-arg]


# The executor: the uid goes out as metadata.uid, whatever the kind.


async def test_every_patch_of_a_child_goes_out_with_its_uid() -> None:
    server = ApiServer({})
    actions: list[Action] = [
        PatchChild("VirtualMachine", "web-1-vm", {"spec": {"runStrategy": "Halted"}}, uid="u-vm"),
        PatchChild(
            "NetworkAttachmentDefinition", "web-1-net", {"spec": {"config": "{}"}}, uid="u-nad"
        ),
        PatchChild("DataVolume", "web-1-sys", {"metadata": {"labels": {"a": "b"}}}, uid="u-dv"),
        PatchChild(
            "PersistentVolumeClaim",
            "web-1-data",
            {"metadata": {"labels": {"a": "b"}, "resourceVersion": "7"}},
            uid="u-pvc",
        ),
        ExpandDisk("web-1-data", "200Gi", "data", "210Gi", "u-pvc"),
    ]
    outcome = await Executor(server).run(OWNER, actions)
    assert not outcome.failures
    sent = [(path.rpartition("/")[2], body) for method, path, body in server.writes]
    assert sent == [
        ("web-1-vm", {"spec": {"runStrategy": "Halted"}, "metadata": {"uid": "u-vm"}}),
        ("web-1-net", {"spec": {"config": "{}"}, "metadata": {"uid": "u-nad"}}),
        ("web-1-sys", {"metadata": {"labels": {"a": "b"}, "uid": "u-dv"}}),
        (
            "web-1-data",
            {"metadata": {"labels": {"a": "b"}, "resourceVersion": "7", "uid": "u-pvc"}},
        ),
        (
            "web-1-data",
            {
                "spec": {"resources": {"requests": {"storage": "210Gi"}}},
                "metadata": {"uid": "u-pvc"},
            },
        ),
    ]


async def test_a_patch_meeting_another_object_of_the_name_is_a_conflict_and_changes_nothing() -> (
    None
):
    """The VM was deleted and made again (uid vm-2) after the pass read it (vm-uid)."""
    server = ApiServer({f"{VMS}/web-1-vm": vm("vm-2", "Halted")})
    start = PatchChild(
        "VirtualMachine", "web-1-vm", {"spec": {"runStrategy": "Always"}}, uid="vm-uid"
    )
    outcome = await Executor(server).run(OWNER, [start])
    assert outcome.transient  # the pass stops here; the queue tries the key again
    error = outcome.failures[start]
    assert isinstance(error, Conflict) and error.status == 409
    assert "not the object the patch was decided for (uid vm-uid)" in error.message
    assert classify(start, error).kind == "transient"
    assert server.objects[f"{VMS}/web-1-vm"]["spec"]["runStrategy"] == "Halted"


async def test_any_other_refusal_of_a_pinned_patch_stays_a_refusal() -> None:
    denied = 'admission webhook "vm.example" denied the request: no GPUs'

    class Webhook(Kube):
        def __init__(self) -> None:
            pass

        async def request(self, method: str, path: str, **_: Any) -> Any:
            raise classify_http(422, json.dumps({"reason": "Invalid", "message": denied}), path)

    with pytest.raises(Invalid):
        await Webhook().merge_patch(f"{VMS}/web-1-vm", {"spec": {}}, uid="vm-uid")
    # Without a uid of ours in it, a uid error is not ours to read as a lost race.
    said = uid_refusal("VirtualMachine.kubevirt.io", "web-1-vm", "x")

    class Other(Kube):
        def __init__(self) -> None:
            pass

        async def request(self, method: str, path: str, **_: Any) -> Any:
            raise classify_http(422, said, path)

    with pytest.raises(Invalid):
        await Other().merge_patch(f"{VMS}/web-1-vm", {"metadata": {"uid": "x"}})


async def test_a_released_data_volume_meeting_a_new_one_is_not_a_refused_release() -> None:
    """CDI's refusal of a release (400/422) is answered as `refusedReleases` (the disk's data
    not kept with its DataVolume): a DataVolume made anew under the name is not that."""
    dvs = "/apis/cdi.kubevirt.io/v1beta1/namespaces/demo/datavolumes"
    new = {"kind": "DataVolume", "metadata": {"name": "web-1-system", "uid": "dv-2"}}
    server = ApiServer({f"{dvs}/web-1-system": new})
    release = PatchChild("DataVolume", "web-1-system", {"metadata": {"labels": {}}}, uid="dv-1")
    outcome = await Executor(server).run(OWNER, [release], stop_on_failure=True)
    assert outcome.failed[release].kind == "transient"


# A whole pass: the cache still shows the VM as it was; the server holds another one.


def stale_cache() -> Cache:
    """web-1 running as it wants to, but its VM Halted (a user's `virtctl stop`): the pass
    sets runStrategy back to Always."""
    world = running_world("Halted")
    assert world.vm is not None
    cached = {**world.vm, "kind": "VirtualMachine", "apiVersion": "kubevirt.io/v1"}
    raw = raw_wukong({"phase": "Running", "vmName": "web-1-vm", "observedGeneration": 1})
    return running_cache(raw, cached, world)


async def test_a_vm_made_anew_under_the_name_is_not_given_the_old_vms_run_strategy() -> None:
    cache = stale_cache()
    users = vm("users-vm", "Halted")  # someone else's VM of the name, stopped on purpose
    server = ApiServer({f"{VMS}/web-1-vm": users})
    reconciler = Reconciler(cache, Executor(server), clock=lambda: NOW)
    with pytest.raises(TransientError):  # as any 409: the queue tries the key again
        await reconciler.reconcile("demo/web-1")
    tried = [body for method, path, body in server.writes if path.endswith("/web-1-vm")]
    assert tried == [{"spec": {"runStrategy": "Always"}, "metadata": {"uid": "vm-uid"}}]
    assert server.objects[f"{VMS}/web-1-vm"]["spec"]["runStrategy"] == "Halted"
    # Not a refusal to tell the user: no ChildrenAdmitted=False, no ChildRefused Warning.
    read = cache.get(kinds.WUKONG.cache, "demo", "web-1")  # the server answers {}: still it
    statuses = [status_written(read, b) for _, p, b in server.writes if p.endswith("/status")]
    conditions = [c["type"] for s in statuses for c in s.get("conditions") or []]
    assert "ChildrenAdmitted" not in conditions
    events = [b.get("reason") for m, _, b in server.writes if m == "POST"]
    assert "ChildRefused" not in events and "RunStrategyReverted" not in events
    # The cache catches up: the VM of the name is not the Wukong's, and is left alone.
    cache.objects[kinds.VM.cache]["web-1-vm"] = users
    cache.objects[kinds.VMI.cache] = {}
    await reconciler.reconcile("demo/web-1")
    assert server.objects[f"{VMS}/web-1-vm"] == users
    assert [b for _, p, b in server.writes if p.endswith("/web-1-vm")] == tried
