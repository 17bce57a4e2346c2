"""`delete`: every plan before the first write, one question, then the deletions."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence

from wukong.adapters.kube import api_path
from wukong.api.names import LABEL_WUKONG
from wukong.console import delete as deletion
from wukong.console.connect import Target, connect
from wukong.console.errors import CliError
from wukong.console.flows.common import (
    Failures,
    JsonObj,
    NotConfirmed,
    Patches,
    Writing,
    chosen,
)
from wukong.console.follow import wait_for
from wukong.console.invocation import Ask, Cluster, Console, typed
from wukong.console.output import DryRun, Output, name_of
from wukong.errors import ApiError, Conflict, Forbidden


async def delete(
    cluster: Cluster,
    io: Console,
    names: Sequence[str],
    *,
    keep_all: bool,
    keep: Sequence[str],
    force: bool,
    ask: Callable[[str], Ask | None],
    wait: float | None,
    selector: str | None = None,
    writing: Writing = Writing(),
) -> int:
    """Plan every Wukong first (one that cannot be deleted as asked: nothing is); show every
    plan, ask once (`ask(who)` None: --yes), then for each write deleteOptions and delete;
    then maybe follow each until gone."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        crs = await chosen(target, names, selector)
        plans = _plan_each(io, crs, keep_all=keep_all, keep=keep, force=force)
        failures = Failures(io, target.server, several=selector is not None or len(crs) > 1)
        deleting = await _delete_each(target, io, crs, plans, ask, writing, failures)
        if wait is not None and writing.dry_run is DryRun.NONE:
            done = io.say if writing.output is Output.NAME else io.out
            await _all_gone(target, io, deleting, wait, failures, done)
        return failures.code


async def _all_gone(
    target: Target,
    io: Console,
    deleting: Sequence[str],
    wait: float,
    failures: Failures,
    done: Callable[[str], None],
) -> None:
    """Follow every deletion at once, under the one --timeout: kubectl's `delete --wait` has
    one deadline for all its objects, and the lifecycle verbs follow a selection together.
    One after another, each with the whole timeout, took N times it (CLI audit, session
    44). Each deletion done to `done` (stdout; stderr with -o name, whose stdout has the
    names alone), then each failure."""
    results = await asyncio.gather(
        *(
            wait_for(target, name, _gone, within=wait, what=f"{name} to be deleted", say=io.say)
            for name in deleting
        ),
        return_exceptions=True,
    )
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, CliError | ApiError):
            raise result  # a bug, not an answer
    for name, result in zip(deleting, results, strict=True):
        if not isinstance(result, BaseException):
            done(f"wukong {name} deleted")
    for name, result in zip(deleting, results, strict=True):
        if isinstance(result, CliError | ApiError):
            failures.add(name, result)


def _plan_each(
    io: Console, crs: Sequence[JsonObj], *, keep_all: bool, keep: Sequence[str], force: bool
) -> list[deletion.DeletePlan | None]:
    """Every plan before the first write; a problem with any refuses the whole command,
    one `error:` line per problem (a confirmed, half-done deletion is the worst outcome)."""
    try:
        return deletion.plan_each(crs, keep_all=keep_all, keep=keep, force=force)
    except deletion.CannotDelete as refused:
        if len(crs) == 1:
            raise refused.problems[0] from None
        for problem in refused.problems:
            io.say(f"error: {problem.message}")
        raise


async def _delete_each(
    target: Target,
    io: Console,
    crs: Sequence[JsonObj],
    plans: Sequence[deletion.DeletePlan | None],
    ask: Callable[[str], Ask | None],
    writing: Writing,
    failures: Failures,
) -> list[str]:
    """Show every plan, ask once for all of them (as kubectl asks once for what it lists),
    delete each; the names now being deleted (to wait for; a dry run's, as if). A write that
    fails is said and the others go on; a "no" deletes none. With -o name, stdout has each
    Wukong's `wukong.vm.novasphere.dev/NAME` alone, once all are deleted, as `kubectl delete
    -o name` prints it, and the plans go to stderr: still shown before the question."""
    names_only = writing.output is Output.NAME
    show = io.say if names_only else io.out
    patches = Patches(io, writing.output, several=failures.several)
    deleting: list[str] = []
    shown: list[tuple[JsonObj, deletion.DeletePlan]] = []
    services = await _services(target) if any(plans) else []
    for cr, plan in zip(crs, plans, strict=True):
        if plan is not None:
            owned = None if services is None else deletion.owned_services(cr, services)
            plan = dataclasses.replace(plan, services=owned)
        if plan is None:
            io.say(deletion.already_deleting(cr))
            deleting.append(cr["metadata"]["name"])
        elif writing.client:
            _show_deletion(io, cr, plan, None if names_only else patches)
            deleting.append(cr["metadata"]["name"])  # would be: named with -o name
        else:
            for line in plan.lines():
                show(line)
            shown.append((cr, plan))
    if not names_only:
        patches.flush()
    if shown:
        await _confirmed_deletes(target, io, shown, ask, writing, failures, deleting)
    if names_only:
        # After the answer (a "no" prints none), in the selection's order; one already
        # being deleted is named too, as kubectl's DELETE of it answers.
        for cr in crs:
            if cr["metadata"]["name"] in deleting:
                io.out(name_of(cr))
    return deleting


async def _confirmed_deletes(
    target: Target,
    io: Console,
    shown: Sequence[tuple[JsonObj, deletion.DeletePlan]],
    ask: Callable[[str], Ask | None],
    writing: Writing,
    failures: Failures,
    deleting: list[str],
) -> None:
    """Ask once for every plan shown, then delete each, adding its name to `deleting`."""
    asked = [plan for _, plan in shown]
    confirm = ask(deletion.subject(asked))
    if not writing.server and confirm is not None and not confirm(deletion.question(asked)):
        raise NotConfirmed()
    for cr, plan in shown:
        name = cr["metadata"]["name"]
        try:
            await _delete(target, cr, plan, dry_run=writing.server)
        except (CliError, ApiError) as error:
            failures.add(name, error)
            continue
        deleting.append(name)
        if writing.output is Output.NAME:
            continue  # the names alone, once all are asked (_delete_each)
        if writing.server:
            io.out(f"wukong {name} deleted (server dry run)")
        else:
            follow = typed(f"status {name} -w", cr["metadata"]["namespace"])
            io.out(f"wukong {name} is being deleted (follow it with: {follow})")


async def _services(target: Target) -> list[JsonObj] | None:
    """The namespace's Services made for Wukongs (`wukong expose` labels them), None when
    the user may not list Services."""
    path = api_path("", "v1", "services", target.namespace)
    try:
        return await target.listed(path, query={"labelSelector": LABEL_WUKONG})
    except Forbidden:
        return None


def _show_deletion(
    io: Console, cr: JsonObj, plan: deletion.DeletePlan, patches: Patches | None
) -> None:
    """A client dry run of one deletion: the plan to stderr, so that stdout carries the
    patches alone (`-o json | jq`; `patches` None: -o name, whose names come after)."""
    for line in plan.lines():
        io.say(line)
    if patches is not None and (patch := deletion.options_patch(cr, plan)) is not None:
        patches.add(cr, patch)
    io.say(f"wukong {cr['metadata']['name']} would be deleted (client dry run)")


async def _delete(
    target: Target, cr: JsonObj, plan: deletion.DeletePlan, *, dry_run: bool = False
) -> None:
    name = cr["metadata"]["name"]
    patch = deletion.options_patch(cr, plan)
    if patch is not None:
        try:
            await target.patched(name, patch, dry_run=dry_run)
        except Conflict as error:
            raise CliError(
                f"{name} changed after the plan was made: run the command again"
            ) from error
    # The UID pins the object the plan was made for, not a new one of the same name.
    await target.kube.delete(target.wukongs(name), uid=cr["metadata"]["uid"], dry_run=dry_run)


def _gone(cr: JsonObj | None) -> bool | None:
    return True if cr is None else None
