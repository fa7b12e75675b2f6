"""Times kept to the microsecond by truncation, leap seconds, and quantities in ASCII digits only,
through every decoder (JSON array, NDJSON, CSV)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from voxmeter.domain.batch import validate_batch
from voxmeter.domain.catalog import Catalog
from voxmeter.domain.months import Month, calendar, to_micros
from voxmeter.entrypoints.wire.codec import (
    EventIn,
    csv_rows,
    decode_csv_rows,
    decode_json,
    decode_ndjson,
)
from voxmeter.entrypoints.wire.timetext import kept_time
from voxmeter.errors import BadParameters
from voxmeter.service.ingest import InvalidBatch

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _csv(items: list[dict[str, str]]) -> list[EventIn]:
    header = "id,product,time,quantity"
    lines = [header] + [",".join(i[k] for k in header.split(",")) for i in items]
    return decode_csv_rows(csv_rows("\n".join(lines) + "\n"))


DECODERS: dict[str, Callable[[list[dict[str, str]]], list[EventIn]]] = {
    "json": lambda items: decode_json(json.dumps(items, ensure_ascii=False).encode()),
    "json-escaped": lambda items: decode_json(json.dumps(items, ensure_ascii=True).encode()),
    "ndjson": lambda items: decode_ndjson(
        b"\n".join(json.dumps(i, ensure_ascii=False).encode() for i in items)
    ),
    "csv": _csv,
}


def _event(time: str, quantity: str = "1", event_id: str = "late-oct") -> dict[str, str]:
    return {"id": event_id, "product": "rsync", "time": time, "quantity": quantity}


@pytest.mark.parametrize("decode", DECODERS.values(), ids=DECODERS.keys())
@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("2026-10-31T23:59:59.9999999Z", "2026-10-31T23:59:59.999999+00:00"),
        ("2026-10-31T23:59:59.123456789012Z", "2026-10-31T23:59:59.123456+00:00"),
        ("2026-10-31T23:59:59.1234565Z", "2026-10-31T23:59:59.123456+00:00"),
        ("2026-10-31T19:59:59.99999999-04:00", "2026-10-31T19:59:59.999999-04:00"),
        ("2026-10-31 23:59:59.9999999z", "2026-10-31T23:59:59.999999+00:00"),
        ("2026-11-01T05:44:59.9999999+0545", "2026-11-01T05:44:59.999999+05:45"),
        ("2026-10-31T23:59:59.999999Z", "2026-10-31T23:59:59.999999+00:00"),
        ("2026-10-31T23:59:59.5Z", "2026-10-31T23:59:59.500000+00:00"),
    ],
)
def test_extra_fraction_digits_are_cut_never_rounded(
    decode: Callable[[list[dict[str, str]]], list[EventIn]], sent: str, kept: str
) -> None:
    (event,) = decode([_event(sent)])
    assert event.time.isoformat() == kept


@pytest.mark.parametrize("decode", DECODERS.values(), ids=DECODERS.keys())
@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("2016-12-31T23:59:60Z", "2016-12-31T23:59:59.999999+00:00"),
        ("2016-12-31T23:59:60.5Z", "2016-12-31T23:59:59.999999+00:00"),
        ("2016-12-31T18:59:60-05:00", "2016-12-31T18:59:59.999999-05:00"),
        ("2017-01-01T05:44:60.25+05:45", "2017-01-01T05:44:59.999999+05:45"),
    ],
)
def test_a_leap_second_is_the_last_microsecond_of_its_minute(
    decode: Callable[[list[dict[str, str]]], list[EventIn]], sent: str, kept: str
) -> None:
    (event,) = decode([_event(sent)])
    assert event.time.isoformat() == kept


@pytest.mark.parametrize("decode", DECODERS.values(), ids=DECODERS.keys())
@pytest.mark.parametrize("sent", ["2016-12-31T22:59:60Z", "2016-12-31T23:59:60+01:00"])
def test_second_60_outside_the_last_utc_minute_of_a_day_is_refused(
    decode: Callable[[list[dict[str, str]]], list[EventIn]], sent: str
) -> None:
    with pytest.raises(InvalidBatch) as refused:
        decode([_event("2016-12-31T12:00:00Z", event_id="ok"), _event(sent)])
    assert [(p.index, p.field) for p in refused.value.problems] == [(1, "time")]


@pytest.mark.parametrize("decode", DECODERS.values(), ids=DECODERS.keys())
@pytest.mark.parametrize("quantity", ["١٢", "𝟏𝟐", "１２", "۱۲", "1\u00a0", "१२.५"])
def test_quantity_strings_in_other_digits_are_refused(
    decode: Callable[[list[dict[str, str]]], list[EventIn]], quantity: str
) -> None:
    batch = [_event("2026-05-10T08:00:00Z", "12", "a"), _event("2026-05-10T08:00:00Z", quantity)]
    with pytest.raises(BadParameters) as refused:
        decode(batch)
    assert refused.value.data == [
        {"index": 1, "field": "quantity", "error": "must be written with ASCII digits"}
    ]


@pytest.mark.parametrize("decode", DECODERS.values(), ids=DECODERS.keys())
def test_ascii_quantities_and_other_text_elsewhere_are_still_accepted(
    decode: Callable[[list[dict[str, str]]], list[EventIn]],
) -> None:
    batch = [
        _event("2026-05-10T08:00:00Z", "12", "llamada-ñ-١٢"),
        _event("2026-05-10T08:00:00.1234567Z", "1_000", "𝟏𝟐"),
        _event("2026-05-10T08:00:00Z", "0.5", "id:60.1234567"),
    ]
    events = decode(batch)
    assert [(e.id, e.quantity) for e in events] == [
        ("llamada-ñ-١٢", Decimal(12)),
        ("𝟏𝟐", Decimal(1000)),
        ("id:60.1234567", Decimal("0.5")),
    ]
    assert events[1].time.microsecond == 123456


def test_kept_time_leaves_what_it_does_not_know_to_the_parser() -> None:
    for text in ["2026-10-31T23:59:59Z", "not a time", "2026-10-31T23:59:59.9999999", ""]:
        assert kept_time(text) == text


# ------------------------------------------------------------------------------- property

ZONES = [
    "UTC",
    "America/New_York",
    "Pacific/Chatham",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "America/Sao_Paulo",
    "America/Santiago",
    "Europe/Dublin",
    "Pacific/Apia",
    "Africa/Casablanca",
    "Asia/Tehran",
]
CATALOG = Catalog.load()
LATE = to_micros(datetime(2201, 1, 1, tzinfo=UTC))  # "now" for validation: every year allowed


@settings(max_examples=1500, deadline=None, database=None)
@given(
    zone=st.sampled_from(ZONES),
    nanos=st.integers(
        to_micros(datetime(1970, 1, 2, tzinfo=UTC)) * 1000,
        to_micros(datetime(2199, 12, 30, tzinfo=UTC)) * 1000,
    ),
    extra=st.integers(0, 10**9 - 1),
    extra_digits=st.integers(0, 12),
    offset_minutes=st.integers(-(23 * 60 + 59), 23 * 60 + 59),
    near_edge=st.booleans(),
)
@example(  # the last nanosecond of October in UTC
    zone="UTC",
    nanos=to_micros(datetime(2026, 10, 31, 23, 59, 59, 999999, tzinfo=UTC)) * 1000,
    extra=999_999_999,
    extra_digits=12,
    offset_minutes=0,
    near_edge=False,
)
def test_an_accepted_time_lands_in_the_month_and_day_of_its_truncated_instant(
    zone: str,
    nanos: int,
    extra: int,
    extra_digits: int,
    offset_minutes: int,
    near_edge: bool,
) -> None:
    """Any RFC 3339 text (any offset, up to 18 fractional digits) is stored as its instant cut
    to the microsecond, in the month and local day that contain that instant."""
    cal = calendar(zone)
    if near_edge:  # within the last microsecond of a local month, where rounding crosses it
        month = cal.month_of(nanos // 1000)
        nanos = cal.window(month)[1] * 1000 - 1 - nanos % 1000
    written = (EPOCH + timedelta(microseconds=nanos // 1000)).astimezone(
        timezone(timedelta(minutes=offset_minutes))
    )
    fraction = f"{written.microsecond:06d}" + f"{nanos % 1000:03d}{extra:09d}"[:extra_digits]
    offset = written.strftime("%z")
    text = f"{written:%Y-%m-%dT%H:%M:%S}.{fraction}{offset[:3]}:{offset[3:]}"

    (event,) = decode_json(json.dumps([_event(text)]).encode())
    events, problems = validate_batch([event], CATALOG, cal, LATE)
    assert problems == []
    (stored,) = events
    truncated = nanos // 1000
    assert stored.time == truncated, text
    local = (EPOCH + timedelta(microseconds=truncated)).astimezone(ZoneInfo(zone))
    assert Month.from_index(stored.month) == Month(local.year, local.month), text
    day = local.date()
    assert cal.day_start(day) <= stored.time < cal.day_start(day + timedelta(days=1)), text
