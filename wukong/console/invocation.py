"""What every command is given: the cluster its flags name, and where its output goes.

Kept apart from `flows` (and so from the Kubernetes client) on purpose: a command that asks
nothing of a cluster, such as `version --client`, loads this module and not the client.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Say = Callable[[str], None]
Ask = Callable[[str], bool]


@dataclass(frozen=True)
class Cluster:
    """How to reach the cluster, as the user gave it on the command line."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None


@dataclass(frozen=True)
class Console:
    """Where output goes: results to `out` (stdout), narration to `say` (stderr)."""

    out: Say
    say: Say
