"""Small readers and writers of KubeVirt/CDI object fields, free of I/O."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Any

from ._kube import JsonObj

FINAL_PHASES = ("Succeeded", "Failed")
VM_CONTROLLER_FINALIZER = "kubevirt.io/virtualMachineControllerFinalize"
VMI_FINALIZER = "foregroundDeleteVirtualMachine"
DEFAULT_GRACE_SECONDS = 30


def now_iso() -> str:
    """metav1.Time as the API server writes it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(obj: JsonObj) -> JsonObj:
    """metadata, never None."""
    got: JsonObj = obj.setdefault("metadata", {})
    return got


def annotation(obj: JsonObj | None, key: str) -> str | None:
    """One annotation value, or None."""
    if obj is None:
        return None
    value = (obj.get("metadata", {}).get("annotations") or {}).get(key)
    return None if value is None else str(value)


def flag(key: str, *objs: JsonObj | None) -> bool:
    """True when any of the objects carries annotation `key: "true"`."""
    return any(annotation(o, key) == "true" for o in objs)


def deleting(obj: JsonObj | None) -> bool:
    """Has a deletionTimestamp."""
    return obj is not None and bool(obj.get("metadata", {}).get("deletionTimestamp"))


def phase(obj: JsonObj | None) -> str:
    """status.phase or ""."""
    return "" if obj is None else str((obj.get("status") or {}).get("phase", ""))


def is_final(vmi: JsonObj | None) -> bool:
    """VMI phase Succeeded or Failed."""
    return phase(vmi) in FINAL_PHASES


def conditions(obj: JsonObj | None) -> list[JsonObj]:
    """status.conditions, never None."""
    if obj is None:
        return []
    return list((obj.get("status") or {}).get("conditions") or [])


def condition(obj: JsonObj | None, ctype: str) -> JsonObj | None:
    """The condition of that type, or None."""
    return next((c for c in conditions(obj) if c.get("type") == ctype), None)


def condition_true(obj: JsonObj | None, ctype: str) -> bool:
    """The condition exists with status "True"."""
    cond = condition(obj, ctype)
    return cond is not None and cond.get("status") == "True"


def set_condition(
    conds: list[JsonObj], ctype: str, status: str, reason: str = "", message: str = ""
) -> list[JsonObj]:
    """Upsert a condition, keeping lastTransitionTime when the status did not change."""
    old = next((c for c in conds if c.get("type") == ctype), None)
    new: JsonObj = {"type": ctype, "status": status, "lastProbeTime": None}
    if reason:
        new["reason"] = reason
    if message:
        new["message"] = message
    if old is not None and old.get("status") == status:
        new["lastTransitionTime"] = old.get("lastTransitionTime")
        if {k: old.get(k) for k in ("reason", "message")} == {
            k: new.get(k) for k in ("reason", "message")
        }:
            return conds
    else:
        new["lastTransitionTime"] = now_iso()
    return [c for c in conds if c.get("type") != ctype] + [new]


def drop_condition(conds: list[JsonObj], ctype: str) -> list[JsonObj]:
    """Remove a condition type."""
    return [c for c in conds if c.get("type") != ctype]


def run_strategy(vm: JsonObj) -> str:
    """spec.runStrategy, or the deprecated spec.running mapped to Always/Halted."""
    spec = vm.get("spec") or {}
    if spec.get("runStrategy"):
        return str(spec["runStrategy"])
    return "Always" if spec.get("running") else "Halted"


def template_spec(vm: JsonObj) -> JsonObj:
    """spec.template.spec, never None."""
    got: JsonObj = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
    return got


CLAIMS = "claims"
"""The informer index of VMIs by the PVCs their volumes use ("namespace/claim")."""


def claim_keys(vmi: JsonObj) -> list[str]:
    """ "namespace/claim" of every PVC the VMI's volumes use: the `CLAIMS` index."""
    ns = vmi.get("metadata", {}).get("namespace", "")
    claims = (claim_of(v) for v in (vmi.get("spec") or {}).get("volumes") or [])
    return [f"{ns}/{claim}" for claim in claims if claim]


def claim_of(volume: JsonObj) -> str | None:
    """The PVC a VM/VMI volume uses: persistentVolumeClaim.claimName or the DataVolume's name."""
    if "persistentVolumeClaim" in volume:
        return str(volume["persistentVolumeClaim"].get("claimName", "")) or None
    if "dataVolume" in volume:
        return str(volume["dataVolume"].get("name", "")) or None
    return None


def live_migratable(vmi: JsonObj, claim: Callable[[str], JsonObj | None]) -> tuple[str, str, str]:
    """LiveMigratable as virt-handler reports it, (status, reason, message): False while a
    PVC is not shared (ReadWriteMany), in its words."""
    for volume in (vmi.get("spec") or {}).get("volumes") or []:
        name = claim_of(volume)
        pvc = claim(name) if name else None
        modes = ((pvc or {}).get("spec") or {}).get("accessModes") or []
        if name and "ReadWriteMany" not in modes:
            message = (
                f"cannot migrate VMI: PVC {name} is not shared, live migration requires "
                "that all PVCs must be shared (using ReadWriteMany access mode)"
            )
            return "False", "DisksNotLiveMigratable", message
    return "True", "", ""


def mounted_claims(spec: JsonObj) -> list[str]:
    """The PVCs a VMI spec (or VM template spec) mounts, by claim_of()."""
    return [c for v in spec.get("volumes") or [] if (c := claim_of(v))]


def is_hotpluggable(volume: JsonObj) -> bool:
    """persistentVolumeClaim/dataVolume with hotpluggable: true."""
    source: Any = volume.get("persistentVolumeClaim") or volume.get("dataVolume") or {}
    return bool(source.get("hotpluggable"))


def disks(spec: JsonObj) -> list[JsonObj]:
    """domain.devices.disks of a VMI spec (or VM template spec)."""
    return list(((spec.get("domain") or {}).get("devices") or {}).get("disks") or [])


def disk_bus(disk: JsonObj) -> str:
    """The bus of a disk/lun/cdrom device; amd64 webhooks default an empty bus to sata."""
    for kind in ("disk", "lun", "cdrom"):
        if kind in disk:
            return str((disk.get(kind) or {}).get("bus") or "sata")
    return "sata"


def owner_ref(obj: JsonObj, kind: str, api_version: str) -> JsonObj:
    """A controller ownerReference pointing at `obj`."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controlled_by(obj: JsonObj | None, owner: JsonObj) -> bool:
    """`obj` has a controller ownerReference to `owner` (same uid)."""
    if obj is None:
        return False
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    uid = owner["metadata"].get("uid")
    return any(r.get("uid") == uid and r.get("controller") for r in refs)


# Every form of a Kubernetes quantity: binary (Ki..Ei), decimal (n u m "" k M G T P E) and
# exponent (1e3, 1E3) suffixes on a signed decimal number.
_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<binary>[KMGTPE]i)|[eE](?P<exponent>[+-]?[0-9]+)|(?P<decimal>[numkMGTPE]?))"
)
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def quantity_bytes(value: str | int | None) -> int:
    """Bytes of a quantity such as "10Gi", "500M", "1500m" or "1e3", rounded up as Kubernetes
    rounds a byte count; ValueError if it is not a quantity."""
    if value is None:
        return 0
    text = str(value).strip()
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    with localcontext(prec=len(text) + 40):  # exact: no rounding of long mantissas
        number = Decimal(match["number"])
        if match["binary"]:
            exact: Decimal = number * (1 << _BINARY[match["binary"]])
        else:
            power = int(match["exponent"] or _DECIMAL[match["decimal"] or ""])
            exact = number.scaleb(power)
        return math.ceil(exact)
