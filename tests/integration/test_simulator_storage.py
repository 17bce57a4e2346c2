"""The KubeVirt simulator against the real control plane: storage classes, PVCs and CDI imports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient

from tests.integration.test_simulator import call, cond, create, get, merge_patch, until, vm_path
from wukong.testing.controlplane import ControlPlane, api_client
from wukong.testing.eventually import eventually
from wukong.testing.kubevirt import SimConfig, Simulator
from wukong.testing.kubevirt.manifests import (
    data_volume,
    persistent_volume_claim,
    virtual_machine,
)
from wukong.testing.namespaces import temporary_namespace

JsonObj = dict[str, Any]
RESIZE_CONDITIONS = {"Resizing", "FileSystemResizePending"}


def pvc_path(ns: str, name: str = "") -> str:
    """REST path of a PVC (or the collection)."""
    return f"/api/v1/namespaces/{ns}/persistentvolumeclaims" + (f"/{name}" if name else "")


def dv_path(ns: str, name: str = "") -> str:
    """REST path of a DataVolume (or the collection)."""
    return f"/apis/cdi.kubevirt.io/v1beta1/namespaces/{ns}/datavolumes" + (
        f"/{name}" if name else ""
    )


async def bound(kube: ApiClient, ns: str, name: str) -> JsonObj | None:
    """The PVC once Bound, else None."""
    pvc = await get(kube, pvc_path(ns, name))
    return pvc if ((pvc or {}).get("status") or {}).get("phase") == "Bound" else None


@pytest.fixture
def control_plane(pure_sim_plane: ControlPlane) -> ControlPlane:
    """These tests exercise the simulator's own imitation of KubeVirt: never beside the real
    virt-controller (real mode), which would act on the same objects."""
    return pure_sim_plane


@pytest.fixture
async def sim(control_plane: ControlPlane, namespace: str) -> AsyncIterator[Simulator]:
    """A simulator for this namespace; imports and resizes slow enough to see each step."""
    config = SimConfig(import_step_delay=0.3, import_retry_delay=0.15, resize_step_delay=0.3)
    async with Simulator(control_plane.kubeconfig, namespace=namespace, config=config) as simulator:
        yield simulator


async def test_storage_classes_are_installed_with_their_modes(
    kube: ApiClient, sim: Simulator
) -> None:
    classes = {}
    for name in ("standard", "fast", "slow-wffc", "fixed"):
        sc = await get(kube, f"/apis/storage.k8s.io/v1/storageclasses/{name}")
        assert sc is not None
        classes[name] = sc
    default = classes["standard"]["metadata"]["annotations"]
    assert default["storageclass.kubernetes.io/is-default-class"] == "true"
    assert classes["slow-wffc"]["volumeBindingMode"] == "WaitForFirstConsumer"
    assert classes["fast"]["allowVolumeExpansion"] is True
    assert "allowVolumeExpansion" not in classes["fixed"]


async def test_pvc_without_class_gets_the_default_and_binds_with_its_request(
    kube: ApiClient, namespace: str, sim: Simulator
) -> None:
    await create(kube, pvc_path(namespace), persistent_volume_claim("p1", namespace, "3Gi"))

    pvc = await until(lambda: bound(kube, namespace, "p1"))

    assert pvc["spec"]["storageClassName"] == "standard"
    assert pvc["status"]["capacity"] == {"storage": "3Gi"}
    assert pvc["status"]["accessModes"] == ["ReadWriteOnce"]
    assert pvc["spec"]["volumeName"].startswith("pvc-")


async def test_wait_for_first_consumer_pvc_binds_only_once_a_vmi_uses_it(
    kube: ApiClient, namespace: str, sim: Simulator
) -> None:
    await create(
        kube, pvc_path(namespace), persistent_volume_claim("lazy", namespace, "1Gi", "slow-wffc")
    )
    volumes = [{"name": "lazy", "persistentVolumeClaim": {"claimName": "lazy"}}]
    await create(
        kube, vm_path(namespace), virtual_machine("vm1", namespace, "Halted", volumes=volumes)
    )

    # A negative can only be sampled: wait until a bound PVC would certainly have been bound.
    await eventually(lambda: _printable(kube, namespace, "Stopped"))
    await create(
        kube, pvc_path(namespace), persistent_volume_claim("eager", namespace, "1Gi", "fast")
    )
    await until(lambda: bound(kube, namespace, "eager"))
    assert await bound(kube, namespace, "lazy") is None

    await merge_patch(kube, vm_path(namespace, "vm1"), {"spec": {"runStrategy": "Always"}})
    await until(lambda: bound(kube, namespace, "lazy"))
    await eventually(lambda: _printable(kube, namespace, "Running"))


async def _printable(kube: ApiClient, namespace: str, wanted: str) -> bool:
    vm = await get(kube, vm_path(namespace, "vm1"))
    return ((vm or {}).get("status") or {}).get("printableStatus") == wanted


async def test_data_volume_import_reports_rising_progress_then_succeeds(
    kube: ApiClient, namespace: str, sim: Simulator
) -> None:
    await create(
        kube,
        dv_path(namespace),
        data_volume("img", namespace, "4Gi", url="https://example.test/disk.qcow2"),
    )
    seen: list[tuple[str, str]] = []

    async def succeeded() -> JsonObj | None:
        dv = await get(kube, dv_path(namespace, "img"))
        status = (dv or {}).get("status") or {}
        if status.get("phase") and (status["phase"], status.get("progress", "")) not in seen:
            seen.append((status["phase"], status.get("progress", "")))
        return dv if status.get("phase") == "Succeeded" else None

    dv = await until(succeeded, interval=0.03)

    phases = [p for p, _ in seen]
    assert phases[-1] == "Succeeded" and "ImportInProgress" in phases
    assert phases.index("ImportScheduled") < phases.index("ImportInProgress")
    progress = [float(v.rstrip("%")) for p, v in seen if p == "ImportInProgress"]
    assert len(progress) >= 2 and progress == sorted(progress) and progress[-1] < 100
    assert dv["status"]["progress"] == "100.0%" and dv["status"]["claimName"] == "img"
    assert cond(dv, "Ready")["status"] == "True"  # type: ignore[index]
    assert cond(dv, "Bound")["status"] == "True"  # type: ignore[index]
    pvc = await get(kube, pvc_path(namespace, "img"))
    assert pvc is not None and pvc["metadata"]["ownerReferences"][0]["kind"] == "DataVolume"
    # CDI asks a `storage` DataVolume's Filesystem claim bigger, by its filesystem overhead
    # (CDIConfig's, 6 % by default in CDI v1.65): 4Gi aligned to 1 MiB, times 1.06, in bytes
    # (GetRequiredSpace).
    assert pvc["spec"]["resources"]["requests"]["storage"] == "4552665334"


async def test_blank_data_volume_succeeds_once_its_claim_is_bound(
    kube: ApiClient, namespace: str, sim: Simulator
) -> None:
    await create(
        kube, dv_path(namespace), data_volume("blank", namespace, "1Gi", storage_class="fast")
    )

    async def done() -> JsonObj | None:
        dv = await get(kube, dv_path(namespace, "blank"))
        return dv if ((dv or {}).get("status") or {}).get("phase") == "Succeeded" else None

    dv = await until(done)
    assert dv["status"]["progress"] == "100.0%"
    assert (await bound(kube, namespace, "blank")) is not None


async def test_bad_import_crash_loops_with_cdi_error_message(
    kube: ApiClient, namespace: str, sim: Simulator
) -> None:
    """CDI copies the importer pod's state into the Running condition at each restart: True
    ("Pod is running", the error forgotten) while a restarted importer runs, False with the
    error once it fails again; the phase stays ImportInProgress and restartCount grows."""
    await create(
        kube,
        dv_path(namespace),
        data_volume("bad", namespace, url="https://example.test/notfound.img"),
    )
    seen: set[tuple[int, str, str]] = set()

    async def failed_again() -> JsonObj | None:
        dv = await get(kube, dv_path(namespace, "bad"))
        status = (dv or {}).get("status") or {}
        running = cond(dv, "Running") if dv else None
        if running is None or status.get("phase") != "ImportInProgress":
            return None
        restarts = int(status.get("restartCount", 0))
        seen.add((restarts, running["status"], running.get("reason", "")))
        return dv if restarts >= 2 and running["status"] == "False" else None

    dv = await until(failed_again, interval=0.02)
    running = cond(dv, "Running")
    assert running is not None and (running["status"], running["reason"]) == ("False", "Error")
    assert running["message"] == (
        "Unable to connect to http data source: expected status code 200, got 404. "
        "Status: 404 Not Found"
    )
    assert cond(dv, "Ready")["status"] == "False"  # type: ignore[index]
    restarted = {(status, reason) for count, status, reason in seen if count >= 1}
    assert ("True", "Pod is running") in restarted and ("False", "Error") in restarted


async def test_import_failure_mode_fail_ends_in_phase_failed(
    kube: ApiClient, control_plane: ControlPlane, namespace: str
) -> None:
    config = SimConfig(import_failure_mode="fail")
    async with Simulator(control_plane.kubeconfig, namespace=namespace, config=config) as sim:
        sim.faults.fail_imports("mirror.example")
        await create(
            kube,
            dv_path(namespace),
            data_volume("img", namespace, url="docker://mirror.example/os:1", registry=True),
        )

        async def failed() -> JsonObj | None:
            dv = await get(kube, dv_path(namespace, "img"))
            return dv if ((dv or {}).get("status") or {}).get("phase") == "Failed" else None

        dv = await until(failed)
        assert "mirror.example/os:1" in cond(dv, "Running")["message"]  # type: ignore[index]


async def test_expansion_walks_the_resize_conditions_and_grows_capacity(
    kube: ApiClient, namespace: str, sim: Simulator
) -> None:
    await create(
        kube, pvc_path(namespace), persistent_volume_claim("grow", namespace, "1Gi", "fast")
    )
    await until(lambda: bound(kube, namespace, "grow"))
    seen: set[str] = set()

    answer = await merge_patch(
        kube, pvc_path(namespace, "grow"), {"spec": {"resources": {"requests": {"storage": "2Gi"}}}}
    )

    assert answer.status == 200, answer

    async def grown() -> bool:
        pvc = await get(kube, pvc_path(namespace, "grow"))
        status = (pvc or {}).get("status") or {}
        seen.update(c["type"] for c in status.get("conditions") or [])
        resizing = RESIZE_CONDITIONS & {c["type"] for c in status.get("conditions") or []}
        return status.get("capacity", {}).get("storage") == "2Gi" and not resizing

    await eventually(grown, interval=0.02)
    assert RESIZE_CONDITIONS <= seen


async def test_growing_a_claim_of_a_non_expandable_class_is_refused_by_the_api_server(
    kube: ApiClient, namespace: str, sim: Simulator
) -> None:
    await create(
        kube, pvc_path(namespace), persistent_volume_claim("stiff", namespace, "1Gi", "fixed")
    )
    await until(lambda: bound(kube, namespace, "stiff"))

    answer = await merge_patch(
        kube,
        pvc_path(namespace, "stiff"),
        {"spec": {"resources": {"requests": {"storage": "2Gi"}}}},
    )

    assert answer.status == 403, answer
    assert answer.json["message"].endswith(
        "only dynamically provisioned pvc can be resized and "
        "the storageclass that provisions the pvc must support resize"
    )
    shrink = await merge_patch(
        kube,
        pvc_path(namespace, "stiff"),
        {"spec": {"resources": {"requests": {"storage": "512Mi"}}}},
    )
    assert shrink.status == 422
    assert "can not be less than status.capacity" in shrink.json["message"]


async def test_running_vmi_reports_the_grown_claim_capacity(
    kube: ApiClient, namespace: str, sim: Simulator
) -> None:
    await create(kube, pvc_path(namespace), persistent_volume_claim("data", namespace, "1Gi"))
    volumes = [
        {"name": "root", "containerDisk": {"image": "fedora"}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
    ]
    await create(kube, vm_path(namespace), virtual_machine("vm1", namespace, volumes=volumes))
    await eventually(lambda: _printable(kube, namespace, "Running"))

    await merge_patch(
        kube, pvc_path(namespace, "data"), {"spec": {"resources": {"requests": {"storage": "8Gi"}}}}
    )

    async def reported() -> bool:
        vmi = await get(
            kube, f"/apis/kubevirt.io/v1/namespaces/{namespace}/virtualmachineinstances/vm1"
        )
        statuses = ((vmi or {}).get("status") or {}).get("volumeStatus") or []
        data: JsonObj = next((s for s in statuses if s["name"] == "data"), {})
        info: JsonObj = data.get("persistentVolumeClaimInfo") or {}
        return info.get("capacity") == {"storage": "8Gi"}

    await eventually(reported)


def clone(name: str, namespace: str, source_ns: str, source: str) -> JsonObj:
    """A DataVolume cloning PVC `source_ns/source`."""
    dv = data_volume(name, namespace, "1Gi")
    dv["spec"]["source"] = {"pvc": {"namespace": source_ns, "name": source}}
    return dv


async def test_a_clone_waits_for_its_source_then_walks_cdis_clone_phases(
    kube: ApiClient, namespace: str, sim: Simulator
) -> None:
    await create(kube, dv_path(namespace), clone("copy", namespace, namespace, "golden"))

    async def warned() -> JsonObj | None:
        events = await get(kube, f"/api/v1/namespaces/{namespace}/events")
        found = [e for e in (events or {}).get("items", []) if e["reason"] == "CloneWithoutSource"]
        return found[0] if found else None

    told = await until(warned, message="CDI's CloneWithoutSource Event")
    assert (told["type"], told["message"]) == ("Warning", "The source pvc golden doesn't exist")
    assert told["involvedObject"]["kind"] == "DataVolume"
    assert await get(kube, pvc_path(namespace, "copy")) is None  # no claim meanwhile
    await create(kube, pvc_path(namespace), persistent_volume_claim("golden", namespace, "1Gi"))
    seen: list[str] = []

    async def succeeded() -> JsonObj | None:
        dv = await get(kube, dv_path(namespace, "copy"))
        phase = ((dv or {}).get("status") or {}).get("phase")
        if phase and phase not in seen:
            seen.append(phase)
        return dv if phase == "Succeeded" else None

    await until(succeeded, interval=0.03)
    assert seen.index("CloneScheduled") < seen.index("CloneInProgress") < seen.index("Succeeded")


async def test_cloning_another_namespaces_pvc_needs_cdis_permission_there(
    control_plane: ControlPlane, kube: ApiClient, namespace: str, sim: Simulator
) -> None:
    """CDI's webhook: across namespaces the DataVolume's creator needs create on
    datavolumes/source (or pods) on the source PVC, else 422 in CDI's words."""
    role = "/apis/rbac.authorization.k8s.io/v1/namespaces/{}/{}"
    await create(kube, f"/api/v1/namespaces/{namespace}/serviceaccounts",
                 {"metadata": {"name": "cloner"}})  # fmt: skip
    subject = [{"kind": "ServiceAccount", "name": "cloner", "namespace": namespace}]
    async with temporary_namespace(kube, "golden-") as golden:
        for where, resource in ((namespace, "datavolumes"), (golden, "datavolumes/source")):
            await create(kube, role.format(where, "roles"), {
                "metadata": {"name": "cloner"},
                "rules": [{"apiGroups": ["cdi.kubevirt.io"], "resources": [resource],
                           "verbs": ["create"], "resourceNames": [] if where == namespace
                           else ["fedora-40"]}],
            })  # fmt: skip
        await create(kube, role.format(namespace, "rolebindings"), {
            "metadata": {"name": "cloner"}, "subjects": subject,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cloner"},
        })  # fmt: skip
        config = control_plane.service_account_kubeconfig(namespace, "cloner")
        async with await api_client(config) as cloner:

            async def refused() -> JsonObj | None:
                body = clone("copy", namespace, golden, "fedora-40")
                answer = await call(cloner, "POST", dv_path(namespace) + "?dryRun=All", body)
                return answer.json if answer.status == 422 else None

            answer = await until(refused, message="the clone refused without the grant")
            assert answer["message"].endswith(
                f"User system:serviceaccount:{namespace}:cloner has insufficient permissions "
                f"in clone source namespace {golden}"
            )
            # The grant, in the source's namespace, for that PVC: the clone is let in.
            await create(kube, role.format(golden, "rolebindings"), {
                "metadata": {"name": "cloner"}, "subjects": subject,
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                            "name": "cloner"},
            })  # fmt: skip

            async def let_in() -> JsonObj | None:
                body = clone("copy", namespace, golden, "fedora-40")
                answer = await call(cloner, "POST", dv_path(namespace) + "?dryRun=All", body)
                return answer.json if answer.status == 201 else None

            await until(let_in, message="the clone let in with the grant")
            other = clone("other", namespace, golden, "secret-data")
            answer = await call(cloner, "POST", dv_path(namespace) + "?dryRun=All", other)
            assert answer.status == 422, answer
