"""virt-handler's access credentials: the SSH keys of a running VMI's `qemuGuestAgent`
accessCredentials, put into the listed users' authorized_keys by the guest agent, and
again whenever their Secret changes (kubelet updates the mounted Secret in the pod, and
virt-launcher's credential manager pushes the new set). Each sync that changes the guest's
keys is told by virt-handler's `AccessCredentialsSyncSuccess` Event on the VMI.

`noCloud` keys are cloud-init's, at first boot only, and not played here.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable

from ._informer import Informer
from ._kube import EVENTS, JsonObj, Kube, key_of
from ._queue import Controller
from .events import event
from .guest import Guest
from .objects import deleting, phase

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


class AccessCredentials(Controller):
    """Keeps each running guest's authorized keys those its VMI's Secrets hold."""

    name = "access-credentials"
    workers = 1

    def __init__(
        self, kube: Kube, vmis: Informer, secrets: Informer, guest: Callable[[str, str], Guest]
    ) -> None:
        super().__init__()
        self.kube, self.vmis, self.secrets, self.guest = kube, vmis, secrets, guest
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
        guest = self.guest(namespace, name)
        if not guest.agent_connected:
            return None
        keys = wanted_keys(vmi, lambda secret: self.secrets.get(namespace, secret))
        if keys == guest.authorized_keys:
            return None
        guest.authorized_keys = keys
        node = str((vmi.get("status") or {}).get("nodeName") or "")
        body = event(
            vmi,
            "VirtualMachineInstance",
            "AccessCredentialsSyncSuccess",
            "Access credentials sync successful.",
            component="virt-handler",
            host=node,
            api_version="kubevirt.io/v1",
        )
        await self.kube.create(EVENTS, namespace, body)
        return None
