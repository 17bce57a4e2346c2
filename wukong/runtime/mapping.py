"""Map an event on any watched object to the key ("namespace/name") of the Wukong it belongs to."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from wukong.api.kinds import SIZE_CLASSES
from wukong.api.names import (
    API_VERSION,
    KIND,
    KUBEVIRT_GROUP,
    LABEL_WUKONG,
    object_ref,
    wukong_of_vm_name,
)
from wukong.reconcile.observed import pointed_pvc
from wukong.runtime.cache import Store, labels_of, object_name

_VM_KIND = "VirtualMachine"

Enqueue = Callable[[str], None]


def key_of(obj: Mapping[str, Any]) -> str:
    """The queue key of an object: "namespace/name"."""
    namespace, name = object_name(obj)
    return f"{namespace}/{name}"


def split_key(key: str) -> tuple[str, str]:
    """(namespace, name) from a "namespace/name" key."""
    namespace, _, name = key.partition("/")
    return namespace, name


def _owner(obj: Mapping[str, Any], kind: str, group: str) -> str | None:
    """Name of the owner of the given kind and API group, from ownerReferences."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        api_version = str(ref.get("apiVersion", ""))
        if ref.get("kind") == kind and api_version.split("/")[0] == group and ref.get("name"):
            return str(ref["name"])
    return None


def wukong_of_child(obj: Mapping[str, Any]) -> str | None:
    """Key of the owning Wukong: by ownerReference, else by the vm.novasphere.dev/wukong label."""
    namespace, _ = object_name(obj)
    owner = _owner(obj, KIND, API_VERSION.split("/")[0])
    if owner is None:
        owner = labels_of(obj).get(LABEL_WUKONG)
    return f"{namespace}/{owner}" if owner else None


def wukong_of_vmi(vmi: Mapping[str, Any], store: Store, vm_kind: str) -> str | None:
    """Key of the Wukong behind a VMI: through its VM in the store (same name), else fallbacks.

    KubeVirt owns a VMI by its VM, never by the Wukong, so the VM's ownerReference or label
    decides. Before the VM reaches the cache, the VMI's own labels (copied from the VM
    template) and then the "<wukong>-vm" naming rule still find the Wukong.
    """
    namespace, name = object_name(vmi)
    vm = store.get(vm_kind, namespace, name)
    if vm is not None and (key := wukong_of_child(vm)) is not None:
        return key
    if (key := wukong_of_child(vmi)) is not None:
        return key
    vm_owner = _owner(vmi, _VM_KIND, KUBEVIRT_GROUP)
    if vm_owner is not None and (owner := wukong_of_vm_name(vm_owner)) is not None:
        return f"{namespace}/{owner}"
    return None


def enqueue_wukong(enqueue: Enqueue) -> Callable[[str, dict[str, Any]], None]:
    """Informer handler for Wukong objects: enqueue the object's own key."""

    def handle(event_type: str, obj: dict[str, Any]) -> None:
        enqueue(key_of(obj))

    return handle


def enqueue_owner(enqueue: Enqueue) -> Callable[[str, dict[str, Any]], None]:
    """Informer handler for child objects (VM, PVC, DataVolume, NAD): enqueue their Wukong."""

    def handle(event_type: str, obj: dict[str, Any]) -> None:
        if (key := wukong_of_child(obj)) is not None:
            enqueue(key)

    return handle


def enqueue_vmi_owner(
    enqueue: Enqueue, store: Store, vm_kind: str
) -> Callable[[str, dict[str, Any]], None]:
    """Informer handler for VMIs: enqueue the Wukong behind the VMI's VM."""

    def handle(event_type: str, obj: dict[str, Any]) -> None:
        if (key := wukong_of_vmi(obj, store, vm_kind)) is not None:
            enqueue(key)

    return handle


def enqueue_launcher_event(
    enqueue: Enqueue, store: Store, vmi_kind: str, vm_kind: str
) -> Callable[[str, dict[str, Any]], None]:
    """Informer handler for kubelet Events about a pod: enqueue the Wukong whose VMI lists
    that pod among its `status.activePods` (its virt-launcher pod)."""

    def handle(event_type: str, event: dict[str, Any]) -> None:
        involved = event.get("involvedObject") or {}
        uid = involved.get("uid")
        if involved.get("kind") != "Pod" or not uid:
            return
        for vmi in store.list(vmi_kind, involved.get("namespace")):
            if uid in ((vmi.get("status") or {}).get("activePods") or {}):
                if (key := wukong_of_vmi(vmi, store, vm_kind)) is not None:
                    enqueue(key)

    return handle


def enqueue_disk_event(
    enqueue: Enqueue, store: Store, kinds: tuple[str, ...]
) -> Callable[[str, dict[str, Any]], None]:
    """Informer handler for Events about a disk (CDI's, on a DataVolume or its claim):
    enqueue the Wukong of the object of that name in the first of `kinds` that has one
    (a claim CDI made is owned by its DataVolume, not by the Wukong)."""

    def handle(event_type: str, event: dict[str, Any]) -> None:
        involved = event.get("involvedObject") or {}
        namespace, name = involved.get("namespace"), involved.get("name")
        if not namespace or not name:
            return
        for kind in kinds:
            child = store.get(kind, namespace, name)
            if child is not None and (key := wukong_of_child(child)) is not None:
                enqueue(key)
                return

    return handle


Named = Callable[[Mapping[str, Any]], frozenset[tuple[str, str]]]
"""The (namespace, name) pairs of objects of another kind that one object names."""


def named_in(items: str, key: str) -> Named:
    """The objects a Wukong's spec names in `spec.<items>[].<key>` ('name' is one in the
    Wukong's own namespace, 'namespace/name' one in another)."""

    def named(cr: Mapping[str, Any]) -> frozenset[tuple[str, str]]:
        namespace, _ = object_name(cr)
        return frozenset(
            object_ref(namespace, str(item[key]))
            for item in (cr.get("spec") or {}).get(items) or []
            if isinstance(item, Mapping) and item.get(key)
        )

    return named


nads_named = named_in("networks", "nadName")
clones_named = named_in("disks", "cloneFrom")
data_sources_named = named_in("disks", "dataSource")


def size_classes_named(cr: Mapping[str, Any]) -> frozenset[tuple[str, str]]:
    """The namespaced instancetype and preference a Wukong names, as (namespace, name) (the
    cluster-wide ones are not watched: `kinds.SIZE_CLASSES`). An instancetype and a
    preference alike named share a key: a change of one wakes the Wukongs naming the other
    too, which costs a pass and misses nothing."""
    namespace, _ = object_name(cr)
    spec = cr.get("spec") or {}
    refs = (spec.get(field) for field in ("instancetype", "preference"))
    return frozenset(
        (namespace, str(ref["name"]))
        for ref in refs
        if isinstance(ref, Mapping) and ref.get("name") and ref.get("kind") in SIZE_CLASSES
    )


def pvc_pointed_to(data_source: Mapping[str, Any]) -> frozenset[tuple[str, str]]:
    """The PVC a CDI DataSource points to, as the planner reads it."""
    pvc = pointed_pvc(data_source)
    return frozenset() if pvc is None else frozenset({pvc})


class Users:
    """Which objects name which object of another kind (`named`: the (namespace, name)
    pairs one names), kept up to date from their watch: Wukongs naming NADs, PVCs to clone
    and DataSources, DataSources naming the PVC they point to. An event on the named object
    wakes exactly those that name it, without scanning every Wukong (a scan per NAD event
    made a create of N Wukongs cost N² checks)."""

    def __init__(self, named: Named) -> None:
        self._named = named
        self._users: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._refs: dict[str, frozenset[tuple[str, str]]] = {}

    def track(self, event_type: str, cr: Mapping[str, Any]) -> None:
        """Informer handler: note the objects `cr` names now."""
        key = key_of(cr)
        refs: frozenset[tuple[str, str]] = frozenset()
        if event_type != "DELETED":
            refs = self._named(cr)
        old = self._refs.pop(key, frozenset())
        for ref in old - refs:
            users = self._users[ref]
            users.discard(key)
            if not users:
                del self._users[ref]
        for ref in refs - old:
            self._users[ref].add(key)
        if refs:
            self._refs[key] = refs

    def users(self, namespace: str, name: str) -> list[str]:
        """Keys of the objects that name `namespace/name`."""
        return sorted(self._users.get((namespace, name), ()))
