"""Every aggregation kind, end to end: service -> SQLite meters -> month_figures."""

from __future__ import annotations

from decimal import Decimal

from tests.integration.support import FakeClock, ev, fig, figures, month_index
from voxmeter.domain.catalog import Catalog
from voxmeter.domain.quantities import from_micro
from voxmeter.domain.tenancy import Operation
from voxmeter.service.context import Context
from voxmeter.service.figures import month_figures
from voxmeter.service.ingest import ingest_batch


def test_sum_is_exact_decimal(ctx: Context, op: Operation) -> None:
    ingest_batch(
        ctx,
        op,
        [
            ev("s1", "rsync", "2026-05-01T00:00:00Z", "1.5"),
            ev("s2", "rsync", "2026-05-02T00:00:00Z", "2.25"),
            ev("s3", "rsync", "2026-05-03T00:00:00Z", "0.000001"),
            ev("s4", "rsync", "2026-05-04T00:00:00Z", "0"),
        ],
    )
    # Binary floats would give 0.1 + 0.2 != 0.3; ten events of 0.1 plus 0.2 must be exact.
    ingest_batch(
        ctx, op, [ev(f"t{i}", "tts_chars", "2026-05-05T00:00:00Z", "0.1") for i in range(10)]
    )
    ingest_batch(ctx, op, [ev("t-last", "tts_chars", "2026-05-05T00:00:00Z", "0.2")])
    assert fig(ctx, op, "rsync", "2026-05") == "3.750001"
    assert fig(ctx, op, "tts_chars", "2026-05") == "1.2"
    raw = month_figures(ctx, op, [ctx.catalog.get("rsync")], month_index("2026-05"))
    assert from_micro(raw["rsync"]) == Decimal("3.750001")


def test_sum_round_up_rounds_each_event_up(ctx: Context, op: Operation) -> None:
    ingest_batch(
        ctx,
        op,
        [
            ev("i1", "ivr_minutes", "2026-05-01T00:00:00Z", "0.1"),
            ev("i2", "ivr_minutes", "2026-05-01T00:01:00Z", "2.0"),
            ev("i3", "ivr_minutes", "2026-05-01T00:02:00Z", "2.01"),
        ],
    )
    assert fig(ctx, op, "ivr_minutes", "2026-05") == "6"  # 1 + 2 + 3
    ingest_batch(
        ctx,
        op,
        [
            ev("i4", "ivr_minutes", "2026-05-02T00:00:00Z", "0.000001"),
            ev("i5", "ivr_minutes", "2026-05-02T00:00:00Z", "0"),
            ev("i6", "ivr_minutes", "2026-05-02T00:00:00Z", "7"),
        ],
    )
    assert fig(ctx, op, "ivr_minutes", "2026-05") == "14"  # + 1 + 0 + 7
    # Per event, not on the month's total: 10 x 0.1 minutes bill 10 minutes, not 1.
    ingest_batch(
        ctx, op, [ev(f"r{i}", "rec_minutes", "2026-05-03T00:00:00Z", "0.1") for i in range(10)]
    )
    assert fig(ctx, op, "rec_minutes", "2026-05") == "10"


def test_count_defaults_to_one_per_event(ctx: Context, op: Operation) -> None:
    ingest_batch(
        ctx,
        op,
        [
            ev("c1", "interactions", "2026-05-01T00:00:00Z"),
            ev("c2", "interactions", "2026-05-01T00:00:00Z"),
            ev("c3", "interactions", "2026-05-01T00:00:00Z", 5),
            ev("c4", "interactions", "2026-05-01T00:00:00Z", "2.000"),
            ev("c5", "ivr_calls", "2026-05-01T00:00:00Z"),
        ],
    )
    assert figures(ctx, op, "2026-05", ["interactions", "ivr_calls", "asr_calls"]) == {
        "interactions": "9",
        "ivr_calls": "1",
        "asr_calls": "0",
    }


def test_max_carries_the_last_level_forward_to_every_later_month(
    ctx: Context, op: Operation, clock: FakeClock
) -> None:
    clock.set("2026-03-10T00:00:00Z")
    ingest_batch(ctx, op, [ev("l1", "agent_script", "2026-03-05T09:00:00Z", "5")])
    assert fig(ctx, op, "agent_script", "2026-03") == "5"
    assert fig(ctx, op, "agent_script", "2026-02") == "0"  # nothing before it

    clock.set("2026-08-10T00:00:00Z")
    for month in ("2026-04", "2026-05", "2026-06", "2026-07", "2026-08"):
        assert fig(ctx, op, "agent_script", month) == "5", month
    assert fig(ctx, op, "chat_licenses", "2026-08") == "0"


def test_max_is_the_peak_of_the_month_and_the_last_level_carries(
    ctx: Context, op: Operation, clock: FakeClock
) -> None:
    clock.set("2026-03-10T00:00:00Z")
    ingest_batch(ctx, op, [ev("l0", "pbx_licenses", "2026-03-05T00:00:00Z", "5")])
    clock.set("2026-05-26T00:00:00Z")
    ingest_batch(
        ctx,
        op,
        [
            ev("l1", "pbx_licenses", "2026-05-20T10:00:00Z", "12"),
            ev("l2", "pbx_licenses", "2026-05-25T10:00:00Z", "8"),
        ],
    )
    assert fig(ctx, op, "pbx_licenses", "2026-04") == "5"
    assert fig(ctx, op, "pbx_licenses", "2026-05") == "12"
    clock.set("2026-07-02T00:00:00Z")
    assert fig(ctx, op, "pbx_licenses", "2026-06") == "8"
    assert fig(ctx, op, "pbx_licenses", "2026-07") == "8"

    # A level below the carried one: the month started at 8, so its figure is 8; then 3 carries.
    ingest_batch(ctx, op, [ev("l3", "pbx_licenses", "2026-07-01T12:00:00Z", "3")])
    assert fig(ctx, op, "pbx_licenses", "2026-07") == "8"
    clock.set("2026-08-02T00:00:00Z")
    assert fig(ctx, op, "pbx_licenses", "2026-08") == "3"


def test_max_out_of_order_arrival_keeps_the_latest_level_by_time(
    ctx: Context, op: Operation, clock: FakeClock
) -> None:
    clock.set("2026-05-26T00:00:00Z")
    # The lowering (25th) arrives first, the raise (20th) late: the carried level is still 8.
    ingest_batch(ctx, op, [ev("late-8", "wp_connectors", "2026-05-25T00:00:00Z", "8")])
    ingest_batch(ctx, op, [ev("late-12", "wp_connectors", "2026-05-20T00:00:00Z", "12")])
    ingest_batch(ctx, op, [ev("early-2", "wp_connectors", "2026-05-02T00:00:00Z", "2")])
    assert fig(ctx, op, "wp_connectors", "2026-05") == "12"
    clock.set("2026-06-05T00:00:00Z")
    assert fig(ctx, op, "wp_connectors", "2026-06") == "8"


def test_max_accepts_decimal_levels(ctx: Context, op: Operation, clock: FakeClock) -> None:
    ingest_batch(
        ctx,
        op,
        [
            ev("g1", "amazon_s3", "2026-05-01T00:00:00Z", "10.5"),
            ev("g2", "amazon_s3", "2026-05-02T00:00:00Z", "10.500001"),
            ev("g3", "amazon_s3", "2026-05-03T00:00:00Z", "3.25"),
        ],
    )
    assert fig(ctx, op, "amazon_s3", "2026-05") == "10.500001"
    clock.set("2026-06-01T00:00:00Z")
    assert fig(ctx, op, "amazon_s3", "2026-06") == "3.25"


def test_unique_counts_distinct_subjects_per_month(
    make_ctx, op: Operation, unique_catalog: Catalog, clock: FakeClock
) -> None:
    ctx = make_ctx(catalog=unique_catalog)
    assert unique_catalog.get("active_agents").aggregation.value == "unique"
    ingest_batch(
        ctx,
        op,
        [
            ev("u1", "active_agents", "2026-05-01T00:00:00Z", subject="alice"),
            ev("u2", "active_agents", "2026-05-02T00:00:00Z", subject="bob"),
            ev("u3", "active_agents", "2026-05-03T00:00:00Z", subject="alice"),
        ],
    )
    assert fig(ctx, op, "active_agents", "2026-05") == "2"
    ingest_batch(
        ctx,
        op,
        [
            ev("u4", "active_agents", "2026-05-04T00:00:00Z", subject="carol"),
            ev("u5", "active_agents", "2026-05-04T00:00:00Z", subject="bob"),
            ev("u6", "active_agents", "2026-05-04T00:00:00Z", "3", subject="dave"),
        ],
    )
    assert fig(ctx, op, "active_agents", "2026-05") == "4"
    clock.set("2026-06-03T00:00:00Z")
    ingest_batch(ctx, op, [ev("u7", "active_agents", "2026-06-01T00:00:00Z", subject="alice")])
    assert fig(ctx, op, "active_agents", "2026-06") == "1"  # not carried, per month
    assert fig(ctx, op, "active_agents", "2026-05") == "4"


def test_all_kinds_in_one_read_and_untouched_products_are_zero(
    make_ctx, op: Operation, unique_catalog: Catalog
) -> None:
    ctx = make_ctx(catalog=unique_catalog)
    ingest_batch(
        ctx,
        op,
        [
            ev("a", "rsync", "2026-05-01T00:00:00Z", "1.25"),
            ev("b", "video_call", "2026-05-01T00:00:00Z", "1.25"),
            ev("c", "vision", "2026-05-01T00:00:00Z", 4),
            ev("d", "gamification", "2026-05-01T00:00:00Z", "9"),
            ev("e", "active_agents", "2026-05-01T00:00:00Z", subject="x"),
        ],
    )
    everything = figures(ctx, op, "2026-05")
    assert len(everything) == 28
    nonzero = {api: v for api, v in everything.items() if v != "0"}
    assert nonzero == {
        "rsync": "1.25",
        "video_call": "2",
        "vision": "4",
        "gamification": "9",
        "active_agents": "1",
    }
