"""The dashboard's pure parts and its services on the in-memory fake: session expiry, the
choice of language, chart geometry, sign-in rules and the overview's sorting."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes import MemoryDatabase
from tests.integration.support import FakeClock, ev
from voxmeter.domain import statements
from voxmeter.domain.catalog import Catalog
from voxmeter.domain.months import Month
from voxmeter.domain.sessions import MICROS, TOUCH_EVERY, Session
from voxmeter.domain.tenancy import Operation
from voxmeter.entrypoints.dashboard.charts import HAIRLINE, HEIGHT, WIDTH, bars
from voxmeter.entrypoints.dashboard.i18n import Formats, accepted
from voxmeter.service import dashboard_sessions as sessions
from voxmeter.service.admin_tokens import create_admin_token
from voxmeter.service.context import Context
from voxmeter.service.dashboard import SORT_KEYS, overview
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.months import close_month
from voxmeter.service.prices import set_price
from voxmeter.service.statements import every_total, month_statement
from voxmeter.service.tenancy import create_operation, create_token, revoke_token


def test_a_session_expires_after_its_idle_time_only() -> None:
    s = Session("tok_1", 1, created=0, last_seen=100 * MICROS)
    assert not s.expired(100 * MICROS + 3600 * MICROS, 3600)
    assert s.expired(100 * MICROS + 3600 * MICROS + 1, 3600)
    assert not s.expired(0, 3600)  # a clock gone back keeps it
    assert not s.needs_touch(100 * MICROS + TOUCH_EVERY - 1)
    assert s.needs_touch(100 * MICROS + TOUCH_EVERY)
    assert Session("adm_1", None, 0, 0).is_admin


@pytest.mark.parametrize(
    ("header", "chosen"),
    [
        ("es-CO,es;q=0.9,en;q=0.5", "es"),
        ("pt-BR", "pt-BR"),
        ("pt", "pt-BR"),
        ("fr-FR, en-GB;q=0.8", "en"),
        ("pt-PT", "pt-BR"),
        ("*", None),
        ("en;q=0.1, es;q=0.9", "es"),
        ("de, fr", None),
        ("", None),
        ("es;q=0", None),
        ("es;q=abc, en", "en"),
    ],
)
def test_accept_language_picks_the_best_language_spoken(header: str, chosen: str | None) -> None:
    assert accepted(header) == chosen


def test_numbers_and_amounts_keep_every_digit_in_each_language() -> None:
    assert Formats("en").number(Decimal("12345.125")) == "12,345.125"
    assert Formats("pt-BR").number(Decimal("12345.125")) == "12.345,125"
    assert Formats("es").number(Decimal("12345.000001")) == "12.345,000001"
    assert Formats("en").money("1234.50", "USD") == "$1,234.50"
    assert Formats("en").money("1234", "CLP").endswith("1,234")  # no minor unit
    assert Formats("en").month(Month(2026, 5)) == "May 2026"
    assert Formats("es").month(Month(2026, 5)) == "mayo de 2026"


@given(st.lists(st.decimals(min_value=0, max_value=10**9, places=6), min_size=1, max_size=31))
def test_chart_bars_fill_the_width_and_scale_to_the_largest_day(values: list[Decimal]) -> None:
    days = [date(2026, 5, 1) + timedelta(days=i) for i in range(len(values))]
    drawn = bars(days, values)
    assert [b.day for b in drawn] == days
    assert all(HAIRLINE <= b.height <= HEIGHT for b in drawn)
    assert all(abs(b.y + b.height - HEIGHT) < 1e-9 for b in drawn)
    assert drawn[-1].x + drawn[-1].width <= WIDTH
    peak = max(values)
    if peak > 0:
        tallest = max(drawn, key=lambda b: b.height)
        assert tallest.value == peak
        assert tallest.height == HEIGHT


def test_sign_in_rules_on_the_fake(ctx: Context[MemoryDatabase], op: Operation) -> None:
    token, secret = create_token(ctx, op, "browser", [])
    _, writer = create_token(ctx, op, "writer", ["usage:write"])
    assert sessions.sign_in(ctx, writer) is None
    opened = sessions.sign_in(ctx, secret)
    assert opened is not None
    assert sessions.current(ctx, opened[0], 60) == opened[1]
    assert sessions.current(ctx, opened[0] + "x", 60) is None
    revoke_token(ctx, token.id)
    assert sessions.current(ctx, opened[0], 60) is None
    admin, admin_secret = create_admin_token(ctx, "finance")
    opened = sessions.sign_in(ctx, admin_secret)
    assert opened is not None
    assert opened[1].token_id == admin.id
    assert opened[1].operation_id is None


def test_the_overview_sorts_by_each_key(ctx: Context[MemoryDatabase], clock: FakeClock) -> None:
    ops = [create_operation(ctx, name, "9901") for name in ("bravo", "alpha", "charlie")]
    for i, op in enumerate(ops):
        when = "2026-05-02T00:00:00Z"
        ingest_batch(ctx, op, [ev(f"e{i}", "ivr_minutes", when, str(10 * (i + 1)))])
    set_price(ctx, None, "ivr_minutes", "USD", unit_price="1")
    month = Month(2026, 5)
    rows = overview(ctx, month)
    assert [r.operation.name for r in rows] == ["alpha", "bravo", "charlie"]
    by_total = overview(ctx, month, "total", descending=True)
    assert [r.total for r in by_total] == sorted((r.total for r in rows), reverse=True)
    assert [r.total for r in by_total] == [Decimal(30), Decimal(20), Decimal(10)]
    assert all(r.products_used == 1 for r in rows)
    for key in SORT_KEYS:
        assert len(overview(ctx, month, key)) == 3


CATALOG = list(Catalog.load())


def test_every_total_equals_each_operations_statement(
    ctx: Context[MemoryDatabase], clock: FakeClock
) -> None:
    """Drafts, a month closed with its statement stored, and prices of the operation's own."""
    ctx = dataclasses.replace(ctx, grace_days=62)  # April still open, until closed below
    ops = [create_operation(ctx, name, "9901") for name in ("a", "b", "c")]
    for i, op in enumerate(ops):
        batch = [
            ev(f"{i}-1", "ivr_minutes", "2026-04-02T00:00:00Z", str(1000 * (i + 1))),
            ev(f"{i}-2", "ivr_minutes", "2026-05-02T00:00:00Z", str(1500 * (i + 1))),
            ev(f"{i}-3", "pbx_licenses", "2026-05-03T00:00:00Z", str(7 * i)),
        ]
        ingest_batch(ctx, op, batch)
    set_price(ctx, None, "ivr_minutes", "USD", tiers=["1000:0.05", "inf:0.03"], included="10")
    set_price(ctx, ops[1], "pbx_licenses", "USD", unit_price="2.5")
    close_month(ctx, ops[0], Month(2026, 4))
    for month in (Month(2026, 4), Month(2026, 5)):
        found = {t.operation.id: t for t in every_total(ctx, month)}
        for op in ops:
            full = statements.decode(month_statement(ctx, op, month.index))
            short = found[op.id]
            assert (short.status, short.total, short.forecast_total) == (
                full.status,
                full.total,
                full.forecast_total,
            )
            assert short.products_used == sum(1 for line in full.lines if line.items != "0")
