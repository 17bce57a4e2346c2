"""What each command does against the cluster: read, decide (pure modules), write, follow."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from wukong.adapters.kube import api_path
from wukong.api.spec import DiskBus
from wukong.console import delete as deletion
from wukong.console import disks
from wukong.console.connect import Target, connect
from wukong.console.describe import describe as describe_page
from wukong.console.errors import OK, CliError
from wukong.console.follow import wait_for
from wukong.console.lifecycle import Outcome, Request, outcome
from wukong.console.status import detail, summary_table
from wukong.errors import Conflict

JsonObj = dict[str, Any]
Say = Callable[[str], None]
Ask = Callable[[str], bool]
OPTIONS_RECORDED_TIMEOUT: Final = 30.0


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


def _now() -> datetime:
    return datetime.now(UTC)


async def lifecycle(
    cluster: Cluster, io: Console, request: Request, name: str, *, wait: float | None
) -> int:
    """Write the request; with `wait` (seconds), follow the Wukong until it is answered."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        cr = await target.wukong(name)  # a clear "not found in namespace" before writing
        if cr["metadata"].get("deletionTimestamp"):
            raise CliError(f"{name} is being deleted: it takes no more requests")
        written = await target.kube.merge_patch(target.wukongs(name), request.patch())
        generation = int(written["metadata"]["generation"])
        verb = request.action.value
        if wait is None:
            io.out(f"{verb} requested for {name} (generation {generation})")
            return OK

        def check(cr: JsonObj | None) -> Outcome | None:
            """The request's outcome, once answered."""
            return outcome(cr, request, generation)

        result = await wait_for(
            target, name, check, within=wait, what=f"{name} to {verb}", say=io.say
        )
        if not result.ok:
            raise CliError(result.message)
        io.out(result.message)
        return OK


async def status(cluster: Cluster, io: Console, name: str | None, *, all_namespaces: bool) -> int:
    """Print the table of every Wukong, or the detailed view of one."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        if name is not None:
            io.out(detail(await target.wukong(name), _now()))
            return OK
        listing = await target.kube.get(target.wukongs(all_namespaces=all_namespaces))
        items = listing.get("items") or []
        if not items:
            where = "any namespace" if all_namespaces else f"namespace {target.namespace}"
            io.say(f"no Wukongs in {where}")
            return OK
        io.out(summary_table(items, _now(), namespaces=all_namespaces))
        return OK


async def describe(cluster: Cluster, io: Console, name: str) -> int:
    """Print the detailed view and the merged Event timeline."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        cr = await target.wukong(name)
        events = await target.kube.get(api_path("", "v1", "events", target.namespace))
        io.out(describe_page(cr, events.get("items") or [], _now()))
        return OK


async def _patch_pinned(
    target: Target, name: str, build: Callable[[JsonObj], JsonObj | None]
) -> JsonObj:
    """Read, build a patch pinned to what was read, write; read again on a conflict."""
    for _ in range(disks.CONFLICT_RETRIES):
        cr = await target.wukong(name)
        patch = build(cr)
        if patch is None:
            return cr
        try:
            return await target.kube.merge_patch(target.wukongs(name), patch)
        except Conflict:
            continue  # someone wrote in between: decide again on what is there now
    raise CliError(f"{name} keeps changing under us; try again")


async def attach(
    cluster: Cluster,
    io: Console,
    name: str,
    disk: str,
    *,
    size: str,
    image: str | None,
    bus: DiskBus | None,
) -> int:
    """Add a disk to spec.disks; the operator creates it and hot-plugs it into a running VM."""
    entry = disks.new_disk(disk, size, image, bus)
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        await _patch_pinned(target, name, lambda cr: disks.attach_patch(cr, entry))
        source = f"from {image}" if image else "blank"
        io.out(f"disk {disk} ({size}, {source}) added to {name}")
        return OK


async def detach(
    cluster: Cluster, io: Console, name: str, disk: str, *, keep_data: bool, force: bool
) -> int:
    """Record the detach options, wait until the operator has them, then remove the disk."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        plan = disks.plan_detach(await target.wukong(name), disk, keep_data=keep_data, force=force)
        await _patch_pinned(target, name, lambda cr: disks.options_patch(cr, plan))

        def check(cr: JsonObj | None) -> bool | None:
            """True once the operator reports the options."""
            return disks.recorded(cr, plan)

        what = f"the operator to record the detach options of {disk}"
        await wait_for(target, name, check, within=OPTIONS_RECORDED_TIMEOUT, what=what, say=_quiet)

        def remove(cr: JsonObj) -> JsonObj:
            """The removal, checked again on what is there now."""
            return disks.remove_patch(
                cr, disks.plan_detach(cr, disk, keep_data=keep_data, force=force)
            )

        await _patch_pinned(target, name, remove)
        io.out(plan.summary(name))
        return OK


def _quiet(_line: str) -> None:
    """Progress nobody needs to read (a short internal wait)."""


async def delete(
    cluster: Cluster,
    io: Console,
    name: str,
    *,
    keep_all: bool,
    keep: Sequence[str],
    force: bool,
    ask: Ask | None,
    wait: float | None,
) -> int:
    """Show the plan, ask (`ask` None: --yes), write deleteOptions, delete, maybe follow."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        cr = await target.wukong(name)
        if cr["metadata"].get("deletionTimestamp"):
            _already_deleting(io, cr, changes=keep_all or bool(keep) or force)
        else:
            plan = deletion.plan_delete(cr, keep_all=keep_all, keep=keep, force=force)
            for line in plan.lines():
                io.out(line)
            if ask is not None and not ask(plan.question):
                raise CliError("not confirmed: nothing was deleted")
            await _delete(target, cr, plan)
        if wait is None:
            io.out(f"wukong {name} is being deleted (follow it with: wukong status {name})")
            return OK
        what = f"{name} to be deleted"
        await wait_for(target, name, _gone, within=wait, what=what, say=io.say)
        io.out(f"wukong {name} deleted")
        return OK


async def _delete(target: Target, cr: JsonObj, plan: deletion.DeletePlan) -> None:
    name = cr["metadata"]["name"]
    patch = deletion.options_patch(cr, plan)
    if patch is not None:
        try:
            await target.kube.merge_patch(target.wukongs(name), patch)
        except Conflict as error:
            raise CliError(
                f"{name} changed after the plan was made: run the command again"
            ) from error
    # The UID pins the object the plan was made for, not a new one of the same name.
    await target.kube.delete(target.wukongs(name), uid=cr["metadata"]["uid"])


def _gone(cr: JsonObj | None) -> bool | None:
    return True if cr is None else None


def _already_deleting(io: Console, cr: JsonObj, *, changes: bool) -> None:
    name = cr["metadata"]["name"]
    step = ((cr.get("status") or {}).get("deletion") or {}).get("step") or "started"
    if changes:
        raise CliError(
            f"{name} is already being deleted (step {step}): too late to change what it keeps"
        )
    io.say(f"{name} is already being deleted (step {step})")
