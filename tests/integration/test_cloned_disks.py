"""A disk cloned from an existing PVC (`cloneFrom`, a golden image): CDI's DataVolume with a
`pvc` source, made by the operator as its ServiceAccount (whose CDI clone permission the
simulated CDI checks, as CDI's webhook does)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient

from tests.integration.scenario import (
    IMAGE,
    OPERATOR_USER,
    condition,
    create,
    get,
    k,
    operator,
    patch_spec,
    sim,
    wait_for,
    wait_phase,
    wukong,
    wukong_events,
)
from wukong.adapters.kube import Kube, api_path
from wukong.api import names
from wukong.errors import Invalid
from wukong.testing.eventually import eventually
from wukong.testing.kubevirt import Simulator
from wukong.testing.namespaces import temporary_namespace
from wukong.testing.operator import InProcessOperator

__all__ = ["k", "operator", "sim"]  # fixtures


def golden_pvc(name: str, size: str = "10Gi") -> dict[str, Any]:
    """A PVC someone filled with an image (here: empty; the simulated CDI copies nothing)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size}},
            "storageClassName": "standard",
        },
    }


def system(clone_from: str, size: str = "10Gi") -> dict[str, Any]:
    return {"name": "system", "size": size, "cloneFrom": clone_from}


async def test_a_clone_of_a_missing_pvc_waits_for_it_and_then_runs(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    await create(k, "wukong", namespace, wukong("cl-1", disks=[system("golden", "20Gi")]))
    cr = await wait_for(
        k,
        namespace,
        "cl-1",
        lambda c: condition(c, "VolumesBound").get("reason") == "CloneSourceNotFound",
        what="the missing clone source named",
    )
    message = condition(cr, "VolumesBound")["message"]
    assert f"clones PVC 'golden' in namespace '{namespace}', which does not exist" in message
    [told] = await eventually(
        lambda: wukong_events(k, namespace, "CloneSourceNotFound"), message="a Warning Event"
    )
    assert told["type"] == "Warning" and told["message"] == message
    # No DataVolume meanwhile: CDI's spec cannot change, and one made now could not be fixed.
    assert await get(k, "dv", namespace, "cl-1-system") is None

    # A source bigger than the disk is named as such, still without a DataVolume.
    await k.create(
        api_path("", "v1", "persistentvolumeclaims", namespace), golden_pvc("golden", "30Gi")
    )
    cr = await wait_for(
        k,
        namespace,
        "cl-1",
        lambda c: condition(c, "VolumesBound").get("reason") == "CloneSourceTooBig",
        what="the source too big for the disk",
    )
    assert "set size to 30Gi or more" in condition(cr, "VolumesBound")["message"]
    assert await get(k, "dv", namespace, "cl-1-system") is None

    # The user grows the disk: the clone is made and the VM runs from it.
    await k.merge_patch(
        api_path("vm.novasphere.dev", "v1alpha1", "wukongs", namespace, "cl-1"),
        {"spec": {"disks": [system("golden", "30Gi")]}},
    )
    await wait_phase(k, namespace, "cl-1", "Running", within=60)
    dv = await get(k, "dv", namespace, "cl-1-system")
    assert dv is not None
    assert dv["spec"]["source"] == {"pvc": {"namespace": namespace, "name": "golden"}}
    assert dv["status"]["phase"] == "Succeeded"


async def test_another_namespaces_pvc_is_cloned_with_cdis_permission(
    k: Kube, kube: ApiClient, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    """The operator watches only the test's namespace here (`run --namespace`): it cannot see
    the source, so CDI checks it and waits for it; CDI clones another namespace's PVC only for
    a creator with create on datavolumes/source there (the operator's ClusterRole)."""
    async with temporary_namespace(kube, "golden-") as golden:
        await k.create(
            api_path("", "v1", "persistentvolumeclaims", golden), golden_pvc("fedora-40")
        )
        await create(k, "wukong", namespace, wukong("cl-2", disks=[system(f"{golden}/fedora-40")]))
        await wait_phase(k, namespace, "cl-2", "Running", within=60)
        dv = await get(k, "dv", namespace, "cl-2-system")
        assert dv is not None
        assert dv["spec"]["source"] == {"pvc": {"namespace": golden, "name": "fedora-40"}}


async def test_a_cloned_disk_added_to_a_running_vm_is_hot_plugged_as_its_data_volume(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    boot = {"name": "system", "size": "10Gi", "image": IMAGE}
    await k.create(api_path("", "v1", "persistentvolumeclaims", namespace), golden_pvc("tools"))
    await create(k, "wukong", namespace, wukong("cl-3", disks=[boot]))
    await wait_phase(k, namespace, "cl-3", "Running", within=60)
    tools = {"name": "tools", "size": "10Gi", "cloneFrom": "tools"}
    await patch_spec(k, namespace, "cl-3", {"disks": [boot, tools]})

    def plugged(cr: dict[str, Any]) -> bool:
        volumes = (cr.get("status") or {}).get("volumes") or []
        return any(v["name"] == "tools" and v.get("attached") for v in volumes)

    await wait_for(k, namespace, "cl-3", plugged, within=60, what="the clone plugged in")
    [call] = [c for c in sim.calls if c.subresource == "addvolume" and c.user == OPERATOR_USER]
    source = call.body["volumeSource"]
    assert source == {"dataVolume": {"name": "cl-3-tools", "hotpluggable": True}}


def data_source(name: str, pvc_namespace: str, pvc: str) -> dict[str, Any]:
    return {
        "apiVersion": "cdi.kubevirt.io/v1beta1",
        "kind": "DataSource",
        "metadata": {"name": name},
        # CDI's CRD requires the namespace here, its own too.
        "spec": {"source": {"pvc": {"namespace": pvc_namespace, "name": pvc}}},
    }


@pytest.mark.kubevirt_refusal_expected
async def test_a_disk_made_from_a_datasource_waits_for_it_and_clones_what_it_points_to(
    k: Kube, kube: ApiClient, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    """CDI's DataSource: a name for a golden image (a DataImportCron keeps it fresh). In a
    namespace this operator does not watch, it cannot see whether the DataSource exists:
    it makes the DataVolume, and CDI's webhook refuses it (400) until the DataSource exists.
    That refusal is said (ChildrenAdmitted) and tried again: taken for a bad request, it was
    never made again, and the Wukong stayed Creating for good (the simulated CDI had no
    webhook until session 43 and waited instead)."""
    disk = {"name": "system", "size": "10Gi", "dataSource": "os-images/fedora"}
    async with temporary_namespace(kube, "os-images-") as images:
        disk["dataSource"] = f"{images}/fedora"
        await create(k, "wukong", namespace, wukong("cl-4", disks=[disk]))
        cr = await wait_for(
            k,
            namespace,
            "cl-4",
            lambda c: condition(c, "ChildrenAdmitted").get("status") == "False",
            what="CDI's refusal said",
        )
        refusal = condition(cr, "ChildrenAdmitted")["message"]
        assert "the API server refused to create DataVolume cl-4-system" in refusal
        assert 'datasources.cdi.kubevirt.io "fedora" not found' in refusal
        assert await get(k, "dv", namespace, "cl-4-system") is None
        await k.create(
            api_path("", "v1", "persistentvolumeclaims", images), golden_pvc("fedora-40")
        )
        await k.create(
            api_path("cdi.kubevirt.io", "v1beta1", "datasources", images),
            data_source("fedora", images, "fedora-40"),
        )
        # Tried again after a back-off of up to 60 s.
        cr = await wait_phase(k, namespace, "cl-4", "Running", within=120)
        assert condition(cr, "ChildrenAdmitted") == {}  # present only while refused
        dv = await get(k, "dv", namespace, "cl-4-system")
        assert dv is not None
        assert dv["spec"]["sourceRef"] == {
            "kind": "DataSource",
            "namespace": images,
            "name": "fedora",
        }


@pytest.mark.kubevirt_refusal_expected
async def test_a_kept_disk_whose_datasource_is_gone_is_kept_and_the_wukong_deleted(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    """CDI's webhook re-checks a DataVolume's DataSource on every update: once it is gone,
    the deletion's release of the kept disk's DataVolume is refused, and the deletion stopped
    at Retain for good. The claim, released first, keeps the data; the DataVolume goes."""
    await k.create(api_path("", "v1", "persistentvolumeclaims", namespace), golden_pvc("img"))
    sources = api_path("cdi.kubevirt.io", "v1beta1", "datasources", namespace)
    await k.create(sources, data_source("fedora", namespace, "img"))
    disk = {"name": "system", "size": "10Gi", "dataSource": "fedora"}
    keep = {"preserveDisksList": ["system"]}
    await create(k, "wukong", namespace, wukong("cl-9", disks=[disk], deleteOptions=keep))
    await wait_phase(k, namespace, "cl-9", "Running", within=60)
    await k.delete(api_path("cdi.kubevirt.io", "v1beta1", "datasources", namespace, "fedora"))
    await k.delete(api_path(names.GROUP, names.VERSION, names.PLURAL, namespace, "cl-9"))

    async def gone() -> bool:
        return await get(k, "wukong", namespace, "cl-9") is None

    await eventually(gone, timeout=60, message="the Wukong deleted")
    claim = await get(k, "pvc", namespace, "cl-9-system")
    assert claim is not None and claim["metadata"].get("deletionTimestamp") is None
    assert claim["metadata"]["labels"][names.LABEL_RETAINED_FROM] == "cl-9"
    assert not claim["metadata"].get("ownerReferences")

    async def dv_gone() -> bool:
        return await get(k, "dv", namespace, "cl-9-system") is None

    await eventually(dv_gone, timeout=30, message="the DataVolume CDI would not release deleted")
    [said] = await wukong_events(k, namespace, "DataVolumeNotKept")
    assert "the data stays in claim cl-9-system" in said["message"]


async def test_a_datasource_that_does_not_exist_is_named_until_it_is_made(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    disk = {"name": "system", "size": "10Gi", "dataSource": "fedora"}
    await create(k, "wukong", namespace, wukong("cl-5", disks=[disk]))
    cr = await wait_for(
        k,
        namespace,
        "cl-5",
        lambda c: condition(c, "VolumesBound").get("reason") == "DataSourceNotFound",
        what="the missing DataSource named",
    )
    assert (
        f"DataSource 'fedora' in namespace '{namespace}', which does not exist"
        in (condition(cr, "VolumesBound")["message"])
    )
    assert await get(k, "dv", namespace, "cl-5-system") is None
    # The DataSource before its PVC: CDI says it is not ready, and the disk says so.
    await k.create(
        api_path("cdi.kubevirt.io", "v1beta1", "datasources", namespace),
        {
            "apiVersion": "cdi.kubevirt.io/v1beta1",
            "kind": "DataSource",
            "metadata": {"name": "fedora"},
            # CDI's CRD requires the namespace here, its own too.
            "spec": {"source": {"pvc": {"namespace": namespace, "name": "fedora-40"}}},
        },
    )
    await wait_for(
        k,
        namespace,
        "cl-5",
        lambda c: (
            "once it is ready: PVC not found" in condition(c, "VolumesBound").get("message", "")
        ),
        what="the DataSource's own word on why it is not ready",
    )
    await k.create(api_path("", "v1", "persistentvolumeclaims", namespace), golden_pvc("fedora-40"))
    await wait_phase(k, namespace, "cl-5", "Running", within=60)
    ds = await k.get(api_path("cdi.kubevirt.io", "v1beta1", "datasources", namespace, "fedora"))
    ready = next(c for c in ds["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["message"]) == ("True", "DataSource is ready to be consumed")


async def test_a_clone_whose_source_a_running_vm_uses_says_so_and_runs_once_it_stops(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    """CDI clones only a PVC no running pod mounts, and says so only in `CloneSourceInUse`
    Events on the DataVolume: the Wukong's condition, Event and disk name the pod and its VM."""
    await create(k, "wukong", namespace, wukong("base", disks=[{"name": "system", "size": "10Gi"}]))
    await wait_phase(k, namespace, "base", "Running", within=60)
    await create(k, "wukong", namespace, wukong("cl-4", disks=[system("base-system")]))
    cr = await wait_for(
        k,
        namespace,
        "cl-4",
        lambda c: condition(c, "VolumesBound").get("reason") == "CloneSourceInUse",
        what="the running VM that holds the clone back named",
    )
    message = condition(cr, "VolumesBound")["message"]
    assert (
        f"CDI clones PVC 'base-system' in namespace '{namespace}' only while no pod uses it, "
        f"and pod {namespace}/virt-launcher-base-"
    ) in message
    assert "(VM base-vm) does (CDI's CloneSourceInUse since " in message
    [disk] = [v for v in cr["status"]["volumes"] if v["name"] == "system"]
    assert disk["phase"] == "CloneScheduled" and disk["message"] in message
    [told] = await eventually(
        lambda: wukong_events(k, namespace, "CloneSourceInUse"), message="a Warning Event"
    )
    assert told["type"] == "Warning" and told["involvedObject"]["name"] == "cl-4"

    stop = {"action": "stop", "requestedAt": "2026-01-01T00:00:00.000001Z"}
    await patch_spec(k, namespace, "base", {"lifecycleAction": stop})
    await wait_phase(k, namespace, "base", "Stopped", within=60)
    await wait_phase(k, namespace, "cl-4", "Running", within=60)
    assert condition(await get(k, "wukong", namespace, "cl-4") or {}, "VolumesBound")["reason"] == (
        "AllBound"
    )


async def golden_data_volume(k: Kube, namespace: str) -> str:
    """A 10Gi DataVolume 'golden-dv' imported by CDI: what its claim asks, once CDI made it."""
    golden = {
        "apiVersion": "cdi.kubevirt.io/v1beta1",
        "kind": "DataVolume",
        "metadata": {"name": "golden-dv"},
        "spec": {
            "source": {"http": {"url": IMAGE}},
            "storage": {"resources": {"requests": {"storage": "10Gi"}}},
        },
    }
    await k.create(api_path("cdi.kubevirt.io", "v1beta1", "datavolumes", namespace), golden)

    async def golden_claim() -> str | None:
        claim = await get(k, "pvc", namespace, "golden-dv")
        return str(claim["spec"]["resources"]["requests"]["storage"]) if claim else None

    return await eventually(golden_claim, message="the golden claim CDI makes")


async def test_a_clone_of_a_golden_data_volume_of_its_own_size_runs(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    """The demo's clone-1: a 10Gi disk cloning the 10Gi DataVolume fedora-golden. CDI asks
    the golden claim 6 % bigger than 10Gi (its filesystem overhead), and the clone's claim
    too: the operator refused it as "smaller than PVC 'fedora-golden' it clones
    (11327976244)" once the simulated CDI padded claims as CDI does (5.5 % then)."""
    assert await golden_data_volume(k, namespace) != "10Gi"  # CDI pads it
    await create(k, "wukong", namespace, wukong("cl-g", disks=[system("golden-dv", "10Gi")]))
    cr = await wait_phase(k, namespace, "cl-g", "Running", within=60)
    assert condition(cr, "VolumesBound")["reason"] == "AllBound"
    assert await wukong_events(k, namespace, "CloneSourceTooBig") == []


CDIS = api_path("cdi.kubevirt.io", "v1beta1", "cdis", None, "cdi")
CDI_CONFIG = api_path("cdi.kubevirt.io", "v1beta1", "cdiconfigs", None, "config")


async def _overhead_settled(k: Kube, value: str) -> None:
    async def settled() -> bool:
        config = await k.get(CDI_CONFIG)
        return ((config.get("status") or {}).get("filesystemOverhead") or {}).get("global") == (
            value
        )

    await eventually(settled, message=f"CDIConfig's global overhead {value}")


async def test_clones_and_growth_follow_the_overhead_an_administrator_gives_cdi(
    k: Kube, namespace: str, operator: InProcessOperator, sim: Simulator
) -> None:
    """An administrator sets CDI's filesystem overhead to 10 % (the CDI resource's
    spec.config, which CDI copies into CDIConfig). A golden image CDI then makes for 10Gi asks
    11811160064 bytes; until session 40 the operator compared with CDI's old 5.5 % and
    refused every same-size clone of it (CloneSourceTooBig), and grew a disk by 5.5 % where
    virt-launcher then took 10 % off. Now both follow CDIConfig's status."""
    await k.merge_patch(CDIS, {"spec": {"config": {"filesystemOverhead": {"global": "0.1"}}}})
    try:
        await _overhead_settled(k, "0.1")
        assert await golden_data_volume(k, namespace) == "11811160064"  # 10Gi plus 10 %
        await create(k, "wukong", namespace, wukong("cl-o", disks=[system("golden-dv", "10Gi")]))
        cr = await wait_phase(k, namespace, "cl-o", "Running", within=60)
        assert condition(cr, "VolumesBound")["reason"] == "AllBound"
        assert await wukong_events(k, namespace, "CloneSourceTooBig") == []
        # Grown to 12Gi: 12Gi / 0.9, up to whole MiB, so that virt-launcher's 90 % is 12Gi.
        await patch_spec(k, namespace, "cl-o", {"disks": [system("golden-dv", "12Gi")]})
        wanted = str(13654 * 2**20)

        async def grown() -> bool:
            claim = await get(k, "pvc", namespace, "cl-o-system")
            return bool(claim) and claim["spec"]["resources"]["requests"]["storage"] == wanted

        await eventually(grown, message=f"the clone's claim asking {wanted}")
    finally:
        await k.merge_patch(CDIS, {"spec": {"config": None}})
        await _overhead_settled(k, "0.06")


CDI_REFUSES = 'admission webhook "datavolume-mutate.cdi.kubevirt.io" denied the request: '


def data_volume_of(name: str, data_source: str, **annotations: str) -> dict[str, Any]:
    """A DataVolume cloning what the DataSource `data_source` (of its namespace) points to."""
    return {
        "apiVersion": "cdi.kubevirt.io/v1beta1",
        "kind": "DataVolume",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "sourceRef": {"kind": "DataSource", "name": data_source},
            "storage": {"resources": {"requests": {"storage": "10Gi"}}},
        },
    }


async def test_cdi_refuses_a_data_volume_whose_datasource_or_source_namespace_is_missing(
    k: Kube, namespace: str, sim: Simulator
) -> None:
    """CDI's datavolume-mutate webhook reads the DataSource a DataVolume names at every create
    and update (and the namespace of the PVC it clones): missing, the write is refused, 400,
    unless the DataVolume is marked prePopulated (KubeVirt's restore)."""
    dvs = api_path("cdi.kubevirt.io", "v1beta1", "datavolumes", namespace)
    sources = api_path("cdi.kubevirt.io", "v1beta1", "datasources", namespace)
    missing = CDI_REFUSES + 'datasources.cdi.kubevirt.io "fedora" not found'
    with pytest.raises(Invalid) as refused:
        await k.create(dvs, data_volume_of("early", "fedora"))
    assert (refused.value.status, refused.value.message) == (400, missing)
    gone = f"{namespace}-gone"
    clone = data_volume_of("elsewhere", "fedora")
    clone["spec"] = {**clone["spec"], "source": {"pvc": {"namespace": gone, "name": "golden"}}}
    with pytest.raises(Invalid) as refused:
        await k.create(dvs, clone)
    assert (refused.value.status, refused.value.message) == (
        400,
        CDI_REFUSES + f'namespaces "{gone}" not found',
    )

    await k.create(api_path("", "v1", "persistentvolumeclaims", namespace), golden_pvc("f40"))
    data_source = {
        "apiVersion": "cdi.kubevirt.io/v1beta1",
        "kind": "DataSource",
        "metadata": {"name": "fedora"},
        "spec": {"source": {"pvc": {"namespace": namespace, "name": "f40"}}},
    }
    await k.create(sources, data_source)
    await k.create(dvs, data_volume_of("fedora-1", "fedora"))
    await k.delete(f"{sources}/fedora")
    # Any later write of it, its labels too, is refused while the DataSource is gone...
    with pytest.raises(Invalid) as refused:
        await k.merge_patch(f"{dvs}/fedora-1", {"metadata": {"labels": {"tier": "gold"}}})
    assert (refused.value.status, refused.value.message) == (400, missing)
    # ... unless it is (or becomes) prePopulated: CDI needs no clone token for it.
    populated = {"cdi.kubevirt.io/storage.prePopulated": "fedora-1"}
    marked = {"metadata": {"annotations": populated, "labels": {"tier": "gold"}}}
    await k.merge_patch(f"{dvs}/fedora-1", marked)
    await k.merge_patch(f"{dvs}/fedora-1", {"metadata": {"labels": {"tier": "silver"}}})
    restored = data_volume_of("restored", "fedora", **{"cdi.kubevirt.io/storage.prePopulated": ""})
    await k.create(dvs, restored)
