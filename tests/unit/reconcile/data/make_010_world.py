"""Write `world-0.1.0.json`: Wukongs as 0.1.0's own code left them, for the upgrade tests.

0.1.0 is commit a5667a9 (the last before issue 17; docs/upgrade.md "From 0.1.0"). This
script imports *that* version of the operator, not the one around it, and drives its pure
planners as its reconciler would (`observe`, `decide`, `_after`, `_clean` of a5667a9's
wukong/reconcile/reconciler.py) over a small fake cluster: what KubeVirt v1.7, CDI and the
API server do with the objects 0.1.0 asks for (below, `Cluster`). It runs no operator and no
cluster. What it dumps is what 0.1.0 wrote: each Wukong with the status 0.1.0 stored, its
VM and VMI, DataVolumes, claims and NADs. tests/unit/reconcile/test_from_010.py feeds that
to today's planners.

Regenerate (from a worktree of this repository; 0.1.0's dependencies all import with the
current .venv, checked at session 48):

    git worktree add --detach /tmp/w010 a5667a9
    PYTHONPATH=/tmp/w010 .venv/bin/python tests/unit/reconcile/data/make_010_world.py
    git worktree remove /tmp/w010

It refuses to run against any other `wukong` than 0.1.0's (it checks for 0.1.0's names,
which issue 18 changed). The output is deterministic: fixed clock, uids and node.

The Wukongs (docs/upgrade.md, "From 0.1.0", the steps each one exercises):

- `vlan`: two operator-made bridge networks: `management-net`, untagged and without `bridge`
  (0.1.0 cut `br-management-net` to 15 characters: `br-management-n`, step 2; 0.1.0 took
  a VLAN only with `bridge`), and `backup-network-...` on `br-backup`, VLAN 200, whose NAD
  name `<wukong>-<network>` is over 63 characters (0.1.0 did not bound it; issue 18 cuts such
  names with a hash). Running. Steps 1, 2, 4.
- `disk`: a system disk imported by a DataVolume and a blank data disk whose name is over 36
  characters (0.1.0 cut the serial to 36; issue 18 ends a long one in a hash) and whose claim
  name `<wukong>-<disk>` is over 63 characters (0.1.0 did not bound it). Running.
- `restart-accepted`: running, then `restart` asked; 0.1.0's accepting pass ran and its
  calling pass did not (the rollout came in between). Step 5.
- `stop-retried`: running, then `stop` asked; 0.1.0 accepted it, its call failed transiently
  (virt-api down) and it stored the record to retry (`Issued`, `issued: false`). Step 5.
- `stopped`: a bridge network with a VLAN; stopped by a `stop` 0.1.0 made. Steps 1, 4.
"""

from __future__ import annotations

import copy
import json
import math
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from wukong.api import names
from wukong.api.v1alpha1 import Wukong
from wukong.errors import ServerError
from wukong.reconcile import executor, reconciler  # 0.1.0's; since moved to wukong.act
from wukong.reconcile.actions import (
    AddVolume,
    CreateChild,
    DeleteChild,
    Emit,
    ExpandDisk,
    PatchChild,
    RemoveVolume,
    VmCall,
)

JsonObj = dict[str, Any]
OUT = Path(__file__).with_name("world-0.1.0.json")
NS = "demo"
NODE = "node-1"
START = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
STORAGE_CLASS = "standard"
# CDI's default filesystem overhead: a DataVolume's claim (storage API, Filesystem mode) asks
# for the disk's size plus this (pkg/util GetRequiredSpace), aligned to 1 MiB.
FS_OVERHEAD = 0.06
MIB = 1024 * 1024
SUFFIX = {"Ki": 1024, "Mi": MIB, "Gi": 1024 * MIB, "Ti": 1024 * 1024 * MIB}

SYSTEM = {"name": "system", "size": "20Gi", "image": "docker://quay.io/containerdisks/fedora:40"}
LONG_DISK = "postgresql-write-ahead-log-on-the-fast-ssd-pool"  # 47 characters
LONG_NET = "backup-network-of-the-storage-cluster-east"  # 42 characters

CASES: dict[str, JsonObj] = {
    "vlan": {
        "name": "frontend-web-east-datacenter-1",
        "spec": {
            "cpu": 2,
            "memory": "4Gi",
            "disks": [SYSTEM],
            "networks": [
                {"name": "management-net", "type": "bridge"},
                {"name": LONG_NET, "type": "bridge", "bridge": "br-backup", "vlan": 200},
            ],
        },
    },
    "disk": {
        "name": "database-primary-east-1",
        "spec": {
            "cpu": 4,
            "memory": "8Gi",
            "disks": [SYSTEM, {"name": LONG_DISK, "size": "50Gi"}],
        },
    },
    "restart-accepted": {
        "name": "web-restart",
        "spec": {"cpu": 1, "memory": "2Gi", "disks": [SYSTEM, {"name": "data", "size": "10Gi"}]},
        "then": {"lifecycleAction": {"action": "restart", "requestedAt": "2026-11-23T10:05:00Z"}},
        "call": "never",
    },
    "stop-retried": {
        "name": "web-stop",
        "spec": {"cpu": 1, "memory": "2Gi", "disks": [SYSTEM]},
        "then": {
            "lifecycleAction": {
                "action": "stop",
                "gracePeriodSeconds": 60,
                "requestedAt": "2026-11-23T10:05:00Z",
            }
        },
        "call": "fails",
    },
    "stopped": {
        "name": "web-stopped",
        "spec": {
            "cpu": 1,
            "memory": "2Gi",
            "disks": [SYSTEM, {"name": "data", "size": "10Gi"}],
            "networks": [{"name": "vlan300", "type": "bridge", "bridge": "br-trunk", "vlan": 300}],
        },
        "then": {"lifecycleAction": {"action": "stop", "requestedAt": "2026-11-23T10:05:00Z"}},
        "call": "lands",
    },
}


def quantity_bytes(text: str) -> int:
    for suffix, factor in SUFFIX.items():
        if text.endswith(suffix):
            return int(text[: -len(suffix)]) * factor
    return int(text)


def cdi_claim_size(size: str) -> str:
    """The claim CDI makes for a DataVolume of `size` (storage API, Filesystem mode)."""
    aligned = math.ceil(quantity_bytes(size) / MIB) * MIB
    return str(math.ceil(aligned * (1 + FS_OVERHEAD)))


class Cluster:
    """What the API server, KubeVirt v1.7 and CDI show for the objects 0.1.0 asks for."""

    def __init__(self, case: str) -> None:
        self.case = case
        self.objects: dict[str, dict[str, JsonObj]] = {
            kind: {} for kind in reconciler.CHILD_KINDS.values()
        }
        self.objects[reconciler.VMIS] = {}
        self.objects[reconciler.STORAGE_CLASSES] = {STORAGE_CLASS: storage_class()}
        self.serial = 0
        self.vmis = 0

    # The store 0.1.0's `observe` reads (its Reader protocol).
    def get(self, kind: str, namespace: str, name: str) -> JsonObj | None:
        return self.objects.get(kind, {}).get(name)

    def by_label(self, kind: str, label: str, value: str) -> list[JsonObj]:
        return [
            o
            for o in self.objects.get(kind, {}).values()
            if (o["metadata"].get("labels") or {}).get(label) == value
        ]

    def list(self, kind: str, namespace: str | None = None, selector: Any = None) -> list[JsonObj]:
        return list(self.objects.get(kind, {}).values())

    def uid(self, kind: str) -> str:
        self.serial += 1
        return f"{self.case}-{kind.lower()}-{self.serial}"

    def stored(self, kind: str, body: JsonObj) -> JsonObj:
        obj = copy.deepcopy(body)
        meta = obj["metadata"]
        meta |= {
            "uid": self.uid(kind),
            "resourceVersion": str(100 + self.serial),
            "generation": 1,
            "creationTimestamp": iso(START),
        }
        obj["kind"] = kind
        return obj

    def run(self, actions: list[Any]) -> None:
        for action in actions:
            if isinstance(action, CreateChild):
                self.create(action.kind, action.body)
            elif isinstance(action, PatchChild):
                raise SystemExit(f"{self.case}: 0.1.0 patched {action.kind} {action.name}")
            elif isinstance(action, VmCall):
                self.call(action)
            elif isinstance(action, DeleteChild | ExpandDisk | AddVolume | RemoveVolume):
                raise SystemExit(f"{self.case}: unexpected {action!r}")
            else:
                assert isinstance(action, Emit)

    def create(self, kind: str, body: JsonObj) -> None:
        obj = self.stored(kind, body)
        name = obj["metadata"]["name"]
        if kind == "NetworkAttachmentDefinition":
            self.objects[reconciler.NADS][name] = obj
        elif kind == "PersistentVolumeClaim":
            obj["spec"] |= {
                "storageClassName": STORAGE_CLASS,
                "volumeName": f"pv-{obj['metadata']['uid']}",
            }
            size = obj["spec"]["resources"]["requests"]["storage"]
            obj["status"] = {
                "phase": "Bound",
                "accessModes": obj["spec"]["accessModes"],
                "capacity": {"storage": size},
            }
            self.objects[reconciler.PVCS][name] = obj
        elif kind == "DataVolume":
            self.import_data_volume(obj)
        elif kind == "VirtualMachine":
            obj["status"] = {}
            self.objects[reconciler.VMS][name] = obj
            self.kubevirt()
        else:
            raise SystemExit(f"{self.case}: unexpected kind {kind}")

    def import_data_volume(self, dv: JsonObj) -> None:
        """CDI: the DataVolume's claim (labels passed on, owned by the DataVolume), imported."""
        name = dv["metadata"]["name"]
        size = dv["spec"]["storage"]["resources"]["requests"]["storage"]
        pvc_uid = self.uid("PersistentVolumeClaim")
        dv["status"] = {
            "phase": "Succeeded",
            "progress": "100.0%",
            "claimName": name,
            "conditions": [
                {"type": "Bound", "status": "True", "reason": "Bound"},
                {"type": "Ready", "status": "True"},
                {"type": "Running", "status": "False", "reason": "Completed"},
            ],
        }
        request = cdi_claim_size(size)
        self.objects[reconciler.DVS][name] = dv
        self.objects[reconciler.PVCS][name] = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {
                "name": name,
                "namespace": NS,
                "uid": pvc_uid,
                "resourceVersion": str(100 + self.serial),
                "creationTimestamp": iso(START),
                "labels": dv["metadata"]["labels"] | {"app": "containerized-data-importer"},
                "annotations": {
                    "cdi.kubevirt.io/createdForDataVolume": dv["metadata"]["uid"],
                    "cdi.kubevirt.io/storage.contentType": "kubevirt",
                    "cdi.kubevirt.io/storage.import.source": "registry",
                    "cdi.kubevirt.io/storage.pod.phase": "Succeeded",
                },
                "ownerReferences": [
                    {
                        "apiVersion": f"{names.CDI_GROUP}/{names.CDI_VERSION}",
                        "kind": "DataVolume",
                        "name": name,
                        "uid": dv["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "volumeMode": "Filesystem",
                "resources": {"requests": {"storage": request}},
                "storageClassName": STORAGE_CLASS,
                "volumeName": f"pv-{pvc_uid}",
            },
            "status": {
                "phase": "Bound",
                "accessModes": ["ReadWriteOnce"],
                "capacity": {"storage": request},
            },
        }

    def call(self, call: VmCall) -> None:
        vm = self.objects[reconciler.VMS][call.vm]
        if call.verb == "stop":
            vm["spec"]["runStrategy"] = "Halted"
        elif call.verb == "start":
            vm["spec"]["runStrategy"] = "Always"
        elif call.verb == "restart":
            self.objects[reconciler.VMIS].pop(call.vm, None)
        else:
            raise SystemExit(f"{self.case}: unexpected call {call!r}")
        vm["metadata"]["generation"] += 1
        self.kubevirt()

    def kubevirt(self) -> None:
        """virt-controller and virt-handler, settled: a VMI running for a VM that wants one."""
        for name, vm in self.objects[reconciler.VMS].items():
            strategy = vm["spec"].get("runStrategy")
            vmis = self.objects[reconciler.VMIS]
            if strategy == "Halted":
                vmis.pop(name, None)
            elif name not in vmis:
                vmis[name] = self.vmi(vm)
            running = name in vmis
            vm["status"] = {
                "printableStatus": "Running" if running else "Stopped",
                "ready": running,
                "created": running,
                "runStrategy": strategy,
                "desiredGeneration": vm["metadata"]["generation"],
                "observedGeneration": vm["metadata"]["generation"],
                "conditions": [
                    {"type": "Ready", "status": "True" if running else "False"},
                    {"type": "Initialized", "status": "True"},
                ],
                "volumeSnapshotStatuses": [
                    {"name": v["name"], "enabled": False}
                    for v in vm["spec"]["template"]["spec"]["volumes"]
                ],
            }
            if running:
                vm["status"]["conditions"].append({"type": "LiveMigratable", "status": "True"})

    def vmi(self, vm: JsonObj) -> JsonObj:
        self.vmis += 1
        template = vm["spec"]["template"]
        spec = copy.deepcopy(template["spec"])
        name = vm["metadata"]["name"]
        uid = f"{self.case}-vmi-{self.vmis}"
        interfaces = [
            {
                "name": "default",
                "interfaceName": "eth0",
                "ipAddress": "10.244.0.17",
                "ipAddresses": ["10.244.0.17"],
                "mac": "02:6d:5a:00:00:01",
                "infoSource": "domain, guest-agent",
                "podInterfaceName": "eth0",
                "queueCount": 1,
            }
        ]
        for index, net in enumerate(spec.get("networks", [])[1:], start=1):
            interfaces.append(
                {
                    "name": net["name"],
                    "interfaceName": f"eth{index}",
                    "mac": f"02:6d:5a:00:00:{index + 1:02x}",
                    "infoSource": "domain, guest-agent, multus-status",
                    "queueCount": 1,
                }
            )
        volumes = []
        for index, volume in enumerate(spec["volumes"]):
            source = volume.get("dataVolume") or volume.get("persistentVolumeClaim") or {}
            claim = source.get("name") or source.get("claimName")
            volumes.append(
                {
                    "name": volume["name"],
                    "target": f"vd{chr(ord('a') + index)}",
                    "persistentVolumeClaimInfo": {
                        "claimName": claim,
                        "accessModes": ["ReadWriteOnce"],
                        "volumeMode": "Filesystem",
                    },
                }
            )
        return {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachineInstance",
            "metadata": {
                "name": name,
                "namespace": NS,
                "uid": uid,
                "resourceVersion": str(500 + self.vmis),
                "generation": 1,
                "creationTimestamp": iso(START),
                "labels": {**template["metadata"].get("labels", {}), "kubevirt.io/nodeName": NODE},
                "ownerReferences": [
                    {
                        "apiVersion": "kubevirt.io/v1",
                        "kind": "VirtualMachine",
                        "name": name,
                        "uid": vm["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": spec,
            "status": {
                "phase": "Running",
                "nodeName": NODE,
                "activePods": {f"{uid}-pod": NODE},
                "guestOSInfo": {"id": "fedora", "name": "Fedora Linux"},
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "LiveMigratable", "status": "True"},
                    {"type": "AgentConnected", "status": "True"},
                ],
                "interfaces": interfaces,
                "volumeStatus": volumes,
                "migrationMethod": "BlockMigration",
                "qosClass": "Burstable",
            },
        }


def storage_class() -> JsonObj:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": "rancher.io/local-path",
        "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": True,
    }


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def wukong_object(case: str, body: JsonObj, uid: str) -> JsonObj:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {
            "name": body["name"],
            "namespace": NS,
            "uid": uid,
            "generation": 1,
            "resourceVersion": "1",
            "creationTimestamp": iso(START),
            "finalizers": [names.FINALIZER],
        },
        "spec": copy.deepcopy(body["spec"]),
        "status": {},
    }


def one_pass(raw: JsonObj, cluster: Cluster, now: datetime, *, failing: bool = False) -> Any:
    """0.1.0's pass (Reconciler.reconcile without its I/O): observe, decide, act, then the
    status folded and stored as its API server would (nulls removed by the merge patch)."""
    cr = Wukong.from_dict(raw)
    status = dict(raw.get("status") or {})
    seen = reconciler.observe(cluster, cr, now)
    plan = reconciler.decide(cr, status, seen)
    down = ServerError(503, "Service Unavailable", "virt-api has no endpoints")
    failures = {a: down for a in plan.actions if failing and isinstance(a, VmCall)}
    if not failures:
        cluster.run(plan.actions)
    outcome = executor.Outcome(failures=dict(failures), transient=bool(failures))
    raw["status"] = reconciler._clean(reconciler._after(plan.status, status, outcome))
    return plan


def drive(case: str, body: JsonObj) -> JsonObj:
    cluster = Cluster(case)
    raw = wukong_object(case, body, f"uid-{case}")
    now = START
    for _ in range(12):
        plan = one_pass(raw, cluster, now)
        now += timedelta(seconds=5)
        if raw["status"].get("phase") == "Running" and not plan.actions:
            break
    else:
        raise SystemExit(f"{case}: 0.1.0 did not settle at Running: {raw['status'].get('phase')}")
    if "then" in body:
        raw["spec"] |= body["then"]
        raw["metadata"]["generation"] += 1
        now += timedelta(minutes=5)
        one_pass(raw, cluster, now)  # accepted, recorded, not called
        if body["call"] == "fails":
            one_pass(raw, cluster, now + timedelta(seconds=1), failing=True)
        elif body["call"] == "lands":
            for step in range(6):
                plan = one_pass(raw, cluster, now + timedelta(seconds=1 + step))
                if not plan.actions and raw["status"]["lifecycleState"]["state"] == "Done":
                    break
    objects = {
        kind: sorted(cluster.objects[cache].values(), key=lambda o: o["metadata"]["name"])
        for kind, cache in [
            ("VirtualMachine", reconciler.VMS),
            ("VirtualMachineInstance", reconciler.VMIS),
            ("DataVolume", reconciler.DVS),
            ("PersistentVolumeClaim", reconciler.PVCS),
            ("NetworkAttachmentDefinition", reconciler.NADS),
        ]
    }
    return {"wukong": raw, "objects": objects, "now": iso(now + timedelta(seconds=30))}


def main() -> None:
    if names.disk_claim_name("a" * 63, "b" * 63) != "a" * 63 + "-" + "b" * 63:
        sys.exit("not 0.1.0's wukong: PYTHONPATH must point at a worktree of a5667a9")
    from wukong.api.crd import build_crd

    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    cases = {case: drive(case, body) for case, body in CASES.items()}
    fixture = {
        "generatedBy": "tests/unit/reconcile/data/make_010_world.py with a5667a9 (0.1.0)",
        "storageClasses": [storage_class()],
        "cases": cases,
    }
    for case, got in cases.items():
        lost = pruned(got["wukong"]["status"], schema["properties"]["status"])
        if lost:
            sys.exit(f"{case}: 0.1.0's own CRD would prune {lost}")
    OUT.write_text(json.dumps(fixture, indent=1, sort_keys=True) + "\n")
    for case, got in cases.items():
        status = got["wukong"]["status"]
        print(case, status.get("phase"), status.get("lifecycleState"), file=sys.stderr)


def pruned(value: Any, schema: JsonObj, path: str = "status") -> list[str]:
    """Fields 0.1.0's own CRD would prune (its status must be stored whole)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    lost: list[str] = []
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key, item in value.items():
            if key not in props:
                lost.append(f"{path}.{key}")
            else:
                lost += pruned(item, props[key], f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            lost += pruned(item, schema.get("items", {}), f"{path}[]")
    return lost


if __name__ == "__main__":
    main()
