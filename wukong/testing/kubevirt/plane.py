"""KubeVirt's own virt-api and virt-controller, built from source, on the local control plane.

    plane = ControlPlane(default_crds=False, crds=[...])   # without the hand-written KubeVirt CRDs
    plane.start()
    kubevirt = KubeVirtPlane(plane)
    kubevirt.start()          # CRDs, RBAC, webhooks, APIService, KubeVirt CR, then the two binaries
    ...                       # Simulator(..., config=SimConfig(node_only=True)) plays the nodes
    kubevirt.stop()

What virt-operator would install comes from virt-operator itself: `--dump-install-strategy`
writes every object into a ConfigMap, which is decoded once and cached beside the binaries. The
`kubevirts` CRD comes from KubeVirt's resource-generator, CDI's CRDs from CDI's generated source
(hack/kubevirt/build.sh). What is changed on the way in, and why:

- Webhooks and APIServices point at virt-api's port on 127.0.0.1 (an ExternalName Service
  `localhost`, resolved by the API server's cluster-IP resolver), trusting our KubeVirt CA.
- Webhooks served by virt-operator are left out: no virt-operator runs.
- Deployments, DaemonSets, Secrets, PodDisruptionBudgets and monitoring objects are left out:
  the binaries run here as processes, with certificates from our own KubeVirt CA.

virt-api and virt-controller act as their own ServiceAccounts (`kubevirt-apiserver`,
`kubevirt-controller`) with the RBAC from the install strategy, so KubeVirt's RBAC and its
"only KubeVirt may change a VMI's spec" webhook hold as in a cluster.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import gzip
import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from wukong.testing._assets import ControlPlaneError, has_binaries
from wukong.testing._certs import KubeVirtPki, write_kubevirt_pki
from wukong.testing._crds import apply_crds, load_crds
from wukong.testing._processes import Process, free_ports
from wukong.testing._rest import Rest
from wukong.testing.kubevirt.node import KubeVirtEndpoints

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]

NAMESPACE = "kubevirt"
# What docs/e2e.md's cluster enables (KubeVirt v1.9 has DeclarativeHotplugVolumes on by default,
# and with HotplugVolumes also on, HotplugVolumes' behaviour wins there too).
FEATURE_GATES = ("HotplugVolumes", "ExpandDisks", "Snapshot")
BINARIES = ("virt-api", "virt-controller", "virt-operator", "resource-generator")
_REPO_ROOT = Path(__file__).resolve().parents[3]
_BUILD_SCRIPT = _REPO_ROOT / "hack" / "kubevirt" / "build.sh"
_STRATEGY_FILE = "install-strategy.json"  # decoded once from virt-operator's YAML dump
_CRDS_FILE = "crds.json"  # KubeVirt's (strategy + kubevirts) and CDI's CRDs, for ControlPlane
_FIELD_MANAGER = "wukong-kubevirt-plane"
MAX_RESTART_DELAY = 10.0  # seconds: the kubelet's 5 min, compressed as the rest of a test is
_RUNNING: set[KubeVirtPlane] = set()

# Kinds applied from the install strategy, with their REST plural and scope.
_APPLIED: dict[str, tuple[str, bool]] = {
    "ServiceAccount": ("serviceaccounts", False),
    "ClusterRole": ("clusterroles", True),
    "ClusterRoleBinding": ("clusterrolebindings", True),
    "Role": ("roles", False),
    "RoleBinding": ("rolebindings", False),
    "ValidatingWebhookConfiguration": ("validatingwebhookconfigurations", True),
    "MutatingWebhookConfiguration": ("mutatingwebhookconfigurations", True),
    "ValidatingAdmissionPolicy": ("validatingadmissionpolicies", True),
    "ValidatingAdmissionPolicyBinding": ("validatingadmissionpolicybindings", True),
    "APIService": ("apiservices", True),
    "VirtualMachineClusterInstancetype": ("virtualmachineclusterinstancetypes", True),
    "VirtualMachineClusterPreference": ("virtualmachineclusterpreferences", True),
}


def kubevirt_assets() -> Path:
    """The folder with KubeVirt's binaries and CRDs, building them if needed.

    Order: $WUKONG_KUBEVIRT_ASSETS; else hack/kubevirt/build.sh of this checkout (cached, a no-op
    once built); else the newest complete version in ~/.cache/wukong/kubevirt.
    """
    env = os.environ.get("WUKONG_KUBEVIRT_ASSETS")
    if env:
        if not has_binaries(Path(env), BINARIES):
            raise ControlPlaneError(f"WUKONG_KUBEVIRT_ASSETS={env} lacks one of {BINARIES}")
        return Path(env)
    if _BUILD_SCRIPT.is_file():
        result = subprocess.run(
            ["bash", str(_BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False
        )
        lines = result.stdout.strip().splitlines()
        if result.returncode == 0 and lines:
            return Path(lines[-1])
        raise ControlPlaneError(f"{_BUILD_SCRIPT} failed with exit code {result.returncode}")
    cache = Path(
        os.environ.get("WUKONG_KUBEVIRT_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wukong/kubevirt"
    )
    complete = [d for d in sorted(cache.glob("v*"), reverse=True) if has_binaries(d, BINARIES)]
    if complete:
        return complete[0]
    raise ControlPlaneError(f"no KubeVirt binaries: run {_BUILD_SCRIPT} (looked in {cache})")


class KubeVirtPlane:
    """virt-api and virt-controller as processes, installed the way virt-operator would."""

    def __init__(
        self,
        plane: Any,
        *,
        assets: Path | None = None,
        feature_gates: Sequence[str] = FEATURE_GATES,
    ) -> None:
        self.plane = plane
        self.assets = assets
        self.feature_gates = tuple(feature_gates)
        self.version = ""
        self.api_port = 0
        self.handler_port = 0
        self.kubelet_port = 0
        self.controller_port = 0
        self.pki: KubeVirtPki | None = None
        self.handler_kubeconfig = Path()
        self._processes: list[Process] = []
        self._supervisor: threading.Thread | None = None
        self._stopping = threading.Event()
        self.restarts: dict[str, int] = {}
        self._rest: Rest | None = None
        self.startup_seconds: float | None = None
        self.timings: dict[str, float] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 180) -> None:
        """Install KubeVirt's objects, start virt-api and virt-controller, wait until both serve."""
        began = time.monotonic()
        deadline = began + timeout
        _RUNNING.add(self)
        try:
            self._start(began, deadline)
        except BaseException as error:
            report = "\n".join(p.describe_failure() for p in self._processes)
            self.stop(grace=0)
            raise ControlPlaneError(f"KubeVirt failed to start: {error}\n{report}") from error
        self.startup_seconds = time.monotonic() - began
        self._stopping.clear()
        self._supervisor = threading.Thread(
            target=self._supervise, name="kubevirt-supervisor", daemon=True
        )
        self._supervisor.start()

    def stop(self, grace: float = 5) -> None:
        """Stop virt-controller, then virt-api; the API server keeps their objects."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(5)
            self._supervisor = None
        for process in reversed(self._processes):
            process.stop(grace)
        self._processes.clear()
        _RUNNING.discard(self)

    def _supervise(self) -> None:
        """Restart a component that exited, as the kubelet restarts a crashed pod (with its
        back-off, 1 s doubling to 10 s, forgotten once unused for twice that as client-go's
        flowcontrol.Backoff forgets it). virt-controller exits by design when it cannot renew
        its leader Lease, e.g. while kube-apiserver restarts: `golog.Fatal("leaderelection
        lost")` in pkg/virt-controller/watch/application.go."""
        backoff: dict[str, tuple[float, float]] = {}  # name -> (next delay, when last used)
        while not self._stopping.wait(0.5):
            for process in list(self._processes):
                code = process.exited()
                if code is None or self._stopping.is_set():
                    continue
                delay = _restart_delay(backoff.get(process.name), time.monotonic())
                log.warning(
                    "%s exited with %s; restarting it in %.0f s (as the kubelet would)",
                    process.name,
                    code,
                    delay,
                )
                if self._stopping.wait(delay):
                    return
                backoff[process.name] = (min(delay * 2, MAX_RESTART_DELAY), time.monotonic())
                self.restarts[process.name] = self.restarts.get(process.name, 0) + 1
                process.stop(0)  # reap it
                process.start()
                guard = getattr(self.plane, "guard", None)
                if guard is not None:
                    guard(process)

    @property
    def endpoints(self) -> KubeVirtEndpoints:
        """What the simulator needs to play the node next to these components."""
        if self.pki is None:
            raise ControlPlaneError("KubeVirt is not running: call start() first")
        front_proxy = self.plane.front_proxy_client
        return KubeVirtEndpoints(
            namespace=NAMESPACE,
            api_port=self.api_port,
            handler_port=self.handler_port,
            kubelet_port=self.kubelet_port,
            ca=self.pki.ca,
            handler_cert=self.pki.handler.cert,
            handler_key=self.pki.handler.key,
            front_proxy_cert=front_proxy.cert,
            front_proxy_key=front_proxy.key,
            handler_kubeconfig=self.handler_kubeconfig,
        )

    @property
    def pids(self) -> list[int]:
        """Process ids of virt-api and virt-controller while they run."""
        return [p.pid for p in self._processes if p.pid is not None]

    @property
    def logs(self) -> dict[str, Path]:
        """Each binary's log file."""
        return {p.name: p.log for p in self._processes}

    def _start(self, began: float, deadline: float) -> None:
        assets = self.assets or kubevirt_assets()
        self.version = assets.name
        rest = self._rest = Rest(self.plane.server, self.plane.ca_file, self.plane.admin_cert)
        work = Path(self.plane.work_dir) / "kubevirt"
        self.pki = pki = write_kubevirt_pki(work / "pki", NAMESPACE)
        ports = free_ports(4)
        self.api_port, self.handler_port, self.controller_port, self.kubelet_port = ports
        _ensure(rest, "/api/v1/namespaces", _namespace(NAMESPACE))
        objects = install_strategy(rest, assets, self.plane.kubeconfig, deadline)
        crds = load_crds(crd_paths(assets))
        # Usually installed with the control plane already (crd_paths); apply what is missing.
        path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
        crds = [c for c in crds if rest.request("GET", path + c["metadata"]["name"])[0] != 200]
        apply_crds(rest, crds, max(deadline - time.monotonic(), 1))
        self.timings["crds"] = time.monotonic() - began
        ca_bundle = base64.b64encode(pki.ca.read_bytes()).decode()
        adjusted = [a for a in (self._adjust(o, ca_bundle) for o in objects) if a is not None]
        # Admission last: virt-api's webhooks (failurePolicy Fail) also guard the KubeVirt CR.
        admission = ("WebhookConfiguration", "APIService")
        for obj in adjusted:
            if not obj["kind"].endswith(admission):
                _apply(rest, obj)
        _apply_core(rest, "configmaps", _ca_configmap(pki.ca.read_text()))
        _apply_core(rest, "services", _external_name_service("virt-api", self.api_port))
        self._install_kubevirt_cr(rest)
        for obj in adjusted:
            if obj["kind"].endswith(admission):
                _apply(rest, obj)
        self.timings["installed"] = time.monotonic() - began
        api_kubeconfig = self.plane.service_account_kubeconfig(
            NAMESPACE, "kubevirt-apiserver", expiration_seconds=12 * 3600
        )
        controller_kubeconfig = self.plane.service_account_kubeconfig(
            NAMESPACE, "kubevirt-controller", expiration_seconds=12 * 3600
        )
        # The simulated node writes VMI status as virt-handler's own ServiceAccount.
        self.handler_kubeconfig = self.plane.service_account_kubeconfig(
            NAMESPACE, "kubevirt-handler", expiration_seconds=12 * 3600
        )
        self._spawn(
            work,
            "virt-api",
            [
                str(assets / "virt-api"),
                f"--kubeconfig={api_kubeconfig}",
                "--listen=127.0.0.1",
                f"--port={self.api_port}",
                f"--tls-cert-file={pki.virt_api.cert}",
                f"--tls-key-file={pki.virt_api.key}",
                f"--handler-cert-file={pki.virt_api_client.cert}",
                f"--handler-key-file={pki.virt_api_client.key}",
                f"--console-server-port={self.handler_port}",
                "--ca-configmap-name=kubevirt-ca",
            ],
        )
        launcher = f"quay.io/kubevirt/virt-launcher:{self.version}"
        self._spawn(
            work,
            "virt-controller",
            [
                str(assets / "virt-controller"),
                f"--kubeconfig={controller_kubeconfig}",
                "--listen=127.0.0.1",
                f"--port={self.controller_port}",
                f"--launcher-image={launcher}",
                f"--exporter-image=quay.io/kubevirt/virt-exportserver:{self.version}",
                f"--prom-cert-file={pki.controller.cert}",
                f"--prom-key-file={pki.controller.key}",
            ],
        )
        self._wait_ready(rest, deadline)
        self.timings["ready"] = time.monotonic() - began

    def _adjust(self, obj: JsonObject, ca_bundle: str) -> JsonObject | None:
        """The install-strategy object as applied here, or None to leave it out."""
        kind = obj["kind"]
        if kind not in _APPLIED:
            return None
        obj = json.loads(json.dumps(obj))
        if kind.startswith("ValidatingAdmissionPolicy"):
            # The strategy says apiVersion "v1" for these (virt-operator creates them with a
            # typed client, which ignores it); the API group is admissionregistration.k8s.io.
            obj["apiVersion"] = "admissionregistration.k8s.io/v1"
        if kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
            hooks = []
            for hook in obj.get("webhooks") or []:
                service = (hook.get("clientConfig") or {}).get("service") or {}
                if service.get("name") != "virt-api":
                    continue  # virt-operator's own webhooks: no virt-operator runs here
                service["port"] = self.api_port
                hook["clientConfig"]["caBundle"] = ca_bundle
                hooks.append(hook)
            if not hooks:
                return None
            obj["webhooks"] = hooks
        elif kind == "APIService":
            obj["spec"]["service"]["port"] = self.api_port
            obj["spec"]["caBundle"] = ca_bundle
            obj["spec"].pop("insecureSkipTLSVerify", None)
        obj.setdefault("metadata", {}).pop("creationTimestamp", None)
        return obj

    def _install_kubevirt_cr(self, rest: Rest) -> None:
        base = f"/apis/kubevirt.io/v1/namespaces/{NAMESPACE}/kubevirts"
        cr = {
            "apiVersion": "kubevirt.io/v1",
            "kind": "KubeVirt",
            "metadata": {"name": "kubevirt", "namespace": NAMESPACE},
            "spec": {
                "certificateRotateStrategy": {},
                "configuration": {
                    "developerConfiguration": {
                        "featureGates": list(self.feature_gates),
                        **_log_verbosity(),
                    },
                },
                "imagePullPolicy": "IfNotPresent",
                # CPU and memory hot-plug reach the guest through a live migration the
                # workload updater starts; without LiveMigrate here it never does.
                "workloadUpdateStrategy": {"workloadUpdateMethods": ["LiveMigrate"]},
            },
        }
        rest.json(
            "PATCH",
            f"{base}/kubevirt?fieldManager={_FIELD_MANAGER}&force=true",
            cr,
            content_type="application/apply-patch+yaml",
        )
        # virt-api and virt-controller read their configuration only from a KubeVirt CR that
        # virt-operator has reported on (virt-config GetConfigFromKubeVirtCR: phase != "").
        status = {
            "status": {
                "phase": "Deployed",
                # virt-operator reports the nodes' architecture; virt-api defaults VMs from it
                # (without it: "unsupported architecture: " from the VMI create webhook).
                "defaultArchitecture": "amd64",
                "observedKubeVirtVersion": self.version,
                "targetKubeVirtVersion": self.version,
                "observedKubeVirtRegistry": "quay.io/kubevirt",
                "targetKubeVirtRegistry": "quay.io/kubevirt",
                "conditions": [
                    {"type": "Available", "status": "True", "reason": "AllComponentsReady"}
                ],
            }
        }
        rest.json(
            "PATCH",
            f"{base}/kubevirt/status",
            status,
            content_type="application/merge-patch+json",
        )

    def _spawn(self, work: Path, name: str, argv: list[str]) -> None:
        process = Process(name, argv, work / f"{name}.log")
        self._processes.append(process)
        process.start()
        guard = getattr(self.plane, "guard", None)  # the watchdog stops it if our owner dies
        if guard is not None:
            guard(process)

    def _check_alive(self) -> None:
        for process in self._processes:
            if process.exited() is not None:
                raise ControlPlaneError(f"{process.name} exited with {process.exited()}")

    def wait_ready(self, timeout: float = 90) -> None:
        """Block until KubeVirt serves again as after `start` (e.g. after an API-server
        restart: virt-controller restarted and leading, the APIService Available)."""
        if self._rest is None:
            raise ControlPlaneError("KubeVirt is not running: call start() first")
        # A component may be between exit and restart (the supervisor's back-off): no alive check.
        self._wait_ready(self._rest, time.monotonic() + timeout, check_alive=False)

    def _wait_ready(self, rest: Rest, deadline: float, *, check_alive: bool = True) -> None:
        """The aggregated API is Available, a VM passes the webhooks, virt-controller leads."""
        checks: dict[str, Callable[[], bool]] = {
            "APIService v1.subresources.kubevirt.io Available": lambda: _apiservice_ready(rest),
            "virt-api's VM webhooks answering": lambda: _webhooks_ready(rest),
            "virt-controller renewing its Lease": _Renewing(rest),
        }
        waiting = list(checks)
        while waiting:
            if check_alive:
                self._check_alive()
            waiting = [name for name in waiting if not checks[name]()]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"timed out waiting for: {', '.join(waiting)} (last VM probe: {_LAST_PROBE[0]})"
                )
            time.sleep(0.2)


# -- the install strategy --------------------------------------------------------------------


def crd_paths(assets: Path) -> list[Path]:
    """Files holding KubeVirt's and CDI's CRDs, for `ControlPlane(crds=...)`.

    Installed with the control plane, the CRDs are there before the garbage collector starts
    (it rediscovers resources only every 30 s). The install strategy is dumped once, on a
    throwaway API server, when the cache does not have it yet.
    """
    if not (assets / _STRATEGY_FILE).is_file():
        from wukong.testing.controlplane import ControlPlane

        with ControlPlane(default_crds=False, controller_manager=False) as scratch:
            rest = Rest(scratch.server, scratch.ca_file, scratch.admin_cert)
            _ensure(rest, "/api/v1/namespaces", _namespace(NAMESPACE))
            install_strategy(rest, assets, scratch.kubeconfig, time.monotonic() + 120)
    cached = assets / _CRDS_FILE
    if not cached.is_file():
        crds = load_crds([assets / _STRATEGY_FILE, assets / "kubevirt-crd.yaml"])
        crds += load_crds([assets / "cdi-crds.yaml"])
        _write_atomic(cached, json.dumps(crds))
    return [cached]


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


def install_strategy(
    rest: Rest, assets: Path, kubeconfig: Path, deadline: float
) -> list[JsonObject]:
    """Every object virt-operator installs, from its own --dump-install-strategy (cached)."""
    cached = assets / _STRATEGY_FILE
    if not cached.is_file():
        text = _dump_install_strategy(rest, assets, kubeconfig, deadline)
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        objects = [d for d in yaml.load_all(text, Loader=loader) if isinstance(d, dict) and d]
        _write_atomic(cached, json.dumps(objects))
    loaded: list[JsonObject] = json.loads(cached.read_text())
    return loaded


def _dump_install_strategy(rest: Rest, assets: Path, kubeconfig: Path, deadline: float) -> str:
    version = assets.name
    env = {
        **os.environ,
        "OPERATOR_IMAGE": f"quay.io/kubevirt/virt-operator:{version}",
        "KUBEVIRT_VERSION": version,
        "OPERATOR_NAMESPACE": NAMESPACE,
    }
    result = subprocess.run(
        [str(assets / "virt-operator"), f"--kubeconfig={kubeconfig}", "--dump-install-strategy"],
        env=env,
        capture_output=True,
        text=True,
        timeout=max(deadline - time.monotonic(), 10),
        check=False,
    )
    if result.returncode != 0:
        raise ControlPlaneError(
            f"virt-operator --dump-install-strategy failed ({result.returncode}): "
            f"{result.stderr[-2000:]}"
        )
    listing = rest.json("GET", f"/api/v1/namespaces/{NAMESPACE}/configmaps")
    for item in listing.get("items", []):
        name = item["metadata"]["name"]
        if not name.startswith("kubevirt-install-strategy-"):
            continue
        manifests = item["data"]["manifests"]
        encoding = (item["metadata"].get("annotations") or {}).get(
            "kubevirt.io/install-strategy-cm-encoding"
        )
        if encoding == "gzip+base64":
            manifests = gzip.decompress(base64.b64decode(manifests)).decode()
        rest.request("DELETE", f"/api/v1/namespaces/{NAMESPACE}/configmaps/{name}")
        return str(manifests)
    raise ControlPlaneError("virt-operator wrote no kubevirt-install-strategy ConfigMap")


# -- small REST helpers ----------------------------------------------------------------------


def _path(obj: JsonObject, plural: str, cluster: bool) -> str:
    group, _, version = str(obj["apiVersion"]).rpartition("/")
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    if not cluster:
        base += f"/namespaces/{obj['metadata'].get('namespace') or NAMESPACE}"
    return f"{base}/{plural}/{obj['metadata']['name']}"


def _apply(rest: Rest, obj: JsonObject) -> None:
    plural, cluster = _APPLIED[obj["kind"]]
    rest.json(
        "PATCH",
        f"{_path(obj, plural, cluster)}?fieldManager={_FIELD_MANAGER}&force=true",
        obj,
        content_type="application/apply-patch+yaml",
    )


def _apply_core(rest: Rest, plural: str, obj: JsonObject) -> None:
    rest.json(
        "PATCH",
        f"{_path(obj, plural, False)}?fieldManager={_FIELD_MANAGER}&force=true",
        obj,
        content_type="application/apply-patch+yaml",
    )


def _ensure(rest: Rest, collection: str, obj: JsonObject) -> None:
    status, text = rest.request("POST", collection, obj)
    if status not in (201, 409):
        raise ControlPlaneError(f"POST {collection} -> {status}: {text[:500]}")


def _verbosity() -> list[str]:
    # WUKONG_KUBEVIRT_V=4: KubeVirt's own debug logs, for reading what a controller decided.
    level = os.environ.get("WUKONG_KUBEVIRT_V")
    return [f"--v={int(level)}"] if level else []


def _log_verbosity() -> JsonObject:
    level = os.environ.get("WUKONG_KUBEVIRT_V")
    if not level:
        return {}
    return {"logVerbosity": {"virtAPI": int(level), "virtController": int(level)}}


def _namespace(name: str) -> JsonObject:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _ca_configmap(pem: str) -> JsonObject:
    # virt-api trusts virt-handler's serving certificate through this bundle (pkg/util/tls).
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "kubevirt-ca", "namespace": NAMESPACE},
        "data": {"ca-bundle": pem},
    }


def _external_name_service(name: str, port: int) -> JsonObject:
    # The API server's cluster-IP resolver sends webhook and aggregated calls for an
    # ExternalName Service to https://<externalName>:<port>: here, virt-api on loopback.
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"kubevirt.io": name}},
        "spec": {
            "type": "ExternalName",
            "externalName": "localhost",
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        },
    }


def _condition_true(obj: JsonObject, kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
    )


def _apiservice_ready(rest: Rest) -> bool:
    status, text = rest.request(
        "GET", "/apis/apiregistration.k8s.io/v1/apiservices/v1.subresources.kubevirt.io"
    )
    return status == 200 and _condition_true(json.loads(text), "Available")


_PROBE_VM: JsonObject = {
    "apiVersion": "kubevirt.io/v1",
    "kind": "VirtualMachine",
    "metadata": {"name": "wukong-webhook-probe", "namespace": "default"},
    "spec": {
        "runStrategy": "Halted",
        "template": {"spec": {"domain": {"devices": {}, "memory": {"guest": "64Mi"}}}},
    },
}


_LAST_PROBE: list[str] = [""]


def _webhooks_ready(rest: Rest) -> bool:
    """A dry-run VM create went through virt-api's mutating and validating webhooks."""
    try:
        status, text = rest.request(
            "POST",
            "/apis/kubevirt.io/v1/namespaces/default/virtualmachines?dryRun=All",
            _PROBE_VM,
        )
    except OSError as error:
        _LAST_PROBE[0] = str(error)
        return False
    _LAST_PROBE[0] = f"{status}: {text[:500]}"
    if status != 201:
        return False
    # The mutating webhook fills defaults (the machine type, firmware serial and uuid).
    spec = json.loads(text).get("spec", {}).get("template", {}).get("spec", {})
    return bool(spec.get("domain", {}).get("machine", {}).get("type"))


class _Renewing:
    """virt-controller's Lease is being renewed: its renewTime moved since the first look.

    A holder alone is not enough. After an API-server restart the Lease still names the
    virt-controller that held it, which may be about to exit for having missed its renewals
    (then restart after the supervisor's back-off and wait out the Lease): a test starting
    then found no VMI made for 40 s. A renewal seen after the first look is one made since."""

    def __init__(self, rest: Rest) -> None:
        self.rest = rest
        self.first: str | None = None

    def __call__(self) -> bool:
        status, text = self.rest.request(
            "GET", f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/virt-controller"
        )
        spec = json.loads(text).get("spec", {}) if status == 200 else {}
        if not spec.get("holderIdentity") or not spec.get("renewTime"):
            return False
        if self.first is None:
            self.first = str(spec["renewTime"])
            return False
        return str(spec["renewTime"]) != self.first


def strategy_kinds(objects: Iterable[JsonObject]) -> dict[str, int]:
    """How many objects of each kind an install strategy holds (for the docs and the log)."""
    counts: dict[str, int] = {}
    for obj in objects:
        counts[obj["kind"]] = counts.get(obj["kind"], 0) + 1
    return counts


@atexit.register
def _stop_leftovers() -> None:
    for plane in list(_RUNNING):
        with contextlib.suppress(Exception):
            plane.stop(grace=0)


def _restart_delay(last: tuple[float, float] | None, now: float) -> float:
    """How long to wait before restarting a component that exited: 1 s the first time and
    after a quiet spell (no restart for twice the longest delay), else the next delay."""
    if last is None:
        return 1.0
    delay, used = last
    return 1.0 if now - used > 2 * MAX_RESTART_DELAY else delay
