"""`wukong screenshot`: the PNG's size for the line it prints, and the file it names."""

from __future__ import annotations

from datetime import datetime

from wukong.console.screenshots import default_file, png_size
from wukong.testing.kubevirt.screen import png


def test_the_size_comes_from_the_pngs_header() -> None:
    assert png_size(png(720, 400, (0, 0, 0))) == (720, 400)
    assert png_size(png(1024, 768, (0, 0, 170))) == (1024, 768)


def test_what_is_not_a_png_has_no_size() -> None:
    assert png_size(b"") is None
    assert png_size(b'{"kind": "Status"}' * 3) is None
    assert png_size(png(1, 1, (0, 0, 0))[:20]) is None  # cut short


def test_each_shot_gets_its_own_file_in_the_order_taken() -> None:
    assert default_file("web-1", datetime(2026, 12, 5, 10, 15, 0)) == "web-1-20261205-101500.png"
