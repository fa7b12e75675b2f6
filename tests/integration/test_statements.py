"""Final statements in storage, on SQLite, PostgreSQL and the fake: stored in the closing
transaction, read back byte for byte whatever prices do afterwards."""

from __future__ import annotations

import json

from tests.integration.support import FakeClock, ev, month_index
from voxmeter.domain.months import Month
from voxmeter.domain.tenancy import Operation
from voxmeter.service.context import Context
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.months import close_month
from voxmeter.service.prices import delete_price, set_price
from voxmeter.service.statements import month_statement
from voxmeter.service.tenancy import update_operation


def test_a_final_statement_is_read_back_byte_for_byte(
    ctx: Context, op: Operation, clock: FakeClock
) -> None:
    clock.set("2026-05-01T12:00:00Z")
    set_price(ctx, None, "ivr_minutes", "USD", tiers=["10:0.5", "inf:0.25"], included="2")
    set_price(ctx, op, "rsync", "USD", unit_price="1.333333")
    ingest_batch(
        ctx,
        op,
        [
            ev("a", "ivr_minutes", "2026-04-03T00:00:00Z", "14.2"),
            ev("b", "rsync", "2026-04-04T00:00:00Z", "3"),
        ],
    )
    april = month_index("2026-04")
    assert json.loads(month_statement(ctx, op, april))["status"] == "draft"
    assert close_month(ctx, op, Month(2026, 4)) == [Month(2026, 4)]
    final = month_statement(ctx, op, april)
    body = json.loads(final)
    assert body["status"] == "final"
    lines = {line["api"]: line for line in body["lines"]}
    # 15 minutes, 2 free: 10 x 0.5 + 3 x 0.25; 3 x 1.333333 = 3.999999 -> 4.00
    assert (lines["ivr_minutes"]["billable"], lines["ivr_minutes"]["amount"]) == ("13", "5.75")
    assert lines["rsync"]["amount"] == "4"
    assert body["total"] == body["forecast_total"] == "9.75"

    set_price(ctx, None, "ivr_minutes", "USD", unit_price="99")
    delete_price(ctx, op, "rsync", "USD")
    update_operation(ctx, op, 5, "EUR")
    assert month_statement(ctx, op, april) == final
    assert month_statement(ctx, op, april) == final
