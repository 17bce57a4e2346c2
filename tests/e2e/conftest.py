"""e2e fixtures: the cluster of the current kubeconfig (kind + KubeVirt, set up by run.sh).

The whole folder is skipped, with the reason printed in the header and the summary, where no
container engine answers or kind is missing: the only place a test may be skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from functools import cache
from pathlib import Path

import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client import ApiClient

from wukong.testing.namespaces import temporary_namespace

_HERE = Path(__file__).parent


@cache
def unavailable() -> str | None:
    """Why e2e cannot run here, or None."""
    engine = os.environ.get("CONTAINER_ENGINE", "docker")
    if shutil.which("kind") is None:
        return "kind is not on PATH"
    if shutil.which(engine) is None:
        return f"{engine} is not on PATH"
    try:
        info = subprocess.run([engine, "info"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return f"`{engine} info` did not answer within 30 s"
    if info.returncode != 0:
        last = (info.stderr.strip().splitlines() or ["no output"])[-1]
        return f"`{engine} info` failed, no container engine answers: {last}"
    if not os.environ.get("WUKONG_E2E"):
        # Guard against running scenarios on whatever cluster ~/.kube/config points at.
        return "the cluster comes from tests/e2e/run.sh (`nox -s e2e`); or set WUKONG_E2E=1"
    return None


def pytest_report_header() -> str:
    """Say up front whether (and why not) e2e runs."""
    reason = unavailable()
    return f"e2e: skipped: {reason}" if reason else "e2e: against the current kubeconfig"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark everything here `e2e`; skip it all, with the reason, where it cannot run."""
    reason = unavailable()
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.e2e)
            if reason:
                item.add_marker(
                    pytest.mark.skip(reason=f"e2e needs kind + a container engine: {reason}")
                )


@pytest.fixture
async def kube() -> AsyncIterator[ApiClient]:
    """A client for the current kubeconfig (run.sh exports KUBECONFIG for its kind cluster)."""
    configuration = client.Configuration()
    await config.load_kube_config(client_configuration=configuration)
    async with ApiClient(configuration) as api:
        yield api


@pytest.fixture
async def namespace(kube: ApiClient) -> AsyncIterator[str]:
    """A fresh namespace per scenario, deleted afterwards (KubeVirt and CDI clean up after it)."""
    async with temporary_namespace(kube, "e2e-", digits=8) as name:
        yield name
