"""The small typed actions planners return and the executor performs.

Planners decide, the executor acts: every side effect of a pass is one of these, so each
decision is testable without a cluster. Each action is idempotent when executed (create
tolerates AlreadyExists, delete tolerates NotFound).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Literal

from wukong.api import JsonObj

ChildKind = Literal[
    "VirtualMachine",
    "DataVolume",
    "PersistentVolumeClaim",
    "NetworkAttachmentDefinition",
    "VirtualMachineInstance",
    "VirtualMachineInstanceMigration",
    "VirtualMachineSnapshot",
    "VirtualMachineRestore",
]
EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class CreateChild:
    """Create a child object (its manifest carries ownerReference and labels)."""

    kind: ChildKind
    body: JsonObj = field(hash=False)

    @property
    def name(self) -> str:
        """The child's name."""
        return str(self.body["metadata"]["name"])


@dataclass(frozen=True)
class PatchChild:
    """Merge-patch a child we own (NAD config, VM template or runStrategy, PVC labels).

    `uid` is the uid of the object the patch was decided from (the cached one, `uid_of`):
    the patch carries it as `metadata.uid`, which the API server refuses on another object
    of that name (one deleted and made again in between, by anyone), and the pass decides
    again from the cache (a Conflict, docs/decisions.md "A patch lands only on the object it
    was decided for"). Required, so no planner forgets it; None only for an object that has
    none (a test's hand-made one)."""

    kind: ChildKind
    name: str
    patch: JsonObj = field(hash=False)
    why: str = ""
    uid: str | None = field(kw_only=True)


@dataclass(frozen=True)
class DeleteChild:
    """Delete a child; `uid` pins the exact object, `orphan` keeps a DataVolume's PVC."""

    kind: ChildKind
    name: str
    uid: str | None = None
    orphan: bool = False
    foreground: bool = False
    """Keep the object until its dependents are gone (a DataVolume until its PVC is)."""


@dataclass(frozen=True)
class ExpandDisk:
    """Raise a PVC's storage request to `request`, for the disk's spec `size`; `uid` pins the
    patch to the claim it was decided from (as `PatchChild.uid`)."""

    claim: str
    size: str
    disk: str
    request: str
    uid: str | None = None


def uid_of(obj: JsonObj | None) -> str | None:
    """The uid of a cached object: what a patch decided from it is pinned to."""
    uid = ((obj or {}).get("metadata") or {}).get("uid")
    return str(uid) if uid else None


@dataclass(frozen=True)
class VmCall:
    """A KubeVirt lifecycle subresource: VM start/stop/restart or VMI pause/unpause."""

    verb: Literal["start", "stop", "restart", "pause", "unpause"]
    vm: str
    grace_period: int | None = None
    force: bool = False


@dataclass(frozen=True)
class AddVolume:
    """Hot-plug a disk through the VM's addvolume subresource."""

    vm: str
    disk: str
    device: JsonObj = field(hash=False)
    """The VM disk device (bus, serial), as the template would carry it."""
    source: JsonObj = field(hash=False)
    """The volume source (`persistentVolumeClaim` or `dataVolume`, hotpluggable)."""


@dataclass(frozen=True)
class RemoveVolume:
    """Hot-unplug a disk through the VM's removevolume subresource."""

    vm: str
    disk: str


@dataclass(frozen=True)
class Emit:
    """Post an Event on the Wukong. `after`: the actions whose effect the Event reports
    ("MigrationStarted" with the migration's create): it is posted only when every one of
    them went through, not for a create refused or lost on its way (`told`). Not part of
    the Event's identity (equality, hash)."""

    type: EventType
    reason: str
    message: str
    after: tuple[Action, ...] = field(default=(), compare=False, hash=False, repr=False)


Action = (
    CreateChild | PatchChild | DeleteChild | ExpandDisk | VmCall | AddVolume | RemoveVolume | Emit
)


@dataclass(frozen=True)
class Failed:
    """What became of an action that did not succeed, as the next status needs to know it:
    `transient` (retried by the queue), `refused` (KubeVirt answered 409: the VM is in the
    wrong state) or `permanent` (the API said no; only a person can change that)."""

    kind: Literal["transient", "refused", "permanent"]
    message: str
    code: int | None = None
    """The HTTP status of the API's answer, when there was one (403 and 422: admission)."""


def told(events: Sequence[Emit], done: Collection[Action]) -> list[Emit]:
    """The Events of `events` to post, given the actions that went through (`done`): those
    tied to no action, and those whose every action is done. A "started" Event of a create
    refused or lost on its way is not posted; made again by the next pass, it is then."""
    return [e for e in events if all(a in done for a in e.after)]
