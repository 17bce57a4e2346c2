"""Names shared by the operator, its CRD and its children: one place to change them."""

from __future__ import annotations

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

ANNOTATION_DELETION_PROTECTION = f"{GROUP}/deletion-protection"

# KubeVirt's name for the pod network (masquerade), always the VM's first interface; a
# secondary network may not reuse it.
POD_NETWORK_NAME = "default"

# KubeVirt, CDI and Multus API coordinates.
KUBEVIRT_GROUP = "kubevirt.io"
KUBEVIRT_VERSION = "v1"
SUBRESOURCES_GROUP = "subresources.kubevirt.io"
SUBRESOURCES_VERSION = "v1"
CDI_GROUP = "cdi.kubevirt.io"
CDI_VERSION = "v1beta1"
NAD_GROUP = "k8s.cni.cncf.io"
NAD_VERSION = "v1"
NAD_PLURAL = "network-attachment-definitions"


def vm_name(wukong_name: str) -> str:
    """Name of the VirtualMachine (and its VMI) that a Wukong owns."""
    return f"{wukong_name}-vm"


def disk_claim_name(wukong_name: str, disk_name: str) -> str:
    """Name of the PVC or DataVolume behind one disk of a Wukong."""
    return f"{wukong_name}-{disk_name}"


def nad_name(wukong_name: str, network_name: str) -> str:
    """Name of a NetworkAttachmentDefinition the operator creates and owns."""
    return f"{wukong_name}-{network_name}"
