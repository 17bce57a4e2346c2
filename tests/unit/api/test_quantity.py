"""Sizes are read exactly as the API server reads them."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from wukong.api.quantity import (
    QUANTITY_PATTERN,
    Quantity,
    format_bytes,
    multiple_of,
    parse_bytes,
    parse_quantity,
    readable_bytes,
)

_quantity = TypeAdapter(Quantity)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("20Gi", Decimal(20 * 1024**3), id="gibibytes"),
        pytest.param("0.1Ti", Decimal("109951162777.6"), id="fractional-tebibytes"),
        pytest.param("500M", Decimal(500_000_000), id="megabytes"),
        pytest.param("1.5G", Decimal(1_500_000_000), id="fractional-gigabytes"),
        pytest.param("100Mi", Decimal(100 * 1024**2), id="mebibytes"),
        pytest.param("2", Decimal(2), id="plain-number"),
        pytest.param("500m", Decimal("0.5"), id="milli"),
        pytest.param("1e3", Decimal(1000), id="exponent"),
        pytest.param("1E3", Decimal(1000), id="capital-exponent"),
        pytest.param("1E", Decimal(10**18), id="exa-not-exponent"),
        pytest.param("1Ei", Decimal(1024**6), id="exbibyte"),
        pytest.param(".5Gi", Decimal(512 * 1024**2), id="leading-dot"),
        pytest.param("1.", Decimal(1), id="trailing-dot"),
        pytest.param("+3k", Decimal(3000), id="explicit-plus"),
        pytest.param("-3k", Decimal(-3000), id="negative"),
        pytest.param("100n", Decimal("1E-7"), id="nano"),
        pytest.param(
            "123456789012.123456789Ei",
            Decimal("142335986941787429113530037747.071320064"),
            id="many-digits-stay-exact",
        ),
    ],
)
def test_quantities_parse_to_their_exact_value(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    ("smaller", "larger"),
    [
        pytest.param("20Gi", "0.1Ti", id="gi-below-fraction-of-ti"),
        pytest.param("1G", "1Gi", id="decimal-below-binary"),
        pytest.param("999Mi", "1Gi", id="mi-below-gi"),
        pytest.param("500m", "1", id="milli-below-one"),
        pytest.param("1e3", "1Ki", id="exponent-below-kibi"),
    ],
)
def test_sizes_compare_by_value_not_by_text(smaller: str, larger: str) -> None:
    assert parse_quantity(smaller) < parse_quantity(larger)


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        pytest.param("4GB", "did you mean '4G' or '4Gi'", id="bytes-suffix"),
        pytest.param("4GiB", "did you mean '4Gi'", id="binary-bytes-suffix"),
        pytest.param("", "is not a Kubernetes quantity", id="empty"),
        pytest.param("Gi", "is not a Kubernetes quantity", id="no-number"),
        pytest.param("20 Gi", "is not a Kubernetes quantity", id="space"),
        pytest.param("1.2.3", "is not a Kubernetes quantity", id="two-dots"),
        pytest.param("20gi", "is not a Kubernetes quantity", id="lowercase-binary"),
        pytest.param("1e", "is not a Kubernetes quantity", id="dangling-exponent"),
        pytest.param("1e999", "is not a Kubernetes quantity", id="huge-exponent"),
        pytest.param("0x10", "is not a Kubernetes quantity", id="hex"),
    ],
)
def test_garbage_is_rejected_with_a_hint(text: str, hint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(hint)):
        parse_quantity(text)


@pytest.mark.parametrize(
    ("count", "text"),
    [
        pytest.param(0, "0", id="zero"),
        pytest.param(20 * 1024**3, "20Gi", id="gibibytes"),
        pytest.param(1536 * 1024**2, "1536Mi", id="not-whole-gibibytes"),
        pytest.param(1_500_000_000, "1500M", id="decimal-fallback"),
        pytest.param(1023, "1023", id="plain-bytes"),
        pytest.param(Decimal("109951162777.6"), "109951162778", id="fraction-rounds-up"),
        pytest.param(-2048, "-2Ki", id="negative"),
    ],
)
def test_byte_counts_format_in_canonical_short_form(count: int | Decimal, text: str) -> None:
    assert format_bytes(count) == text


def test_storage_requests_round_up_to_whole_bytes() -> None:
    assert parse_bytes("0.1Ti") == 109951162778


@given(st.integers(min_value=0, max_value=2**70))
def test_formatted_sizes_read_back_to_the_same_bytes(count: int) -> None:
    assert parse_quantity(format_bytes(count)) == count


_suffixes = st.sampled_from(
    ["", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "e3", "E-2"]
)


@given(st.decimals(min_value=0, max_value=10**6, places=3), _suffixes)
def test_anything_the_crd_pattern_admits_the_operator_reads(number: Decimal, suffix: str) -> None:
    text = f"{number}{suffix}"
    assert re.fullmatch(QUANTITY_PATTERN, text)
    assert _quantity.validate_python(text) == text
    assert parse_quantity(text) >= 0


@given(st.text(alphabet="0123456789.+-eEiKMGTPkmnu ", max_size=10))
def test_crd_pattern_and_python_agree_on_any_text(text: str) -> None:
    try:
        _quantity.validate_python(text)
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == bool(re.fullmatch(QUANTITY_PATTERN, text))


def test_yaml_integers_are_valid_sizes() -> None:
    assert _quantity.validate_python(1024) == "1024"


def test_negative_sizes_are_refused() -> None:
    with pytest.raises(ValidationError, match="negative"):
        _quantity.validate_python("-1Gi")


def test_parsing_is_cached_but_refusals_are_not() -> None:
    """The same text gives the same value again (from the cache), while bad input is refused
    each time, non-strings with a ValueError like any other garbage, not a TypeError."""
    assert parse_quantity("3Gi") is parse_quantity("3Gi")
    for _ in range(2):
        with pytest.raises(ValueError, match="not a Kubernetes quantity"):
            parse_quantity("3GB")
        with pytest.raises(ValueError, match="must be a string"):
            parse_quantity(["3Gi"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("11327976244", "10.6Gi"),  # the claim older CDI (5.5 %) asks for a 10Gi disk
        ("11381663335", "10.6Gi"),  # CDI v1.65's (6 %)
        ("2284847104", "2179Mi"),  # a 2Gi disk's grown claim: exact in MiB, so shown so
        ("10Gi", "10Gi"),
        ("10737418240", "10Gi"),
        ("1500M", "1500M"),
        ("1536", "1.5Ki"),
        ("1023", "1023"),
        (None, None),
        ("lots", "lots"),
    ],
)
def test_a_byte_count_reads_in_binary_units(value: str | None, shown: str | None) -> None:
    """Real CDI asks an imported disk's claim bigger than the spec by its filesystem
    overhead, in bytes: `wukong status` showed 11327976244 where people read 10.6Gi."""
    assert readable_bytes(value) == shown


@pytest.mark.parametrize(
    ("text", "aligned"),
    [("1e40", True), ("1e99", True), ("1025Mi", False), ("2Mi", True), ("2097152.5", False)],
)
def test_multiple_of_is_exact_at_any_size(text: str, aligned: bool) -> None:
    assert multiple_of(parse_quantity(text), 2 * 1024 * 1024) is aligned
