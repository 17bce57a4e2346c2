"""Which VNC viewer `wukong vnc` opens, found as `virtctl vnc` finds one: on macOS TigerVNC,
Chicken or RealVNC in /Applications, else remote-viewer; elsewhere remote-viewer, else
TigerVNC's vncviewer, on PATH. None: there is none, and the user connects their own."""

from __future__ import annotations

import glob
import os
import shutil
import sys
from collections.abc import Callable
from typing import Final

MACOS_TIGER: Final = "/Applications/TigerVNC Viewer *.app/Contents/MacOS/TigerVNC Viewer"
MACOS_CHICKEN: Final = "/Applications/Chicken.app/Contents/MacOS/Chicken"
MACOS_REAL: Final = "/Applications/VNC Viewer.app/Contents/MacOS/vncviewer"
REMOTE_VIEWER: Final = "remote-viewer"
TIGER_VNC: Final = "vncviewer"


def viewer(
    host: str,
    port: int,
    *,
    platform: str = sys.platform,
    which: Callable[[str], str | None] = shutil.which,
    matches: Callable[[str], list[str]] = glob.glob,
    exists: Callable[[str], bool] = os.path.exists,
) -> list[str] | None:
    """The command line that opens a viewer on `host:port`, with virtctl's arguments for
    each viewer, or None when none is installed."""
    address = f"{host}:{port}"
    if platform == "darwin":
        if tiger := sorted(matches(MACOS_TIGER)):
            return [tiger[-1], address]  # the newest, as virtctl takes the last match
        if exists(MACOS_CHICKEN):
            return [MACOS_CHICKEN, address]
        if exists(MACOS_REAL):
            return [MACOS_REAL, address, "-WarnUnencrypted=0", "-Shared=0", "-ShareFiles=0"]
    if found := which(REMOTE_VIEWER):
        return [found, f"vnc://{address}"]
    if platform != "darwin" and (found := which(TIGER_VNC)):
        return [found, address]
    return None
