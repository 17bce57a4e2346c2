"""`wukong expose NAME --port P`: a Service in front of the VM, as `virtctl expose`. Pure.

The Service selects the VM's virt-launcher pod by the label the operator puts on the VM's
template (`vm.novasphere.dev/wukong`) and KubeVirt's own `kubevirt.io: virt-launcher` (not
a DataVolume's importer or a hot-plug attachment pod). It is owned by the Wukong, so it goes
when the Wukong is deleted (the delete plan lists it), and it carries the Wukong's label so
`kubectl get svc -l vm.novasphere.dev/wukong=NAME` finds it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from wukong.api import names
from wukong.console.errors import CliError, usage
from wukong.console.status import phase as status_phase

JsonObj = dict[str, Any]

LAUNCHER = {"kubevirt.io": "virt-launcher"}  # KubeVirt's label on every virt-launcher pod
# A Service's name is a DNS-1035 label: it starts with a letter (apimachinery validation).
_DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


class ServiceType(StrEnum):
    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"


class Protocol(StrEnum):
    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


@dataclass(frozen=True)
class Exposure:
    """What the command line asks for."""

    port: int
    target_port: int | None = None
    name: str | None = None
    type: ServiceType = ServiceType.CLUSTER_IP
    protocol: Protocol = Protocol.TCP


def service_name(wukong: str, wanted: Exposure) -> str:
    """--name, else the Wukong's own name (as `kubectl expose` names it); a usage error when
    it cannot name a Service."""
    name = wanted.name or wukong
    if len(name) > names.MAX_LABEL_VALUE or not _DNS_1035.fullmatch(name):
        flag = "--name" if wanted.name else f"the default name {name!r} (the Wukong's)"
        raise usage(
            f"{flag}: a Service name is a DNS-1035 label: at most 63 lowercase letters, "
            "digits and '-', starting with a letter"
            + ("" if wanted.name else ": give one with --name")
        )
    return name


def selector(wukong: str) -> dict[str, str]:
    """The labels of the Wukong's virt-launcher pod that the Service selects on."""
    return {names.LABEL_WUKONG: wukong, **LAUNCHER}


def service(cr: JsonObj, wanted: Exposure) -> JsonObj:
    """The Service for the Wukong `cr` as read, owned by it."""
    meta = cr["metadata"]
    wukong = str(meta["name"])
    target = wanted.target_port or wanted.port
    port = {
        "name": f"{wanted.protocol.value.lower()}-{wanted.port}",
        "protocol": wanted.protocol.value,
        "port": wanted.port,
        "targetPort": target,
    }
    owner = {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "name": wukong,
        "uid": meta["uid"],
    }
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(wukong, wanted),
            "labels": {names.LABEL_WUKONG: wukong},
            "ownerReferences": [owner],
        },
        "spec": {"type": wanted.type.value, "selector": selector(wukong), "ports": [port]},
    }


def exposed(made: JsonObj, wukong: str) -> str:
    """What `expose` says once the Service exists: kubectl's `service/NAME exposed`, then
    where it answers (`NodePort 22:31022/TCP`)."""
    spec = made.get("spec") or {}
    ports = ", ".join(
        f"{p['port']}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/{p['protocol']}"
        f" → port {p['targetPort']} of {wukong}"
        for p in spec.get("ports") or []
    )
    return f"service/{made['metadata']['name']} exposed: {spec.get('type')} {ports}"


def not_running_note(cr: JsonObj) -> str | None:
    """A warning when no pod would answer yet: the Service selects the VM's pod, which exists
    only while the VM runs."""
    phase = status_phase(cr)
    if phase in ("Running", "Suspended", "Starting", "Restarting", "Resuming", "Suspending"):
        return None
    name = cr["metadata"]["name"]
    return f"warning: {name} is {phase}: the Service answers once its VM runs"


def already_exists(name: str, namespace: str) -> CliError:
    return CliError(
        f"service {name} already exists in namespace {namespace}: give another with --name"
    )
