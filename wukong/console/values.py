"""Flag values every command words alike: integers, counts, ports and choices. typer's own
checks said pydantic's words (`Input should be a valid integer, unable to parse string as an
integer`), and `create --cpu 0` and `resize --cpu 0` said two different things (CLI audit,
session 44, F17); a `parser=` from here says one thing per flag, on every command."""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import Enum
from typing import Final, TypeVar

import typer

from wukong.api.spec import MAX_CPU

_INTEGER: Final = re.compile(r"[+-]?[0-9]+")
Choice = TypeVar("Choice", bound=Enum)


def integer(text: str | int) -> int:
    """A decimal integer, as pflag reads an int flag: `8080`, `+1`, `-1`; not `1.5`, `1e3`,
    `1_0`, ` 5` or `٣` (which int() would take)."""
    if isinstance(text, int):
        return text
    if not _INTEGER.fullmatch(text):
        raise typer.BadParameter(f"{text!r} is not an integer")
    return int(text)


def counted(what: str, low: int, high: int | None = None) -> Callable[[str | int], int]:
    """A parser of an integer from `low` to `high` (None: no end), refused as `'0' is not
    <what>`."""

    def parse(text: str | int) -> int:
        value = integer(text)
        if value < low or (high is not None and value > high):
            raise typer.BadParameter(f"{text!r} is not {what}")
        return value

    return parse


vcpus: Final = counted(f"a vCPU count from 1 to {MAX_CPU}", 1, MAX_CPU)
"""--cpu of create and resize."""
port: Final = counted("a port from 1 to 65535", 1, 65535)
"""A port a Service or guest listens on (expose --port, --target-port)."""
local_port: Final = counted("a port from 0 to 65535 (0: a free one)", 0, 65535)
"""A local port to listen on (vnc --port)."""
lines: Final = counted("a number of lines: -1 (all of them), 0 or more", -1)
"""logs --tail, as kubectl's."""


def one_of(*accepted: Choice, case_sensitive: bool = True) -> Callable[[str | Choice], Choice]:
    """A parser that takes only `accepted`, and says which in their own spelling: `'wide' is
    not one of 'json', 'yaml'` (click's words), `'bogus' is not one of 'ClusterIP',
    'NodePort', 'LoadBalancer'` (click said `'clusterip'`)."""

    def parse(text: str | Choice) -> Choice:
        given = str(text.value) if isinstance(text, Enum) else text  # a default, or typed
        for choice in accepted:
            spelled = str(choice.value)
            if spelled == given or (not case_sensitive and spelled.lower() == given.lower()):
                return choice
        listed = ", ".join(repr(str(choice.value)) for choice in accepted)
        raise typer.BadParameter(f"{text!r} is not one of {listed}")

    return parse


def completing(*accepted: Enum) -> Callable[[str], list[str]]:
    """Shell completion of a choice: only what this flag takes (`stop -o <TAB>`: json, yaml),
    in its own case, or in lower case after a lower-case start (`--protocol u<TAB>`: udp,
    which the flag takes: typer keeps only words that start as typed)."""

    def complete(incomplete: str) -> list[str]:
        words = [str(choice.value) for choice in accepted]
        return [
            word if word.startswith(incomplete) else word.lower()
            for word in words
            if word.lower().startswith(incomplete.lower())
        ]

    return complete


def spelled(*accepted: Enum) -> str:
    """The metavar of a choice: `ClusterIP|NodePort|LoadBalancer`."""
    return "|".join(str(choice.value) for choice in accepted)
