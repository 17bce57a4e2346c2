"""`delete`: every plan before the first write, one question, then the deletions."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable, Collection, Sequence

from wukong.adapters.kube import api_path
from wukong.api.names import LABEL_WUKONG, vm_name
from wukong.api.objects import being_deleted
from wukong.console import delete as deletion
from wukong.console.connect import Target, connect
from wukong.console.errors import CliError, explain
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
from wukong.errors import ApiError, Conflict, Forbidden, NotFound

REPLANS = 3
"""How many times a DELETE refused with a 409 (the Wukong changed after the plan was made)
is planned again before the command gives up: the operator's status writes change the
version too, and a Wukong reconciled just then can move on more than once."""
Replan = Callable[[JsonObj], Awaitable[deletion.DeletePlan | None]]


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
        owns = {cr["metadata"]["name"]: await _vm_owns(target, cr) for cr in crs}
        plans = _plan_each(io, crs, keep_all=keep_all, keep=keep, force=force, vm_owns=owns)
        failures = Failures(io, target.server, several=selector is not None or len(crs) > 1)

        async def replan(cr: JsonObj) -> deletion.DeletePlan | None:
            owned = {cr["metadata"]["name"]: await _vm_owns(target, cr)}
            try:
                [plan] = deletion.plan_each(
                    [cr], keep_all=keep_all, keep=keep, force=force, vm_owns=owned
                )
            except deletion.CannotDelete as refused:
                raise refused.problems[0] from None
            return plan

        deleting = await _delete_each(target, io, crs, plans, ask, writing, failures, replan)
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


async def _vm_owns(target: Target, cr: JsonObj) -> Collection[str] | None:
    """The `Conflict` disks of `cr` whose claim its own VM owns (`deletion.of_its_vm`): read
    only when it has such disks. None: the user may not read the VM or the claims."""
    claims = deletion.conflicts(cr)
    if not claims or being_deleted(cr):
        return frozenset()
    meta = cr["metadata"]
    namespace = meta.get("namespace") or target.namespace
    vm = str((cr.get("status") or {}).get("vmName") or vm_name(meta["name"]))
    try:
        found = await _found(
            target, api_path("kubevirt.io", "v1", "virtualmachines", namespace, vm)
        )
        read = {
            claim: obj
            for claim in claims.values()
            if (
                obj := await _found(
                    target, api_path("", "v1", "persistentvolumeclaims", namespace, claim)
                )
            )
            is not None
        }
    except Forbidden:
        return None
    return deletion.of_its_vm(cr, found, read)


async def _found(target: Target, path: str) -> JsonObj | None:
    try:
        return await target.kube.get(path)
    except NotFound:
        return None


def _plan_each(
    io: Console,
    crs: Sequence[JsonObj],
    *,
    keep_all: bool,
    keep: Sequence[str],
    force: bool,
    vm_owns: dict[str, Collection[str] | None],
) -> list[deletion.DeletePlan | None]:
    """Every plan before the first write; a problem with any refuses the whole command,
    one `error:` line per problem (a confirmed, half-done deletion is the worst outcome)."""
    try:
        return deletion.plan_each(crs, keep_all=keep_all, keep=keep, force=force, vm_owns=vm_owns)
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
    replan: Replan,
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
        await _confirmed_deletes(target, io, shown, ask, writing, failures, deleting, replan)
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
    replan: Replan,
) -> None:
    """Ask once for every plan shown, then delete each, adding its name to `deleting`."""
    asked = [plan for _, plan in shown]
    confirm = ask(deletion.subject(asked))
    if not writing.server and confirm is not None and not confirm(deletion.question(asked)):
        raise NotConfirmed()
    for cr, plan in shown:
        name = cr["metadata"]["name"]
        show = io.say if writing.output is Output.NAME else io.out
        again = Again(replan, show, None if writing.server else ask, io.say)
        try:
            await _delete(target, cr, plan, again, dry_run=writing.server)
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


@dataclasses.dataclass(frozen=True)
class Again:
    """What a DELETE refused with a 409 needs: `replan` (the plan of the Wukong read anew,
    None when it is being deleted already), `show` (where plans go), `ask` (as the first
    question asked; None: a server dry run, never asked), `warn` (stderr)."""

    replan: Replan
    show: Callable[[str], None]
    ask: Callable[[str], Ask | None] | None
    warn: Callable[[str], None]


async def _delete(
    target: Target,
    cr: JsonObj,
    plan: deletion.DeletePlan,
    again: Again,
    *,
    dry_run: bool = False,
) -> None:
    """Delete the Wukong as `plan` says, pinned to the version it was made from. A 409 (it
    changed since: a GitOps sync, a colleague, the operator's status) reads it again and
    plans again: the same plan goes on at the new version, a different one is shown and
    asked again (--yes: refused, nothing is deleted) (deletion audit, session 48, finding
    3: only the uid was pinned, and the operator deleted a disk the confirmed plan kept).
    Not deleted in the end (that plan declined, a DELETE refused, Ctrl-C before the DELETE
    was answered): the deleteOptions its patch wrote are taken back, while still its own
    (CLI audit, session 48; the interrupt, session 52: they stood, and a later `kubectl
    delete` went by options confirmed for this deletion only)."""
    name, first = cr["metadata"]["name"], cr
    written: JsonObj = {}  # the deleteOptions this command's patches wrote
    sent: JsonObj = {}  # ... and those of a patch sent, maybe written, not answered yet
    try:
        for _ in range(REPLANS + 1):
            try:
                await _delete_pinned(target, cr, plan, written, sent, dry_run=dry_run)
                return
            except Conflict:
                cr, plan = await _planned_again(target, cr, plan, again)
        raise CliError(
            f"{name} changed again and again after the plan was made: nothing was deleted; "
            "run the command again"
        )
    except (CliError, ApiError):
        if written:
            await _take_back(target, first, written, again.warn)
        raise
    except asyncio.CancelledError:
        # Ctrl-C (asyncio.run cancels the command's task; a second one ends it at once). A
        # patch on its way may have landed (taken back only if the Wukong holds it), and so
        # may the DELETE: a Wukong being deleted or gone keeps its options.
        mine = written | sent
        if mine and await _take_back(target, first, mine, again.warn):
            again.warn(
                f"{name} was not deleted: the deleteOptions this command wrote are taken back"
            )
        raise


async def _delete_pinned(
    target: Target,
    cr: JsonObj,
    plan: deletion.DeletePlan,
    written: JsonObj,
    sent: JsonObj,
    *,
    dry_run: bool,
) -> None:
    """The deleteOptions patch (if any) pinned to the version `plan` was made from, then the
    DELETE pinned to the uid and to the version the plan (or the patch) left. What the
    patch wrote is added to `written`; to `sent` while it is on its way."""
    name = cr["metadata"]["name"]
    version = cr["metadata"].get("resourceVersion")
    patch = deletion.options_patch(cr, plan)
    if patch is not None:
        if not dry_run:
            sent.update(plan.options)
        try:
            answer = await target.patched(name, patch, dry_run=dry_run)
        except ApiError:
            sent.clear()  # answered: not written
            raise
        if not dry_run:  # a dry run's answer is not stored: the version stays
            version = answer["metadata"].get("resourceVersion")
            written.update(plan.options)
            sent.clear()
    # The UID pins the object the plan was made for, not a new one of the same name; the
    # version pins what it was when the plan was made (or the patch's, written from it).
    await target.kube.delete(
        target.wukongs(name), uid=cr["metadata"]["uid"], resource_version=version, dry_run=dry_run
    )


async def _take_back(
    target: Target, before: JsonObj, written: JsonObj, warn: Callable[[str], None]
) -> bool:
    """Put back the deleteOptions the Wukong had before the command's patch, pinned to what
    is read (a change in between: read and judged again), as long as it holds what the patch
    wrote (`deletion.options_taken_back`). Said on stderr when that fails: a later delete,
    kubectl's too, would keep to options nobody confirmed for it. True when it put them
    back."""
    name = before["metadata"]["name"]
    why = "it keeps changing"
    for _ in range(REPLANS + 1):
        try:
            now = await target.kube.get(target.wukongs(name))
            patch = deletion.options_taken_back(before, written, now)
            if patch is not None:
                await target.patched(name, patch)
            return patch is not None
        except Conflict:
            continue
        except NotFound:
            return False  # gone: nothing holds them
        except ApiError as error:
            why = explain(error, target.server)
            break
    options = json.dumps({"deleteOptions": written}, separators=(",", ":"))
    warn(f"warning: {name} keeps {options}, which this command wrote: {why}")
    return False


async def _planned_again(
    target: Target, cr: JsonObj, plan: deletion.DeletePlan, again: Again
) -> tuple[JsonObj, deletion.DeletePlan]:
    """The Wukong read anew and its new plan, once the user (if asked) agrees to it."""
    name = cr["metadata"]["name"]
    fresh = await target.wukong(name)
    if fresh["metadata"].get("uid") != cr["metadata"]["uid"]:
        raise CliError(
            f"{name} was deleted and made again after the plan was made: nothing was "
            "deleted; run the command again"
        )
    new = await again.replan(fresh)
    if new is None:
        raise CliError(f"{deletion.already_deleting(fresh)}: it changed after the plan was made")
    new = dataclasses.replace(new, services=plan.services)
    if new.lines() == plan.lines():  # the operator wrote its status, or no visible change
        return fresh, new
    if again.ask is None:  # a server dry run: nothing to ask
        raise CliError(f"{name} changed after the plan was made: run the command again")
    again.show(f"{name} changed after the plan was made; the plan now:")
    for line in new.lines():
        again.show(line)
    confirm = again.ask(name)
    if confirm is None:  # --yes agreed to the plan shown, not to this one
        raise CliError(
            f"{name} changed after the plan was made: nothing was deleted (--yes goes on only "
            "with the plan shown first); run the command again"
        )
    if not confirm(new.question):
        raise CliError(f"{name} changed after the plan was made: not confirmed, not deleted")
    return fresh, new


def _gone(cr: JsonObj | None) -> bool | None:
    return True if cr is None else None
