"""What each command does against the cluster: read, decide (the pure modules of
`wukong.console`), write, follow. One module per kind of command; this package is what
`commands` calls."""

from wukong.console.flows.common import Writing
from wukong.console.flows.deleting import delete
from wukong.console.flows.edits import attach, create, detach, expose, resize
from wukong.console.flows.reading import describe, names, namespaces, status
from wukong.console.flows.requests import (
    lifecycle,
    migrate_cancel,
    snapshots_to_restore,
    soft_reboot,
)

__all__ = [
    "Writing",
    "attach",
    "create",
    "delete",
    "describe",
    "detach",
    "expose",
    "lifecycle",
    "migrate_cancel",
    "names",
    "namespaces",
    "resize",
    "snapshots_to_restore",
    "soft_reboot",
    "status",
]
