"""Statements: a month's usage priced, one line per catalog product (docs/behaviour.md,
Statements).

Every figure and amount is a plain decimal string. A final statement is encoded once, when its
month closes, and those bytes are what every later read returns, so its JSON encoding is part of
the domain: `encode` is the one way a statement becomes bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import msgspec

from voxmeter.domain.catalog import Product
from voxmeter.domain.money import format_minor
from voxmeter.domain.prices import Price, Scheme, charge
from voxmeter.domain.quantities import format_micro

DRAFT = "draft"
FINAL = "final"


@dataclass(frozen=True, slots=True)
class TierLine:
    upto: str
    """Cumulative billable units the tier ends at, or `inf`."""
    unit_price: str
    units: str
    amount: str


@dataclass(frozen=True, slots=True)
class Line:
    api: str
    description: str
    unit: str
    items: str
    included: str
    billable: str
    unit_price: str
    """The price per unit of a flat price; empty for tiered prices and unpriced products."""
    tiers: list[TierLine]
    amount: str


@dataclass(frozen=True, slots=True)
class Statement:
    operation: str
    server: str
    month: str
    status: str
    currency: str
    lines: list[Line]
    total: str
    forecast_total: str
    """The forecast priced the same way; a final statement's equals its total."""


def _line(product: Product, items: int, price: Price | None, currency: str) -> tuple[Line, int]:
    """The product's line and its amount in minor units."""
    if price is None:
        text = format_micro(items)
        return Line(product.api, product.title, product.unit, text, "0", text, "", [], "0"), 0
    got = charge(price, items)
    tiers: list[TierLine] = []
    unit_price = ""
    if price.scheme is Scheme.UNIT:
        unit_price = format_micro(price.tiers[0].unit_price)
    else:
        tiers = [
            TierLine(
                "inf" if p.tier.upto is None else format_micro(p.tier.upto),
                format_micro(p.tier.unit_price),
                format_micro(p.units),
                format_minor(p.amount, currency),
            )
            for p in got.pieces
        ]
    line = Line(
        product.api,
        product.title,
        product.unit,
        format_micro(items),
        format_micro(got.included),
        format_micro(got.billable),
        unit_price,
        tiers,
        format_minor(got.amount, currency),
    )
    return line, got.amount


def _priced_total(
    products: Sequence[Product], figures: Mapping[str, int], prices: Mapping[str, Price]
) -> int:
    total = 0
    for p in products:
        price = prices.get(p.api)
        if price is not None:
            total += charge(price, figures.get(p.api, 0)).amount
    return total


def build(
    *,
    operation: str,
    server: str,
    month: str,
    final: bool,
    currency: str,
    products: Sequence[Product],
    figures: Mapping[str, int],
    forecasts: Mapping[str, int],
    prices: Mapping[str, Price],
) -> Statement:
    """The statement of a month: `figures` and `forecasts` in micro-units per product, `prices`
    those in effect in `currency`. The total is the sum of the rounded lines."""
    lines: list[Line] = []
    total = 0
    for p in products:
        line, minor = _line(p, figures.get(p.api, 0), prices.get(p.api), currency)
        lines.append(line)
        total += minor
    forecast = total if final else _priced_total(products, forecasts, prices)
    return Statement(
        operation,
        server,
        month,
        FINAL if final else DRAFT,
        currency,
        lines,
        format_minor(total, currency),
        format_minor(forecast, currency),
    )


def totals(
    *,
    final: bool,
    currency: str,
    products: Sequence[Product],
    figures: Mapping[str, int],
    forecasts: Mapping[str, int],
    prices: Mapping[str, Price],
) -> tuple[str, str]:
    """`build(...)`'s `total` and `forecast_total`, without writing its lines: only priced
    products add to either, so only they are charged (a summary of many operations)."""
    total = _priced_total(products, figures, prices)
    forecast = total if final else _priced_total(products, forecasts, prices)
    return format_minor(total, currency), format_minor(forecast, currency)


_encoder = msgspec.json.Encoder()


def encode(statement: Statement) -> bytes:
    """The statement's JSON: keys in field order, no spaces."""
    return _encoder.encode(statement)


def decode(body: bytes) -> Statement:
    return msgspec.json.decode(body, type=Statement)
