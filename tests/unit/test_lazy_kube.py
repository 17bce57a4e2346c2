"""The operator loads only the parts of kubernetes_asyncio it uses (issue 14, memory)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import wukong.controller
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio import config
assert ApiClient.__module__ == "kubernetes_asyncio.client.api_client"
assert callable(config.load_kube_config)
print(any(m.startswith("kubernetes_asyncio.client.models.") for m in sys.modules))
print(any(m.startswith("kubernetes_asyncio.client.api.") for m in sys.modules))
import kubernetes_asyncio.client as client
print(client.CoreV1Api.__name__, client.V1Pod.__name__)
"""


def test_the_operator_does_not_load_the_generated_models_yet_every_name_still_works() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "False", "CoreV1Api", "V1Pod"]
