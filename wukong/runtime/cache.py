"""The watch cache: raw API objects in memory, indexed by owner UID and by chosen labels."""

from __future__ import annotations

import sys
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wukong.api.kinds import Reads, project

Obj = dict[str, Any]
_Name = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects
# Store.list shadows the builtin inside the class body, so annotations use this alias.
ObjList = list[Obj]
Tally = Callable[[Obj], Hashable]
"""What an object counts under (e.g. its namespace and phase), for `Store.tally`."""


def object_name(obj: Mapping[str, Any]) -> _Name:
    """(namespace, name) of an API object."""
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


def owner_uids(obj: Mapping[str, Any]) -> list[str]:
    """UIDs in the object's ownerReferences."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return [ref["uid"] for ref in refs if ref.get("uid")]


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    """The object's labels (empty when it has none)."""
    labels: dict[str, str] = (obj.get("metadata") or {}).get("labels") or {}
    return labels


@dataclass(frozen=True)
class Replaced:
    """What a relist changed: objects new to the cache, changed ones, and vanished ones; and
    `unsure`: cached copies our own writes put there, which the list cannot vouch for."""

    added: list[Obj] = field(default_factory=list)
    updated: list[Obj] = field(default_factory=list)
    deleted: list[Obj] = field(default_factory=list)
    unsure: list[Obj] = field(default_factory=list)


class Store:
    """Objects of several resource kinds keyed by (kind, namespace, name).

    Objects are stored as the API server sent them, minus managedFields and, for a kind
    given in `reads`, minus every field not listed there (`wukong.api.kinds`), and handed
    out without copying: callers must treat them as read-only. That lets the cache share
    what its objects repeat (see `share`).
    """

    def __init__(
        self,
        label_keys: Iterable[str] = (),
        reads: Mapping[str, Reads | None] | None = None,
        tallies: Mapping[str, Tally] | None = None,
    ) -> None:
        self.label_keys = frozenset(label_keys)
        self._reads = dict(reads or {})
        self._tallies = dict(tallies or {})
        self._tallied: dict[str, Counter[Hashable]] = defaultdict(Counter)
        self._objects: dict[str, dict[_Name, Obj]] = defaultdict(dict)
        self._by_owner: dict[tuple[str, str], set[_Name]] = defaultdict(set)
        self._by_label: dict[tuple[str, str, str], set[_Name]] = defaultdict(set)
        self._resource_versions: dict[str, str] = {}
        # The versions our own writes answered (`remember`) that the watch has not brought
        # yet, a few per object: an older version the watch brings is our echo only if it
        # is one of them. Dropped as the watch catches up (`caught_up`): a handful, not one
        # entry per object written (RSS with 1,000 Wukongs is a bench bound).
        self._written: dict[tuple[str, _Name], tuple[int, ...]] = {}
        # Objects the watch said are deleted, by uid and version: the answer of a write that
        # raced the DELETED event must not put them back (`remember`). The oldest go first.
        self._buried: OrderedDict[tuple[str, _Name], tuple[str | None, int]] = OrderedDict()

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        """The cached object, or None."""
        return self._objects[kind].get((namespace, name))

    def list(
        self, kind: str, namespace: str | None = None, selector: Mapping[str, str] | None = None
    ) -> ObjList:
        """Objects of `kind`, optionally in one namespace and matching every label in selector."""
        selector = selector or {}
        objects = self._objects[kind]
        indexed = next((k for k in selector if k in self.label_keys), None)
        if indexed is not None:
            names: Iterable[_Name] = self._by_label.get((kind, indexed, selector[indexed]), ())
            candidates = [objects[n] for n in names]
        else:
            candidates = list(objects.values())
        return [
            obj
            for obj in candidates
            if (namespace is None or object_name(obj)[0] == namespace)
            and all(labels_of(obj).get(k) == v for k, v in selector.items())
        ]

    def children(self, kind: str, owner_uid: str) -> ObjList:
        """Objects of `kind` with an ownerReference to `owner_uid`."""
        objects = self._objects[kind]
        return [objects[n] for n in self._by_owner.get((kind, owner_uid), ())]

    def by_label(self, kind: str, label: str, value: str) -> ObjList:
        """Objects of `kind` whose label `label` equals `value` (indexed when configured)."""
        return self.list(kind, selector={label: value})

    def tally(self, kind: str) -> Mapping[Hashable, int]:
        """How many cached objects of `kind` count under each key of its `tallies` function,
        kept as objects come and go: a /metrics scrape reads it without a scan."""
        return self._tallied[kind]

    def count(self, kind: str) -> int:
        """How many objects of `kind` are cached."""
        return len(self._objects[kind])

    def resource_version(self, kind: str) -> str | None:
        """The last resourceVersion seen for `kind` (from a list, event or bookmark)."""
        return self._resource_versions.get(kind)

    def set_resource_version(self, kind: str, resource_version: str) -> None:
        """Record the resourceVersion the cache of `kind` is at."""
        self._resource_versions[kind] = resource_version

    def upsert(self, kind: str, obj: Obj) -> Obj | None:
        """Insert or replace an object; return the previous version, if any."""
        return self._put(kind, project(obj, self._reads.get(kind)))

    def _put(self, kind: str, obj: Obj) -> Obj | None:
        """`upsert` of an object already projected to what the cache keeps."""
        name = object_name(obj)
        old = self._objects[kind].get(name)
        obj = share(obj, old)
        if old is not None:
            self._unindex(kind, name, old)
        self._objects[kind][name] = obj
        self._index(kind, name, obj)
        return old

    def remember(self, kind: str, obj: Obj) -> None:
        """Write-through after our own write, unless the watch already brought something newer.
        An equal resourceVersion is taken too: the answer to the update that removes the
        last finalizer of a deleted object carries the version it had, without the finalizer.
        Not an object the watch said is deleted: that answer can come after the DELETED
        event, and the object stayed in the cache for good (a Wukong counted in the alerts'
        metrics after it was gone; runtime audit, session 43)."""
        name = object_name(obj)
        if (grave := self._buried.get((kind, name))) is not None:
            uid, rv = grave
            if _uid(obj) == uid or _rv_number(obj) <= rv:
                return
        kept = self._written.get((kind, name), ())[1 - WRITTEN_KEPT :]
        self._written[(kind, name)] = (*kept, _rv_number(obj))
        if not self.has_newer(kind, obj):
            self.upsert(kind, obj)

    def ours(self, kind: str, obj: Obj) -> bool:
        """`obj` is a version one of our own writes answered (`remember`)."""
        return _rv_number(obj) in self._written.get((kind, object_name(obj)), ())

    def caught_up(self, kind: str, obj: Obj) -> None:
        """The watch brought `obj`: our writes it answered up to its version are no longer
        ahead of the watch."""
        key = (kind, object_name(obj))
        if (written := self._written.get(key)) is None:
            return
        rv = _rv_number(obj)
        ahead = tuple(w for w in written if w > rv)
        if ahead:
            self._written[key] = ahead
        else:
            del self._written[key]

    def bury(self, kind: str, obj: Obj) -> None:
        """The watch said `obj` is deleted: forget it, and refuse its late write answers."""
        name = object_name(obj)
        self.delete(kind, *name)
        self._buried[(kind, name)] = (_uid(obj), _rv_number(obj))
        self._buried.move_to_end((kind, name))
        while len(self._buried) > BURIED_KEPT:
            self._buried.popitem(last=False)

    def has_newer(self, kind: str, obj: Obj) -> bool:
        """The cache holds a later version of `obj` than `obj` itself: one our own write put
        there (`remember`) before the watch delivered the versions in between."""
        current = self.get(kind, *object_name(obj))
        return current is not None and _rv_number(current) > _rv_number(obj)

    def delete(self, kind: str, namespace: str, name: str) -> Obj | None:
        """Remove an object; return it, or None if it was not cached."""
        self._written.pop((kind, (namespace, name)), None)
        old = self._objects[kind].pop((namespace, name), None)
        if old is not None:
            self._unindex(kind, (namespace, name), old)
        return old

    def replace(self, kind: str, items: Iterable[Obj], resource_version: str) -> Replaced:
        """Make the cache of `kind` exactly `items` (a relist) and report what changed. An
        object cached at a later version than the list's (our own write, put there after
        the list's snapshot was taken) stays as it is, unreported: the watch from the list's
        version brings what follows it. Replaced by the list's older copy, it woke passes
        that decided from a status since replaced: a lifecycle call recorded as made read as
        still to make, made twice (runtime audit, session 43).

        An object whose cached copy is the answer to our own write, not brought by the watch
        yet, is reported `unsure`, with that copy: the answer carries every change committed
        before it, someone else's too (a user's restart patched just before our status
        write), and the watch event of that change, which would have woken a pass
        (`Informer.process`), is one the watch from the list's version never brings. It
        went unheard until the Wukong's next event (test_older_crd, session 49: a restart
        asked as the Wukong watch relisted after a CRD update was never answered)."""
        fresh = {object_name(obj): project(obj, self._reads.get(kind)) for obj in items}
        try:
            listed = int(resource_version)
        except ValueError:
            listed = 0
        later = {
            name for name, obj in self._objects[kind].items() if listed and _rv_number(obj) > listed
        }
        added: ObjList = []
        updated: ObjList = []
        deleted = [
            old
            for name, old in list(self._objects[kind].items())
            if name not in fresh and name not in later
        ]
        for obj in deleted:
            self.delete(kind, *object_name(obj))
        unsure: ObjList = []
        for name, obj in fresh.items():
            current = self._objects[kind].get(name)
            if name in later:
                if current is not None and self.ours(kind, current):
                    unsure.append(current)
                continue
            old = self._put(kind, obj)
            if old is None:
                added.append(obj)
            elif _rv(old) != _rv(obj):
                updated.append(obj)
            elif self.ours(kind, old):
                unsure.append(obj)
            # The watch resumes after the list's version: none before it will be our echo.
            self.caught_up(kind, obj)
        self.set_resource_version(kind, resource_version)
        return Replaced(added=added, updated=updated, deleted=deleted, unsure=unsure)

    def _index(self, kind: str, name: _Name, obj: Obj) -> None:
        for uid in owner_uids(obj):
            self._by_owner[(kind, uid)].add(name)
        labels = labels_of(obj)
        for key in self.label_keys & labels.keys():
            self._by_label[(kind, key, labels[key])].add(name)
        if (tally := self._tallies.get(kind)) is not None:
            self._tallied[kind][tally(obj)] += 1

    def _unindex(self, kind: str, name: _Name, obj: Obj) -> None:
        for uid in owner_uids(obj):
            _discard(self._by_owner, (kind, uid), name)
        labels = labels_of(obj)
        for key in self.label_keys & labels.keys():
            _discard(self._by_label, (kind, key, labels[key]), name)
        if (tally := self._tallies.get(kind)) is not None:
            counts, under = self._tallied[kind], tally(obj)
            counts[under] -= 1
            if counts[under] <= 0:
                del counts[under]


_SHORT = 24
"""Strings up to this long are shared: words ("True", "Bound", "kubevirt.io/v1"), not names."""


def share(new: Any, old: Any = None) -> Any:
    """`new` rebuilt from shared parts: whatever equals the same place in `old` (the version
    the cache held) is `old`'s, and keys and short strings are interned.

    json.loads makes every key of every object afresh, so thousands of cached objects held
    thousands of copies of "metadata" and "lastTransitionTime": about half of what the
    cache took (45 KiB per Wukong with its VM, VMI, PVC and NAD; 24 KiB shared). A watch
    update mostly repeats its previous version, and equal parts are found by C-speed
    comparison before any are rebuilt.

    Python's == holds 1, 1.0 and True equal. A leaf that changes type is not kept (the type
    check below); inside an equal subtree it would be, which cannot happen to the API's
    typed fields (a Kubernetes field has one JSON type).
    """
    if new == old and type(new) is type(old):
        return old
    if isinstance(new, dict):
        before = old if isinstance(old, dict) else {}
        return {sys.intern(k): share(v, before.get(k)) for k, v in new.items()}
    if isinstance(new, list):
        before_list = old if isinstance(old, list) else []
        return [
            share(v, before_list[i] if i < len(before_list) else None) for i, v in enumerate(new)
        ]
    if isinstance(new, str) and len(new) <= _SHORT:
        return sys.intern(new)
    return new


def _discard(index: dict[Any, set[_Name]], slot: Any, name: _Name) -> None:
    """Remove a name from an index slot, dropping the slot when it empties."""
    names = index.get(slot)
    if names is not None:
        names.discard(name)
        if not names:
            del index[slot]


WRITTEN_KEPT = 4
"""Versions of one object remembered as our own writes: a pass writes one or two."""
BURIED_KEPT = 256
"""Deleted objects remembered against a late write answer: the answer trails the DELETED
event by milliseconds, so the last few hundred deletions are enough (a mass deletion that
outruns them risks only a ghost, as before), and they cost ~60 kB, not the megabyte 4,096
would at 1,000 Wukongs (RSS is a bench bound)."""


def _uid(obj: Mapping[str, Any]) -> str | None:
    uid: str | None = (obj.get("metadata") or {}).get("uid")
    return uid


def _rv(obj: Mapping[str, Any]) -> str | None:
    """The object's metadata.resourceVersion."""
    rv: str | None = (obj.get("metadata") or {}).get("resourceVersion")
    return rv


def _rv_number(obj: Mapping[str, Any]) -> int:
    """resourceVersion as a number: opaque by contract, an etcd revision in practice."""
    try:
        return int(_rv(obj) or 0)
    except ValueError:
        return 0
