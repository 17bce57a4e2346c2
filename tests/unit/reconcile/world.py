"""Builders for planner tests: a Wukong and the cluster objects a pass would observe."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from wukong.api import JsonObj
from wukong.api.conditions import Cond
from wukong.api.status import WukongStatus
from wukong.api.v1alpha1 import Wukong
from wukong.reconcile.actions import ExpandDisk, PatchChild, uid_of
from wukong.reconcile.observed import Observed

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
UID = "uid-web-1"
NS = "demo"


def wukong(**spec: Any) -> Wukong:
    """web-1 with an image system disk, a blank data disk, a named and an owned network."""
    body: dict[str, Any] = {
        "cpu": 2,
        "memory": "4Gi",
        "disks": [
            {
                "name": "system",
                "size": "20Gi",
                "image": "docker://quay.io/containerdisks/fedora:40",
            },
            {"name": "data", "size": "100Gi"},
        ],
        "networks": [
            {"name": "storage-net", "nadName": "existing-nad"},
            {"name": "vlan100", "type": "bridge", "bridge": "br-vlan100", "vlan": 100},
        ],
    }
    body.update(spec)
    meta = {
        "name": "web-1",
        "namespace": NS,
        "uid": UID,
        "generation": 1,
        "resourceVersion": "1",
        "finalizers": ["wukong.novasphere.dev/finalizer"],
    }
    return Wukong.from_dict(
        {
            "apiVersion": "vm.novasphere.dev/v1alpha1",
            "kind": "Wukong",
            "metadata": meta,
            "spec": body,
        }
    )


def owned(
    kind: str,
    name: str,
    *,
    status: dict[str, Any] | None = None,
    spec: dict[str, Any] | None = None,
    uid: str = UID,
    **meta: Any,
) -> dict[str, Any]:
    """A child object owned by web-1 (or by `uid`)."""
    return {
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"{name}-uid",
            "ownerReferences": [{"uid": uid, "kind": "Wukong", "name": "web-1"}],
            **meta,
        },
        "spec": spec or {},
        "status": status or {},
    }


def user_nad(name: str = "existing-nad") -> dict[str, Any]:
    """A NAD the user made (no owner)."""
    return {
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": NS, "uid": f"{name}-uid"},
        "spec": {"config": "{}"},
    }


def bound_pvc(name: str, size: str = "100Gi") -> dict[str, Any]:
    """A bound PVC owned by web-1."""
    return owned(
        "PersistentVolumeClaim",
        name,
        spec={"resources": {"requests": {"storage": size}}},
        status={"phase": "Bound", "capacity": {"storage": size}},
    )


RESTORE_MARK = "web-1-restore-1-restore-uid"
"""KubeVirt's lastRestoreUID (`<name>-<uid>`) of restore web-1-restore-1, uid restore-uid."""


def restored_pvc(
    wukong: str = "web-1", disk: str | None = "data", restore: str = RESTORE_MARK
) -> dict[str, Any]:
    """A claim KubeVirt's restore made for `wukong`'s disk: the old claim's labels copied,
    KubeVirt's own added, no owner (`volumeOwnershipPolicy: None`), and the restore's mark
    (annotation lastRestoreUID, `restore`)."""
    from wukong.api import names

    pvc = bound_pvc(f"{wukong}-{disk or 'data'}")
    pvc["metadata"]["ownerReferences"] = []
    pvc["metadata"]["labels"] = {
        names.LABEL_WUKONG: wukong,
        **({names.LABEL_DISK: disk} if disk else {}),
        names.LABEL_RESTORED_FROM_VM: f"{wukong}-vm",
    }
    pvc["metadata"]["annotations"] = {names.ANNOTATION_LAST_RESTORE: restore}
    return pvc


def imported_dv(
    name: str = "web-1-system", phase: str = "Succeeded", progress: str = "100.0%", **status: Any
) -> dict[str, Any]:
    """A DataVolume owned by web-1."""
    return owned("DataVolume", name, status={"phase": phase, "progress": progress, **status})


# The administrator's WukongNetworkPolicy of this world: web-1's owned network is allowed.
POLICY: dict[str, Any] = {
    "metadata": {"name": "cluster"},
    "spec": {
        "rules": [
            {"namespaces": [NS], "bridges": ["br-vlan100"], "vlans": [{"from": 100, "to": 199}]}
        ]
    },
}


def seen(**kw: Any) -> Observed:
    """An Observed at NOW, in a cluster whose network policy allows web-1's networks."""
    kw.setdefault("network_policy", POLICY)
    return Observed(now=NOW, **kw)


def ready_children(**extra: Any) -> Observed:
    """Networks and disks all ready; no VM yet."""
    from wukong.reconcile.children import build_nad

    cr = wukong()
    nad = build_nad(cr, cr.spec.networks[1])
    nad["metadata"]["uid"] = "nad-uid"
    kw: dict[str, Any] = {
        "nads": {f"{NS}/existing-nad": user_nad(), f"{NS}/web-1-vlan100": nad},
        "data_volumes": {"web-1-system": imported_dv()},
        "claims": {
            "web-1-system": bound_pvc("web-1-system", "20Gi"),
            "web-1-data": bound_pvc("web-1-data"),
        },
    }
    kw.update(extra)
    return seen(**kw)


def pruned_fields(
    value: Any, schema: dict[str, Any] | None = None, path: str = "status"
) -> list[str]:
    """Fields of `value` the API server would prune: not in the CRD's structural schema."""
    if schema is None:
        from wukong.api.crd import build_crd

        version = build_crd()["spec"]["versions"][0]
        schema = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    lost: list[str] = []
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key, item in value.items():
            if item is None:
                continue
            if key not in props:
                lost.append(f"{path}.{key}")
            else:
                lost += pruned_fields(item, props[key], f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            lost += pruned_fields(item, schema.get("items", {}), f"{path}[{index}]")
    return lost


@dataclass
class WirePlan:
    """A plan with its status as the API server stores it (camelCase JSON), which is what
    these tests check: the planners return typed status, the wire shape is what users see."""

    actions: list[Any]
    status: dict[str, Any]
    requeue_after: float | None
    needs_guest_check: bool = False
    hold_status: float | None = None


def decided_for(world: Observed, kind: str, name: str) -> JsonObj | None:
    """The object of `world` a patch of `kind` `name` changes."""
    objects: dict[str, Mapping[str, JsonObj]] = {
        "NetworkAttachmentDefinition": {k.partition("/")[2]: v for k, v in world.nads.items()},
        "DataVolume": world.data_volumes,
        "PersistentVolumeClaim": world.claims,
    }
    if kind == "VirtualMachine":
        return world.vm if world.vm is not None and world.vm["metadata"]["name"] == name else None
    return objects[kind].get(name)


def assert_pinned(actions: Sequence[Any], world: Observed) -> None:
    """Every patch of a child carries the uid of the object it was decided from (the one in
    `world`): on another object of the name the API server refuses it (PatchChild.uid)."""
    for action in actions:
        if isinstance(action, PatchChild):
            kind, name = action.kind, action.name
        elif isinstance(action, ExpandDisk):
            kind, name = "PersistentVolumeClaim", action.claim
        else:
            continue
        obj = decided_for(world, kind, name)
        assert obj is not None, f"{kind} {name} patched, but not in the world"
        assert action.uid == uid_of(obj), f"{kind} {name}: {action.uid} != {uid_of(obj)}"


def decide(cr: Wukong, status: dict[str, Any], world: Observed, **kw: Any) -> WirePlan:
    """`wukong.reconcile.decide.decide` from and to the wire form of status; every patch it
    decides is checked to be pinned to the object it was decided from (`assert_pinned`)."""
    from wukong.reconcile.decide import decide as typed_decide

    plan = typed_decide(cr, WukongStatus.model_validate(status), world, **kw)
    assert_pinned(plan.actions, world)
    return WirePlan(
        plan.actions,
        plan.status.to_wire(),
        plan.requeue_after,
        plan.needs_guest_check,
        plan.hold_status,
    )


@dataclass
class WireDeletionPlan:
    """A deletion plan with `status.deletion` in wire form."""

    actions: list[Any]
    deletion: dict[str, Any]
    conditions: list[Cond]
    finalize: bool
    status: dict[str, Any]


def plan_deletion(
    cr: Wukong, status: dict[str, Any], world: Observed, **kw: Any
) -> WireDeletionPlan:
    """`wukong.reconcile.deletion.plan_deletion` from and to the wire form of status; a
    status with no phase is one a deletion pass wrote (`Deleting`), its hop Event said (the
    first pass's, `DeletionRequested`, is test_story's)."""
    from wukong.reconcile.deletion import plan_deletion as typed_plan

    status = {"phase": "Deleting", **status}
    plan = typed_plan(cr, WukongStatus.model_validate(status), world, **kw)
    assert_pinned(plan.actions, world)
    return WireDeletionPlan(
        plan.actions,
        plan.deletion.to_wire(),
        plan.conditions,
        plan.finalize,
        plan.status.to_wire(),
    )
