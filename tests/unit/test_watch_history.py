"""The watch history: idempotent snapshots, month-end freezing, polling and staleness, with
explicit instants (no sleeping, no network)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from voxmeter.client import APIConnectionError, UsageRow
from voxmeter.domain.months import to_micros
from voxmeter.watch.config import OperationConfig
from voxmeter.watch.history import History
from voxmeter.watch.poll import MICROS_PER_MINUTE, poll_cycle, stale_operations


def _at(*args: int, tz: object = UTC) -> int:
    return to_micros(datetime(*args, tzinfo=tz))  # type: ignore[arg-type, misc]


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    with History(tmp_path / "h.db") as store:
        yield store


def test_repeated_figures_add_no_rows(history: History) -> None:
    assert history.record("acme", "2026-03", "ivr_minutes", Decimal("4"), _at(2026, 3, 1, 1))
    assert not history.record("acme", "2026-03", "ivr_minutes", Decimal("4.00"), _at(2026, 3, 1, 2))
    assert history.snapshot_count() == 1
    assert history.record("acme", "2026-03", "ivr_minutes", Decimal("6.5"), _at(2026, 3, 2))
    assert history.record("acme", "2026-03", "tts_chars", Decimal("1234.5"), _at(2026, 3, 2))
    assert history.snapshot_count() == 3
    (ivr, tts) = history.trends("acme", "2026-03")
    assert (ivr.api, ivr.first, ivr.last, ivr.snapshots) == (
        "ivr_minutes",
        Decimal("4"),
        Decimal("6.5"),
        2,
    )
    assert (tts.first, tts.last, tts.month_end) == (Decimal("1234.5"), Decimal("1234.5"), None)


def test_month_end_frozen_once_from_the_last_snapshot(history: History) -> None:
    history.record("acme", "2026-03", "ivr_minutes", Decimal("4"), _at(2026, 3, 10))
    history.record("acme", "2026-03", "ivr_minutes", Decimal("9"), _at(2026, 3, 31, 23, 55))
    history.record("acme", "2026-03", "ivr_minutes", Decimal("9"), _at(2026, 3, 31, 23, 59))
    # still March: nothing frozen
    assert history.freeze_ended("acme", "2026-03", _at(2026, 3, 31, 23, 59)) == []
    assert history.month_end("acme", "2026-03") == {}
    # first poll in April freezes March
    assert history.freeze_ended("acme", "2026-04", _at(2026, 4, 1, 0, 5)) == ["2026-03"]
    assert history.month_end("acme", "2026-03") == {"ivr_minutes": Decimal("9")}
    # a late (corrected) figure for March does not change the frozen month-end
    history.record("acme", "2026-03", "ivr_minutes", Decimal("11"), _at(2026, 4, 1, 0, 10))
    assert history.freeze_ended("acme", "2026-04", _at(2026, 4, 1, 0, 10)) == []
    assert history.month_end("acme", "2026-03") == {"ivr_minutes": Decimal("9")}
    assert history.trends("acme", "2026-03")[0].month_end == Decimal("9")
    # other operations are untouched
    assert history.month_end("other", "2026-03") == {}


def _row(api: str, items: str, day: datetime | None) -> UsageRow:
    return UsageRow(api, "acme", None, Decimal(items), day.date() if day else None, None, {})


def test_month_end_follows_the_operation_timezone(history: History) -> None:
    op = OperationConfig("bog", "9901", "t", "http://x", "America/Bogota", 0)
    figures = iter(["5", "7"])

    def fetch(_: OperationConfig) -> list[UsageRow]:
        return [_row("ivr_minutes", next(figures), None)]

    # 2026-04-01 03:00 UTC is still 2026-03-31 22:00 in Bogota (UTC-5): March, not frozen
    (r1,) = poll_cycle(history, [op], now=lambda: _at(2026, 4, 1, 3), fetch=fetch)
    assert r1.status == "ok"
    assert history.months("bog") == ["2026-03"]
    assert history.month_end("bog", "2026-03") == {}
    # 05:30 UTC is 00:30 in Bogota: April; March is frozen from its last snapshot
    poll_cycle(history, [op], now=lambda: _at(2026, 4, 1, 5, 30), fetch=fetch)
    assert history.months("bog") == ["2026-03", "2026-04"]
    assert history.month_end("bog", "2026-03") == {"ivr_minutes": Decimal("5")}


def test_poll_cycle_records_errors_skips_until_due_and_reports_staleness(
    history: History,
) -> None:
    good = OperationConfig("good", "9901", "t", "http://x", "UTC", 5)
    bad = OperationConfig("bad", "9901", "t", "http://x", "UTC", 5)

    def fetch(op: OperationConfig) -> list[UsageRow]:
        if op.name == "bad":
            raise APIConnectionError("connection failed: refused")
        return [_row("ivr_minutes", "3", datetime(2026, 3, 2, tzinfo=UTC))]

    t0 = _at(2026, 3, 2, 12)
    results = poll_cycle(history, [good, bad], now=lambda: t0, fetch=fetch)
    assert [(r.operation, r.status, r.added) for r in results] == [
        ("good", "ok", 1),
        ("bad", "error", 0),
    ]
    assert results[1].error == "APIConnectionError: connection failed: refused"
    assert history.poll_state("bad").last_error == results[1].error
    # not yet due: skipped, no request
    results = poll_cycle(history, [good, bad], now=lambda: t0 + 4 * MICROS_PER_MINUTE, fetch=fetch)
    assert [r.status for r in results] == ["skipped", "skipped"]
    # due again: the same figure adds nothing
    results = poll_cycle(history, [good], now=lambda: t0 + 5 * MICROS_PER_MINUTE, fetch=fetch)
    assert [(r.status, r.added) for r in results] == [("ok", 0)]
    assert history.snapshot_count() == 1

    later = t0 + 40 * MICROS_PER_MINUTE
    stale = stale_operations(history, [good, bad], later, 30)
    assert [name for name, _ in stale] == ["good", "bad"]
    assert "last successful poll 35 min ago" in stale[0][1]
    assert "never polled successfully; last error: APIConnectionError" in stale[1][1]
    assert stale_operations(history, [good], t0 + 6 * MICROS_PER_MINUTE, 30) == []
