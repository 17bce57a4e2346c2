"""manifests/admission of a checkout on a local control plane: the finalizer set at create."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from wukong.adapters.kube import Kube, api_path
from wukong.api import names
from wukong.errors import ServerError
from wukong.testing.controlplane import ControlPlane
from wukong.testing.eventually import eventually

FINALIZER_POLICY = (
    Path(__file__).resolve().parents[2] / "manifests" / "admission" / "finalizer.yaml"
)
_GROUP, _VERSION = "admissionregistration.k8s.io", "v1"


async def install_finalizer_policy(plane: ControlPlane, kube: Kube, namespace: str) -> None:
    """Apply the policy as shipped; return once the API server applies it (a dry-run create of
    a Wukong in `namespace` comes back with the finalizer)."""
    docs = list(yaml.safe_load_all(FINALIZER_POLICY.read_text()))
    await asyncio.to_thread(plane.apply, docs)
    probe = {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {"name": "finalizer-policy-probe"},
        "spec": {"cpu": 1, "memory": "1Gi", "disks": [{"name": "system", "size": "1Gi"}]},
    }
    wukongs = api_path(names.GROUP, names.VERSION, "wukongs", namespace)

    async def in_effect() -> bool:
        made = await kube.request("POST", wukongs, body=probe, query={"dryRun": "All"})
        return names.FINALIZER in (made["metadata"].get("finalizers") or [])

    # Right after start the Wukong CRD may not be served yet: 503 is "not yet" too.
    await eventually(
        in_effect,
        timeout=20,
        retry_on=(AssertionError, ServerError),
        message="the finalizer policy in effect",
    )


async def remove_finalizer_policy(kube: Kube) -> None:
    """Delete the policy and its binding (the operator adds its finalizer itself again)."""
    for plural in ("mutatingadmissionpolicybindings", "mutatingadmissionpolicies"):
        await kube.request("DELETE", api_path(_GROUP, _VERSION, plural, None, "wukong-finalizer"))
