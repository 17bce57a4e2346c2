"""Structured logs that always say which Wukong they are about."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

# Set by the queue worker for the length of one pass; every record picks it up.
wukong_key: ContextVar[str | None] = ContextVar("wukong_key", default=None)

LogFormat = Literal["json", "text"]

# Attributes every LogRecord has; anything else on a record came from `extra=` and is kept.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "wukong_key", "key_part", "taskName"}
)


class WukongKeyFilter(logging.Filter):
    """Copies the current `wukong_key` onto each record (as `record.wukong_key`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate, never drop."""
        if not hasattr(record, "wukong_key"):
            record.wukong_key = wukong_key.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, key, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as a single JSON line."""
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        key = getattr(record, "wukong_key", None)
        if key is not None:
            entry["wukong"] = key
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRS:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines with the Wukong key in brackets when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s%(key_part)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Render with ` [namespace/name]` after the logger name."""
        key = getattr(record, "wukong_key", None)
        record.key_part = f" [{key}]" if key else ""
        return super().format(record)


def configure_logging(fmt: LogFormat = "text", level: int | str = logging.INFO) -> None:
    """Send the root logger to stderr in the chosen format, replacing earlier handlers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(WukongKeyFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
