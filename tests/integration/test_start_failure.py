"""An operator that cannot start leaves nothing behind: no task, no open connection.

A test fixture whose operator failed to start used to leave its watches running and its client
open; their sockets surfaced as ResourceWarnings in whatever test ran next.
"""

from __future__ import annotations

import gc
import warnings
from pathlib import Path

import pytest

from wukong.testing._rest import write_kubeconfig
from wukong.testing.controlplane import ControlPlane
from wukong.testing.operator import InProcessOperator


async def test_an_operator_whose_token_is_refused_fails_to_start_and_leaks_nothing(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    kubeconfig = write_kubeconfig(
        tmp_path / "revoked.kubeconfig",
        server=control_plane.server,
        ca_file=control_plane.ca_file,
        token="a-token-the-api-server-does-not-know",
        user="revoked",
    )
    operator = InProcessOperator(kubeconfig, namespace="default", sync_timeout=3)
    with pytest.raises(TimeoutError, match="did not sync within 3"):
        await operator.start()
    assert operator._task is None and operator._api is None
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        gc.collect()
    assert [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)] == []
