"""Why a VMI that has its virt-launcher pod cannot start its guest, in KubeVirt's words. Pure.

virt-handler hands the VMI to virt-launcher (SyncVMI), which prepares the domain (cloud-init,
disks, networks) and starts it. When that fails virt-handler writes the VMI's
`Synchronized=False`, reason "Synchronizing with the Domain failed.", with the launcher's
error (pkg/virt-handler/vm.go handleSyncError, pkg/controller/conditions.go CheckFailure),
posts a Warning `SyncFailed` on the VMI and tries again for ever: the VMI stays Scheduled and
the VM's printableStatus Starting, which says nothing. The commonest cause is a cloud-init
Secret without the key virt-launcher reads: the kubelet mounts each key by subPath, makes a
missing one an empty directory, and starts the pod (no FailedMount).
"""

from __future__ import annotations

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
