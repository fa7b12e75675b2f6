"""Prices and what a month's usage costs under them (docs/behaviour.md, Prices and statements).

Exact: units are micro-units, unit prices micro-units of the currency (at most 6 decimals each),
so every tier's amount is an integer in 10^-12 of the currency, rounded once, half-even, to the
currency's minor unit. A line's amount is the sum of its tiers' rounded amounts, so an invoice
reader can add them up.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from itertools import pairwise

from voxmeter.domain.money import round_amount
from voxmeter.domain.quantities import QuantityError, to_micro

INF = "inf"


class PriceError(ValueError):
    """A price that cannot be used; the message is shown to the caller."""


class Scheme(enum.StrEnum):
    """`unit`: one price per billable unit. `graduated`: each tier's units at its own price.
    `volume`: every billable unit at the price of the tier the billable total falls in."""

    UNIT = "unit"
    GRADUATED = "graduated"
    VOLUME = "volume"


@dataclass(frozen=True, slots=True)
class Tier:
    upto: int | None
    """The tier's last billable unit, counted from the first (micro-units); None: no end."""
    unit_price: int
    """Micro-units of the currency per unit."""


@dataclass(frozen=True, slots=True)
class Price:
    product: str
    currency: str
    scheme: Scheme
    tiers: tuple[Tier, ...]
    included: int = 0
    """Free units (micro-units), counted first."""


@dataclass(frozen=True, slots=True)
class Piece:
    """What one tier contributes to a line: its units and their rounded amount (minor units)."""

    tier: Tier
    units: int
    amount: int


@dataclass(frozen=True, slots=True)
class Charge:
    """A month's usage of one product under its price."""

    included: int
    billable: int
    pieces: tuple[Piece, ...]
    amount: int
    """Minor units of the currency: the sum of the pieces' amounts."""


def decimal_micro(text: str, what: str) -> int:
    """A non-negative decimal with at most 6 decimal places, in micro-units, or PriceError."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation as exc:
        raise PriceError(f"{what} {text!r} is not a decimal number") from exc
    try:
        return to_micro(value)
    except QuantityError as exc:
        raise PriceError(f"{what} {text!r} {exc}") from exc


def tier_of(text: str) -> Tier:
    """`UPTO:PRICE`, UPTO a number of units or `inf`."""
    upto_text, sep, price_text = text.partition(":")
    if not sep:
        raise PriceError(f"tier {text!r} must be UPTO:PRICE, e.g. 1000:0.05 or inf:0.03")
    price = decimal_micro(price_text, "tier price")
    if upto_text.strip().lower() == INF:
        return Tier(None, price)
    upto = decimal_micro(upto_text, "tier bound")
    if upto == 0:
        raise PriceError(f"tier bound in {text!r} must be above 0")
    return Tier(upto, price)


def make_price(
    product: str,
    currency: str,
    unit_price: str | None,
    tiers: list[str],
    volume_tiers: list[str],
    included: str | None,
) -> Price:
    """A price from its textual parts, checked whole: one of a unit price, graduated tiers or
    volume tiers; tiers in increasing order of their bounds, the last one `inf`."""
    given = [bool(unit_price is not None), bool(tiers), bool(volume_tiers)]
    if sum(given) != 1:
        raise PriceError("give exactly one of --unit-price, --tier ... or --volume-tier ...")
    free = 0 if included is None else decimal_micro(included, "included units")
    if unit_price is not None:
        one = Tier(None, decimal_micro(unit_price, "unit price"))
        return Price(product, currency, Scheme.UNIT, (one,), free)
    scheme = Scheme.GRADUATED if tiers else Scheme.VOLUME
    parsed = tuple(tier_of(t) for t in (tiers or volume_tiers))
    check_tiers(parsed)
    return Price(product, currency, scheme, parsed, free)


def check_tiers(tiers: tuple[Tier, ...]) -> None:
    if tiers[-1].upto is not None:
        raise PriceError("the last tier must be inf (e.g. inf:0.03)")
    bounds = [t.upto for t in tiers[:-1]]
    if None in bounds:
        raise PriceError("only the last tier may be inf")
    ints = [b for b in bounds if b is not None]
    if any(later <= earlier for earlier, later in pairwise(ints)):
        raise PriceError("tiers must be given in increasing order of their bounds")


def charge(price: Price, items: int) -> Charge:
    """What `items` (micro-units) cost: included units first, then the billable rest."""
    included = min(items, price.included)
    billable = items - included
    if price.scheme is Scheme.VOLUME:
        chosen = next(i for i, t in enumerate(price.tiers) if t.upto is None or billable <= t.upto)
        units = [billable if i == chosen else 0 for i in range(len(price.tiers))]
    else:
        units = _graduated_units(price.tiers, billable)
    pieces = tuple(_piece(price, t, n) for t, n in zip(price.tiers, units, strict=True))
    return Charge(included, billable, pieces, sum(p.amount for p in pieces))


def amount(price: Price, items: int) -> int:
    """`charge(price, items).amount` without its pieces: what a forecast costs, worked out at
    every read of a draft statement."""
    billable = items - min(items, price.included)
    currency = price.currency
    if price.scheme is Scheme.VOLUME:
        tier = next(t for t in price.tiers if t.upto is None or billable <= t.upto)
        return round_amount(billable * tier.unit_price, currency)
    total = 0
    lower = 0
    for t in price.tiers:
        top = billable if t.upto is None else min(billable, t.upto)
        if top > lower:
            total += round_amount((top - lower) * t.unit_price, currency)
        if t.upto is not None:
            lower = t.upto
    return total


def _graduated_units(tiers: tuple[Tier, ...], billable: int) -> list[int]:
    """How many of the billable units fall in each tier, in order."""
    units: list[int] = []
    lower = 0
    for t in tiers:
        top = billable if t.upto is None else min(billable, t.upto)
        units.append(max(0, top - lower))
        if t.upto is not None:
            lower = t.upto
    return units


def _piece(price: Price, tier: Tier, units: int) -> Piece:
    return Piece(tier, units, round_amount(units * tier.unit_price, price.currency))
