"""Durations as kubectl and client-go take them: `90`, `90s`, `5m`, `1h30m`, `1.5s`, `250ms`."""

from __future__ import annotations

import math
import re
from typing import Final

_UNITS: Final = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_SECONDS: Final = re.compile(r"\d+(?:\.\d+)?")
LONGEST: Final = (2**63 - 1) / 1e9
"""Go's time.Duration is int64 nanoseconds (~292 years): ParseDuration refuses more."""


def parse_duration(text: str | float) -> float:
    """Seconds in `text`: a bare number is seconds; else Go's units h, m, s, ms, combined
    in that order (`1h30m`). ValueError with a sentence a person can act on."""
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        value = text.strip()
        negative = value.startswith("-")
        digits = value.removeprefix("-")
        # Decimal digits only, as Go's time.ParseDuration: Python's float() would also take
        # `inf`, `nan`, `1e3` and `1_0`, and `nan` would make a wait endless.
        seconds = float(digits) if _SECONDS.fullmatch(digits) else _units(digits, value)
        if negative:
            seconds = -seconds
    if not math.isfinite(seconds):
        raise ValueError(f"{text!r} is not a duration: use seconds (30) or units such as 5m")
    if seconds < 0:
        raise ValueError(f"{text!r} is negative: a duration is 0 or more")
    if seconds > LONGEST:
        raise ValueError(f"{text!r} is too long: a duration is at most 2562047h")
    return seconds


def _units(value: str, given: str) -> float:
    parts = _PART.findall(value)
    rebuilt = "".join(number + unit for number, unit in parts)
    order = [list(_UNITS).index(unit) for _, unit in parts]
    if not parts or rebuilt != value or order != sorted(set(order)):
        raise ValueError(
            f"{given!r} is not a duration: use seconds (30) or units such as 30s, 5m, 1h30m"
        )
    return sum(float(number) * _UNITS[unit] for number, unit in parts)


def format_duration(seconds: float) -> str:
    """`5m`, `1h30m`, `45s`, `1.5s`: the short form of a number of seconds."""
    if seconds != int(seconds) or seconds < 60:
        return f"{seconds:g}s"
    whole, out = int(seconds), ""
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        count, whole = divmod(whole, size)
        if count:
            out += f"{count}{unit}"
    return out
