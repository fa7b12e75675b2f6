"""Currencies (docs/behaviour.md, Prices and statements): ISO 4217 codes, minor units, rounding."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from decimal import Context as DecimalContext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes import MemoryDatabase
from voxmeter.domain.money import (
    CurrencyError,
    check_currency,
    format_minor,
    minor_units,
    round_amount,
)
from voxmeter.domain.tenancy import Operation
from voxmeter.errors import ConfigError
from voxmeter.service.context import Context
from voxmeter.service.tenancy import create_operation, update_operation


@pytest.mark.parametrize(
    ("code", "digits"),
    [("USD", 2), ("COP", 2), ("CLP", 0), ("JPY", 0), ("EUR", 2), ("BHD", 3), ("BRL", 2)],
)
def test_minor_units_follow_iso_4217(code: str, digits: int) -> None:
    assert check_currency(code) == code
    assert minor_units(code) == digits


@pytest.mark.parametrize("code", ["ZZZ", "usd", "US", "USDD", "", "U$D", "ＵＳＤ"])
def test_unknown_currencies_are_refused(code: str) -> None:
    with pytest.raises(CurrencyError, match="ISO 4217"):
        check_currency(code)


@given(
    pico=st.integers(min_value=0, max_value=10**30),
    code=st.sampled_from(["USD", "CLP", "BHD", "COP"]),
)
def test_amounts_round_half_even_to_the_minor_unit(pico: int, code: str) -> None:
    exact = Decimal(pico).scaleb(-12)
    step = Decimal(1).scaleb(-minor_units(code))
    expected = exact.quantize(step, rounding=ROUND_HALF_EVEN, context=DecimalContext(prec=80))
    assert Decimal(format_minor(round_amount(pico, code), code)) == expected
    text = format_minor(round_amount(pico, code), code)
    assert "e" not in text.lower()
    assert "." not in text or not text.endswith("0")  # plain decimal: no trailing zeros


def test_ties_go_to_the_even_cent() -> None:
    half_cent = 5 * 10**9  # 0.005 of a unit in 10^-12
    assert format_minor(round_amount(half_cent, "USD"), "USD") == "0"
    assert format_minor(round_amount(3 * half_cent, "USD"), "USD") == "0.02"
    assert format_minor(round_amount(10**12 // 2, "CLP"), "CLP") == "0"
    assert format_minor(round_amount(3 * 10**12 // 2, "CLP"), "CLP") == "2"


# --------------------------------------------------------------------- operations on the fake


def test_an_operation_bills_in_the_currency_given(ctx: Context[MemoryDatabase]) -> None:
    assert create_operation(ctx, "a", "9901").currency == "USD"
    assert create_operation(ctx, "b", "9901", currency="CLP").currency == "CLP"
    with pytest.raises(ConfigError, match="unknown currency 'XYZ'"):
        create_operation(ctx, "c", "9901", currency="XYZ")
    assert [o.name for o in ctx.storage.operations()] == ["a", "b"]


def test_update_changes_licences_and_currency_or_nothing(
    ctx: Context[MemoryDatabase], op: Operation
) -> None:
    updated = update_operation(ctx, op, 3, None)
    assert (updated.licenses, updated.daily_quota, updated.currency) == (3, 3000, "USD")
    updated = update_operation(ctx, op, None, "COP")
    assert (updated.licenses, updated.currency) == (3, "COP")
    for licenses, currency in ((0, "EUR"), (5, "EURO"), (None, None)):
        with pytest.raises(ConfigError):
            update_operation(ctx, op, licenses, currency)
    assert ctx.storage.operation(op.id) == updated
