"""Store: lookups, owner and label indexes, relists, trimmed metadata and shared parts."""

from __future__ import annotations

import json
from typing import Any

from wukong.api.names import LABEL_WUKONG
from wukong.runtime.cache import Store, share

PVC = "persistentvolumeclaims"


def obj(
    name: str,
    namespace: str = "ns",
    *,
    rv: str = "1",
    owner: str | None = None,
    labels: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "resourceVersion": rv}
    if owner:
        meta["ownerReferences"] = [{"kind": "Wukong", "name": "w", "uid": owner}]
    if labels:
        meta["labels"] = labels
    meta.update(extra)
    return {"metadata": meta}


def names(objects: list[dict[str, Any]]) -> set[str]:
    return {o["metadata"]["name"] for o in objects}


def test_cached_object_is_found_by_kind_namespace_and_name() -> None:
    store = Store()
    store.upsert(PVC, obj("web-1-system"))
    assert store.get(PVC, "ns", "web-1-system") is not None
    assert store.get(PVC, "other", "web-1-system") is None
    assert store.get("datavolumes.cdi.kubevirt.io", "ns", "web-1-system") is None


def test_managed_fields_are_not_kept() -> None:
    store = Store()
    original = obj("a", managedFields=[{"manager": "kubectl"}])
    store.upsert(PVC, original)
    assert "managedFields" not in store.get(PVC, "ns", "a")["metadata"]  # type: ignore[index]
    assert "managedFields" in original["metadata"], "the caller's object is not mutated"


def test_children_of_a_wukong_are_found_by_owner_uid() -> None:
    store = Store()
    store.upsert(PVC, obj("a", owner="uid-1"))
    store.upsert(PVC, obj("b", owner="uid-1"))
    store.upsert(PVC, obj("c", owner="uid-2"))
    assert names(store.children(PVC, "uid-1")) == {"a", "b"}
    store.upsert(PVC, obj("b", owner="uid-2", rv="2"))
    assert names(store.children(PVC, "uid-1")) == {"a"}
    store.delete(PVC, "ns", "a")
    assert store.children(PVC, "uid-1") == []
    assert names(store.children(PVC, "uid-2")) == {"b", "c"}


def test_kept_disks_are_found_by_label_after_losing_their_owner() -> None:
    store = Store(label_keys=[LABEL_WUKONG])
    store.upsert(PVC, obj("a", labels={LABEL_WUKONG: "web-1"}))
    store.upsert(PVC, obj("b", labels={LABEL_WUKONG: "web-2"}))
    store.upsert(PVC, obj("c", namespace="other", labels={LABEL_WUKONG: "web-1"}))
    assert names(store.by_label(PVC, LABEL_WUKONG, "web-1")) == {"a", "c"}
    store.upsert(PVC, obj("a", rv="2", labels={LABEL_WUKONG: "web-2"}))
    assert names(store.by_label(PVC, LABEL_WUKONG, "web-1")) == {"c"}
    assert names(store.by_label(PVC, LABEL_WUKONG, "web-2")) == {"a", "b"}


def test_list_filters_by_namespace_and_selector_with_or_without_index() -> None:
    for store in (Store(label_keys=[LABEL_WUKONG]), Store()):
        store.upsert(PVC, obj("a", labels={LABEL_WUKONG: "w", "disk": "system"}))
        store.upsert(PVC, obj("b", labels={LABEL_WUKONG: "w", "disk": "data"}))
        store.upsert(PVC, obj("c", namespace="other", labels={LABEL_WUKONG: "w"}))
        assert names(store.list(PVC)) == {"a", "b", "c"}
        assert names(store.list(PVC, "ns")) == {"a", "b"}
        assert names(store.list(PVC, selector={LABEL_WUKONG: "w", "disk": "data"})) == {"b"}
        assert names(store.list(PVC, "other", {LABEL_WUKONG: "w"})) == {"c"}
        assert store.list(PVC, selector={LABEL_WUKONG: "nope"}) == []


def test_relist_reports_added_changed_and_vanished_objects() -> None:
    store = Store(label_keys=[LABEL_WUKONG])
    store.upsert(PVC, obj("kept", rv="1"))
    store.upsert(PVC, obj("changed", rv="1"))
    store.upsert(PVC, obj("gone", rv="1", owner="uid-1", labels={LABEL_WUKONG: "w"}))
    replaced = store.replace(
        PVC, [obj("kept", rv="1"), obj("changed", rv="5"), obj("new", rv="6")], "7"
    )
    assert names(replaced.added) == {"new"}
    assert names(replaced.updated) == {"changed"}
    assert names(replaced.deleted) == {"gone"}
    assert store.get(PVC, "ns", "gone") is None
    assert store.children(PVC, "uid-1") == [] and store.by_label(PVC, LABEL_WUKONG, "w") == []
    assert store.resource_version(PVC) == "7"
    assert store.count(PVC) == 3


def test_deleting_an_unknown_object_is_harmless() -> None:
    assert Store().delete(PVC, "ns", "nothing") is None


def test_cluster_scoped_objects_use_an_empty_namespace() -> None:
    store = Store()
    store.upsert("storageclasses.storage.k8s.io", {"metadata": {"name": "fast"}})
    assert store.get("storageclasses.storage.k8s.io", "", "fast") is not None


# -- shared parts ------------------------------------------------------------------------------


def _decoded(value: Any) -> Any:
    """A fresh copy, as json.loads would make it (no string shared with the test's literals)."""
    return json.loads(json.dumps(value))


def test_a_new_version_keeps_the_parts_that_did_not_change_and_equals_what_was_sent() -> None:
    store = Store()
    first = obj("a", status={"conditions": [{"type": "Ready", "status": "True"}]}, spec={"x": 1})
    store.upsert(PVC, _decoded(first))
    before = store.get(PVC, "ns", "a")
    second = _decoded(first)
    second["metadata"]["resourceVersion"] = "2"
    second["metadata"]["status"]["conditions"].append({"type": "Bound", "status": "False"})
    store.upsert(PVC, second)
    after = store.get(PVC, "ns", "a")
    assert after == second  # same content, whatever is shared
    assert after is not None and before is not None
    assert after["metadata"]["spec"] is before["metadata"]["spec"]  # unchanged: shared
    ready_before, ready_after = (o["metadata"]["status"]["conditions"][0] for o in (before, after))
    assert ready_after is ready_before  # an unchanged list entry too (same length or not)
    assert after["metadata"]["resourceVersion"] == "2"


def test_keys_and_words_are_one_string_across_objects_and_names_are_not_interned() -> None:
    long_name = "w" * 40
    a, b = share(_decoded(obj("a", phase="Bound"))), share(_decoded(obj(long_name, phase="Bound")))
    key_a = next(k for k in a["metadata"] if k == "phase")
    key_b = next(k for k in b["metadata"] if k == "phase")
    assert key_a is key_b
    assert a["metadata"]["phase"] is b["metadata"]["phase"]
    assert b["metadata"]["name"] == long_name


def test_a_value_that_changes_type_but_compares_equal_is_not_kept_from_the_old_version() -> None:
    # 1 == True == 1.0 in Python: JSON keeps them apart, and so must the cache.
    assert share(True, 1) is True
    assert type(share({"n": 1.0, "m": 2}, {"n": 1, "m": 3})["n"]) is float
    assert share([1, 2], [1]) == [1, 2] and share([1], [1, 2]) == [1]


def test_write_through_keeps_the_newest_version_and_takes_a_released_finalizer() -> None:
    store = Store()
    kind = "wukongs.vm.novasphere.dev"
    store.upsert(kind, obj("w", rv="7", finalizers=["ours"]))
    store.remember(kind, obj("w", rv="6"))  # older than the cache: ignored
    assert store.get(kind, "ns", "w")["metadata"]["resourceVersion"] == "7"  # type: ignore[index]
    # Releasing the last finalizer of a deleted object answers with the version it had.
    store.remember(kind, obj("w", rv="7", finalizers=[]))
    assert store.get(kind, "ns", "w")["metadata"]["finalizers"] == []  # type: ignore[index]
    assert store.has_newer(kind, obj("w", rv="6")) and not store.has_newer(kind, obj("w", rv="7"))


def test_a_tally_follows_every_way_an_object_comes_goes_or_changes() -> None:
    """/metrics reads wukong_phase from a tally the cache keeps, not from a scan per scrape:
    it must agree with the cache after upserts, write-through, deletes and a relist."""
    kind = "wukongs"

    def phase(o: dict[str, Any]) -> str:
        return str(o.get("status", {}).get("phase") or "Pending")

    def at(name: str, rv: str, p: str | None = None) -> dict[str, Any]:
        return obj(name, rv=rv) | ({"status": {"phase": p}} if p else {})

    store = Store(tallies={kind: phase})
    store.upsert(kind, at("a", "1"))
    store.upsert(kind, at("b", "2", "Running"))
    assert store.tally(kind) == {"Pending": 1, "Running": 1}
    store.remember(kind, at("a", "3", "Running"))  # our own status write
    assert store.tally(kind) == {"Running": 2}
    store.remember(kind, at("a", "2", "Creating"))  # an older echo: not taken
    assert store.tally(kind) == {"Running": 2}
    store.delete(kind, "ns", "b")
    assert store.tally(kind) == {"Running": 1}
    store.replace(kind, [at("a", "5", "Stopped"), at("c", "6")], "6")
    assert store.tally(kind) == {"Stopped": 1, "Pending": 1}
    store.replace(kind, [], "7")
    assert store.tally(kind) == {}
    assert store.tally(PVC) == {}  # a kind without a tally counts nothing
