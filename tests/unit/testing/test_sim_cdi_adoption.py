"""The simulated CDI's take-over of a claim its DataVolume does not control, as CDI's
DataVolume controller decides it (controller-base.go pvcRequiresWork, util.go
AllowClaimAdoption, CDI v1.65)."""

from __future__ import annotations

from typing import Any

import pytest

from wukong.testing.kubevirt.cdi import (
    ALLOW_ADOPTION_ANN,
    CREATED_FOR_ANN,
    POPULATED_FOR_ANN,
    claim_manifest,
    takes_over,
)

DV: dict[str, Any] = {
    "metadata": {"name": "web-1-system", "namespace": "ns", "uid": "dv-uid"},
    "spec": {"source": {"blank": {}}, "storage": {"resources": {"requests": {"storage": "1Gi"}}}},
}


def _claim(**notes: str) -> dict[str, Any]:
    return {"metadata": {"name": "web-1-system", "annotations": notes}}


@pytest.mark.parametrize(
    ("notes", "dv_notes", "gate", "taken"),
    [
        pytest.param({}, {}, False, False, id="another-claim"),
        pytest.param({POPULATED_FOR_ANN: "web-1-system"}, {}, False, True, id="populated-for"),
        pytest.param({POPULATED_FOR_ANN: "other"}, {}, False, False, id="populated-for-another"),
        # populatedFor is asked first: a claim made for it and populated for it is taken.
        pytest.param(
            {POPULATED_FOR_ANN: "web-1-system", CREATED_FOR_ANN: "dv-uid"}, {}, False, True,
            id="populated-for-and-made-for",
        ),
        pytest.param({}, {}, True, True, id="gate"),
        pytest.param({CREATED_FOR_ANN: "dv-uid"}, {}, True, False, id="gate-made-for-it"),
        pytest.param({CREATED_FOR_ANN: "old-uid"}, {}, True, True, id="gate-made-for-another"),
        pytest.param({}, {ALLOW_ADOPTION_ANN: "true"}, False, True, id="allowed-by-its-dv"),
        pytest.param({}, {ALLOW_ADOPTION_ANN: "false"}, True, False, id="refused-by-its-dv"),
        pytest.param(
            {CREATED_FOR_ANN: "dv-uid"}, {ALLOW_ADOPTION_ANN: "true"}, False, False,
            id="made-for-it-whatever-its-dv-says",
        ),
    ],
)  # fmt: skip
def test_cdi_takes_over_a_claim_as_pvc_requires_work_says(
    notes: dict[str, str], dv_notes: dict[str, str], gate: bool, taken: bool
) -> None:
    dv = {**DV, "metadata": {**DV["metadata"], "annotations": dv_notes}}
    assert takes_over(_claim(**notes), dv, gate) is taken


def test_the_claim_cdi_makes_is_marked_made_for_its_data_volume() -> None:
    """newPersistentVolumeClaim: createdForDataVolume is the DataVolume's uid."""
    made = claim_manifest(DV)
    assert made["metadata"]["annotations"][CREATED_FOR_ANN] == "dv-uid"
    released = {**made, "metadata": {**made["metadata"], "ownerReferences": []}}
    assert not takes_over(released, DV, True)
