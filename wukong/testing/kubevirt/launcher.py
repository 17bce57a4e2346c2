"""The virt-launcher pod virt-controller renders for a VMI (pure), for the pure simulator.

KubeVirt v1.7.0 pkg/virt-controller/services/template.go RenderLaunchManifest, reduced to
what the simulated node acts on: generateName `virt-launcher-<vmi>-`, the VMI's labels plus
`kubevirt.io: virt-launcher` and `kubevirt.io/created-by: <vmi uid>`, owned by the VMI, its
nodeSelector (plus `kubevirt.io/schedulable`), affinity and tolerations, one `compute`
container, a PVC volume for every claim the VMI boots with (rendervolumes.go handlePVCVolume
and handleDataVolume: named as the VMI's volume; not hot-plugged ones, which go to their own
attachment pod), and a Secret volume for every Secret the VMI mounts (Secret volumes,
cloud-init `<volume>-udata` / `<volume>-ndata`, `<secret>-access-cred`), which the kubelet
must find before the pod can start, and the Multus networks annotation (`cni.py`), whose
NADs the kubelet attaches before the pod can start.
"""

from __future__ import annotations

import copy

from ._kube import JsonObj
from .cni import NETWORKS_ANNOTATION, networks_annotation
from .objects import DEFAULT_GRACE_SECONDS, owner_ref

LAUNCHER_IMAGE = "quay.io/kubevirt/virt-launcher:v1.7.0"


def secret_volumes(vmi_spec: JsonObj) -> list[JsonObj]:
    """The pod's Secret volumes, in rendervolumes.go's order and names."""
    volumes: list[JsonObj] = []
    for volume in vmi_spec.get("volumes") or []:
        if (volume.get("secret") or {}).get("secretName"):
            secret = volume["secret"]
            source = {"secretName": secret["secretName"]}
            if secret.get("optional") is not None:
                source["optional"] = secret["optional"]
            volumes.append({"name": volume["name"], "secret": source})
        for kind in ("cloudInitNoCloud", "cloudInitConfigDrive"):
            cloud_init = volume.get(kind) or {}
            for ref, suffix in (("secretRef", "udata"), ("networkDataSecretRef", "ndata")):
                if name := (cloud_init.get(ref) or {}).get("name"):
                    source = {"secretName": name}
                    volumes.append({"name": f"{volume['name']}-{suffix}", "secret": source})
    for cred in vmi_spec.get("accessCredentials") or []:
        for kind in ("sshPublicKey", "userPassword"):
            secret = (((cred.get(kind) or {}).get("source") or {}).get("secret")) or {}
            if name := secret.get("secretName"):
                volumes.append({"name": f"{name}-access-cred", "secret": {"secretName": name}})
    return volumes


def claim_volumes(vmi_spec: JsonObj) -> list[JsonObj]:
    """The pod's PVC volumes: the VMI's PVC and DataVolume volumes but hot-plugged ones."""
    volumes: list[JsonObj] = []
    for volume in vmi_spec.get("volumes") or []:
        source = volume.get("persistentVolumeClaim") or volume.get("dataVolume") or {}
        if not source or source.get("hotpluggable"):
            continue
        claim: JsonObj = {"claimName": source.get("claimName") or source.get("name")}
        if volume.get("persistentVolumeClaim") and source.get("readOnly"):
            claim["readOnly"] = True
        volumes.append({"name": volume["name"], "persistentVolumeClaim": claim})
    return volumes


def launcher_pod(vmi: JsonObj) -> JsonObj:
    """The virt-launcher pod of a VMI, ready to POST."""
    meta, spec = vmi["metadata"], vmi.get("spec") or {}
    labels = dict(meta.get("labels") or {})
    labels.update({"kubevirt.io": "virt-launcher", "kubevirt.io/created-by": meta["uid"]})
    grace = spec.get("terminationGracePeriodSeconds")
    grace = DEFAULT_GRACE_SECONDS if grace is None else int(grace)
    pod_spec: JsonObj = {
        "nodeSelector": {**(spec.get("nodeSelector") or {}), "kubevirt.io/schedulable": "true"},
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": grace + 2 * 15,  # gracePeriodKillAfter: 2 paddings
        "automountServiceAccountToken": False,
        "containers": [
            {
                "name": "compute",
                "image": LAUNCHER_IMAGE,
                # The launcher's own grace period: it destroys the domain this long after
                # its pod is deleted (template.go gracePeriodSeconds: one padding).
                "command": [
                    "/usr/bin/virt-launcher-monitor",
                    "--grace-period-seconds",
                    str(grace + 15),
                ],
            }
        ],
        "volumes": claim_volumes(spec) + secret_volumes(spec),
    }
    for field in ("affinity", "tolerations", "schedulerName"):
        if spec.get(field):
            pod_spec[field] = copy.deepcopy(spec[field])
    pod_meta: JsonObj = {
        "generateName": f"virt-launcher-{meta['name']}-",
        "namespace": meta["namespace"],
        "labels": labels,
        "ownerReferences": [owner_ref(vmi, "VirtualMachineInstance", "kubevirt.io/v1")],
    }
    if (networks := networks_annotation(vmi)) is not None:
        pod_meta["annotations"] = {NETWORKS_ANNOTATION: networks}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": pod_spec}
