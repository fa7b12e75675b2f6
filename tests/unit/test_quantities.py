"""Exact quantities: micro-units, plain-decimal formatting, per-event round-up
(docs/products.md)."""

from __future__ import annotations

import re
import time
from decimal import ROUND_CEILING, Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from voxmeter.domain.quantities import (
    MAX_QUANTITY,
    MICRO,
    QuantityError,
    ceil_units,
    format_decimal,
    format_micro,
    from_micro,
    to_micro,
)

PLAIN = re.compile(r"0|[1-9]\d*(\.\d*[1-9])?|0\.\d*[1-9]")


@pytest.mark.parametrize(
    ("text", "micro"),
    [
        ("0", 0),
        ("0.0", 0),
        ("-0", 0),
        ("0E+5", 0),
        ("0E-20", 0),
        ("12", 12_000_000),
        ("12.5", 12_500_000),
        ("12.500000", 12_500_000),
        ("12.50000000000", 12_500_000),
        ("0.000001", 1),
        ("1E-6", 1),
        ("0.1", 100_000),
        ("1.5E+2", 150_000_000),
        ("1E+12", 10**18),
        ("1000000000000.000000", 10**18),
        ("999999999999.999999", 10**18 - 1),
        ("123456.789012", 123_456_789_012),
    ],
)
def test_to_micro_exact(text: str, micro: int) -> None:
    assert to_micro(Decimal(text)) == micro


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0.0000001", "decimal places"),
        ("1.0000001", "decimal places"),
        ("12.3456789", "decimal places"),
        ("1E-7", "decimal places"),
        ("-1", "negative"),
        ("-0.000001", "negative"),
        ("-1E+20", "negative"),
        ("NaN", "finite"),
        ("-NaN", "finite"),
        ("sNaN", "finite"),
        ("Infinity", "finite"),
        ("-Infinity", "finite"),
        ("1000000000000.000001", "exceed"),
        ("1E+13", "exceed"),
        ("1.0000000000001E+12", "exceed"),
    ],
)
def test_to_micro_rejects(text: str, message: str) -> None:
    with pytest.raises(QuantityError, match=message):
        to_micro(Decimal(text))


@pytest.mark.parametrize(
    "text",
    [
        # More significant digits than the default 28-digit context: an exact 7th-or-later
        # decimal place must still be refused, never rounded away.
        "1.00000000000000000000000000001",
        "999999999999.9999999999999999999",
        "0.1000000000000000000000000000001",
    ],
)
def test_to_micro_never_rounds_long_coefficients(text: str) -> None:
    with pytest.raises(QuantityError, match="decimal places"):
        to_micro(Decimal(text))


def test_quantity_error_is_a_value_error() -> None:
    assert issubclass(QuantityError, ValueError)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1E-999999999", "decimal places"),
        ("1E+999999999", "exceed"),
        ("-1E+999999999", "negative"),
        ("9" * 5000 + "E-999999999", "decimal places"),
    ],
)
@pytest.mark.serial
def test_extreme_exponents_are_rejected_quickly(text: str, message: str) -> None:
    value = Decimal(text)
    started = time.perf_counter()
    with pytest.raises(QuantityError, match=message):
        to_micro(value)
    assert time.perf_counter() - started < 0.5


@pytest.mark.serial
def test_zero_with_extreme_exponents_is_zero_quickly() -> None:
    started = time.perf_counter()
    assert to_micro(Decimal("0E+999999999")) == 0
    assert to_micro(Decimal("0E-999999999")) == 0
    assert time.perf_counter() - started < 0.5


def test_max_quantity_is_ten_to_the_twelfth() -> None:
    assert Decimal("1000000000000") == MAX_QUANTITY
    assert MICRO == 1_000_000


@pytest.mark.parametrize(
    ("micro", "value"),
    [
        (0, Decimal("0")),
        (1, Decimal("0.000001")),
        (12_000_000, Decimal("12")),
        (12_500_000, Decimal("12.5")),
        (10**18, Decimal("1000000000000")),
        (10**21 + 7, Decimal("1000000000000000.000007")),
        (-1_500_000, Decimal("-1.5")),
    ],
)
def test_from_micro(micro: int, value: Decimal) -> None:
    result = from_micro(micro)
    assert isinstance(result, Decimal)
    assert result == value


@pytest.mark.parametrize(
    ("micro", "text"),
    [
        (0, "0"),
        (12_000_000, "12"),
        (12_500_000, "12.5"),
        (1, "0.000001"),
        (10, "0.00001"),
        (100_000, "0.1"),
        (1_000_001, "1.000001"),
        (1_010_000, "1.01"),
        (10_000_000, "10"),
        (10**18, "1000000000000"),
        (10**40, "1" + "0" * 34),
        (123_456_789_012, "123456.789012"),
    ],
)
def test_format_micro(micro: int, text: str) -> None:
    assert format_micro(micro) == text


@pytest.mark.parametrize(
    ("micro", "text"),
    [
        (-12_000_000, "-12"),
        (-1_500_000, "-1.5"),
        (-1, "-0.000001"),
        (-100_000, "-0.1"),
    ],
)
def test_format_micro_negative(micro: int, text: str) -> None:
    assert format_micro(micro) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("0", "0"),
        ("0.000", "0"),
        ("-0", "0"),
        ("0E+10", "0"),
        ("12", "12"),
        ("12.0", "12"),
        ("12.5", "12.5"),
        ("12.500", "12.5"),
        ("1E+3", "1000"),
        ("1.20E+2", "120"),
        ("1E-6", "0.000001"),
        ("1.5E-10", "0.00000000015"),
        ("100", "100"),
        ("-12.50", "-12.5"),
        ("-1E+2", "-100"),
        ("123456789012345678901234567890.10", "123456789012345678901234567890.1"),
    ],
)
def test_format_decimal(value: str, text: str) -> None:
    assert format_decimal(Decimal(value)) == text


@pytest.mark.parametrize(
    ("micro", "ceiled"),
    [
        (0, 0),
        (1, MICRO),
        (100_000, MICRO),  # 0.1 -> 1
        (2_000_000, 2 * MICRO),  # 2.0 -> 2
        (2_010_000, 3 * MICRO),  # 2.01 -> 3
        (999_999, MICRO),
        (1_000_001, 2 * MICRO),
        (10**18, 10**18),
        (10**18 - 1, 10**18),
        (-1_500_000, -MICRO),  # ceiling of -1.5 is -1
        (-2_000_000, -2 * MICRO),
    ],
)
def test_ceil_units(micro: int, ceiled: int) -> None:
    assert ceil_units(micro) == ceiled


def test_spec_round_up_examples_through_decimals() -> None:
    for text, whole in [("0.1", "1"), ("2.0", "2"), ("2.01", "3")]:
        assert from_micro(ceil_units(to_micro(Decimal(text)))) == Decimal(whole)


# A valid quantity: 0 <= d <= 10^12, at most 6 decimal places, written any way a caller may
# write it (trailing zeros, exponents).
valid_micros = st.integers(min_value=0, max_value=10**18)


@st.composite
def valid_decimals(draw: st.DrawFn) -> Decimal:
    micro = draw(valid_micros)
    exact = Decimal(micro).scaleb(-6)
    extra = draw(st.integers(min_value=0, max_value=30))
    text = draw(st.sampled_from(["plain", "padded", "sci", "normal"]))
    if text == "padded":
        plain = f"{exact:f}"
        if extra:
            plain += ("" if "." in plain else ".") + "0" * extra
        return Decimal(plain)
    if text == "sci":
        return Decimal(f"{exact:E}")
    if text == "normal":
        return exact.normalize()
    return exact


@settings(max_examples=400, deadline=None, database=None)
@given(valid_decimals())
@example(Decimal("0"))
@example(Decimal("0E+10"))
@example(Decimal("1E+12"))
@example(Decimal("1.000000000000000000000000000000"))
@example(Decimal("0.000001"))
@example(Decimal("999999999999.999999"))
def test_round_trip_format_micro_of_to_micro(value: Decimal) -> None:
    micro = to_micro(value)
    text = format_micro(micro)
    assert PLAIN.fullmatch(text), text
    assert Decimal(text) == value
    assert from_micro(micro) == value
    assert format_decimal(value) == text


@settings(max_examples=300, deadline=None, database=None)
@given(valid_micros)
def test_format_micro_agrees_with_decimal(micro: int) -> None:
    text = format_micro(micro)
    assert PLAIN.fullmatch(text), text
    assert Decimal(text) == Decimal(micro) / Decimal(MICRO)
    assert to_micro(Decimal(text)) == micro


@settings(max_examples=300, deadline=None, database=None)
@given(st.integers(min_value=-(10**20), max_value=10**20))
def test_ceil_units_is_the_decimal_ceiling(micro: int) -> None:
    expected = (Decimal(micro) / MICRO).to_integral_value(rounding=ROUND_CEILING)
    result = ceil_units(micro)
    assert result % MICRO == 0
    assert Decimal(result) / MICRO == expected
    assert result - MICRO < micro <= result


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.decimals(allow_nan=True, allow_infinity=True)
    | st.builds(
        lambda c, e: Decimal(c).scaleb(e),
        st.integers(min_value=-(10**40), max_value=10**40),
        st.integers(min_value=-60, max_value=20),
    )
)
@example(Decimal("1.00000000000000000000000000001"))
@example(Decimal("-0"))
def test_to_micro_accepts_exactly_the_valid_quantities(value: Decimal) -> None:
    # Reference without context rounding: integer arithmetic on the exact ratio.
    valid = False
    numerator, denominator = 0, 1
    if value.is_finite():
        numerator, denominator = value.as_integer_ratio()
        valid = numerator >= 0 and MICRO % denominator == 0 and value <= MAX_QUANTITY
    if valid:
        assert to_micro(value) * denominator == numerator * MICRO
    else:
        with pytest.raises(QuantityError):
            to_micro(value)
