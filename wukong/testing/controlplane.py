"""A real, local Kubernetes control plane for tests and demos: etcd, kube-apiserver, GC.

Like controller-runtime's envtest, but from Python and with kube-controller-manager running the
garbage collector, the namespace, PVC-protection, role-aggregation and resource-quota
controllers, so cascading deletes, namespace teardown, PVC deletion, `edit`/`view` and quotas
behave as on a cluster. No kubelet or scheduler: pods never run.

    with ControlPlane() as cp:          # etcd -> kube-apiserver -> CRDs -> controller manager
        print(cp.server, cp.kubeconfig)

Binaries come from `assets_dir()`; see hack/controlplane/build.sh.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client import ApiClient

from wukong.adapters.client import look_up_environment_once
from wukong.testing._assets import BINARIES, ControlPlaneError, assets_dir, has_binaries
from wukong.testing._certs import KeyPair, Pki, write_pki
from wukong.testing._crds import apply_crds, default_crd_paths, load_crds
from wukong.testing._flags import apiserver_args, controller_manager_args, etcd_args
from wukong.testing._processes import Process, free_ports
from wukong.testing._rest import Rest, write_kubeconfig
from wukong.testing._watchdog import Watchdog
from wukong.testing.audit import audit_args

__all__ = [
    "ControlPlane",
    "ControlPlaneError",
    "api_client",
    "assets_dir",
    "default_crd_paths",
]

# Strong references: a plane dropped without stop() must still be stopped at exit.
_RUNNING: set[ControlPlane] = set()
_ATTEMPTS = 2


CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "StorageClass",
        "WukongNetworkPolicy",
    }
)


class ControlPlane:
    """etcd + kube-apiserver (+ kube-controller-manager) on loopback; sync start and stop.

    Each binary logs to `<work_dir>/<name>.log`. The work dir (certificates, kubeconfigs, logs)
    and etcd's data dir are temporary and removed by stop(), unless `work_dir` was given: that
    one is kept, with its logs.
    """

    def __init__(
        self,
        *,
        assets: Path | None = None,
        crds: Sequence[Path] = (),
        default_crds: bool = True,
        controller_manager: bool = True,
        quotas: bool = True,
        work_dir: Path | None = None,
    ) -> None:
        """Configure; nothing runs until start(). `crds` adds files or folders to the defaults;
        `quotas` False leaves out the resource-quota controller (whose watches of every
        resource cost the API server CPU: the benchmark's cluster, as before it ran)."""
        self.assets = assets
        self.crd_paths = [*(default_crd_paths() if default_crds else []), *crds]
        self.controller_manager = controller_manager
        self.quotas = quotas
        self._given_work_dir = work_dir
        self._temp_dirs: list[Path] = []
        self._processes: list[Process] = []
        # Stops the processes and removes the temp dirs if this process dies without stop().
        self._watchdog = Watchdog()
        self._pki: Pki | None = None
        self._rest: Rest | None = None
        self._server: str | None = None
        self.work_dir: Path | None = None
        self.startup_seconds: float | None = None
        # Seconds from start() to each milestone ("apiserver", "crds"), for tuning start-up.
        self.timings: dict[str, float] = {}
        self._began = 0.0

    # -- what clients need -------------------------------------------------------------------

    @property
    def server(self) -> str:
        """The API server URL, https://127.0.0.1:<port>."""
        if self._server is None:
            raise ControlPlaneError("the control plane is not running: call start() first")
        return self._server

    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (client certificate in group system:masters)."""
        return self._dir / "admin.kubeconfig"

    @property
    def ca_file(self) -> Path:
        """The CA that signed the API server's serving certificate."""
        return self._require_pki().serving_ca

    @property
    def admin_cert(self) -> KeyPair:
        """The admin client certificate and key (PEM files)."""
        return self._require_pki().admin

    @property
    def front_proxy_ca_file(self) -> Path:
        """The CA of the aggregator's client cert, for aggregated API servers to verify requests."""
        return self._require_pki().front_proxy_ca

    @property
    def audit_log(self) -> Path:
        """The API server's audit log of KubeVirt and CDI requests (wukong.testing.audit)."""
        return self._dir / "audit.log"

    @property
    def front_proxy_client(self) -> KeyPair:
        """The aggregator's client certificate, for forwarding requests as the API server does."""
        return self._require_pki().front_proxy_client

    @property
    def pids(self) -> list[int]:
        """Process ids of the running binaries."""
        return [p.pid for p in self._processes if p.pid is not None]

    @property
    def owned_dirs(self) -> list[Path]:
        """Temporary directories this control plane created and stop() removes."""
        return list(self._temp_dirs)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        """etcd -> kube-apiserver (/readyz) -> CRDs Established -> kube-controller-manager."""
        if self._processes:
            raise ControlPlaneError("already started")
        began = self._began = time.monotonic()
        deadline = began + timeout
        for attempt in range(_ATTEMPTS):
            _RUNNING.add(self)
            try:
                self._start(deadline)
            except BaseException as error:
                report = "\n".join(p.describe_failure() for p in self._processes)
                # SIGKILL: a half-started apiserver ignores SIGTERM while it waits for etcd.
                self._teardown(grace=0)
                if not isinstance(error, ControlPlaneError | TimeoutError | OSError | RuntimeError):
                    raise
                # Free ports are only free until someone else binds them: pick new ones once.
                if "address already in use" in report and attempt + 1 < _ATTEMPTS:
                    continue
                message = f"control plane failed to start: {error}\n{report}"
                raise ControlPlaneError(message) from error
            break
        self.startup_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Stop every process (controller manager first, etcd last) and remove the temp dirs."""
        self._teardown(grace=10)

    def _teardown(self, grace: float) -> None:
        for process in reversed(self._processes):
            process.stop(grace)
        self._processes.clear()
        for directory in self._temp_dirs:
            shutil.rmtree(directory, ignore_errors=True)
        self._temp_dirs.clear()
        self._watchdog.release()
        self._server = self._rest = self._pki = None
        self.work_dir = None
        _RUNNING.discard(self)

    def __enter__(self) -> ControlPlane:
        """Start and return self."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop."""
        self.stop()

    # -- operations --------------------------------------------------------------------------

    def install_crds(self, paths: Sequence[Path], timeout: float = 30) -> None:
        """Apply the CRDs in these files or folders and wait until they are served.

        Prefer passing CRDs to the constructor: the garbage collector rediscovers resources only
        every 30 s, so later ones cascade late at first, and the apiserver holds each create of a
        custom resource for 2 s while its CRD is less than 2 s old.
        """
        apply_crds(self._require_rest(), load_crds(paths), timeout)

    def apply(self, docs: Sequence[dict[str, Any]]) -> None:
        """Server-side apply plain manifests (namespaces, RBAC, policies) as the admin."""
        rest = self._require_rest()
        for doc in docs:
            group, _, version = str(doc["apiVersion"]).rpartition("/")
            kind, meta = str(doc["kind"]), doc["metadata"]
            base = f"/apis/{group}/{version}" if group else f"/api/{version}"
            if kind not in CLUSTER_SCOPED:
                base += f"/namespaces/{meta.get('namespace') or 'default'}"
            lower = kind.lower()
            plural = f"{lower[:-1]}ies" if lower.endswith("y") else f"{lower}s"  # *Policy
            path = f"{base}/{plural}/{meta['name']}"
            rest.json(
                "PATCH",
                f"{path}?fieldManager=wukong-tests&force=true",
                doc,
                content_type="application/apply-patch+yaml",
            )

    def service_account_kubeconfig(
        self, namespace: str, name: str, *, expiration_seconds: int = 3600
    ) -> Path:
        """A kubeconfig that acts as ServiceAccount namespace/name (token via TokenRequest)."""
        reply = self._require_rest().json(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": expiration_seconds},
            },
        )
        return write_kubeconfig(
            self._dir / f"sa-{namespace}-{name}.kubeconfig",
            server=self.server,
            ca_file=self.ca_file,
            token=reply["status"]["token"],
            namespace=namespace,
            user=f"system:serviceaccount:{namespace}:{name}",
        )

    # -- faults (for reliability tests) ---------------------------------------------------------

    @property
    def watchdog_pid(self) -> int | None:
        """The process that cleans up after us if we die without stop() (None when stopped)."""
        return self._watchdog.pid

    def stop_apiserver(self, grace: float = 10) -> None:
        """Stop kube-apiserver only; etcd and its data stay. Clients see connection refused."""
        self._apiserver_process().stop(grace)

    def start_apiserver(self, timeout: float = 60) -> None:
        """Start kube-apiserver again on the same port, certificates and etcd; wait for /readyz."""
        process = self._apiserver_process()
        if process.exited() is None and process.pid is not None:
            raise ControlPlaneError("kube-apiserver is running: stop_apiserver() first")
        process.start()
        self._guard(process)
        rest = self._require_rest()
        deadline = time.monotonic() + timeout
        while not rest.ready():
            if process.exited() is not None:
                raise ControlPlaneError(f"kube-apiserver exited again:\n{process.tail()}")
            if time.monotonic() > deadline:
                raise ControlPlaneError("kube-apiserver not ready (/readyz) after its restart")
            time.sleep(0.05)

    def restart_apiserver(self, *, down_for: float = 0.0, timeout: float = 60) -> None:
        """Stop kube-apiserver (SIGTERM), keep it down `down_for` seconds, start it again."""
        self.stop_apiserver()
        time.sleep(down_for)
        self.start_apiserver(timeout)

    def _apiserver_process(self) -> Process:
        for process in self._processes:
            if process.name == "kube-apiserver":
                return process
        raise ControlPlaneError("the control plane is not running: call start() first")

    @contextlib.contextmanager
    def controllers_paused(self) -> Iterator[None]:
        """kube-controller-manager stopped (SIGSTOP) for the block, and let go on after it
        (SIGCONT): a garbage collector that lags, as one does that has yet to discover a
        kind (every 30 s). It runs without leader election, so no lease lapses meanwhile."""
        process = next((p for p in self._processes if p.name == "kube-controller-manager"), None)
        if process is None or process.pid is None or process.exited() is not None:
            raise ControlPlaneError("no kube-controller-manager runs on this control plane")
        os.kill(process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(process.pid, signal.SIGCONT)

    def guard(self, process: Process) -> None:
        """Have the watchdog stop `process` if this plane's owner dies (KubeVirt's too)."""
        if process.pid is not None:
            self._watchdog.guard_process(process.pid)

    _guard = guard

    # -- internals ---------------------------------------------------------------------------

    def _start(self, deadline: float) -> None:
        assets = self.assets or assets_dir()
        needed = BINARIES if self.controller_manager else BINARIES[:2]
        if not has_binaries(assets, needed):
            raise ControlPlaneError(f"{assets} lacks one of {', '.join(needed)}")
        rest = self._start_apiserver(assets, deadline)
        crds = load_crds(self.crd_paths)
        apply_crds(rest, crds, max(deadline - time.monotonic(), 1))
        self._mark("crds")
        # The apiserver delays every create of a custom resource by 2 s while its CRD is less
        # than 2 s Established; wait that out here, overlapped with the controller manager's start.
        settled = time.monotonic() + (2.0 if crds else 0.0)
        if self.controller_manager:
            # Started after the CRDs: GC rediscovers resources only every 30 s.
            binary = assets / "kube-controller-manager"
            args = controller_manager_args(binary, self.kubeconfig, quotas=self.quotas)
            self._spawn("kube-controller-manager", args)
        while time.monotonic() < settled:
            self._check_alive()  # also catches a controller manager that rejects its flags
            time.sleep(0.05)
        self._check_alive()

    def _start_apiserver(self, assets: Path, deadline: float) -> Rest:
        work = self._make_work_dir()
        # etcd's data on tmpfs: with --unsafe-no-fsync that makes writes memory-speed.
        shm = Path("/dev/shm")
        tmpfs = shm.is_dir() and os.access(shm, os.W_OK)
        data = self._temp_dir("wukong-etcd-", shm if tmpfs else work)
        pki = self._pki = write_pki(work / "pki")
        etcd_port, peer_port, api_port = free_ports(3)
        self._spawn("etcd", etcd_args(assets / "etcd", data, etcd_port, peer_port))
        # No need to wait for etcd: kube-apiserver retries its etcd connection on its own.
        apiserver = apiserver_args(assets / "kube-apiserver", work, pki, api_port, etcd_port)
        apiserver += audit_args(work)
        self._spawn("kube-apiserver", apiserver)
        server = f"https://127.0.0.1:{api_port}"
        rest = self._rest = Rest(server, pki.serving_ca, pki.admin)
        while not rest.ready():
            self._check_alive()
            if time.monotonic() > deadline:
                raise ControlPlaneError("kube-apiserver not ready (/readyz) before the timeout")
            time.sleep(0.05)
        self._server = server
        write_kubeconfig(self.kubeconfig, server=server, ca_file=pki.serving_ca, client=pki.admin)
        self._mark("apiserver")
        return rest

    def _mark(self, milestone: str) -> None:
        self.timings[milestone] = time.monotonic() - self._began

    def _make_work_dir(self) -> Path:
        if self._given_work_dir is None:
            work = self._temp_dir("wukong-controlplane-", None)
        else:
            work = self._given_work_dir
            work.mkdir(parents=True, exist_ok=True)
        self.work_dir = work
        return work

    def _temp_dir(self, prefix: str, parent: Path | None) -> Path:
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        self._temp_dirs.append(path)
        self._watchdog.guard_dir(path)
        return path

    def _spawn(self, name: str, argv: list[str]) -> None:
        process = Process(name, argv, self._dir / f"{name}.log")
        self._processes.append(process)
        process.start()
        self._guard(process)

    def _check_alive(self) -> None:
        for process in self._processes:
            if process.exited() is not None:
                raise ControlPlaneError(f"{process.name} exited with {process.exited()}")

    @property
    def _dir(self) -> Path:
        if self.work_dir is None:
            raise ControlPlaneError("the control plane is not running: call start() first")
        return self.work_dir

    def _require_pki(self) -> Pki:
        if self._pki is None:
            raise ControlPlaneError("the control plane is not running: call start() first")
        return self._pki

    def _require_rest(self) -> Rest:
        if self._rest is None:
            raise ControlPlaneError("the control plane is not running: call start() first")
        return self._rest


async def api_client(kubeconfig: Path) -> ApiClient:
    """A kubernetes_asyncio ApiClient for a kubeconfig file; close it (`async with`) when done."""
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    api = ApiClient(configuration)
    look_up_environment_once(api)
    return api


@atexit.register
def _stop_leftovers() -> None:
    # A session that forgets stop() (or dies on an exception) must not leave etcd behind.
    for plane in list(_RUNNING):
        with contextlib.suppress(Exception):
            plane.stop()
