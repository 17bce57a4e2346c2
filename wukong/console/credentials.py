"""`wukong credentials add-ssh-key|remove-ssh-key`, as virtctl's verbs of those names: what
to write, decided from the Wukong and its Secret as read (no I/O here).

KubeVirt's `qemuGuestAgent` key propagation follows its Secret while the VM runs: a key
added to a Secret the Wukong already gives a user reaches that user's authorized_keys
without a restart. A user with no such Secret gets one (owned by the Wukong, so it goes
with it) and an `sshKeys` entry, which KubeVirt applies at the VM's next start, as with
`virtctl credentials add-ssh-key --create-secret`.

KubeVirt's guest agent replaces a user's whole authorized_keys with the keys of its Secrets
(virt-launcher's AuthorizedSSHKeysSet with flags 0), again at every resync: the keys the
user had from cloud-init (the user data's `ssh_authorized_keys`, the noCloud sshKeys) are
gone once the agent writes. The first Secret made for a user is therefore seeded with them
(`user_data_keys`, `secret_keys`); see docs/decisions.md, session 46.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any, Final

import yaml

from wukong.api import names
from wukong.api.guest import (
    GUEST_USER_MAX,
    GUEST_USER_PATTERN,
    KeyPropagation,
    mountable_key_secret,
)
from wukong.console.errors import usage

JsonObj = dict[str, Any]
KEY_TYPES: Final = ("ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-")


def public_keys(text: str, where: str, *, one: bool = False) -> list[str]:
    """The SSH public keys in `text` (a .pub file's, --value's), one a line, or a usage error
    naming `where` they came from; with `one`, exactly one. A private key is refused: it
    must never leave the machine."""
    if "PRIVATE KEY" in text:
        raise usage(f"{where}: that is a private key; give the .pub file beside it")
    found = [line.strip() for line in text.splitlines() if line.strip()]
    bad = next((k for k in found if not k.startswith(KEY_TYPES)), None)
    if not found or bad is not None or (one and len(found) != 1):
        shown = ((found[0] if found else "") if one else (bad or ""))[:40]
        raise usage(
            f"{where}: not {'one' if one else 'an'} SSH public key ({shown!r}): give a .pub "
            "file, e.g. ~/.ssh/id_ed25519.pub"
        )
    return found


def public_key(text: str, where: str) -> str:
    """The one SSH public key in `text`."""
    return public_keys(text, where, one=True)[0]


def agent_secrets(cr: JsonObj, user: str) -> list[str]:
    """The Secrets whose keys the guest agent gives `user` (sshKeys entries with propagation
    qemuGuestAgent that list the user), in spec order."""
    found = []
    for entry in (cr.get("spec") or {}).get("sshKeys") or []:
        agent = entry.get("propagation") == KeyPropagation.QEMU_GUEST_AGENT.value
        if agent and user in (entry.get("users") or []):
            found.append(str(entry["secretName"]))
    return found


def secret_name(wukong: str, user: str) -> str:
    """The Secret made for `user`'s keys: `WUKONG-ssh-USER` when KubeVirt can mount it (a
    DNS label that leaves room for `-access-cred`), else a stable hashed name."""
    name = f"{wukong}-ssh-{user}"
    if mountable_key_secret(name):
        return name
    return "ssh-" + hashlib.sha256(f"{wukong}/{user}".encode()).hexdigest()[:16]


def key_name(key: str) -> str:
    """The Secret data name of a key: the same key always gets the same name."""
    return "ssh-key-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def encoded(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def key_data(key: str) -> dict[str, str]:
    """A Secret's `data` entry holding `key`."""
    return {key_name(key): encoded(key + "\n")}


def _lines(value: str) -> list[str]:
    text = base64.b64decode(value).decode(errors="replace")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _identity(line: str) -> tuple[str, ...]:
    """What makes a key line the key it is: its type and its base64 body, not its comment
    (nor options before it); a line that is no key, itself."""
    fields = line.split()
    at = next((i for i, f in enumerate(fields) if f.startswith(KEY_TYPES)), None)
    if at is None or at + 1 >= len(fields):
        return (line.strip(),)
    return (fields[at], fields[at + 1])


def same_key(line: str, key: str) -> bool:
    """Whether `line` gives the key `key`, whatever comment either has (`ssh-ed25519 AAAA…`
    finds `ssh-ed25519 AAAA… me@laptop`, as virtctl's remove-ssh-key finds a line that
    starts with the key)."""
    return _identity(line) == _identity(key)


def holds(secret: JsonObj, key: str) -> bool:
    """Whether any value of the Secret is, or has a line that is, `key`."""
    return any(
        same_key(line, key) for v in (secret.get("data") or {}).values() for line in _lines(v)
    )


def without(secret: JsonObj, key: str) -> dict[str, str | None]:
    """The Secret's `data` merge patch that takes `key` out: a value that was only that key
    goes, one with other keys keeps them."""
    patch: dict[str, str | None] = {}
    for name, value in (secret.get("data") or {}).items():
        lines = _lines(value)
        rest = [line for line in lines if not same_key(line, key)]
        if len(rest) != len(lines):
            patch[name] = encoded("\n".join(rest) + "\n") if rest else None
    return patch


def secret_keys(secret: JsonObj) -> list[str]:
    """Every key line of every value of the Secret, as KubeVirt gives them to the guest."""
    found: list[str] = []
    for value in (secret.get("data") or {}).values():
        found += [line for line in _lines(value) if line not in found]
    return found


def secret_user_data(secret: JsonObj) -> str | None:
    """The user data KubeVirt reads from a userDataSecretRef Secret (its `userdata` key,
    else `userData`: cloud-init.go resolveNoCloudSecrets), None without either."""
    data = secret.get("data") or {}
    value = data.get("userdata") or data.get("userData")
    return None if value is None else base64.b64decode(value).decode(errors="replace")


def cloud_init_secrets(cr: JsonObj) -> list[str]:
    """The Secrets of the Wukong's noCloud sshKeys: cloud-init gives their keys to the
    image's default user at first boot."""
    return [
        str(entry["secretName"])
        for entry in (cr.get("spec") or {}).get("sshKeys") or []
        if entry.get("propagation", KeyPropagation.NO_CLOUD.value) == KeyPropagation.NO_CLOUD.value
    ]


class UnreadableUserData(ValueError):
    """User data whose keys the CLI cannot tell (its words say why)."""


# cloud-init's user data formats (cloudinit/handlers: type_from_starts_with). Scripts
# (#!, #cloud-boothook, #part-handler) give no keys the CLI could copy; archives, includes
# and MIME may, and are not read here.
_NOT_READ = ("#cloud-config-archive", "#include", "content-type:", "\x1f\x8b")
_JINJA = "## template: jinja"


def _key_list(value: Any) -> list[str]:
    """`ssh_authorized_keys` as cloud-init takes it: a list of keys (a lone string, one)."""
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return [str(k).strip() for k in items if isinstance(k, str) and k.strip()]


def _entries(users: Any) -> list[tuple[str, dict[str, Any]]]:
    """A `users` list (or map), as (name, settings) with keys spelt as cloud-init reads them
    (`ssh-authorized-keys` is `ssh_authorized_keys`: ug_util normalizes the dashes)."""
    if isinstance(users, dict):
        pairs = [(str(n), c if isinstance(c, dict) else {}) for n, c in users.items()]
    elif isinstance(users, list):
        pairs = [(str(u.get("name")), u) for u in users if isinstance(u, dict)]
    else:
        pairs = []
    return [(n, {str(k).replace("-", "_"): v for k, v in c.items()}) for n, c in pairs]


def user_data_keys(text: str, user: str) -> list[str]:
    """The keys the user data gives through cloud-init that the guest agent's set for
    `user` would replace: the top-level `ssh_authorized_keys` (the image's default user's,
    which `user` may be) and those of a `users` entry named `user`. Raises
    UnreadableUserData when it cannot tell: a #cloud-config that is not YAML, a format not
    read here, or keys cloud-init fetches (`ssh_import_id`)."""
    body = text
    if body.startswith(_JINJA):
        body = body.split("\n", 1)[1] if "\n" in body else ""
    if body.lower().startswith(_NOT_READ):
        first = body.splitlines()[0][:30] if body.strip() else ""
        raise UnreadableUserData(f"its format ({first!r}) is not one the CLI reads keys from")
    if not body.startswith("#cloud-config"):
        return []  # a script, or text cloud-init ignores: no keys
    try:
        config = yaml.safe_load(body)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UnreadableUserData(f"its #cloud-config is not valid YAML{where}") from None
    if config is None:
        return []
    if not isinstance(config, dict):
        raise UnreadableUserData("its #cloud-config is not a mapping")
    given = dict(_entries(config.get("users")))
    mine = given.get(user, {})
    if "ssh_import_id" in config or "ssh_import_id" in mine:
        raise UnreadableUserData("it imports keys (ssh_import_id), which the CLI cannot copy")
    found: list[str] = []
    for key in _key_list(config.get("ssh_authorized_keys")) + _key_list(
        mine.get("ssh_authorized_keys")
    ):
        if not any(same_key(k, key) for k in found):
            found.append(key)
    return found


def valid_user(user: str) -> bool:
    """Whether `user` is a name the Wukong's sshKeys take (the CRD's pattern and length)."""
    return len(user) <= GUEST_USER_MAX and re.fullmatch(GUEST_USER_PATTERN, user) is not None


def owned_by(secret: JsonObj, cr: JsonObj) -> bool:
    """Whether the Secret names this Wukong (by uid) among its owners."""
    uid = cr["metadata"].get("uid")
    return any(o.get("uid") == uid for o in secret["metadata"].get("ownerReferences") or [])


def new_secret(cr: JsonObj, user: str, key: str, also: list[str] | None = None) -> JsonObj:
    """A Secret holding `key` (and the keys `also`), owned by the Wukong (it is deleted with
    it) and labelled with its name, as the operator labels its children."""
    meta = cr["metadata"]
    data: dict[str, str] = {}
    for each in (key, *(also or [])):
        data |= key_data(each)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_name(meta["name"], user),
            "namespace": meta["namespace"],
            "labels": {names.LABEL_WUKONG: meta["name"]},
            "ownerReferences": [
                {
                    "apiVersion": cr["apiVersion"],
                    "kind": cr["kind"],
                    "name": meta["name"],
                    "uid": meta["uid"],
                }
            ],
        },
        "data": data,
    }


def with_secret(cr: JsonObj, secret: str, user: str) -> JsonObj | None:
    """The Wukong's merge patch giving `user` the keys of `secret` through the guest agent,
    pinned to what was read; None when its sshKeys already do."""
    entries = list((cr.get("spec") or {}).get("sshKeys") or [])
    if secret in agent_secrets(cr, user):
        return None
    entry = {
        "secretName": secret,
        "propagation": KeyPropagation.QEMU_GUEST_AGENT.value,
        "users": [user],
    }
    return {
        "metadata": {"resourceVersion": cr["metadata"]["resourceVersion"]},
        "spec": {"sshKeys": [*entries, entry]},
    }
