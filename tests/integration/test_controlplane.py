"""The local control plane behaves like a real cluster where Wukong relies on it."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from wukong.testing import _processes
from wukong.testing._processes import Process
from wukong.testing.controlplane import ControlPlane, ControlPlaneError, api_client, assets_dir
from wukong.testing.eventually import eventually
from wukong.testing.namespaces import temporary_namespace

GROUP, VERSION, PLURAL = "vm.novasphere.dev", "v1alpha1", "wukongs"
FINALIZER = "wukong.novasphere.dev/finalizer"
# GC acts within seconds, but its first discovery sync can take longer on a loaded CI machine.
GC_TIMEOUT = 60

Body = dict[str, Any]


def wukong(name: str, **spec: Any) -> Body:
    """A valid Wukong; keyword arguments replace fields of its spec."""
    body: Body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Wukong",
        "metadata": {"name": name},
        "spec": {
            "cpu": 2,
            "memory": "4Gi",
            "disks": [
                {
                    "name": "system",
                    "size": "20Gi",
                    "image": "docker://quay.io/containerdisks/fedora:40",
                }
            ],
        },
    }
    body["spec"].update(spec)
    return body


def set_status(status: Body) -> list[Body]:
    """A JSON patch replacing the whole status (custom resources take no strategic merge)."""
    return [{"op": "add", "path": "/status", "value": status}]


def reason(error: ApiException) -> str:
    """The API server's message from an error response."""
    return str(json.loads(error.body or "{}").get("message", ""))


async def status_of(call: Any) -> int:
    """The HTTP status an API call fails with, or 200 when it succeeds."""
    try:
        await call
    except ApiException as error:
        return int(error.status)
    return 200


def gone(read: Callable[[], Any]) -> Callable[[], Any]:
    """A predicate for `eventually`: True once `read()` answers 404."""

    async def check() -> bool:
        return await status_of(read()) == 404

    return check


# -- the Wukong CRD as the API server enforces it ---------------------------------------------


async def test_a_valid_wukong_is_accepted_with_schema_defaults(
    kube: ApiClient, namespace: str
) -> None:
    objects = client.CustomObjectsApi(kube)
    await objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, wukong("web-1")
    )

    stored = await objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "web-1")

    assert stored["spec"]["runStrategy"] == "Always"
    assert stored["spec"]["startStrategy"] == {"autoStart": True}


@pytest.mark.parametrize(
    ("spec", "messages"),
    [
        pytest.param(
            {
                "disks": [
                    {"name": "system", "size": "20Gi"},
                    {"name": "system", "size": "10Gi"},
                ]
            },
            # The list is a map keyed by name: the server reports the duplicate key itself.
            ("disk names must be unique", "Duplicate value"),
            id="duplicate-disk-names",
        ),
        pytest.param({"cpu": 0}, ("should be greater than or equal to 1",), id="zero-cpu"),
        pytest.param({"memory": "0"}, ("memory must be at least 1M",), id="zero-memory"),
    ],
)
async def test_an_invalid_wukong_is_rejected_with_the_crd_message(
    kube: ApiClient, namespace: str, spec: Body, messages: tuple[str, ...]
) -> None:
    objects = client.CustomObjectsApi(kube)
    body = wukong("bad", **spec)

    with pytest.raises(ApiException) as caught:
        await objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)

    assert caught.value.status == 422
    assert any(m in reason(caught.value) for m in messages), reason(caught.value)


async def test_a_disk_can_grow_but_not_shrink(kube: ApiClient, namespace: str) -> None:
    objects = client.CustomObjectsApi(kube)
    await objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, wukong("web"))
    current = await objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "web")

    current["spec"]["disks"][0]["size"] = "10Gi"
    with pytest.raises(ApiException) as caught:
        await objects.replace_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "web", current
        )
    assert caught.value.status == 422
    assert "a disk cannot shrink" in reason(caught.value)

    current["spec"]["disks"][0]["size"] = "30Gi"
    grown = await objects.replace_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "web", current
    )
    assert grown["spec"]["disks"][0]["size"] == "30Gi"


# -- status subresource and optimistic concurrency --------------------------------------------


async def test_status_is_written_only_through_the_status_subresource(
    kube: ApiClient, namespace: str
) -> None:
    objects = client.CustomObjectsApi(kube)
    created = await objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, wukong("web")
    )

    created["status"] = {"phase": "Running"}
    ignored = await objects.replace_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "web", created
    )
    assert "phase" not in ignored.get("status", {})

    written = await objects.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "web",
        set_status({"phase": "Running"}),
    )
    assert written["status"]["phase"] == "Running"
    assert written["metadata"]["generation"] == created["metadata"]["generation"]
    stored = await objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "web")
    assert stored["status"]["phase"] == "Running"


async def test_a_stale_resource_version_is_a_conflict(kube: ApiClient, namespace: str) -> None:
    objects = client.CustomObjectsApi(kube)
    stale = await objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, wukong("web")
    )
    await objects.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "web",
        set_status({"phase": "Creating"}),
    )

    stale["status"] = {"phase": "Pending"}
    replace = objects.replace_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "web", stale
    )
    assert await status_of(replace) == 409


# -- controllers: garbage collection, finalizers, PVC protection, namespaces ------------------


async def test_children_of_a_deleted_wukong_are_garbage_collected(
    kube: ApiClient, namespace: str
) -> None:
    objects, core = client.CustomObjectsApi(kube), client.CoreV1Api(kube)
    owner = await objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, wukong("web")
    )
    reference = client.V1OwnerReference(
        api_version=f"{GROUP}/{VERSION}", kind="Wukong", name="web", uid=owner["metadata"]["uid"]
    )
    await core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="child", owner_references=[reference])
        ),
    )
    await core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="unrelated"))
    )

    await objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "web")

    await eventually(
        gone(lambda: core.read_namespaced_config_map("child", namespace)), timeout=GC_TIMEOUT
    )
    assert await status_of(core.read_namespaced_config_map("unrelated", namespace)) == 200


async def test_a_finalizer_holds_an_object_in_deletion_until_removed(
    kube: ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube)
    meta = client.V1ObjectMeta(name="held", finalizers=[FINALIZER])
    await core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=meta))

    await core.delete_namespaced_config_map("held", namespace)

    held = await core.read_namespaced_config_map("held", namespace)
    assert held.metadata.deletion_timestamp is not None
    assert held.metadata.finalizers == [FINALIZER]
    await core.patch_namespaced_config_map("held", namespace, {"metadata": {"finalizers": None}})
    await eventually(gone(lambda: core.read_namespaced_config_map("held", namespace)))


async def test_a_deleted_pvc_goes_away_once_unused(kube: ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube)
    claim = client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="data"),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"}),
        ),
    )
    created = await core.create_namespaced_persistent_volume_claim(namespace, claim)
    # Added by the StorageObjectInUseProtection admission plugin, removed only by the controller.
    assert "kubernetes.io/pvc-protection" in created.metadata.finalizers

    await core.delete_namespaced_persistent_volume_claim("data", namespace)

    await eventually(
        gone(lambda: core.read_namespaced_persistent_volume_claim("data", namespace)),
        timeout=GC_TIMEOUT,
    )


async def test_a_deleted_namespace_is_emptied_and_removed(kube: ApiClient) -> None:
    core, objects = client.CoreV1Api(kube), client.CustomObjectsApi(kube)
    name = f"t-{uuid.uuid4().hex[:10]}"
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    await objects.create_namespaced_custom_object(GROUP, VERSION, name, PLURAL, wukong("web"))

    await core.delete_namespace(name)

    await eventually(gone(lambda: core.read_namespace(name)), timeout=GC_TIMEOUT)


async def test_a_temporary_namespace_lets_go_of_the_wukongs_the_operator_left_held(
    kube: ApiClient,
) -> None:
    """An operator stopped with the test leaves its finalizer on the Wukongs, and a kubelet
    stopped with it (the simulator) its pods terminating; the namespace would stay
    Terminating for the session, swept by the namespace controller every few seconds
    (wukong/testing/namespaces.py)."""
    objects, core = client.CustomObjectsApi(kube), client.CoreV1Api(kube)
    held = wukong("held") | {
        "metadata": {"name": "held", "finalizers": ["example.com/keep", FINALIZER]}
    }
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="orphan"),
        spec=client.V1PodSpec(
            node_name="stopped-node", containers=[client.V1Container(name="c", image="none")]
        ),
    )
    async with temporary_namespace(kube, "t-held-") as name:
        await objects.create_namespaced_custom_object(GROUP, VERSION, name, PLURAL, held)
        await objects.create_namespaced_custom_object(GROUP, VERSION, name, PLURAL, wukong("free"))
        # Admission needs the namespace's default ServiceAccount, made a moment after it.
        await eventually(
            lambda: core.create_namespaced_pod(name, pod),
            timeout=GC_TIMEOUT,
            retry_on=(ApiException,),
        )

    left = await objects.get_namespaced_custom_object(GROUP, VERSION, name, PLURAL, "held")
    assert left["metadata"]["finalizers"] == ["example.com/keep"]  # only the operator's is taken
    await eventually(gone(lambda: core.read_namespaced_pod("orphan", name)), timeout=GC_TIMEOUT)
    assert (await core.read_namespace(name)).metadata.deletion_timestamp is not None
    await objects.patch_namespaced_custom_object(
        GROUP, VERSION, name, PLURAL, "held", [{"op": "remove", "path": "/metadata/finalizers"}]
    )
    await eventually(gone(lambda: core.read_namespace(name)), timeout=GC_TIMEOUT)


# -- authentication and authorization ---------------------------------------------------------


async def test_a_service_account_gets_only_what_rbac_grants(
    control_plane: ControlPlane, kube: ApiClient, namespace: str
) -> None:
    core, rbac = client.CoreV1Api(kube), client.RbacAuthorizationV1Api(kube)
    await core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader"))
    )
    kubeconfig = await asyncio.to_thread(
        control_plane.service_account_kubeconfig, namespace, "reader"
    )

    async with await api_client(kubeconfig) as as_reader:
        reader_core = client.CoreV1Api(as_reader)
        assert await status_of(reader_core.list_namespaced_config_map(namespace)) == 403

        await rbac.create_namespaced_role(
            namespace,
            client.V1Role(
                metadata=client.V1ObjectMeta(name="read-configmaps"),
                rules=[
                    client.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["list"])
                ],
            ),
        )
        await rbac.create_namespaced_role_binding(
            namespace,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name="reader"),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="Role", name="read-configmaps"
                ),
                subjects=[
                    client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=namespace)
                ],
            ),
        )

        async def allowed() -> bool:
            return await status_of(reader_core.list_namespaced_config_map(namespace)) == 200

        await eventually(allowed)
        wukongs = client.CustomObjectsApi(as_reader).list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL
        )
        assert await status_of(wukongs) == 403


# -- installing more CRDs later ------------------------------------------------------------


async def test_crds_installed_after_start_are_served_at_once(
    control_plane: ControlPlane, kube: ApiClient, namespace: str, tmp_path: Path
) -> None:
    group = f"t{uuid.uuid4().hex[:8]}.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{group}"},
        "spec": {
            "group": group,
            "names": {"kind": "Gadget", "plural": "gadgets"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object"}},
                }
            ],
        },
    }
    (tmp_path / "gadget.yaml").write_text(json.dumps(crd))  # JSON is YAML

    await asyncio.to_thread(control_plane.install_crds, [tmp_path])

    listed = await client.CustomObjectsApi(kube).list_namespaced_custom_object(
        group, "v1", namespace, "gadgets"
    )
    assert listed["items"] == []


# -- start and stop ---------------------------------------------------------------------------


def test_start_survives_a_taken_port_and_stop_leaves_nothing_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    real_free_ports = _processes.free_ports
    handed_out: list[list[int]] = []

    def first_etcd_port_taken(count: int) -> list[int]:
        ports = real_free_ports(count)
        if not handed_out:
            ports[0] = taken.getsockname()[1]
        handed_out.append(ports)
        return ports

    monkeypatch.setattr("wukong.testing.controlplane.free_ports", first_etcd_port_taken)
    plane = ControlPlane(controller_manager=False, default_crds=False)
    with taken:
        plane.start()
    pids, dirs = plane.pids, plane.owned_dirs
    assert len(handed_out) == 2, "the clash on the etcd port should cause exactly one retry"
    assert len(pids) == 2
    assert all(d.is_dir() for d in dirs)

    plane.stop()

    assert not [pid for pid in pids if _alive(pid)]
    assert not [d for d in dirs if d.exists()]


def test_a_failed_start_reports_the_log_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "etcd").symlink_to(assets_dir() / "etcd")
    broken = tmp_path / "kube-apiserver"
    broken.write_text("#!/bin/sh\necho 'refusing to start: broken on purpose' >&2\nexit 3\n")
    broken.chmod(0o755)
    dirs, pids = _spy_on_dirs_and_processes(monkeypatch)
    plane = ControlPlane(assets=tmp_path, controller_manager=False, default_crds=False)

    with pytest.raises(ControlPlaneError, match="broken on purpose") as caught:
        plane.start(timeout=20)

    assert "kube-apiserver exited with 3" in str(caught.value)
    assert len(pids) == 2 and len(dirs) == 2
    assert not [pid for pid in pids if _alive(pid)]
    assert not [d for d in dirs if d.exists()]


def _spy_on_dirs_and_processes(monkeypatch: pytest.MonkeyPatch) -> tuple[list[Path], list[int]]:
    dirs: list[Path] = []
    pids: list[int] = []
    make_dir, start = tempfile.mkdtemp, Process.start

    def recording_mkdtemp(*args: Any, **kwargs: Any) -> str:
        path: str = make_dir(*args, **kwargs)
        dirs.append(Path(path))
        return path

    def recording_start(self: Process) -> None:
        start(self)
        assert self.pid is not None
        pids.append(self.pid)

    monkeypatch.setattr(tempfile, "mkdtemp", recording_mkdtemp)
    monkeypatch.setattr(Process, "start", recording_start)
    return dirs, pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
