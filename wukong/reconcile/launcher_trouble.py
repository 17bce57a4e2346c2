"""Why a VMI that has its virt-launcher pod cannot start its guest, in KubeVirt's words. Pure.

virt-handler hands the VMI to virt-launcher (SyncVMI), which prepares the domain (cloud-init,
disks, networks) and starts it. When that fails virt-handler writes the VMI's
`Synchronized=False`, reason "Synchronizing with the Domain failed.", with the launcher's
error (pkg/virt-handler/vm.go handleSyncError, pkg/controller/conditions.go CheckFailure),
posts a Warning `SyncFailed` on the VMI and tries again for ever: the VMI stays Scheduled and
the VM's printableStatus Starting, which says nothing. The commonest cause is a cloud-init
Secret without the key virt-launcher reads: the kubelet mounts each key by subPath, makes a
missing one an empty directory, and starts the pod (no FailedMount).

Before that, the kubelet may fail to make the pod's sandbox, above all when a network of the
VM cannot be attached (the CNI ADD of Multus or of a plugin it delegates to fails: a NAD's
bridge that is not a bridge, a plugin or IPAM pool missing on the node, Multus namespace
isolation). The pod stays Pending and the kubelet says why only in a Warning
`FailedCreatePodSandBox` Event on it, "Failed to create pod sandbox: ..." (pkg/kubelet/
kuberuntime/kuberuntime_manager.go), retrying with a back-off; virt-controller turns it
into nothing (the VMI waits in Scheduling, the VM in Starting). The operator watches those
Events (wukong.api.kinds.SANDBOX_EVENT) and matches them to the VMI's `status.activePods`.
"""

from __future__ import annotations

import re
from datetime import datetime

from wukong.api import JsonObj
from wukong.reconcile.observed import Observed, condition_of
from wukong.reconcile.timefmt import parse_time

# virt-handler's reason (a sentence, not CamelCase) on the VMI's Synchronized condition.
DOMAIN_SYNC_FAILED = "Synchronizing with the Domain failed."
# What virt-launcher says when it cannot read the cloud-init data (virtwrap/manager.go
# preStartHook): then the keys it reads are worth naming.
CLOUD_INIT_READ = "ReadCloudInitVolumeDataSource"
# VMI phases before the guest runs: virt-handler syncs a Scheduled one (its node is known).
_NOT_STARTED = ("Pending", "Scheduling", "Scheduled")
# VMI phases before its pod runs (virt-controller moves it to Scheduled once the pod does):
# the sandbox is not there yet. Past them, a sandbox Event is about a try that came through.
_NO_SANDBOX = ("Pending", "Scheduling")
# The keys virt-launcher reads from the Secret of each reference (pkg/cloud-init/cloud-init.go
# resolveNoCloudSecrets: the first found of each pair), and what each holds.
_SECRET_KEYS = (
    ("secretRef", "user data", "userdata", "userData"),
    ("networkDataSecretRef", "network data", "networkdata", "networkData"),
)


def _not_started(seen: Observed) -> bool:
    return seen.vmi is not None and seen.vmi_phase in _NOT_STARTED


def _sync_failure(seen: Observed) -> JsonObj | None:
    """The VMI's Synchronized condition when virt-handler could not start its domain."""
    if not _not_started(seen):
        return None
    cond = condition_of(seen.vmi, "Synchronized") or {}
    if (cond.get("status"), cond.get("reason")) != ("False", DOMAIN_SYNC_FAILED):
        return None
    return cond


def until_sync_failure_lasts(seen: Observed, lasting: float) -> float | None:
    """Seconds until virt-handler's failure to start the domain has lasted `lasting` (<= 0:
    it has; KubeVirt keeps the condition's time while every retry fails, and drops the
    condition on the first sync that works); None when there is none. A condition without a
    time has lasted: nothing would ever say it otherwise."""
    cond = _sync_failure(seen)
    if cond is None:
        return None
    since = parse_time(cond.get("lastTransitionTime"))
    return 0.0 if since is None else lasting - _age(since, seen.now)


def _age(since: datetime, now: datetime) -> float:
    return (now - since).total_seconds()


def _cloud_init_secrets(vmi: JsonObj | None) -> list[tuple[str, str, str, str]]:
    """(what, key, other key, Secret) for each cloud-init Secret of the VMI."""
    for volume in ((vmi or {}).get("spec") or {}).get("volumes") or []:
        source = volume.get("cloudInitNoCloud") or volume.get("cloudInitConfigDrive") or {}
        wanted = [
            (what, key, other, str(source[ref]["name"]))
            for ref, what, key, other in _SECRET_KEYS
            if (source.get(ref) or {}).get("name")
        ]
        if wanted:
            return wanted  # virt-launcher reads the first such volume only
    return []


def _cloud_init_hint(vmi: JsonObj | None) -> str:
    wanted = _cloud_init_secrets(vmi)
    if not wanted:
        return ""
    reads = " and ".join(
        f"its {what} from key `{key}` (or `{other}`) of Secret '{secret}'"
        for what, key, other, secret in wanted
    )
    key = wanted[0][1]
    return (
        f". KubeVirt reads {reads}: `kubectl create secret generic NAME "
        f"--from-file={key}=FILE` makes that key (`--from-file=FILE` names it after the "
        "file, e.g. `user-data`). The VM's pod does not see a Secret changed after it "
        "started: fix the Secret, then stop and start the VM"
    )


def domain_sync_failure(seen: Observed) -> str:
    """What stops the VMI's guest from starting, when virt-handler says ("" otherwise): its
    node, KubeVirt's words and, for a cloud-init read, the keys of which Secret it reads."""
    cond = _sync_failure(seen)
    if cond is None:
        return ""
    node = (seen.vmi or {}).get("status", {}).get("nodeName") or "its node"
    message = str(cond.get("message") or "virt-launcher cannot start the domain")
    hint = _cloud_init_hint(seen.vmi) if CLOUD_INIT_READ in message else ""
    return f"KubeVirt cannot start the guest on {node}: {message}{hint}"


def _sandbox_events(seen: Observed) -> list[JsonObj]:
    """The kubelet's FailedCreatePodSandBox Events about the pods of a VMI whose pod does
    not run yet, oldest first."""
    if seen.vmi is None or seen.vmi_phase not in _NO_SANDBOX:
        return []
    return sorted(seen.sandbox_events, key=lambda e: str(e.get("lastTimestamp") or ""))


def until_sandbox_failure_lasts(seen: Observed, lasting: float) -> float | None:
    """Seconds until the kubelet's failure to make the VMI's pod sandbox has lasted
    `lasting`, counted from its first such Event (<= 0: it has; a network that fails for a
    moment and then attaches says nothing); None when there is none."""
    events = _sandbox_events(seen)
    if not events:
        return None
    first = [
        t
        for e in events
        if (t := parse_time(e.get("firstTimestamp") or e.get("lastTimestamp"))) is not None
    ]
    return 0.0 if not first else lasting - _age(min(first), seen.now)


# A sandbox's id in the runtime's words (containerd: `for sandbox "<64 hex>"`; CRI-O:
# `sandbox k8s_…(<64 hex>)`): new at every kubelet retry, it made the condition's message, and
# so a status write and a Warning, new at each (noticed in session 46).
_CONTAINER_ID = re.compile(r"\b[0-9a-f]{64}\b")


def sandbox_failure(seen: Observed) -> str:
    """The kubelet's newest word on why the VMI's pod has no sandbox, with its node and pod
    ("" when it said none)."""
    events = _sandbox_events(seen)
    if not events:
        return ""
    newest = events[-1]
    involved = newest.get("involvedObject") or {}
    pods = (seen.vmi or {}).get("status", {}).get("activePods") or {}
    node = pods.get(involved.get("uid")) or "its node"
    message = _CONTAINER_ID.sub("…", str(newest.get("message") or "Failed to create pod sandbox"))
    hint = ""
    if "network" in message.lower():
        hint = (
            ". A network of the VM cannot be attached: check the NetworkAttachmentDefinition "
            "it names and the CNI plugins (Multus, the bridge) on the node"
        )
    pod = involved.get("name") or "its virt-launcher pod"
    return f"the kubelet on {node} cannot create the sandbox of pod {pod}: {message}{hint}"
