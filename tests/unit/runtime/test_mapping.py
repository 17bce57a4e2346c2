"""Events on children reach the Wukong they belong to."""

from __future__ import annotations

from typing import Any

from wukong.api.names import API_VERSION, LABEL_WUKONG
from wukong.runtime.cache import Store
from wukong.runtime.mapping import (
    enqueue_owner,
    enqueue_vmi_owner,
    enqueue_wukong,
    key_of,
    split_key,
    wukong_of_child,
    wukong_of_vmi,
)

VM_KIND = "virtualmachines.kubevirt.io"


def meta(
    name: str, *, owners: list[dict[str, str]] | None = None, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    m: dict[str, Any] = {"name": name, "namespace": "team-a", "labels": labels or {}}
    if owners:
        m["ownerReferences"] = owners
    return {"metadata": m}


WUKONG_OWNER = {"apiVersion": API_VERSION, "kind": "Wukong", "name": "web-1", "uid": "u1"}
VM_OWNER = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": "web-1-vm"}


def test_keys_are_namespace_slash_name() -> None:
    assert key_of(meta("web-1")) == "team-a/web-1"
    assert split_key("team-a/web-1") == ("team-a", "web-1")


def test_child_maps_to_its_owning_wukong() -> None:
    assert wukong_of_child(meta("web-1-system", owners=[WUKONG_OWNER])) == "team-a/web-1"


def test_kept_disk_without_owner_maps_through_its_label() -> None:
    assert wukong_of_child(meta("web-1-data", labels={LABEL_WUKONG: "web-1"})) == "team-a/web-1"


def test_unrelated_objects_map_to_nothing() -> None:
    other = {"apiVersion": "apps/v1", "kind": "Wukong", "name": "x"}
    assert wukong_of_child(meta("pvc", owners=[other])) is None
    assert wukong_of_child(meta("pvc")) is None


def test_vmi_maps_through_its_vm_in_the_cache() -> None:
    store = Store()
    store.upsert(VM_KIND, meta("web-1-vm", owners=[WUKONG_OWNER]))
    vmi = meta("web-1-vm", owners=[VM_OWNER])
    assert wukong_of_vmi(vmi, store, VM_KIND) == "team-a/web-1"


def test_vmi_seen_before_its_vm_maps_through_its_own_label() -> None:
    vmi = meta("web-1-vm", owners=[VM_OWNER], labels={LABEL_WUKONG: "web-1"})
    assert wukong_of_vmi(vmi, Store(), VM_KIND) == "team-a/web-1"


def test_vmi_without_labels_falls_back_to_the_vm_naming_rule() -> None:
    assert wukong_of_vmi(meta("web-1-vm", owners=[VM_OWNER]), Store(), VM_KIND) == "team-a/web-1"


def test_vmi_of_a_vm_wukong_does_not_manage_maps_to_nothing() -> None:
    foreign_vm = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": "legacy"}
    assert wukong_of_vmi(meta("legacy", owners=[foreign_vm]), Store(), VM_KIND) is None
    assert wukong_of_vmi(meta("bare-vmi"), Store(), VM_KIND) is None


def test_informer_handlers_enqueue_the_right_keys() -> None:
    queued: list[str] = []
    store = Store()
    enqueue_wukong(queued.append)("MODIFIED", meta("web-1"))
    enqueue_owner(queued.append)("DELETED", meta("web-1-system", owners=[WUKONG_OWNER]))
    enqueue_owner(queued.append)("ADDED", meta("stranger"))
    enqueue_vmi_owner(queued.append, store, VM_KIND)("ADDED", meta("web-1-vm", owners=[VM_OWNER]))
    assert queued == ["team-a/web-1"] * 3


def test_a_kubelet_event_on_a_launcher_pod_wakes_the_wukong_of_its_vmi() -> None:
    from wukong.runtime.mapping import enqueue_launcher_event

    vmi_kind = "virtualmachineinstances.kubevirt.io"
    store = Store()
    store.upsert(VM_KIND, meta("web-1-vm", owners=[WUKONG_OWNER]))
    vmi = meta("web-1-vm", owners=[VM_OWNER])
    vmi["status"] = {"activePods": {"pod-uid-1": "node-1"}}
    store.upsert(vmi_kind, vmi)
    woken: list[str] = []
    handle = enqueue_launcher_event(woken.append, store, vmi_kind, VM_KIND)
    about = {"kind": "Pod", "namespace": "team-a", "uid": "pod-uid-1"}
    handle("ADDED", {"involvedObject": about, "reason": "FailedMount"})
    handle("ADDED", {"involvedObject": about | {"uid": "someone-else"}})
    handle("ADDED", {"involvedObject": about | {"kind": "Node"}})
    assert woken == ["team-a/web-1"]


def test_a_nad_wakes_the_wukongs_that_name_it_in_its_own_namespace() -> None:
    from wukong.runtime.mapping import Users, nads_named

    def cr(name: str, namespace: str, *refs: str) -> dict[str, Any]:
        nets = [{"name": f"n{i}", "nadName": ref} for i, ref in enumerate(refs)]
        return {"metadata": {"name": name, "namespace": namespace}, "spec": {"networks": nets}}

    users = Users(nads_named)
    users.track("ADDED", cr("a", "team-a", "storage", "infra/shared"))
    users.track("ADDED", cr("b", "team-b", "storage"))
    users.track("ADDED", cr("c", "team-b", "infra/shared", "team-b/storage"))
    assert users.users("team-a", "storage") == ["team-a/a"]
    assert users.users("team-b", "storage") == ["team-b/b", "team-b/c"]
    assert users.users("infra", "shared") == ["team-a/a", "team-b/c"]
    assert users.users("infra", "storage") == []
    # A spec edit drops the old reference; a deletion drops them all.
    users.track("MODIFIED", cr("c", "team-b", "team-b/storage"))
    users.track("DELETED", cr("a", "team-a", "storage", "infra/shared"))
    assert users.users("infra", "shared") == []
    assert users.users("team-b", "storage") == ["team-b/b", "team-b/c"]
    assert users.users("team-a", "storage") == []


def test_a_pvc_wakes_the_wukongs_that_clone_it() -> None:
    from wukong.runtime.mapping import Users, clones_named

    def cr(name: str, namespace: str, *refs: str) -> dict[str, Any]:
        disks = [{"name": f"d{i}", "size": "1Gi", "cloneFrom": r} for i, r in enumerate(refs)]
        disks.append({"name": "blank", "size": "1Gi"})
        return {"metadata": {"name": name, "namespace": namespace}, "spec": {"disks": disks}}

    users = Users(clones_named)
    users.track("ADDED", cr("a", "team-a", "golden/fedora", "base"))
    users.track("ADDED", cr("b", "team-b", "golden/fedora"))
    assert users.users("golden", "fedora") == ["team-a/a", "team-b/b"]
    assert users.users("team-a", "base") == ["team-a/a"]
    assert users.users("team-a", "blank") == []
    users.track("DELETED", cr("a", "team-a", "golden/fedora", "base"))
    assert users.users("golden", "fedora") == ["team-b/b"]
    assert users.users("team-a", "base") == []


def test_a_pvc_wakes_through_the_datasources_that_point_to_it() -> None:
    from wukong.runtime.mapping import Users, pvc_pointed_to

    def source(name: str, spec_pvc: dict[str, str], status_pvc: dict[str, str] | None = None):
        ds: dict[str, Any] = {
            "metadata": {"name": name, "namespace": "golden"},
            "spec": {"source": {"pvc": spec_pvc}},
        }
        if status_pvc is not None:
            ds["status"] = {"source": {"pvc": status_pvc}}
        return ds

    pointing = Users(pvc_pointed_to)
    pointing.track("ADDED", source("fedora", {"name": "fedora-43", "namespace": "golden"}))
    pointing.track("ADDED", source("latest", {"name": "fedora-43"}))  # its own namespace
    assert pointing.users("golden", "fedora-43") == ["golden/fedora", "golden/latest"]
    # CDI's resolution (status.source) is what the planner reads, so it is what wakes.
    pointing.track(
        "MODIFIED",
        source("latest", {"name": "fedora-43"}, {"name": "fedora-44", "namespace": "images"}),
    )
    assert pointing.users("golden", "fedora-43") == ["golden/fedora"]
    assert pointing.users("images", "fedora-44") == ["golden/latest"]
    pointing.track("DELETED", source("fedora", {"name": "fedora-43", "namespace": "golden"}))
    assert pointing.users("golden", "fedora-43") == []
    # A DataSource pointing nowhere (its spec names a snapshot) names nothing.
    pointing.track("ADDED", {"metadata": {"name": "s", "namespace": "golden"}, "spec": {}})
    assert pointing.users("golden", "s") == []
