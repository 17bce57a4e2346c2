"""The phase of a VMI whose domain the simulated virt-handler destroys at the end of its
grace period, as virt-handler's calculateVmPhaseForStatusReason says it."""

from __future__ import annotations

import pytest

from wukong.testing.kubevirt._handler import _destroyed


@pytest.mark.parametrize(
    ("features", "grace", "phase"),
    [
        ({}, 30.0, "Failed"),  # ACPI on by default: asked to shut down, and did not
        ({"acpi": {"enabled": True}}, 2.0, "Failed"),
        ({"acpi": {"enabled": False}}, 30.0, "Succeeded"),  # no ACPI: destroyed is its end
        ({}, 0.0, "Succeeded"),  # a forced stop: grace 0 (isACPIEnabled is false)
    ],
)
def test_a_guest_killed_at_the_end_of_its_grace_period(
    features: dict[str, object], grace: float, phase: str
) -> None:
    vmi = {"spec": {"domain": {"features": features}}}
    assert _destroyed(vmi, grace) == phase
