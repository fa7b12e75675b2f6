"""Statements as CSV for invoicing: one row per line, the operation and month on every row."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from voxmeter.domain.statements import Statement, TierLine

HEADER = (
    "operation",
    "server",
    "month",
    "status",
    "currency",
    "api",
    "description",
    "unit",
    "items",
    "included",
    "billable",
    "unit_price",
    "tiers",
    "amount",
    "total",
    "forecast_total",
)


def tiers_text(tiers: Iterable[TierLine]) -> str:
    """`UPTO:PRICE:UNITS:AMOUNT` per tier, space-separated (empty for flat or no price)."""
    return " ".join(f"{t.upto}:{t.unit_price}:{t.units}:{t.amount}" for t in tiers)


def to_csv(statements: Iterable[Statement]) -> str:
    """Every statement's lines under one header (RFC 4180 quoting, CRLF line ends)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    for s in statements:
        head = (s.operation, s.server, s.month, s.status, s.currency)
        tail = (s.total, s.forecast_total)
        writer.writerows(
            [
                (
                    *head,
                    line.api,
                    line.description,
                    line.unit,
                    line.items,
                    line.included,
                    line.billable,
                    line.unit_price,
                    tiers_text(line.tiers) if line.tiers else "",
                    line.amount,
                    *tail,
                )
                for line in s.lines
            ]
        )
    return out.getvalue()
