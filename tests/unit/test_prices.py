"""Prices and charges (docs/behaviour.md, Prices and statements): parsing refusals, worked
examples, and properties against a Decimal model."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes import MemoryDatabase
from voxmeter.domain import prices as pricing
from voxmeter.domain.money import format_minor, minor_units
from voxmeter.domain.prices import Price, PriceError, Scheme, Tier, charge, make_price
from voxmeter.domain.quantities import MICRO, from_micro
from voxmeter.domain.tenancy import Operation
from voxmeter.errors import ConfigError
from voxmeter.service.context import Context
from voxmeter.service.prices import delete_price, list_prices, set_price


def amount(price: Price, items: str) -> str:
    got = charge(price, int(Decimal(items) * MICRO))
    return format_minor(got.amount, price.currency)


def test_graduated_tiers_bill_each_tier_at_its_own_price() -> None:
    price = make_price("ivr_minutes", "USD", None, ["1000:0.05", "inf:0.03"], [], None)
    assert amount(price, "1000") == "50"
    assert amount(price, "1500") == "65"  # 1000 x 0.05 + 500 x 0.03
    got = charge(price, 1500 * MICRO)
    assert [(p.units // MICRO, p.amount) for p in got.pieces] == [(1000, 5000), (500, 1500)]


def test_volume_tiers_bill_every_unit_at_the_tier_of_the_total() -> None:
    price = make_price("ivr_minutes", "USD", None, [], ["1000:0.05", "inf:0.03"], None)
    assert amount(price, "1000") == "50"
    assert amount(price, "1001") == "30.03"
    got = charge(price, 1001 * MICRO)
    assert [p.units // MICRO for p in got.pieces] == [0, 1001]


def test_included_units_are_free_and_counted_first() -> None:
    price = make_price("rsync", "USD", None, ["10:1", "inf:0.5"], [], "100")
    got = charge(price, 105 * MICRO)
    assert (got.included, got.billable) == (100 * MICRO, 5 * MICRO)
    assert format_minor(got.amount, "USD") == "5"  # the first tier, not the last
    assert charge(price, 40 * MICRO).amount == 0


def test_amounts_round_half_even_to_the_currency_minor_unit() -> None:
    cents = make_price("rsync", "USD", "0.125", [], [], None)
    assert amount(cents, "1") == "0.12"
    assert amount(cents, "3") == "0.38"
    pesos = make_price("rsync", "CLP", "0.5", [], [], None)
    assert amount(pesos, "5") == "2"
    assert amount(pesos, "7") == "4"


@pytest.mark.parametrize(
    ("unit", "tiers", "volume", "included", "message"),
    [
        ("-1", [], [], None, "must not be negative"),
        ("0.0000001", [], [], None, "more than 6 decimal places"),
        ("abc", [], [], None, "not a decimal"),
        ("NaN", [], [], None, "finite"),
        (None, ["100:1", "50:2", "inf:3"], [], None, "increasing order"),
        (None, ["100:1", "100:2", "inf:3"], [], None, "increasing order"),
        (None, ["100:1", "200:2"], [], None, "last tier must be inf"),
        (None, [], ["inf:1", "inf:2"], None, "only the last tier"),
        (None, ["100"], [], None, "UPTO:PRICE"),
        (None, ["0:1", "inf:2"], [], None, "above 0"),
        (None, ["100:-1", "inf:2"], [], None, "must not be negative"),
        ("1", ["inf:1"], [], None, "exactly one"),
        (None, ["inf:1"], ["inf:1"], None, "exactly one"),
        (None, [], [], None, "exactly one"),
        ("1", [], [], "-5", "must not be negative"),
        ("1", [], [], "1.1234567", "more than 6 decimal places"),
    ],
)
def test_bad_prices_are_refused_with_a_clear_message(
    unit: str | None, tiers: list[str], volume: list[str], included: str | None, message: str
) -> None:
    with pytest.raises(PriceError, match=message):
        make_price("rsync", "USD", unit, tiers, volume, included)


# ------------------------------------------------------------------------------ properties

MICROS = st.integers(min_value=0, max_value=10**7 * MICRO)
UNIT_PRICES = st.integers(min_value=0, max_value=1000 * MICRO)


@st.composite
def prices(draw: st.DrawFn, scheme: Scheme | None = None) -> Price:
    scheme = scheme or draw(st.sampled_from(list(Scheme)))
    currency = draw(st.sampled_from(["USD", "CLP", "BHD"]))
    included = draw(st.integers(min_value=0, max_value=1000 * MICRO))
    if scheme is Scheme.UNIT:
        return Price("rsync", currency, scheme, (Tier(None, draw(UNIT_PRICES)),), included)
    bounds = sorted(draw(st.sets(st.integers(1, 10**6 * MICRO), max_size=4)))
    tiers = (*(Tier(b, draw(UNIT_PRICES)) for b in bounds), Tier(None, draw(UNIT_PRICES)))
    return Price("rsync", currency, scheme, tiers, included)


def _rounded(units: int, unit_price: int, currency: str) -> Decimal:
    exact = from_micro(units) * from_micro(unit_price)
    return exact.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_EVEN)


@given(price=prices(Scheme.GRADUATED), items=MICROS)
def test_graduated_is_the_sum_of_its_tier_pieces(price: Price, items: int) -> None:
    got = charge(price, items)
    assert sum(p.units for p in got.pieces) == got.billable
    lower = 0
    expected = Decimal(0)
    for tier in price.tiers:
        upper = got.billable if tier.upto is None else min(got.billable, tier.upto)
        expected += _rounded(max(0, upper - lower), tier.unit_price, price.currency)
        lower = tier.upto or lower
    assert Decimal(format_minor(got.amount, price.currency)) == expected


def _tier_index(price: Price, billable: int) -> int:
    return next(i for i, t in enumerate(price.tiers) if t.upto is None or billable <= t.upto)


@given(price=prices(Scheme.VOLUME), a=MICROS, b=MICROS)
def test_volume_is_monotone_within_a_tier(price: Price, a: int, b: int) -> None:
    low, high = sorted((a, b))
    first, second = charge(price, low), charge(price, high)
    if _tier_index(price, first.billable) == _tier_index(price, second.billable):
        assert first.amount <= second.amount
    # every billable unit is in the one tier the total falls in
    chosen = _tier_index(price, second.billable)
    assert [p.units for p in second.pieces] == [
        second.billable if i == chosen else 0 for i in range(len(price.tiers))
    ]
    tier = price.tiers[chosen]
    expected = _rounded(second.billable, tier.unit_price, price.currency)
    assert Decimal(format_minor(second.amount, price.currency)) == expected


@given(price=prices(), items=MICROS)
def test_included_units_are_never_billed(price: Price, items: int) -> None:
    got = charge(price, items)
    assert got.included == min(items, price.included)
    assert got.billable == max(0, items - price.included)
    if items <= price.included:
        assert got.amount == 0
        assert all(p.units == 0 for p in got.pieces)


@given(price=prices(Scheme.UNIT), items=MICROS)
def test_a_unit_price_is_units_times_price_rounded(price: Price, items: int) -> None:
    got = charge(price, items)
    expected = _rounded(got.billable, price.tiers[0].unit_price, price.currency)
    assert Decimal(format_minor(got.amount, price.currency)) == expected


# --------------------------------------------------------------------- the service on the fake


def test_prices_are_set_listed_overridden_and_deleted(
    ctx: Context[MemoryDatabase], op: Operation
) -> None:
    default = set_price(ctx, None, "rsync", "USD", unit_price="0.10")
    own = set_price(ctx, op, "rsync", "USD", tiers=["10:0.2", "inf:0.1"], included="1")
    set_price(ctx, None, "rsync", "EUR", unit_price="0.09")
    assert ctx.storage.prices_for(op.id, "USD") == {"rsync": own}
    assert ctx.storage.prices_for(op.id + 1, "USD") == {"rsync": default}
    assert len(list_prices(ctx, None)) == 3
    assert [scope for scope, _ in list_prices(ctx, op)].count(op.id) == 1
    delete_price(ctx, op, "rsync", "USD")
    assert ctx.storage.prices_for(op.id, "USD") == {"rsync": default}
    with pytest.raises(ConfigError, match="no price"):
        delete_price(ctx, op, "rsync", "USD")


@pytest.mark.parametrize(
    ("product", "currency", "message"),
    [("nope", "USD", "unknown product 'nope'"), ("rsync", "XYZ", "unknown currency 'XYZ'")],
)
def test_unknown_products_and_currencies_change_nothing(
    ctx: Context[MemoryDatabase], product: str, currency: str, message: str
) -> None:
    set_price(ctx, None, "rsync", "USD", unit_price="1")
    before = ctx.storage.all_prices()
    with pytest.raises(ConfigError, match=message):
        set_price(ctx, None, product, currency, unit_price="2")
    with pytest.raises(ConfigError, match="increasing order"):
        set_price(ctx, None, "rsync", "USD", tiers=["5:1", "4:1", "inf:1"])
    assert ctx.storage.all_prices() == before


@given(price=prices(), items=MICROS)
def test_the_amount_alone_is_the_charge_amount(price: Price, items: int) -> None:
    assert pricing.amount(price, items) == charge(price, items).amount
