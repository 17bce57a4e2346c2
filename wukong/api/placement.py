"""Where the VM runs and what size class it is (issue 16): Kubernetes placement fields,
KubeVirt's eviction strategy, and instancetype/preference references.

The shapes are Kubernetes' and KubeVirt's own, so a KubeVirt user writes what they know; the
CEL rules repeat the API server's pod validation for tolerations so that a malformed one is
refused when the Wukong is applied, not later when KubeVirt builds the pod.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field, WithJsonSchema, model_validator

from wukong.api._base import DnsLabel, ObjectName, WireModel, rules
from wukong.api.quantity import Quantity, at_least

MAX_TOLERATIONS = 32
MAX_NODE_SELECTOR = 32
# A label key: an optional DNS-subdomain prefix and a name (Kubernetes' qualified name).
# A qualified name: an optional DNS-subdomain prefix (dot-separated labels: "a..b/x" and
# "a.-b/x" are not, and Kubernetes refused the pod with such a nodeSelector or toleration
# key), then a name part of up to 63 characters.
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
LabelKey = Annotated[str, Field(pattern=LABEL_KEY_PATTERN, max_length=317)]
LabelValue = Annotated[str, Field(pattern=LABEL_VALUE_PATTERN, max_length=63)]
TolerationKey = Annotated[str, Field(pattern=f"^$|{LABEL_KEY_PATTERN}", max_length=317)]
"""A label key, or empty: Kubernetes' `key: ""` with operator Exists, every taint."""
_KEY_RULE = (
    f"self.all(k, size(k) <= 317 && k.matches(r'{LABEL_KEY_PATTERN}'))",
    "every key must be a label key such as kubernetes.io/hostname or disktype",
)
# A structural schema cannot constrain map keys (no propertyNames): a CEL rule does.
LabelMap = Annotated[
    dict[LabelKey, LabelValue],
    Field(max_length=MAX_NODE_SELECTOR),
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": MAX_NODE_SELECTOR,
            "additionalProperties": {
                "type": "string",
                "pattern": LABEL_VALUE_PATTERN,
                "maxLength": 63,
            },
        }
        | rules(_KEY_RULE)
    ),
]


class EvictionStrategy(StrEnum):
    """What happens to the VM when its node is drained (absent: the cluster's default)."""

    NONE = "None"
    LIVE_MIGRATE = "LiveMigrate"
    LIVE_MIGRATE_IF_POSSIBLE = "LiveMigrateIfPossible"
    EXTERNAL = "External"


class TolerationOperator(StrEnum):
    """How a toleration matches a taint's value."""

    EQUAL = "Equal"
    EXISTS = "Exists"


class TaintEffect(StrEnum):
    """The taint effect a toleration tolerates (absent: all)."""

    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


# Kubernetes' ValidateTolerations, in its own words where it has them.
_TOLERATION_RULES = rules(
    (
        "has(self.key) && self.key != '' || self.operator == 'Exists'",
        "a toleration without key matches every taint and needs operator: Exists",
    ),
    (
        "self.operator != 'Exists' || !has(self.value) || self.value == ''",
        "value must be empty when operator is Exists",
    ),
    (
        "!has(self.tolerationSeconds) || has(self.effect) && self.effect == 'NoExecute'",
        "tolerationSeconds is only for effect NoExecute (how long the VM stays on a node "
        "tainted NoExecute)",
    ),
)


class Toleration(WireModel):
    """A Kubernetes toleration: lets the VM's pod run on nodes with a matching taint."""

    model_config = ConfigDict(json_schema_extra=_TOLERATION_RULES)

    key: TolerationKey | None = None
    """The taint key; empty with operator Exists tolerates every taint."""
    operator: TolerationOperator = TolerationOperator.EQUAL
    """Equal (key and value match) or Exists (key matches)."""
    value: LabelValue | None = None
    """The taint value, for operator Equal."""
    effect: TaintEffect | None = None
    """NoSchedule, PreferNoSchedule or NoExecute; empty tolerates all effects."""
    toleration_seconds: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    """NoExecute only: how long the VM stays after the taint appears."""

    @model_validator(mode="after")
    def _kubernetes_rules(self) -> Toleration:
        for rule, ok in zip(
            _TOLERATION_RULES["x-kubernetes-validations"],
            (
                bool(self.key) or self.operator is TolerationOperator.EXISTS,
                self.operator is not TolerationOperator.EXISTS or not self.value,
                self.toleration_seconds is None or self.effect is TaintEffect.NO_EXECUTE,
            ),
            strict=True,
        ):
            if not ok:
                raise ValueError(rule["message"])
        return self


MAX_TERMS = 16
MAX_VALUES = 64
_AFFINITY_LIST = {"x-kubernetes-list-type": "atomic"}


class SelectorOperator(StrEnum):
    """How a node selector requirement matches a node label."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"
    GT = "Gt"
    LT = "Lt"


class LabelOperator(StrEnum):
    """How a label selector requirement matches a pod's label."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


# Kubernetes' (and KubeVirt's VM admitter's) rules for selector values, in their words.
_VALUES_FOR: tuple[tuple[str, str, tuple[str, str, Callable[[int], bool]]], ...] = (
    (
        "!(self.operator in ['In', 'NotIn']) || size(self.values) > 0",
        "values must be specified when `operator` is 'In' or 'NotIn'",
        ("In", "NotIn", lambda n: n > 0),
    ),
    (
        "!(self.operator in ['Exists', 'DoesNotExist']) || size(self.values) == 0",
        "values may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        ("Exists", "DoesNotExist", lambda n: n == 0),
    ),
    (
        "!(self.operator in ['Gt', 'Lt']) || size(self.values) == 1",
        "values must be specified single value when `operator` is 'Lt' or 'Gt'",
        ("Gt", "Lt", lambda n: n == 1),
    ),
)
_VALUES_RULES = rules(*((rule, message) for rule, message, _ in _VALUES_FOR))


def _check_values(operator: str, values: list[str]) -> None:
    for _, message, (first, second, ok) in _VALUES_FOR:
        if operator in (first, second) and not ok(len(values)):
            raise ValueError(message)


# The scheduler reads a Gt/Lt value with strconv.ParseInt (64 bits): any other value
# matches no node, and the VM stayed Scheduling for good.
INTEGER_PATTERN = r"^[-+]?[0-9]{1,18}$"
_INTEGER_RULE = (
    f"!(self.operator in ['Gt', 'Lt']) || self.values.all(v, v.matches('{INTEGER_PATTERN}'))",
    "the value of a 'Gt' or 'Lt' requirement is an integer (e.g. '8'): the scheduler compares "
    "it with the node label's as numbers",
)


class Requirement(WireModel):
    """core/v1 NodeSelectorRequirement: `key operator values` on node labels."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                *_VALUES_RULES["x-kubernetes-validations"],
                *rules(_INTEGER_RULE)["x-kubernetes-validations"],
            ]
        }
    )

    key: LabelKey
    """The node label key."""
    operator: SelectorOperator
    """In, NotIn, Exists, DoesNotExist, Gt or Lt."""
    # Label values: Kubernetes refuses a pod whose required node affinity names another kind
    # of value (validation.go ValidateNodeSelectorRequirement); KubeVirt's webhook does not
    # look, so the VM was taken and its pod refused (audit, session 43).
    values: Annotated[list[LabelValue], Field(max_length=MAX_VALUES)] = Field(default_factory=list)
    """Values for In/NotIn (one integer for Gt/Lt); empty for Exists/DoesNotExist."""

    @model_validator(mode="after")
    def _values_match_operator(self) -> Requirement:
        _check_values(self.operator.value, self.values)
        if self.operator.value in ("Gt", "Lt") and not all(
            re.fullmatch(INTEGER_PATTERN, v) for v in self.values
        ):
            raise ValueError(_INTEGER_RULE[1])
        return self


class LabelRequirement(WireModel):
    """metav1.LabelSelectorRequirement: `key operator values` on pod labels."""

    model_config = ConfigDict(json_schema_extra=_VALUES_RULES)

    key: LabelKey
    """The label key."""
    operator: LabelOperator
    """In, NotIn, Exists or DoesNotExist."""
    values: Annotated[list[LabelValue], Field(max_length=MAX_VALUES)] = Field(default_factory=list)
    """Values for In/NotIn; empty for Exists/DoesNotExist."""

    @model_validator(mode="after")
    def _values_match_operator(self) -> LabelRequirement:
        _check_values(self.operator.value, self.values)
        return self


class NodeSelectorTerm(WireModel):
    """Requirements on node labels that must all hold (core/v1 NodeSelectorTerm)."""

    match_expressions: Annotated[list[Requirement], Field(max_length=MAX_TERMS)] | None = None
    """Requirements on node labels."""


class RequiredNodes(WireModel):
    """core/v1 NodeSelector: any one of the terms must match."""

    node_selector_terms: Annotated[
        list[NodeSelectorTerm], Field(min_length=1, max_length=MAX_TERMS)
    ]
    """Terms ORed together."""


class PreferredNodes(WireModel):
    """core/v1 PreferredSchedulingTerm: a weighted node preference."""

    weight: Annotated[int, Field(ge=1, le=100)]
    """1-100: how much this preference counts."""
    preference: NodeSelectorTerm
    """The nodes preferred."""


class NodeAffinity(WireModel):
    """core/v1 NodeAffinity."""

    required_during_scheduling_ignored_during_execution: RequiredNodes | None = None
    """Nodes the VM may run on."""
    preferred_during_scheduling_ignored_during_execution: (
        Annotated[list[PreferredNodes], Field(max_length=MAX_TERMS)] | None
    ) = None
    """Nodes the VM prefers."""


class LabelSelector(WireModel):
    """metav1.LabelSelector."""

    match_labels: LabelMap | None = None
    """Labels that must all be present with these values."""
    match_expressions: Annotated[list[LabelRequirement], Field(max_length=MAX_TERMS)] | None = None
    """Requirements that must all hold."""


class PodAffinityTerm(WireModel):
    """core/v1 PodAffinityTerm: pods matching the selector, within a topology domain."""

    label_selector: LabelSelector | None = None
    """Which pods."""
    namespaces: Annotated[list[DnsLabel], Field(max_length=MAX_TERMS)] | None = None
    """In these namespaces (default: the Wukong's)."""
    namespace_selector: LabelSelector | None = None
    """In namespaces with these labels."""
    topology_key: LabelKey
    """The node label that defines "near", e.g. kubernetes.io/hostname."""


class WeightedPodAffinityTerm(WireModel):
    """core/v1 WeightedPodAffinityTerm."""

    weight: Annotated[int, Field(ge=1, le=100)]
    """1-100: how much this preference counts."""
    pod_affinity_term: PodAffinityTerm
    """The pods and topology."""


class PodAffinity(WireModel):
    """core/v1 PodAffinity (and PodAntiAffinity: the same shape)."""

    required_during_scheduling_ignored_during_execution: (
        Annotated[list[PodAffinityTerm], Field(max_length=MAX_TERMS)] | None
    ) = None
    """Terms that must hold."""
    preferred_during_scheduling_ignored_during_execution: (
        Annotated[list[WeightedPodAffinityTerm], Field(max_length=MAX_TERMS)] | None
    ) = None
    """Terms preferred, weighted."""


class Affinity(WireModel):
    """Kubernetes affinity for the VM's pod, passed to KubeVirt as written."""

    node_affinity: NodeAffinity | None = None
    """Which nodes the VM may (or prefers to) run on."""
    pod_affinity: PodAffinity | None = None
    """Run near pods matching these terms."""
    pod_anti_affinity: PodAffinity | None = None
    """Run away from pods matching these terms."""


class InstancetypeKind(StrEnum):
    """Cluster-wide or namespaced instance type."""

    CLUSTER = "VirtualMachineClusterInstancetype"
    NAMESPACED = "VirtualMachineInstancetype"


class PreferenceKind(StrEnum):
    """Cluster-wide or namespaced preference."""

    CLUSTER = "VirtualMachineClusterPreference"
    NAMESPACED = "VirtualMachinePreference"


class InstancetypeRef(WireModel):
    """An instancetype.kubevirt.io size class (CPU and memory) instead of cpu/memory."""

    name: ObjectName
    """The instance type's name, e.g. u1.medium."""
    kind: InstancetypeKind = InstancetypeKind.CLUSTER
    """VirtualMachineClusterInstancetype (default) or VirtualMachineInstancetype."""


class PreferenceRef(WireModel):
    """An instancetype.kubevirt.io preference (device and firmware defaults)."""

    name: ObjectName
    """The preference's name, e.g. fedora."""
    kind: PreferenceKind = PreferenceKind.CLUSTER
    """VirtualMachineClusterPreference (default) or VirtualMachinePreference."""


NodeSelector = LabelMap
Tolerations = Annotated[list[Toleration], Field(max_length=MAX_TOLERATIONS)]

# Both at once, or neither: said the same by the CRD and by the model.
SIZE_RULES = (
    (
        "!has(self.instancetype) || !has(self.cpu) && !has(self.memory)",
        "instancetype sets CPU and memory: remove cpu and memory, or remove instancetype",
    ),
    (
        "has(self.instancetype) || has(self.cpu) && has(self.memory)",
        "cpu and memory are required unless an instancetype is named",
    ),
)


# KubeVirt's limits for memory hot-plug (pkg/liveupdate/memory ValidateLiveUpdateMemory): the
# VM admitter refuses a VM with maxGuest that breaks them, in these words.
HOTPLUG_MIN_MEMORY = "1Gi"
HOTPLUG_ALIGNMENT = 2 * 1024 * 1024  # 2Mi
MAX_SOCKETS = 2**31 - 1  # maxSockets is `format: int32` in KubeVirt's CRD


class Hotplug(WireModel):
    """CPU and memory a running VM may grow to without a restart: KubeVirt's `maxSockets` and
    `maxGuest`. Present: the VM's vCPUs are sockets (one core each), the unit KubeVirt adds
    live, and guest memory leaves the pod's memory request to KubeVirt, which raises it on a
    hot-plug. Absent: vCPUs are cores of one socket and cpu/memory changes need a restart."""

    max_cpu: Annotated[int, Field(ge=1, le=MAX_SOCKETS)] | None = None
    """Most vCPUs the VM can have live; absent: KubeVirt's default (the cluster's
    maxCpuSockets, else 4 x cpu)."""
    max_memory: (
        Annotated[
            Quantity,
            *at_least(
                HOTPLUG_MIN_MEMORY,
                "hotplug.maxMemory",
                "KubeVirt hot-plugs memory only from 1Gi",
                "8Gi",
            ),
        ]
        | None
    ) = None
    """Most guest memory the VM can have live, e.g. 8Gi; absent: KubeVirt's default (the
    cluster's maxGuest, else 4 x memory)."""


_MAX_MEMORY = "quantity(self.hotplug.maxMemory)"
# Said the same by the CRD and by the model (spec.py _hotplug_fits).
HOTPLUG_RULES = (
    (
        "!has(self.hotplug) || !has(self.instancetype)",
        "hotplug needs cpu and memory: an instancetype sets its own maxima (maxSockets, maxGuest)",
    ),
    (
        "!has(self.hotplug) || !has(self.hotplug.maxCpu) || !has(self.cpu)"
        " || self.cpu <= self.hotplug.maxCpu",
        "cpu is above hotplug.maxCpu: raise hotplug.maxCpu too (a new maximum needs a restart)",
    ),
    (
        "!has(self.hotplug) || !has(self.hotplug.maxMemory) || !has(self.memory)"
        " || !isQuantity(self.memory) || !isQuantity(self.hotplug.maxMemory)"
        f" || quantity(self.memory).compareTo({_MAX_MEMORY}) <= 0",
        "memory is above hotplug.maxMemory: raise hotplug.maxMemory too (a new maximum needs "
        "a restart)",
    ),
    (
        "!has(self.hotplug) || !has(self.hotplug.maxMemory) || !has(self.memory)"
        " || !isQuantity(self.memory)"
        f" || quantity(self.memory).compareTo(quantity('{HOTPLUG_MIN_MEMORY}')) >= 0",
        "Memory hotplug is only available for VMs with at least 1Gi of guest memory",
    ),
    (
        "!has(self.hotplug) || !has(self.hotplug.maxMemory) || !has(self.memory)"
        " || !isQuantity(self.memory) || !isQuantity(self.hotplug.maxMemory)"
        # isInteger first: asInteger() of a fraction, or of more than int64 holds, is an error.
        f" || quantity(self.memory).isInteger() && {_MAX_MEMORY}.isInteger()"
        f" && quantity(self.memory).asInteger() % {HOTPLUG_ALIGNMENT} == 0"
        f" && {_MAX_MEMORY}.asInteger() % {HOTPLUG_ALIGNMENT} == 0",
        "Guest memory and maxMemory must be 2Mi aligned for memory hotplug",
    ),
)
