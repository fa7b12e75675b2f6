"""Statements: a month's usage priced, one line per catalog product (docs/behaviour.md,
Statements).

Every figure and amount is a plain decimal string. A final statement is encoded once, when its
month closes, and those bytes are what every later read returns, so its JSON encoding is part of
the domain: `encode` is the one way a statement becomes bytes.

A draft's forecast total follows the clock, everything else only the figures and prices: a
`Draft` is priced once per read of them and finished per request (`Draft.body`), with the same
bytes `encode` gives the whole statement. Lines are msgspec Structs that the garbage collector
does not track: an export builds hundreds of thousands of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import msgspec

from voxmeter.domain.catalog import Aggregation, Product
from voxmeter.domain.forecast import forecast
from voxmeter.domain.money import format_minor
from voxmeter.domain.prices import Price, Scheme, amount, charge
from voxmeter.domain.quantities import format_micro

DRAFT = "draft"
FINAL = "final"


class TierLine(msgspec.Struct, frozen=True, gc=False):
    upto: str
    """Cumulative billable units the tier ends at, or `inf`."""
    unit_price: str
    units: str
    amount: str


class Line(msgspec.Struct, frozen=True, gc=False):
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


class Statement(msgspec.Struct, frozen=True, gc=False):
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
            total += amount(price, figures.get(p.api, 0))
    return total


def _lines(
    products: Sequence[Product],
    figures: Mapping[str, int],
    prices: Mapping[str, Price],
    currency: str,
) -> tuple[list[Line], int]:
    """Every product's line, and their total in minor units."""
    lines: list[Line] = []
    total = 0
    for p in products:
        line, minor = _line(p, figures.get(p.api, 0), prices.get(p.api), currency)
        lines.append(line)
        total += minor
    return lines, total


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
    lines, total = _lines(products, figures, prices, currency)
    forecast_total = total if final else _priced_total(products, forecasts, prices)
    return Statement(
        operation,
        server,
        month,
        FINAL if final else DRAFT,
        currency,
        lines,
        format_minor(total, currency),
        format_minor(forecast_total, currency),
    )


_FORECAST_END = b'""}'
"""How an encoded statement with an empty forecast total ends: its value goes between the
quotes."""


@dataclass(frozen=True, slots=True)
class Draft:
    """A draft statement but for its forecast total, which `body(now)` and `at(now)` add."""

    statement: Statement | None
    """Every figure and amount, the forecast total left empty; None in a `compact` draft."""
    head: bytes
    """`statement` encoded up to the forecast total's value."""
    currency: str
    start: int
    end: int
    """The month in epoch microseconds: `[start, end)`."""
    priced: tuple[tuple[Aggregation, int, Price], ...]
    """Each priced product's aggregation, figure and price: what the forecast total adds."""

    def forecast_total(self, now: int) -> str:
        """The forecast of every priced product at `now`, priced and rounded as its line is."""
        total = 0
        for aggregation, items, price in self.priced:
            total += amount(price, forecast(aggregation, items, self.start, self.end, now))
        return format_minor(total, self.currency)

    def body(self, now: int) -> bytes:
        """The draft at `now`, encoded: the bytes `encode(self.at(now))` gives."""
        return b'%s%s"}' % (self.head, self.forecast_total(now).encode())

    def at(self, now: int) -> Statement:
        if self.statement is None:
            return decode(self.body(now))
        return msgspec.structs.replace(self.statement, forecast_total=self.forecast_total(now))

    def compact(self) -> Draft:
        """The draft without its Statement object, which takes several times the memory of
        the bytes that say the same: what a cache keeps."""
        return replace(self, statement=None)


def draft(
    *,
    operation: str,
    server: str,
    month: str,
    currency: str,
    products: Sequence[Product],
    figures: Mapping[str, int],
    prices: Mapping[str, Price],
    start: int,
    end: int,
) -> Draft:
    """The draft statement of the month `[start, end)` (see `build`), its forecast total to be
    added at the instant it is read."""
    lines, total = _lines(products, figures, prices, currency)
    statement = Statement(
        operation, server, month, DRAFT, currency, lines, format_minor(total, currency), ""
    )
    encoded = encode(statement)
    assert encoded.endswith(_FORECAST_END)
    priced = tuple(
        (p.aggregation, figures.get(p.api, 0), prices[p.api]) for p in products if p.api in prices
    )
    return Draft(statement, encoded[:-2], currency, start, end, priced)


_encoder = msgspec.json.Encoder()


def encode(statement: Statement) -> bytes:
    """The statement's JSON: keys in field order, no spaces."""
    return _encoder.encode(statement)


def decode(body: bytes) -> Statement:
    return msgspec.json.decode(body, type=Statement)
