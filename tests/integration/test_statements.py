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
from voxmeter.service.statement_cache import StatementCache
from voxmeter.service.statements import all_statements, encoded, month_statement
from voxmeter.service.tenancy import create_operation, update_operation


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


def test_the_export_gives_each_operation_the_statement_it_reads_alone(
    ctx: Context, op: Operation, clock: FakeClock
) -> None:
    """Bulk reads (a few statements for every operation) against the per-operation path: open
    and closed months, levels carried from earlier months, own prices, other currencies, an
    operation without any usage."""
    clock.set("2026-04-02T12:00:00Z")
    other = create_operation(ctx, "globex", "9901", "Asia/Kathmandu", currency="CLP")
    idle = create_operation(ctx, "initech", "0042", "UTC")
    ingest_batch(ctx, op, [ev("l1", "agent_script", "2026-03-30T00:00:00Z", "4")])
    ingest_batch(ctx, other, [ev("l2", "agent_script", "2026-03-30T00:00:00Z", "2")])
    clock.set("2026-05-01T12:00:00Z")
    for target in (op, other):
        ingest_batch(
            ctx,
            target,
            [
                ev("a", "ivr_minutes", "2026-04-03T00:00:00Z", "14.2"),
                ev("b", "interactions", "2026-04-04T00:00:00Z"),
                ev("c", "rsync", "2026-05-01T00:00:00Z", "2"),
            ],
        )
    set_price(ctx, None, "ivr_minutes", "USD", tiers=["10:0.5", "inf:0.25"], included="2")
    set_price(ctx, None, "agent_script", "CLP", unit_price="5000")
    set_price(ctx, other, "interactions", "CLP", volume_tiers=["1:900", "inf:800"])
    set_price(ctx, idle, "rsync", "USD", unit_price="3")
    close_month(ctx, other, Month(2026, 4))
    for month in (Month(2026, 3), Month(2026, 4), Month(2026, 5)):
        alone = [month_statement(ctx, o, month.index) for o in ctx.storage.operations()]
        assert all_statements(ctx, month) == alone, month
    statuses = [json.loads(b)["status"] for b in all_statements(ctx, Month(2026, 4))]
    assert sorted(statuses) == ["draft", "draft", "final"]


def test_a_kept_statement_is_read_again_after_usage_or_a_price_changes(
    ctx: Context, op: Operation, clock: FakeClock
) -> None:
    """The storage version covers prices as well as figures, on every backend: a statement kept
    under it is never answered after either has changed."""
    cache = StatementCache()
    clock.set("2026-05-01T12:00:00Z")
    april = month_index("2026-04")
    ingest_batch(ctx, op, [ev("a", "rsync", "2026-04-03T00:00:00Z", "3")])
    set_price(ctx, None, "rsync", "USD", unit_price="2")

    def total() -> str:
        body = encoded(cache.read(ctx, op, april), clock())
        assert body == month_statement(ctx, op, april)
        return str(json.loads(body)["total"])

    assert total() == "6"
    assert cache.lookup(ctx, op, april)[1] is not None
    set_price(ctx, op, "rsync", "USD", unit_price="5")
    assert cache.lookup(ctx, op, april)[1] is None
    assert total() == "15"
    delete_price(ctx, op, "rsync", "USD")
    assert total() == "6"
    ingest_batch(ctx, op, [ev("b", "rsync", "2026-04-04T00:00:00Z", "1")])
    assert total() == "8"
    close_month(ctx, op, Month(2026, 4))
    assert cache.read(ctx, op, april) == ctx.storage.final_statement(op.id, april)
