"""The node, when KubeVirt's own virt-api and virt-controller run: scheduler, kubelet, virt-handler.

With real KubeVirt (`KubeVirtPlane`), virt-controller creates VMIs, virt-launcher pods and
hot-plug attachment pods, and moves a VMI to Scheduled once its pod runs; virt-api serves the
subresource API and calls virt-handler for pause, unpause and guest-agent data. Nothing here
does any of that. What stays simulated is what needs a machine:

- **scheduler**: binds pending pods to a node that matches the pod's nodeSelector and required
  node affinity, or marks them PodScheduled=False/Unschedulable (virt-controller turns that
  into the VM's ErrorUnschedulable);
- **kubelet**: runs bound pods (phase Running, containers ready, a pod IP), ends a
  virt-launcher pod when its VMI's domain is gone, and finishes pod deletions;
- **virt-handler**: a Scheduled VMI on our node boots (Running), gets interfaces, guest-agent
  data, hot-plugged volumes mounted, the Paused condition; a deleted VMI shuts down by ACPI
  within its grace period; and the HTTPS API virt-api calls on virt-handler (pause, unpause,
  softreboot, guestosinfo, userlist, filesystemlist).
"""

from __future__ import annotations

import copy
import json
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

from aiohttp import web

from ._handler import GuestHost, soonest
from ._informer import Informer
from ._kube import EVENTS, SECRETS, VMIS, ApiError, JsonObj, Kube, Resource, key_of
from ._queue import Controller
from ._serve import serve, stop_serving
from .access_credentials import credentials_event
from .cni import NADS, config_name, pod_networks, sandbox_error
from .config import ANN_FAIL_ATTACH, ANN_UNSCHEDULABLE, SimConfig
from .console import serial_console, serial_of, vnc_server
from .events import event, record, soft_rebooted
from .guest import Guest, device_names
from .objects import (
    CLAIMS,
    claim_keys,
    condition,
    condition_true,
    deleting,
    drop_condition,
    flag,
    is_final,
    now_iso,
    phase,
    set_condition,
)
from .screen import screenshot
from .vmi_resize import finalize_hotplug, without_hotplug_labels
from .vmi_status import AddressBook, capacities, interfaces, with_multus_as_said

log = logging.getLogger(__name__)

PODS = Resource("", "v1", "pods")
NODES = Resource("", "v1", "nodes", namespaced=False)
# The kubelet retries a failed volume mount with backoff; a fixed short retry is enough here.
MOUNT_RETRY_SECONDS = 2.0
# And a pod sandbox it could not make (its pod worker's back-off, 10 s and more): likewise.
SANDBOX_RETRY_SECONDS = 2.0
LAUNCHER_LABEL = ("kubevirt.io", "virt-launcher")
HANDLER_LABEL = ("kubevirt.io", "virt-handler")
# What marks a lost node: the node lifecycle controller's taint, the one an administrator adds
# once the machine is known to be down, and virt-handler's heartbeat (virtv1.VirtHandlerHeartbeat).
UNREACHABLE = "node.kubernetes.io/unreachable"
OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"
HEARTBEAT = "kubevirt.io/heartbeat"

# What kube-scheduler says when no node fits (its wording, node counts filled in).
NO_FIT = (
    "0/{n} nodes are available: {n} node(s) didn't match Pod's node affinity/selector. "
    "preemption: 0/{n} nodes are available: {n} Preemption is not helpful for scheduling."
)
INSUFFICIENT = (
    "0/{n} nodes are available: {n} Insufficient memory. preemption: 0/{n} nodes are "
    "available: {n} No preemption victims found for incoming pod."
)
HOTPLUG_STEPS = (
    ("MountedToPod", "VolumeMountedToPod", "Volume {} has been mounted in virt-launcher pod"),
    ("Ready", "VolumeReady", "Successfully attach hotplugged volume {} to VM"),
)


@dataclass(frozen=True)
class KubeVirtEndpoints:
    """Where the real KubeVirt components listen, and the certificates to talk to them."""

    namespace: str
    api_port: int  # virt-api (webhooks, aggregated subresource API)
    handler_port: int  # virt-api calls virt-handler here (its --console-server-port)
    kubelet_port: int  # the API server calls each node's kubelet here (`kubectl logs`)
    ca: Path  # KubeVirt's CA (the kubevirt-ca ConfigMap)
    handler_cert: Path
    handler_key: Path
    front_proxy_cert: Path  # the aggregator's client identity, to forward requests as it does
    front_proxy_key: Path
    handler_kubeconfig: Path  # ServiceAccount kubevirt-handler: only it may write VMI status


def owner_uid(obj: JsonObj, kind: str) -> str | None:
    """uid of the controlling owner of that kind, if any."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") == kind and ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _matches(labels: dict[str, str], selector: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _requirement_met(req: JsonObj, value: str | None) -> bool:
    """One node selector requirement against the node's value for its key (None: unset)."""
    op, values = req.get("operator"), req.get("values") or []
    if op in ("Gt", "Lt"):
        try:
            have, bound = int(value or ""), int(values[0])
        except (ValueError, IndexError):
            return False
        return have > bound if op == "Gt" else have < bound
    return {
        "In": value is not None and value in values,
        "NotIn": value is None or value not in values,
        "Exists": value is not None,
        "DoesNotExist": value is None,
    }.get(str(op), False)


def node_affinity_fits(pod: JsonObj, node: str, labels: dict[str, str]) -> bool:
    """kube-scheduler's NodeAffinity filter: the required terms are ORed, a term's requirements
    ANDed, and a term with no requirement matches no node."""
    affinity = ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if not required:
        return True
    fields = {"metadata.name": node}
    return any(
        (term.get("matchExpressions") or term.get("matchFields"))
        and all(
            _requirement_met(r, labels.get(r.get("key")))
            for r in term.get("matchExpressions") or []
        )
        and all(
            _requirement_met(r, fields.get(r.get("key"))) for r in term.get("matchFields") or []
        )
        for term in required.get("nodeSelectorTerms") or []
    )


def _labelled(obj: JsonObj, label: tuple[str, str]) -> bool:
    return (obj.get("metadata", {}).get("labels") or {}).get(label[0]) == label[1]


def node_labels(cfg: SimConfig, node: str) -> dict[str, str]:
    """A node's labels as kubelet and virt-handler's node labeller set them (what launcher pods
    select on: arch, `kubevirt.io/schedulable`, the machine type), plus the test's own."""
    return {
        "kubernetes.io/hostname": node,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubevirt.io/schedulable": "true",
        "machine-type.node.kubevirt.io/q35": "true",
        "machine-type.node.kubevirt.io/pc-q35-rhel9.6.0": "true",
        **cfg.node_labels.get(node, {}),
    }


async def ensure_nodes(kube: Kube, cfg: SimConfig, endpoints: KubeVirtEndpoints) -> list[str]:
    """Node objects (KubeVirt-schedulable) and one running virt-handler pod on each; the nodes'
    addresses, where the API server calls their kubelet (`endpoints.kubelet_port`)."""
    addresses: list[str] = []
    kubelet = {"kubeletEndpoint": {"Port": endpoints.kubelet_port}}
    for index, node in enumerate(cfg.nodes):
        labels = node_labels(cfg, node)
        capacity = {
            "cpu": "64",
            "memory": "256Gi",
            "pods": "250",
            "devices.kubevirt.io/kvm": "1k",
            "devices.kubevirt.io/tun": "1k",
            "devices.kubevirt.io/vhost-net": "1k",
        }
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": node, "labels": labels},
            "spec": {},
        }
        current = await kube.get_or_none(NODES, None, node)
        if current is None:
            current = await kube.create(NODES, None, body)
        elif any((current["metadata"].get("labels") or {}).get(k) != v for k, v in labels.items()):
            current = await kube.merge_patch(NODES, None, node, {"metadata": {"labels": labels}})
        if not condition_true(current, "Ready"):
            status = {
                "capacity": capacity,
                "allocatable": capacity,
                "addresses": [{"type": "InternalIP", "address": f"127.0.0.{10 + index}"}],
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "kubelet is posting ready status",
                        "lastHeartbeatTime": now_iso(),
                        "lastTransitionTime": now_iso(),
                    }
                ],
            }
            current = await kube.merge_patch(NODES, None, node, {"status": status}, sub="status")
        if (current.get("status") or {}).get("daemonEndpoints") != kubelet:
            patch = {"status": {"daemonEndpoints": kubelet}}
            current = await kube.merge_patch(NODES, None, node, patch, sub="status")
        addresses += [
            a["address"]
            for a in (current.get("status") or {}).get("addresses") or []
            if a.get("type") == "InternalIP"
        ]
        await _ensure_handler_pod(kube, endpoints.namespace, node)
    return addresses


async def _ensure_handler_pod(kube: Kube, namespace: str, node: str) -> None:
    # virt-api finds virt-handler as the pod labelled kubevirt.io=virt-handler on the VMI's node
    # and dials its pod IP (kubecli handler.go): here the simulator's handler on loopback.
    name = f"virt-handler-{node}"
    pod = await kube.get_or_none(PODS, namespace, name)
    if pod is None:
        pod = await kube.create(
            PODS,
            namespace,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": {HANDLER_LABEL[0]: HANDLER_LABEL[1]},
                },
                "spec": {
                    "nodeName": node,
                    "containers": [
                        {"name": "virt-handler", "image": "quay.io/kubevirt/virt-handler"}
                    ],
                },
            },
        )
    if phase(pod) != "Running":
        await kube.merge_patch(
            PODS, namespace, name, {"status": _running_status(pod, "127.0.0.1")}, sub="status"
        )


def _running_status(pod: JsonObj, ip: str) -> JsonObj:
    now = now_iso()
    spec = pod.get("spec") or {}
    ready = [
        {"type": t, "status": "True", "lastTransitionTime": now}
        for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
    ]
    return {
        "phase": "Running",
        "hostIP": "127.0.0.1",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": now,
        "conditions": ready,
        "initContainerStatuses": [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "",
                "ready": True,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
            }
            for c in spec.get("initContainers") or []
        ],
        "containerStatuses": [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            }
            for c in spec.get("containers") or []
        ],
    }


def launcher_grace(pod: JsonObj, otherwise: float) -> float:
    """virt-launcher's own grace period: `--grace-period-seconds` of the compute container
    (the VMI's grace period plus 15 s, template.go), `otherwise` when it has none."""
    for container in (pod.get("spec") or {}).get("containers") or []:
        if container.get("name") != "compute":
            continue
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        for option, value in pairwise(argv):
            if option == "--grace-period-seconds":
                try:
                    return float(value)
                except ValueError:
                    break
    return otherwise


def _ended_status(pod: JsonObj, final: str) -> JsonObj:
    code = 0 if final == "Succeeded" else 1
    return {
        "phase": final,
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "PodCompleted"},
            {"type": "ContainersReady", "status": "False", "reason": "PodCompleted"},
        ],
        "containerStatuses": [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": code, "reason": "Completed"}},
            }
            for c in (pod.get("spec") or {}).get("containers") or []
        ],
    }


def _failed_target(pod: JsonObj, vmi: JsonObj) -> bool:
    """The target launcher pod of a migration that failed or was aborted."""
    state = (vmi.get("status") or {}).get("migrationState") or {}
    return bool(
        state.get("failed")
        and pod["metadata"]["name"] == state.get("targetPod")
        and (pod.get("spec") or {}).get("nodeName") != (vmi.get("status") or {}).get("nodeName")
    )


def _migrated_away(pod: JsonObj, vmi: JsonObj) -> bool:
    """The source launcher pod of a migration that finished (never a later migration's
    target pod, which may well land on that same node)."""
    status = vmi.get("status") or {}
    state = status.get("migrationState") or {}
    node = (pod.get("spec") or {}).get("nodeName")
    return bool(
        state.get("completed")
        and not state.get("failed")
        and pod["metadata"]["name"] == state.get("sourcePod")
        and node != status.get("nodeName")
    )


class Kubelet(Controller):
    """kube-scheduler and kubelet for the pods of one namespace (or all)."""

    name = "kubelet"

    def __init__(
        self, kube: Kube, cfg: SimConfig, pods: Informer, vmis: Informer, vms: Informer
    ) -> None:
        super().__init__()
        self.kube, self.cfg, self.pods, self.vmis, self.vms = kube, cfg, pods, vmis, vms
        self.book = AddressBook(cfg.pod_cidr_prefix)
        self._next_node = 0
        # Nodes whose machine is gone (`Simulator.lose_node`): no kubelet runs their pods,
        # no pod is scheduled there. Shared with the virt-handler side, which stops too.
        self.lost: set[str] = set()
        pods.handlers.append(lambda obj: self.enqueue(key_of(obj)))
        vmis.handlers.append(self._vmi_changed)

    def _vmi_changed(self, vmi: JsonObj) -> None:
        for pod in self.pods.owned_by(vmi["metadata"].get("uid")):
            if owner_uid(pod, "VirtualMachineInstance") is not None:
                self.enqueue(key_of(pod))

    def _vmi_of(self, pod: JsonObj) -> JsonObj | None:
        vmi = self.vmis.by_uid(owner_uid(pod, "VirtualMachineInstance"))
        if vmi is None or vmi["metadata"].get("namespace") != pod["metadata"]["namespace"]:
            return None
        return vmi

    async def reconcile(self, key: str) -> float | None:
        ns, _, name = key.partition("/")
        pod = self.pods.get(ns, name)
        if pod is None or (pod.get("spec") or {}).get("nodeName") in self.lost:
            return None  # gone, or its node's kubelet is: nothing moves it (see `lose`)
        try:
            if deleting(pod):
                return await self._terminate(pod)
            if not (pod.get("spec") or {}).get("nodeName"):
                await self._schedule(pod)
                return None
            if phase(pod) == "Pending":
                if (missing := await self._unmountable(pod)) is not None:
                    await self._mount_failed(pod, *missing)
                    return MOUNT_RETRY_SECONDS
                if (refused := await self._attach_refused(pod)) is not None:
                    await self._sandbox_failed(pod, *refused)
                    return SANDBOX_RETRY_SECONDS
                ip = self.book.address(pod["metadata"]["uid"], 0, True)
                await self._status(pod, _running_status(pod, ip))
                return None
            if phase(pod) == "Running":
                await self._readiness(pod)
            if phase(pod) == "Running" and _labelled(pod, LAUNCHER_LABEL):
                vmi = self._vmi_of(pod)
                if vmi is not None and is_final(vmi):
                    # virt-launcher exits with its domain (guest shutdown, crash, stop).
                    await self._status(pod, _ended_status(pod, phase(vmi)))
                elif vmi is not None and _migrated_away(pod, vmi):
                    # The source virt-launcher exits once its domain has moved to the target.
                    await self._status(pod, _ended_status(pod, "Succeeded"))
                elif vmi is not None and _failed_target(pod, vmi):
                    # The target of a failed or aborted migration: its virt-handler signals
                    # the launcher to clean up (migration-target.go SignalTargetPodCleanup),
                    # which exits; until then KubeVirt makes no target pod for the next one.
                    await self._status(pod, _ended_status(pod, "Succeeded"))
        except ApiError as err:
            if err.status in (404, 409):
                return 0.05
            raise
        return None

    async def _unmountable(self, pod: JsonObj) -> tuple[str, str] | None:
        """(volume, Secret) of the first Secret volume whose Secret does not exist."""
        ns = pod["metadata"]["namespace"]
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            secret = volume.get("secret") or {}
            name = secret.get("secretName")
            if name and not secret.get("optional"):
                if await self.kube.get_or_none(SECRETS, ns, name) is None:
                    return str(volume.get("name")), str(name)
        return None

    async def _attach_refused(self, pod: JsonObj) -> tuple[str, str] | None:
        """(network, error) of the first NAD the pod names whose CNI ADD fails (one
        annotated `sim.kubevirt.io/fail-attach`); None when Multus attaches them all. A NAD
        that is not there is left alone (virt-controller renders no pod without it)."""
        for ns, name in pod_networks(pod):
            nad = await self.kube.get_or_none(NADS, ns, name)
            error = ((nad or {}).get("metadata", {}).get("annotations") or {}).get(ANN_FAIL_ATTACH)
            if nad is not None and error:
                return config_name(nad), str(error)
        return None

    async def _sandbox_failed(self, pod: JsonObj, network: str, error: str) -> None:
        """What the kubelet does when the sandbox cannot be made (a network's CNI ADD
        failed): the pod stays Pending in ContainerCreating, and a FailedCreatePodSandBox
        Warning Event on the pod carries the runtime's error (it retries, and so do we)."""
        await self._still_creating(pod)
        body = event(
            pod,
            "Pod",
            "FailedCreatePodSandBox",
            sandbox_error(pod, network, error),
            component="kubelet",
            host=pod["spec"]["nodeName"],
            type_="Warning",
            name=f"{pod['metadata']['name']}.sandbox",
        )
        await record(self.kube, body)

    async def _still_creating(self, pod: JsonObj) -> None:
        """The pod Pending with its containers in ContainerCreating."""
        waiting = [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}},
            }
            for c in (pod.get("spec") or {}).get("containers") or []
        ]
        if (pod.get("status") or {}).get("containerStatuses") != waiting:
            await self._status(pod, {"phase": "Pending", "containerStatuses": waiting})

    async def _mount_failed(self, pod: JsonObj, volume: str, secret: str) -> None:
        """What the kubelet does when a Secret volume cannot be set up: the pod stays
        Pending with its containers in ContainerCreating, and a FailedMount Warning Event
        on the pod says which Secret is missing (it retries, and so do we)."""
        meta = pod["metadata"]
        await self._still_creating(pod)
        message = f'MountVolume.SetUp failed for volume "{volume}" : secret "{secret}" not found'
        body = event(
            pod,
            "Pod",
            "FailedMount",
            message,
            component="kubelet",
            host=pod["spec"]["nodeName"],
            type_="Warning",
            name=f"{meta['name']}.{volume}"[:253],
        )
        await record(self.kube, body)

    async def _readiness(self, pod: JsonObj) -> None:
        """Pod Ready as kubelet computes it: containers ready and every readiness gate True.

        virt-controller gates virt-launcher pods on `kubevirt.io/virtual-machine-unpaused`,
        so a paused VM's pod, VMI and VM stop being Ready."""
        status = pod.get("status") or {}
        conds = {c.get("type"): c for c in status.get("conditions") or []}
        gates = [g["conditionType"] for g in (pod.get("spec") or {}).get("readinessGates") or []]
        ready = all((conds.get(g) or {}).get("status") == "True" for g in gates)
        want = "True" if ready else "False"
        if (conds.get("Ready") or {}).get("status") == want:
            return
        patched = dict(conds)
        # kubelet's words (status.GeneratePodReadyCondition) for the first gate not True.
        failing = next((g for g in gates if (conds.get(g) or {}).get("status") != "True"), None)
        why = (
            {
                "reason": "ReadinessGatesNotReady",
                "message": f'the status of pod readiness gate "{failing}" is not "True", but '
                + str((conds.get(failing) or {}).get("status") or "False"),
            }
            if failing is not None
            else {}
        )
        patched["Ready"] = {
            "type": "Ready",
            "status": want,
            "lastTransitionTime": now_iso(),
            **why,
        }
        await self._status(pod, {"conditions": list(patched.values())})

    async def _schedule(self, pod: JsonObj) -> None:
        vmi = self._vmi_of(pod)
        vm = self.vms.get(pod["metadata"]["namespace"], vmi["metadata"]["name"]) if vmi else None
        # A lost node is tainted unreachable (NoSchedule): no pod goes there.
        nodes = tuple(n for n in self.cfg.nodes if n not in self.lost)
        selector = (pod.get("spec") or {}).get("nodeSelector") or {}
        labels = {n: node_labels(self.cfg, n) for n in nodes}
        fits = [
            n
            for n in nodes
            if _matches(labels[n], selector) and node_affinity_fits(pod, n, labels[n])
        ]
        # Required pod anti-affinity on kubernetes.io/hostname (what virt-controller puts on a
        # migration target pod: not on a node running a pod of the same VMI).
        avoid = self._anti_affinity_nodes(pod)
        fits = [n for n in fits if n not in avoid]
        message = None
        if flag(ANN_UNSCHEDULABLE, vmi, vm):
            message = INSUFFICIENT.format(n=len(nodes))
        elif not fits:
            message = NO_FIT.format(n=len(nodes))
        if message is not None:
            condition = {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastTransitionTime": now_iso(),
            }
            if (pod.get("status") or {}).get("conditions") != [condition]:
                await self._status(pod, {"phase": "Pending", "conditions": [condition]})
            return
        node = fits[self._next_node % len(fits)]
        self._next_node += 1
        meta = pod["metadata"]
        await self.kube.create(
            Resource("", "v1", f"pods/{meta['name']}/binding"),
            meta["namespace"],
            {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node},
            },
        )

    def _anti_affinity_nodes(self, pod: JsonObj) -> set[str]:
        affinity = ((pod.get("spec") or {}).get("affinity") or {}).get("podAntiAffinity") or {}
        nodes: set[str] = set()
        for term in affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or []:
            if term.get("topologyKey") != "kubernetes.io/hostname":
                continue
            wanted = (term.get("labelSelector") or {}).get("matchLabels") or {}
            for other in self.pods.list(pod["metadata"]["namespace"]):
                other_labels = other.get("metadata", {}).get("labels") or {}
                node = (other.get("spec") or {}).get("nodeName")
                if node and not deleting(other) and phase(other) in ("Pending", "Running"):
                    if wanted and _matches(other_labels, wanted):
                        nodes.add(node)
        return nodes

    async def _terminate(self, pod: JsonObj) -> float | None:
        """A deleted pod: a launcher waits for its domain to be gone, then the object goes.
        Not past its own grace period (`launcher_grace`): then it destroys the domain, and the
        VMI fails, however long the pod's deletion would have let it run."""
        if _labelled(pod, LAUNCHER_LABEL) and phase(pod) == "Running":
            vmi = self._vmi_of(pod)
            grace = float(pod["metadata"].get("deletionGracePeriodSeconds") or 0)
            grace = min(grace, launcher_grace(pod, grace))
            waited = self._waited(pod)
            if vmi is not None and not is_final(vmi) and waited < grace:
                return min(grace - waited, 1.0)
            final = phase(vmi) if vmi is not None and is_final(vmi) else "Failed"
            await self._status(pod, _ended_status(pod, final))
        self.book.forget(pod["metadata"]["uid"])
        meta = pod["metadata"]
        path = PODS.path(meta["namespace"], meta["name"])
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}}
        try:
            await self.kube.request("DELETE", path, body)
        except ApiError as err:
            if err.status not in (404, 409):
                raise
        return None

    def _waited(self, pod: JsonObj) -> float:
        stamp = pod["metadata"].get("deletionTimestamp")
        grace = float(pod["metadata"].get("deletionGracePeriodSeconds") or 0)
        if not stamp:
            return 0.0
        # deletionTimestamp = when the grace period ends (apiserver: now + grace).
        ends = time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
        return grace - max(ends - time.time(), 0.0)

    async def _status(self, pod: JsonObj, status: JsonObj) -> None:
        meta = pod["metadata"]
        updated = await self.kube.merge_patch(
            PODS, meta["namespace"], meta["name"], {"status": status}, sub="status"
        )
        self.pods.apply(updated)

    def _launchers_on(self, node: str) -> list[JsonObj]:
        return [
            pod
            for pod in self.pods.list(None)
            if (pod.get("spec") or {}).get("nodeName") == node and _labelled(pod, LAUNCHER_LABEL)
        ]

    async def lose(self, node: str, *, node_object: bool, ago: float = 0.0) -> None:
        """The machine behind `node` is gone, as the cluster sees it within a minute: this
        kubelet stops running its pods; the node lifecycle controller sets the Node
        Ready=Unknown, taints it unreachable and marks its pods not Ready (MarkPodsNotReady
        in kube-controller-manager: the status flips, with a new lastTransitionTime; reason
        and message stay). `ago`: how long before now that happened."""
        self.lost.add(node)
        marked = (datetime.now(UTC) - timedelta(seconds=ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
        if node_object:
            now = now_iso()
            ready = {
                "type": "Ready",
                "status": "Unknown",
                "reason": "NodeStatusUnknown",
                "message": "Kubelet stopped posting node status.",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
            await self.kube.merge_patch(
                NODES, None, node, {"status": {"conditions": [ready]}}, sub="status"
            )
            await self._taint(node, UNREACHABLE, ("NoSchedule", "NoExecute"))
        for pod in self._launchers_on(node):
            conds = [
                {**c, "status": "False", "lastTransitionTime": marked}
                if c.get("type") == "Ready" and c.get("status") == "True"
                else c
                for c in (pod.get("status") or {}).get("conditions") or []
            ]
            await self._status(pod, {"conditions": conds})

    async def evict(self, node: str) -> None:
        """Taint-based eviction of a lost node's pods, 5 minutes after the unreachable taint
        (their default toleration): deleted, they stay Terminating, as no kubelet confirms."""
        for pod in self._launchers_on(node):
            if not deleting(pod):
                await self._delete(pod, grace=None)

    async def fence(self, node: str, *, node_object: bool) -> None:
        """What ends a lost node's pods, minutes folded into moments: evicted (if they were
        not yet), virt-handler's heartbeat silent for over 5 minutes, the node marked out of
        service by an administrator, and PodGC failing and force-deleting the pods
        (gc_controller.go gcTerminating). KubeVirt's virt-controller then fails their VMIs,
        as it does with any VMI whose pod is gone."""
        await self.evict(node)
        if node_object:
            stale = datetime.now(UTC) - timedelta(minutes=6)
            heartbeat = {HEARTBEAT: stale.strftime("%Y-%m-%dT%H:%M:%SZ")}
            await self.kube.merge_patch(NODES, None, node, {"metadata": {"annotations": heartbeat}})
            await self._taint(node, OUT_OF_SERVICE, ("NoExecute",))
        for pod in self._launchers_on(node):
            await self._status(pod, {"phase": "Failed"})
            await self._delete(pod, grace=0)

    async def _delete(self, pod: JsonObj, *, grace: int | None) -> None:
        meta = pod["metadata"]
        body: JsonObj = {"preconditions": {"uid": meta["uid"]}}
        if grace is not None:
            body["gracePeriodSeconds"] = grace
        try:
            await self.kube.request("DELETE", PODS.path(meta["namespace"], meta["name"]), body)
        except ApiError as err:
            if err.status not in (404, 409):
                raise

    async def _taint(self, node: str, key: str, effects: tuple[str, ...]) -> None:
        current = await self.kube.get_or_none(NODES, None, node)
        if current is None:
            return
        taints = list((current.get("spec") or {}).get("taints") or [])
        for effect in effects:
            if not any(t.get("key") == key and t.get("effect") == effect for t in taints):
                taints.append({"key": key, "effect": effect, "timeAdded": now_iso()})
        await self.kube.merge_patch(NODES, None, node, {"spec": {"taints": taints}})


class NodeHandler(GuestHost):
    """virt-handler's share of a VMI's status, for VMIs virt-controller scheduled on our nodes."""

    def __init__(
        self,
        kube: Kube,
        cfg: SimConfig,
        vmis: Informer,
        vms: Informer,
        pvcs: Informer,
        guest: Callable[[str, str], Guest],
        as_handler: Kube,
    ) -> None:
        super().__init__(cfg)
        self.kube, self.vmis, self.vms, self.pvcs = kube, vmis, vms, pvcs
        self.guest, self.as_handler = guest, as_handler
        self.book = AddressBook(cfg.pod_cidr_prefix)
        self._relabel: set[str] = set()  # VMIs whose hot-plug labels go with the next write
        # Domains paused or resumed on virt-api's request, by VMI uid: (paused, when the VMI
        # shows it).
        self._domain_paused: dict[str, tuple[bool, float]] = {}
        self.lost: set[str] = set()  # the Kubelet's: nodes whose machine is gone
        # Each VMI status this node wrote, as the API server stored it (the newest 1,000):
        # tests check that KubeVirt's Go types read them back unchanged (`written`).
        self.written: deque[JsonObj] = deque(maxlen=1000)
        if CLAIMS not in vmis.indexes:
            vmis.add_index(CLAIMS, claim_keys)
        vmis.handlers.append(lambda obj: self.enqueue(key_of(obj)))
        vms.handlers.append(lambda obj: self.enqueue(key_of(obj)))
        pvcs.handlers.append(self._claim_changed)

    def _claim_changed(self, claim: JsonObj) -> None:
        for vmi in self.vmis.indexed(CLAIMS, key_of(claim)):
            self.enqueue(key_of(vmi))

    async def reconcile(self, key: str) -> float | None:
        ns, _, name = key.partition("/")
        vmi = self.vmis.get(ns, name)
        if vmi is None or is_final(vmi):
            return None
        status = copy.deepcopy(vmi.get("status") or {})
        if status.get("nodeName") not in self.cfg.nodes:
            return None  # not scheduled yet: virt-controller's business
        if status.get("nodeName") in self.lost:
            return None  # its node is gone, and this virt-handler with it
        vm = self.vms.get(ns, name)
        guest = self.guest(ns, name)
        if deleting(vmi):
            after = self._shut_down(vmi, vm, guest, status)
        elif status.get("phase") == "Scheduled" and (failed := await self._launcher_error(vmi)):
            after = await self._sync_failed(vmi, status, failed)
        else:
            after = self._advance(vmi, vm, guest, status)
        if status != (vmi.get("status") or {}):
            try:
                await self._write(vmi, status)
                if is_final({"status": status}):
                    guest.power_off = None
                if (told := credentials_event(vmi, vmi.get("status") or {}, status)) is not None:
                    await self.kube.create(EVENTS, ns, told)
            except ApiError as err:
                if err.status == 409:
                    return 0.05  # virt-controller wrote in between: read again
                if err.status != 404:
                    log.warning("virt-handler: VMI %s status update refused: %s", key, err)
                    return 1.0
        return after

    async def _write(self, vmi: JsonObj, status: JsonObj) -> None:
        # As virt-handler's ServiceAccount: KubeVirt's VMI mutating webhook reverts a status
        # change by anyone else, and the VMI CRD has no status subresource. The resourceVersion
        # makes it fail on a concurrent write rather than overwrite it.
        body = {**vmi, "status": status}
        if vmi["metadata"]["uid"] in self._relabel:
            body["metadata"] = without_hotplug_labels(vmi)
        updated = await self.as_handler.replace(VMIS, body)
        self._relabel.discard(vmi["metadata"]["uid"])
        self.vmis.apply(updated)
        self.written.append(updated.get("status") or {})

    def _advance(
        self, vmi: JsonObj, vm: JsonObj | None, guest: Guest, status: JsonObj
    ) -> float | None:
        if status.get("phase") == "Scheduled":
            wait = self._boot(vmi, vm, guest, status)
            if status["phase"] != "Running":
                return wait
            # What virt-handler learns from the node once the domain runs. virt-controller
            # needs selinuxContext to render hot-plug attachment pods ("VMI is missing SELinux
            # context" otherwise, and no volume is ever attached).
            status["selinuxContext"] = "none"
            status.setdefault("migrationMethod", "BlockMigration")
        if status.get("phase") != "Running":
            return None
        return self._running(vmi, vm, guest, status)

    def _running(
        self, vmi: JsonObj, vm: JsonObj | None, guest: Guest, status: JsonObj
    ) -> float | None:
        uptime = self._uptime(vmi, vm, guest, status)
        if uptime is None:
            return None  # guest.power_off is consumed once the write lands (reconcile)
        uid = vmi["metadata"]["uid"]
        reported = self._report_pause(uid, status)
        # A domain the user paused does no I/O: no disk error pauses it meanwhile.
        user_paused = self._domain_paused.get(uid, (False, 0.0))[0]
        io_retry = None if user_paused else self._disk_error(vmi, guest, status)
        status["conditions"] = self._live_migratable(vmi, list(status["conditions"]))
        migrating = self._migrate(vmi, status)
        # Keep what virt-controller adds to an interface (podInterfaceName, and multus-status
        # in infoSource, both from the pod's network-status): the node writing multus-status
        # itself and virt-controller taking it out again (the pod has no network-status here)
        # rewrote the VMI ~40 times a second for a VMI with a secondary network.
        known = {i.get("name"): i for i in status.get("interfaces") or []}
        found = interfaces(vmi, self.book, uptime.booted, uptime.agent, guest.nics)
        status["interfaces"] = [
            {**known.get(i["name"], {}), **with_multus_as_said(i, known.get(i["name"]))}
            if "name" in i
            else i
            for i in found
        ]
        volumes = self._volumes(vmi, status)
        return soonest(uptime.next_step, volumes, migrating, io_retry, reported)

    def _migrate(self, vmi: JsonObj, status: JsonObj) -> float | None:
        """virt-handler's part of a live migration (pkg/virt-handler migration-target.go and
        migration-source.go), once virt-controller has handed the target pod over (it writes
        migrationUid, targetNode, targetPod): the target advertises its address, the source
        starts, the target sees the domain arrive and run, the source ends, the target takes
        the VMI over (endTimestamp, nodeName) and, on a later sync, says `completed`. One step
        per `migration_step` seconds (the last, half of one)."""
        state = status.get("migrationState")
        if not state or not state.get("targetNode") or state.get("completed"):
            return None
        if state.get("failed"):
            return None  # failed or aborted: over, `completed` stays false (as KubeVirt's)
        if state.get("targetNode") not in self.cfg.nodes:
            return None
        step = self.cfg.migration_step_delay
        elapsed = self._age(vmi["metadata"]["uid"], f"migration:{state.get('migrationUid')}")
        state = dict(state)
        now = now_iso()
        if state.get("abortRequested") and not state.get("endTimestamp"):
            # The migration object was deleted: the source aborts the job (migration-source.go
            # sets AbortStatus, Failed and EndTimestamp; never Completed, which only the
            # target's finalizeMigration sets); the VM stays where it was.
            # virt-launcher's words (asyncMigrationAbort), trailing space and all.
            state.update(
                abortStatus="Succeeded",
                failed=True,
                endTimestamp=now,
                failureReason="Live migration aborted ",
            )
            state.setdefault("startTimestamp", now)
        elif not state.get("targetNodeAddress"):
            state["targetNodeAddress"] = "127.0.0.1"
            state["targetDirectMigrationNodePorts"] = {"49152": 0, "49153": 49153}
        elif not state.get("startTimestamp"):
            if elapsed < step:
                return step - elapsed
            state["startTimestamp"] = now
            state["mode"] = "PreCopy"
        elif not state.get("targetNodeDomainReadyTimestamp"):
            if elapsed < 2 * step:
                return 2 * step - elapsed
            state["targetNodeDomainDetected"] = True
            state["targetNodeDomainReadyTimestamp"] = now
        elif not state.get("endTimestamp"):
            if elapsed < 3 * step:
                return 3 * step - elapsed
            # The target acknowledges the end (ackMigrationCompletion): the VMI is its now.
            state["endTimestamp"] = now
            status["nodeName"] = state["targetNode"]
        else:
            if elapsed < 3.5 * step:
                return 3.5 * step - elapsed
            # On its next sync the target finalizes (finalizeMigration): it plugs the CPUs and
            # memory the VMI was moved for, then says `completed`.
            for failure in finalize_hotplug(vmi, status):
                log.warning("virt-handler: VMI %s hot-plug: %s", key_of(vmi), failure)
            self._relabel.add(vmi["metadata"]["uid"])  # hotplugMemory drops its labels
            state["completed"] = True
        status["migrationState"] = state
        return step

    def _volumes(self, vmi: JsonObj, status: JsonObj) -> float | None:
        """Targets for every volume virt-controller listed; hot-plugged ones get mounted."""
        spec = vmi.get("spec") or {}
        in_spec = {v["name"] for v in spec.get("volumes") or []}
        targets = device_names(spec)
        uid = vmi["metadata"]["uid"]
        step = self.cfg.hotplug_step_delay
        waits: list[float] = []
        statuses = []
        for entry in status.get("volumeStatus") or []:
            entry = dict(entry)
            name = entry["name"]
            if name in in_spec:
                entry["target"] = targets.get(name, "")
            hotplug = entry.get("hotplugVolume")
            if hotplug is not None and name not in in_spec:
                # Removed from the VMI: the domain lets the disk go, virt-handler unmounts it
                # from the launcher pod; virt-controller then deletes the attachment pod.
                elapsed = self._age(uid, f"unplug:{name}:{hotplug.get('attachPodUID')}")
                if elapsed < step:
                    waits.append(step - elapsed)
                elif entry.get("phase") not in ("UnMountedFromPod", "Detaching"):
                    entry.update(
                        target="",
                        phase="UnMountedFromPod",
                        reason="VolumeUnMountedFromPod",
                        message=f"Volume {name} has been unmounted from virt-launcher pod",
                    )
            if hotplug is not None and name in in_spec and hotplug.get("attachPodUID"):
                if entry.get("phase") in ("AttachedToNode", "MountedToPod"):
                    elapsed = self._age(uid, f"plug:{name}:{hotplug['attachPodUID']}")
                    index = min(int(elapsed / step) if step > 0 else 9, len(HOTPLUG_STEPS))
                    if index > 0:
                        ph, reason, message = HOTPLUG_STEPS[index - 1]
                        entry.update(phase=ph, reason=reason, message=message.format(name))
                    if index < len(HOTPLUG_STEPS):
                        waits.append(step * (index + 1) - elapsed)
            statuses.append(entry)
        if statuses:
            status["volumeStatus"] = statuses
        return min(waits) if waits else None

    async def set_paused(self, ns: str, name: str, paused: bool) -> str | None:
        """What virt-handler does when virt-api asks it to pause or resume (rest/lifecycle.go):
        libvirt pauses or resumes the domain and it answers 202; the VMI's Paused condition
        follows on its next sync of the domain, `pause_report_delay` later. An error or None."""
        vmi = await self.kube.get_or_none(VMIS, ns, name)
        if vmi is None or phase(vmi) != "Running":
            return "VMI is not running"
        due = self._clock() + self.cfg.pause_report_delay
        self._domain_paused[vmi["metadata"]["uid"]] = (paused, due)
        self.enqueue(key_of(vmi), after=self.cfg.pause_report_delay)
        return None

    def _report_pause(self, uid: str, status: JsonObj) -> float | None:
        """The Paused condition of a pause or resume made through `set_paused`, once its
        report is due; until the VMI shows it (a write can meet a conflict and be redone)."""
        if uid not in self._domain_paused:
            return None
        paused, due = self._domain_paused[uid]
        shown = (condition({"status": status}, "Paused") or {}).get("reason")
        if (shown == "PausedByUser") == paused:
            del self._domain_paused[uid]
            return None
        if self._clock() < due:
            return due - self._clock()
        conds = drop_condition(list(status.get("conditions") or []), "Paused")
        if paused:
            conds = set_condition(conds, "Paused", "True", "PausedByUser", "VMI was paused by user")
        status["conditions"] = conds
        return None


class HandlerServer:
    """virt-handler's HTTPS API as virt-api calls it (kubecli handler.go URIs), mutual TLS."""

    def __init__(
        self,
        kube: Kube,
        endpoints: KubeVirtEndpoints,
        handler: NodeHandler,
        guest: Callable[[str, str], Guest],
    ) -> None:
        self.kube, self.endpoints, self.handler, self.guest = kube, endpoints, handler, guest
        self.calls: list[tuple[str, str, str, int]] = []
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.endpoints.ca))
        ctx.load_cert_chain(str(self.endpoints.handler_cert), str(self.endpoints.handler_key))
        ctx.verify_mode = ssl.CERT_REQUIRED  # virt-api presents its client certificate
        app = web.Application()
        base = "/v1/namespaces/{namespace}/virtualmachineinstances/{name}/"
        for sub in ("pause", "unpause", "softreboot", "freeze", "unfreeze", "reset"):
            app.router.add_put(base + sub, self._put)
        for sub in ("guestosinfo", "userlist", "filesystemlist"):
            app.router.add_get(base + sub, self._get)
        app.router.add_get(base + "vnc/screenshot", self._screenshot)
        app.router.add_get(base + "console", self._console)
        app.router.add_get(base + "vnc", self._vnc)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await serve(self._runner, "127.0.0.1", self.endpoints.handler_port, ctx)

    async def stop(self) -> None:
        if self._runner is not None:
            await stop_serving(self._runner)
            self._runner = None

    async def _console(self, request: web.Request) -> web.StreamResponse:
        """The VMI's serial console; what is typed goes to its serial log too."""
        vmi, info = await self._vmi(request), request.match_info
        guest = self.guest(info["namespace"], info["name"])
        return await serial_console(request, None if vmi is None else serial_of(guest, vmi))

    async def _vnc(self, request: web.Request) -> web.StreamResponse:
        """The VMI's VNC server: one session at a time, the newest kept."""
        vmi, info = await self._vmi(request), request.match_info
        guest = self.guest(info["namespace"], info["name"])
        return await vnc_server(request, None if vmi is None else serial_of(guest, vmi))

    async def _vmi(self, request: web.Request) -> JsonObj | None:
        info = request.match_info
        return await self.kube.get_or_none(VMIS, info["namespace"], info["name"])

    async def _put(self, request: web.Request) -> web.Response:
        info = request.match_info
        sub = request.path.rsplit("/", 1)[-1]
        ns, name = info["namespace"], info["name"]
        error: str | None = None
        if sub in ("pause", "unpause"):
            error = await self.handler.set_paused(ns, name, sub == "pause")
        elif sub == "softreboot":
            vmi = await self._vmi(request)
            if vmi is None or phase(vmi) != "Running":
                error = "VMI is not running"
            else:
                await self._soft_reboot(vmi)
        self.calls.append(("PUT", ns, f"{name}/{sub}", 500 if error else 202))
        if error:
            return web.Response(status=500, text=error)
        return web.Response(status=202)

    async def _soft_reboot(self, vmi: JsonObj) -> None:
        """virt-handler's SoftRebootHandler: the guest reboots in its domain."""
        meta = vmi["metadata"]
        self.guest(meta["namespace"], meta["name"]).soft_reboot(vmi)
        await self.kube.create(EVENTS, meta["namespace"], soft_rebooted(vmi))

    async def _screenshot(self, request: web.Request) -> web.Response:
        """virt-handler's ScreenshotRequestHandler: the display as a PNG."""
        info = request.match_info
        vmi = await self._vmi(request)
        if vmi is None:
            return web.Response(status=404, text="VMI not found")
        self.calls.append(("GET", info["namespace"], f"{info['name']}/vnc/screenshot", 200))
        return web.Response(status=200, body=screenshot(), content_type="image/png")

    async def _get(self, request: web.Request) -> web.Response:
        info = request.match_info
        sub = request.path.rsplit("/", 1)[-1]
        vmi = await self._vmi(request)
        if vmi is None:
            return web.Response(status=404, text="VMI not found")
        guest = self.guest(info["namespace"], info["name"])
        if sub == "userlist":
            body = guest.user_list()
        elif sub == "filesystemlist":
            interval = self.handler.cfg.guest_report_interval
            body = {"items": guest.reported_filesystems(vmi, capacities(vmi), interval)}
        else:
            body = guest.os_info(vmi, capacities(vmi), self.handler.cfg.guest_report_interval)
        self.calls.append(("GET", info["namespace"], f"{info['name']}/{sub}", 200))
        return web.Response(status=200, text=json.dumps(body), content_type="application/json")
