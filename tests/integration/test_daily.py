"""The daily breakdown on every backend: local days (month ends, DST, +05:45), days that add
up to the month, levels carried day to day and month to month, voids, unique subjects, closed
months, and the migration that builds the day meters of events stored before them."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from tests.integration.support import FakeClock, ev, fig, month_index
from voxmeter.adapters.postgres import PostgresStorage
from voxmeter.adapters.postgres import schema as pg_schema
from voxmeter.adapters.sqlite import SqliteStorage, schema
from voxmeter.domain.catalog import Catalog
from voxmeter.domain.months import Month
from voxmeter.domain.quantities import format_micro
from voxmeter.domain.tenancy import Operation
from voxmeter.errors import BadParameters
from voxmeter.service.context import Context
from voxmeter.service.daily import daily_figures
from voxmeter.service.events import void_event
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.months import close_month
from voxmeter.service.tenancy import create_operation


def daily(ctx: Context, op: Operation, api: str, month: str) -> dict[str, str]:
    """One product's days of a month: date -> items."""
    product = ctx.catalog.get(api)
    assert product is not None
    found = daily_figures(ctx, op, [product], month_index(month))
    figures = found.figures[api]
    return {d.isoformat(): format_micro(m) for d, m in zip(found.days, figures, strict=True)}


def nonzero(days: dict[str, str]) -> dict[str, str]:
    return {day: items for day, items in days.items() if items != "0"}


def total(days: dict[str, str]) -> str:
    return format_micro(int(sum(Decimal(v) for v in days.values()) * 1_000_000))


def test_days_run_from_the_first_to_today_then_to_the_last_day(
    ctx: Context, op: Operation, clock: FakeClock
) -> None:
    clock.set("2026-05-15T12:00:00Z")
    may = daily(ctx, op, "rsync", "2026-05")
    assert list(may) == [f"2026-05-{d:02d}" for d in range(1, 16)]
    assert set(may.values()) == {"0"}
    april = daily(ctx, op, "rsync", "2026-04")
    assert list(april) == [f"2026-04-{d:02d}" for d in range(1, 31)]
    february = daily(ctx, op, "rsync", "2024-02")
    assert list(february)[-1] == "2024-02-29"


def test_events_fall_on_the_right_side_of_a_month_end(
    make_ctx: Callable[..., Context], op: Operation, clock: FakeClock
) -> None:
    ctx = make_ctx(grace_days=30)
    clock.set("2026-05-15T12:00:00Z")
    ingest_batch(
        ctx,
        op,
        [
            ev("a", "rsync", "2026-04-30T23:59:59.999999Z", "1.5"),
            ev("b", "rsync", "2026-05-01T00:00:00Z", "2"),
        ],
    )
    assert nonzero(daily(ctx, op, "rsync", "2026-04")) == {"2026-04-30": "1.5"}
    assert nonzero(daily(ctx, op, "rsync", "2026-05")) == {"2026-05-01": "2"}


@pytest.mark.parametrize(
    ("timezone", "events", "expected"),
    [
        # New York springs forward on 2026-03-08: a day of 23 hours, 05:00Z to 04:00Z.
        (
            "America/New_York",
            [
                ("s0", "2026-03-08T04:59:59.999999Z", "1"),
                ("s1", "2026-03-08T05:00:00Z", "2"),
                ("s2", "2026-03-09T03:59:59.999999Z", "4"),
                ("s3", "2026-03-09T04:00:00Z", "8"),
            ],
            {"2026-03-07": "1", "2026-03-08": "6", "2026-03-09": "8"},
        ),
        # ... and falls back on 2026-11-01: a day of 25 hours, 04:00Z to 05:00Z the next day.
        (
            "America/New_York",
            [
                ("f0", "2026-11-01T03:59:59.999999Z", "1"),
                ("f1", "2026-11-01T04:00:00Z", "2"),
                ("f2", "2026-11-02T04:59:59.999999Z", "4"),
                ("f3", "2026-11-02T05:00:00Z", "8"),
            ],
            {"2026-10-31": "1", "2026-11-01": "6", "2026-11-02": "8"},
        ),
        # Kathmandu is 5:45 ahead of UTC: its days turn at 18:15Z.
        (
            "Asia/Kathmandu",
            [
                ("k0", "2026-05-01T18:14:59.999999Z", "1"),
                ("k1", "2026-05-01T18:15:00Z", "2"),
                ("k2", "2026-05-02T18:14:59Z", "4"),
                ("k3", "2026-04-30T18:15:00Z", "8"),
                ("k4", "2026-04-30T18:14:59Z", "16"),
            ],
            {"2026-04-30": "16", "2026-05-01": "9", "2026-05-02": "6"},
        ),
    ],
)
def test_days_are_the_operations_local_days(
    make_ctx: Callable[..., Context],
    clock: FakeClock,
    timezone: str,
    events: list[tuple[str, str, str]],
    expected: dict[str, str],
) -> None:
    ctx = make_ctx(grace_days=400)
    clock.set("2026-12-15T12:00:00Z")
    op = create_operation(ctx, "zoned", "9901", timezone)
    ingest_batch(ctx, op, [ev(i, "rsync", t, q) for i, t, q in events])
    found: dict[str, str] = {}
    for month in sorted({day[:7] for day in expected}):
        found.update(nonzero(daily(ctx, op, "rsync", month)))
        # The days of each month add up to the month's figure.
        assert total(daily(ctx, op, "rsync", month)) == fig(ctx, op, "rsync", month)
    assert found == expected


def test_summing_days_add_up_to_the_month_with_round_up_per_event(
    ctx: Context, op: Operation
) -> None:
    ingest_batch(
        ctx,
        op,
        [
            ev("m1", "ivr_minutes", "2026-05-01T10:00:00Z", "0.1"),
            ev("m2", "ivr_minutes", "2026-05-01T11:00:00Z", "0.1"),
            ev("m3", "ivr_minutes", "2026-05-02T10:00:00Z", "2.01"),
            ev("c1", "interactions", "2026-05-03T10:00:00Z", 3),
            ev("c2", "interactions", "2026-05-03T11:00:00Z"),
            ev("t1", "rsync", "2026-05-04T10:00:00Z", "0.000001"),
            ev("t2", "rsync", "2026-05-14T10:00:00Z", "123456.5"),
        ],
    )
    ivr = daily(ctx, op, "ivr_minutes", "2026-05")
    # Each event bills a whole minute: the 1st has two of 0.1 (2 minutes), not 1 (0.2 rounded).
    assert nonzero(ivr) == {"2026-05-01": "2", "2026-05-02": "3"}
    for api in ("ivr_minutes", "interactions", "rsync"):
        assert total(daily(ctx, op, api, "2026-05")) == fig(ctx, op, api, "2026-05")
    assert nonzero(daily(ctx, op, "interactions", "2026-05")) == {"2026-05-03": "4"}


def test_levels_are_carried_day_to_day_and_month_to_month(
    make_ctx: Callable[..., Context], op: Operation, clock: FakeClock
) -> None:
    ctx = make_ctx(grace_days=90)
    clock.set("2026-04-10T12:00:00Z")
    april = daily(ctx, op, "agent_script", "2026-04")
    assert set(april.values()) == {"0"}  # nothing reported yet
    ingest_batch(
        ctx,
        op,
        [
            ev("a1", "agent_script", "2026-04-03T08:00:00Z", "5"),
            ev("a2", "agent_script", "2026-04-03T20:00:00Z", "3"),  # the day ends at 3
            ev("a3", "agent_script", "2026-04-07T09:00:00Z", "9"),
        ],
    )
    clock.set("2026-06-05T12:00:00Z")
    april = daily(ctx, op, "agent_script", "2026-04")
    assert [april[f"2026-04-0{d}"] for d in range(1, 9)] == ["0", "0", "3", "3", "3", "3", "9", "9"]
    assert april["2026-04-30"] == "9"
    may = daily(ctx, op, "agent_script", "2026-05")
    assert set(may.values()) == {"9"}  # carried into a month with no report
    assert fig(ctx, op, "agent_script", "2026-05") == "9"
    ingest_batch(ctx, op, [ev("j1", "agent_script", "2026-06-02T00:00:00Z", "4")])
    june = daily(ctx, op, "agent_script", "2026-06")
    assert list(june.values()) == ["9", "4", "4", "4", "4"]


def test_voids_correct_the_day_of_the_event(
    make_ctx: Callable[..., Context], unique_catalog: Catalog, op: Operation
) -> None:
    ctx = make_ctx(catalog=unique_catalog)
    ingest_batch(
        ctx,
        op,
        [
            ev("s1", "rsync", "2026-05-02T10:00:00Z", "1.5"),
            ev("s2", "rsync", "2026-05-03T10:00:00Z", "2"),
            ev("r1", "ivr_minutes", "2026-05-03T10:00:00Z", "0.2"),
            ev("c1", "interactions", "2026-05-04T10:00:00Z", 2),
            ev("l1", "agent_script", "2026-05-05T08:00:00Z", "7"),
            ev("l2", "agent_script", "2026-05-05T09:00:00Z", "4"),
            ev("l3", "agent_script", "2026-05-06T09:00:00Z", "6"),
            ev("u1", "active_agents", "2026-05-07T09:00:00Z", subject="ana"),
            ev("u2", "active_agents", "2026-05-07T10:00:00Z", subject="ana"),
            ev("u3", "active_agents", "2026-05-08T10:00:00Z", subject="ana"),
        ],
    )
    for event_id in ("s2", "r1", "c1", "l2", "u1", "u3"):
        assert void_event(ctx, op, event_id)[1] is True
    assert nonzero(daily(ctx, op, "rsync", "2026-05")) == {"2026-05-02": "1.5"}
    assert nonzero(daily(ctx, op, "ivr_minutes", "2026-05")) == {}
    assert nonzero(daily(ctx, op, "interactions", "2026-05")) == {}
    levels = daily(ctx, op, "agent_script", "2026-05")
    # l2 voided: the 5th ends at 7 (l1), the 6th at 6 (l3).
    assert (levels["2026-05-04"], levels["2026-05-05"], levels["2026-05-06"]) == ("0", "7", "6")
    # ana still used on the 7th (u2), no longer on the 8th.
    assert nonzero(daily(ctx, op, "active_agents", "2026-05")) == {"2026-05-07": "1"}
    for api in ("rsync", "ivr_minutes", "interactions"):
        assert total(daily(ctx, op, api, "2026-05")) == fig(ctx, op, api, "2026-05")


def test_unique_counts_distinct_subjects_per_day(
    make_ctx: Callable[..., Context], unique_catalog: Catalog, op: Operation
) -> None:
    ctx = make_ctx(catalog=unique_catalog)
    ingest_batch(
        ctx,
        op,
        [
            ev("u1", "active_agents", "2026-05-01T09:00:00Z", subject="ana"),
            ev("u2", "active_agents", "2026-05-01T10:00:00Z", subject="ana"),
            ev("u3", "active_agents", "2026-05-01T11:00:00Z", subject="bo"),
            ev("u4", "active_agents", "2026-05-02T09:00:00Z", subject="ana"),
        ],
    )
    ingest_batch(ctx, op, [ev("u5", "active_agents", "2026-05-02T12:00:00Z", subject="cy")])
    days = nonzero(daily(ctx, op, "active_agents", "2026-05"))
    assert days == {"2026-05-01": "2", "2026-05-02": "2"}
    # Days do not add up to the month: ana counts once in the month.
    assert fig(ctx, op, "active_agents", "2026-05") == "3"


def test_a_closed_months_days_stay_as_they_were(
    ctx: Context, op: Operation, clock: FakeClock
) -> None:
    clock.set("2026-05-02T12:00:00Z")
    ingest_batch(ctx, op, [ev("a", "rsync", "2026-04-10T00:00:00Z", "3")])
    close_month(ctx, op, Month.parse("2026-04"))
    before = daily(ctx, op, "rsync", "2026-04")
    with pytest.raises(BadParameters):
        ingest_batch(ctx, op, [ev("late", "rsync", "2026-04-11T00:00:00Z", "5")])
    ingest_batch(ctx, op, [ev("may", "rsync", "2026-05-01T00:00:00Z", "5")])
    assert daily(ctx, op, "rsync", "2026-04") == before
    assert nonzero(before) == {"2026-04-10": "3"}


def test_daily_figures_match_whatever_the_batching(
    make_ctx: Callable[..., Context], unique_catalog: Catalog, op: Operation
) -> None:
    ctx = make_ctx(catalog=unique_catalog)
    other = create_operation(ctx, "other", "9901", "UTC")
    events = [
        ev("1", "rsync", "2026-05-01T00:00:00Z", "1.25"),
        ev("2", "agent_script", "2026-05-02T00:00:00Z", "4"),
        ev("3", "agent_script", "2026-05-02T00:00:00Z", "2"),  # same instant: later wins
        ev("4", "ivr_minutes", "2026-05-03T00:00:00Z", "0.5"),
        ev("5", "active_agents", "2026-05-03T00:00:00Z", subject="x"),
        ev("5", "rsync", "2026-05-03T00:00:00Z", "9"),  # a repeated id: a duplicate
        ev("6", "active_agents", "2026-05-03T01:00:00Z", subject="x"),
    ]
    ingest_batch(ctx, op, events)
    for event in events:
        ingest_batch(ctx, other, [event])
    for api in ("rsync", "agent_script", "ivr_minutes", "active_agents"):
        assert daily(ctx, op, api, "2026-05") == daily(ctx, other, api, "2026-05")
    assert daily(ctx, op, "agent_script", "2026-05")["2026-05-02"] == "2"


def _day_migration(migrations: list[object], add: object) -> int:
    return migrations.index(add) + 1


@pytest.mark.parametrize("backend_name", ["sqlite", "postgres"])
def test_the_migration_builds_the_day_meters_of_stored_events(
    backend_name: str,
    tmp_path: Path,
    pg_url: str,
    clock: FakeClock,
    unique_catalog: Catalog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A database whose events were stored before the day meters existed (the day tables
    dropped and their migration unrecorded) answers the same days once migrated."""
    monkeypatch.setenv("VOXMETER_CATALOG", str(tmp_path / "catalog.json"))  # unique_catalog's
    storage = (
        SqliteStorage(str(tmp_path / "up.db"))
        if backend_name == "sqlite"
        else PostgresStorage(pg_url)
    )
    try:
        storage.migrate()
        ctx = Context(storage=storage, catalog=unique_catalog, grace_days=90, clock=clock)
        clock.set("2026-06-10T12:00:00Z")
        ny = create_operation(ctx, "ny", "9901", "America/New_York")
        ktm = create_operation(ctx, "ktm", "9901", "Asia/Kathmandu")
        for op in (ny, ktm):
            ingest_batch(
                ctx,
                op,
                [
                    ev("s1", "ivr_minutes", "2026-05-01T03:59:59Z", "0.5"),
                    ev("s2", "ivr_minutes", "2026-05-01T18:15:00Z", "1.5"),
                    ev("s3", "ivr_minutes", "2026-05-31T23:00:00Z", "1"),
                    ev("l1", "agent_script", "2026-04-20T10:00:00Z", "6"),
                    ev("l2", "agent_script", "2026-05-10T10:00:00Z", "2"),
                    ev("l3", "agent_script", "2026-05-10T10:00:00Z", "3"),
                    ev("l4", "agent_script", "2026-05-12T10:00:00Z", "8"),
                    ev("u1", "active_agents", "2026-05-03T10:00:00Z", subject="a"),
                    ev("u2", "active_agents", "2026-05-03T11:00:00Z", subject="b"),
                    ev("u3", "active_agents", "2026-05-04T11:00:00Z", subject="a"),
                ],
            )
            void_event(ctx, op, "s3")
            void_event(ctx, op, "l4")
            void_event(ctx, op, "u1")
        apis = ("ivr_minutes", "agent_script", "active_agents")
        months = ("2026-04", "2026-05", "2026-06")
        before = {
            (op.name, api, m): daily(ctx, op, api, m)
            for op in (ny, ktm)
            for api in apis
            for m in months
        }
        module = schema if backend_name == "sqlite" else pg_schema
        number = _day_migration(module.MIGRATIONS, module._add_day_meters)  # type: ignore[arg-type]
        # Back to the version before the day meters; the later migrations' changes stay in
        # place and are recorded again once the day meters' migration has run.
        unrecord = "DELETE FROM schema_version WHERE version >= ?"
        if backend_name == "sqlite":
            conn = storage._writer  # type: ignore[attr-defined]
            conn.execute("DROP TABLE day_meters")
            conn.execute("DROP TABLE day_subjects")
            conn.execute(unrecord, (number,))
        else:
            with storage._conn() as conn:  # type: ignore[attr-defined]
                conn.execute("DROP TABLE day_meters")
                conn.execute("DROP TABLE day_subjects")
                conn.execute(unrecord.replace("?", "%s"), (number,))
        latest = module.LATEST
        monkeypatch.setattr(module, "LATEST", number)
        assert storage.migrate() == 1
        monkeypatch.setattr(module, "LATEST", latest)
        record = "INSERT INTO schema_version (version) VALUES (?)"
        for later in range(number + 1, latest + 1):
            if backend_name == "sqlite":
                storage._writer.execute(record, (later,))  # type: ignore[attr-defined]
            else:
                with storage._conn() as conn:  # type: ignore[attr-defined]
                    conn.execute(record.replace("?", "%s"), (later,))
        assert storage.schema_version() == latest
        after = {
            (op.name, api, m): daily(ctx, op, api, m)
            for op in (ny, ktm)
            for api in apis
            for m in months
        }
        assert after == before
        assert nonzero(before[("ny", "ivr_minutes", "2026-04")]) == {"2026-04-30": "1"}
        assert nonzero(before[("ktm", "ivr_minutes", "2026-05")]) == {
            "2026-05-01": "1",
            "2026-05-02": "2",
        }
    finally:
        storage.close()
