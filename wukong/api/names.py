"""Names shared by the operator, its CRD and its children: one place to change them."""

from __future__ import annotations

import hashlib

GROUP = "vm.novasphere.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Wukong"
PLURAL = "wukongs"
SINGULAR = "wukong"
SHORT_NAMES = ("wk",)

FINALIZER = "wukong.novasphere.dev/finalizer"

# Labels on every child object (SPEC §2).
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "wukong"
LABEL_WUKONG = f"{GROUP}/wukong"
# Labels on disks kept after their Wukong or their spec entry is gone (SPEC §5, §6).
LABEL_RETAINED_FROM = f"{GROUP}/retained-from"
LABEL_RETAINED_UID = f"{GROUP}/retained-from-uid"
LABEL_DISK = f"{GROUP}/disk"
# On a disk deleteOptions keeps, in place of an ownerReference while the Wukong lives: the
# garbage collector cannot reach it under any propagation policy (review s23 F1).
LABEL_HELD_BY = f"{GROUP}/held-by-uid"
# On a VM snapshot: the request (lifecycleAction fingerprint) that made it, so a pass that
# made it and could not write status knows it for its own.
LABEL_REQUEST = f"{GROUP}/request"
# KubeVirt's, on a claim its restore made (restore.go CreateRestorePVCDefFromVMRestore):
# the VM (and namespace) restored, labels KubeVirt writes and never reads; and
# `<restore name>-<restore uid>` (getRestoreAnnotationValue), which it reads to tell a claim
# it made already for that restore from one to delete and make again.
LABEL_RESTORED_FROM_VM = "restore.kubevirt.io/source-vm-name"
LABEL_RESTORED_FROM_NAMESPACE = "restore.kubevirt.io/source-vm-namespace"
ANNOTATION_LAST_RESTORE = "restore.kubevirt.io/lastRestoreUID"

ANNOTATION_DELETION_PROTECTION = f"{GROUP}/deletion-protection"

# KubeVirt's name for the pod network (masquerade), always the VM's first interface; a
# secondary network may not reuse it.
POD_NETWORK_NAME = "default"

# Volumes every virt-launcher pod has (virt-controller services/rendervolumes.go Volumes,
# withHotplugSupport; the cloud-init Secret volumes are "<volume>-udata"/"-ndata", :811): a
# disk of the same name gives the pod two volumes of one name, which Kubernetes refuses
# ("Duplicate value"), and the VM never starts. KubeVirt's webhook does not check.
LAUNCHER_VOLUMES = (
    "private",
    "public",
    "sockets",
    "virt-bin-share-dir",
    "libvirt-runtime",
    "ephemeral-disks",
    "container-disks",
    "hotplug-disks",
    "cloudinitdisk-udata",
    "cloudinitdisk-ndata",
)
# Volumes the pod gets only with some features, none Wukong sets today: persistent EFI/TPM
# state, hugepages, hook sidecars, virtiofs, the network-info downward API, kernel boot
# (rendervolumes.go, template.go, container-disk.go, downwardapi). A VM with a disk so named
# starts today; a later KubeVirt default, or a feature a later Wukong turns on, would make it
# unstartable. So a new disk may not take one, and a disk that has one already (made before
# session 44 reserved them) keeps it: renaming a disk is removing it, which deletes a data
# disk's claim and is refused for the system disk (upgrade audit, session 47).
LAUNCHER_FEATURE_VOLUMES = (
    "vm-state",
    "private-libvirt",
    "private-libvirt-qemu",
    "hugepages",
    "hugetblfs-dir",
    "hook-sidecar-sockets",
    "virtiofs-containers",
    "network-info-annotation",
    "launcher-volume",
    "kernel-boot-volume",
)

# KubeVirt, CDI and Multus API coordinates.
KUBEVIRT_GROUP = "kubevirt.io"
KUBEVIRT_VERSION = "v1"
SUBRESOURCES_GROUP = "subresources.kubevirt.io"
SNAPSHOT_GROUP = "snapshot.kubevirt.io"
SNAPSHOT_VERSION = "v1beta1"
INSTANCETYPE_GROUP = "instancetype.kubevirt.io"
INSTANCETYPE_VERSION = "v1beta1"
SUBRESOURCES_VERSION = "v1"
CDI_GROUP = "cdi.kubevirt.io"
CDI_VERSION = "v1beta1"
# CDI's one CDIConfig, cluster-scoped (pkg/common/common.go ConfigName).
CDI_CONFIG_NAME = "config"
# On a claim: already populated for the DataVolume of this name. CDI's DataVolume controller
# then takes the claim over as its own, with no import, instead of refusing it as another's
# (pkg/controller/datavolume/controller-base.go pvcRequiresWork, CDI v1.65).
ANNOTATION_POPULATED_FOR = "cdi.kubevirt.io/storage.populatedFor"
# On a claim: made for the DataVolume of this uid. CDI's DataVolume controller never takes
# such a claim back under that DataVolume once released from it, feature gate
# DataVolumeClaimAdoption or not (pkg/controller/common/util.go AllowClaimAdoption, CDI v1.65).
ANNOTATION_CREATED_FOR = "cdi.kubevirt.io/createdForDataVolume"
NAD_GROUP = "k8s.cni.cncf.io"
NAD_VERSION = "v1"
NAD_PLURAL = "network-attachment-definitions"

# --- Derived names (issue 18) --------------------------------------------------------------
# Every name the operator derives fits the limit of where it is used, for every name the CRD
# accepts (a Wukong name of up to 63 characters, disk and network names of up to 63): when the
# plain form is too long it is cut and ends in a short hash of the plain form, so two different
# plain names never share a derived one (within a Wukong the operator checks this too:
# `derived_name_clashes`).

MAX_WUKONG_NAME = 63
"""A Wukong's name is a label value on every child (vm.novasphere.dev/wukong)."""
MAX_LABEL_VALUE = 63
"""Kubernetes label values (and DNS-1123 labels)."""
MAX_OBJECT_NAME = 253
"""Kubernetes object names (DNS-1123 subdomains): PVCs and DataVolumes."""
MAX_VM_NAME = MAX_LABEL_VALUE
"""The VM's name is also the value of the VMI label kubevirt.io/vm (and the launcher pod's
vm.kubevirt.io/name), so it is held to a label value's 63 characters."""
MAX_NAD_NAME = MAX_LABEL_VALUE
"""NetworkAttachmentDefinition names: the NPWG spec asks for a DNS-1123 label."""
IFNAMSIZ = 15
"""Linux interface names (a bridge is one) have at most 15 characters."""
MAX_SERIAL = 36
"""Disk serials Wukong sets (KubeVirt allows 256 of [A-Za-z0-9_.+-]; QEMU's SCSI disk keeps
36, and a virtio disk shows the guest `VIRTIO_SERIAL`)."""
VIRTIO_SERIAL = 20
"""What a virtio-blk disk's serial shows the guest: its first 20 bytes (VIRTIO_BLK_ID_BYTES),
which udev's ID_SERIAL and so the guest agent's filesystem info report."""
HASH_LENGTH = 8
_VM_SUFFIX = "-vm"


def short_hash(text: str, length: int = HASH_LENGTH) -> str:
    """A stable lowercase hex digest of `text`, `length` characters long."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def fit(name: str, limit: int, *, suffix: str = "") -> str:
    """`name + suffix` if it has at most `limit` characters; else `name` cut short, then '-'
    and a hash of the whole plain form, then `suffix`: at most `limit` characters, stable,
    and still starting and ending like a DNS name (no '-' or '.' before the hash)."""
    plain = name + suffix
    if len(plain) <= limit:
        return plain
    tag = "-" + short_hash(plain)
    keep = limit - len(tag) - len(suffix)
    if keep < 1:
        raise ValueError(f"cannot fit '{plain}' into {limit} characters")
    return name[:keep].rstrip("-.") + tag + suffix


def vm_name(wukong_name: str) -> str:
    """Name of the VirtualMachine (and its VMI) that a Wukong owns: '<wukong>-vm'."""
    return fit(wukong_name, MAX_VM_NAME, suffix=_VM_SUFFIX)


def disk_claim_name(wukong_name: str, disk_name: str) -> str:
    """Name of the PVC or DataVolume behind one disk of a Wukong: '<wukong>-<disk>'."""
    return fit(f"{wukong_name}-{disk_name}", MAX_OBJECT_NAME)


def nad_name(wukong_name: str, network_name: str) -> str:
    """Name of a NetworkAttachmentDefinition the operator creates: '<wukong>-<network>'."""
    return fit(f"{wukong_name}-{network_name}", MAX_NAD_NAME)


def object_ref(namespace: str, ref: str) -> tuple[str, str]:
    """(namespace, name) of the object a reference names (a network's `nadName`, a disk's
    `cloneFrom`): 'name' is one in the Wukong's own `namespace`, 'other/name' one in another."""
    nad_namespace, _, name = ref.rpartition("/")
    return nad_namespace or namespace, name


def bridge_name(network_name: str) -> str:
    """The Linux bridge of an operator-created NAD without spec.bridge: 'br-<network>'.
    It depends on the network name only: Wukongs naming a network alike share its bridge."""
    return fit(f"br-{network_name}", IFNAMSIZ)


def disk_serial(disk_name: str) -> str:
    """The serial a disk shows the guest (and the guest agent reports back)."""
    return fit(disk_name, MAX_SERIAL)


def older_serial(disk_name: str) -> str:
    """The serial 0.1.0 (before issue 18) gave a disk: its name cut to 36 characters, no hash.
    A disk it attached keeps it (vm.py), so a guest's /dev/disk/by-id name does not change at
    the upgrade (upgrade test, session 48). The same as `disk_serial` up to 36 characters."""
    return disk_name[:MAX_SERIAL]


def reports_serial(reported: str, disk_name: str) -> bool:
    """Whether a serial the guest agent reports (udev's ID_SERIAL of a filesystem's disk) can
    be the disk `disk_name`: its serial whole, cut to a virtio disk's 20 bytes, or at the end
    of a SCSI disk's vendor and model (`0QEMU_QEMU_HARDDISK_<serial>`); its serial as issue 18
    derives it, or as 0.1.0 did (`older_serial`, which its disks keep). A cut serial two
    disks share matches both: the mount check then errs on the side of mounted."""
    return any(
        reported in (serial, serial[:VIRTIO_SERIAL]) or reported.endswith("_" + serial)
        for serial in {disk_serial(disk_name), older_serial(disk_name)}
    )


def command(verb: str, name: str, namespace: str | None, *flags: str) -> str:
    """A `wukong` command line for a message to copy: with the namespace, or pasted as
    printed it would look in the kubeconfig's default one."""
    where = ("-n", namespace) if namespace else ()
    return " ".join(("wukong", verb, name, *flags, *where))


def wukong_of_vm_name(vm: str) -> str | None:
    """The Wukong name whose uncut VM name is `vm`, if there is one (a cut name cannot be
    undone: the mapping of a VMI to its Wukong falls back on this only without labels)."""
    candidate = vm.removesuffix(_VM_SUFFIX)
    if candidate and candidate != vm and vm_name(candidate) == vm:
        return candidate
    return None


def mac_address(uid: str, slot: int) -> str:
    """The MAC address a Wukong's NIC is given (session 47): locally administered and
    unicast (the first octet's 0x02 bit set, its 0x01 bit clear), the other 46 bits from a
    hash of the Wukong's uid, which the API server chose, and `slot`, a small number (the
    lowest one whose address no other NIC of the VM has). Nothing a tenant writes goes into
    it, so a tenant cannot search for a name that yields a neighbour's address; the only way
    to another address is another Wukong (a new uid), one API create per try."""
    digest = hashlib.sha256(f"{uid}/{slot}".encode()).digest()
    octets = (digest[0] & 0xFC | 0x02, *digest[1:6])
    return ":".join(f"{b:02x}" for b in octets)
