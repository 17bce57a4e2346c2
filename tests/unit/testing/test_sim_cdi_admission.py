"""The simulated CDI's datavolume-mutate webhook: what it answers to a DataVolume's create or
update, given what it read (CDI v1.65 datavolume-mutate.go, AuthorizeUser)."""

from __future__ import annotations

from typing import Any

import pytest

from wukong.testing.kubevirt.cdi_admission import (
    ALLOWED,
    Answer,
    Lookups,
    admit,
    clone_namespace,
    data_source_wanted,
)
from wukong.testing.kubevirt.cdi_webhook import configuration, configuration_name, review_answer

JsonObj = dict[str, Any]
NS = "ns1"
FOUND: JsonObj = {"metadata": {"name": "found"}}


def data_volume(spec: JsonObj, *, deleted: bool = False, **annotations: str) -> JsonObj:
    meta: JsonObj = {"name": "dv", "namespace": NS}
    if annotations:
        meta["annotations"] = annotations
    if deleted:
        meta["deletionTimestamp"] = "2026-12-06T20:00:00Z"
    return {"metadata": meta, "spec": spec}


def pvc_of(namespace: str, name: str) -> JsonObj:
    return {"pvc": {"namespace": namespace, "name": name}}


def data_source(source: JsonObj, status_source: JsonObj | None = None) -> JsonObj:
    ds: JsonObj = {
        "metadata": {"name": "fedora", "namespace": "images"},
        "spec": {"source": source},
    }
    if status_source is not None:
        ds["status"] = {"source": status_source}
    return ds


REF = {"sourceRef": {"kind": "DataSource", "name": "fedora"}}
REF_ELSEWHERE = {"sourceRef": {"kind": "DataSource", "namespace": "images", "name": "fedora"}}
PRE_POPULATED = {"cdi.kubevirt.io/storage.prePopulated": "dv"}
STATIC = {"cdi.kubevirt.io/storage.checkStaticVolume": ""}
MISSING_SOURCE = Answer(False, 400, 'datasources.cdi.kubevirt.io "fedora" not found')


@pytest.mark.parametrize(
    ("dv", "lookups", "answer"),
    [
        pytest.param(
            data_volume({"source": {"http": {"url": "x"}}}), Lookups(), ALLOWED, id="import"
        ),
        pytest.param(data_volume({"source": {"blank": {}}}), Lookups(), ALLOWED, id="blank"),
        pytest.param(data_volume({"storage": {}}), Lookups(), ALLOWED, id="no-source"),
        pytest.param(data_volume(REF), Lookups(), MISSING_SOURCE, id="datasource-missing"),
        pytest.param(
            data_volume(REF, **PRE_POPULATED), Lookups(), ALLOWED, id="missing-but-prepopulated"
        ),
        pytest.param(
            data_volume(REF, **STATIC), Lookups(), ALLOWED, id="missing-but-static-volume"
        ),
        pytest.param(
            data_volume(REF, **{"cdi.kubevirt.io/storage.usePopulator": "false"}),
            Lookups(),
            MISSING_SOURCE,
            id="another-annotation-does-not-help",
        ),
        pytest.param(
            data_volume({"sourceRef": {"kind": "Unknown", "name": "fedora"}}),
            Lookups(),
            ALLOWED,
            id="sourceref-not-a-datasource",
        ),
        pytest.param(
            data_volume(REF),
            Lookups(data_source(pvc_of("images", "fedora-40")), FOUND),
            ALLOWED,
            id="datasource-and-namespace-found",
        ),
        pytest.param(
            data_volume(REF),
            Lookups(data_source(pvc_of("gone", "fedora-40"))),
            Answer(False, 400, 'namespaces "gone" not found'),
            id="datasource-pvc-namespace-missing",
        ),
        pytest.param(
            data_volume(REF, **PRE_POPULATED),
            Lookups(data_source(pvc_of("gone", "fedora-40"))),
            ALLOWED,
            id="namespace-missing-but-prepopulated",
        ),
        pytest.param(
            data_volume(REF), Lookups(data_source({})), ALLOWED, id="datasource-names-nothing"
        ),
        pytest.param(
            data_volume({"source": {"pvc": {"namespace": "gone", "name": "golden"}}}),
            Lookups(),
            Answer(False, 400, 'namespaces "gone" not found'),
            id="clone-namespace-missing",
        ),
        pytest.param(
            data_volume({"source": {"pvc": {"namespace": "golden", "name": "golden"}}}),
            Lookups(source_namespace=FOUND),
            ALLOWED,
            id="clone-namespace-found",
        ),
        pytest.param(
            data_volume({"source": {"snapshot": {"namespace": "gone", "name": "snap"}}}),
            Lookups(),
            Answer(False, 400, 'namespaces "gone" not found'),
            id="snapshot-clone-namespace-missing",
        ),
        pytest.param(
            data_volume(REF, deleted=True),
            Lookups(),
            ALLOWED,
            id="being-deleted",
        ),
    ],
)
def test_cdi_answers_a_data_volume_write(dv: JsonObj, lookups: Lookups, answer: Answer) -> None:
    assert admit(dv, lookups) == answer


def test_a_datasource_is_read_only_when_the_data_volume_names_no_source_of_its_own() -> None:
    assert data_source_wanted(data_volume(REF)) == (NS, "fedora")
    assert data_source_wanted(data_volume(REF_ELSEWHERE)) == ("images", "fedora")
    both = data_volume({**REF, "source": {"http": {"url": "x"}}})
    assert data_source_wanted(both) is None
    assert admit(both, Lookups()) == ALLOWED


def test_a_clone_without_a_namespace_is_of_the_data_volumes_namespace() -> None:
    """AuthorizeUser: an empty source namespace is the target's, even through a DataSource of
    another namespace."""
    assert clone_namespace(data_volume({"source": {"pvc": {"name": "golden"}}}), None) == NS
    unnamed = data_source({"pvc": {"name": "fedora-40"}})
    assert clone_namespace(data_volume(REF_ELSEWHERE), unnamed) == NS


def test_a_datasource_pointing_to_another_one_is_resolved_through_its_status() -> None:
    chained = data_source({"dataSource": {"name": "other"}}, status_source=pvc_of("base", "os"))
    assert clone_namespace(data_volume(REF), chained) == "base"
    unresolved = data_source({"dataSource": {"name": "other"}, **pvc_of("ignored", "os")})
    assert clone_namespace(data_volume(REF), unresolved) is None


def test_the_webhook_selects_only_its_simulators_namespace() -> None:
    config = configuration("ns1", 8443, b"PEM")
    [webhook] = config["webhooks"]
    assert config["metadata"]["name"] == configuration_name("ns1") != configuration_name("ns2")
    assert webhook["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "ns1"}}
    assert webhook["clientConfig"]["url"] == "https://127.0.0.1:8443/datavolume-mutate"
    assert (webhook["failurePolicy"], webhook["sideEffects"]) == ("Fail", "None")
    [rule] = webhook["rules"]
    assert rule["operations"] == ["CREATE", "UPDATE"] and rule["resources"] == ["datavolumes"]
    # A cluster-wide simulator reviews every namespace, under a name of its own.
    everywhere = configuration(None, 8443, b"PEM")
    assert "namespaceSelector" not in everywhere["webhooks"][0]
    assert everywhere["metadata"]["name"] not in (configuration_name("ns1"), "")


def test_a_refusal_carries_cdis_code_and_words_and_the_requests_uid() -> None:
    review = review_answer({"uid": "u1"}, MISSING_SOURCE)
    assert review["response"] == {
        "uid": "u1",
        "allowed": False,
        "status": {"code": 400, "message": 'datasources.cdi.kubevirt.io "fedora" not found'},
    }
    assert review_answer({"uid": "u2"}, ALLOWED)["response"] == {"uid": "u2", "allowed": True}
