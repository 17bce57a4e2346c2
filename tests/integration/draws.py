"""Hypothesis draws that depend on the seed and the code only, not on the process drawing them.

Since 6.131, Hypothesis mixes constants found in every *local* module loaded in its process
(the project's own, tests included) into about 5 % of its draws. In a pytest worker, which
modules are loaded depends on which tests ran there first, so one seed drew different specs in
CI than when replayed alone: the CI run of 8f55c70 drew, for seed 4081442324, specs of which
the API server accepted 21 in 150, and `WUKONG_PARITY_SEED=4081442324` replayed 42 in 150,
from other specs. A fresh interpreter that imports only the generator's module loads the same
modules wherever it runs, so a seed names one set of draws.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
_CALL = (
    "import importlib, json, sys\n"
    "module, function = sys.argv[1].split(':')\n"
    "result = getattr(importlib.import_module(module), function)(*json.loads(sys.argv[2]))\n"
    "sys.stdout.write(json.dumps(result))\n"
)


def in_fresh_interpreter(function: str, *args: Any) -> Any:
    """`function` ("package.module:name") called with JSON `args` in a new Python process
    started in the repository root; its result, through JSON."""
    done = subprocess.run(
        [sys.executable, "-c", _CALL, function, json.dumps(args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{function}{tuple(args)} failed in a fresh interpreter:\n{done.stderr}")
    return json.loads(done.stdout)
