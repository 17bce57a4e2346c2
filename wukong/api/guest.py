"""How people get into the guest: cloud-init data and SSH keys (issue 16).

Both reference Secrets by name only. The operator never reads a Secret (its RBAC has none):
KubeVirt's virt-launcher pod mounts them, and a missing one is reported from what the
cluster says about that pod (wukong.reconcile.access).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from wukong.api._base import DNS_LABEL_PATTERN, ObjectName, WireModel, rules

# KubeVirt's VMI admitter: inline user and network data are at most 2048 bytes each
# ("userdata exceeds 2048 byte limit. Should use UserDataSecretRef for larger data.").
CLOUD_INIT_MAX_BYTES = 2048
MAX_SSH_KEYS = 16
MAX_SSH_USERS = 16
# The one cloud-init volume and disk in the VM template; a user's disk may not take the name.
CLOUD_INIT_VOLUME = "cloudinitdisk"
# A guest user the agent gives keys to: qemu-ga looks it up by name (getpwnam on Linux, the
# user's profile on Windows), so KubeVirt takes any string. Linux names and beyond: upper case
# (`Administrator` of a Windows guest), dots and '@' (`john.doe`, an SSSD `john@corp.example`),
# and a Samba machine account's trailing '$'; no spaces, slashes or control characters (a name
# written on a command line and in Secret names' hashes), and not starting with a digit or
# punctuation (`1000` would read as a uid, `-x` as an option).
GUEST_USER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.@-]*[$]?$"
GUEST_USER_MAX = 32


def _byte_limit(what: str, secret_field: str) -> tuple[AfterValidator, WithJsonSchema]:
    """An inline cloud-init document: at most KubeVirt's byte limit, said in its words."""
    message = (
        f"{what} is at most {CLOUD_INIT_MAX_BYTES} bytes (KubeVirt's limit): put larger "
        f"data in a Secret and use {secret_field}"
    )
    schema = {"type": "string", "maxLength": CLOUD_INIT_MAX_BYTES} | rules(
        (f"bytes(self).size() <= {CLOUD_INIT_MAX_BYTES}", message)
    )

    def check(value: str) -> str:
        if len(value.encode()) > CLOUD_INIT_MAX_BYTES:
            raise ValueError(f"{len(value.encode())} bytes: {message}")
        return value

    return AfterValidator(check), WithJsonSchema(schema)


_USER_DATA = _byte_limit("userData", "userDataSecretRef")
_NETWORK_DATA = _byte_limit("networkData", "networkDataSecretRef")
UserData = Annotated[str, _USER_DATA[0], _USER_DATA[1]]
NetworkData = Annotated[str, _NETWORK_DATA[0], _NETWORK_DATA[1]]


class SecretRef(WireModel):
    """A Secret in the Wukong's namespace, read by KubeVirt (never by the operator)."""

    name: ObjectName
    """The Secret's name; KubeVirt reads its `userdata` (or `networkdata`) key."""


_BOTH = "set {0} or {0}SecretRef, not both: KubeVirt takes one source for {0}"
_CLOUD_INIT_RULES = rules(
    ("!has(self.userData) || !has(self.userDataSecretRef)", _BOTH.format("userData")),
    ("!has(self.networkData) || !has(self.networkDataSecretRef)", _BOTH.format("networkData")),
    # An empty userData is none (the model's `any`, and KubeVirt's omitempty): a Helm value
    # left empty once passed the CRD and not the model, and the Wukong went unmanaged.
    (
        "has(self.userData) && self.userData != '' || has(self.userDataSecretRef)"
        " || has(self.networkData) && self.networkData != '' || has(self.networkDataSecretRef)",
        "cloudInit needs userData, userDataSecretRef, networkData or networkDataSecretRef",
    ),
)


class CloudInit(WireModel):
    """cloud-init NoCloud data for the guest's first boot: inline or from Secrets."""

    model_config = ConfigDict(json_schema_extra=_CLOUD_INIT_RULES)

    user_data: UserData | None = None
    """Inline user data (e.g. '#cloud-config ...'), at most 2048 bytes."""
    user_data_secret_ref: SecretRef | None = None
    """A Secret whose `userdata` key holds the user data (any size)."""
    network_data: NetworkData | None = None
    """Inline network config (version 1 or 2), at most 2048 bytes."""
    network_data_secret_ref: SecretRef | None = None
    """A Secret whose `networkdata` key holds the network config."""

    @model_validator(mode="after")
    def _one_source_each(self) -> CloudInit:
        for what, inline, ref in (
            ("userData", self.user_data, self.user_data_secret_ref),
            ("networkData", self.network_data, self.network_data_secret_ref),
        ):
            if inline is not None and ref is not None:
                raise ValueError(_BOTH.format(what))
        if not any(
            (self.user_data, self.user_data_secret_ref, self.network_data,
             self.network_data_secret_ref)
        ):  # fmt: skip
            raise ValueError(_CLOUD_INIT_RULES["x-kubernetes-validations"][2]["message"])
        return self

    def secret_names(self) -> list[str]:
        """The Secrets this cloud-init data comes from."""
        refs = (self.user_data_secret_ref, self.network_data_secret_ref)
        return [r.name for r in refs if r is not None]


class KeyPropagation(StrEnum):
    """How KubeVirt puts the keys into the guest."""

    NO_CLOUD = "noCloud"
    """Through the cloud-init NoCloud disk, at first boot."""
    QEMU_GUEST_AGENT = "qemuGuestAgent"
    """Through the guest agent into the listed users' authorized_keys, also while running."""


_USERS_ONLY_FOR_AGENT = (
    "users are only used with propagation qemuGuestAgent (noCloud keys go to cloud-init's "
    "default user); drop users or set propagation: qemuGuestAgent"
)
_SSH_KEY_RULES = rules(
    (
        "self.propagation != 'qemuGuestAgent' || (has(self.users) && size(self.users) > 0)",
        "propagation qemuGuestAgent needs users: the guest accounts whose authorized_keys "
        "get the keys",
    ),
    ("self.propagation == 'qemuGuestAgent' || !has(self.users)", _USERS_ONLY_FOR_AGENT),
)


# virt-controller mounts each key Secret into the virt-launcher pod as a volume named
# "<secretName>-access-cred" (pkg/virt-controller/services/rendervolumes.go). A pod volume name
# is a DNS label: a Secret name with a dot, or longer than 51 characters, gets the pod refused
# and the VM never starts, with nothing on the VM saying why. Found by the spec parity test.
ACCESS_CRED_SUFFIX = "-access-cred"
KEY_SECRET_MAX = 63 - len(ACCESS_CRED_SUFFIX)
_KEY_SECRET_MESSAGE = (
    f"an SSH key Secret's name must be at most {KEY_SECRET_MAX} lowercase letters, digits "
    "and '-', without dots: KubeVirt mounts it in the VM's pod as a volume named "
    f"'<name>{ACCESS_CRED_SUFFIX}', which must be a DNS label"
)


def mountable_key_secret(name: str) -> bool:
    """Whether KubeVirt can mount a key Secret of this name in the VM's pod."""
    return len(name) <= KEY_SECRET_MAX and re.fullmatch(DNS_LABEL_PATTERN, name) is not None


def _key_secret(value: str) -> str:
    if not mountable_key_secret(value):
        raise ValueError(f"'{value}': {_KEY_SECRET_MESSAGE}")
    return value


KeySecretName = Annotated[
    str,
    AfterValidator(_key_secret),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": 253,  # an object name's bound; the rule says what KubeVirt can take
            **rules(
                (
                    f"size(self) <= {KEY_SECRET_MAX} && self.matches('{DNS_LABEL_PATTERN}')",
                    _KEY_SECRET_MESSAGE,
                )
            ),
        }
    ),
]


class SshKey(WireModel):
    """SSH public keys from a Secret (every value of it is a key), given to the guest."""

    model_config = ConfigDict(json_schema_extra=_SSH_KEY_RULES)

    secret_name: KeySecretName
    """The Secret holding the public keys, in the Wukong's namespace (a DNS label)."""
    propagation: KeyPropagation = KeyPropagation.NO_CLOUD
    """noCloud (cloud-init at first boot) or qemuGuestAgent (needs users)."""
    users: (
        Annotated[
            list[Annotated[str, Field(pattern=GUEST_USER_PATTERN, max_length=GUEST_USER_MAX)]],
            Field(max_length=MAX_SSH_USERS, json_schema_extra={"x-kubernetes-list-type": "set"}),
        ]
        | None
    ) = None
    """qemuGuestAgent: the guest users whose authorized_keys receive the keys."""

    @field_validator("users")
    @classmethod
    def _unique_users(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("users must be unique")
        return value

    @model_validator(mode="after")
    def _users_match_propagation(self) -> SshKey:
        if self.propagation is KeyPropagation.QEMU_GUEST_AGENT and not self.users:
            raise ValueError(_SSH_KEY_RULES["x-kubernetes-validations"][0]["message"])
        if self.propagation is KeyPropagation.NO_CLOUD and self.users is not None:
            raise ValueError(_USERS_ONLY_FOR_AGENT)
        return self


SSH_KEYS_RULES = rules(
    (
        "self.all(k, self.exists_one(m, m.secretName == k.secretName))",
        "each Secret may be listed once in sshKeys (KubeVirt mounts it once)",
    ),
)
