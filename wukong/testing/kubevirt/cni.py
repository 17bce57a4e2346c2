"""A pod's secondary networks as Multus reads them, and a CNI ADD the simulated node refuses.

virt-controller names each Multus network of a VMI in its launcher pod's annotation
`k8s.v1.cni.cncf.io/networks` (KubeVirt v1.7.0 pkg/network/multus/annotation.go: a JSON list
of {name, namespace, mac, interface}, `mac` the VMI interface's macAddress when it has one, the
interface `pod` + 11 hex of the network name's sha256).
When the sandbox is made, Multus reads each NAD and calls its plugin; when one fails, the
sandbox is torn down and the kubelet posts a Warning `FailedCreatePodSandBox` on the pod
(pkg/kubelet/kuberuntime/kuberuntime_manager.go) and tries again later. The simulated node
has no CNI: a NAD annotated `sim.kubevirt.io/fail-attach: "<error>"` stands for one whose
plugin fails so on every node.
"""

from __future__ import annotations

import hashlib
import json

from ._kube import JsonObj, Resource

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
NADS = Resource("k8s.cni.cncf.io", "v1", "network-attachment-definitions")


def pod_interface_name(network: str) -> str:
    """KubeVirt's hashed pod interface name of a secondary network (namescheme.go)."""
    return "pod" + hashlib.sha256(network.encode()).hexdigest()[:11]


def networks_annotation(vmi: JsonObj) -> str | None:
    """The `k8s.v1.cni.cncf.io/networks` value virt-controller renders for the VMI, None
    when it has no secondary Multus network."""
    namespace = vmi["metadata"]["namespace"]
    spec = vmi.get("spec") or {}
    interfaces = ((spec.get("domain") or {}).get("devices") or {}).get("interfaces") or []
    macs = {i.get("name"): i.get("macAddress") for i in interfaces}
    elements = []
    for network in spec.get("networks") or []:
        multus = network.get("multus") or {}
        if not multus.get("networkName") or multus.get("default"):
            continue
        nad_ns, _, nad = str(multus["networkName"]).rpartition("/")
        element = {"name": nad, "namespace": nad_ns or namespace}
        if mac := macs.get(network.get("name")):
            element["mac"] = mac  # the interface's macAddress (newAnnotationData's MacRequest)
        element["interface"] = pod_interface_name(str(network.get("name")))
        elements.append(element)
    return json.dumps(elements, separators=(",", ":")) if elements else None


def pod_networks(pod: JsonObj) -> list[tuple[str, str]]:
    """(namespace, name) of each NAD the pod asks Multus for: the annotation's JSON list, or
    its short form `ns/name@iface, name`."""
    meta = pod.get("metadata") or {}
    value = str((meta.get("annotations") or {}).get(NETWORKS_ANNOTATION) or "").strip()
    if not value:
        return []
    namespace = str(meta.get("namespace") or "")
    try:
        listed = json.loads(value)
    except ValueError:
        listed = [item.strip().split("@")[0] for item in value.split(",") if item.strip()]
    found = []
    for item in listed if isinstance(listed, list) else []:
        if isinstance(item, dict):
            found.append((str(item.get("namespace") or namespace), str(item.get("name") or "")))
        else:
            nad_ns, _, nad = str(item).rpartition("/")
            found.append((nad_ns or namespace, nad))
    return [(ns, name) for ns, name in found if name]


def config_name(nad: JsonObj) -> str:
    """The name in the NAD's CNI config (what Multus calls the network), else the NAD's."""
    try:
        config = json.loads(str((nad.get("spec") or {}).get("config") or "{}"))
    except ValueError:
        config = {}
    name = config.get("name") if isinstance(config, dict) else None
    return str(name or nad["metadata"]["name"])


def sandbox_error(pod: JsonObj, network: str, error: str) -> str:
    """The kubelet's Event message when Multus's ADD of `network` fails with `error`, as
    containerd, libcni and Multus wrap it. The sandbox id is one per pod here (a real
    runtime makes a new one each try)."""
    meta = pod["metadata"]
    sandbox = hashlib.sha256(str(meta["uid"]).encode()).hexdigest()
    where = f"{meta['namespace']}/{meta['name']}/{meta['uid']}:{network}"
    return (
        f"Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup "
        f'network for sandbox "{sandbox}": plugin type="multus" name="multus-cni-network" '
        f'failed (add): [{where}]: error adding container to network "{network}": {error}'
    )
