"""Plain-text building blocks: kubectl-style ages and aligned tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

NONE = "-"  # how kubectl shows an empty cell


def parse_time(text: object) -> datetime | None:
    """An RFC 3339 timestamp from the API server (None when absent or malformed)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def age(since: datetime | str | None, now: datetime) -> str:
    """How long ago, as kubectl prints it: 45s, 7m, 3h, 12d."""
    when = since if isinstance(since, datetime) else parse_time(since)
    if when is None:
        return NONE
    seconds = max(int((now - when).total_seconds()), 0)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 48 * 3600:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def cell(value: object) -> str:
    """A table cell: '-' for nothing, the value's text otherwise."""
    if value is None or value == "" or value == []:
        return NONE
    return str(value)


# Wide enough for the longest label and two spaces ("Last migration:  "), as kubectl
# describe's tabwriter pads its longest one; the labels of `status NAME` and `describe`
# line up on it.
LABEL_WIDTH = 17


def field(label: str, value: object) -> str:
    """`Label:` and the value, in the column every label's value starts at."""
    return f"{label + ':':<{LABEL_WIDTH}}{cell(value)}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], indent: str = "") -> str:
    """Columns padded to their widest cell, separated by three spaces (kubectl's layout)."""
    cells = [[cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = [headers, *cells]
    out = []
    for line in lines:
        padded = [c.ljust(w) for c, w in zip(line, widths, strict=True)]
        out.append(indent + "   ".join(padded).rstrip())
    return "\n".join(out)
