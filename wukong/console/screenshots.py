"""`wukong screenshot`: what the VM's display shows, as the PNG virt-api returns, and where
it is written."""

from __future__ import annotations

import struct
from datetime import datetime

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, from its IHDR chunk; None when `data` is not a PNG."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def default_file(name: str, now: datetime) -> str:
    """`web-1-20261205-101500.png`: one file per shot, in the order they were taken."""
    return f"{name}-{now:%Y%m%d-%H%M%S}.png"
