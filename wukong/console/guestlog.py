"""`wukong logs NAME`: where a VM's serial console log is, and what to ask for. Pure.

KubeVirt writes the guest's serial console to a file in the VM's virt-launcher pod, and the
pod's `guest-console-log` container prints it (virt-controller services/serialconsolelog.go),
so `kubectl logs virt-launcher-web-1-vm-x4qh9 -c guest-console-log` shows the boot: the
kernel, cloud-init, a login prompt or a panic. The pod's name changes with every start and
migration; this finds it from the VMI.
"""

from __future__ import annotations

import math
from typing import Any, Final

from wukong.console.invocation import typed

JsonObj = dict[str, Any]

GUEST_CONSOLE_LOG: Final = "guest-console-log"
CREATED_BY: Final = "kubevirt.io/created-by"  # a virt-launcher pod's label: its VMI's uid
# serialconsolelog.go: the VM's own logSerialConsole wins; else the cluster-wide switch,
# which any disableSerialConsoleLog value turns off, `{}` too (virt-config.go).
ENABLE_IT: Final = (
    "KubeVirt keeps the serial console log unless the VM sets "
    "spec.domain.devices.logSerialConsole (or autoattachSerialConsole) to false, or the "
    "KubeVirt CR has spec.configuration.virtualMachineOptions.disableSerialConsoleLog (any "
    "value, {} too) and the VM does not set logSerialConsole: true; a change applies at the "
    "VM's next start"
)


def pod_selector(vmi: JsonObj) -> str:
    """The label selector of the VMI's virt-launcher pods."""
    return f"{CREATED_BY}={vmi['metadata']['uid']}"


def launcher_pod(vmi: JsonObj, pods: list[JsonObj]) -> JsonObj | None:
    """The pod the guest runs in now: an active pod on the VMI's node (while a migration
    copies, the source; once it hands over, the target), else the newest one not being
    deleted. None when the VMI has no pod left."""
    status = vmi.get("status") or {}
    active: dict[str, str] = status.get("activePods") or {}
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    here = [p for p in live if active.get(p["metadata"]["uid"]) == status.get("nodeName")]
    chosen = here or [p for p in live if p["metadata"]["uid"] in active] or live
    if not chosen:
        return None
    return max(chosen, key=lambda p: str(p["metadata"].get("creationTimestamp") or ""))


def keeps_log(pod: JsonObj) -> bool:
    """Whether the pod has the container that prints the serial console."""
    spec = pod.get("spec") or {}
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    return any(c.get("name") == GUEST_CONSOLE_LOG for c in containers)


def query(
    *, follow: bool, tail: int | None, since: float | None, timestamps: bool
) -> list[tuple[str, str]]:
    """The pods/log query, with kubectl's parameters."""
    params = [("container", GUEST_CONSOLE_LOG)]
    if follow:
        params.append(("follow", "true"))
    if tail is not None:
        params.append(("tailLines", str(tail)))
    if since:  # kubectl's --since=0 is no limit, as leaving it out
        params.append(("sinceSeconds", str(max(1, math.ceil(since)))))
    if timestamps:
        params.append(("timestamps", "true"))
    return params


def no_vm(name: str, namespace: str, phase: str) -> str:
    """Why a Wukong without a VMI has no log to show."""
    return (
        f"wukong {name} is {phase} and has no running VM: the serial console log lives in "
        f"the VM's pod, from its start ({typed(f'start {name}', namespace)})"
    )


def no_pod(name: str, vmi: str) -> str:
    return f"the VM {vmi} of wukong {name} has no pod left, and its console log went with it"


def no_log(name: str, pod: str) -> str:
    return f"the VM of wukong {name} keeps no serial console log (pod {pod}): {ENABLE_IT}"
