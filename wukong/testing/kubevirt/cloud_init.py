"""The guest's cloud-init, as far as SSH keys go: what it writes into authorized_keys at the
first boot of an instance, from KubeVirt's NoCloud data source.

KubeVirt's NoCloud metadata gives cloud-init the VMI's firmware UUID as its instance-id
(pkg/cloud-init/cloud-init.go cloudInitUUIDFromVMI; a new one at each start only for a VMI
without one), and the keys of the noCloud accessCredentials as its public keys. The VM keeps
its firmware UUID (virt-api's VM mutator, or virt-controller's firmware controller, sets it
once), so every start of the same VM is the same instance. cloud-init's ssh module runs once
per instance (cc_ssh `frequency: PER_INSTANCE`): the default user gets the public keys and
the user data's top-level `ssh_authorized_keys`, each `users` entry its own
`ssh_authorized_keys`, added to what the file holds. Later starts write nothing.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable

import yaml

from ._kube import JsonObj

DEFAULT_USER = "fedora"  # the Fedora cloud image's default_user
# virt-controller's firmware controller names a VM's firmware UUID after the VM
# (firmware.go CalculateLegacyUUID: a SHA-1 UUID of the name in this namespace).
_FIRMWARE_UUID_NS = uuid.UUID("6a1a24a1-4061-4607-8bf4-a3963d0c5895")

Secrets = Callable[[str], JsonObj | None]


def legacy_firmware_uuid(vm_name: str) -> str:
    """The firmware UUID virt-controller gives a VM that has none."""
    return str(uuid.uuid5(_FIRMWARE_UUID_NS, vm_name))


def _source(vmi: JsonObj) -> JsonObj | None:
    for volume in (vmi.get("spec") or {}).get("volumes") or []:
        if "cloudInitNoCloud" in volume:
            return dict(volume["cloudInitNoCloud"] or {})
    return None


def instance_id(vmi: JsonObj) -> str:
    """cloud-init's instance-id for this VMI: its firmware UUID, else (KubeVirt's random
    one at each start) its uid."""
    firmware = ((vmi.get("spec") or {}).get("domain") or {}).get("firmware") or {}
    return str(firmware.get("uuid") or vmi["metadata"].get("uid") or "")


def _decoded(value: str) -> str:
    return base64.b64decode(value).decode(errors="replace")


def _user_data(source: JsonObj, secret: Secrets) -> str:
    if source.get("userData"):
        return str(source["userData"])
    if source.get("userDataBase64"):
        return _decoded(str(source["userDataBase64"]))
    if name := (source.get("secretRef") or {}).get("name"):
        data = (secret(str(name)) or {}).get("data") or {}
        value = data.get("userdata") or data.get("userData")
        return _decoded(value) if value else ""
    return ""


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _public_keys(vmi: JsonObj, secret: Secrets) -> list[str]:
    """The noCloud accessCredentials' keys: every value of each Secret, a key a line."""
    found: list[str] = []
    for credential in (vmi.get("spec") or {}).get("accessCredentials") or []:
        ssh = credential.get("sshPublicKey") or {}
        if "noCloud" not in (ssh.get("propagationMethod") or {}):
            continue
        name = ((ssh.get("source") or {}).get("secret") or {}).get("secretName")
        for value in ((secret(str(name)) or {}).get("data") or {}).values():
            found += _lines(_decoded(value))
    return found


def _key_list(value: object) -> list[str]:
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return [str(k).strip() for k in items if isinstance(k, str) and k.strip()]


def _users(config: JsonObj) -> list[tuple[str, JsonObj]]:
    """`users` as (name, settings), `default` kept as a name; dashes in keys as cloud-init
    normalizes them."""
    raw = config.get("users")
    if isinstance(raw, dict):
        pairs = [(str(n), c if isinstance(c, dict) else {}) for n, c in raw.items()]
    elif isinstance(raw, list):
        pairs = [(u, {}) for u in raw if isinstance(u, str)]
        pairs += [(str(u.get("name")), u) for u in raw if isinstance(u, dict)]
    else:
        pairs = []
    return [(n, {str(k).replace("-", "_"): v for k, v in c.items()}) for n, c in pairs]


def first_boot_keys(vmi: JsonObj, secret: Secrets) -> dict[str, list[str]] | None:
    """Each user's keys cloud-init writes at the first boot of this VMI's instance; None
    for a VMI without a cloud-init disk (cloud-init finds no data source and does nothing).
    A #cloud-config that is not YAML gives no config (cloud-init logs it and goes on)."""
    source = _source(vmi)
    if source is None:
        return None
    text = _user_data(source, secret)
    config: object = {}
    if text.startswith("#cloud-config"):
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError:
            config = {}
    config = config if isinstance(config, dict) else {}
    users = _users(config)
    keys: dict[str, list[str]] = {}
    # Without `users`, the default user alone; with it, the default user only if listed.
    if not users or any(name == "default" for name, _ in users):
        given = _public_keys(vmi, secret) + _key_list(config.get("ssh_authorized_keys"))
        keys[DEFAULT_USER] = given
    for name, settings in users:
        if name != "default":
            have = keys.setdefault(name, [])
            have += _key_list(settings.get("ssh_authorized_keys"))
    return {user: list(dict.fromkeys(found)) for user, found in keys.items()}
