"""What several commands share: how a verb writes (or dry-runs), which Wukongs it acts on,
failures over a selection, pinned patches, and the operator's first answer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from wukong.api.durations import format_duration
from wukong.console import disks
from wukong.console.connect import Target
from wukong.console.errors import FAILED, OK, CliError, explain
from wukong.console.follow import wait_for
from wukong.console.invocation import Console, typed
from wukong.console.lifecycle import Outcome, running
from wukong.console.output import (
    DryRun,
    Output,
    name_of,
    patches_text,
)
from wukong.errors import ApiError, Conflict

JsonObj = dict[str, Any]
T = TypeVar("T")
ACK_SECONDS: Final = 5.0  # how long a lifecycle verb without --wait waits for the first answer
ADDRESS_SECONDS: Final = 10.0  # how long a wait that ended Running waits more for an IP


def now() -> datetime:
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
    listing = await target.listed(target.wukongs(), query={"labelSelector": selector})
    items = sorted(listing, key=lambda c: str(c["metadata"]["name"]))
    if not items:
        raise CliError(f"no Wukongs match {selector} in namespace {target.namespace}")
    return items


@dataclass
class Failures:
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
        self.io.say(f"error: {about(name, failure.message)}")

    @property
    def code(self) -> int:
        """The exit code: 1 once anything failed. Never 2: by then something was written."""
        return FAILED if self.count else OK


def about(name: str, message: str) -> str:
    """`NAME: message`, unless the message already begins with the name."""
    return message if message.startswith((f"{name} ", f"{name}:")) else f"{name}: {message}"


@dataclass
class Patches:
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


async def patch_pinned(
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
            return await target.patched(name, patch, dry_run=dry_run)
        except Conflict:
            continue  # someone wrote in between: decide again on what is there now
    raise CliError(f"{name} keeps changing under us; try again")


def quiet(_line: str) -> None:
    """Progress nobody needs to read (a short internal wait)."""


async def first_word(
    target: Target, name: str, check: Callable[[JsonObj | None], T | None], sent: JsonObj
) -> T | None:
    """What `check` makes of the Wukong once it answers, within ACK_SECONDS; None after."""
    return await _briefly(target, name, check, ACK_SECONDS, since=sent)


async def _briefly(
    target: Target,
    name: str,
    check: Callable[[JsonObj | None], T | None],
    seconds: float,
    *,
    since: JsonObj | None = None,
) -> T | None:
    """A short quiet wait: what `check` makes of the Wukong within `seconds`, None after."""
    try:
        async with asyncio.timeout(seconds):
            # wait_for's own bound is never reached: the one above ends the wait quietly.
            return await wait_for(
                target, name, check, within=2 * seconds, what="an answer", say=quiet,
                since=since,
            )  # fmt: skip
    except TimeoutError:
        return None


def silent(io: Console, name: str, namespace: str) -> None:
    """The operator said nothing in time: the change stands, and where its answer will be."""
    io.say(
        f"warning: {name}: the operator has not answered in {format_duration(ACK_SECONDS)}; "
        f"`{typed(f'status {name}', namespace)}` shows its answer when it comes"
    )


class NotConfirmed(CliError):
    """The person answered no: every Wukong shown stays."""

    def __init__(self, what: str = "nothing was deleted") -> None:
        super().__init__(f"not confirmed: {what}")


async def addressed(target: Target, name: str, result: Outcome) -> Outcome:
    """A wait that ended Running before the status had an IP follows the Wukong up to
    ADDRESS_SECONDS more for one: the address is what a user connects to next (the guest
    reports it a moment after it runs). Without one by then, what is known."""
    if not result.awaiting_address:
        return result

    def check(cr: JsonObj | None) -> Outcome | None:
        if cr is None:
            return result
        found = running(cr)
        return (
            None if found.awaiting_address else replace(found, message=result.lead + found.message)
        )

    try:
        return await _briefly(target, name, check, ADDRESS_SECONDS) or result
    except (CliError, ApiError):  # no look at it: it runs all the same
        return result
