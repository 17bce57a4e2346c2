"""Children the API server refused (issue 15 point 1): a PVC over a ResourceQuota (403), a VM
or DataVolume a webhook or admission policy refuses (422), a delete a policy refuses (403,
422); and a disk virt-api refused to hot-plug or unplug (400: the HotplugVolumes /
DeclarativeHotplugVolumes feature gates off in KubeVirt v1.7.0, where both are Alpha; 422).
Pure.

Such a refusal can succeed later without a spec change (the quota is raised, the webhook is
fixed), so it is reported and retried: the `ChildrenAdmitted` condition carries the API
server's own message, a Warning Event says so once, and the pass looks again after a delay
that grows with how long the refusal has lasted (1 s up to 60 s). On the first pass in which
every action went through the condition goes away, with a Normal Event: like the operation
conditions, it is present only while it has something to say.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from wukong.api.conditions import CHILDREN_ADMITTED, find_condition, set_condition
from wukong.api.status import WukongStatus
from wukong.reconcile.actions import (
    Action,
    AddVolume,
    CreateChild,
    DeleteChild,
    Emit,
    Failed,
    PatchChild,
    RemoveVolume,
    VmCall,
)

REFUSED_STATUSES = frozenset({403, 422})
VMI_VERBS = frozenset({"pause", "unpause"})
"""The lifecycle calls made on the VMI (its subresources), the others on the VM."""
# virt-api's answers to addvolume and removevolume that no retry changes by itself
# (pkg/virt-api/rest/volumes.go: NewBadRequest for a feature gate off or a bad body).
REFUSED_VOLUME_STATUSES = frozenset({400, 403, 422})
RETRY_CAP = 60.0
ADMITTED = ("ChildrenAdmitted", "the API server accepted every child")
"""The Normal Event when the last refusal is over (the condition goes away)."""


# The API server's words for a webhook's refusal. CDI's webhook refuses with 400 what it
# cannot resolve (toAdmissionResponseError): a DataVolume naming a DataSource, or cloning
# from a namespace, that does not exist yet. Taken for a bad request, it was never made
# again: a Wukong of a DataSource in a namespace a namespaced operator does not watch stayed
# Creating for good once the DataSource was made (found by the simulated CDI webhook, s43).
WEBHOOK_DENIED = "admission webhook "


def refused_child(action: Action, failure: Failed) -> bool:
    """A create, patch or delete of a child the API server refused (quota, webhook, policy,
    the operator's Role), or a hot-plug or unplug of a disk virt-api refused. A refused
    delete was said only in the log, and a detach's Event said "data deleted" beside the
    claim still there (source audit, session 48)."""
    if isinstance(action, (AddVolume, RemoveVolume)):
        return failure.code in REFUSED_VOLUME_STATUSES
    if not isinstance(action, (CreateChild, PatchChild, DeleteChild)):
        return False
    by_webhook = failure.code == 400 and failure.message.startswith(WEBHOOK_DENIED)
    return failure.code in REFUSED_STATUSES or by_webhook


# kube-apiserver's authorizer refusing the operator's own ServiceAccount (forbiddenMessage in
# k8s.io/apiserver endpoints/handlers/responsewriters): 'User "system:serviceaccount:…" cannot
# patch resource "virtualmachines" in API group "kubevirt.io" in the namespace "demo"', with
# ": RBAC: …" after it when the authorizer says more (a ClusterRole not found). Not a webhook
# ('admission webhook "…" denied the request: …'), a ValidatingAdmissionPolicy
# ("ValidatingAdmissionPolicy '…' with binding '…' denied request: …"), a ResourceQuota
# ("exceeded quota: …") nor KubeVirt's own 403 (a pause of a VMI with a liveness probe): those
# judge the request, this the operator's installation.
OPERATOR_DENIED = re.compile(
    r'User "(?P<user>[^"]*)" cannot (?P<verb>[a-z]+) resource "(?P<resource>[^"]+)"'
    r'(?: in API group "(?P<group>[^"]*)")?'
)
INSTALL_DOCS = 'docs/install.md "Permissions"'


def denied_to_operator(failure: Failed) -> re.Match[str] | None:
    """The authorizer's words if `failure` is a 403 refusing the operator itself (its RBAC
    lacks a verb), not a refusal of what it asked for."""
    if failure.code != 403 or failure.message.startswith(WEBHOOK_DENIED):
        return None
    return OPERATOR_DENIED.search(failure.message)


def operator_forbidden(action: Action, denied: re.Match[str]) -> str:
    """An RBAC 403 as what it is: the operator's installation missing a permission, named
    as docs/install.md's table does, not the user's spec nor KubeVirt refusing it."""
    group = denied["group"]
    resource = f"{denied['resource']} (API group {group})" if group else denied["resource"]
    # What the authorizer adds after its sentence ("RBAC: clusterrole … not found": the
    # role itself is missing, or not synced yet after an API server restart).
    more = _AUTHORIZER_MORE.search(denied.string, denied.end())
    return (
        f"the operator may not {_what(action)}: its ServiceAccount ({denied['user']}) lacks "
        f"{denied['verb']} on {resource}{f' ({more[1]})' if more else ''}; its RBAC is "
        f"incomplete, see {INSTALL_DOCS}"
    )


_AUTHORIZER_MORE = re.compile(r": (RBAC: .+)$", re.DOTALL)


# A ResourceQuota's refusal names the namespace's usage ("exceeded quota: storage, requested:
# requests.storage=100Gi, used: requests.storage=120Gi, limited: …", the API server's
# resourcequota/controller.go): it moves as other workloads come and go, the refusal does not.
_USAGE = re.compile(r"used: \S*, limited: ")


def said_as(message: str) -> str:
    """A refusal as far as telling it again goes: without the quota's usage, which made a
    new Warning (and a status write) whenever the namespace's usage moved (source audit,
    session 48)."""
    return _USAGE.sub("limited: ", message)


def refused(failed: Mapping[Action, Failed]) -> list[str]:
    """One sentence per create, patch or delete of a child the API server refused, or per
    disk virt-api refused to plug or unplug."""
    return [
        _said(action, failure)
        for action, failure in failed.items()
        if refused_child(action, failure)
    ]


def _said(action: Action, failure: Failed) -> str:
    """One refusal, as `refused` says it. An RBAC 403 (the operator's own rights, which the
    executor takes as transient) was "KubeVirt refused to unplug disk …", as if the spec or
    KubeVirt were at fault (audit leftovers, session 50)."""
    if (denied := denied_to_operator(failure)) is not None:
        return operator_forbidden(action, denied)
    return f"{_refusal(action)}: {failure.message}"


def _refusal(action: Action) -> str:
    """Who refused what, for an action `refused_child` accepts."""
    if isinstance(action, AddVolume | RemoveVolume):
        return f"KubeVirt refused to {_what(action)}"
    return f"the API server refused to {_what(action)}"


def _what(action: Action) -> str:
    """What an action `refused_child` accepts does, as `refused to …` and `may not …` say."""
    if isinstance(action, AddVolume):
        return f"hot-plug disk {action.disk}"
    if isinstance(action, RemoveVolume):
        return f"unplug disk {action.disk}"
    if isinstance(action, VmCall):
        kind = "VirtualMachineInstance" if action.verb in VMI_VERBS else "VirtualMachine"
        return f"{action.verb} {kind} {action.vm}"
    if isinstance(action, CreateChild):
        name = action.body.get("metadata", {}).get("name", "")
        return f"create {action.kind} {name}".strip()
    if isinstance(action, DeleteChild):
        return f"delete {action.kind} {action.name}"
    assert isinstance(action, PatchChild)
    return f"update {action.kind} {action.name}"


def admit(
    status: WukongStatus, failed: Mapping[Action, Failed], now: datetime, generation: int | None
) -> tuple[WukongStatus, list[Emit], float | None]:
    """`status` with ChildrenAdmitted as this pass's actions left it, the Events that says
    so, and when to try a refused child again (None: nothing refused)."""
    before = find_condition(status.conditions, CHILDREN_ADMITTED)
    sentences = refused(failed)
    if sentences:
        message = "; ".join(sentences)
        changed = before is None or said_as(before.message) != said_as(message)
        if not changed and before is not None:
            message = before.message  # the quota's usage moved: no new Event, nor write
        conditions = set_condition(
            status.conditions, CHILDREN_ADMITTED, False, "Refused", message, now, generation
        )
        events = [Emit("Warning", "ChildRefused", message)] if changed else []
        age = (now - before.last_transition_time).total_seconds() if before else 0.0
        updated = status.model_copy(update={"conditions": sorted(conditions, key=lambda c: c.type)})
        return updated, events, min(max(age, 1.0), RETRY_CAP)
    if before is not None and not failed:
        reason, message = ADMITTED
        kept = [c for c in status.conditions if c.type != CHILDREN_ADMITTED]
        return (
            status.model_copy(update={"conditions": kept}),
            [Emit("Normal", reason, message)],
            None,
        )
    return status, [], None
