"""Wukong objects as the API server returns them, for the CLI's pure parts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
IMAGE = "docker://quay.io/containerdisks/fedora:40"


def wukong(
    name: str = "web-1",
    *,
    disks: list[dict[str, Any]] | None = None,
    status: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A stored Wukong: metadata with uid/resourceVersion, a spec, and the given status."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "demo",
        "uid": f"uid-{name}",
        "resourceVersion": "42",
        "generation": 3,
        "creationTimestamp": "2026-05-01T11:00:00Z",
    }
    if annotations:
        meta["annotations"] = annotations
    body: dict[str, Any] = {
        "cpu": 1,
        "memory": "1Gi",
        "disks": disks
        if disks is not None
        else [{"name": "system", "size": "10Gi", "image": IMAGE}],
    }
    body.update(spec)
    return {
        "apiVersion": "vm.novasphere.dev/v1alpha1",
        "kind": "Wukong",
        "metadata": meta,
        "spec": body,
        "status": status or {},
    }


def running(name: str = "web-1", **extra: Any) -> dict[str, Any]:
    """A Wukong the operator reports Running with an IP."""
    status = {
        "phase": "Running",
        "vmName": f"{name}-vm",
        "nodeName": "node-1",
        "interfaces": [{"name": "default", "ipAddress": "10.244.0.7", "mac": "02:00:00:00:00:01"}],
        "volumes": [
            {
                "name": "system",
                "pvcName": f"{name}-system",
                "phase": "Succeeded",
                "progress": "100.0%",
            }
        ],
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "VMRunning",
                "message": "the VM runs on node-1",
                "lastTransitionTime": "2026-05-01T11:58:00Z",
            }
        ],
    }
    return wukong(name, status=status, **extra)


def phase(value: str, version: str) -> dict[str, Any]:
    """`running()` at another phase and resourceVersion: one step of a watched Wukong."""
    cr = running()
    cr["status"]["phase"] = value
    cr["metadata"]["resourceVersion"] = version
    return cr


def runs(cr: dict[str, Any] | None) -> str | None:
    """A wait's check: "runs" once the Wukong is Running."""
    return "runs" if cr and cr["status"]["phase"] == "Running" else None
