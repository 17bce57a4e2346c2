"""What the operator logs of one pass: the Wukong's uid and the pass's id on each line, and a
failure once, with its cause, at the level it deserves (audit, session 48)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient, Configuration

from tests.unit.reconcile.test_settle import (
    Patching,
    halted_vm_patching,
    keeping_data_conflict_once,
)
from tests.unit.reconcile.world import NOW
from wukong.act.executor import Executor
from wukong.act.reconciler import Reconciler
from wukong.api import kinds
from wukong.controller import Operator
from wukong.errors import Conflict, ServerError, classify
from wukong.runtime.clock import FakeClock
from wukong.runtime.logs import pass_id, wukong_key, wukong_uid
from wukong.runtime.queue import WorkQueue
from wukong.runtime.worker import Result, run_workers
from wukong.settings import Settings
from wukong.testing.eventually import eventually

KEY = "demo/web-1"
MODIFIED = "the object has been modified; please apply your changes to the latest version"


async def test_the_operators_passes_carry_the_cached_wukongs_uid() -> None:
    async with ApiClient(Configuration()) as api:
        operator = Operator(Settings(metrics_address="off"), api)
        meta = {"namespace": "demo", "name": "web-1", "uid": "u-1", "resourceVersion": "1"}
        operator.store.upsert(kinds.WUKONG.cache, {"metadata": meta})
        seen: list[tuple[str | None, ...]] = []

        async def reconcile(key: str) -> float | None:
            seen.append((wukong_key.get(), wukong_uid.get(), pass_id.get()))
            return None

        operator.reconciler.reconcile = reconcile  # type: ignore[method-assign]
        work = asyncio.create_task(operator._work())
        operator.queue.add(KEY)
        operator.queue.add("demo/gone")  # not in the cache: no uid, still a pass id
        await eventually(lambda: len(seen) == 2, timeout=5)
        operator.queue.shutdown()
        await asyncio.wait_for(work, 5)
    [(key, uid, one), (other, none, two)] = seen
    assert (key, uid, other, none) == (KEY, "u-1", "demo/gone", None)
    assert one and two and one != two


async def _one_pass(reconciler: Reconciler, caplog: pytest.LogCaptureFixture) -> list[str]:
    """Run `demo/web-1` through a worker until its pass raised (re-queued with backoff);
    the lines it logged, as `LEVEL message`."""
    queue = WorkQueue(clock=FakeClock())

    async def handle(key: str) -> Result:
        return Result(requeue_after=await reconciler.reconcile(key))

    workers = asyncio.create_task(run_workers(queue, handle, 1))
    with caplog.at_level(logging.DEBUG, logger="wukong"):
        queue.add(KEY)
        await eventually(lambda: queue.delayed == 1 and queue.in_flight == 0, timeout=5)
    queue.shutdown()
    await asyncio.wait_for(workers, 5)
    return [f"{r.levelname} {r.getMessage()}" for r in caplog.records if r.levelno >= logging.INFO]


class VmPatchRefused(Patching):
    """The VM's PATCH is answered `error` (409: someone wrote it meanwhile; 503...)."""

    def __init__(self, raw: dict[str, Any], vm: dict[str, Any], error: Exception) -> None:
        super().__init__(raw, vm)
        self.error = error

    async def request(self, method: str, path: str, *, body: Any = None, **kw: Any) -> Any:
        if method == "PATCH" and path.endswith("/virtualmachines/web-1-vm"):
            raise self.error
        return await super().request(method, path, body=body, **kw)


def patch_answered(error: Exception) -> Reconciler:
    """A running web-1 whose VM someone set Halted: its pass patches runStrategy back, and
    the PATCH is answered `error`."""
    cache, server = halted_vm_patching()
    refusing = VmPatchRefused(server.raw, server.vm, error)
    return Reconciler(cache, Executor(refusing), clock=lambda: NOW)


async def test_a_conflict_on_a_childs_patch_is_one_info_line_naming_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 409 is a write race the next pass settles: it was a warning from the executor and
    a second one from the worker, that one without the cause ("1 action(s) failed")."""
    conflict = Conflict(409, "Conflict", MODIFIED, path="/virtualmachines/web-1-vm")
    lines = await _one_pass(patch_answered(conflict), caplog)
    [line] = [line for line in lines if "409" in line or "failed" in line]
    assert line.startswith("INFO reconcile of demo/web-1 failed, retrying with backoff: ")
    assert "PatchChild" in line and MODIFIED in line


async def test_a_server_error_on_a_childs_patch_is_one_warning_line_naming_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = ServerError(503, "ServiceUnavailable", "etcd leader changed")
    lines = await _one_pass(patch_answered(down), caplog)
    [line] = [line for line in lines if "503" in line or "failed" in line]
    assert line.startswith("WARNING reconcile of demo/web-1 failed, retrying with backoff: ")
    assert "PatchChild" in line and "etcd leader changed" in line


async def test_a_conflict_in_a_deletion_step_is_one_info_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The release of a kept disk answered 409 (test_settle's deletion world)."""
    cache, server = keeping_data_conflict_once()
    lines = await _one_pass(Reconciler(cache, Executor(server), clock=lambda: NOW), caplog)
    [line] = [line for line in lines if "409" in line or "failed" in line]
    assert line.startswith("INFO reconcile of demo/web-1 failed, retrying with backoff: ")
    assert "deletion step failed: 409 Conflict: the object has been modified" in line


# An ingress's (or an auth proxy's) error page where the API server's Status should be.
PAGE = (
    "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
    "<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    + "<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n" * 6
    + "</body>\r\n</html>\r\n"
)
VM_PATH = "/apis/kubevirt.io/v1/namespaces/demo/virtualmachines/web-1-vm"


async def test_a_proxys_web_page_is_its_title_in_the_failed_pass_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Audit leftovers, session 50: the worker's line said str(error), the whole HTML page
    (tags, comments, line breaks) a proxy answered with. Its title now, on one line."""
    page = classify(502, PAGE.format(title="502 Bad Gateway"), VM_PATH)
    lines = await _one_pass(patch_answered(page), caplog)
    [line] = [line for line in lines if "502" in line or "failed" in line]
    assert line.startswith("WARNING reconcile of demo/web-1 failed, retrying with backoff: ")
    assert "PatchChild" in line and "502 ServerError: a web page: 502 Bad Gateway" in line
    assert "<" not in line and "\n" not in line and len(line) < 400, line


async def test_a_proxys_web_page_is_no_condition_nor_event_of_the_wukong() -> None:
    """An auth proxy's 403 page to a child's patch is a refusal the Wukong reports
    (ChildrenAdmitted, a ChildRefused Event): they quoted the whole page."""
    page = classify(403, PAGE.format(title="403 Forbidden"), VM_PATH)
    cache, patching = halted_vm_patching()
    server = VmPatchRefused(patching.raw, patching.vm, page)
    await Reconciler(cache, Executor(server), clock=lambda: NOW).reconcile(KEY)
    [admitted] = [c for c in server.raw["status"]["conditions"] if c["type"] == "ChildrenAdmitted"]
    said = "the API server refused to update VirtualMachine web-1-vm: a web page: 403 Forbidden"
    assert admitted["message"] == said
    [event] = [body for method, path, body in server.writes if path.endswith("/events")]
    assert event["reason"] == "ChildRefused" and event["message"] == said
