"""Finding, applying and waiting for CustomResourceDefinitions on the local control plane."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from wukong.testing._rest import JsonObject, Rest

PACKAGE_CRDS = Path(__file__).parent / "crds"
# Only present in a source checkout: wukong/testing/_crds.py -> repository root.
_REPO_CRDS = Path(__file__).resolve().parents[2] / "manifests" / "crd"
_CRDS_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
_FIELD_MANAGER = "wukong-controlplane"
_KIND = "CustomResourceDefinition"


# Hand-written stand-ins for KubeVirt's and CDI's CRDs, for the pure simulator only: with real
# KubeVirt, their own generators' CRDs are installed instead (wukong.testing.kubevirt.plane).
SIMULATED_KUBEVIRT_CRDS = ("kubevirt.yaml", "cdi.yaml")


def default_crd_paths(*, real_kubevirt: bool = False) -> list[Path]:
    """The third-party CRDs shipped in wukong.testing, plus manifests/crd/ of a checkout.

    `real_kubevirt`: leave out the hand-written KubeVirt and CDI CRDs (Multus stays).
    """
    paths = sorted(PACKAGE_CRDS.glob("*.yaml"))
    if real_kubevirt:
        paths = [p for p in paths if p.name not in SIMULATED_KUBEVIRT_CRDS]
    if _REPO_CRDS.is_dir():
        paths += sorted(_REPO_CRDS.glob("*.yaml"))
    return paths


def load_crds(paths: Iterable[Path]) -> list[JsonObject]:
    """Every CustomResourceDefinition document in the given files or directories of *.yaml."""
    crds: list[JsonObject] = []
    for path in paths:
        files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")]) if path.is_dir() else [path]
        for file in files:
            for document in _documents(file):
                if isinstance(document, dict) and document.get("kind") == _KIND:
                    crds.append(document)
    return crds


def _documents(file: Path) -> list[Any]:
    """The documents of a YAML stream, or of a JSON file holding one object or a list."""
    if file.suffix == ".json":
        loaded = json.loads(file.read_text())
        return loaded if isinstance(loaded, list) else [loaded]
    # libyaml when present: KubeVirt's CRDs are megabytes, ten times slower in pure Python.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return list(yaml.load_all(file.read_text(), Loader=loader))


def apply_crds(rest: Rest, crds: Sequence[JsonObject], timeout: float) -> None:
    """Server-side apply each CRD, then wait until all are Established and listable."""
    for crd in crds:
        name = crd["metadata"]["name"]
        # Apply rather than create: idempotent, and updates a CRD that an earlier call installed.
        rest.json(
            "PATCH",
            f"{_CRDS_PATH}/{name}?fieldManager={_FIELD_MANAGER}&force=true",
            crd,
            content_type="application/apply-patch+yaml",
        )
    deadline = time.monotonic() + timeout
    pending = [crd["metadata"]["name"] for crd in crds]
    # Established is not enough: until the watch cache of a new resource is filled, reads of it
    # get 429 "storage is (re)initializing", which clients do not retry. Wait for a list that the
    # cache must answer itself (see _list_paths).
    lists = [path for crd in crds for path in _list_paths(crd)]
    while pending or lists:
        pending = [name for name in pending if not _established(rest, name)]
        if not pending:
            lists = [path for path in lists if rest.request("GET", path)[0] != 200]
        if not pending and not lists:
            return
        if time.monotonic() > deadline:
            waiting = ", ".join(pending or lists)
            raise TimeoutError(f"CRDs not served after {timeout:.0f}s: {waiting}")
        time.sleep(0.05)


def _list_paths(crd: JsonObject) -> list[str]:
    """Lists that only the watch cache answers, so they succeed once it is ready.

    A list with a limit and no selector is sent to etcd while the cache is not ready (KEP 4568,
    k8s.io/apiserver cacher/delegator.go shouldDelegateListOnNotReadyCache) and so proves nothing;
    a selector that matches nothing keeps the request on the cache and the reply small.
    """
    spec = crd["spec"]
    group, plural = spec["group"], spec["names"]["plural"]
    served = [v["name"] for v in spec["versions"] if v.get("served", True)]
    selector = "wukong.testing%2Fprobe%3Dnothing"
    return [f"/apis/{group}/{version}/{plural}?labelSelector={selector}" for version in served]


def _established(rest: Rest, name: str) -> bool:
    crd = rest.json("GET", f"{_CRDS_PATH}/{name}")
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)
