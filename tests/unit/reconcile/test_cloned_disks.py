"""A disk cloned from an existing PVC (`cloneFrom`): CDI's DataVolume, made only when the
source exists and fits, and the disk's story while it does not."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.reconcile.world import (
    NOW,
    NS,
    bound_pvc,
    decide,
    imported_dv,
    ready_children,
    wukong,
)
from wukong.api.v1alpha1 import Wukong
from wukong.reconcile.actions import CreateChild, DeleteChild, Emit

GOLDEN = {
    "kind": "PersistentVolumeClaim",
    "metadata": {"name": "fedora-40", "namespace": "golden", "uid": "golden-uid"},
    "spec": {"resources": {"requests": {"storage": "10Gi"}}},
    "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}},
}


def cloned(source: str = "golden/fedora-40", size: str = "20Gi") -> Wukong:
    """web-1 whose system disk clones `source`."""
    return wukong(
        disks=[
            {"name": "system", "size": size, "cloneFrom": source},
            {"name": "data", "size": "100Gi"},
        ]
    )


def _cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def _created(actions: list[Any]) -> dict[str, dict[str, Any]]:
    return {a.body["metadata"]["name"]: a.body for a in actions if isinstance(a, CreateChild)}


@pytest.mark.parametrize(
    ("source", "where"),
    [("golden/fedora-40", ("golden", "fedora-40")), ("fedora-40", (NS, "fedora-40"))],
)
def test_a_cloned_disk_is_a_data_volume_with_a_pvc_source(
    source: str, where: tuple[str, str]
) -> None:
    golden = {**GOLDEN, "metadata": {**GOLDEN["metadata"], "namespace": where[0]}}
    world = ready_children(data_volumes={}, claims={}, clone_sources={"/".join(where): golden})
    plan = decide(cloned(source), {}, world)
    dv = _created(plan.actions)["web-1-system"]
    assert dv["kind"] == "DataVolume"
    assert dv["spec"]["source"] == {"pvc": {"namespace": where[0], "name": where[1]}}
    assert dv["spec"]["storage"]["resources"]["requests"]["storage"] == "20Gi"
    assert _created(plan.actions)["web-1-data"]["kind"] == "PersistentVolumeClaim"


def test_the_vm_uses_a_cloned_disk_through_its_data_volume() -> None:
    world = ready_children(
        clone_sources={"golden/fedora-40": GOLDEN},
        data_volumes={"web-1-system": imported_dv()},
    )
    plan = decide(cloned(), {"phase": "Creating"}, world)
    vm = next(a.body for a in plan.actions if isinstance(a, CreateChild))
    volumes = vm["spec"]["template"]["spec"]["volumes"]
    assert volumes[0] == {"name": "system", "dataVolume": {"name": "web-1-system"}}


def test_a_missing_source_is_waited_for_without_a_data_volume() -> None:
    world = ready_children(data_volumes={}, claims={}, clone_sources={"golden/fedora-40": None})
    plan = decide(cloned(), {}, world)
    assert "web-1-system" not in _created(plan.actions)  # the blank disk is made meanwhile
    assert "web-1-data" in _created(plan.actions)
    cond = _cond(plan.status, "VolumesBound")
    assert (cond["status"], cond["reason"]) == ("False", "CloneSourceNotFound")
    assert cond["message"] == (
        "disk 'system' clones PVC 'fedora-40' in namespace 'golden', which does not exist: "
        "create it (the clone starts when it appears), or name an existing PVC in cloneFrom"
    )
    assert plan.status["volumes"][0]["message"] == cond["message"]
    warnings = [a for a in plan.actions if isinstance(a, Emit) and a.type == "Warning"]
    assert [w.reason for w in warnings] == ["CloneSourceNotFound"]


def test_a_source_bigger_than_the_disk_is_refused_before_cdi_sees_it() -> None:
    big = {**GOLDEN, "spec": {"resources": {"requests": {"storage": "30Gi"}}}}
    world = ready_children(data_volumes={}, claims={}, clone_sources={"golden/fedora-40": big})
    plan = decide(cloned(), {}, world)
    assert "web-1-system" not in _created(plan.actions)
    cond = _cond(plan.status, "VolumesBound")
    assert cond["reason"] == "CloneSourceTooBig"
    assert cond["message"] == (
        "disk 'system' is 20Gi, smaller than PVC 'fedora-40' in namespace 'golden' it clones "
        "(30Gi): a clone is at least as big as its source; set size to 30Gi or more"
    )
    # The same size, in other units, fits.
    fits = {**GOLDEN, "spec": {"resources": {"requests": {"storage": "20480Mi"}}}}
    world = ready_children(data_volumes={}, claims={}, clone_sources={"golden/fedora-40": fits})
    assert "web-1-system" in _created(decide(cloned(), {}, world).actions)


def test_a_clone_in_progress_is_provisioning_and_a_lost_source_does_not_stop_it() -> None:
    dv = imported_dv(phase="CloneInProgress", progress="40.00%")
    dv["spec"] = {"source": {"pvc": {"namespace": "golden", "name": "fedora-40"}}}
    plan = decide(
        cloned(), {"phase": "Creating"}, ready_children(data_volumes={"web-1-system": dv})
    )
    assert not any(isinstance(a, DeleteChild) for a in plan.actions)
    assert plan.status["volumes"][0]["phase"] == "CloneInProgress"
    assert plan.status["volumes"][0]["progress"] == "40.00%"
    assert _cond(plan.status, "VolumesBound")["reason"] == "Provisioning"


def test_a_changed_source_clones_again_until_the_clone_is_done() -> None:
    def pass_with(phase: str) -> list[Any]:
        dv = imported_dv(phase=phase)
        dv["spec"] = {"source": {"pvc": {"namespace": "golden", "name": "fedora-39"}}}
        world = ready_children(
            data_volumes={"web-1-system": dv}, clone_sources={"golden/fedora-40": GOLDEN}
        )
        return decide(cloned(), {"phase": "Creating"}, world).actions

    again = [a for a in pass_with("CloneScheduled") if isinstance(a, DeleteChild)]
    assert [(a.kind, a.name) for a in again] == [("DataVolume", "web-1-system")]
    assert not any(isinstance(a, DeleteChild) for a in pass_with("Succeeded"))


def test_a_registry_source_with_fields_cdi_added_is_not_a_changed_image() -> None:
    dv = imported_dv(phase="ImportInProgress", progress="10.00%")
    image = "docker://quay.io/containerdisks/fedora:40"
    dv["spec"] = {"source": {"registry": {"url": image, "pullMethod": "pod"}}}
    plan = decide(
        wukong(), {"phase": "Creating"}, ready_children(data_volumes={"web-1-system": dv})
    )
    assert not any(isinstance(a, DeleteChild) for a in plan.actions)


def test_a_bound_clone_with_its_source_deleted_since_is_ready() -> None:
    world = ready_children(
        data_volumes={"web-1-system": imported_dv()},
        claims={
            "web-1-system": bound_pvc("web-1-system", "20Gi"),
            "web-1-data": bound_pvc("web-1-data"),
        },
    )
    plan = decide(cloned(), {"phase": "Creating"}, world)
    assert _cond(plan.status, "VolumesBound")["status"] == "True"


def test_a_source_the_operator_does_not_watch_is_left_to_cdi() -> None:
    # `run --namespace demo`: golden/fedora-40 is not in the caches, neither found nor missing.
    plan = decide(cloned(), {}, ready_children(data_volumes={}, claims={}, clone_sources={}))
    assert "web-1-system" in _created(plan.actions)


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        pytest.param(None, {"golden/fedora-40": GOLDEN, f"{NS}/base": None}, id="all-namespaces"),
        pytest.param(NS, {f"{NS}/base": None}, id="run-namespace"),
    ],
)
def test_the_pass_sees_the_sources_its_caches_can_show(
    scope: str | None, expected: dict[str, Any]
) -> None:
    """A source in a namespace the caches do not watch is absent: neither found nor missing."""
    from tests.unit.reconcile.test_settle import Cache
    from wukong.act.reconciler import observe
    from wukong.api import kinds

    cr = wukong(
        disks=[
            {"name": "system", "size": "20Gi", "cloneFrom": "golden/fedora-40"},
            {"name": "data", "size": "20Gi", "cloneFrom": "base"},
        ]
    )
    cache = Cache({kinds.PVC.cache: [GOLDEN]})
    assert dict(observe(cache, cr, NOW, scope).clone_sources) == expected


def test_a_clone_cdi_has_not_started_says_what_it_waits_for() -> None:
    dv = imported_dv(phase="")
    dv["spec"] = {"source": {"pvc": {"namespace": "golden", "name": "fedora-40"}}}
    world = ready_children(data_volumes={"web-1-system": dv}, claims={}, clone_sources={})
    plan = decide(cloned(), {"phase": "Creating"}, world)
    assert (
        "system (Pending: CDI clones PVC 'fedora-40' in namespace 'golden' once it exists"
        in (_cond(plan.status, "VolumesBound")["message"])
    )


def test_a_disk_from_a_datasource_is_a_data_volume_with_a_source_ref() -> None:
    cr = wukong(disks=[{"name": "system", "size": "20Gi", "dataSource": "os-images/fedora"}])
    plan = decide(cr, {}, ready_children(data_volumes={}, claims={}))
    dv = _created(plan.actions)["web-1-system"]
    assert "source" not in dv["spec"]
    assert dv["spec"]["sourceRef"] == {
        "kind": "DataSource",
        "namespace": "os-images",
        "name": "fedora",
    }
    # Until CDI makes the claim, the disk says what it waits for.
    made = imported_dv(phase="")
    made["spec"] = dv["spec"]
    world = ready_children(data_volumes={"web-1-system": made}, claims={})
    plan = decide(cr, {"phase": "Creating"}, world)
    assert (
        "CDI clones what DataSource 'fedora' in namespace 'os-images' points to"
        in (_cond(plan.status, "VolumesBound")["message"])
    )
    assert not any(isinstance(a, DeleteChild) for a in plan.actions)
    # Another DataSource before the clone is done: made again from it.
    other = wukong(disks=[{"name": "system", "size": "20Gi", "dataSource": "os-images/centos"}])
    again = decide(other, {"phase": "Creating"}, world).actions
    assert [(a.kind, a.name) for a in again if isinstance(a, DeleteChild)] == [
        ("DataVolume", "web-1-system")
    ]


@pytest.mark.parametrize(
    "sources",
    [
        {"image": "docker://quay.io/containerdisks/fedora:40", "cloneFrom": "golden"},
        {"image": "docker://quay.io/containerdisks/fedora:40", "dataSource": "fedora"},
        {"cloneFrom": "golden", "dataSource": "fedora"},
    ],
)
def test_a_disk_has_one_source_at_most(sources: dict[str, str]) -> None:
    from pydantic import ValidationError

    from wukong.api.spec import DiskSpec

    with pytest.raises(ValidationError, match="name one of them"):
        DiskSpec.model_validate({"name": "system", "size": "1Gi", **sources})


def test_a_datasource_that_does_not_exist_is_named_and_no_data_volume_made() -> None:
    cr = wukong(disks=[{"name": "system", "size": "20Gi", "dataSource": "os-images/fedora"}])
    world = ready_children(data_volumes={}, claims={}, data_sources={"os-images/fedora": None})
    plan = decide(cr, {}, world)
    assert "web-1-system" not in _created(plan.actions)
    cond = _cond(plan.status, "VolumesBound")
    assert cond["reason"] == "DataSourceNotFound"
    assert cond["message"].startswith(
        "disk 'system' is made from DataSource 'fedora' in namespace 'os-images', which does "
        "not exist: create it"
    )
    # It exists, not ready yet: the DataVolume is made, and the disk says what it waits for.
    waiting = {
        "metadata": {"name": "fedora", "namespace": "os-images"},
        "spec": {"source": {"pvc": {"namespace": "os-images", "name": "fedora-40"}}},
        "status": {
            "conditions": [
                {"type": "Ready", "status": "False", "message": "No source PVC", "reason": "X"}
            ]
        },
    }
    world = ready_children(data_volumes={}, claims={}, data_sources={"os-images/fedora": waiting})
    assert "web-1-system" in _created(decide(cr, {}, world).actions)
    made = imported_dv(phase="")
    made["spec"] = _created(decide(cr, {}, world).actions)["web-1-system"]["spec"]
    world = ready_children(
        data_volumes={"web-1-system": made}, claims={}, data_sources={"os-images/fedora": waiting}
    )
    message = _cond(decide(cr, {"phase": "Creating"}, world).status, "VolumesBound")["message"]
    assert "points to once it is ready: No source PVC" in message


def test_a_datasource_whose_pvc_is_bigger_than_the_disk_is_refused() -> None:
    cr = wukong(disks=[{"name": "system", "size": "20Gi", "dataSource": "os-images/fedora"}])
    ready = {
        "metadata": {"name": "fedora", "namespace": "os-images"},
        "spec": {"source": {"pvc": {"namespace": "os-images", "name": "fedora-40"}}},
        # CDI's resolution (through a DataSource pointing to a DataSource) wins over spec.
        "status": {"source": {"pvc": {"namespace": "os-images", "name": "fedora-41"}}},
    }
    big = {**GOLDEN, "spec": {"resources": {"requests": {"storage": "30Gi"}}}}
    world = ready_children(
        data_volumes={},
        claims={},
        data_sources={"os-images/fedora": ready},
        clone_sources={"os-images/fedora-41": big, "os-images/fedora-40": GOLDEN},
    )
    plan = decide(cr, {}, world)
    assert "web-1-system" not in _created(plan.actions)
    cond = _cond(plan.status, "VolumesBound")
    assert cond["reason"] == "CloneSourceTooBig"
    assert cond["message"] == (
        "disk 'system' is 20Gi, smaller than PVC 'fedora-41' in namespace 'os-images' (30Gi) "
        "that DataSource 'fedora' points to: a clone is at least as big as its source; set "
        "size to 30Gi or more"
    )


def _data_source(name: str, spec: dict[str, Any], status: dict[str, Any] | None = None) -> Any:
    """A DataSource of the Wukong's namespace whose spec.source (and status.source) are these."""
    body: dict[str, Any] = {
        "metadata": {"name": name, "namespace": NS},
        "spec": {"source": spec},
    }
    if status is not None:
        body["status"] = {"source": status}
    return body


PAYROLL = {"namespace": "payroll", "name": "db"}


@pytest.mark.parametrize(
    ("spec", "status", "chained"),
    [
        ({"pvc": PAYROLL}, None, None),
        ({"snapshot": PAYROLL}, None, None),
        # CDI's resolution says where it clones from, whatever the spec says now.
        ({"pvc": {"namespace": NS, "name": "mine"}}, {"pvc": PAYROLL}, None),
        ({"dataSource": {"namespace": "payroll", "name": "images"}}, None, None),
        # Through a DataSource of its namespace that points elsewhere (CDI follows one hop),
        # before CDI has resolved it.
        ({"dataSource": {"name": "hop"}}, None, {"pvc": PAYROLL}),
        ({"dataSource": {"namespace": NS, "name": "hop"}}, None, {"snapshot": PAYROLL}),
    ],
)
def test_a_datasource_pointing_outside_its_namespace_is_refused_and_says_nothing_of_it(
    spec: dict[str, Any], status: dict[str, Any] | None, chained: dict[str, Any] | None
) -> None:
    """Source audit, session 48: CDI clones for the DataVolume's creator, the operator, which
    may clone from every namespace; admission checks the author on the DataSource only. A
    tenant's own DataSource pointing at another namespace's PVC got them a copy of it, and
    CloneSourceTooBig told them the PVC existed and its size."""
    cr = wukong(disks=[{"name": "system", "size": "20Gi", "dataSource": "leak"}])
    sources = {f"{NS}/leak": _data_source("leak", spec, status)}
    if chained is not None:
        sources[f"{NS}/hop"] = _data_source("hop", chained)
    big = {**GOLDEN, "metadata": {**GOLDEN["metadata"], "name": "db", "namespace": "payroll"},
           "spec": {"resources": {"requests": {"storage": "50Gi"}}}}  # fmt: skip
    world = ready_children(
        data_volumes={}, claims={}, data_sources=sources, clone_sources={"payroll/db": big}
    )
    plan = decide(cr, {}, world)
    assert "web-1-system" not in _created(plan.actions)
    cond = _cond(plan.status, "VolumesBound")
    assert (cond["status"], cond["reason"]) == ("False", "DataSourceOutsideNamespace")
    assert cond["message"] == (
        f"disk 'system' is made from DataSource 'leak' in namespace '{NS}', which points "
        "outside its namespace: Wukong clones only what a DataSource points to in its own "
        "namespace; name that PVC with cloneFrom, which admission checks against you"
    )
    events = [a for a in plan.actions if isinstance(a, Emit)]
    assert [(e.type, e.reason) for e in events if e.type == "Warning"] == [
        ("Warning", "DataSourceOutsideNamespace")
    ]
    said = json.dumps(plan.status) + " ".join(e.message for e in events)
    for word in ("payroll", "'db'", "50Gi", "images"):
        assert word not in said


@pytest.mark.parametrize(
    "spec",
    [
        {"pvc": {"namespace": NS, "name": "fedora-40"}},
        {"pvc": {"name": "fedora-40"}},  # its own namespace
        {"snapshot": {"name": "fedora-40"}},
        {"dataSource": {"name": "hop"}},
    ],
)
def test_a_datasource_pointing_inside_its_namespace_is_cloned(spec: dict[str, Any]) -> None:
    cr = wukong(disks=[{"name": "system", "size": "20Gi", "dataSource": "fedora"}])
    sources = {
        f"{NS}/fedora": _data_source("fedora", spec),
        f"{NS}/hop": _data_source("hop", {"pvc": {"name": "fedora-40"}}),
    }
    world = ready_children(data_volumes={}, claims={}, data_sources=sources)
    assert "web-1-system" in _created(decide(cr, {}, world).actions)


def test_the_pass_sees_the_pvc_a_datasource_points_to() -> None:
    from tests.unit.reconcile.test_settle import Cache
    from wukong.act.reconciler import observe
    from wukong.api import kinds

    cr = wukong(disks=[{"name": "system", "size": "20Gi", "dataSource": "golden/fedora"}])
    data_source = {
        "metadata": {"name": "fedora", "namespace": "golden"},
        "spec": {"source": {"pvc": {"namespace": "golden", "name": "fedora-40"}}},
    }
    cache = Cache({kinds.DATA_SOURCE.cache: [data_source], kinds.PVC.cache: [GOLDEN]})
    seen = observe(cache, cr, NOW)
    assert dict(seen.data_sources) == {"golden/fedora": data_source}
    assert dict(seen.clone_sources) == {"golden/fedora-40": GOLDEN}
    assert observe(cache, cr, NOW, NS).data_sources == {}  # another namespace: not watched


def test_the_pass_sees_the_datasource_a_datasource_names() -> None:
    from tests.unit.reconcile.test_settle import Cache
    from wukong.act.reconciler import observe
    from wukong.api import kinds

    cr = wukong(disks=[{"name": "system", "size": "20Gi", "dataSource": "leak"}])
    leak = _data_source("leak", {"dataSource": {"name": "hop"}})
    hop = _data_source("hop", {"pvc": PAYROLL})
    cache = Cache({kinds.DATA_SOURCE.cache: [leak, hop]})
    seen = observe(cache, cr, NOW)
    assert dict(seen.data_sources) == {f"{NS}/leak": leak, f"{NS}/hop": hop}
    world = ready_children(data_volumes={}, claims={}, data_sources=seen.data_sources)
    reason = _cond(decide(cr, {}, world).status, "VolumesBound")["reason"]
    assert reason == "DataSourceOutsideNamespace"


def _in_use(about: dict[str, Any], pod: str, first: str, uid: str | None = None) -> dict[str, Any]:
    """CDI's CloneSourceInUse Event about a DataVolume or its claim."""
    meta = about["metadata"]
    return {
        "metadata": {"name": f"{meta['name']}.{pod}", "namespace": NS},
        "involvedObject": {
            "kind": about["kind"],
            "name": meta["name"],
            "namespace": NS,
            "uid": uid or meta["uid"],
        },
        "reason": "CloneSourceInUse",
        "message": f"pod golden/{pod} using PersistentVolumeClaim fedora-40",
        "firstTimestamp": first,
        "lastTimestamp": "2026-12-05T10:05:00Z",
    }


def test_a_clone_cdi_holds_back_names_the_pods_that_use_its_source() -> None:
    dv = imported_dv(phase="CloneScheduled", progress="N/A")
    dv["spec"] = {"source": {"pvc": {"namespace": "golden", "name": "fedora-40"}}}
    events = (
        _in_use(dv, "virt-launcher-golden-vm-x7k2p", "2026-12-05T10:00:00Z"),
        _in_use(dv, "backup-0", "2026-12-05T10:01:00Z"),
        # About an earlier DataVolume of that name: not this one's story.
        _in_use(dv, "virt-launcher-gone-vm-abcde", "2026-12-05T09:00:00Z", uid="old-uid"),
    )
    claims = {"web-1-data": bound_pvc("web-1-data")}
    world = ready_children(data_volumes={"web-1-system": dv}, claims=claims, clone_events=events)
    plan = decide(cloned(), {"phase": "Creating"}, world)
    said = (
        "CloneScheduled: CDI clones PVC 'fedora-40' in namespace 'golden' only while no pod "
        "uses it, and pod golden/backup-0, pod golden/virt-launcher-golden-vm-x7k2p (VM "
        "golden-vm) do (CDI's CloneSourceInUse since 2026-12-05 10:00:00Z): stop what uses "
        "it, or clone another PVC"
    )
    bound = _cond(plan.status, "VolumesBound")
    assert (bound["status"], bound["reason"]) == ("False", "CloneSourceInUse")
    assert bound["message"] == f"waiting for system ({said})"
    assert plan.status["volumes"][0]["message"] == said
    warnings = [a for a in plan.actions if isinstance(a, Emit) and a.type == "Warning"]
    assert [(w.reason, w.message) for w in warnings] == [("CloneSourceInUse", bound["message"])]
    # The same Events once CDI has started (or about the claim of a finished clone): no word.
    dv["status"]["phase"] = "CloneInProgress"
    plan = decide(cloned(), {"phase": "Creating"}, world)
    assert _cond(plan.status, "VolumesBound")["reason"] == "Provisioning"
    assert "message" not in plan.status["volumes"][0]


def test_the_pass_sees_cdis_in_use_events_about_cloned_disks_only() -> None:
    from tests.unit.reconcile.test_settle import Cache
    from wukong.act.reconciler import observe
    from wukong.api import kinds

    dv = imported_dv(phase="CloneScheduled")
    about_clone = _in_use(dv, "p", "2026-12-05T10:00:00Z")
    about_blank = _in_use(imported_dv("web-1-data"), "p", "2026-12-05T10:00:00Z")
    cache = Cache({kinds.CLONE_EVENT.cache: [about_clone, about_blank]})
    assert observe(cache, cloned(), NOW).clone_events == (about_clone,)
    assert observe(cache, wukong(), NOW).clone_events == ()


CDI_DEFAULT = {"global": "0.06", "storageClass": {"standard": "0.06", "fast": "0.1"}}
"""CDIConfig's status as CDI v1.65 settles it with no overhead set, but on class 'fast'."""


@pytest.mark.parametrize(
    ("source_request", "size", "settled", "refused", "suggested"),
    [
        # A golden image CDI imported for a 10Gi DataVolume asks 10Gi plus the filesystem
        # overhead; a 10Gi clone's claim asks the same: CDI clones it. Without CDI's
        # CDIConfig, KubeVirt's 5.5 %.
        ("11327976244", "10Gi", None, False, None),
        ("11327976244", "9Gi", None, True, "11Gi"),
        # CDI v1.65's default is 6 %: a 10Gi golden image asks 11381663335 bytes. With the
        # 5.5 % the operator used until session 40, every same-size clone was refused.
        ("11381663335", "10Gi", CDI_DEFAULT, False, None),
        ("11381663335", "9Gi", CDI_DEFAULT, True, "11Gi"),
        # A class of its own overhead: the clone's claim is padded by its class's (10 %).
        ("11811160064", "10Gi", CDI_DEFAULT | {"global": "0.1"}, False, None),
        # A plain PVC: the clone's claim, with the overhead, may be a little smaller disk.
        ("10Gi", "9710Mi", None, False, None),
        ("10Gi", "9Gi", None, True, "10Gi"),
        ("10Gi", "9680Mi", CDI_DEFAULT, False, None),
        ("500Mi", "400Mi", None, True, "500Mi"),
    ],
)
def test_a_clone_fits_its_source_as_cdi_compares_them(
    source_request: str,
    size: str,
    settled: dict[str, Any] | None,
    refused: bool,
    suggested: str | None,
) -> None:
    """Found on the demo once the simulated CDI padded claims as CDI does: clone-1 (a 10Gi
    clone of the 10Gi DataVolume fedora-golden) was refused "smaller than PVC 'fedora-golden'
    it clones (11327976244)". CDI compares the clone's claim, which gets the same padding on
    a Filesystem volume (its class's overhead in CDIConfig), with its source's."""
    source = {**GOLDEN, "spec": {"resources": {"requests": {"storage": source_request}}}}
    for cr, key in (
        (cloned(size=size), "golden/fedora-40"),
        (_from_data_source(size), "os-images/fedora-40"),
    ):
        world = ready_children(
            data_volumes={},
            claims={},
            data_sources={"os-images/fedora": _READY_SOURCE},
            clone_sources={key: source},
            filesystem_overhead=settled,
        )
        plan = decide(cr, {}, world)
        assert ("web-1-system" not in _created(plan.actions)) is refused
        cond = _cond(plan.status, "VolumesBound")
        assert (cond["reason"] == "CloneSourceTooBig") is refused
        if suggested is not None:
            shown = {"11327976244": "10.6Gi", "11381663335": "10.6Gi"}.get(
                source_request, source_request
            )
            assert f"({shown})" in cond["message"]
            assert cond["message"].endswith(f"set size to {suggested} or more")


def _class(name: str, *marks: str, created: str = "2026-12-01T00:00:00Z") -> dict[str, Any]:
    annotations = {mark: "true" for mark in marks}
    return {"metadata": {"name": name, "annotations": annotations, "creationTimestamp": created}}


_K8S_DEFAULT = "storageclass.kubernetes.io/is-default-class"
_VIRT_DEFAULT = "storageclass.kubevirt.io/is-default-virt-class"


@pytest.mark.parametrize(
    ("disk_class", "classes", "refused"),
    [
        ("fast", [], False),  # the class the disk names: 10 %
        ("standard", [], True),  # 6 %
        (None, [], True),  # no class known: the global 6 %
        (None, [_class("fast", _K8S_DEFAULT), _class("standard")], False),  # the default
        # CDI prefers the default class for VMs to Kubernetes' default class.
        (None, [_class("fast", _K8S_DEFAULT), _class("standard", _VIRT_DEFAULT)], True),
        # Two default classes: the newest.
        (
            None,
            [
                _class("fast", _K8S_DEFAULT, created="2026-12-02T00:00:00Z"),
                _class("standard", _K8S_DEFAULT),
            ],
            False,
        ),
    ],
)
def test_a_clone_is_padded_by_the_overhead_of_the_class_cdi_makes_it_in(
    disk_class: str | None, classes: list[dict[str, Any]], refused: bool
) -> None:
    """CDI pads a clone's claim by its class's overhead (GetFilesystemOverheadForStorage
    Class): the class the disk names, else the default class for VMs, else the default
    class. A 10Gi source made on 'fast' (10 %) fits a 10Gi clone only there."""
    source = {**GOLDEN, "spec": {"resources": {"requests": {"storage": "11811160064"}}}}
    disk: dict[str, Any] = {"name": "system", "size": "10Gi", "cloneFrom": "golden/fedora-40"}
    if disk_class is not None:
        disk["storageClassName"] = disk_class
    cr = wukong(disks=[disk, {"name": "data", "size": "100Gi"}])
    world = ready_children(
        data_volumes={},
        claims={},
        clone_sources={"golden/fedora-40": source},
        filesystem_overhead=CDI_DEFAULT,
        storage_classes={c["metadata"]["name"]: c for c in classes},
    )
    plan = decide(cr, {}, world)
    assert ("web-1-system" not in _created(plan.actions)) is refused


_READY_SOURCE = {
    "metadata": {"name": "fedora", "namespace": "os-images"},
    "spec": {"source": {"pvc": {"namespace": "os-images", "name": "fedora-40"}}},
    "status": {"conditions": [{"type": "Ready", "status": "True"}]},
}


def _from_data_source(size: str) -> Wukong:
    return wukong(
        disks=[
            {"name": "system", "size": size, "dataSource": "os-images/fedora"},
            {"name": "data", "size": "100Gi"},
        ]
    )
