"""Lifecycle verbs: write a fresh request to each Wukong, then read the operator's first
answer, or with --wait its last."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from wukong.adapters.kube import api_path
from wukong.adapters.kubevirt import subresource_path
from wukong.api.durations import format_duration
from wukong.api.kinds import MIGRATION, SNAPSHOT, VMI
from wukong.api.names import LABEL_WUKONG, vm_name
from wukong.api.objects import being_deleted
from wukong.api.spec import Action
from wukong.console.connect import Target, connect
from wukong.console.errors import OK, CliError, server_words, usage
from wukong.console.flows.common import (
    Failures,
    JsonObj,
    NotConfirmed,
    Patches,
    Writing,
    addressed,
    chosen,
    first_word,
    silent,
)
from wukong.console.follow import wait_for
from wukong.console.invocation import Ask, Cluster, Console
from wukong.console.lifecycle import (
    ASK_THE_VMI,
    Outcome,
    Request,
    acknowledgement,
    cancel_outcome,
    migration_to_cancel,
    outcome,
    snapshot_choices,
    soft_reboot_refusal,
)
from wukong.console.output import (
    DryRun,
)
from wukong.console.remote import guest_vmi, runs_all_the_same
from wukong.console.status import RUNNING, phase
from wukong.errors import ApiError, Conflict, Forbidden, ServerError


async def lifecycle(
    cluster: Cluster,
    io: Console,
    request: Request,
    names: Sequence[str],
    *,
    wait: float | None,
    selector: str | None = None,
    writing: Writing = Writing(),
    ask: Callable[[str], Ask | None] = lambda _who: None,
) -> int:
    """Write the request to each Wukong; with `wait` (seconds), follow each until answered,
    without it until the operator took or refused it (ACK_SECONDS at most). Over a
    selection, one that fails does not stop the others (as kubectl): each failure is an
    `error: NAME: …` line, and the exit code 1 at the end. A restore, which throws away
    what was written to the disks since the snapshot, is shown and confirmed first (`ask`,
    as `delete` and `detach` are)."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        crs = await chosen(target, names, selector)
        failures = Failures(io, target.server, several=selector is not None or len(crs) > 1)
        patches = Patches(io, writing.output, several=failures.several)
        written: list[tuple[str, int, JsonObj]] = []
        for cr in crs:
            name = cr["metadata"]["name"]
            if request.action is Action.RESTORE and writing.dry_run is DryRun.NONE:
                _confirm_restore(io, cr, request, ask, target.namespace)
            try:
                sent = await _request(target, io, request, cr, wait, writing, patches)
            except (CliError, ApiError) as error:
                failures.add(name, error)
                continue
            if sent is not None:
                written.append(sent)
        patches.flush()
        if writing.dry_run is DryRun.NONE:
            if wait is None:
                await _acknowledged(target, io, request, written, failures)
            else:
                await _answers(target, io, request, written, wait, failures)
        return failures.code


def _confirm_restore(
    io: Console, cr: JsonObj, request: Request, ask: Callable[[str], Ask | None], namespace: str
) -> None:
    """Show what a restore would throw away and ask (nothing asked with --yes; refused
    without a terminal). Found by a CLI audit (session 41): `delete` and `detach` asked, a
    restore, which loses as much, did not."""
    name, snapshot = cr["metadata"]["name"], request.snapshot_name
    confirm = ask(f"what was written to the disks of {name} since snapshot {snapshot}")
    if confirm is None:
        return
    runs = phase(cr) in RUNNING
    io.out(
        f"restoring {name} from snapshot {snapshot} puts its disks back as the snapshot holds "
        "them: what was written to them since is lost"
        + (f"; {name} runs: it is stopped first and started again after" if runs else "")
    )
    if not confirm(f"Restore the disks of {name} from snapshot {snapshot}?"):
        raise NotConfirmed("nothing was restored")


async def _request(
    target: Target,
    io: Console,
    request: Request,
    cr: JsonObj,
    wait: float | None,
    writing: Writing,
    patches: Patches,
) -> tuple[str, int, JsonObj] | None:
    """Write the request to one Wukong (a client dry run: show it); what a wait follows."""
    name = cr["metadata"]["name"]
    if being_deleted(cr):
        raise CliError(f"{name} is being deleted: it takes no more requests")
    if writing.client:
        patches.add(cr, request.patch())
        return None
    answer = await target.patched(name, request.patch(), dry_run=writing.server)
    generation = int(answer["metadata"]["generation"])
    requested = _requested(request, name, generation)
    if writing.server:
        # Not virtctl's dry run, which virt-api checks against the VM's state: here the API
        # server validates and admits the patch, and the operator, which answers a request
        # only once it is written, never sees it (CLI audit, session 41). No generation: none
        # was stored.
        io.out(
            f"{request.action.value} for {name} passes the API server's validation; the "
            "operator answers it only once written" + writing.suffix()
        )
    elif wait is not None:  # the answer is the result; this says the wait has begun, and how long
        io.say(f"{requested}; waiting up to {format_duration(wait)}")
    return name, generation, answer


def _requested(request: Request, name: str, generation: int) -> str:
    return f"{request.action.value} requested for {name} (generation {generation})"


async def _acknowledged(
    target: Target,
    io: Console,
    request: Request,
    written: Sequence[tuple[str, int, JsonObj]],
    failures: Failures,
) -> None:
    """Without --wait: the operator's first word on each request (a few tens of ms when it
    runs), so a refusal is an error at once, as virtctl's are. No word within ACK_SECONDS
    (the operator down or busy) is said as such: the request stands, exit 0."""
    results = await asyncio.gather(
        *(_acknowledgement(target, request, name, gen, sent) for name, gen, sent in written),
        return_exceptions=True,
    )
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, CliError | ApiError):
            raise result  # a bug, not an answer
    unanswered = []
    for (name, generation, _), result in zip(written, results, strict=True):
        requested = _requested(request, name, generation)
        if isinstance(result, Outcome):
            io.out(f"{requested}: {result.message}")
        elif result is None:
            io.out(requested)
            unanswered.append(name)
    for name in unanswered:
        silent(io, name, target.namespace)
    for (name, _, _), result in zip(written, results, strict=True):
        if isinstance(result, CliError | ApiError):
            failures.add(name, result)


async def _acknowledgement(
    target: Target, request: Request, name: str, generation: int, sent: JsonObj
) -> Outcome | None:
    """The operator's first word on the request (CliError when it refused); None: none yet."""

    def check(cr: JsonObj | None) -> Outcome | None:
        return acknowledgement(cr, request, generation)

    result = await first_word(target, name, check, sent)
    if result is not None and not result.ok:
        raise CliError(result.message)
    return result


async def _answers(
    target: Target,
    io: Console,
    request: Request,
    written: Sequence[tuple[str, int, JsonObj]],
    wait: float,
    failures: Failures,
) -> None:
    """Follow every written Wukong at once; results to stdout, then each failure."""
    results = await asyncio.gather(
        *(_answer(target, io, request, name, gen, wait, sent) for name, gen, sent in written),
        return_exceptions=True,
    )
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, CliError | ApiError):
            raise result  # a bug, not an answer
    for result in results:
        if isinstance(result, Outcome):
            io.out(result.message)
    for (name, _, _), result in zip(written, results, strict=True):
        if isinstance(result, CliError | ApiError):
            failures.add(name, result)


async def _answer(
    target: Target,
    io: Console,
    request: Request,
    name: str,
    generation: int,
    within: float,
    sent: JsonObj,
) -> Outcome:
    """Follow one Wukong until it answers the request; `sent` is the Wukong as our patch left
    it, so the first line says where it came from ("Running -> Stopping") even when the
    operator has moved on before the first look."""
    verb = request.action.value

    def check(cr: JsonObj | None) -> Outcome | None:
        """The request's outcome, once answered."""
        return outcome(cr, request, generation)

    result = await wait_for(
        target, name, check, within=within, what=f"{name} to {verb}", say=io.say, since=sent
    )
    if not result.ok:
        raise CliError(result.message)
    return await addressed(target, name, result)


async def snapshots_to_restore(cluster: Cluster, name: str) -> int:
    """`restore` without --snapshot-name: a usage error naming the snapshots of `name` that
    --snapshot-name takes (one LIST, by the Wukong's label), or how to take one."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        await target.wukong(name)  # one that does not exist says so first
        path = api_path(SNAPSHOT.group, SNAPSHOT.version, SNAPSHOT.plural, target.namespace)
        query = {"labelSelector": f"{LABEL_WUKONG}={name}"}
        try:
            found = await target.listed(path, query=query)
        except Forbidden:  # a user who may not list snapshots gets the plain usage error
            raise usage("restore needs --snapshot-name: the snapshot to restore") from None
        now = datetime.now(UTC)
        raise usage(snapshot_choices(name, target.namespace, found, now))


async def migrate_cancel(cluster: Cluster, io: Console, name: str, *, wait: float | None) -> int:
    """Delete the running migration's object, as `virtctl migrate-cancel` does: KubeVirt
    aborts it and the VM stays where it was; the operator reports it ended. With `wait`,
    follow status.migration until it says how it ended."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        cr = await target.wukong(name)
        kind = MIGRATION
        path = api_path(kind.group, kind.version, kind.plural, target.namespace)
        try:
            migration = migration_to_cancel(cr)
        except CliError:
            theirs = await _kubevirts_migration(target, path, vm_name(name))
            if theirs is None:
                raise
            object_name = theirs["metadata"]["name"]
            await _delete_migration(target, path, object_name, theirs["metadata"].get("uid"))
            io.out(
                f"migration {object_name} of {name} cancelled: KubeVirt aborts it (started "
                "outside Wukong, by a node drain, a workload update or virtctl: "
                + ("not followed" if wait is not None else "status.migration does not show it")
                + ")"
            )
            return OK
        object_name = str(migration["name"])
        await _delete_migration(target, path, object_name, migration.get("uid"))
        if wait is None:
            io.out(f"migration {object_name} of {name} cancelled: KubeVirt aborts it")
            return OK
        waiting = f"waiting up to {format_duration(wait)}"
        io.say(f"cancelling migration {object_name} of {name}; {waiting}")

        def check(cr: JsonObj | None) -> Outcome | None:
            return cancel_outcome(name, object_name, cr)

        ended = await wait_for(
            target, name, check, within=wait, what=f"migration {object_name} to end", say=io.say
        )
        if not ended.ok:
            raise CliError(ended.message)
        io.out(ended.message)
        return OK


async def _delete_migration(target: Target, path: str, name: str, uid: object) -> None:
    """Delete a migration object with the user's own rights, as virtctl does. KubeVirt v1.7
    gives create and delete on migrations to its `kubevirt.io:migrate` role only, not to
    edit or admin (rbac/cluster.go): a Wukong editor may start one (the operator makes it)
    but not cancel it, and got a bare 403 (found by a source audit, session 42)."""
    try:
        await target.kube.delete(f"{path}/{name}", uid=uid if isinstance(uid, str) else None)
    except Forbidden as exc:
        raise CliError(
            f"you may not cancel migration {name} in namespace {target.namespace}: KubeVirt "
            "gives deleting migrations to its kubevirt.io:migrate role, not to edit or admin; "
            f"ask an administrator for it ({server_words(exc)})"
        ) from exc


async def _kubevirts_migration(target: Target, path: str, vmi: str) -> JsonObj | None:
    """A migration of the VMI not asked through Wukong and not ended: KubeVirt's own (a node
    drain, a workload update) or virtctl's. Found as virtctl's migrate-cancel finds one, by
    KubeVirt's label `kubevirt.io/vmi-name`; the Wukong's status.migration follows only its
    own (CLI audit, session 41: `migrate-cancel` said "no migration is running")."""
    query = {"labelSelector": f"kubevirt.io/vmi-name={vmi}"}
    try:
        listed = await target.listed(path, query=query)
    except Forbidden:  # not the user's to list: the Wukong's own answer stands
        return None
    running = [
        m
        for m in listed
        if (m.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        and not being_deleted(m)
    ]
    return min(running, key=lambda m: m["metadata"].get("creationTimestamp", ""), default=None)


async def soft_reboot(
    cluster: Cluster, io: Console, names: Sequence[str], *, selector: str | None = None
) -> int:
    """Ask KubeVirt to reboot each guest in place, as `virtctl soft-reboot` does: through the
    guest agent, else the ACPI button. The VM keeps its pod, node and address; KubeVirt
    records a `SoftRebooted` Event on the VMI and reports no end, so there is nothing to
    wait for. Over a selection, one refused does not stop the others."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        crs = await chosen(target, names, selector)
        failures = Failures(io, target.server, several=selector is not None or len(crs) > 1)
        for cr in crs:
            name = cr["metadata"]["name"]
            try:
                await _soft_reboot(target, io, cr)
            except (CliError, ApiError) as error:
                failures.add(name, error)
                continue
            io.out(f"{name} is rebooting in place (same pod, node and address)")
        return failures.code


async def _soft_reboot(target: Target, io: Console, cr: JsonObj) -> None:
    name = cr["metadata"]["name"]
    asks = phase(cr) not in ASK_THE_VMI and not being_deleted(cr)
    vmi = await guest_vmi(target, name) if asks else None
    refusal = soft_reboot_refusal(cr, vmi)
    if refusal is not None:
        raise CliError(refusal)
    if vmi is not None and (note := runs_all_the_same(name, target.namespace, cr)):
        io.say(note)
    path = subresource_path(target.namespace, VMI.plural, vm_name(name), "softreboot")
    try:
        await target.kube.request("PUT", path)
    except (Conflict, ServerError) as error:
        # virt-api's own refusals (no agent and no ACPI, paused meanwhile) and the node's
        # failures; a transport failure keeps the connection's own words.
        if error.status == 0:
            raise
        raise CliError(f"cannot soft-reboot {name}: {server_words(error)}") from error
