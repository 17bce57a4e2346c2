"""What each command does against the cluster: read, decide (pure modules), write, follow."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from wukong.adapters.kube import api_path
from wukong.api.durations import format_duration
from wukong.api.objects import being_deleted
from wukong.api.spec import DiskBus
from wukong.console import create as creation
from wukong.console import delete as deletion
from wukong.console import disks
from wukong.console import resize as resizing
from wukong.console.connect import Target, connect
from wukong.console.describe import describe as describe_page
from wukong.console.errors import FAILED, OK, CliError, explain
from wukong.console.follow import CannotWatch, Expired, events, wait_for
from wukong.console.invocation import Ask, Cluster, Console
from wukong.console.lifecycle import Outcome, Request, acknowledgement, outcome
from wukong.console.output import (
    DryRun,
    Output,
    document,
    listing,
    name_of,
    patches_text,
    watch_line,
    widths,
)
from wukong.console.status import detail
from wukong.errors import AlreadyExists, ApiError, Conflict, Forbidden

JsonObj = dict[str, Any]
T = TypeVar("T")
OPTIONS_RECORDED_TIMEOUT: Final = 30.0
ACK_SECONDS: Final = 5.0  # how long a lifecycle verb without --wait waits for the first answer


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Writing:
    """How a writing verb writes: for real, or as a client or server dry run."""

    dry_run: DryRun = DryRun.NONE
    output: Output | None = None

    @property
    def server(self) -> bool:
        """Send with dryRun=All: validated and admitted, never stored."""
        return self.dry_run is DryRun.SERVER

    @property
    def client(self) -> bool:
        """Print what would be sent; send nothing."""
        return self.dry_run is DryRun.CLIENT

    def suffix(self) -> str:
        """What to add to a result line."""
        return " (server dry run)" if self.server else ""


async def chosen(target: Target, names: Sequence[str], selector: str | None) -> list[JsonObj]:
    """The Wukongs a command acts on: the one named, or every one matching `-l`."""
    if selector is None:
        return [await target.wukong(name) for name in names]
    listing = await target.kube.request("GET", target.wukongs(), query={"labelSelector": selector})
    items = sorted(listing.get("items") or [], key=lambda c: str(c["metadata"]["name"]))
    if not items:
        raise CliError(f"no Wukongs match {selector} in namespace {target.namespace}")
    return items


async def names(cluster: Cluster, prefix: str = "") -> list[str]:
    """The names of the namespace's Wukongs that start with `prefix`, for completion."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        return _named(await target.kube.request("GET", target.wukongs()), prefix)


async def namespaces(cluster: Cluster, prefix: str = "") -> list[str]:
    """The names of the cluster's namespaces that start with `prefix`, for completion."""
    async with connect(cluster.kubeconfig, cluster.context, None) as target:
        return _named(await target.kube.request("GET", api_path("", "v1", "namespaces")), prefix)


def _named(listing: JsonObj, prefix: str) -> list[str]:
    """The sorted names in a LIST answer that start with `prefix`."""
    found = (str(item["metadata"]["name"]) for item in listing.get("items") or [])
    return sorted(name for name in found if name.startswith(prefix))


async def lifecycle(
    cluster: Cluster,
    io: Console,
    request: Request,
    names: Sequence[str],
    *,
    wait: float | None,
    selector: str | None = None,
    writing: Writing = Writing(),
) -> int:
    """Write the request to each Wukong; with `wait` (seconds), follow each until answered,
    without it until the operator took or refused it (ACK_SECONDS at most). Over a
    selection, one that fails does not stop the others (as kubectl): each failure is an
    `error: NAME: …` line, and the exit code 1 at the end."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        crs = await chosen(target, names, selector)
        failures = _Failures(io, target.server, several=selector is not None or len(crs) > 1)
        patches = _Patches(io, writing.output, several=failures.several)
        written: list[tuple[str, int, JsonObj]] = []
        for cr in crs:
            name = cr["metadata"]["name"]
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


async def _request(
    target: Target,
    io: Console,
    request: Request,
    cr: JsonObj,
    wait: float | None,
    writing: Writing,
    patches: _Patches,
) -> tuple[str, int, JsonObj] | None:
    """Write the request to one Wukong (a client dry run: show it); what a wait follows."""
    name = cr["metadata"]["name"]
    if being_deleted(cr):
        raise CliError(f"{name} is being deleted: it takes no more requests")
    if writing.client:
        patches.add(cr, request.patch())
        return None
    answer = await target.kube.merge_patch(
        target.wukongs(name), request.patch(), dry_run=writing.server
    )
    generation = int(answer["metadata"]["generation"])
    requested = _requested(request, name, generation)
    if writing.server:
        io.out(requested + writing.suffix())
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
    failures: _Failures,
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
    silent = []
    for (name, generation, _), result in zip(written, results, strict=True):
        requested = _requested(request, name, generation)
        if isinstance(result, Outcome):
            io.out(f"{requested}: {result.message}")
        elif result is None:
            io.out(requested)
            silent.append(name)
    for name in silent:
        _silent(io, name)
    for (name, _, _), result in zip(written, results, strict=True):
        if isinstance(result, CliError | ApiError):
            failures.add(name, result)


async def _acknowledgement(
    target: Target, request: Request, name: str, generation: int, sent: JsonObj
) -> Outcome | None:
    """The operator's first word on the request (CliError when it refused); None: none yet."""

    def check(cr: JsonObj | None) -> Outcome | None:
        return acknowledgement(cr, request, generation)

    result = await _first_word(target, name, check, sent)
    if result is not None and not result.ok:
        raise CliError(result.message)
    return result


async def _first_word(
    target: Target, name: str, check: Callable[[JsonObj | None], T | None], sent: JsonObj
) -> T | None:
    """What `check` makes of the Wukong once it answers, within ACK_SECONDS; None after."""
    try:
        async with asyncio.timeout(ACK_SECONDS):
            # wait_for's own bound is never reached: the one above ends the wait quietly.
            return await wait_for(
                target, name, check, within=2 * ACK_SECONDS, what="an answer", say=_quiet,
                since=sent,
            )  # fmt: skip
    except TimeoutError:
        return None


def _silent(io: Console, name: str) -> None:
    """The operator said nothing in time: the change stands, and where its answer will be."""
    io.say(
        f"warning: {name}: the operator has not answered in {format_duration(ACK_SECONDS)}; "
        f"`wukong status {name}` shows its answer when it comes"
    )


async def _answers(
    target: Target,
    io: Console,
    request: Request,
    written: Sequence[tuple[str, int, JsonObj]],
    wait: float,
    failures: _Failures,
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


@dataclass
class _Failures:
    """Failures of a command over a selection: each said at once as `error: NAME: …` while
    the others go on, as kubectl does with several objects; a named Wukong's is raised."""

    io: Console
    server: str
    several: bool
    count: int = 0

    def add(self, name: str, error: CliError | ApiError) -> None:
        """Say (or, for one named Wukong, raise) why `name` failed."""
        failure = error if isinstance(error, CliError) else CliError(explain(error, self.server))
        if not self.several:
            raise failure
        self.count += 1
        self.io.say(f"error: {_about(name, failure.message)}")

    @property
    def code(self) -> int:
        """The exit code: 1 once anything failed. Never 2: by then something was written."""
        return FAILED if self.count else OK


def _about(name: str, message: str) -> str:
    """`NAME: message`, unless the message already begins with the name."""
    return message if message.startswith((f"{name} ", f"{name}:")) else f"{name}: {message}"


@dataclass
class _Patches:
    """A client dry run's patches: the `# PATCH <object>` line to stderr as each comes, the
    patches to stdout at the end, as one document (several, with -o json: a v1 List)."""

    io: Console
    output: Output | None
    several: bool
    patches: list[JsonObj] = field(default_factory=list)

    def add(self, cr: JsonObj, patch: JsonObj) -> None:
        """One patch that would be sent to `cr`."""
        self.io.say(f"# PATCH {name_of(cr)} (dry run: nothing sent)")
        self.patches.append(patch)

    def flush(self) -> None:
        """Print what was collected (nothing, when nothing was)."""
        text = patches_text(self.patches, self.output, listed=self.several)
        if text is not None:
            self.io.out(text)


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
    return result


async def status(
    cluster: Cluster,
    io: Console,
    name: str | None,
    *,
    all_namespaces: bool,
    output: Output | None = None,
    selector: str | None = None,
    watch: float | None = None,
) -> int:
    """Print the table of every Wukong, or the detailed view of one; `watch` (seconds, or
    inf): then a line per change until then."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        if name is not None and watch is None:
            cr = await target.wukong(name)
            if output is Output.NAME:
                io.out(name_of(cr))
            elif output in (Output.JSON, Output.YAML):
                io.out(document(cr, output))
            elif output is Output.WIDE:
                io.out(listing([cr], _now(), output, namespaces=False))
            else:
                io.out(detail(cr, _now()))
            return OK
        query = {"labelSelector": selector} if selector else {}
        if name is not None:
            query["fieldSelector"] = f"metadata.name={name}"
        path = target.wukongs(all_namespaces=all_namespaces)
        answer = await target.kube.request("GET", path, query=query)
        items = answer.get("items") or []
        if name is not None and not items:
            await target.wukong(name)  # not found, said as without -w (or it came meanwhile)
        if items or output in (Output.JSON, Output.YAML):
            io.out(listing(items, _now(), output, namespaces=all_namespaces))
        else:
            where = "any namespace" if all_namespaces else f"namespace {target.namespace}"
            io.say(f"no Wukongs in {where}" + (f" match {selector}" if selector else ""))
        if watch is None:
            return OK
        version = str((answer.get("metadata") or {}).get("resourceVersion") or "")
        sizes = widths(items, _now(), output, namespaces=all_namespaces)
        if not items:
            sizes = widths([], _now(), output, namespaces=all_namespaces)
        selectors = list(query.items())
        shown = {cr["metadata"]["uid"]: cr["metadata"].get("resourceVersion") for cr in items}

        def show(cr: JsonObj) -> None:
            io.out(watch_line(cr, _now(), output, namespaces=all_namespaces, widths=sizes))
            shown[cr["metadata"]["uid"]] = cr["metadata"].get("resourceVersion")

        try:
            async with asyncio.timeout(None if watch == float("inf") else watch):
                while True:
                    began = asyncio.get_running_loop().time()
                    stream = events(target, path, version, selectors, bookmarks=True)
                    try:
                        async with aclosing(stream) as changes:
                            async for kind, cr in changes:
                                if kind != "BOOKMARK":
                                    show(cr)
                                version = str(cr["metadata"].get("resourceVersion") or version)
                    except Expired:
                        # Too old to watch from (a quiet selection in a busy cluster): list
                        # again, show what changed meanwhile, watch from the list's version.
                        again = await target.kube.request("GET", path, query=query)
                        for cr in again.get("items") or []:
                            if shown.get(cr["metadata"]["uid"]) != cr["metadata"].get(
                                "resourceVersion"
                            ):
                                show(cr)
                        version = str((again.get("metadata") or {}).get("resourceVersion") or "")
                    if asyncio.get_running_loop().time() - began < 1.0:
                        await asyncio.sleep(1.0)  # a stream that ends at once: not in a loop
        except TimeoutError:
            return OK
        except CannotWatch as error:
            raise CliError(f"the API server refused the watch ({error})") from error


async def describe(cluster: Cluster, io: Console, name: str) -> int:
    """Print the detailed view and the merged Event timeline."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        cr = await target.wukong(name)
        try:
            events = await target.kube.get(api_path("", "v1", "events", target.namespace))
        except Forbidden as error:  # may read Wukongs, not Events: the page without them
            io.out(describe_page(cr, None, _now(), why=f"forbidden: {error.message}"))
            return OK
        io.out(describe_page(cr, events.get("items") or [], _now()))
        return OK


async def _patch_pinned(
    target: Target,
    name: str,
    build: Callable[[JsonObj], JsonObj | None],
    *,
    dry_run: bool = False,
) -> JsonObj:
    """Read, build a patch pinned to what was read, write; read again on a conflict."""
    for _ in range(disks.CONFLICT_RETRIES):
        cr = await target.wukong(name)
        patch = build(cr)
        if patch is None:
            return cr
        try:
            return await target.kube.merge_patch(target.wukongs(name), patch, dry_run=dry_run)
        except Conflict:
            continue  # someone wrote in between: decide again on what is there now
    raise CliError(f"{name} keeps changing under us; try again")


async def create(
    cluster: Cluster,
    io: Console,
    wanted: creation.Wanted,
    *,
    wait: float | None = None,
    writing: Writing = Writing(),
) -> int:
    """POST a new Wukong made from flags; with `wait`, follow it until it runs (or, created
    stopped, is Stopped)."""
    body = creation.manifest(wanted)  # a bad flag is said before the cluster is reached
    named = name_of(body)
    if writing.client:  # a manifest to keep or edit: no cluster needed
        io.out(document(body, writing.output or Output.YAML))
        io.say(f"{named} would be created (client dry run)")
        return OK
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        try:
            made = await target.kube.create(target.wukongs(), body, dry_run=writing.server)
        except AlreadyExists:
            raise CliError(
                f"wukong {wanted.name} already exists in namespace {target.namespace}"
            ) from None
        if wait is None or writing.server:
            io.out(f"{named} created{writing.suffix()}")
            return OK
        phase = creation.wanted_phase(wanted)
        io.say(f"{named} created; waiting up to {format_duration(wait)} for it to be {phase}")

        def check(cr: JsonObj | None) -> tuple[bool, str] | None:
            return creation.settled(cr, phase)

        ok, message = await wait_for(
            target, wanted.name, check, within=wait, what=f"{wanted.name} to be {phase}",
            say=io.say, since=made,
        )  # fmt: skip
        if not ok:
            raise CliError(message)
        io.out(message)
        return OK


async def resize(
    cluster: Cluster,
    io: Console,
    name: str,
    wanted: resizing.Resize,
    *,
    wait: float | None = None,
    writing: Writing = Writing(),
) -> int:
    """Grow cpu, memory or disks in one pinned patch; say how the operator applies it (live,
    at the next restart); with `wait`, follow until it is in effect or waits for a restart."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        said: list[str] = []

        def build(cr: JsonObj) -> JsonObj | None:
            patch, changes = resizing.plan(cr, wanted)
            said[:] = changes
            return patch

        if writing.client:
            cr = await target.wukong(name)
            patches = _Patches(io, writing.output, several=False)
            if (patch := build(cr)) is not None:
                patches.add(cr, patch)
            patches.flush()
            return OK
        made = await _patch_pinned(target, name, build, dry_run=writing.server)
        if not said:
            io.out(f"{name} already has that size: nothing to change")
            return OK
        generation = int(made["metadata"]["generation"])
        summary = f"{name} resized: {', '.join(said)} (generation {generation})"
        if writing.server:
            io.out(summary + writing.suffix())
            return OK
        if wait is None:
            first = await _first_word(
                target, name, lambda cr: resizing.answer(cr, generation), made
            )
            if first is None:
                io.out(summary)
                _silent(io, name)
            elif not first[0]:
                raise CliError(first[1])
            else:
                io.out(f"{summary}: {first[1]}")
            return OK
        io.say(f"{summary}; waiting up to {format_duration(wait)}")
        ok, message = await wait_for(
            target, name, lambda cr: resizing.done(cr, generation, wanted), within=wait,
            what=f"{name} to be resized", say=io.say, since=made,
        )  # fmt: skip
        if not ok:
            raise CliError(message)
        io.out(message)
        return OK


async def attach(
    cluster: Cluster,
    io: Console,
    name: str,
    disk: str,
    *,
    size: str,
    image: str | None,
    bus: DiskBus | None,
    wait: float | None = None,
    writing: Writing = Writing(),
) -> int:
    """Add a disk to spec.disks; the operator creates it and hot-plugs it into a running VM."""
    entry = disks.new_disk(disk, size, image, bus)
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        if writing.client:
            cr = await target.wukong(name)
            patches = _Patches(io, writing.output, several=False)
            patches.add(cr, disks.attach_patch(cr, entry))
            patches.flush()
            return OK
        await _patch_pinned(
            target, name, lambda cr: disks.attach_patch(cr, entry), dry_run=writing.server
        )
        source = f"from {image}" if image else "blank"
        if wait is None or writing.server:
            io.out(f"disk {disk} ({size}, {source}) added to {name}{writing.suffix()}")
            return OK
        what = f"disk {disk} of {name} to be ready"
        ready = await wait_for(
            target, name, lambda cr: disks.ready(cr, disk), within=wait, what=what, say=io.say
        )
        io.out(ready)
        return OK


async def detach(
    cluster: Cluster,
    io: Console,
    name: str,
    disk: str,
    *,
    keep_data: bool,
    force: bool,
    wait: float | None = None,
    writing: Writing = Writing(),
    ask: Callable[[str], Ask | None] = lambda _who: None,
) -> int:
    """Record the detach options, wait until the operator has them, then remove the disk.
    A detach that deletes the disk's data is shown and confirmed first (`ask(who)` None:
    --yes), as `delete` is: `removevolume`, virtctl's name, never deletes a claim there."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        cr = await target.wukong(name)
        plan = disks.plan_detach(cr, disk, keep_data=keep_data, force=force)
        if writing.dry_run is not DryRun.NONE:
            options = disks.options_patch(cr, plan)
            removal = disks.remove_patch(cr, plan)
            if writing.client:
                # Two patches (the options, then the removal) are one document: a List.
                patches = _Patches(io, writing.output, several=False)
                for patch in (options, removal):
                    if patch is not None:
                        patches.add(cr, patch)
                patches.flush()
                return OK
            for patch in (options, removal):
                if patch is not None:
                    await target.kube.merge_patch(target.wukongs(name), patch, dry_run=True)
            io.out(plan.summary(name) + writing.suffix())
            return OK
        told = False
        if not plan.keep_data:
            confirm = ask(f"PVC {plan.claim} (disk {disk} of {name})")
            if confirm is not None:
                io.out(plan.summary(name))
                told = True
                if not confirm(f"Delete PVC {plan.claim} and the data on it?"):
                    raise NotConfirmed("nothing was detached")
        await _patch_pinned(target, name, lambda cr: disks.options_patch(cr, plan))

        def check(cr: JsonObj | None) -> bool | None:
            """True once the operator reports the options."""
            return disks.recorded(cr, plan)

        what = f"the operator to record the detach options of {disk}"
        await wait_for(
            target,
            name,
            check,
            within=OPTIONS_RECORDED_TIMEOUT,
            what=what,
            say=_quiet,
            still=io.say,  # usually under a second: a slow or stopped operator is named
        )

        def remove(cr: JsonObj) -> JsonObj:
            """The removal, checked again on what is there now."""
            return disks.remove_patch(
                cr, disks.plan_detach(cr, disk, keep_data=keep_data, force=force)
            )

        await _patch_pinned(target, name, remove)
        if not told:
            io.out(plan.summary(name))
        if wait is not None:
            what = f"disk {disk} to leave {name}"
            gone = await wait_for(
                target, name, lambda cr: disks.gone(cr, disk), within=wait, what=what, say=io.say
            )
            io.out(gone)
        return OK


def _quiet(_line: str) -> None:
    """Progress nobody needs to read (a short internal wait)."""


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
        failures = _Failures(io, target.server, several=selector is not None or len(crs) > 1)
        deleting = await _delete_each(target, io, crs, plans, ask, writing, failures)
        if wait is None or writing.dry_run is not DryRun.NONE:
            return failures.code
        for name in deleting:
            try:
                await wait_for(
                    target, name, _gone, within=wait, what=f"{name} to be deleted", say=io.say
                )
            except (CliError, ApiError) as error:
                failures.add(name, error)
                continue
            io.out(f"wukong {name} deleted")
        return failures.code


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
    failures: _Failures,
) -> list[str]:
    """Show every plan, ask once for all of them (as kubectl asks once for what it lists),
    delete each; the names now being deleted (to wait for). A write that fails is said and
    the others go on; a "no" deletes none."""
    patches = _Patches(io, writing.output, several=failures.several)
    deleting: list[str] = []
    shown: list[tuple[JsonObj, deletion.DeletePlan]] = []
    for cr, plan in zip(crs, plans, strict=True):
        if plan is None:
            io.say(deletion.already_deleting(cr))
            deleting.append(cr["metadata"]["name"])
        elif writing.client:
            _show_deletion(io, cr, plan, patches)
        else:
            for line in plan.lines():
                io.out(line)
            shown.append((cr, plan))
    patches.flush()
    if not shown:
        return deleting
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
        if writing.server:
            io.out(f"wukong {name} deleted (server dry run)")
        else:
            io.out(f"wukong {name} is being deleted (follow it with: wukong status {name} -w)")
    return deleting


def _show_deletion(io: Console, cr: JsonObj, plan: deletion.DeletePlan, patches: _Patches) -> None:
    """A client dry run of one deletion: the plan to stderr, so that stdout carries the
    patches alone (`-o json | jq`)."""
    for line in plan.lines():
        io.say(line)
    if (patch := deletion.options_patch(cr, plan)) is not None:
        patches.add(cr, patch)
    io.say(f"wukong {cr['metadata']['name']} would be deleted (client dry run)")


async def _delete(
    target: Target, cr: JsonObj, plan: deletion.DeletePlan, *, dry_run: bool = False
) -> None:
    name = cr["metadata"]["name"]
    patch = deletion.options_patch(cr, plan)
    if patch is not None:
        try:
            await target.kube.merge_patch(target.wukongs(name), patch, dry_run=dry_run)
        except Conflict as error:
            raise CliError(
                f"{name} changed after the plan was made: run the command again"
            ) from error
    # The UID pins the object the plan was made for, not a new one of the same name.
    await target.kube.delete(target.wukongs(name), uid=cr["metadata"]["uid"], dry_run=dry_run)


class NotConfirmed(CliError):
    """The person answered no: every Wukong shown stays."""

    def __init__(self, what: str = "nothing was deleted") -> None:
        super().__init__(f"not confirmed: {what}")


def _gone(cr: JsonObj | None) -> bool | None:
    return True if cr is None else None
