"""`wukong migrate-cancel`: which migration it cancels, and how it reads the end."""

from __future__ import annotations

import pytest

from tests.unit.cli.objects import running
from wukong.console.errors import CliError
from wukong.console.lifecycle import Outcome, cancel_outcome, migration_to_cancel


def with_migration(**migration: str) -> dict[str, object]:
    cr = running("web-1")
    cr["status"]["migration"] = migration
    return cr


def test_the_migration_in_flight_is_the_one_cancelled() -> None:
    cr = with_migration(name="web-1-migrate-x", uid="m-1", phase="Running")
    assert migration_to_cancel(cr)["uid"] == "m-1"


@pytest.mark.parametrize(
    ("migration", "said"),
    [
        ({}, "no migration of web-1 is running"),
        (
            {"name": "web-1-migrate-x", "result": "Succeeded"},
            "no migration of web-1 is running (the last, web-1-migrate-x, Succeeded)",
        ),
        ({"refusal": "not running", "result": "Refused"}, "no migration of web-1 is running"),
    ],
)
def test_nothing_to_cancel_is_an_error(migration: dict[str, str], said: str) -> None:
    with pytest.raises(CliError) as refused:
        migration_to_cancel(with_migration(**migration))
    assert refused.value.message == said


def test_the_end_says_where_the_vm_is() -> None:
    running_one = with_migration(name="m", phase="Running", sourceNode="node-1")
    assert cancel_outcome("web-1", "m", running_one) is None
    cancelled = with_migration(name="m", result="Failed", sourceNode="node-1", targetNode="node-2")
    assert cancel_outcome("web-1", "m", cancelled) == Outcome(
        True, "migration m cancelled: web-1 stays on node-1"
    )
    finished = with_migration(
        name="m", result="Succeeded", sourceNode="node-1", targetNode="node-2"
    )
    assert cancel_outcome("web-1", "m", finished) == Outcome(
        False,
        "migration m finished before it could be cancelled: web-1 moved from node-1 to node-2",
    )
    assert cancel_outcome("web-1", "m", with_migration(name="n", result="Failed")) is None
    assert cancel_outcome("web-1", "m", None) == Outcome(False, "web-1 was deleted")


async def test_a_user_kubevirt_does_not_let_delete_migrations_is_told_which_role_does() -> None:
    """KubeVirt v1.7 gives deleting migrations to kubevirt.io:migrate only (not edit, admin):
    a Wukong editor may start one through the operator but got a bare 403 cancelling it
    (found by a source audit, session 42)."""
    from types import SimpleNamespace
    from typing import Any

    from wukong.console.flows.requests import _delete_migration
    from wukong.errors import Forbidden

    async def delete(path: str, **_: Any) -> None:
        raise Forbidden(403, "Forbidden", 'virtualmachineinstancemigrations "m" is forbidden')

    target: Any = SimpleNamespace(namespace="demo", kube=SimpleNamespace(delete=delete))
    with pytest.raises(CliError) as refused:
        await _delete_migration(target, "/apis/x", "m", "m-1")
    assert refused.value.message.startswith(
        "you may not cancel migration m in namespace demo: KubeVirt gives deleting migrations "
        "to its kubevirt.io:migrate role, not to edit or admin; ask an administrator for it"
    )
