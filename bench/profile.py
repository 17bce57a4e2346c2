"""`python -m bench.profile PATH [--under FUNCTION] [--top N]`: where a profiled operator's
CPU went, from the collapsed stacks py-spy wrote (`python -m bench --profile PATH`).

Without `--under`: the functions with the most samples anywhere on the stack (inclusive;
the outer frames nine samples in ten share, the event loop and the CLI, are left out) and
at its top (self). With `--under decide`: what `decide` spends its samples on, by the
function it called. Percentages are of all samples, so they add up across runs of the tool.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

# py-spy's raw frame: "function (path/to/file.py:123)"; the line number is dropped so one
# function is one row, and the path is cut to its package.
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*?)(?::\d+)?\)$")
_CUTS = (
    re.compile(r".*/site-packages/"),  # a library: aiohttp/client.py
    re.compile(r".*/lib/python3\.\d+/"),  # the standard library: json/decoder.py
    re.compile(r".*?/(?=(?:wukong|bench)/)"),  # ours: wukong/act/reconciler.py
)


def frame_name(frame: str) -> str:
    """'Reconciler._pass (wukong/act/reconciler.py)' from py-spy's frame text."""
    match = _FRAME.match(frame)
    if match is None:
        return frame
    path = match["file"]
    for cut in _CUTS:
        path, found = cut.subn("", path, count=1)
        if found:
            break
    return f"{match['function']} ({path})"


def stacks(lines: Iterable[str]) -> Iterator[tuple[list[str], int]]:
    """(frames from the outermost, sample count) per line of py-spy's raw output."""
    for line in lines:
        text, _, count = line.rstrip("\n").rpartition(" ")
        if text and count.isdigit():
            yield [frame_name(f) for f in text.split(";")], int(count)


def summarize(
    samples: Iterable[tuple[list[str], int]], under: str | None = None
) -> tuple[int, Counter[str], Counter[str]]:
    """Total samples and two tallies: inclusive and self, or with `under` (a function name
    as printed, or its prefix before the file) the callees of that function and its self."""
    total = 0
    first: Counter[str] = Counter()
    second: Counter[str] = Counter()
    for frames, count in samples:
        total += count
        if under is None:
            for name in set(frames):
                first[name] += count
            second[frames[-1]] += count
            continue
        at = next((i for i, f in enumerate(frames) if f == under or f.startswith(under + " ")), -1)
        if at < 0:
            continue
        first[frames[at]] += count
        second[frames[at + 1] if at + 1 < len(frames) else "<self>"] += count
    return total, first, second


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    p.add_argument("path", type=Path, help="py-spy raw output (PATH.<N>.txt)")
    p.add_argument("--under", help="break one function down by what it calls")
    p.add_argument("--top", type=int, default=30, help="rows per table")
    opts = p.parse_args(argv)
    try:
        with opts.path.open() as lines:
            total, first, second = summarize(stacks(lines), opts.under)
    except OSError as exc:
        raise SystemExit(f"cannot read {opts.path}: {exc.strerror}") from None
    if not total:
        raise SystemExit(f"{opts.path}: no samples")
    if opts.under is None:
        first = Counter({k: v for k, v in first.items() if v < 0.9 * total})
    titles = ("inclusive", "self") if opts.under is None else (opts.under, "calls, and <self>")
    print(f"{total} samples ({total / 200:.1f} s of CPU at py-spy's 200 Hz)")
    for title, table in zip(titles, (first, second), strict=True):
        print(f"\n-- {title}")
        for name, count in table.most_common(opts.top):
            print(f"{100 * count / total:5.1f}%  {name}")


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:  # `| head` stopped reading: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
