"""Kubernetes resource quantities ("20Gi", "0.1Ti", "500m", "1e3"), parsed exactly.

Sizes are compared as `Decimal`s rather than floats so that `20Gi` and `21474836480`
are equal and `0.1Ti` is exactly 109951162777.6 bytes, as the API server sees them.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, localcontext
from functools import lru_cache
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, WithJsonSchema

from wukong.api._base import rules

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}

# The grammar of k8s.io/apimachinery resource.Quantity. Exponents have at most two digits so
# that '1e999999999' cannot make format_bytes build a billion-digit integer.
_QUANTITY = re.compile(
    r"(?P<sign>[+-])?(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<binary>[KMGTPE]i)|[eE](?P<exponent>[+-]?[0-9]{1,2})|(?P<decimal>[numkMGTPE]?))"
)
# Only non-negative values make sense for memory and disk sizes; the CRD uses this pattern.
QUANTITY_PATTERN = (
    r"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[eE][+-]?[0-9]{1,2}|[numkMGTPE])?$"
)
QUANTITY_MAX_LENGTH = 64


def parse_quantity(text: str) -> Decimal:
    """The exact value of a Kubernetes quantity string; ValueError if it is not one."""
    if not isinstance(text, str):
        raise ValueError(f"a quantity must be a string such as '20Gi', not {type(text).__name__}")
    return _parse(text)


def quantity_or_none(value: Any) -> Decimal | None:
    """A quantity read from a field others write (a claim's capacity, a VMI's memory, our own
    status edited by hand): None when it is absent or not a quantity, never an error."""
    try:
        return parse_quantity(value) if isinstance(value, str) else None
    except ValueError:
        return None


@lru_cache(maxsize=1024)
def _parse(text: str) -> Decimal:
    """Cached: every pass reads the same few sizes ("1Gi") from the spec, the claims and the
    VM, and the exact arithmetic costs ~55 us a call (a pass parsed ~15; a Decimal is
    immutable, and an error is not cached but raised afresh)."""
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise ValueError(
            f"'{text}' is not a Kubernetes quantity{_hint(text)}: write a number with an optional "
            "suffix, e.g. '20Gi', '500M', '1.5G' or '1e3' (binary: Ki Mi Gi Ti Pi Ei; "
            "decimal: m k M G T P E)"
        )
    exponent = int(match["exponent"]) if match["exponent"] else _DECIMAL[match["decimal"] or ""]
    # The default 28 digits would round long mantissas times 1024**6; make it exact.
    with localcontext(prec=len(text) + 64):
        value = Decimal(match["number"])
        if match["binary"]:
            value *= Decimal(1024) ** _BINARY[match["binary"]]
        else:
            value = value.scaleb(exponent)
    return -value if match["sign"] == "-" else value


def multiple_of(value: Decimal, step: int) -> bool:
    """`value` is a whole multiple of `step`, exactly at any size: Decimal's `%` divides in
    the 28-digit default context and raises DivisionImpossible for 1e40 (a memory the CRD's
    pattern allows), which crashed every pass of a running VM edited so (audit, session 43)."""
    if value != value.to_integral_value():
        return False
    return int(value) % step == 0


def _hint(text: str) -> str:
    # "4GB" and "4GiB" are the commonest mistakes: Kubernetes suffixes carry no B.
    stem = text[:-1]
    if text[-1:] not in ("B", "b") or not _QUANTITY.fullmatch(stem):
        return ""
    if stem.endswith("i"):
        return f" (did you mean '{stem}'?)"
    if stem[-1:] in "kMGTPE" and stem[-1:]:
        return f" (did you mean '{stem}' or '{stem.replace('k', 'K')}i'?)"
    return f" (did you mean '{stem}'?)"


def parse_bytes(text: str) -> int:
    """A quantity as whole bytes, rounded up the way Kubernetes rounds storage requests."""
    return math.ceil(parse_quantity(text))


def format_bytes(n: int | Decimal) -> str:
    """Canonical short form of a byte count: '20Gi', '1500M', '1023'; fractions round up."""
    count = math.ceil(n)
    if count < 0:
        return "-" + format_bytes(-count)
    if count == 0:
        return "0"
    for suffix, power in sorted(_BINARY.items(), key=lambda item: -item[1]):
        quotient, remainder = divmod(count, 1024**power)
        if remainder == 0:
            return f"{quotient}{suffix}"
    for suffix, power in sorted(_DECIMAL.items(), key=lambda item: -item[1]):
        if power <= 0:
            break
        quotient, remainder = divmod(count, 10**power)
        if remainder == 0:
            return f"{quotient}{suffix}"
    return str(count)


def readable_bytes(value: Any) -> Any:
    """A byte count for people: its canonical short form when it has one ('10Gi', '500M'),
    else one decimal of the biggest binary unit it fills ('10.6Gi' for 11381663335, the
    claim CDI v1.65 asks for a 10Gi imported disk); anything not a quantity as it is."""
    count = quantity_or_none(value)
    if count is None or count < 1024:
        return value
    exact = format_bytes(count)
    if not exact.isdigit():
        return exact
    suffix, power = max(
        ((s, p) for s, p in _BINARY.items() if count >= 1024**p), key=lambda item: item[1]
    )
    return f"{count / 1024**power:.1f}{suffix}"


def _coerce(value: Any) -> Any:
    # YAML turns `size: 1024` into an int; it is still a valid quantity.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _check(value: str) -> str:
    if len(value) > QUANTITY_MAX_LENGTH:
        raise ValueError(f"a quantity is at most {QUANTITY_MAX_LENGTH} characters")
    # Textual, not numeric: "-0" is zero, yet the CRD's pattern refuses any sign but "+".
    if value.lstrip().startswith("-") or parse_quantity(value) < 0:
        raise ValueError(f"'{value}' is negative: a size must be zero or more")
    return value


Quantity = Annotated[
    str,
    BeforeValidator(_coerce),
    AfterValidator(_check),
    WithJsonSchema(
        {"type": "string", "pattern": QUANTITY_PATTERN, "maxLength": QUANTITY_MAX_LENGTH}
    ),
]
"""A non-negative quantity string, kept as written on the wire and checked on the way in."""


# Kubernetes counts bytes in a signed 64-bit integer (resource.Quantity's Value): a bigger
# memory or disk is refused further on (the launcher pod, the claim), and the exact arithmetic
# on it is nobody's use. The pattern alone lets in 1e99.
MAX_BYTES = "8Ei"


def at_least(minimum: str, what: str, why: str, example: str) -> tuple[Any, Any]:
    """The validator and the schema (its CEL rules) of a quantity of at least `minimum` and
    less than MAX_BYTES, said the same by the model and the CRD."""
    message = f"{what} must be at least {minimum} ({why}), e.g. {example}"
    too_big = f"{what} must be less than {MAX_BYTES} (Kubernetes counts bytes in 64 bits)"

    def check(value: str) -> str:
        if parse_quantity(value) < parse_quantity(minimum):
            raise ValueError(f"'{value}' is too small: {message}")
        if parse_quantity(value) >= parse_quantity(MAX_BYTES):
            raise ValueError(f"'{value}' is too big: {too_big}")
        return value

    schema = {"type": "string", "pattern": QUANTITY_PATTERN, "maxLength": QUANTITY_MAX_LENGTH}
    return AfterValidator(check), WithJsonSchema(
        schema
        | rules(
            (f"!isQuantity(self) || quantity(self).compareTo(quantity('{minimum}')) >= 0", message),
            (
                f"!isQuantity(self) || quantity(self).compareTo(quantity('{MAX_BYTES}')) < 0",
                too_big,
            ),
        )
    )
