"""virt-launcher's read of a VMI's cloud-init data, and the error virt-handler reports when it
fails (KubeVirt v1.7.0 pkg/cloud-init/cloud-init.go ReadCloudInitVolumeDataSource).

virt-controller mounts a cloud-init Secret into the launcher pod key by key, by subPath
(`userdata` and `userData`; `networkdata` and `networkData`: services/rendervolumes.go). The
kubelet makes a subPath the Secret does not have an empty directory and starts the pod, so a
Secret made `--from-file=user-data` (key `user-data`) passes the kubelet; virt-launcher then
cannot read it, and the domain never starts. The files are the Secret as it was when the pod
started: a subPath mount never sees a later change.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping

from ._kube import JsonObj

# (reference in the volume source, the keys read in order, the inline field it fills)
USER_DATA = ("secretRef", ("userdata", "userData"), "userData")
NETWORK_DATA = ("networkDataSecretRef", ("networkdata", "networkData"), "networkData")
REQUIRED = (
    "userDataBase64, userData, networkDataBase64 or networkData is required for a cloud-init "
    "data source"
)


def cloud_init_source(vmi: JsonObj) -> tuple[str, JsonObj] | None:
    """(volume name, source) of the VMI's cloud-init volume: the first NoCloud or ConfigDrive
    one, the only one virt-launcher reads."""
    for volume in (vmi.get("spec") or {}).get("volumes") or []:
        source = volume.get("cloudInitNoCloud") or volume.get("cloudInitConfigDrive")
        if source is not None:
            return str(volume.get("name")), source
    return None


def secret_names(vmi: JsonObj) -> list[str]:
    """The Secrets the VMI's cloud-init volume names."""
    found = cloud_init_source(vmi)
    if found is None:
        return []
    _, source = found
    names = [(source.get(ref) or {}).get("name") for ref, _, _ in (USER_DATA, NETWORK_DATA)]
    return [str(n) for n in names if n]


def _read(secret: JsonObj | None, keys: tuple[str, ...]) -> str | None:
    """The first of `keys` the mounted Secret has (its content), None when it has none."""
    data = (secret or {}).get("data") or {}
    for key in keys:
        if key in data:
            try:
                return base64.b64decode(str(data[key] or "")).decode(errors="replace")
            except binascii.Error:
                return ""
    return None


def read_error(vmi: JsonObj, secrets: Mapping[str, JsonObj | None]) -> str | None:
    """virt-launcher's error reading the cloud-init data, given the Secrets as mounted (by
    name; None for one that does not exist), or None when it reads it."""
    found = cloud_init_source(vmi)
    if found is None:
        return None
    volume, source = found
    values = {field: str(source.get(field) or "") for _, _, field in (USER_DATA, NETWORK_DATA)}
    failed = []
    for ref, keys, field in (USER_DATA, NETWORK_DATA):
        name = (source.get(ref) or {}).get("name")
        if not name:
            continue
        content = _read(secrets.get(str(name)), keys)
        if content is None:
            failed.append(ref)
        elif content:
            values[field] = content
    if len(failed) == 2:  # resolveNoCloudSecrets: only when both reads fail
        return f"no cloud-init data-source found at volume: {volume}"
    user = values["userData"] or source.get("userDataBase64")
    network = values["networkData"] or source.get("networkDataBase64")
    return None if user or network else REQUIRED


def sync_failed_message(error: str) -> str:
    """The VMI's Synchronized message: the launcher's error as preStartHook wraps it and
    virt-handler's command client quotes it (cmd-client/errors.go, Go's %q)."""
    launcher = f"ReadCloudInitVolumeDataSource failed: {error}"
    return f"server error. command SyncVMI failed: {json.dumps(launcher, ensure_ascii=False)}"
