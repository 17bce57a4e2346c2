"""Structured logs that always say which Wukong they are about."""

from __future__ import annotations

import json
import logging
import random
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

# Set by the queue worker for the length of one pass; every record picks them up, also those
# of the tasks a pass starts (asyncio copies the context into each). The key names the
# Wukong; its uid tells apart a Wukong deleted and made again under the same name; the pass
# id tells apart the passes of one Wukong, whose lines interleave with other Wukongs'.
wukong_key: ContextVar[str | None] = ContextVar("wukong_key", default=None)
wukong_uid: ContextVar[str | None] = ContextVar("wukong_uid", default=None)
pass_id: ContextVar[str | None] = ContextVar("pass_id", default=None)

LogFormat = Literal["json", "text"]

# Attributes every LogRecord has; anything else on a record came from `extra=` and is kept.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "wukong_key", "wukong_uid", "pass_id", "key_part", "taskName"}
)


def new_pass_id() -> str:
    """A short id for one pass: 8 hex digits, enough to tell one Wukong's passes apart in
    its log lines (not a secret: `random`, no system call per pass)."""
    return f"{random.getrandbits(32):08x}"


class WukongKeyFilter(logging.Filter):
    """Copies the current `wukong_key`, `wukong_uid` and `pass_id` onto each record (as
    attributes of those names)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate, never drop."""
        if not hasattr(record, "wukong_key"):
            record.wukong_key = wukong_key.get()
        if not hasattr(record, "wukong_uid"):
            record.wukong_uid = wukong_uid.get()
        if not hasattr(record, "pass_id"):
            record.pass_id = pass_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the Wukong's key (`wukong`),
    uid (`uid`) and pass id (`pass`) during a pass, extras, exception."""

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
        if (uid := getattr(record, "wukong_uid", None)) is not None:
            entry["uid"] = uid
        if (one_pass := getattr(record, "pass_id", None)) is not None:
            entry["pass"] = one_pass
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRS:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines with the Wukong key (and the pass id) in brackets when there is
    one; the uid only in JSON, where lines are searched rather than read."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s%(key_part)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Render with ` [namespace/name pass=ID]` after the logger name."""
        key = getattr(record, "wukong_key", None)
        one_pass = getattr(record, "pass_id", None)
        record.key_part = f" [{key}{f' pass={one_pass}' if one_pass else ''}]" if key else ""
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
