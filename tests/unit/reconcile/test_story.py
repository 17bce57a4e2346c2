"""The story `kubectl describe` tells: an Event that reports what an action did goes out
only when the action went through (source audit, session 48)."""

from __future__ import annotations

from typing import Any

from tests.unit.reconcile.test_settle import Server, running_with_request
from tests.unit.reconcile.world import NOW
from wukong.act.executor import Executor
from wukong.act.reconciler import Reconciler
from wukong.errors import Forbidden, Invalid, ServerError, TransientError
from wukong.reconcile.actions import Emit

JsonObj = dict[str, Any]


class Failing(Server):
    """The API server answers `error` to every request whose path holds `fragment`."""

    def __init__(self, raw: JsonObj, fragment: str, error: Exception) -> None:
        super().__init__(raw)
        self.fragment, self.error = fragment, error

    async def request(self, method: str, path: str, *, body: Any = None, **kw: Any) -> Any:
        if self.fragment in path:
            self.writes.append((method, path, body))
            raise self.error
        return await super().request(method, path, body=body, **kw)


def events(server: Server) -> list[tuple[str, str]]:
    return [
        (b["type"], b["reason"])
        for m, p, b in server.writes
        if m == "POST" and p.endswith("/events")
    ]


async def test_a_migration_lost_on_its_way_is_not_said_started() -> None:
    """virt-api's webhook unreachable (failurePolicy Fail: a 5xx): each retry said
    "MigrationStarted" again, "(x13 over 1m) migrating from node node-1", with nothing
    migrating (source audit, session 48, finding 4)."""
    raw, cache = running_with_request("migrate")
    down = ServerError(500, "InternalError", 'failed calling webhook "migration-create"')
    server = Failing(raw, "virtualmachineinstancemigrations", down)
    reconciler = Reconciler(cache, Executor(server), clock=lambda: NOW)
    try:
        await reconciler.reconcile("demo/web-1")
    except TransientError:
        pass  # retried by the queue
    assert any("virtualmachineinstancemigrations" in p for _, p, _ in server.writes)
    assert ("Normal", "MigrationStarted") not in events(server)


async def test_a_migration_kubevirt_refuses_is_refused_not_started_then_refused() -> None:
    raw, cache = running_with_request("migrate")
    no = Invalid(422, "Invalid", "in-flight migration detected")
    server = Failing(raw, "virtualmachineinstancemigrations", no)
    await Reconciler(cache, Executor(server), clock=lambda: NOW).reconcile("demo/web-1")
    said = events(server)
    assert ("Warning", "MigrationRefused") in said
    assert ("Normal", "MigrationStarted") not in said


DENIED = 'admission webhook "protect.example.com" denied the request: claims labelled backup=true'


async def test_an_event_tied_to_an_action_that_failed_is_not_posted() -> None:
    """Outside a pass too (`Executor.run`), and in a deletion's line of actions."""
    from tests.unit.reconcile.test_executor import OWNER, RecordingKube, child

    for stop_on_failure in (False, True):
        no = Forbidden(403, "Forbidden", DENIED)
        kube = RecordingKube(fail={"virtualmachineinstancemigrations": no})
        create = child("VirtualMachineInstanceMigration", "web-1-migrate")
        said = Emit("Normal", "MigrationStarted", "migrating", after=(create,))
        await Executor(kube).run(OWNER, [create, said], stop_on_failure=stop_on_failure)
        assert "MigrationStarted" not in kube.started
        kube = RecordingKube()
        await Executor(kube).run(OWNER, [create, said], stop_on_failure=stop_on_failure)
        assert kube.finished == ["web-1-migrate", "MigrationStarted"]
