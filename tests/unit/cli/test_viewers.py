"""`wukong vnc`: which viewer it opens, found where `virtctl vnc` looks."""

from __future__ import annotations

from collections.abc import Callable

from wukong.console.viewers import MACOS_CHICKEN, MACOS_REAL, viewer


def on_path(*names: str) -> Callable[[str], str | None]:
    return lambda name: f"/usr/bin/{name}" if name in names else None


def installed(*paths: str) -> Callable[[str], bool]:
    return lambda path: path in paths


def nothing(_: str) -> list[str]:
    return []


def test_remote_viewer_first_then_tigervnc_on_linux_and_windows() -> None:
    for platform in ("linux", "win32"):
        both = on_path("remote-viewer", "vncviewer")
        assert viewer("127.0.0.1", 5901, platform=platform, which=both, matches=nothing) == [
            "/usr/bin/remote-viewer",
            "vnc://127.0.0.1:5901",
        ]
        tiger = on_path("vncviewer")
        assert viewer("127.0.0.1", 5901, platform=platform, which=tiger, matches=nothing) == [
            "/usr/bin/vncviewer",
            "127.0.0.1:5901",
        ]
        none = on_path()
        assert viewer("127.0.0.1", 5901, platform=platform, which=none, matches=nothing) is None


def test_macos_apps_first_the_newest_tigervnc_then_chicken_realvnc_remote_viewer() -> None:
    apps = [
        "/Applications/TigerVNC Viewer 1.13.1.app/Contents/MacOS/TigerVNC Viewer",
        "/Applications/TigerVNC Viewer 1.14.0.app/Contents/MacOS/TigerVNC Viewer",
    ]
    listed = list(reversed(apps))
    found = viewer("127.0.0.1", 5901, platform="darwin", which=on_path(), matches=lambda _: listed)
    assert found == [apps[1], "127.0.0.1:5901"]

    chicken = installed(MACOS_CHICKEN, MACOS_REAL)
    assert viewer("h", 1, platform="darwin", which=on_path(), matches=nothing, exists=chicken) == [
        MACOS_CHICKEN,
        "h:1",
    ]
    real = installed(MACOS_REAL)
    assert viewer("h", 1, platform="darwin", which=on_path(), matches=nothing, exists=real) == [
        *(MACOS_REAL, "h:1"),
        *("-WarnUnencrypted=0", "-Shared=0", "-ShareFiles=0"),
    ]
    none = installed()
    remote = on_path("remote-viewer", "vncviewer")
    assert viewer("h", 1, platform="darwin", which=remote, matches=nothing, exists=none) == [
        "/usr/bin/remote-viewer",
        "vnc://h:1",
    ]
    # vncviewer on a Mac's PATH is not TigerVNC's viewer app: virtctl does not take it.
    tiger = on_path("vncviewer")
    assert viewer("h", 1, platform="darwin", which=tiger, matches=nothing, exists=none) is None
