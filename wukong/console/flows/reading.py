"""`status` and `describe`, and the names completion offers: reads only."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from contextlib import aclosing
from typing import NoReturn

from wukong.adapters.kube import api_path
from wukong.adapters.kubevirt import subresource_path
from wukong.api.kinds import VMI
from wukong.api.names import vm_name
from wukong.console.connect import Target, connect, kubernetes_list
from wukong.console.describe import describe as describe_page
from wukong.console.describe import guest_section, guest_unavailable
from wukong.console.errors import OK, CliError, explain, server_words
from wukong.console.flows.common import (
    JsonObj,
    now,
)
from wukong.console.follow import CannotWatch, Cut, Expired, events
from wukong.console.invocation import Cluster, Console
from wukong.console.output import (
    Output,
    document,
    listing,
    name_of,
    to_yaml,
    watch_line,
    widths,
)
from wukong.console.reconnect import Reconnect
from wukong.console.remote import guest_vmi, running_vmi
from wukong.console.status import RUNNING, detail, phase, vmi_runs
from wukong.errors import ApiError, Forbidden


async def names(cluster: Cluster, prefix: str = "") -> list[str]:
    """The names of the namespace's Wukongs that start with `prefix`, for completion."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        return _named(await target.listed(target.wukongs()), prefix)


async def namespaces(cluster: Cluster, prefix: str = "") -> list[str]:
    """The names of the cluster's namespaces that start with `prefix`, for completion."""
    async with connect(cluster.kubeconfig, cluster.context, None) as target:
        return _named(await target.listed(api_path("", "v1", "namespaces")), prefix)


def _named(items: list[JsonObj], prefix: str) -> list[str]:
    """The sorted names of a LIST's items that start with `prefix`."""
    found = (str(item["metadata"]["name"]) for item in items)
    return sorted(name for name in found if name.startswith(prefix))


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
                io.out(listing([cr], now(), output, namespaces=False))
            else:
                io.out(detail(cr, now()))
            return OK
        query = {"labelSelector": selector} if selector else {}
        if name is not None:
            query["fieldSelector"] = f"metadata.name={name}"
        path = target.wukongs(all_namespaces=all_namespaces)
        answer = kubernetes_list(await target.kube.request("GET", path, query=query), path)
        items = answer["items"]
        if name is not None and not items:
            await target.wukong(name)  # not found, said as without -w (or it came meanwhile)
        # `-w -o json|yaml`: each Wukong its own document, the listed ones as the changes
        # after them, as `kubectl get -w` prints them (a List first was two shapes in one
        # stream: CLI audit, session 48).
        documents = watch is not None and output in (Output.JSON, Output.YAML)
        shown: dict[str, object] = {}  # uid: the resourceVersion last printed

        def show(cr: JsonObj) -> None:
            line = watch_line(
                cr, now(), output, namespaces=all_namespaces, widths=sizes, first=not shown
            )
            io.out(line)
            shown[cr["metadata"]["uid"]] = cr["metadata"].get("resourceVersion")

        sizes = widths(items, now(), output, namespaces=all_namespaces)
        if documents and items:
            for cr in items:
                show(cr)
        elif items or (output in (Output.JSON, Output.YAML) and not documents):
            io.out(listing(items, now(), output, namespaces=all_namespaces))
        else:
            where = "any namespace" if all_namespaces else f"namespace {target.namespace}"
            io.say(f"no Wukongs in {where}" + (f" match {selector}" if selector else ""))
        if watch is None:
            return OK
        version = str((answer.get("metadata") or {}).get("resourceVersion") or "")
        shown.update({cr["metadata"]["uid"]: cr["metadata"].get("resourceVersion") for cr in items})

        retry = Reconnect(target.kube, target.server, io.say)
        deadline = asyncio.timeout(None if watch == float("inf") else watch)
        try:
            async with deadline:
                await _follow_rows(target, path, query, version, shown, show, retry)
        except TimeoutError:
            if not deadline.expired():  # a read timeout is a Cut: this is no deadline's
                raise
            if (outage := retry.state()) is not None:
                # Rows may be missing: not the quiet end of a watch that saw everything.
                raise CliError(f"the watch reached its --timeout while {outage}") from None
            return OK


async def _follow_rows(
    target: Target,
    path: str,
    query: dict[str, str],
    version: str | None,
    shown: dict[str, object],
    show: Callable[[JsonObj], None],
    retry: Reconnect,
) -> NoReturn:
    """`status -w`'s changes, each through `show`, from `version` until cancelled. A broken
    or failing watch is watched again from the last version seen (`retry`'s pause after a
    failure); one too old (410) lists again first, and shows what changed meanwhile."""
    loop = asyncio.get_running_loop()
    selectors = list(query.items())
    moved = False  # an event since the last LIST
    while True:
        began, said = loop.time(), False
        try:
            if version is None:
                again = kubernetes_list(await target.kube.request("GET", path, query=query), path)
                retry.answered()
                moved = False
                for cr in again["items"]:
                    if shown.get(cr["metadata"]["uid"]) != cr["metadata"].get("resourceVersion"):
                        show(cr)
                version = str((again.get("metadata") or {}).get("resourceVersion") or "")
            stream = events(
                target, path, version, selectors, bookmarks=True, answered=retry.answered
            )
            async with aclosing(stream) as changes:
                async for kind, cr in changes:
                    said = moved = True
                    if kind != "BOOKMARK":
                        show(cr)
                    version = str(cr["metadata"].get("resourceVersion") or version)
        except Cut:
            pass  # watch again from the last version seen, as at the server's end
        except Expired:
            # Too old to watch from (a quiet selection in a busy cluster): list again, show
            # what changed meanwhile, watch from the list's version. At once if a watch
            # moved on since the last LIST; a 410 with no event since is a short watch.
            version, said = None, moved
        except CannotWatch as error:
            raise CliError(
                f"the API server refused the watch: {explain(error.error, target.server)}"
            ) from error
        except ApiError as error:
            await retry.after(error)  # raises it when asking again cannot help
            continue
        # A stream that ends at once having said nothing: watched again after a growing
        # pause, not in a loop (it was a fixed second).
        await retry.ended(began, said)


async def describe(cluster: Cluster, io: Console, name: str) -> int:
    """Print the detailed view, the guest agent's view of the guest, and the merged Event
    timeline."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        cr = await target.wukong(name)
        guest = await _guest(target, cr)
        try:
            events = await target.listed(api_path("", "v1", "events", target.namespace))
        except Forbidden as error:  # may read Wukongs, not Events: the page without them
            page = describe_page(
                cr, None, now(), why=f"forbidden: {server_words(error)}", guest=guest
            )
            io.out(page)
            return OK
        io.out(describe_page(cr, events, now(), guest=guest))
        return OK


async def agent_report(
    cluster: Cluster, io: Console, name: str, sub: str, *, yaml: bool = False
) -> int:
    """`wukong guestosinfo|userlist|fslist NAME`: virt-api's answer for the guest agent's
    `sub`, printed as virtctl prints it (JSON, two-space indent), or as YAML; a guest that
    cannot answer is one line saying why, in KubeVirt's words."""
    async with connect(cluster.kubeconfig, cluster.context, cluster.namespace) as target:
        vmi = await running_vmi(target, name, io.say)
        try:
            report = await target.kube.get(subresource_path(target.namespace, VMI.plural, vmi, sub))
        except ApiError as error:  # 500 "no agent" (virt-api's text), 403, a VMI paused...
            raise CliError(
                f"{name}: {guest_unavailable(server_words(error), error.message)}"
            ) from None
    io.out(to_yaml(report) if yaml else json.dumps(report, indent=2))
    return OK


async def _guest(target: Target, cr: JsonObj) -> list[str] | None:
    """The guest section of `describe`: what virt-api's `guestosinfo` says (None for a VM that
    does not run; the reason, in KubeVirt's words, when it cannot answer). A Wukong whose
    phase is not Running may still have a VM that runs (in Error for a disk, Stopping): its
    VMI says (access audit, session 46)."""
    name = cr["metadata"]["name"]
    if phase(cr) not in RUNNING and not vmi_runs(await guest_vmi(target, name)):
        return None  # no guest, no agent to ask
    vmi = vm_name(name)
    try:
        info = await target.kube.get(
            subresource_path(target.namespace, VMI.plural, vmi, "guestosinfo")
        )
    except ApiError as error:  # 500 "VMI does not have guest agent connected", 403, ...
        return guest_section(None, guest_unavailable(server_words(error), error.message))
    return guest_section(info)
