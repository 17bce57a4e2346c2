"""Checks on a spec beyond what pydantic sees field by field: across fields and across edits.

The CRD's CEL rules reject most of these at the API server already; the operator checks again
(defence in depth: the CRD may be older than the operator, or CEL ratcheting may let an old
object through) and reports problems in the SpecValid condition instead of failing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from wukong.api import names
from wukong.api.guest import ACCESS_CRED_SUFFIX
from wukong.api.names import MAX_WUKONG_NAME
from wukong.api.quantity import format_bytes, parse_quantity
from wukong.api.spec import (
    ACCESS_CRED_WORDS,
    FEATURE_VOLUME_WORDS,
    LAUNCHER_VOLUME_WORDS,
    DiskSpec,
    WukongSpec,
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec: where (a wire path like spec.disks[1].size) and what to do."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def validate_spec(
    spec: WukongSpec,
    old_spec: WukongSpec | None = None,
    *,
    name: str | None = None,
    disks_made: Collection[str] = (),
) -> list[Problem]:
    """Everything wrong with `spec`, or with the edit from `old_spec` to it; [] when fine.
    `disks_made`: the disks the Wukong has already (its status' volumes), which keep a name
    only new disks may not take (`names.LAUNCHER_FEATURE_VOLUMES`)."""
    problems = [
        *_names(spec, disks_made),
        *_boot_disks(spec),
        *_networks(spec),
        *_kept_disks(spec),
    ]
    if name is not None and len(name) > MAX_WUKONG_NAME:
        problems.append(
            Problem(
                "metadata.name",
                f"'{name}' is {len(name)} characters; a Wukong name is at most "
                f"{MAX_WUKONG_NAME} because it is a label value on every child object",
            )
        )
    if name is not None:
        problems += derived_name_clashes(spec, name)
    if old_spec is not None:
        problems += _edits(spec, old_spec)
    return problems


def derived_name_clashes(spec: WukongSpec, name: str) -> list[Problem]:
    """Two entries of one Wukong whose derived names (claims, NADs, bridges, serials) would be
    the same object. Long names end in a hash of the whole name (`names.fit`), so this takes
    a hash collision; it is checked anyway, so that a clash is a clear refusal, not a mix-up."""
    derived: list[tuple[str, str, str, str]] = []  # (what, derived name, field, entry)
    for i, disk in enumerate(spec.disks):
        field = f"spec.disks[{i}].name"
        derived.append(("claim", names.disk_claim_name(name, disk.name), field, disk.name))
        derived.append(("disk serial", names.disk_serial(disk.name), field, disk.name))
    for i, net in enumerate(spec.networks):
        if net.nad_name is not None:
            continue
        field = f"spec.networks[{i}].name"
        derived.append(("NAD", names.nad_name(name, net.name), field, net.name))
        if net.bridge is None:
            derived.append(("Linux bridge", names.bridge_name(net.name), field, net.name))
    problems = []
    first: dict[tuple[str, str], str] = {}
    for what, value, field, entry in derived:
        other = first.setdefault((what, value), entry)
        if other != entry:
            clash = f"'{entry}' and '{other}' would share the {what} '{value}': rename one"
            problems.append(Problem(field, clash))
    return problems


def problems_from_error(error: ValidationError, prefix: str = "") -> list[Problem]:
    """Problems from a pydantic ValidationError, with wire paths like spec.disks[0].size."""
    problems = []
    for detail in error.errors():
        path = prefix
        for part in detail["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            else:
                path += f".{part}" if path else part
        problems.append(Problem(path or "(root)", detail["msg"].removeprefix("Value error, ")))
    return problems


def _duplicates(names: Sequence[str], kind: str, field: str) -> list[Problem]:
    return [
        Problem(
            f"{field}[{names.index(name)}].name",
            f"{kind} name '{name}' is used {count} times; give each {kind} its own name",
        )
        for name, count in Counter(names).items()
        if count > 1
    ]


def _names(spec: WukongSpec, disks_made: Collection[str]) -> list[Problem]:
    disks = [d.name for d in spec.disks]
    networks = [n.name for n in spec.networks]
    credentials = {f"{k.secret_name}{ACCESS_CRED_SUFFIX}" for k in spec.ssh_keys}
    taken = []
    for i, disk in enumerate(disks):
        if disk in names.LAUNCHER_VOLUMES:
            words = LAUNCHER_VOLUME_WORDS
        elif disk in names.LAUNCHER_FEATURE_VOLUMES and disk not in disks_made:
            words = FEATURE_VOLUME_WORDS
        elif disk in credentials:
            words = ACCESS_CRED_WORDS
        else:
            continue
        taken.append(Problem(f"spec.disks[{i}].name", f"'{disk}': {words}"))
    return (
        taken
        + _duplicates(disks, "disk", "spec.disks")
        + _duplicates(networks, "network", "spec.networks")
    )


def _boot_disks(spec: WukongSpec) -> list[Problem]:
    boots = [d.name for d in spec.disks if d.boot]
    if len(boots) <= 1:
        return []
    listed = ", ".join(f"'{n}'" for n in boots)
    return [Problem("spec.disks", f"disks {listed} all have boot: true; keep it on one disk")]


def _networks(spec: WukongSpec) -> list[Problem]:
    problems = []
    for i, net in enumerate(spec.networks):
        field = f"spec.networks[{i}]"
        if net.vlan is not None and net.bridge is None:
            problems.append(
                Problem(
                    f"{field}.vlan",
                    f"network '{net.name}' has vlan {net.vlan} but no bridge: "
                    "name the Linux bridge that carries the VLAN (e.g. bridge: br-vlan"
                    f"{net.vlan})",
                )
            )
        extras = [k for k, v in (("bridge", net.bridge), ("vlan", net.vlan), ("mtu", net.mtu)) if v]
        if net.nad_name is not None and extras:
            problems.append(
                Problem(
                    field,
                    f"network '{net.name}' uses the existing NAD '{net.nad_name}', so "
                    f"{', '.join(extras)} would be ignored: remove them, or remove nadName to "
                    "let the operator create the NAD",
                )
            )
    return problems


def _kept_disks(spec: WukongSpec) -> list[Problem]:
    if spec.delete_options is None:
        return []
    known = {d.name for d in spec.disks}
    return [
        Problem(
            f"spec.deleteOptions.preserveDisksList[{i}]",
            f"'{name}' is not a disk of this Wukong (disks: {', '.join(sorted(known))}); "
            "list only disks in spec.disks",
        )
        for i, name in enumerate(spec.delete_options.preserve_disks_list)
        if name not in known
    ]


def _edits(spec: WukongSpec, old: WukongSpec) -> list[Problem]:
    problems = []
    system = old.system_disk
    if spec.disk(system.name) is None:
        problems.append(
            Problem(
                "spec.disks",
                f"the system disk '{system.name}' was removed; the VM boots from it, so it "
                "cannot be detached: put it back (to replace it, create a new Wukong)",
            )
        )
    elif spec.disks and spec.system_disk.name != system.name:
        # A reorder made another disk the first one (the boot disk without `boot: true`): the
        # VM would boot from it at its next start, and a second edit could then remove the
        # real system disk as an ordinary one (review s23 F8).
        problems.append(
            Problem(
                "spec.disks",
                f"the system disk would change from '{system.name}' to "
                f"'{spec.system_disk.name}': the VM boots from '{system.name}'; keep it first "
                "(or mark it boot: true)",
            )
        )
    for i, disk in enumerate(spec.disks):
        before = old.disk(disk.name)
        if before is not None:
            problems += _disk_edit(f"spec.disks[{i}]", disk, before)
    return problems


def _kind(disk: DiskSpec) -> str:
    """Blank, imported (an image, which may change), cloned or made from a DataSource."""
    return "imported" if disk.source in ("registry", "http") else disk.source


def _content(disk: DiskSpec) -> str:
    """Where a disk's data comes from, in words."""
    if disk.clone_from:
        return f"a clone of {disk.clone_from}"
    if disk.data_source:
        return f"a clone of DataSource {disk.data_source}"
    return disk.image or "blank"


def _disk_edit(field: str, disk: DiskSpec, old: DiskSpec) -> list[Problem]:
    problems = []
    if parse_quantity(disk.size) < parse_quantity(old.size):
        problems.append(
            Problem(
                f"{field}.size",
                f"disk '{disk.name}' cannot shrink from {old.size} to {disk.size}: volumes can "
                f"only grow; set size back to {old.size} (= {format_bytes(old.size_bytes)}) "
                "or more",
            )
        )
    if _kind(disk) != _kind(old):
        changed = next(
            (f for f, a, b in (("cloneFrom", disk.clone_from, old.clone_from),
                               ("dataSource", disk.data_source, old.data_source)) if a or b),
            "image",
        )  # fmt: skip
        problems.append(
            Problem(
                f"{field}.{changed}",
                f"disk '{disk.name}' cannot switch from {_content(old)} to {_content(disk)}: "
                "add a new disk instead",
            )
        )
    if disk.storage_class_name != old.storage_class_name:
        problems.append(
            Problem(
                f"{field}.storageClassName",
                f"the storage class of disk '{disk.name}' cannot change from "
                f"{old.storage_class_name or '(default)'} to "
                f"{disk.storage_class_name or '(default)'}; add a new disk instead",
            )
        )
    return problems
