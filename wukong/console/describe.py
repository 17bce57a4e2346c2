"""`wukong describe`: the status view, what the guest agent says of the guest, and one
timeline of the Events of the Wukong and of everything it owns (VM, VMI, DataVolumes, PVCs,
the last migration, snapshot and restore), as a person debugging it wants to read them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from wukong.api import names
from wukong.console.render import NONE, age, field, parse_time, table
from wukong.console.status import detail

JsonObj = dict[str, Any]
SHORT_KIND: Final = {
    "Wukong": "wukong",
    "VirtualMachine": "vm",
    "VirtualMachineInstance": "vmi",
    "DataVolume": "dv",
    "PersistentVolumeClaim": "pvc",
    "VirtualMachineInstanceMigration": "vmim",
    "VirtualMachineSnapshot": "vmsnapshot",
    "VirtualMachineRestore": "vmrestore",
}
_EPOCH: Final = datetime.min.replace(tzinfo=UTC)


def related(cr: JsonObj) -> set[tuple[str, str]]:
    """(kind, name) of the Wukong and of every child whose Events belong to its story."""
    name = cr["metadata"]["name"]
    vm = names.vm_name(name)
    refs = {("Wukong", name), ("VirtualMachine", vm), ("VirtualMachineInstance", vm)}
    disks = [d.get("name") for d in (cr.get("spec") or {}).get("disks") or []]
    volumes = (cr.get("status") or {}).get("volumes") or []
    claims = {names.disk_claim_name(name, str(d)) for d in disks if d}
    claims |= {str(v["pvcName"]) for v in volumes if v.get("pvcName")}
    for claim in claims:
        refs |= {("DataVolume", claim), ("PersistentVolumeClaim", claim)}
    # KubeVirt's side of the last migrate, snapshot and restore (its errors, its progress).
    status = cr.get("status") or {}
    for kind, key in (
        ("VirtualMachineInstanceMigration", "migration"),
        ("VirtualMachineSnapshot", "snapshot"),
        ("VirtualMachineRestore", "restore"),
    ):
        if done := (status.get(key) or {}).get("name"):
            refs.add((kind, str(done)))
    return refs


def event_time(event: JsonObj) -> datetime | None:
    """When an Event last happened, from whichever field its reporter filled in."""
    series = event.get("series") or {}
    for text in (
        event.get("lastTimestamp"),
        series.get("lastObservedTime"),
        event.get("eventTime"),
        event.get("firstTimestamp"),
        (event.get("metadata") or {}).get("creationTimestamp"),
    ):
        when = parse_time(text)
        if when is not None:
            return when
    return None


def timeline(cr: JsonObj, events: Iterable[JsonObj]) -> list[JsonObj]:
    """The Events about the Wukong and its children, oldest first."""
    refs, uid = related(cr), cr["metadata"].get("uid")
    born = parse_time(cr["metadata"].get("creationTimestamp"))
    chosen = []
    for event in events:
        involved = event.get("involvedObject") or {}
        kind, name = involved.get("kind"), involved.get("name")
        if (kind, name) not in refs:
            continue
        # An earlier Wukong with the same name (another UID) is another story.
        if kind == "Wukong" and uid and involved.get("uid") not in (None, "", uid):
            continue
        # Nor are its children's Events from before this Wukong was made (their UIDs are not
        # in its status to tell them apart): the VM of a Wukong deleted and made again.
        when = event_time(event)
        if born is not None and when is not None and when < born:
            continue
        chosen.append(event)
    return sorted(chosen, key=_order)


def _order(event: JsonObj) -> tuple[datetime, int]:
    # Event times have whole seconds; within one second, etcd's revision (the
    # resourceVersion, opaque but increasing in practice) keeps the order they were written.
    version = str((event.get("metadata") or {}).get("resourceVersion") or "")
    return event_time(event) or _EPOCH, int(version) if version.isdigit() else 0


def _seen(event: JsonObj, now: datetime) -> str:
    last = age(event_time(event), now)
    count = int(event.get("count") or (event.get("series") or {}).get("count") or 1)
    if count <= 1:
        return last
    first = age(event.get("firstTimestamp"), now)
    return f"{last} (x{count} over {first})" if first != NONE else f"{last} (x{count})"


def events_table(events: Sequence[JsonObj], now: datetime) -> str:
    """The merged timeline as kubectl-describe-style rows."""
    if not events:
        return "Events: <none>"
    rows: list[list[object]] = []
    for event in events:
        involved = event.get("involvedObject") or {}
        kind = str(involved.get("kind"))
        rows.append(
            [
                _seen(event, now),
                event.get("type"),
                event.get("reason"),
                f"{SHORT_KIND.get(kind, kind.lower())}/{involved.get('name')}",
                " ".join(str(event.get("message") or "").split()),
            ]
        )
    return "Events:\n" + table(("LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"), rows, "  ")


FULL_AT: Final = 0.9  # a filesystem this full is called out: a guest's commonest trouble


def _gib(count: int) -> str:
    return f"{count / 2**30:.1f}Gi"


def guest_section(info: JsonObj | None, why: str = "") -> list[str]:
    """The guest as its agent reports it (virt-api's `guestosinfo`): OS, kernel, hostname,
    logged-in users, and each filesystem's use, a nearly full one marked. `info` None:
    `why` it cannot be said (no agent, not running, forbidden)."""
    if info is None:
        return [field("Guest", f"<{why}>")]
    os_info = info.get("os") or {}
    what = [
        str(os_info.get("prettyName") or os_info.get("name") or "unknown OS"),
        *([f"kernel {os_info['kernelRelease']}"] if os_info.get("kernelRelease") else []),
        *([f"hostname {info['hostname']}"] if info.get("hostname") else []),
    ]
    users = sorted({str(u.get("userName")) for u in info.get("userList") or [] if u})
    lines = [field("Guest", ", ".join(what)), field("Logged in", ", ".join(users))]
    rows: list[list[object]] = []
    for fs in (info.get("fsInfo") or {}).get("disks") or []:
        used, total = int(fs.get("usedBytes") or 0), int(fs.get("totalBytes") or 0)
        share = used / total if total else 0.0
        full = " (nearly full)" if share >= FULL_AT else ""
        rows.append(
            [
                fs.get("mountPoint"),
                fs.get("fileSystemType"),
                fs.get("diskName"),
                _gib(used),
                _gib(total),
                f"{share:.0%}{full}",
            ]
        )
    if rows:
        headers = ("MOUNT", "TYPE", "DEVICE", "USED", "SIZE", "USE")
        lines += ["Filesystems:", table(headers, rows, indent="  ")]
    return lines


NO_AGENT: Final = "VMI does not have guest agent connected"  # virt-api's 500 text (subresource.go)


def guest_unavailable(message: str, whole: str = "") -> str:
    """Why the guest section is empty, from virt-api's answer: no agent is the usual case,
    and it says what to do; anything else in the server's own words (`message`, as
    `server_words` shortens it). `whole`: the answer's body before that, where virt-api's
    words are looked for: a plain-text answer over 200 characters lost them in the cut."""
    if NO_AGENT in (whole or message):
        return (
            "no guest agent connected: with qemu-guest-agent in the guest, KubeVirt reports "
            "its OS, users and filesystems"
        )
    return f"unavailable: {message}"


def describe(
    cr: JsonObj,
    events: Iterable[JsonObj] | None,
    now: datetime,
    *,
    why: str = "",
    guest: list[str] | None = None,
) -> str:
    """The whole `describe` page; `events` None: they could not be read (`why`), and the page
    says so instead of failing, as kubectl describe does. `guest`: the guest section's lines
    (none for a VM that does not run)."""
    head = "\n".join([detail(cr, now), *(guest or [])])
    if events is None:
        return f"{head}\nEvents: <unavailable: {why}>"
    return f"{head}\n{events_table(timeline(cr, events), now)}"
