"""Placement of a running VM against the spec, for the migration planner (source audit,
session 47): KubeVirt renders a migration's target pod from the running VMI's nodeSelector,
affinity and tolerations (services/template.go renderLaunchManifest), and copies a VM's new
ones into the VMI only while the VM owes no restart (vm.go: the live updates run only
without RestartRequired). A migration asked while the VMI lacks the spec's placement would
move the VM by the old one. Pure; apart from migration.py, which the disk planners import
(through restore.py), because it needs the VM planner's template."""

from __future__ import annotations

from wukong.api import names
from wukong.api.v1alpha1 import Wukong
from wukong.reconcile.migration import Misplaced
from wukong.reconcile.observed import Observed
from wukong.reconcile.vm import (
    PLACEMENT_FIELDS,
    desired_template,
    placement,
    placement_behind,
    restart_reasons,
)


def misplaced(cr: Wukong, seen: Observed) -> Misplaced | None:
    """Why a migration now would place the VM by a placement the spec no longer asks for,
    and whether KubeVirt is about to apply it; None when the running VMI has it."""
    why = _refusal(cr, seen)
    return None if why is None else Misplaced(why, _pending(cr, seen))


def _refusal(cr: Wukong, seen: Observed) -> str | None:
    """Why a migration now would place the VM by a placement the spec no longer asks for:
    the target pod is rendered from the running VMI's nodeSelector, affinity and
    tolerations, and KubeVirt copies new ones into it only while the VM owes no restart
    (source audit, session 47). None when the VMI has them."""
    if seen.vmi is None:
        return None
    template = desired_template(cr, seen)["spec"]
    behind = placement_behind(template, seen.vmi, cr.spec.instancetype is not None)
    if not behind:
        return None
    fields = ", ".join(behind)
    reasons = restart_reasons(template, seen.vmi, cr, seen.vm)[0]
    if any(field in PLACEMENT_FIELDS for field, _ in reasons):  # said only while one is owed
        restart = names.command("restart", cr.metadata.name, cr.metadata.namespace)
        return (
            f"the new {fields} of {cr.metadata.name} is not applied to the running VM while it "
            f"owes a restart, and a migration would place it by the old one: restart it "
            f"instead ({restart})"
        )
    return (
        f"KubeVirt has not applied the new {fields} of {cr.metadata.name} to the running VM "
        "yet, and a migration would place it by the old one: ask again once it has (the "
        "VM's events may say why it has not)"
    )


def _pending(cr: Wukong, seen: Observed) -> bool:
    """Whether KubeVirt is about to copy a new placement into the running VMI: the VM does
    not have the spec's yet, or virt-controller has not synced the VM since
    (`status.desiredGeneration`, written after its live updates, below the VM's generation).
    A migration asked meanwhile waits, not refused: a placement edit and a migrate sent in
    one write would otherwise race KubeVirt's VMI patch."""
    vm = seen.vm
    if vm is None or seen.vmi is None:
        return False
    current = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
    wanted = placement(cr)
    if any(current.get(field) != wanted.get(field) for field in PLACEMENT_FIELDS):
        return True
    synced = (vm.get("status") or {}).get("desiredGeneration")
    generation = (vm.get("metadata") or {}).get("generation")
    return isinstance(synced, int) and isinstance(generation, int) and synced < generation
