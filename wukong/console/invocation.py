"""What every command is given: the cluster its flags name, and where its output goes.

Kept apart from `flows` (and so from the Kubernetes client) on purpose: a command that asks
nothing of a cluster, such as `version --client`, loads this module and not the client.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


def invoked_as() -> str:
    """`kubectl-wukong` when kubectl runs this as its plugin, else `wukong`."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return "kubectl-wukong" if name == "kubectl-wukong" else "wukong"


def command_line_name() -> str:
    """How the user types this program: `kubectl wukong` or `wukong`."""
    return "kubectl wukong" if invoked_as() == "kubectl-wukong" else "wukong"


def typed(args: str, namespace: str) -> str:
    """A command line to advise, as the user would type it here and pastes as printed:
    `typed("start web-1", "demo")` is `wukong start web-1 -n demo`, or `kubectl wukong …`
    under kubectl. The namespace is always named, as the deletion-protection hint's
    `kubectl annotate … -n NS` is: without it a paste goes to the context's namespace."""
    return f"{command_line_name()} {args} -n {namespace}"
