"""Placement of a running VMI under the LiveUpdate rollout strategy (pure functions).

KubeVirt v1.7.0 pkg/virt-controller/watch/vm/vm.go: while no restart is owed,
handleAffinityChangeRequest patches the VM template's affinity, then its nodeSelector, into
the running VMI, and handleTolerationsChangeRequest its tolerations; each is one JSON patch
(`add` when the VMI has none, `test` + `replace` otherwise, `remove` when the template has
none). During a migration they refuse, and the VM gets a Failure condition instead.
"""

from __future__ import annotations

from ._kube import JsonObj

# vm.go's order: affinity and nodeSelector (one handler), then tolerations.
PLACEMENT_FIELDS = ("affinity", "nodeSelector", "tolerations")
AFFINITY_CHANGE_ERROR = "AffinityChangeError"
TOLERATIONS_CHANGE_ERROR = "TolerationsChangeError"


def _empty(value: object) -> bool:
    # equality.Semantic.DeepEqual: a nil map or slice equals an empty one.
    return value is None or value == {} or value == []


def _same(want: object, have: object) -> bool:
    return (_empty(want) and _empty(have)) or want == have


def changed_placement(template: JsonObj, vmi_spec: JsonObj) -> list[str]:
    """The placement fields whose template value the running VMI does not have."""
    return [f for f in PLACEMENT_FIELDS if not _same(template.get(f), vmi_spec.get(f))]


def placement_patch(field: str, template: JsonObj, vmi_spec: JsonObj) -> list[JsonObj]:
    """The JSON patch virt-controller sends for one changed field (VMIAffinityPatch,
    VMNodeSelectorPatch, vmiTolerationsPatch)."""
    path, want, have = f"/spec/{field}", template.get(field), vmi_spec.get(field)
    if want is None:
        return [{"op": "remove", "path": path}]
    if have is None:
        return [{"op": "add", "path": path, "value": want}]
    return [
        {"op": "test", "path": path, "value": have},
        {"op": "replace", "path": path, "value": want},
    ]


def migration_refusal(vmi: JsonObj, fields: list[str]) -> tuple[str, str] | None:
    """(reason, message) of the sync error when placement changes during a migration."""
    state = (vmi.get("status") or {}).get("migrationState") or {}
    if not state.get("startTimestamp") or state.get("endTimestamp"):
        return None  # migrations.IsMigrating: started and not ended
    if "affinity" in fields or "nodeSelector" in fields:
        message = "Node affinity should not be changed during VMI migration"
        return AFFINITY_CHANGE_ERROR, (
            f"Error encountered while handling node affinity change request: {message}"
        )
    if "tolerations" in fields:
        message = "tolerations should not be changed during VMI migration"
        return TOLERATIONS_CHANGE_ERROR, (
            f"Error encountered while handling tolerations change request: {message}"
        )
    return None
