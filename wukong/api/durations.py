"""Durations as kubectl and client-go take them: Go's time.ParseDuration (`90s`, `5m`,
`1h30m`, `30m1h`, `1.5s`, `.5s`, `+5s`, `250ms`, `1us`), and a bare number as seconds (`90`)."""

from __future__ import annotations

import math
import re
from typing import Final

_NANOSECONDS: Final = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC Greek mu: Go takes both
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_LIMIT: Final = 1 << 63
LONGEST: Final = (_LIMIT - 1) / 1e9
"""Go's time.Duration is int64 nanoseconds (~292 years): ParseDuration refuses more."""
# A number as Go's grammar has it, with no unit: `30`, `1.5`, `.5`, `5.`. ASCII digits only
# (`\d` would take `٣`), and no `inf`, `nan`, `1e3` or `1_0`, which float() would read.
_BARE: Final = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")


class _TooLong(ValueError):
    """A well-formed duration past Go's int64 nanoseconds."""


def go_duration(text: str) -> int:
    """Nanoseconds in `text`, read exactly as Go's time.ParseDuration reads it (format.go):
    `[-+]?([0-9]*(\\.[0-9]*)?[a-z]+)+` with the units ns, us (µs, μs), ms, s, m and h, in
    any order and repeated (`30m1h`, `1s1s`); "0" alone needs no unit. No spaces, no empty
    string. ValueError with Go's reason otherwise."""
    rest, negative = text, False
    if rest[:1] in ("-", "+"):
        negative, rest = rest[0] == "-", rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise ValueError(f"invalid duration {text!r}")
    total = 0
    while rest:
        value, fraction, scale, rest = _number(rest, text)
        end = 0
        while end < len(rest) and not (rest[end] == "." or "0" <= rest[end] <= "9"):
            end += 1
        if end == 0:
            raise ValueError(f"missing unit in duration {text!r}")
        unit, rest = rest[:end], rest[end:]
        if unit not in _NANOSECONDS:
            raise ValueError(f"unknown unit {unit!r} in duration {text!r}")
        size = _NANOSECONDS[unit]
        if value > _LIMIT // size:
            raise _TooLong(text)
        value *= size
        if fraction:
            # Go adds the fraction in float64, as here: nanosecond-exact for every unit.
            value += int(float(fraction) * (float(size) / scale))
            if value > _LIMIT:
                raise _TooLong(text)
        total += value
        if total > _LIMIT:
            raise _TooLong(text)
    if negative:
        return -total
    if total > _LIMIT - 1:
        raise _TooLong(text)
    return total


def _number(rest: str, text: str) -> tuple[int, int, float, str]:
    """The leading `[0-9]*(\\.[0-9]*)?` of `rest`: its whole part, its fraction's digits and
    their scale (the fraction is digits/scale), and what follows. Go's leadingInt and
    leadingFraction: digits past int64 in the fraction are read and dropped."""
    if not (rest[0] == "." or "0" <= rest[0] <= "9"):
        raise ValueError(f"invalid duration {text!r}")
    digits = len(rest) - len(rest.lstrip("0123456789"))
    whole, rest = rest[:digits], rest[digits:]
    value = 0
    for digit in whole:
        if value > _LIMIT // 10:
            raise _TooLong(text)
        value = value * 10 + int(digit)
        if value > _LIMIT:
            raise _TooLong(text)
    fraction, scale, after_point = 0, 1.0, False
    if rest[:1] == ".":
        rest = rest[1:]
        count = len(rest) - len(rest.lstrip("0123456789"))
        after_point = count > 0
        for digit in rest[:count]:
            if fraction > (_LIMIT - 1) // 10 or fraction * 10 + int(digit) > _LIMIT:
                break  # Go stops adding digits there, and goes on reading them
            fraction, scale = fraction * 10 + int(digit), scale * 10
        rest = rest[count:]
    if not whole and not after_point:
        raise ValueError(f"invalid duration {text!r}")  # `.s`, `-.s`
    return value, fraction, scale, rest


def parse_duration(text: str | float) -> float:
    """Seconds in `text`: Go's durations (`go_duration`), and a bare number as seconds
    (`30`, `1.5`), which Go refuses and kubectl users type. Never negative. ValueError with
    a sentence a person can act on."""
    if isinstance(text, int | float):
        seconds = float(text)
        if math.isnan(seconds):
            raise ValueError(f"{text!r} is not a duration: use seconds (30) or units such as 5m")
    else:
        # A bare number is Go's number with the unit left out: read as `<number>s`.
        spelled = text + "s" if _BARE.fullmatch(text) else text
        try:
            seconds = go_duration(spelled) / 1e9
        except _TooLong:
            seconds = -math.inf if text.startswith("-") else math.inf
        except ValueError:
            raise ValueError(
                f"{text!r} is not a duration: use seconds (30) or units such as 30s, 5m, 1h30m"
            ) from None
    if seconds < 0:
        raise ValueError(f"{text!r} is negative: a duration is 0 or more")
    if seconds > LONGEST:
        raise ValueError(f"{text!r} is too long: a duration is at most 2562047h")
    return seconds


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
