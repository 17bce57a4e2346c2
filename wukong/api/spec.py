"""What a user asks for: `Wukong.spec` (SPEC §1), with the CEL rules the API server enforces.

The CEL rules live next to the fields they guard so that the models stay the one source of
truth for the CRD (`wukong.api.crd`). `validate_spec` repeats them for defence in depth.
"""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from wukong.api._base import DnsLabel, ObjectName, WireModel, rules
from wukong.api.guest import (
    ACCESS_CRED_SUFFIX,
    CLOUD_INIT_VOLUME,
    MAX_SSH_KEYS,
    SSH_KEYS_RULES,
    CloudInit,
    SshKey,
)
from wukong.api.names import (
    LAUNCHER_FEATURE_VOLUMES,
    LAUNCHER_VOLUMES,
    POD_NETWORK_NAME,
    object_ref,
)
from wukong.api.placement import (
    HOTPLUG_ALIGNMENT,
    HOTPLUG_MIN_MEMORY,
    HOTPLUG_RULES,
    SIZE_RULES,
    Affinity,
    EvictionStrategy,
    Hotplug,
    InstancetypeRef,
    NodeSelector,
    PreferenceRef,
    Tolerations,
)
from wukong.api.quantity import (
    Quantity,
    at_least,
    multiple_of,
    parse_bytes,
    parse_quantity,
)
from wukong.api.urls import image_problem

MAX_DISKS = 16
MAX_NETWORKS = 8
MAX_GRACE_PERIOD_SECONDS = 86400
# Printable ASCII only: Go's (RE2) \S matches a non-breaking space, Python's does not; an
# explicit range reads the same in the CRD and here. Anything else is percent-encoded.
IMAGE_PATTERN = r"^(docker|https?)://[!-~]+$"
IMAGE_MAX_LENGTH = 2048
# KubeVirt's VMI admitter: "must be greater than or equal to 1M".
MIN_MEMORY = "1M"
# CDI's DataVolume admitter: "size should be at least 1MiB" (KubeVirt refuses smaller disks).
MIN_DISK_SIZE = "1Mi"
# KubeVirt's spec.domain.cpu.cores is a uint32 in Go, but its CRD declares it (like sockets,
# threads and maxSockets) `format: int32`, and the API server refuses a larger VM.
MAX_CPU = 2**31 - 1
# A Linux interface name (dev_valid_name): 1-15 characters, none of '/', ':' or space, and
# not "." or ".." (the bridge CNI plugin failed the pod at every start).
BRIDGE_PATTERN = (
    r"^([A-Za-z0-9_-][A-Za-z0-9_.-]{0,14}|\.[A-Za-z0-9_-][A-Za-z0-9_.-]{0,13}"
    r"|\.\.[A-Za-z0-9_.-]{1,13})$"
)
# 'name' or 'namespace/name' of an object in the Wukong's namespace or another one.
OBJECT_REF_PATTERN = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


MemoryQuantity = Annotated[
    Quantity, *at_least(MIN_MEMORY, "memory", "KubeVirt refuses less", "512Mi or 4Gi")
]
DiskSize = Annotated[
    Quantity,
    *at_least(MIN_DISK_SIZE, "a disk size", "CDI and KubeVirt refuse smaller disks", "20Gi"),
]

_IMAGE_RULES = rules(
    (
        "isURL(self)",
        "not a URL CDI can import from: check the host, the port (digits only), "
        "[brackets] around IPv6 addresses and %-escapes (a % is followed by two hex digits)",
    ),
    (
        "!isURL(self) || url(self).getHost() != ''",
        "the URL names no host (registry or web server) after '://'",
    ),
)
ImageSource = Annotated[
    str,
    WithJsonSchema(
        {"type": "string", "pattern": IMAGE_PATTERN, "maxLength": IMAGE_MAX_LENGTH} | _IMAGE_RULES
    ),
]


class RunStrategy(StrEnum):
    """KubeVirt's runStrategy; Once and WaitAsReceiver are deliberately not offered."""

    ALWAYS = "Always"
    RERUN_ON_FAILURE = "RerunOnFailure"
    MANUAL = "Manual"
    HALTED = "Halted"


class Action(StrEnum):
    """An imperative lifecycle request."""

    START = "start"
    STOP = "stop"
    RESTART = "restart"
    SUSPEND = "suspend"
    RESUME = "resume"
    MIGRATE = "migrate"
    SNAPSHOT = "snapshot"
    RESTORE = "restore"


class AccessMode(StrEnum):
    """How the disk's volume may be mounted; live migration needs ReadWriteMany."""

    READ_WRITE_ONCE = "ReadWriteOnce"
    READ_WRITE_MANY = "ReadWriteMany"


class DiskBus(StrEnum):
    """The disk bus; both can be hot-plugged, and virtio is the fast default."""

    VIRTIO = "virtio"
    SCSI = "scsi"


class StartStrategy(WireModel):
    """What happens when the Wukong is created."""

    auto_start: bool = True
    """Start the VM as soon as it is created; false leaves it stopped. Read once, when the VM
    is made (status.autoStart): a later edit starts or stops nothing (wukong start/stop)."""


class DetachOptions(WireModel):
    """How a disk is detached when it is later removed from spec.disks."""

    force: bool = False
    """Skip the guest-agent check that the disk is not mounted."""
    preserve_data: bool = False
    """Keep the PVC after detaching instead of deleting it."""


_ONE_SOURCE = (
    "a disk is imported (image), cloned from a PVC (cloneFrom) or from a DataSource "
    "(dataSource): name one of them"
)
_DISK_RULES = rules(
    (
        "[has(self.image), has(self.cloneFrom), has(self.dataSource)].filter(x, x).size() <= 1",
        _ONE_SOURCE,
    ),
    (
        "!isQuantity(self.size) || !isQuantity(oldSelf.size)"
        " || quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0",
        "a disk cannot shrink: volumes can only grow; set size back to its previous value or more",
    ),
    (
        # The image itself may change: Wukong re-imports a disk whose import never
        # succeeded (the way out of a failed import) and ignores it after that.
        "has(self.image) == has(oldSelf.image)",
        "a disk cannot switch between blank and imported; add a new disk instead",
    ),
    (
        # The source may change (a clone that never finished is made again from the new one).
        "has(self.cloneFrom) == has(oldSelf.cloneFrom)"
        " && has(self.dataSource) == has(oldSelf.dataSource)",
        "a disk cannot switch between blank, imported and cloned; add a new disk instead",
    ),
    (
        "has(self.storageClassName) == has(oldSelf.storageClassName)"
        " && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)",
        "the storageClassName of an existing disk cannot change; add a new disk instead",
    ),
    (
        "has(self.accessMode) == has(oldSelf.accessMode)"
        " && (!has(self.accessMode) || self.accessMode == oldSelf.accessMode)",
        "the accessMode of an existing disk cannot change; add a new disk instead",
    ),
)


def _ref_check(kind: str) -> AfterValidator:
    """Checks 'name' (in the Wukong's namespace) or 'namespace/name' of a `kind`."""

    def check(value: str) -> str:
        namespace, _, name = value.rpartition("/")
        if len(name) > 253 or len(namespace) > 63 or not re.fullmatch(OBJECT_REF_PATTERN, value):
            raise ValueError(
                f"'{value}' is not a {kind} name: use 'name' for a {kind} in this namespace or "
                "'namespace/name' for one in another namespace (lowercase letters, digits, "
                "'-', '.')"
            )
        return value

    return AfterValidator(check)


_OBJECT_REF = WithJsonSchema({"type": "string", "pattern": OBJECT_REF_PATTERN, "maxLength": 317})
CloneRef = Annotated[str, _ref_check("PVC"), _OBJECT_REF]
"""An existing PVC to copy: 'name' in the Wukong's namespace, or 'namespace/name'."""
DataSourceRef = Annotated[str, _ref_check("DataSource"), _OBJECT_REF]
"""A CDI DataSource: 'name' in the Wukong's namespace, or 'namespace/name'."""
NadRef = Annotated[str, _ref_check("NAD"), _OBJECT_REF]
"""An existing NAD: 'name' in the Wukong's namespace, or 'namespace/name' (issue 15)."""


FEATURE_VOLUME_WORDS = (
    f"disk names {', '.join(LAUNCHER_FEATURE_VOLUMES)} are volumes KubeVirt's virt-launcher "
    "pod gets with some features (persistent EFI/TPM, hugepages, hook sidecars, virtiofs, "
    "kernel boot): a new disk may not take one (a disk that has one already keeps it); pick "
    "another"
)
# On the name, not the list: the API server ratchets a rule on a value that did not change
# (spec.disks is a map list, items correlated by name), so a stored disk so named passes
# every later write, and a new one is refused.
_FEATURE_VOLUME_RULE = rules((f"!(self in {list(LAUNCHER_FEATURE_VOLUMES)})", FEATURE_VOLUME_WORDS))


class DiskSpec(WireModel):
    """One disk of the VM: an imported image or a cloned PVC (DataVolume), or a blank PVC."""

    model_config = ConfigDict(json_schema_extra=_DISK_RULES)

    name: Annotated[DnsLabel, Field(json_schema_extra=_FEATURE_VOLUME_RULE)]
    """Disk name, unique in the Wukong; also names the PVC '<wukong>-<disk>'."""
    size: DiskSize
    """Requested size, e.g. 20Gi; it may grow later but never shrink."""
    image: ImageSource | None = None
    """docker://registry/image (container disk) or http(s):// URL to import; none = blank."""
    clone_from: CloneRef | None = None
    """An existing PVC to copy (a golden image), 'name' or 'namespace/name'; CDI clones it.
    Another namespace's PVC needs CDI's clone permission there (datavolumes/source)."""
    data_source: DataSourceRef | None = None
    """A CDI DataSource (a golden image a DataImportCron keeps fresh, e.g.
    'kubevirt-os-images/fedora'), 'name' or 'namespace/name'; CDI clones what it points to."""
    storage_class_name: ObjectName | None = None
    """StorageClass of the PVC; the cluster default when unset."""
    boot: bool = False
    """Boot from this disk; without one, the first disk is the system disk."""
    bus: DiskBus = DiskBus.VIRTIO
    """Disk bus in the guest."""
    detach_options: DetachOptions | None = None
    """How to detach this disk when it is removed from spec.disks."""
    access_mode: AccessMode | None = None
    """ReadWriteMany lets the VM live-migrate; absent: the storage's default (CDI's
    StorageProfile for imported disks, ReadWriteOnce for blank ones)."""

    @field_validator("image")
    @classmethod
    def _image_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if len(value) > IMAGE_MAX_LENGTH:
            raise ValueError(f"an image URL has at most {IMAGE_MAX_LENGTH} characters")
        problem = image_problem(value)
        if problem is None and not re.fullmatch(IMAGE_PATTERN, value):
            problem = "not an image source"
        if problem is not None:
            raise ValueError(f"'{value}' is not an image source: {problem}")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> DiskSpec:
        if sum(x is not None for x in (self.image, self.clone_from, self.data_source)) > 1:
            raise ValueError(_ONE_SOURCE)
        return self

    @property
    def size_bytes(self) -> int:
        """The size in whole bytes."""
        return parse_bytes(self.size)

    @property
    def source(self) -> Literal["registry", "http", "clone", "datasource", "blank"]:
        """Where the disk's content comes from."""
        if self.clone_from is not None:
            return "clone"
        if self.data_source is not None:
            return "datasource"
        if self.image is None:
            return "blank"
        return "registry" if self.image.startswith("docker://") else "http"

    @property
    def populated(self) -> bool:
        """CDI fills the disk (a DataVolume): imported or cloned, not blank."""
        return any(x is not None for x in (self.image, self.clone_from, self.data_source))

    def clone_source(self, namespace: str) -> tuple[str, str] | None:
        """(namespace, name) of the PVC this disk copies; a bare name is in `namespace`."""
        return None if self.clone_from is None else object_ref(namespace, self.clone_from)

    def data_source_ref(self, namespace: str) -> tuple[str, str] | None:
        """(namespace, name) of the DataSource this disk is made from."""
        return None if self.data_source is None else object_ref(namespace, self.data_source)

    @property
    def detach(self) -> DetachOptions:
        """The detach options, with defaults filled in."""
        return self.detach_options or DetachOptions()


_NETWORK_RULES = rules(
    (f"self.name != '{POD_NETWORK_NAME}'", "the name 'default' is taken by the pod network"),
    ("!has(self.vlan) || has(self.bridge)", "vlan needs bridge: name the Linux bridge to tag on"),
    (
        "!has(self.nadName) || (!has(self.bridge) && !has(self.vlan) && !has(self.mtu))",
        "bridge, vlan and mtu configure a NAD the operator creates; with nadName the existing "
        "NAD is used as is, so drop them or drop nadName",
    ),
)
_BRIDGE_ONLY = (
    "only type 'bridge' is supported: macvlan and ipvlan cannot carry KubeVirt's bridge binding "
    "(the MAC address moves into the guest); use a Linux bridge, or an existing bridge NAD "
    "via nadName"
)


class NetworkSpec(WireModel):
    """A secondary network: an existing NAD (nadName) or one the operator creates."""

    model_config = ConfigDict(json_schema_extra=_NETWORK_RULES)

    name: DnsLabel
    """Network (and guest interface) name, unique in the Wukong."""
    nad_name: NadRef | None = None
    """An existing NetworkAttachmentDefinition: 'name', or 'namespace/name' if policy allows."""
    type: Annotated[
        str,
        WithJsonSchema(
            {"type": "string", "maxLength": 32} | rules(("self == 'bridge'", _BRIDGE_ONLY))
        ),
    ] = "bridge"
    """CNI type of an operator-created NAD."""
    bridge: Annotated[str, Field(pattern=BRIDGE_PATTERN, max_length=15)] | None = None
    """Linux bridge on the nodes (at most 15 characters)."""
    vlan: Annotated[int, Field(ge=1, le=4094)] | None = None
    """802.1Q VLAN id, 1-4094; needs bridge."""
    mtu: Annotated[int, Field(ge=576, le=65535)] | None = None
    """MTU of the interface."""

    @field_validator("type")
    @classmethod
    def _bridge_only(cls, value: str) -> str:
        if value != "bridge":
            raise ValueError(f"type '{value}': {_BRIDGE_ONLY}")
        return value

    @field_validator("name")
    @classmethod
    def _not_pod_network(cls, value: str) -> str:
        if value == POD_NETWORK_NAME:
            raise ValueError("the name 'default' is taken by the pod network; pick another")
        return value

    @property
    def owned(self) -> bool:
        """True when the operator creates and owns the NAD."""
        return self.nad_name is None


GracePeriod = Annotated[int, Field(ge=0, le=MAX_GRACE_PERIOD_SECONDS)]


_SNAPSHOT_NAME_ONLY = (
    "snapshotName names the snapshot to take (snapshot) or to restore (restore), and only those"
)
_RESTORE_NEEDS_NAME = "restore needs snapshotName: the VirtualMachineSnapshot to restore"


class LifecycleAction(WireModel):
    """An imperative request, executed once per generation."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            (
                "!has(self.snapshotName) || self.action == 'snapshot' || self.action == 'restore'",
                _SNAPSHOT_NAME_ONLY,
            ),
            ("self.action != 'restore' || has(self.snapshotName)", _RESTORE_NEEDS_NAME),
        )
    )

    action: Action
    """start, stop, restart, suspend, resume, migrate, snapshot or restore."""
    force: bool = False
    """stop/restart: power off at once instead of a graceful shutdown."""
    grace_period_seconds: GracePeriod | None = None
    """stop: seconds of graceful shutdown before power-off."""
    snapshot_name: DnsLabel | None = None
    """snapshot: the VirtualMachineSnapshot's name (default '<wukong>-snapshot-<id>');
    restore: the VirtualMachineSnapshot to restore the stopped VM's disks from."""
    requested_at: str | None = Field(None, max_length=64)
    """When the request was made (the CLI sets it): a new value repeats the same action."""

    @model_validator(mode="after")
    def _snapshot_name_only(self) -> LifecycleAction:
        if self.snapshot_name is not None and self.action not in (Action.SNAPSHOT, Action.RESTORE):
            raise ValueError(_SNAPSHOT_NAME_ONLY)
        if self.action is Action.RESTORE and self.snapshot_name is None:
            raise ValueError(_RESTORE_NEEDS_NAME)
        return self


class DeleteOptions(WireModel):
    """What happens when the Wukong is deleted."""

    preserve_disks: bool = False
    """Keep every disk's PVC (labelled, without owner) after deletion."""
    preserve_disks_list: Annotated[
        list[DnsLabel],
        Field(max_length=MAX_DISKS, json_schema_extra={"x-kubernetes-list-type": "set"}),
    ] = Field(default_factory=list)
    """Names of disks to keep after deletion."""
    grace_period_seconds: GracePeriod | None = None
    """Seconds of graceful VM shutdown before the VM is deleted."""
    force: bool = False
    """Skip the graceful stop and release the finalizer at once."""

    def keeps(self, disk_name: str) -> bool:
        """Whether deleting the Wukong keeps this disk."""
        return self.preserve_disks or disk_name in self.preserve_disks_list


_BOOTS = "has(d.boot) && d.boot"
LAUNCHER_VOLUME_WORDS = (
    f"disk names {', '.join(LAUNCHER_VOLUMES)} are volumes KubeVirt's virt-launcher pod "
    "has already (the pod would be refused and the VM never start); pick another"
)
ACCESS_CRED_WORDS = (
    f"a disk may not be named '<secret>{ACCESS_CRED_SUFFIX}' after one of its sshKeys Secrets: "
    "KubeVirt mounts that Secret in the VM's pod under that name (the pod would be refused and "
    "the VM never start); pick another"
)
_DISKS_RULES = rules(
    ("self.all(d, self.exists_one(e, e.name == d.name))", "disk names must be unique"),
    (
        f"self.all(d, d.name != '{CLOUD_INIT_VOLUME}')",
        f"the disk name '{CLOUD_INIT_VOLUME}' is taken by the cloud-init disk; pick another",
    ),
    (
        f"self.all(d, !(d.name in {list(LAUNCHER_VOLUMES)}))",
        LAUNCHER_VOLUME_WORDS,
    ),
    (f"self.filter(d, {_BOOTS}).size() <= 1", "at most one disk may have boot: true"),
    (
        f"oldSelf.size() == 0 || (oldSelf.exists(d, {_BOOTS})"
        f" ? oldSelf.filter(d, {_BOOTS}).all(o, self.exists(n, n.name == o.name))"
        " : self.exists(n, n.name == oldSelf[0].name))",
        "the system disk (boot: true, else the first disk) cannot be removed; put it back",
    ),
    # Nor replaced by a reorder: the first disk is the boot disk without `boot: true`, so
    # moving another disk first changed what the VM boots from, and a second edit could then
    # remove the real system disk as an ordinary one (review s23 F8).
    (
        "oldSelf.size() == 0 || self.size() == 0 || ("
        f"oldSelf.exists(d, {_BOOTS})"
        f" ? oldSelf.all(o, !({_BOOTS.replace('d.', 'o.')})"
        f" || self.exists(n, n.name == o.name && {_BOOTS.replace('d.', 'n.')})"
        f" || (!self.exists(n, {_BOOTS.replace('d.', 'n.')}) && self[0].name == o.name))"
        f" : (self.exists(n, {_BOOTS.replace('d.', 'n.')})"
        f" ? self.exists(n, {_BOOTS.replace('d.', 'n.')} && n.name == oldSelf[0].name)"
        " : self[0].name == oldSelf[0].name))",
        "the system disk (boot: true, else the first disk) cannot change: keep it first "
        "(or mark it boot: true)",
    ),
)
_NETWORKS_RULES = rules(
    ("self.all(n, self.exists_one(m, m.name == n.name))", "network names must be unique"),
)
_SPEC_RULES = rules(
    (
        "!has(self.deleteOptions) || !has(self.deleteOptions.preserveDisksList)"
        " || self.deleteOptions.preserveDisksList.all(k, self.disks.exists(d, d.name == k))",
        "deleteOptions.preserveDisksList may only name disks listed in spec.disks",
    ),
    (
        "!has(self.sshKeys) || self.disks.all(d,"
        f" !self.sshKeys.exists(k, d.name == k.secretName + '{ACCESS_CRED_SUFFIX}'))",
        ACCESS_CRED_WORDS,
    ),
    *SIZE_RULES,
    *HOTPLUG_RULES,
)
_MAP_BY_NAME = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}


class WukongSpec(WireModel):
    """The VM a user wants and what should happen to it."""

    model_config = ConfigDict(json_schema_extra=_SPEC_RULES)

    cpu: Annotated[int, Field(ge=1, le=MAX_CPU)] | None = None
    """vCPUs (at most 2147483647, KubeVirt's limit); required unless instancetype."""
    memory: MemoryQuantity | None = None
    """Guest memory, e.g. 4Gi; required unless instancetype."""
    hotplug: Hotplug | None = None
    """Let cpu and memory grow while the VM runs (KubeVirt CPU and memory hot-plug), up to
    these maxima; absent: cpu and memory changes need a restart."""
    instancetype: InstancetypeRef | None = None
    """An instancetype.kubevirt.io size class instead of cpu and memory."""
    preference: PreferenceRef | None = None
    """An instancetype.kubevirt.io preference (device and firmware defaults)."""
    run_strategy: RunStrategy = RunStrategy.ALWAYS
    """KubeVirt runStrategy: Always, RerunOnFailure, Manual or Halted."""
    start_strategy: StartStrategy = Field(
        default_factory=StartStrategy, json_schema_extra={"default": {}}
    )
    """Whether the VM starts when it is created."""
    disks: Annotated[
        list[DiskSpec],
        Field(min_length=1, max_length=MAX_DISKS, json_schema_extra=_MAP_BY_NAME | _DISKS_RULES),
    ]
    """Disks; the one with boot: true, else the first, is the system disk."""
    networks: Annotated[
        list[NetworkSpec],
        Field(max_length=MAX_NETWORKS, json_schema_extra=_MAP_BY_NAME | _NETWORKS_RULES),
    ] = Field(default_factory=list)
    """Secondary networks; the pod network is always the first interface."""
    lifecycle_action: LifecycleAction | None = None
    """An imperative start/stop/restart/suspend/resume request."""
    delete_options: DeleteOptions | None = None
    """What deletion keeps and how long it waits."""
    cloud_init: CloudInit | None = None
    """cloud-init NoCloud user and network data, inline or from Secrets."""
    ssh_keys: Annotated[
        list[SshKey],
        Field(max_length=MAX_SSH_KEYS, json_schema_extra=SSH_KEYS_RULES),
    ] = Field(default_factory=list)
    """Secrets of SSH public keys KubeVirt gives the guest (accessCredentials)."""
    node_selector: NodeSelector | None = None
    """Run only on nodes with these labels (applied live to a running VM)."""
    tolerations: Tolerations | None = None
    """Taints the VM tolerates (applied live to a running VM)."""
    affinity: Affinity | None = None
    """Node and pod affinity (applied live to a running VM)."""
    eviction_strategy: EvictionStrategy | None = None
    """On node drain: None, LiveMigrate, LiveMigrateIfPossible or External; absent = the
    cluster's default."""

    @model_validator(mode="after")
    def _size_from_one_place(self) -> WukongSpec:
        sized = self.cpu is not None or self.memory is not None
        if self.instancetype is not None and sized:
            raise ValueError(SIZE_RULES[0][1])
        if self.instancetype is None and (self.cpu is None or self.memory is None):
            raise ValueError(SIZE_RULES[1][1])
        return self

    @model_validator(mode="after")
    def _hotplug_fits(self) -> WukongSpec:
        plug = self.hotplug
        if plug is None:
            return self
        memory = self.memory_bytes
        maximum = None if plug.max_memory is None else parse_quantity(plug.max_memory)
        broken = (
            self.instancetype is not None,
            plug.max_cpu is not None and self.cpu is not None and self.cpu > plug.max_cpu,
            maximum is not None and memory is not None and memory > maximum,
            maximum is not None
            and memory is not None
            and memory < parse_quantity(HOTPLUG_MIN_MEMORY),
            maximum is not None
            and memory is not None
            and not all(multiple_of(m, HOTPLUG_ALIGNMENT) for m in (memory, maximum)),
        )
        for (_, message), bad in zip(HOTPLUG_RULES, broken, strict=True):
            if bad:
                raise ValueError(message)
        return self

    @field_validator("ssh_keys")
    @classmethod
    def _each_secret_once(cls, value: list[SshKey]) -> list[SshKey]:
        secrets = [k.secret_name for k in value]
        if len(set(secrets)) != len(secrets):
            raise ValueError(SSH_KEYS_RULES["x-kubernetes-validations"][0]["message"])
        return value

    @property
    def needs_cloud_init_disk(self) -> bool:
        """Whether the VM gets a cloud-init NoCloud disk: for its data, or for any SSH keys.
        Keys the guest agent gives need one too: a cloud image makes its login user (`fedora`,
        `ubuntu`, `cloud-user`) from cloud-init's default_user, and without a data source
        cloud-init turns itself off, so there was no user to give them to (session 46)."""
        return self.cloud_init is not None or bool(self.ssh_keys)

    def secret_names(self) -> list[str]:
        """Every Secret the VM needs (KubeVirt reads them; the operator never does)."""
        found = [*(self.cloud_init.secret_names() if self.cloud_init else [])]
        found += [k.secret_name for k in self.ssh_keys]
        return list(dict.fromkeys(found))

    @property
    def system_disk(self) -> DiskSpec:
        """The disk the VM boots from: the one with boot: true, else the first."""
        return next((d for d in self.disks if d.boot), self.disks[0])

    @property
    def memory_bytes(self) -> Decimal | None:
        """Guest memory in bytes; None when an instancetype sizes the VM."""
        return None if self.memory is None else parse_quantity(self.memory)

    def disk(self, name: str) -> DiskSpec | None:
        """The disk with this name, if any."""
        return next((d for d in self.disks if d.name == name), None)

    def network(self, name: str) -> NetworkSpec | None:
        """The network with this name, if any."""
        return next((n for n in self.networks if n.name == name), None)

    def keeps_on_delete(self, disk_name: str) -> bool:
        """Whether deleting the Wukong keeps this disk's PVC."""
        return self.delete_options is not None and self.delete_options.keeps(disk_name)
