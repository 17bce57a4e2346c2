"""Getting into the guest (issue 16): the cloud-init disk, KubeVirt accessCredentials, the
condition that names a Secret KubeVirt could not find, and the one that says when KubeVirt
cannot give the guest its keys. Pure.

The operator never reads a Secret. KubeVirt's virt-controller mounts each referenced Secret
into the virt-launcher pod; when one is missing the kubelet cannot start that pod and says so
in a FailedMount Event on it (`MountVolume.SetUp failed for volume "x" : secret "s" not
found`), while the VMI waits in Scheduling. That Event, about a pod the VMI lists in
`status.activePods`, is what this module reads.
"""

from __future__ import annotations

import re
from datetime import datetime

from wukong.api import JsonObj, names
from wukong.api.conditions import ACCESS_CREDENTIALS, SECRET_MISSING, Cond
from wukong.api.guest import CLOUD_INIT_VOLUME, KeyPropagation
from wukong.api.spec import WukongSpec
from wukong.reconcile.observed import Observed, condition_of
from wukong.reconcile.timefmt import parse_time

# The kubelet's wording (pkg/volume/secret: `secret "name" not found`).
_NOT_FOUND = re.compile(r'secret "([^"]+)" not found')
# A cloud-init disk needs some user data; keys alone get an empty cloud-config.
EMPTY_CLOUD_CONFIG = "#cloud-config\n"


def cloud_init_volume(spec: WukongSpec) -> tuple[JsonObj, JsonObj] | None:
    """The cloudInitNoCloud (disk, volume) pair, or None when the VM needs none."""
    if not spec.needs_cloud_init_disk:
        return None
    source: JsonObj = {}
    data = spec.cloud_init
    if data is not None and data.user_data is not None:
        source["userData"] = data.user_data
    elif data is not None and data.user_data_secret_ref is not None:
        source["secretRef"] = {"name": data.user_data_secret_ref.name}
    elif data is None or (data.network_data is None and data.network_data_secret_ref is None):
        source["userData"] = EMPTY_CLOUD_CONFIG
    if data is not None and data.network_data is not None:
        source["networkData"] = data.network_data
    elif data is not None and data.network_data_secret_ref is not None:
        source["networkDataSecretRef"] = {"name": data.network_data_secret_ref.name}
    # userData and networkData are omitempty in KubeVirt's CloudInitNoCloudSource: its
    # webhook stores the VM without an empty one, and a template that kept "" never covered
    # the VM: patched again on every pass, each patch a VM update that woke the next (found in
    # session 42 by spec_parity's seed 777).
    source = {k: v for k, v in source.items() if v != ""}
    disk = {"name": CLOUD_INIT_VOLUME, "disk": {"bus": "virtio"}}
    return disk, {"name": CLOUD_INIT_VOLUME, "cloudInitNoCloud": source}


def access_credentials(spec: WukongSpec) -> list[JsonObj]:
    """KubeVirt `accessCredentials`: one sshPublicKey entry per Secret."""
    out = []
    for key in spec.ssh_keys:
        if key.propagation is KeyPropagation.QEMU_GUEST_AGENT:
            method: JsonObj = {"qemuGuestAgent": {"users": list(key.users or [])}}
        else:
            method = {"noCloud": {}}
        out.append(
            {
                "sshPublicKey": {
                    "source": {"secret": {"secretName": key.secret_name}},
                    "propagationMethod": method,
                }
            }
        )
    return out


def credentials_of(spec: JsonObj, *, agent: bool) -> list[JsonObj]:
    """A VM template's (or VMI's) accessCredentials of one kind, in order: the guest agent's
    (`agent`), or cloud-init's (noCloud)."""
    found = []
    for cred in spec.get("accessCredentials") or []:
        method = (cred.get("sshPublicKey") or {}).get("propagationMethod") or {}
        if ("qemuGuestAgent" in method) == agent:
            found.append(cred)
    return found


# cloud-init runs its per-instance modules (users, ssh keys, packages, runcmd, write_files,
# and by default the network config) once per instance-id, and KubeVirt's NoCloud
# instance-id is the VM's firmware UUID (pkg/cloud-init/cloud-init.go cloudInitUUIDFromVMI),
# set once when the VM is made and kept in its template. A restart hands the guest the new
# data, and only its per-boot parts (bootcmd) run (session 46).
FIRST_BOOT_ONLY = "FirstBootOnly"


def first_boot_words(fields: str, name: str, namespace: str | None) -> str:
    """What a change cloud-init applies at first boot only means for a running VM."""
    restart = names.command("restart", name, namespace)
    add_key = names.command(
        "credentials add-ssh-key", name, namespace, "--user", "USER", "--file", "KEY.pub"
    )
    return (
        f"{fields} changed while the VM runs: cloud-init applies user data, network data and "
        "noCloud keys at the VM's first boot only (KubeVirt keeps the instance-id, the VM's "
        f"firmware UUID, across restarts), so a restart ({restart}) brings only their "
        f"per-boot parts, such as bootcmd; for keys on this VM, use propagation "
        f"qemuGuestAgent ({add_key})"
    )


def _vmi_secrets(vmi: JsonObj | None) -> set[str]:
    """Secrets the running VMI references (its spec may be older than the Wukong's)."""
    spec = (vmi or {}).get("spec") or {}
    found = set()
    for volume in spec.get("volumes") or []:
        source = volume.get("cloudInitNoCloud") or {}
        for ref in ("secretRef", "networkDataSecretRef"):
            if name := (source.get(ref) or {}).get("name"):
                found.add(str(name))
    for cred in spec.get("accessCredentials") or []:
        secret = ((cred.get("sshPublicKey") or {}).get("source") or {}).get("secret") or {}
        if name := secret.get("secretName"):
            found.add(str(name))
    return found


def missing_secrets(seen: Observed) -> dict[str, str]:
    """Secrets the kubelet could not mount for the VMI's pod, with its message."""
    missing: dict[str, str] = {}
    for event in sorted(seen.pod_events, key=lambda e: str(e.get("lastTimestamp") or "")):
        message = str(event.get("message") or "")
        for name in _NOT_FOUND.findall(message):
            missing[name] = message
    return missing


def secret_condition(spec: WukongSpec, seen: Observed) -> Cond | None:
    """`SecretMissing` while KubeVirt waits for a Secret the spec names; None otherwise
    (an operation condition: present only while it has something to say)."""
    referenced = set(spec.secret_names()) | _vmi_secrets(seen.vmi)
    if not referenced:
        return None
    running = seen.vmi_phase == "Running"
    missing = {n: m for n, m in missing_secrets(seen).items() if n in referenced}
    if missing and not running:
        listed = ", ".join(f"'{n}'" for n in sorted(missing))
        ns = (seen.vmi or {}).get("metadata", {}).get("namespace", "")
        message = (
            f"Secret {listed} not found in namespace '{ns}': KubeVirt cannot start the VM "
            f"until it exists (create it, or fix the name in spec.cloudInit / spec.sshKeys); "
            f"kubelet: {missing[sorted(missing)[0]]}"
        )
        return Cond(SECRET_MISSING, True, "SecretNotFound", message)
    return None


# virt-launcher's words while the guest agent does not answer its ping (pkg/virt-launcher/
# virtwrap/access-credentials, reloadCredentialFiles). Every boot says so until the agent
# starts (tens of seconds); a guest whose image has no agent says so for ever, and keys given
# through it never arrive. Reported once it has lasted AGENT_OFFLINE_LASTING seconds: KubeVirt
# replaces the condition (a new lastTransitionTime) only when its status or message changes.
AGENT_OFFLINE = "Guest agent is offline"
AGENT_OFFLINE_LASTING = 120.0


def _agent_offline_left(cond: JsonObj, now: datetime) -> float:
    """Seconds until an offline agent has lasted long enough to report (<= 0: it has)."""
    since = parse_time(cond.get("lastTransitionTime"))
    if since is None:
        return 0.0
    return AGENT_OFFLINE_LASTING - (now - since).total_seconds()


def credentials_sync(seen: Observed) -> tuple[Cond | None, float | None]:
    """`AccessCredentialsSynchronized=False` while KubeVirt reports that the keys of
    spec.sshKeys given through the guest agent did not reach the guest (an operation
    condition: absent otherwise), and when to look again for one that may come to last.

    KubeVirt sets the VMI's condition after each sync (virt-handler, from virt-launcher's
    result): True, or False with why, e.g. the user has no account in the guest. A paused
    guest's agent cannot answer: nothing is reported then."""
    vmi = seen.vmi
    if vmi is None or seen.vmi_phase != "Running":
        return None, None
    cond = condition_of(vmi, ACCESS_CREDENTIALS)
    if cond is None or cond.get("status") != "False":
        return None, None
    said = str(cond.get("message") or "")
    if said != AGENT_OFFLINE:
        message = f"KubeVirt could not put the keys of spec.sshKeys in the guest: {said}"
        return Cond(ACCESS_CREDENTIALS, False, "SyncFailed", message), None
    paused = condition_of(vmi, "Paused") or {}
    if paused.get("status") == "True":
        return None, None
    left = _agent_offline_left(cond, seen.now)
    if left > 0:
        return None, left + 0.05
    minutes = int(AGENT_OFFLINE_LASTING // 60)
    message = (
        f"the guest agent has not answered for over {minutes} minutes, and KubeVirt gives the "
        "keys of spec.sshKeys with propagation qemuGuestAgent through it: none has reached "
        "the guest. Install and start qemu-guest-agent in the image, or give the keys with "
        f"propagation noCloud (at first boot); KubeVirt: {AGENT_OFFLINE}"
    )
    return Cond(ACCESS_CREDENTIALS, False, "GuestAgentOffline", message), None
