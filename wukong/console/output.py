"""`-o json|yaml|wide|name` and `--dry-run` output, as kubectl prints them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

import yaml

from wukong.api import names
from wukong.console.render import age, cell, table
from wukong.console.status import HEADERS, summary_row

JsonObj = dict[str, Any]
RESOURCE = f"{names.PLURAL[:-1]}.{names.GROUP}"  # wukong.vm.novasphere.dev
WIDE = ("CPU", "MEMORY", "AGE")


class _Dumper(yaml.SafeDumper):
    """YAML as kubectl writes it: a multi-line string (cloud-init user data) as a `|` block
    that reads as the file it came from, not a quoted string with doubled newlines."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # A block cannot hold trailing spaces on a line, or some control characters: those stay
    # quoted, as PyYAML would write them.
    block = "\n" in value and not any(line != line.rstrip() for line in value.splitlines())
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if block else None)


_Dumper.add_representer(str, _text)


def to_yaml(body: Any, *, sort_keys: bool = False) -> str:
    """One YAML document without its last newline, which printing adds back (only that one:
    the newlines before it can belong to a `|` block's text)."""
    return yaml.dump(body, Dumper=_Dumper, sort_keys=sort_keys).removesuffix("\n")


class Output(StrEnum):
    """What `-o` accepts."""

    JSON = "json"
    YAML = "yaml"
    WIDE = "wide"
    NAME = "name"


class DryRun(StrEnum):
    """What `--dry-run` accepts: kubectl's values (`none` is the default: really write)."""

    NONE = "none"
    CLIENT = "client"
    SERVER = "server"


def name_of(cr: JsonObj) -> str:
    """`wukong.vm.novasphere.dev/web-1`, as `kubectl get -o name` prints it."""
    return f"{RESOURCE}/{cr['metadata']['name']}"


def _shown(obj: JsonObj) -> JsonObj:
    """The object without metadata.managedFields, which kubectl hides unless asked."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or "managedFields" not in meta:
        return obj
    return {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


def document(obj: JsonObj | Sequence[JsonObj], fmt: Output) -> str:
    """One object, or a v1 List of them, as JSON or YAML (without managedFields)."""
    body: JsonObj = (
        _shown(obj)
        if isinstance(obj, dict)
        else {"apiVersion": "v1", "kind": "List", "items": [_shown(o) for o in obj]}
    )
    if fmt is Output.JSON:
        return json.dumps(body, indent=2)
    return to_yaml(body)


def wide_row(cr: JsonObj, now: datetime) -> list[str]:
    """The status row plus CPU, MEMORY and AGE."""
    spec = cr.get("spec") or {}
    return [
        *summary_row(cr, now),
        cell(spec.get("cpu")),
        cell(spec.get("memory")),
        age(cr["metadata"].get("creationTimestamp"), now),
    ]


def rows(
    items: Sequence[JsonObj], now: datetime, *, wide: bool, namespaces: bool
) -> tuple[tuple[str, ...], list[list[str]]]:
    """Headers and rows of the status table, sorted by namespace and name."""
    ordered = sorted(
        items, key=lambda c: (c["metadata"].get("namespace", ""), c["metadata"]["name"])
    )
    headers: tuple[str, ...] = (*HEADERS, *WIDE) if wide else HEADERS
    body = [wide_row(cr, now) if wide else summary_row(cr, now) for cr in ordered]
    if namespaces:
        headers = ("NAMESPACE", *headers)
        body = [
            [cr["metadata"].get("namespace", ""), *r] for cr, r in zip(ordered, body, strict=True)
        ]
    return headers, body


def listing(
    items: Sequence[JsonObj], now: datetime, fmt: Output | None, *, namespaces: bool
) -> str:
    """The whole answer of `status` (no NAME) in the chosen format."""
    if fmt in (Output.JSON, Output.YAML):
        return document(items, fmt)
    if fmt is Output.NAME:
        return "\n".join(name_of(cr) for cr in items)
    headers, body = rows(items, now, wide=fmt is Output.WIDE, namespaces=namespaces)
    return table(headers, body)


def watch_line(
    cr: JsonObj,
    now: datetime,
    fmt: Output | None,
    *,
    namespaces: bool,
    widths: Sequence[int],
    first: bool = False,
) -> str:
    """One Wukong during `status -w`: a row aligned under the first table, or a document of
    its own (YAML: `---` before each but the `first`, as kubectl's printer does)."""
    if fmt in (Output.JSON, Output.YAML):
        return ("---\n" if fmt is Output.YAML and not first else "") + document(cr, fmt)
    if fmt is Output.NAME:
        return name_of(cr)
    _, (row,) = rows([cr], now, wide=fmt is Output.WIDE, namespaces=namespaces)
    padded = [c.ljust(w) for c, w in zip(row, widths, strict=False)]
    return "   ".join(padded).rstrip()


def widths(
    items: Sequence[JsonObj], now: datetime, fmt: Output | None, *, namespaces: bool
) -> list[int]:
    """Column widths of the table `listing` prints, for rows printed after it."""
    headers, body = rows(items, now, wide=fmt is Output.WIDE, namespaces=namespaces)
    return [max(len(str(c)) for c in column) for column in zip(headers, *body, strict=True)]


def patch_text(patch: JsonObj, fmt: Output | None) -> str:
    """A client-side dry run: the patch that would be sent, as one document that parses on
    its own (YAML starts it with `---`, so that several of them are several documents)."""
    if fmt is Output.JSON:
        return json.dumps(patch, indent=2)
    return "---\n" + to_yaml(patch, sort_keys=True)


def patches_text(patches: Sequence[JsonObj], fmt: Output | None, *, listed: bool) -> str | None:
    """A client dry run's patches as one stdout: YAML, `---` documents; JSON, the one patch
    alone, or (`listed`: a selection, or several) a v1 List, as kubectl prints several
    objects. None when there is none (and no List asked for)."""
    if fmt is Output.JSON and (listed or len(patches) > 1):
        return document(list(patches), fmt)
    if not patches:
        return None
    return "\n".join(patch_text(patch, fmt) for patch in patches)
