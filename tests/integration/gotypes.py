"""What KubeVirt's Go types make of the objects our simulated node writes.

virt-controller patches a VMI's status with JSON patch `test` operations on the fields it
changes (`/status/conditions`, `/status/volumeStatus`, ...; pkg/virt-controller/watch/vmi
lifecycle.go), their values being what it read, decoded into its Go types and encoded
again. A field the node wrote differently from how Go encodes it (a field Go always writes,
left out) fails every such patch, and virt-controller never moves the VMI on: it happened
once (a condition without `lastProbeTime`: the VMI never became Ready). `vmistatus`, built
with KubeVirt's components (hack/kubevirt/vmistatus), does that decoding and encoding.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

# The VMI status fields a patch of virt-controller's tests before changing them.
TESTED = (
    "conditions",
    "volumeStatus",
    "activePods",
    "phase",
    "interfaces",
    "launcherContainerImageVersion",
    "migrationState",
)


def round_trip_differences(assets: Path, statuses: list[dict[str, Any]]) -> list[str]:
    """Each tested field of `statuses` that KubeVirt's Go type encodes differently, as
    "field: stored ... / Go ..."; [] when all read back as stored."""
    if not statuses:
        return []
    lines = "".join(json.dumps(s, separators=(",", ":")) + "\n" for s in statuses)
    done = subprocess.run(
        [str(assets / "vmistatus")], input=lines.encode(), capture_output=True, check=True
    )
    again = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert len(again) == len(statuses), done.stderr.decode()
    found: dict[str, str] = {}
    for stored, go in zip(statuses, again, strict=True):
        if "error" in go and len(go) == 1:
            found.setdefault("decode", f"{go['error']}: {stored}")
            continue
        for field in TESTED:
            if stored.get(field) != go.get(field) and not _omitted_empty(stored, go, field):
                found.setdefault(field, f"stored {stored.get(field)} / Go {go.get(field)}")
    return [f"{field}: {text}" for field, text in found.items()]


def _omitted_empty(stored: dict[str, Any], go: dict[str, Any], field: str) -> bool:
    """An empty map or list the whole struct's `omitempty` leaves out: virt-controller's
    patch tests one field alone, and an empty one decoded and encoded alone is `{}` or `[]`
    again (virt-controller itself writes `activePods: {}` once the VMI's pod is gone:
    `patch.WithReplace("/status/activePods", ...)`, pkg/virt-controller/watch/vmi
    lifecycle.go)."""
    return stored.get(field) in ({}, []) and go.get(field) is None
