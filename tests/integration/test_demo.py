"""`wukong demo`, the README's first command, runs to its end: every example Wukong settles.

Session 39 broke it without a test noticing: once the simulated CDI padded claims as CDI
does, the demo's clone-1 was refused (CloneSourceTooBig), never settled, and the demo ended
in a traceback after 3 minutes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import wukong.demo

EXAMPLES = Path(wukong.demo.EXAMPLES)


@pytest.mark.timeout(300)
def test_the_demo_runs_to_its_end_and_every_example_settles() -> None:
    done = subprocess.run(
        # The suite's mode: KubeVirt's own components, or the pure simulator.
        [
            sys.executable,
            "-m",
            "wukong",
            "demo",
            "--kubevirt",
            os.environ.get("WUKONG_KUBEVIRT", "real"),
        ],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    table = output.split("$ kubectl get wk -n demo", 1)[1].splitlines()
    rows = {line.split()[0]: line.split()[1] for line in table[2:] if line.strip()[:1].isalnum()}
    examples = {
        doc["metadata"]["name"]
        for path in EXAMPLES.glob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "Wukong"
    }
    assert examples and examples <= rows.keys(), (examples, rows)
    assert {rows[name] for name in examples} <= {"Running", "Stopped"}, rows


def test_wukongs_that_do_not_settle_are_named_with_what_holds_them() -> None:
    cr = {
        "metadata": {"name": "clone-1"},
        "status": {
            "phase": "Creating",
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "Creating", "message": "…"},
                {"type": "Stalled", "status": "False", "reason": "Progressing"},
                {
                    "type": "VolumesBound",
                    "status": "False",
                    "reason": "CloneSourceTooBig",
                    "message": "disk 'system' is 10Gi, smaller than …",
                },
            ],
        },
    }
    stuck = wukong.demo.Unsettled([cr], 180)
    assert str(stuck) == "1 Wukong(s) did not settle within 180s"
    assert stuck.lines() == [
        "clone-1 is still Creating: VolumesBound=False CloneSourceTooBig: disk 'system' is "
        "10Gi, smaller than …"
    ]
