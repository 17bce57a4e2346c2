"""`wukong status`: one line per Wukong, or everything about one of them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from wukong.api import names
from wukong.api.contract import ANSWERED_APART
from wukong.api.objects import being_deleted
from wukong.api.quantity import readable_bytes
from wukong.console.render import NONE, age, cell, field, parse_time, table

JsonObj = dict[str, Any]
HEADERS: Final = ("NAME", "PHASE", "VM", "NODE", "IP", "DISKS", "READY", "LAST-ACTION")
# Volume phases that need no attention: an imported DataVolume, a bound blank PVC.
SETTLED: Final = frozenset({"Succeeded", "Bound"})


def _status(cr: JsonObj) -> JsonObj:
    return cr.get("status") or {}


# Phases with a guest running, paused or not: a VMI to connect to, an agent that may answer.
RUNNING: Final = ("Running", "Suspended")


def vmi_runs(vmi: JsonObj | None) -> bool:
    """The VMI runs, as virt-api asks of it before it serves a console, VNC, a screenshot,
    the guest agent's answers or a soft reboot (`IsRunning`: phase Running), whatever its
    Wukong's phase. Paused or not, an agent or not, a display or not: virt-api's to say, in
    its own words."""
    return vmi is not None and (vmi.get("status") or {}).get("phase") == "Running"


def phase(cr: JsonObj | None) -> str:
    """The Wukong's phase; Pending until the operator has written one."""
    return str(_status(cr or {}).get("phase") or "Pending")


# How long a Wukong may go without any status before the CLI says no operator has it: an
# operator's first pass writes one within seconds (namespaced-install audit, session 48).
UNCLAIMED_AFTER: Final = 30.0


def unclaimed(cr: JsonObj | None, now: datetime) -> str | None:
    """One line when no operator has written this Wukong's status (neither an
    observedGeneration nor a phase) UNCLAIMED_AFTER seconds after it was made: with the
    namespaced install, a Wukong of a namespace no operator watches gets no status, Event or
    finalizer, and nothing else says so. None otherwise."""
    status = _status(cr or {})
    if cr is None or status.get("observedGeneration") is not None or status.get("phase"):
        return None
    meta = cr.get("metadata") or {}
    created = parse_time(meta.get("creationTimestamp"))
    if created is None or (now - created).total_seconds() < UNCLAIMED_AFTER:
        return None
    return f"no operator has picked it up yet: is one watching namespace {meta.get('namespace')}?"


def condition(cr: JsonObj, type_: str) -> JsonObj:
    """The status condition of this type ({} when absent)."""
    return next((c for c in _status(cr).get("conditions") or [] if c.get("type") == type_), {})


def primary_ip(cr: JsonObj) -> str | None:
    """The pod network's address (the first interface), as `kubectl get` shows it."""
    for interface in _status(cr).get("interfaces") or []:
        if interface.get("ipAddress"):
            return str(interface["ipAddress"])
    return None


def running_where(cr: JsonObj) -> str:
    """`web-1 is Running on node-1 at 10.244.0.7`: what a user connecting next needs (as
    much of it as the status has)."""
    name, node, ip = cr["metadata"]["name"], _status(cr).get("nodeName"), primary_ip(cr)
    return f"{name} is Running" + (f" on {node}" if node else "") + (f" at {ip}" if ip else "")


def disks_cell(cr: JsonObj) -> str:
    """'2', or '2 (system 45.10%)' while a disk is importing or not yet usable."""
    count = len((cr.get("spec") or {}).get("disks") or [])
    busy = []
    for volume in _status(cr).get("volumes") or []:
        phase = volume.get("phase")
        if phase and phase not in SETTLED:
            busy.append(f"{volume.get('name')} {volume.get('progress') or phase}")
    return f"{count} ({', '.join(busy)})" if busy else str(count)


def _apart_answer(cr: JsonObj) -> tuple[str, JsonObj] | None:
    """(action, status.migration or status.snapshot) when the spec's request is a migrate or
    a snapshot: the operator answers those there, and leaves lifecycleState with the request
    before it."""
    asked = str(((cr.get("spec") or {}).get("lifecycleAction") or {}).get("action") or "")
    field = ANSWERED_APART.get(asked)
    answer = _status(cr).get(field) or {} if field else {}
    return (asked, answer) if answer else None


def _apart_cell(action: str, answer: JsonObj, now: datetime) -> str:
    """'migrate Running 30s', 'snapshot Succeeded 2m', 'migrate Refused 5s'."""
    refused = bool(answer.get("refusal"))
    state = "Refused" if refused else answer.get("result") or answer.get("phase")
    # Refused while an earlier one runs: startedAt is that one's, not the refusal's.
    late = refused and answer.get("result") != "Refused"
    when = NONE if late else age(answer.get("startedAt"), now)
    return " ".join(str(p) for p in (action, state or "Pending", when) if p != NONE)


def last_action_cell(cr: JsonObj, now: datetime) -> str:
    """'stop Done 2m', 'migrate Running 30s', or 'Refused' (a refused lifecycle request keeps
    the previous action's name; a migrate or snapshot is answered apart, so its refusal
    names it)."""
    apart = _apart_answer(cr)
    if apart is not None:
        return _apart_cell(*apart, now)
    life = _status(cr).get("lifecycleState") or {}
    state = life.get("state")
    if not state:
        return NONE
    if state == "Refused":
        return "Refused"
    when = age(life.get("lastActionTime"), now)
    return " ".join(str(p) for p in (life.get("lastAction"), state, when) if p and p != NONE)


def summary_row(cr: JsonObj, now: datetime) -> list[str]:
    """One row of the status table."""
    status = _status(cr)
    phase = status.get("phase")
    if being_deleted(cr) and phase != "Deleting":
        phase = f"{phase or NONE} (deleting)"
    return [
        cr["metadata"]["name"],
        cell(phase),
        cell(status.get("vmName")),
        cell(status.get("nodeName")),
        cell(primary_ip(cr)),
        disks_cell(cr),
        cell(condition(cr, "Ready").get("status")),
        last_action_cell(cr, now),
    ]


def summary_table(items: Sequence[JsonObj], now: datetime, *, namespaces: bool = False) -> str:
    """The status table, sorted by namespace and name."""
    ordered = sorted(
        items, key=lambda c: (c["metadata"].get("namespace", ""), c["metadata"]["name"])
    )
    rows = [summary_row(cr, now) for cr in ordered]
    if not namespaces:
        return table(HEADERS, rows)
    spaced = [
        [cr["metadata"].get("namespace", ""), *row] for cr, row in zip(ordered, rows, strict=True)
    ]
    return table(("NAMESPACE", *HEADERS), spaced)


def _lifecycle(cr: JsonObj, now: datetime) -> str:
    apart = _apart_answer(cr)
    if apart is not None:
        message = apart[1].get("refusal") or apart[1].get("message")
    else:
        life = _status(cr).get("lifecycleState") or {}
        if not life.get("state"):
            return NONE
        message = life.get("message")
    text = last_action_cell(cr, now)
    return f"{text}: {message}" if message else text


def _deletion(cr: JsonObj) -> list[str]:
    deletion = _status(cr).get("deletion") or {}
    if not being_deleted(cr) and not deletion:
        return []
    finalizers = cr["metadata"].get("finalizers") or []
    if being_deleted(cr) and names.FINALIZER not in finalizers and finalizers:
        # The operator is done (it writes no last status before letting go): what the
        # status still says of its steps is stale; someone else's finalizer holds it now.
        return [
            field("Deleting", "done by Wukong"),
            field("Why", "waiting for other finalizers: " + ", ".join(finalizers)),
        ]
    lines = [field("Deleting", deletion.get("step") or "requested")]
    for label, key in (("Remaining", "remaining"), ("Kept", "kept")):
        if deletion.get(key):
            lines.append(field(label, ", ".join(deletion[key])))
    if deletion.get("message"):
        lines.append(field("Why", deletion["message"]))
    return lines


def _words(*parts: object) -> str:
    """The parts there are, spaced: a request refused before its object was made has no
    name (it read "- Refused", the dash taken for a name)."""
    return " ".join(str(part) for part in parts if part)


def _migration(cr: JsonObj) -> list[str]:
    migration = _status(cr).get("migration") or {}
    if not migration:
        return []
    route = " → ".join(
        str(n) for n in (migration.get("sourceNode"), migration.get("targetNode")) if n
    )
    where = f" {route}" if route else ""
    state = migration.get("result") or migration.get("phase") or "requested"
    # "Last": a later request (a restart) leaves it in the status; it answers the last
    # migrate, not what happens now (session 46: "Migration: Refused" after a restart).
    lines = [field("Last migration", _words(migration.get("name"), f"{state}{where}"))]
    if migration.get("refusal"):
        lines.append(field("Refused", migration["refusal"]))
    return lines


def _snapshot(cr: JsonObj) -> list[str]:
    """'Last snapshot: before-upgrade Succeeded (ready)', what it left out, a refusal."""
    shot = _status(cr).get("snapshot") or {}
    if not shot:
        return []
    state = shot.get("result") or shot.get("phase") or "requested"
    ready = " (ready)" if shot.get("readyToUse") else ""
    lines = [field("Last snapshot", _words(shot.get("name"), f"{state}{ready}"))]
    if shot.get("leftOut"):
        lines.append(field("Left out", ", ".join(shot["leftOut"])))
    if shot.get("refusal"):
        lines.append(field("Refused", shot["refusal"]))
    return lines


def _restore(cr: JsonObj) -> list[str]:
    """'Last restore: web-1-restore-ab12 from good Restoring', KubeVirt's words while it runs
    or once it failed, a refusal."""
    back = _status(cr).get("restore") or {}
    if not back:
        return []
    state = back.get("result") or back.get("phase") or "requested"
    source = f"from {back['snapshot']}" if back.get("snapshot") else None
    lines = [field("Last restore", _words(back.get("name"), source, state))]
    if back.get("refusal"):
        lines.append(field("Refused", back["refusal"]))
    elif back.get("result") != "Succeeded" and back.get("message"):
        lines.append(field("Why", back["message"]))
    return lines


def _unmade(cr: JsonObj, reported: set[Any]) -> list[list[object]]:
    """Disks of the spec the status does not report yet: the operator plans disks only once
    the spec is valid and the networks are ready, and `Disks: <none>` hid them."""
    if being_deleted(cr):
        return []  # the teardown reports what it removes
    if condition(cr, "SpecValid").get("status") == "False":
        why = "not made: the spec is invalid (SpecValid)"
    elif condition(cr, "NetworksConfigured").get("status") == "False":
        why = "not made yet: waiting for the networks (NetworksConfigured)"
    else:
        why = "not made yet"
    name = cr["metadata"]["name"]
    rows: list[list[object]] = []
    for disk in (cr.get("spec") or {}).get("disks") or []:
        if (what := disk.get("name")) not in reported:
            claim = names.disk_claim_name(name, str(what))
            rows.append([what, claim, disk.get("size"), None, None, None, "no", why])
    return rows


def _section(title: str, headers: Sequence[str], rows: list[list[object]]) -> list[str]:
    if not rows:
        return [f"{title}: <none>"]
    return [f"{title}:", table(headers, rows, indent="  ")]


def detail(cr: JsonObj, now: datetime) -> str:
    """Everything `status NAME` shows: identity, run state, disks, conditions, history."""
    meta, status = cr["metadata"], _status(cr)
    ready = condition(cr, "Ready")
    lines = [
        field("Name", meta["name"]),
        field("Namespace", meta.get("namespace")),
        field("Phase", status.get("phase")),
        field("VM", status.get("vmName")),
        field("Node", status.get("nodeName")),
        field("Ready", " ".join(str(ready[k]) for k in ("status", "reason") if ready.get(k))),
        field("Last action", _lifecycle(cr, now)),
        field("Age", age(meta.get("creationTimestamp"), now)),
        *([claim[0].upper() + claim[1:]] if (claim := unclaimed(cr, now)) else []),
        *_migration(cr),
        *_snapshot(cr),
        *_restore(cr),
        *_deletion(cr),
    ]
    interfaces = [
        [i.get("name"), ", ".join(i.get("ipAddresses") or []) or i.get("ipAddress"), i.get("mac")]
        for i in status.get("interfaces") or []
    ]
    lines += _section("Interfaces", ("NAME", "IP", "MAC"), interfaces)
    volumes: list[list[object]] = [
        [
            v.get("name"),
            v.get("pvcName"),
            v.get("size"),
            readable_bytes(v.get("capacity")),
            v.get("phase"),
            v.get("progress"),
            "yes" if v.get("attached") else "no",
            v.get("message"),
        ]
        for v in status.get("volumes") or []
    ]
    volumes += _unmade(cr, {v.get("name") for v in status.get("volumes") or []})
    headers = ("NAME", "PVC", "SIZE", "CAPACITY", "PHASE", "PROGRESS", "ATTACHED", "MESSAGE")
    lines += _section("Disks", headers, volumes)
    conditions: list[list[object]] = [
        [
            c.get("type"),
            c.get("status"),
            c.get("reason"),
            age(c.get("lastTransitionTime"), now),
            c.get("message"),
        ]
        for c in status.get("conditions") or []
    ]
    lines += _section("Conditions", ("TYPE", "STATUS", "REASON", "AGE", "MESSAGE"), conditions)
    history: list[list[object]] = [
        [age(h.get("time"), now), h.get("from"), h.get("to"), h.get("reason")]
        for h in status.get("history") or []
    ]
    lines += _section("History", ("AGE", "FROM", "TO", "REASON"), history)
    return "\n".join(lines)
