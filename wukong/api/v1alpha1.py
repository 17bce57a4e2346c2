"""The Wukong resource, `vm.novasphere.dev/v1alpha1`: the one import other layers need."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ConfigDict, Field

from wukong.api import names
from wukong.api._base import WireModel
from wukong.api.conditions import (
    HISTORY_LIMIT,
    Condition,
    ConditionStatus,
    Transition,
    find_condition,
    record_transition,
    remove_condition,
    set_condition,
)
from wukong.api.spec import (
    Action,
    DeleteOptions,
    DetachOptions,
    DiskBus,
    DiskSpec,
    LifecycleAction,
    NetworkSpec,
    RunStrategy,
    StartStrategy,
    WukongSpec,
)
from wukong.api.status import (
    DeletionStatus,
    InterfaceStatus,
    LifecycleState,
    NetworkStatus,
    VolumeStatus,
    WukongStatus,
)

__all__ = [
    "HISTORY_LIMIT",
    "Action",
    "Condition",
    "ConditionStatus",
    "DeleteOptions",
    "DeletionStatus",
    "DetachOptions",
    "DiskBus",
    "DiskSpec",
    "InterfaceStatus",
    "LifecycleAction",
    "LifecycleState",
    "NetworkSpec",
    "NetworkStatus",
    "ObjectMeta",
    "RunStrategy",
    "StartStrategy",
    "Transition",
    "VolumeStatus",
    "Wukong",
    "WukongSpec",
    "WukongStatus",
    "find_condition",
    "record_transition",
    "remove_condition",
    "set_condition",
]


class ObjectMeta(WireModel):
    """The metadata fields the operator reads; everything else is kept as it came."""

    model_config = ConfigDict(extra="allow")

    name: str
    namespace: str = ""
    uid: str = ""
    generation: int = 0
    resource_version: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    finalizers: list[str] = Field(default_factory=list)
    # Kept as the API server's strings: the operator only tests for presence and shows them.
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None


class Wukong(WireModel):
    """A Wukong object as stored by the API server."""

    api_version: str = names.API_VERSION
    kind: str = names.KIND
    metadata: ObjectMeta
    spec: WukongSpec
    status: WukongStatus = Field(default_factory=WukongStatus)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Wukong:
        """Parse an object from the API server; pydantic.ValidationError if the spec is bad."""
        return cls.model_validate(raw)

    def to_dict(self) -> dict[str, Any]:
        """The object as the API server takes it: camelCase, no nulls, no empty metadata."""
        raw = self.to_wire()
        # Empty labels/finalizers were not in the input; do not invent them on the way out.
        raw["metadata"] = self.metadata.model_dump(
            mode="json", by_alias=True, exclude_none=True, exclude_defaults=True
        )
        return raw

    @property
    def key(self) -> str:
        """'namespace/name', the work-queue key."""
        return f"{self.metadata.namespace}/{self.metadata.name}"

    @property
    def deleting(self) -> bool:
        """The deletion timestamp is set."""
        return self.metadata.deletion_timestamp is not None

    @property
    def deletion_protected(self) -> bool:
        """The deletion-protection annotation is "true" (SPEC §5)."""
        return self.metadata.annotations.get(names.ANNOTATION_DELETION_PROTECTION) == "true"
