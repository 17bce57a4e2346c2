"""Which VMs or VMIs mount which claim, so a PVC or DataVolume event wakes only its users.

Waking every VM of the namespace instead made one namespace of N VMs cost N² passes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from ._informer import Informer
from ._kube import JsonObj, key_of
from .objects import mounted_claims, template_spec


def vm_claims(vm: JsonObj) -> Iterable[str]:
    """Claims a VM's template mounts, and the DataVolumes it templates."""
    yield from mounted_claims(template_spec(vm))
    for template in (vm.get("spec") or {}).get("dataVolumeTemplates") or []:
        if name := (template.get("metadata") or {}).get("name"):
            yield str(name)


def vmi_claims(vmi: JsonObj) -> Iterable[str]:
    """Claims a VMI mounts."""
    return mounted_claims(vmi.get("spec") or {})


class ClaimUsers:
    """An index kept current from `informer`'s notifications: claim key → user keys."""

    def __init__(self, informer: Informer, claims_of: Callable[[JsonObj], Iterable[str]]) -> None:
        self._informer, self._claims_of = informer, claims_of
        self._users: defaultdict[str, set[str]] = defaultdict(set)
        self._claims: dict[str, set[str]] = {}  # user key → claim keys
        informer.handlers.append(self._changed)

    def _changed(self, obj: JsonObj) -> None:
        key, ns = key_of(obj), obj["metadata"].get("namespace")
        gone = self._informer.store.get(key) is None
        claims = set() if gone else {f"{ns}/{c}" for c in self._claims_of(obj)}
        for old in self._claims.get(key, set()) - claims:
            self._users[old].discard(key)
            if not self._users[old]:
                del self._users[old]
        for claim in claims:
            self._users[claim].add(key)
        if claims:
            self._claims[key] = claims
        else:
            self._claims.pop(key, None)

    def of(self, claim: JsonObj) -> list[str]:
        """Keys of the objects that mount this PVC or DataVolume."""
        return sorted(self._users.get(key_of(claim), ()))
