"""Fuzzing what the HTTP layer parses out of a request (docs/api.md).

The HTTP layer turns a VoxmeterError into its own status and anything else into a generic 500,
so every parser here must either return a well-formed value or raise BadParameters (400): the
event decoders (JSON array, NDJSON; InvalidBatch is a BadParameters carrying the problems), the
validation that follows them, `month=`, `date_ini=`/`date_end=` and `cursor=`. Valid inputs built
from real values must parse back to those values.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxmeter.domain.batch import validate_batch
from voxmeter.domain.catalog import Catalog
from voxmeter.domain.events import MAX_BATCH, MAX_ID_LENGTH, MAX_SUBJECT_LENGTH
from voxmeter.domain.months import (
    FIRST_YEAR,
    LAST_YEAR,
    Month,
    MonthError,
    calendar,
    to_micros,
)
from voxmeter.domain.tenancy import Operation
from voxmeter.entrypoints.wire.codec import EventIn, decode_json, decode_ndjson
from voxmeter.entrypoints.wire.errors import message, row_of
from voxmeter.entrypoints.wire.listing import (
    decode_cursor,
    encode_cursor,
    list_events,
    parse_local,
)
from voxmeter.entrypoints.wire.months import resolve_month
from voxmeter.errors import BadParameters
from voxmeter.service.context import Context
from voxmeter.service.events import MAX_PAGE
from voxmeter.service.ingest import InvalidBatch

Decode = Callable[[bytes], list[EventIn]]
T = TypeVar("T")

CATALOG = Catalog.load()
APIS = [p.api for p in CATALOG]
NOW_DT = datetime(2026, 5, 15, 12, tzinfo=UTC)
NOW = to_micros(NOW_DT)
FIELDS = ["id", "product", "time", "quantity", "subject"]
TIMEZONES = ["UTC", "Asia/Kathmandu", "America/New_York", "Pacific/Kiritimati"]
FUZZ = settings(max_examples=200, deadline=None, database=None)
FEW = settings(max_examples=100, deadline=None, database=None)

DECODERS = [
    pytest.param(decode_json, id="json"),
    pytest.param(decode_ndjson, id="ndjson"),
]

# ---- strategies ----

utf8_text = st.text(alphabet=st.characters(codec="utf-8"))
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
#: Aware datetimes whose offset RFC 3339 can carry (whole minutes, under a day).
moments = st.builds(
    lambda naive, tz: naive.replace(tzinfo=tz),
    st.datetimes(datetime(FIRST_YEAR, 1, 2), datetime(LAST_YEAR, 12, 30)),
    offsets | st.just(UTC),
)
finite_decimals = st.decimals(allow_nan=False, allow_infinity=False)
#: Plausible values for each field (right type, often wrong content) and anything at all.
plausible = {
    "id": st.text(max_size=MAX_ID_LENGTH + 2),
    "product": st.sampled_from(APIS) | st.text(max_size=12),
    "time": moments.map(datetime.isoformat) | st.text(max_size=40),
    "quantity": finite_decimals.map(str) | st.integers() | st.floats() | st.text(max_size=10),
    "subject": st.text(max_size=MAX_SUBJECT_LENGTH + 2),
}
event_like = st.fixed_dictionaries(
    {}, optional={name: plausible[name] | json_values for name in FIELDS}
) | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), json_values, max_size=6)
items = st.lists(event_like | json_values, min_size=0, max_size=6)


def as_json(values: list[Any], ascii_only: bool = True) -> bytes:
    return json.dumps(values, ensure_ascii=ascii_only).encode()


def as_ndjson(values: list[Any], ascii_only: bool = True) -> bytes:
    return b"\n".join(json.dumps(v, ensure_ascii=ascii_only).encode() for v in values)


@st.composite
def mangled(draw: st.DrawFn) -> bytes:
    """A valid-looking body with a slice cut out, bytes inserted or one byte changed."""
    body = bytearray(draw(st.sampled_from([as_json, as_ndjson]))(draw(items)))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(body)))
        how = draw(st.sampled_from(["cut", "insert", "flip"]))
        if how == "cut":
            del body[at : at + draw(st.integers(1, 8))]
        elif how == "insert":
            body[at:at] = draw(st.binary(min_size=1, max_size=4) | st.sampled_from([b"\n", b'"']))
        elif body:
            body[min(at, len(body) - 1)] = draw(st.integers(0, 255))
    return bytes(body)


def attempt(
    call: Callable[[], T], refusal: type[Exception] = BadParameters
) -> tuple[T | None, Exception | None]:
    """The call's result, or the `refusal` it raised; any other exception fails the test."""
    try:
        return call(), None
    except refusal as exc:
        return None, exc


# ---- the decoders ----


def decoded_or_refused(decode: Decode, body: bytes) -> list[EventIn] | None:
    """Decode like ingest does (then validate what decoded): events, or None after a 400.

    Any exception other than BadParameters propagates and fails the test."""
    events, exc = attempt(lambda: decode(body))
    if isinstance(exc, InvalidBatch):
        assert exc.problems, "an InvalidBatch names at least one problem"
        assert exc.data == [p.as_dict() for p in exc.problems]
        bad = {p.index for p in exc.problems}
        good = [index for index, _ in exc.decoded]
        assert not bad & set(good)
        assert all(isinstance(p.field, str) and p.field and p.error for p in exc.problems)
        assert all(isinstance(event, EventIn) for _, event in exc.decoded)
        validate_batch([e for _, e in exc.decoded], CATALOG, calendar("UTC"), NOW)
    if exc is not None:
        assert isinstance(exc, BadParameters)
        assert row_of(type(exc)).status == 400
        assert message(exc).startswith("SOME PARAMETERS ARE REQUIRED")
        return None
    assert isinstance(events, list)
    assert 1 <= len(events) <= MAX_BATCH
    assert all(isinstance(e, EventIn) for e in events)
    _, problems = validate_batch(events, CATALOG, calendar("UTC"), NOW)
    assert all(0 <= p.index < len(events) for p in problems)
    return events


@pytest.mark.parametrize("decode", DECODERS)
@FUZZ
@given(body=st.binary(max_size=200))
def test_any_bytes_decode_or_are_refused(decode: Decode, body: bytes) -> None:
    decoded_or_refused(decode, body)


@pytest.mark.parametrize("decode", DECODERS)
@FUZZ
@given(text=utf8_text)
def test_any_text_decodes_or_is_refused(decode: Decode, text: str) -> None:
    decoded_or_refused(decode, text.encode())


@pytest.mark.parametrize("decode", DECODERS)
@FUZZ
@given(value=json_values, ascii_only=st.booleans())
def test_any_json_value_decodes_or_is_refused(decode: Decode, value: Any, ascii_only: bool) -> None:
    decoded_or_refused(decode, json.dumps(value, ensure_ascii=ascii_only).encode())


@pytest.mark.parametrize("decode", DECODERS)
@FUZZ
@given(values=items, ascii_only=st.booleans())
def test_event_shaped_values_decode_or_are_refused(
    decode: Decode, values: list[Any], ascii_only: bool
) -> None:
    encode = as_json if decode is decode_json else as_ndjson
    events = decoded_or_refused(decode, encode(values, ascii_only))
    if events is not None:
        assert len(events) == len(values)


@pytest.mark.parametrize("decode", DECODERS)
@FUZZ
@given(body=mangled())
def test_mangled_bodies_decode_or_are_refused(decode: Decode, body: bytes) -> None:
    decoded_or_refused(decode, body)


@st.composite
def wire_events(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """One valid event as JSON text (fields in any order, quantity as a number or a string),
    and the values it was built from."""
    text = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=MAX_ID_LENGTH)
    moment = draw(moments)
    quantity = draw(st.none() | finite_decimals)
    subject = draw(st.none() | st.text(alphabet=st.characters(codec="utf-8"), max_size=128))
    fields = {
        "id": draw(text),
        "product": draw(st.sampled_from(APIS) | st.text(max_size=20)),
        "time": moment,
        "quantity": quantity,
        "subject": subject,
    }
    ascii_only = draw(st.booleans())
    stamp = moment.isoformat()
    if moment.utcoffset() == timedelta(0) and draw(st.booleans()):
        stamp = stamp.replace("+00:00", "Z")
    parts = {
        "id": json.dumps(fields["id"], ensure_ascii=ascii_only),
        "product": json.dumps(fields["product"], ensure_ascii=ascii_only),
        "time": json.dumps(stamp),
    }
    if quantity is not None:
        # str(Decimal) is JSON number syntax ("1.5", "1E+3", "0E-7"); or send it as a string.
        parts["quantity"] = str(quantity) if draw(st.booleans()) else json.dumps(str(quantity))
    elif draw(st.booleans()):
        parts["quantity"] = "null"
    if subject is not None:
        parts["subject"] = json.dumps(subject, ensure_ascii=ascii_only)
    elif draw(st.booleans()):
        parts["subject"] = "null"
    order = draw(st.permutations(list(parts)))
    return "{" + ", ".join(f'"{name}": {parts[name]}' for name in order) + "}", fields


@pytest.mark.parametrize("decode", DECODERS)
@FUZZ
@given(events=st.lists(wire_events(), min_size=1, max_size=4))
def test_valid_events_round_trip(decode: Decode, events: list[tuple[str, dict[str, Any]]]) -> None:
    texts = [text for text, _ in events]
    body = "[" + ",".join(texts) + "]" if decode is decode_json else "\r\n".join(texts)
    decoded = decode(body.encode())
    assert len(decoded) == len(events)
    for got, (_, sent) in zip(decoded, events, strict=True):
        assert (got.id, got.product, got.subject) == (sent["id"], sent["product"], sent["subject"])
        assert got.time == sent["time"]
        assert got.time.utcoffset() == sent["time"].utcoffset()
        assert got.quantity == sent["quantity"]
        if got.quantity is not None:
            assert isinstance(got.quantity, Decimal)


# ---- month= ----

op_zones = st.sampled_from(TIMEZONES)


def operation(tz: str) -> Operation:
    return Operation(id=1, name="acme", server="9901", timezone=tz, licenses=1, created=0)


def context() -> Context:
    return Context(storage=None, catalog=CATALOG, clock=lambda: NOW)  # type: ignore[arg-type]


month_like = (
    utf8_text
    | st.from_regex(r"[0-9]{1,5}-[0-9]{1,3}", fullmatch=True)
    | st.from_regex(r"\s*[0-9]{4}-[0-9]{2}\s*", fullmatch=True)
    | st.from_regex(r"\d{4}-\d{2}", fullmatch=True)
)


@FUZZ
@given(text=month_like)
def test_month_parse_is_strict(text: str) -> None:
    month, exc = attempt(lambda: Month.parse(text), MonthError)
    if exc is not None:
        assert isinstance(exc, ValueError)
        assert str(exc)
        return
    assert month is not None
    assert str(month) == text
    assert FIRST_YEAR <= month.year <= LAST_YEAR
    assert 1 <= month.month <= 12


@FUZZ
@given(text=month_like | st.none(), tz=op_zones)
def test_resolve_month_returns_a_past_month_or_refuses(text: str | None, tz: str) -> None:
    index, exc = attempt(lambda: resolve_month(context(), operation(tz), text))
    if exc is not None:
        return
    if text is None:
        assert index is None
        return
    assert index is not None
    assert index <= calendar(tz).current_month(NOW)
    assert str(Month.from_index(index)) == text


@FEW
@given(moment=st.datetimes(datetime(FIRST_YEAR, 1, 1), datetime(LAST_YEAR, 12, 31)), tz=op_zones)
def test_months_of_real_dates_parse_back(moment: datetime, tz: str) -> None:
    text = f"{moment.year:04d}-{moment.month:02d}"
    assert Month.parse(text) == Month(moment.year, moment.month)
    current = Month.from_index(calendar(tz).current_month(NOW))
    if Month(moment.year, moment.month) <= current:
        assert resolve_month(context(), operation(tz), text) == Month.parse(text).index
    else:
        with pytest.raises(BadParameters):
            resolve_month(context(), operation(tz), text)


# ---- date_ini= / date_end= ----

stamp_like = (
    utf8_text
    | st.from_regex(r"[0-9]{14}", fullmatch=True)
    | st.from_regex(r"\d{14}", fullmatch=True)
    | st.from_regex(r"[0-9]{12,16}", fullmatch=True)
)


@FUZZ
@given(text=stamp_like | st.none())
def test_parse_local_returns_a_time_or_refuses(text: str | None) -> None:
    parsed, exc = attempt(lambda: parse_local(text, "date_ini"))
    if exc is not None:
        assert "date_ini" in str(exc)
        return
    assert text is not None
    assert parsed is not None
    assert parsed.tzinfo is None
    assert parsed.microsecond == 0
    assert f"{parsed:%m%d%H%M%S}" == text[4:]
    assert int(text[:4]) == parsed.year


def compact(moment: datetime) -> str:
    return (
        f"{moment.year:04d}{moment.month:02d}{moment.day:02d}"
        f"{moment.hour:02d}{moment.minute:02d}{moment.second:02d}"
    )


@FEW
@given(moment=st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)))
def test_real_local_times_parse_back(moment: datetime) -> None:
    assert parse_local(compact(moment), "date_end") == moment.replace(microsecond=0)


# ---- cursor= and the listing's parameters together ----


@FUZZ
@given(
    text=utf8_text | st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0-9_=")
)
def test_a_forged_cursor_is_refused_or_read(text: str) -> None:
    position, exc = attempt(lambda: decode_cursor(text))
    if exc is None:
        assert position is not None
        assert all(isinstance(part, int) for part in position)


@FEW
@given(time=st.integers(-(2**63), 2**63 - 1), seq=st.integers(0, 2**63 - 1))
def test_cursors_round_trip(time: int, seq: int) -> None:
    assert decode_cursor(encode_cursor(time, seq)) == (time, seq)


class NoEvents:
    """A storage with nothing listed: the parameters are what is under test."""

    def events(self, *args: object) -> Iterator[object]:
        return iter(())


@FUZZ
@given(
    date_ini=stamp_like | st.none(),
    date_end=stamp_like | st.none(),
    product=st.none() | st.sampled_from(APIS) | st.text(max_size=12),
    cursor=st.none() | st.text(max_size=20),
    limit=st.integers(0, 2 * MAX_PAGE),
    tz=op_zones,
)
def test_listing_parameters_list_or_are_refused(
    date_ini: str | None,
    date_end: str | None,
    product: str | None,
    cursor: str | None,
    limit: int,
    tz: str,
) -> None:
    ctx = Context(storage=NoEvents(), catalog=CATALOG, clock=lambda: NOW)  # type: ignore[arg-type]
    page, exc = attempt(
        lambda: list_events(ctx, operation(tz), date_ini, date_end, product, cursor, limit)
    )
    if exc is None:
        assert page is not None
        assert (page.events, page.next_cursor) == ([], None)


@FEW
@given(
    start=st.datetimes(datetime(1971, 1, 1), datetime(2198, 12, 1)).map(
        lambda moment: moment.replace(microsecond=0)
    ),
    length=st.integers(0, 31 * 86400),
    tz=op_zones,
)
def test_windows_from_real_times_are_accepted(start: datetime, length: int, tz: str) -> None:
    """Any window of at most 31 days, sent as the client would format it, lists fine."""
    end = start + timedelta(seconds=length)
    ctx = Context(storage=NoEvents(), catalog=CATALOG, clock=lambda: NOW)  # type: ignore[arg-type]
    page = list_events(ctx, operation(tz), compact(start), compact(end), None, None)
    assert page.events == []
