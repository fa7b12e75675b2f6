"""Statements (docs/behaviour.md, Statements): lines for every product, totals of rounded lines,
drafts that follow prices and usage, finals stored once when the month closes."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes import MemoryDatabase
from tests.integration.support import FakeClock, ev, month_index
from voxmeter.domain import statements
from voxmeter.domain.catalog import Catalog
from voxmeter.domain.forecast import forecast
from voxmeter.domain.months import Month, calendar
from voxmeter.domain.prices import make_price
from voxmeter.domain.quantities import MICRO
from voxmeter.domain.tenancy import Operation
from voxmeter.service.context import Context
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.months import close_due_months, close_month
from voxmeter.service.prices import set_price
from voxmeter.service.statement_cache import StatementCache
from voxmeter.service.statements import all_statements, encoded, month_statement

CATALOG = list(Catalog.load())


def test_every_product_has_a_line_in_catalog_order_and_the_total_adds_the_lines() -> None:
    prices = {
        "ivr_minutes": make_price("ivr_minutes", "USD", None, ["1000:0.05", "inf:0.03"], [], None),
        "rsync": make_price("rsync", "USD", "0.125", [], [], "1"),
    }
    figures = {"ivr_minutes": 1500 * MICRO, "rsync": 4 * MICRO, "vision": 9 * MICRO}
    got = statements.build(
        operation="acme",
        server="9901",
        month="2026-05",
        final=False,
        currency="USD",
        products=CATALOG,
        figures=figures,
        forecasts={**figures, "rsync": 9 * MICRO},
        prices=prices,
    )
    assert [line.api for line in got.lines] == [p.api for p in CATALOG]
    lines = {line.api: line for line in got.lines}
    assert lines["ivr_minutes"].amount == "65"
    assert lines["ivr_minutes"].unit_price == ""
    assert [(t.upto, t.unit_price, t.units, t.amount) for t in lines["ivr_minutes"].tiers] == [
        ("1000", "0.05", "1000", "50"),
        ("inf", "0.03", "500", "15"),
    ]
    assert (lines["rsync"].included, lines["rsync"].billable) == ("1", "3")
    assert (lines["rsync"].unit_price, lines["rsync"].amount) == ("0.125", "0.38")
    assert lines["rsync"].tiers == []
    assert (lines["vision"].items, lines["vision"].unit_price, lines["vision"].amount) == (
        "9",
        "",
        "0",
    )
    assert got.total == "65.38"
    assert got.forecast_total == "66"  # rsync: 8 billable x 0.125 = 1
    assert got.status == "draft"
    body = json.loads(statements.encode(got))
    assert list(body) == [
        "operation",
        "server",
        "month",
        "status",
        "currency",
        "lines",
        "total",
        "forecast_total",
    ]
    assert list(body["lines"][0]) == [
        "api",
        "description",
        "unit",
        "items",
        "included",
        "billable",
        "unit_price",
        "tiers",
        "amount",
    ]


@given(
    figures=st.dictionaries(
        st.sampled_from([p.api for p in CATALOG]), st.integers(0, 10**6 * MICRO)
    ),
    unit=st.integers(0, 10 * MICRO),
    currency=st.sampled_from(["USD", "CLP", "BHD"]),
)
def test_the_total_is_the_sum_of_the_rounded_lines(
    figures: dict[str, int], unit: int, currency: str
) -> None:
    text = str(Decimal(unit) / MICRO)
    prices = {p.api: make_price(p.api, currency, text, [], [], None) for p in CATALOG[::2]}
    got = statements.build(
        operation="a",
        server="9901",
        month="2026-05",
        final=True,
        currency=currency,
        products=CATALOG,
        figures=figures,
        forecasts=figures,
        prices=prices,
    )
    assert Decimal(got.total) == sum(Decimal(line.amount) for line in got.lines)
    assert got.forecast_total == got.total
    assert statements.decode(statements.encode(got)) == got


# --------------------------------------------------------------------- the service on the fake


def _status(body: bytes) -> str:
    return str(json.loads(body)["status"])


def test_a_closed_month_keeps_the_statement_it_closed_with(
    ctx: Context[MemoryDatabase], op: Operation, clock: FakeClock
) -> None:
    set_price(ctx, None, "rsync", "USD", unit_price="2")
    clock.set("2026-05-01T12:00:00Z")
    ingest_batch(ctx, op, [ev("a", "rsync", "2026-04-10T00:00:00Z", "3")])
    april = month_index("2026-04")
    draft = month_statement(ctx, op, april)
    assert (_status(draft), json.loads(draft)["total"]) == ("draft", "6")
    set_price(ctx, None, "rsync", "USD", unit_price="3")
    assert json.loads(month_statement(ctx, op, april))["total"] == "9"  # a draft follows prices
    close_month(ctx, op, Month(2026, 4))
    final = month_statement(ctx, op, april)
    assert (_status(final), json.loads(final)["total"]) == ("final", "9")
    set_price(ctx, None, "rsync", "USD", unit_price="100")
    set_price(ctx, op, "rsync", "USD", tiers=["1:1", "inf:1"])
    assert month_statement(ctx, op, april) == final
    assert month_statement(ctx, op, april) == final
    assert ctx.storage.final_statement(op.id, april) == final


def test_the_grace_period_close_stores_the_statement_too(
    ctx: Context[MemoryDatabase], op: Operation, clock: FakeClock
) -> None:
    set_price(ctx, None, "interactions", "USD", unit_price="0.5")
    clock.set("2026-05-02T00:00:00Z")
    ingest_batch(ctx, op, [ev("a", "interactions", "2026-04-30T23:00:00Z")])
    clock.set("2026-05-04T00:00:00Z")
    assert close_due_months(ctx) == {"9901/acme": [Month(2026, 4)]}
    stored = ctx.storage.final_statement(op.id, month_index("2026-04"))
    assert stored is not None
    assert json.loads(stored)["total"] == "0.5"
    set_price(ctx, None, "interactions", "USD", unit_price="7")
    assert month_statement(ctx, op, month_index("2026-04")) == stored


def test_export_lists_every_operation_in_its_currency(
    ctx: Context[MemoryDatabase], op: Operation
) -> None:
    from voxmeter.service.tenancy import create_operation

    create_operation(ctx, "zeta", "9901", currency="CLP")
    set_price(ctx, None, "rsync", "CLP", unit_price="900")
    bodies = [json.loads(b) for b in all_statements(ctx, Month(2026, 5))]
    assert [(b["operation"], b["currency"], b["status"]) for b in bodies] == [
        ("acme", "USD", "draft"),
        ("zeta", "CLP", "draft"),
    ]


# ------------------------------------------------------- drafts: the forecast added per read


@given(
    figures=st.dictionaries(
        st.sampled_from([p.api for p in CATALOG]), st.integers(0, 10**6 * MICRO)
    ),
    unit=st.integers(0, 10 * MICRO),
    currency=st.sampled_from(["USD", "CLP", "BHD"]),
    elapsed=st.integers(0, 40 * 86_400 * MICRO),
    name=st.text(min_size=1, max_size=8),
)
def test_a_draft_finished_at_an_instant_is_the_statement_built_then(
    figures: dict[str, int], unit: int, currency: str, elapsed: int, name: str
) -> None:
    """A draft is priced once and its forecast total added per read: the bytes and the
    statement are the ones `build` and `encode` give with the forecasts of that instant."""
    text = str(Decimal(unit) / MICRO)
    volume = [f"5:{text}", "inf:0.5"]
    prices = {"interactions": make_price("interactions", currency, None, [], volume, "1")}
    prices |= {p.api: make_price(p.api, currency, text, [], [], None) for p in CATALOG[::3]}
    start, end = calendar("UTC").window(month_index("2026-05"))
    now = start + elapsed
    common = {
        "operation": name,
        "server": "9901",
        "month": "2026-05",
        "currency": currency,
        "products": CATALOG,
        "figures": figures,
        "prices": prices,
    }
    forecasts = {
        p.api: forecast(p.aggregation, figures.get(p.api, 0), start, end, now) for p in CATALOG
    }
    whole = statements.build(final=False, forecasts=forecasts, **common)  # type: ignore[arg-type]
    draft = statements.draft(start=start, end=end, **common)  # type: ignore[arg-type]
    assert draft.at(now) == whole
    assert draft.body(now) == statements.encode(whole)
    assert statements.decode(draft.body(now)) == whole
    kept = draft.compact()  # as a cache keeps it: the bytes alone say the same
    assert kept.statement is None
    assert (kept.at(now), kept.body(now)) == (whole, draft.body(now))


def test_a_statement_encodes_as_compact_json_of_its_fields_in_order() -> None:
    """The bytes a final statement is stored as: no spaces, keys in field order, text as is."""
    price = make_price("rsync", "USD", None, ["1:0.5", "inf:0.25"], [], None)
    got = statements.build(
        operation='a "quoted" café',
        server="9901",
        month="2026-05",
        final=True,
        currency="USD",
        products=CATALOG,
        figures={"rsync": 3 * MICRO},
        forecasts={},
        prices={"rsync": price},
    )
    expected = json.dumps(
        msgspec.to_builtins(got), separators=(",", ":"), ensure_ascii=False
    ).encode()
    assert statements.encode(got) == expected
    assert list(json.loads(expected)["lines"][0]) == [f for f in statements.Line.__struct_fields__]


# ------------------------------------------------------------------ statements kept per version


def test_a_kept_statement_follows_usage_prices_and_the_close(
    ctx: Context[MemoryDatabase], op: Operation, clock: FakeClock
) -> None:
    cache = StatementCache()
    clock.set("2026-05-01T12:00:00Z")
    april = month_index("2026-04")
    set_price(ctx, None, "rsync", "USD", unit_price="2")
    ingest_batch(ctx, op, [ev("a", "rsync", "2026-04-10T00:00:00Z", "3")])
    first = cache.read(ctx, op, april)
    assert cache.lookup(ctx, op, april)[1] == first.compact()  # type: ignore[union-attr]
    assert encoded(first, clock()) == month_statement(ctx, op, april)
    ingest_batch(ctx, op, [ev("b", "rsync", "2026-04-11T00:00:00Z", "1")])
    assert cache.lookup(ctx, op, april)[1] is None
    assert json.loads(encoded(cache.read(ctx, op, april), clock()))["total"] == "8"
    set_price(ctx, None, "rsync", "USD", unit_price="3")
    assert json.loads(encoded(cache.read(ctx, op, april), clock()))["total"] == "12"
    close_month(ctx, op, Month(2026, 4))
    final = cache.read(ctx, op, april)
    assert final == ctx.storage.final_statement(op.id, april)
    assert cache.lookup(ctx, op, april)[1] is final


def test_a_kept_draft_forecasts_at_each_read(
    ctx: Context[MemoryDatabase], op: Operation, clock: FakeClock
) -> None:
    cache = StatementCache()
    set_price(ctx, None, "interactions", "USD", unit_price="1")
    clock.set("2026-05-02T00:00:00Z")
    ingest_batch(ctx, op, [ev(f"e{i}", "interactions", "2026-05-01T12:00:00Z") for i in range(4)])
    may = month_index("2026-05")
    early = encoded(cache.read(ctx, op, may), clock())
    assert early == month_statement(ctx, op, may)
    clock.set("2026-05-16T00:00:00Z")
    later = cache.lookup(ctx, op, may)[1]
    assert later is not None  # nothing changed in storage: the same draft
    assert encoded(later, clock()) == month_statement(ctx, op, may)
    assert (
        json.loads(encoded(later, clock()))["forecast_total"] != json.loads(early)["forecast_total"]
    )


def test_a_renamed_operation_is_not_answered_with_its_old_statement(
    ctx: Context[MemoryDatabase], op: Operation, clock: FakeClock
) -> None:
    cache = StatementCache()
    clock.set("2026-05-02T00:00:00Z")
    may = month_index("2026-05")
    cache.read(ctx, op, may)
    renamed = dataclasses.replace(op, name="renamed", currency="CLP")
    assert cache.lookup(ctx, renamed, may)[1] is None
    body = json.loads(encoded(cache.read(ctx, renamed, may), clock()))
    assert (body["operation"], body["currency"]) == ("renamed", "CLP")
