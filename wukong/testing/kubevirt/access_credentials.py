"""virt-handler's access credentials: the SSH keys of a running VMI's `qemuGuestAgent`
accessCredentials, put into the listed users' authorized_keys by the guest agent, and
again whenever their Secret changes (kubelet updates the mounted Secret in the pod, and
virt-launcher's credential manager pushes the new set).

Each sync's result is virt-launcher's (pkg/virt-launcher/virtwrap/access-credentials):
"Guest agent is offline" while the agent does not answer, an error naming the user whose
keys could not be written (not an account of the image), else success. virt-handler turns
it into the VMI's `AccessCredentialsSynchronized` condition (no reason; the message) and,
whenever that condition changes, an `AccessCredentialsSyncSuccess` or (Warning)
`AccessCredentialsSyncFailed` Event (pkg/virt-handler/vm.go
updateAccessCredentialConditions): `credentials_condition` and `credentials_event`.

The agent sets each listed user's whole authorized_keys (virt-launcher's
AuthorizedSSHKeysSet with flags 0, "the authorized_keys file is overwritten"): keys the user
had another way, from cloud-init at the instance's first boot (`cloud_init.py`, played here
before the agent's, as the guest boots before its agent answers), are gone once it writes.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable

from ._informer import Informer
from ._kube import JsonObj, key_of
from ._queue import Controller
from .cloud_init import first_boot_keys, instance_id
from .events import event
from .guest import Guest
from .objects import condition, condition_true, deleting, drop_condition, now_iso, phase

log = logging.getLogger(__name__)


def wanted_keys(vmi: JsonObj, secret: Callable[[str], JsonObj | None]) -> dict[str, list[str]]:
    """Each guest user's keys, from the VMI's qemuGuestAgent accessCredentials and the
    current data of their Secrets (a missing Secret gives none)."""
    users: dict[str, list[str]] = {}
    for credential in (vmi.get("spec") or {}).get("accessCredentials") or []:
        ssh = credential.get("sshPublicKey") or {}
        agent = (ssh.get("propagationMethod") or {}).get("qemuGuestAgent")
        name = ((ssh.get("source") or {}).get("secret") or {}).get("secretName")
        if agent is None or not name:
            continue
        keys: list[str] = []
        for value in ((secret(name) or {}).get("data") or {}).values():
            text = base64.b64decode(value).decode(errors="replace")
            keys += [line.strip() for line in text.splitlines() if line.strip()]
        for user in agent.get("users") or []:
            have = users.setdefault(user, [])
            have += [k for k in keys if k not in have]
    return users


SYNCED = "AccessCredentialsSynchronized"
AGENT_OFFLINE = "Guest agent is offline"
# A sync that failed is tried again on virt-launcher's next tick (every 15 s; shorter here, as
# the simulator's other clocks are): a user given an account meanwhile gets the keys then.
RETRY = 0.5


def _write_error(user: str) -> str:
    """virt-launcher's words when a user's keys cannot be written (agentSetAuthorizedKeys:
    both of its ways fail for an account the guest does not have)."""
    return (
        f"Error encountered writing ssh pub key access credentials for user [{user}]: failed "
        f"to set SSH keys: error from guest-ssh-add-authorized-keys: user '{user}' not found; "
        f"error from using guest-file-write: unable to detect home directory of user {user}"
    )


def _said(cond: JsonObj) -> tuple[object, object]:
    return cond.get("status"), cond.get("message") or ""


def credentials_condition(vmi: JsonObj, guest: Guest, status: JsonObj) -> None:
    """virt-handler's AccessCredentialsSynchronized from the launcher's last sync of this
    VMI: replaced (a new lastTransitionTime) whenever its status or message changes."""
    sync = guest.credentials_sync
    if sync is None or sync[0] != vmi["metadata"]["uid"]:
        return
    _, succeeded, message = sync
    want = "True" if succeeded else "False"
    old = condition({"status": status}, SYNCED)
    if old is not None and _said(old) == (want, message):
        return
    conds = drop_condition(list(status.get("conditions") or []), SYNCED)
    # Every field Go writes: virt-controller's status patches test the conditions it read
    # (lastProbeTime is not omitempty), and one missing field failed each of its patches.
    new: JsonObj = {
        "type": SYNCED,
        "status": want,
        "lastProbeTime": None,
        "lastTransitionTime": now_iso(),
    }
    if message:
        new["message"] = message
    status["conditions"] = [*conds, new]


def credentials_event(vmi: JsonObj, before: JsonObj, after: JsonObj) -> JsonObj | None:
    """virt-handler's Event for a changed AccessCredentialsSynchronized (None: unchanged)."""
    old, new = condition({"status": before}, SYNCED), condition({"status": after}, SYNCED)
    if new is None or (old is not None and _said(old) == _said(new)):
        return None
    message = str(new.get("message") or "")
    if new.get("status") == "True":
        reason, type_ = "AccessCredentialsSyncSuccess", "Normal"
        text = "Access credentials sync successful" + (f": {message}" if message else ".")
    else:
        reason, type_ = "AccessCredentialsSyncFailed", "Warning"
        text = f"Access credentials sync failed: {message}"
    node = str(after.get("nodeName") or "")
    return event(
        vmi,
        "VirtualMachineInstance",
        reason,
        text,
        component="virt-handler",
        host=node,
        api_version="kubevirt.io/v1",
        type_=type_,
    )


class AccessCredentials(Controller):
    """virt-launcher's credential manager: keeps each running guest's authorized keys those
    its VMI's Secrets hold, and reports each sync on the guest (`credentials_sync`)."""

    name = "access-credentials"
    workers = 1

    def __init__(
        self, vmis: Informer, secrets: Informer, guest: Callable[[str, str], Guest]
    ) -> None:
        super().__init__()
        self.vmis, self.secrets, self.guest = vmis, secrets, guest
        vmis.handlers.append(lambda obj: self.enqueue(key_of(obj)))
        secrets.handlers.append(self._secret_changed)

    def _secret_changed(self, secret: JsonObj) -> None:
        namespace = secret["metadata"]["namespace"]
        for vmi in self.vmis.list(namespace):
            self.enqueue(key_of(vmi))

    async def reconcile(self, key: str) -> float | None:
        namespace, _, name = key.partition("/")
        vmi = self.vmis.get(namespace, name)
        if vmi is None or phase(vmi) != "Running" or deleting(vmi):
            return None
        guest, uid = self.guest(namespace, name), vmi["metadata"]["uid"]

        def secrets(secret: str) -> JsonObj | None:
            return self.secrets.get(namespace, secret)

        _first_boot(vmi, guest, secrets)
        keys = wanted_keys(vmi, secrets)
        if not keys:
            return None  # no qemuGuestAgent keys: virt-launcher watches nothing
        # The agent answers once it is up (virt-handler's AgentConnected says when); until
        # then each try finds it offline, and the next tick tries again.
        if not (guest.agent_connected and condition_true(vmi, "AgentConnected")):
            guest.report_credentials(uid, False, AGENT_OFFLINE)
            return RETRY
        for user, have in keys.items():
            if user in guest.accounts:
                guest.authorized_keys[user] = list(have)  # the whole set: overwritten
        failed = [user for user in keys if user not in guest.accounts]
        # virt-launcher reports each failing user in turn: the last one's words stay.
        guest.report_credentials(uid, not failed, _write_error(failed[-1]) if failed else "")
        return RETRY if failed else None


def _first_boot(vmi: JsonObj, guest: Guest, secrets: Callable[[str], JsonObj | None]) -> None:
    """cloud-init's keys, at the first boot of the VMI's instance only (its instance-id
    is the firmware UUID, kept across restarts): added to what each user has, each
    `users` entry made an account."""
    iid = instance_id(vmi)
    if guest.cloud_init_instance == iid:
        return
    given = first_boot_keys(vmi, secrets)
    if given is None:
        return  # no cloud-init disk: cloud-init does nothing, and will on a later boot
    guest.cloud_init_instance = iid
    for user, keys in given.items():
        guest.accounts.add(user)
        have = guest.authorized_keys.setdefault(user, [])
        have += [k for k in keys if k not in have]
