"""Helpers shared by the integration tests: a controllable clock, event builders, raw SQL."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import msgspec
import psycopg

from voxmeter.domain.months import Month, to_micros
from voxmeter.domain.quantities import format_micro
from voxmeter.domain.tenancy import Operation
from voxmeter.entrypoints.http.events import listed_row
from voxmeter.entrypoints.wire.codec import EventIn
from voxmeter.entrypoints.wire.listing import Listing
from voxmeter.service.context import Context
from voxmeter.service.figures import month_figures


def utc(text: str) -> datetime:
    """`2026-03-31T23:59:59Z`-style text (or any RFC 3339 with an offset) as an aware datetime."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert moment.tzinfo is not None, text
    return moment


class FakeClock:
    """A clock the tests move by hand; returns epoch microseconds like `system_clock`."""

    def __init__(self, start: str) -> None:
        self.now = to_micros(utc(start))

    def __call__(self) -> int:
        return self.now

    def set(self, when: str) -> None:
        self.now = to_micros(utc(when))

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta) // timedelta(microseconds=1)


def ev(
    event_id: str,
    product: str,
    time: str,
    quantity: str | int | None = None,
    subject: str | None = None,
) -> EventIn:
    """An event as the decoder would hand it over (quantity as an exact Decimal)."""
    return EventIn(
        id=event_id,
        product=product,
        time=utc(time),
        quantity=None if quantity is None else Decimal(str(quantity)),
        subject=subject,
    )


def month_index(text: str) -> int:
    return Month.parse(text).index


def figures(ctx: Context, op: Operation, month: str, apis: list[str] | None = None) -> dict:
    """Figures of a month as exact strings (format_micro), for the given or all products."""
    products = [p for p in ctx.catalog if apis is None or p.api in apis]
    raw = month_figures(ctx, op, products, month_index(month))
    return {api: format_micro(value) for api, value in raw.items()}


def fig(ctx: Context, op: Operation, api: str, month: str) -> str:
    """One product's figure in one month as a plain decimal string."""
    return figures(ctx, op, month, [api])[api]


def query(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    """Read the SQLite file directly, with a connection of the test's own."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


class Sql:
    """Raw SQL against a test database of either backend, with a connection of the test's own.

    Queries use SQLite's `?` placeholders (rewritten to `%s` for PostgreSQL, `%` escaped) and
    SQL both understand; integral NUMERIC results come back as int, as SQLite gives them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._pg: psycopg.Connection | None = None
        if url.startswith("sqlite:///"):
            self._path: Path | None = Path(url.removeprefix("sqlite:///"))
        else:
            self._path = None
            self._pg = psycopg.connect(url, autocommit=True, connect_timeout=3)

    def __call__(self, sql: str, args: tuple = ()) -> list[tuple]:
        if self._path is not None:
            return query(self._path, sql, args)
        assert self._pg is not None
        rows = self._pg.execute(sql.replace("%", "%%").replace("?", "%s"), args).fetchall()
        return [tuple(_plain(cell) for cell in row) for row in rows]

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()


def _plain(cell: object) -> object:
    if isinstance(cell, Decimal) and cell == cell.to_integral_value():
        return int(cell)
    return cell


def event_rows(sql: Sql, operation_id: int | None = None) -> int:
    if operation_id is None:
        return int(sql("SELECT count(*) FROM events")[0][0])
    return int(sql("SELECT count(*) FROM events WHERE operation_id = ?", (operation_id,))[0][0])


def page_rows(page: Listing) -> list[dict[str, object]]:
    """A listing page's events as the API writes them (`id`, `product`, `time`, ...)."""
    return [msgspec.structs.asdict(listed_row(e, page.zone)) for e in page.events]
