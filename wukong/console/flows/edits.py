"""`create`, `resize`, `attach` and `detach`: one pinned write of the spec (two for detach),
then what the operator says of it; and `expose`, a Service in front of the VM."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from wukong.adapters.kube import api_path
from wukong.api.durations import format_duration
from wukong.api.spec import DiskBus
from wukong.console import create as creation
from wukong.console import disks
from wukong.console import expose as exposing
from wukong.console import resize as resizing
from wukong.console.connect import Target, connect, kubernetes_object
from wukong.console.errors import OK, CliError
from wukong.console.flows.common import (
    JsonObj,
    NotConfirmed,
    Patches,
    Writing,
    addressed,
    first_word,
    patch_pinned,
    quiet,
    silent,
)
from wukong.console.follow import wait_for
from wukong.console.invocation import Ask, Cluster, Console
from wukong.console.lifecycle import Outcome
from wukong.console.output import (
    DryRun,
    Output,
    document,
    name_of,
)
from wukong.errors import AlreadyExists

OPTIONS_RECORDED_TIMEOUT: Final = 30.0


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
    # On stderr, so stdout stays what kubectl prints (`-o name` the name alone); not an
    # error: the exit code is the creation's.
    blank = creation.blank_system_disk(wanted)
    if writing.client:  # a manifest to keep or edit: no cluster needed
        # -n given: in the manifest too, as kubectl create --dry-run=client -o yaml -n NS.
        where = {"namespace": cluster.namespace} if cluster.namespace else {}
        shown = {**body, "metadata": {**body["metadata"], **where}}
        io.out(_printed(shown, writing.output or Output.YAML))
        io.say(f"{named} would be created (client dry run)")
        _warn(io, blank)
        return OK
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        try:
            made = await target.kube.create(target.wukongs(), body, dry_run=writing.server)
            made = kubernetes_object(made, target.wukongs())
        except AlreadyExists:
            raise CliError(
                f"wukong {wanted.name} already exists in namespace {target.namespace}"
            ) from None
        if writing.output is not None:  # the object as the API server answered, as kubectl
            io.out(_printed(made, writing.output))
        if wait is None or writing.server:
            if writing.output is None:
                io.out(f"{named} created{writing.suffix()}")
            _warn(io, blank)
            return OK
        phase = creation.wanted_phase(wanted)
        io.say(f"{named} created; waiting up to {format_duration(wait)} for it to be {phase}")
        _warn(io, blank)

        def check(cr: JsonObj | None) -> Outcome | None:
            return creation.settled(cr, phase)

        what = f"{wanted.name} to be {phase}"
        return await _until(target, io, wanted.name, check, wait, what, made)


def _warn(io: Console, warning: str | None) -> None:
    if warning is not None:
        io.say(warning)


def _printed(obj: JsonObj, output: Output) -> str:
    """`-o name|json|yaml` of one object."""
    return name_of(obj) if output is Output.NAME else document(obj, output)


async def expose(
    cluster: Cluster,
    io: Console,
    name: str,
    wanted: exposing.Exposure,
    *,
    writing: Writing = Writing(),
) -> int:
    """Create a Service, owned by the Wukong, that selects its VM's pod (`virtctl expose`)."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        cr = await target.wukong(name)
        body = exposing.service(cr, wanted)
        service = body["metadata"]["name"]
        if writing.client:
            io.out(document(body, writing.output or Output.YAML))
            io.say(f"service/{service} would be exposed (client dry run)")
            return OK
        services = api_path("", "v1", "services", target.namespace)
        try:
            made = kubernetes_object(
                await target.kube.create(services, body, dry_run=writing.server), services
            )
        except AlreadyExists:
            raise exposing.already_exists(service, target.namespace) from None
        io.out(exposing.exposed(made, name) + writing.suffix())
        if (note := exposing.not_running_note(cr)) is not None:
            io.say(note)
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
    """Change cpu or memory, grow disks, in one pinned patch; say how the operator applies
    it (live, at the next restart); with `wait`, follow until it is in effect or waits for a
    restart."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        said: list[str] = []

        def build(cr: JsonObj) -> JsonObj | None:
            patch, changes = resizing.plan(cr, wanted)
            said[:] = changes
            return patch

        if writing.client:
            cr = await target.wukong(name)
            patches = Patches(io, writing.output, several=False)
            if (patch := build(cr)) is not None:
                patches.add(cr, patch)
            patches.flush()
            return OK
        made = await patch_pinned(target, name, build, dry_run=writing.server)
        if not said:
            io.out(f"{name} already has that size: nothing to change")
            return OK
        generation = int(made["metadata"]["generation"])
        summary = f"{name} resized: {', '.join(said)} (generation {generation})"
        if writing.server:
            io.out(summary + writing.suffix())
            return OK
        if wait is None:
            first = await first_word(target, name, lambda cr: resizing.answer(cr, generation), made)
            if first is None:
                io.out(summary)
                silent(io, name, target.namespace)
            elif not first.ok:
                raise CliError(first.message)
            else:
                io.out(f"{summary}: {first.message}")
            return OK
        io.say(f"{summary}; waiting up to {format_duration(wait)}")

        def check(cr: JsonObj | None) -> Outcome | None:
            return resizing.done(cr, generation, wanted)

        return await _until(target, io, name, check, wait, f"{name} to be resized", made)


async def _until(
    target: Target,
    io: Console,
    name: str,
    check: Callable[[JsonObj | None], Outcome | None],
    within: float,
    what: str,
    since: JsonObj,
) -> int:
    """Follow the Wukong until `check` has an outcome: its line to stdout, or as the error."""
    result = await wait_for(target, name, check, within=within, what=what, say=io.say, since=since)
    if not result.ok:
        raise CliError(result.message)
    io.out((await addressed(target, name, result)).message)
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
    clone_from: str | None = None,
    data_source: str | None = None,
    wait: float | None = None,
    writing: Writing = Writing(),
) -> int:
    """Add a disk to spec.disks; the operator creates it and hot-plugs it into a running VM."""
    entry = disks.new_disk(disk, size, image, bus, clone_from, data_source)
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        if writing.client:
            cr = await target.wukong(name)
            patches = Patches(io, writing.output, several=False)
            patches.add(cr, disks.attach_patch(cr, entry))
            patches.flush()
            return OK
        await patch_pinned(
            target, name, lambda cr: disks.attach_patch(cr, entry), dry_run=writing.server
        )
        source = (
            f"from {image}"
            if image
            else f"a clone of {clone_from or f'DataSource {data_source}'}"
            if clone_from or data_source
            else "blank"
        )
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
                patches = Patches(io, writing.output, several=False)
                for patch in (options, removal):
                    if patch is not None:
                        patches.add(cr, patch)
                patches.flush()
                return OK
            for patch in (options, removal):
                if patch is not None:
                    await target.patched(name, patch, dry_run=True)
            io.out(plan.summary(name, target.namespace) + writing.suffix())
            return OK
        if not plan.keep_data:
            confirm = ask(f"PVC {plan.claim} (disk {disk} of {name})")
            if confirm is not None:
                # Shown before the question as `delete` shows its plan, and said as what a
                # yes would do: without a terminal the refusal comes next, nothing done.
                io.out(plan.proposal(name, target.namespace))
                if not confirm(f"Delete PVC {plan.claim} and the data on it?"):
                    raise NotConfirmed("nothing was detached")
        await patch_pinned(target, name, lambda cr: disks.options_patch(cr, plan))

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
            say=quiet,
            still=io.say,  # usually under a second: a slow or stopped operator is named
        )

        removed = [plan]
        confirmed = plan

        def remove(cr: JsonObj) -> JsonObj:
            """The removal, checked again on what is there now: pinned to it, so a change
            after this read fails the write and is checked again (`disks.still_in_force`)."""
            removed[0] = disks.plan_detach(cr, disk, keep_data=keep_data, force=force)
            disks.still_in_force(cr, confirmed, removed[0])
            return disks.remove_patch(cr, removed[0])

        await patch_pinned(target, name, remove)
        plan = removed[0]
        io.out(plan.summary(name, target.namespace))
        if wait is None:
            return OK
        if plan.at_restart:
            # KubeVirt unplugs only hot-plugged disks: this one leaves at the next restart,
            # which nothing here asks for, so a wait would only run out. Said, not waited for.
            io.say(f"not waiting: disk {disk} leaves {name} when it restarts")
            return OK
        what = f"disk {disk} to leave {name}"
        gone = await wait_for(
            target, name, lambda cr: disks.gone(cr, disk), within=wait, what=what, say=io.say
        )
        io.out(gone)
        return OK
