"""Reaching the cluster like kubectl: kubeconfig lists, contexts, default namespaces."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from kubernetes_asyncio.client import Configuration

from wukong.console.connect import kubeconfig_files, load
from wukong.console.errors import CliError


def kubeconfig(path: Path, namespace: str | None) -> Path:
    context = {"cluster": "c", "user": "u"} | ({"namespace": namespace} if namespace else {})
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [
                    {"name": "dev", "context": context},
                    {"name": "prod", "context": {"cluster": "c", "user": "u", "namespace": "p"}},
                ],
                "current-context": "dev",
            }
        )
    )
    return path


def test_kubeconfig_lists_keep_only_existing_files(tmp_path: Path) -> None:
    real = kubeconfig(tmp_path / "a", None)
    listed = os.pathsep.join([str(tmp_path / "missing"), str(real)])
    assert kubeconfig_files(listed) == [str(real)]


@pytest.mark.parametrize(
    ("namespace", "context", "expected"),
    [
        pytest.param("team-a", None, "team-a", id="context-namespace"),
        pytest.param(None, None, "default", id="no-namespace-means-default"),
        pytest.param(None, "prod", "p", id="chosen-context"),
    ],
)
async def test_the_default_namespace_comes_from_the_context(
    tmp_path: Path, namespace: str | None, context: str | None, expected: str
) -> None:
    path = kubeconfig(tmp_path / "config", namespace)
    configuration = Configuration()
    assert await load(configuration, str(path), context) == expected
    assert configuration.host == "https://127.0.0.1:6443"


async def test_an_unknown_context_is_named(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "config", None)
    with pytest.raises(CliError, match="context nope not found"):
        await load(Configuration(), str(path), "nope")


async def test_no_kubeconfig_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(CliError, match="no cluster configured"):
        await load(Configuration(), str(tmp_path / "missing"), None)
