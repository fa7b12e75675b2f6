"""Ingest through the service layer into a real database: dedupe, atomicity, visibility."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from decimal import Decimal

import pytest

from tests.integration.conftest import DbUnderTest
from tests.integration.support import (
    FakeClock,
    Sql,
    ev,
    event_rows,
    fig,
    figures,
    page_rows,
    utc,
)
from voxmeter.domain.quantities import from_micro
from voxmeter.domain.tenancy import Operation
from voxmeter.entrypoints.wire.errors import message
from voxmeter.entrypoints.wire.listing import list_events
from voxmeter.errors import BadParameters
from voxmeter.service.context import Context
from voxmeter.service.figures import month_figures
from voxmeter.service.ingest import ingest_batch


def test_same_id_sent_a_thousand_times_counts_once_and_first_copy_wins(
    ctx: Context, op: Operation, sql: Sql
) -> None:
    rng = random.Random(20260515)
    start = utc("2026-05-01T00:00:00Z")
    products = ["rsync", "tts_chars", "ivr_minutes", "agent_script"]

    def copy(n: int):
        moment = start + timedelta(seconds=rng.randrange(14 * 86400))
        quantity = Decimal(rng.randrange(1, 10**9)).scaleb(-rng.randrange(0, 7))
        return ev("dup-1", rng.choice(products), moment.isoformat(), str(quantity))

    first = ev("dup-1", "rsync", "2026-05-07T08:30:00Z", "7.25")
    # A fresh id in every batch too, so each batch also stores something.
    batches: list[list] = [
        [first] + [copy(i) for i in range(24)] + [ev("fresh-0", "rsync", "2026-05-02T00:00:00Z", 1)]
    ]
    sent = 25
    number = 1
    while sent < 1000:
        size = min(rng.randrange(1, 60), 1000 - sent)
        batch = [copy(i) for i in range(size)]
        batch.insert(
            rng.randrange(len(batch) + 1), ev(f"fresh-{number}", "rsync", "2026-05-02T00:00:00Z", 1)
        )
        batches.append(batch)
        sent += size
        number += 1
    assert sum(1 for b in batches for e in b if e.id == "dup-1") == 1000
    assert len(batches) > 20

    results = [ingest_batch(ctx, op, batch) for batch in batches]

    assert (results[0].accepted, results[0].duplicates) == (2, 24)
    for batch, result in zip(batches[1:], results[1:], strict=True):
        assert (result.accepted, result.duplicates) == (1, len(batch) - 1)
    assert sum(r.duplicates for r in results) == 999
    assert [e.id for e in results[0].new_events] == ["dup-1", "fresh-0"]

    rows = sql(
        "SELECT e.time, e.quantity, p.api FROM events e JOIN products p ON p.id = e.product_id"
        " WHERE e.id = 'dup-1'",
    )
    assert rows == [(1778142600000000, 7250000, "rsync")]  # 2026-05-07T08:30:00Z, 7.25
    assert event_rows(sql) == 1 + len(batches)
    fresh_total = Decimal(len(batches))
    assert figures(ctx, op, "2026-05", products) == {
        "rsync": str(Decimal("7.25") + fresh_total),
        "tts_chars": "0",
        "ivr_minutes": "0",
        "agent_script": "0",
    }
    page = list_events(ctx, op, "20260501000000", "20260531235959", "rsync", None)
    listed = [e for e in page_rows(page) if e["id"] == "dup-1"]
    assert listed == [
        {
            "id": "dup-1",
            "product": "rsync",
            "time": "2026-05-07T08:30:00+00:00",
            "quantity": "7.25",
            "subject": None,
            "voided": False,
        }
    ]


def test_duplicates_inside_one_batch_count_as_duplicates_first_copy_wins(
    ctx: Context, op: Operation, sql: Sql
) -> None:
    batch = [
        ev("a", "rsync", "2026-05-01T10:00:00Z", "1.5"),
        ev("b", "rsync", "2026-05-01T11:00:00Z", "2"),
        ev("a", "rsync", "2026-05-01T12:00:00Z", "100"),
        ev("c", "interactions", "2026-05-01T13:00:00Z"),
        ev("a", "tts_chars", "2026-05-01T14:00:00Z", "999"),
        ev("c", "interactions", "2026-05-01T15:00:00Z", 7),
    ]
    result = ingest_batch(ctx, op, batch)
    assert (result.accepted, result.duplicates) == (3, 3)
    assert [e.id for e in result.new_events] == ["a", "b", "c"]
    assert event_rows(sql) == 3
    assert figures(ctx, op, "2026-05", ["rsync", "interactions", "tts_chars"]) == {
        "rsync": "3.5",
        "interactions": "1",
        "tts_chars": "0",
    }

    again = ingest_batch(ctx, op, batch)
    assert (again.accepted, again.duplicates) == (0, 6)
    assert again.new_events == ()
    assert event_rows(sql) == 3
    assert fig(ctx, op, "rsync", "2026-05") == "3.5"


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (ev("bad", "no_such_product", "2026-05-03T00:00:00Z", 1), "product"),
        (ev("bad", "rsync", "2026-05-03T00:00:00Z", "-1"), "quantity"),
        (ev("bad", "rsync", "2026-05-03T00:00:00Z", "0.0000001"), "quantity"),
        (ev("bad", "rsync", "2026-05-03T00:00:00Z"), "quantity"),
        (ev("bad", "interactions", "2026-05-03T00:00:00Z", "1.5"), "quantity"),
        (ev("bad", "rsync", "2026-05-15T12:05:01Z", 1), "time"),
    ],
)
def test_a_batch_with_one_invalid_event_stores_nothing(
    ctx: Context, op: Operation, sql: Sql, bad, field: str
) -> None:
    ingest_batch(ctx, op, [ev("old", "rsync", "2026-05-01T00:00:00Z", "10")])
    before_rows = event_rows(sql)
    before = figures(ctx, op, "2026-05")
    batch = [
        ev("n1", "rsync", "2026-05-02T00:00:00Z", "1"),
        ev("n2", "interactions", "2026-05-02T00:00:00Z"),
        ev("n3", "agent_script", "2026-05-02T00:00:00Z", "40"),
        bad,
        ev("n4", "ivr_minutes", "2026-05-02T00:00:00Z", "0.5"),
    ]
    with pytest.raises(BadParameters) as caught:
        ingest_batch(ctx, op, batch)
    assert message(caught.value) == "SOME PARAMETERS ARE REQUIRED: invalid events"
    assert len(caught.value.data) == 1
    problem = caught.value.data[0]
    assert problem["index"] == 3
    assert problem["field"] == field
    assert problem["error"]

    assert event_rows(sql) == before_rows == 1
    assert sql("SELECT id FROM events") == [("old",)]
    assert figures(ctx, op, "2026-05") == before
    assert before["rsync"] == "10"
    # Nothing from the refused batch took an id: the valid events go in afterwards.
    result = ingest_batch(ctx, op, batch[:3] + batch[4:])
    assert (result.accepted, result.duplicates) == (4, 0)
    assert figures(
        ctx, op, "2026-05", ["rsync", "interactions", "agent_script", "ivr_minutes"]
    ) == {"rsync": "11", "interactions": "1", "agent_script": "40", "ivr_minutes": "1"}


def test_every_problem_of_a_batch_is_listed_by_index(ctx: Context, op: Operation) -> None:
    batch = [
        ev("ok", "rsync", "2026-05-02T00:00:00Z", "1"),
        ev("x1", "nope", "2026-05-02T00:00:00Z", "1"),
        ev("ok2", "rsync", "2026-05-02T00:00:00Z", "1"),
        ev("x2", "agent_script", "2026-05-02T00:00:00Z"),
    ]
    with pytest.raises(BadParameters) as caught:
        ingest_batch(ctx, op, batch)
    assert [(p["index"], p["field"]) for p in caught.value.data] == [
        (1, "product"),
        (3, "quantity"),
    ]


def test_events_are_visible_to_figures_right_after_ingest(
    ctx: Context, op: Operation, database: DbUnderTest, catalog, clock: FakeClock
) -> None:
    # Read first, so this thread's reader connection already exists before the write.
    assert fig(ctx, op, "rsync", "2026-05") == "0"
    for n in range(1, 6):
        ingest_batch(ctx, op, [ev(f"v{n}", "rsync", "2026-05-10T00:00:00Z", "0.25")])
        raw = month_figures(ctx, op, [catalog.get("rsync")], 2026 * 12 + 4)
        assert from_micro(raw["rsync"]) == Decimal("0.25") * n

    # Another storage over the same file (another process, say) sees the same figure.
    other = database.open()
    try:
        other_ctx = Context(storage=other, catalog=catalog, clock=clock)
        assert fig(other_ctx, op, "rsync", "2026-05") == "1.25"
        ingest_batch(other_ctx, op, [ev("v6", "rsync", "2026-05-10T00:00:00Z", "0.75")])
    finally:
        other.close()
    assert fig(ctx, op, "rsync", "2026-05") == "2"


def test_a_time_past_the_microsecond_stays_in_its_month(make_ctx, clock) -> None:
    """23:59:59.9999999 on the last day of October is October: the digit past the microsecond is
    cut, not rounded into November."""
    from voxmeter.entrypoints.wire.codec import decode_json
    from voxmeter.service.ingest import ingest_body
    from voxmeter.service.tenancy import create_operation

    clock.set("2026-11-15T00:00:00Z")
    ctx = make_ctx(grace_days=30)
    op = create_operation(ctx, "late", "9901", "UTC")
    body = (
        b'[{"id":"late-oct","product":"rsync","time":"2026-10-31T23:59:59.9999999Z",'
        b'"quantity":"1"}]'
    )
    assert ingest_body(ctx, op, body, decode_json).accepted == 1
    assert fig(ctx, op, "rsync", "2026-10") == "1"
    assert fig(ctx, op, "rsync", "2026-11") == "0"
    (listed,) = page_rows(list_events(ctx, op, "20261031000000", "20261031235959", None, None))
    assert listed["time"] == "2026-10-31T23:59:59.999999+00:00"


@pytest.mark.parametrize("quantity", ["١٢", "𝟏𝟐"])
def test_a_quantity_in_other_digits_refuses_the_batch(make_ctx, quantity: str) -> None:
    from voxmeter.entrypoints.wire.codec import decode_json
    from voxmeter.service.ingest import ingest_body
    from voxmeter.service.tenancy import create_operation

    ctx = make_ctx()
    op = create_operation(ctx, "digits", "9901", "UTC")
    events = [
        {"id": "a", "product": "rsync", "time": "2026-05-10T08:00:00Z", "quantity": "12"},
        {"id": "b", "product": "rsync", "time": "2026-05-10T08:00:00Z", "quantity": quantity},
    ]
    body = json.dumps(events, ensure_ascii=False).encode()
    with pytest.raises(BadParameters) as refused:
        ingest_body(ctx, op, body, decode_json)
    assert refused.value.data == [
        {"index": 1, "field": "quantity", "error": "must be written with ASCII digits"}
    ]
    assert fig(ctx, op, "rsync", "2026-05") == "0"
