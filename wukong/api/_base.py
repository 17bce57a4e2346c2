"""Building blocks of the v1alpha1 models: the wire base class, names and timestamps."""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

JsonObj = dict[str, Any]
"""A Kubernetes object (or part of one) as decoded JSON: the one alias every layer uses."""

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


class WireModel(BaseModel):
    """camelCase on the wire, snake_case in Python; field docstrings become CRD descriptions."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
        # Unknown fields are pruned by the structural schema anyway; tolerate newer ones.
        extra="ignore",
        frozen=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict the API server expects: camelCase keys, no nulls."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def rules(*pairs: tuple[str, str]) -> dict[str, Any]:
    """`x-kubernetes-validations` for a schema, from (CEL rule, message) pairs."""
    return {"x-kubernetes-validations": [{"rule": rule, "message": msg} for rule, msg in pairs]}


def _dns_label(value: str) -> str:
    if len(value) > 63 or not re.fullmatch(DNS_LABEL_PATTERN, value):
        raise ValueError(
            f"'{value}' is not a valid name: use 1-63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (e.g. 'data-1')"
        )
    return value


def _dns_subdomain(value: str) -> str:
    if len(value) > 253 or not re.fullmatch(DNS_SUBDOMAIN_PATTERN, value):
        raise ValueError(
            f"'{value}' is not a valid object name: use lowercase letters, digits, '-' and '.', "
            "starting and ending with a letter or digit"
        )
    return value


DnsLabel = Annotated[
    str,
    AfterValidator(_dns_label),
    WithJsonSchema({"type": "string", "pattern": DNS_LABEL_PATTERN, "maxLength": 63}),
]
"""A name that may appear in child object names and KubeVirt volume/network names."""

ObjectName = Annotated[
    str,
    AfterValidator(_dns_subdomain),
    WithJsonSchema({"type": "string", "pattern": DNS_SUBDOMAIN_PATTERN, "maxLength": 253}),
]
"""The name of an existing Kubernetes object in the same namespace."""


def _utc_seconds(value: datetime) -> datetime:
    # metav1.Time has second precision; keeping sub-seconds would make every status differ.
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0)


def _rfc3339(value: datetime) -> str:
    return _formatted(value, value.tzinfo)


@lru_cache(maxsize=4096)
def _formatted(value: datetime, zone: tzinfo | None) -> str:
    # Cached: a status carries ~20 timestamps and every pass serializes it to compare, while
    # the times themselves rarely change. `zone` is in the key because datetimes in two zones
    # compare equal at the same instant, yet print different wall times.
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


Timestamp = Annotated[
    datetime,
    AfterValidator(_utc_seconds),
    PlainSerializer(_rfc3339, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""A metav1.Time: UTC, whole seconds, '2024-05-01T12:00:00Z' on the wire."""
