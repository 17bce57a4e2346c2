"""What the simulated guest's display shows when virt-api asks for a screenshot: a PNG of
QEMU's VGA text mode (720x400), as virt-launcher's `GetScreenshot` returns it. The screen is
dark; tests read its size and format, not its pixels."""

from __future__ import annotations

import struct
import zlib

WIDTH, HEIGHT = 720, 400  # VGA text mode, 80x25 cells of 9x16 pixels
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """An image of one colour, as a valid 8-bit RGB PNG."""
    row = b"\x00" + bytes(rgb) * width  # filter type 0 (None), then the pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(row * height, 9))
        + _chunk(b"IEND", b"")
    )


def screenshot() -> bytes:
    """The guest's screen: a text console, black."""
    return png(WIDTH, HEIGHT, (0, 0, 0))
