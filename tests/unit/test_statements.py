"""Statements (docs/behaviour.md, Statements): lines for every product, totals of rounded lines,
drafts that follow prices and usage, finals stored once when the month closes."""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from tests.fakes import MemoryDatabase
from tests.integration.support import FakeClock, ev, month_index
from voxmeter.domain import statements
from voxmeter.domain.catalog import Catalog
from voxmeter.domain.months import Month
from voxmeter.domain.prices import make_price
from voxmeter.domain.quantities import MICRO
from voxmeter.domain.tenancy import Operation
from voxmeter.service.context import Context
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.months import close_due_months, close_month
from voxmeter.service.prices import set_price
from voxmeter.service.statements import all_statements, month_statement

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
