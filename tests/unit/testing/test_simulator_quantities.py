"""The simulator reads every Kubernetes quantity form (issue 18, case 9)."""

from __future__ import annotations

import pytest

from wukong.testing.kubevirt.objects import quantity_bytes


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1m", 1),  # milli-units round up to a whole byte, as Kubernetes does
        ("1500m", 2),
        ("0.0001", 1),
        ("1e3", 1000),
        ("1E3", 1000),
        ("12e-1", 2),
        ("1E", 10**18),
        ("1Ki", 1024),
        ("10Gi", 10 * 2**30),
        ("1.5G", 1_500_000_000),
        ("+2k", 2000),
        (1024, 1024),
        (None, 0),
    ],
)
def test_the_simulator_reads_milli_units_exponents_and_every_suffix(
    text: str | int | None, size: int
) -> None:
    assert quantity_bytes(text) == size


def test_the_simulator_says_what_is_not_a_quantity() -> None:
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        quantity_bytes("4GB")
