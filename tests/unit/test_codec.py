"""Decoding event batches: JSON array, NDJSON and CSV (docs/api.md, Ingest)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from voxmeter.domain.batch import validate_batch
from voxmeter.domain.catalog import Catalog
from voxmeter.domain.months import calendar, to_micros
from voxmeter.entrypoints.wire import codec
from voxmeter.entrypoints.wire.codec import (
    SHORT_BODY,
    EventIn,
    csv_rows,
    decode_csv_rows,
    decode_json,
    decode_ndjson,
    too_many_at_start,
)
from voxmeter.entrypoints.wire.errors import message, row_of
from voxmeter.errors import BadParameters
from voxmeter.service.ingest import InvalidBatch

Decode = Callable[[bytes], list[EventIn]]
Encode = Callable[[list[object]], bytes]

GOOD = {"id": "e-1", "product": "rsync", "time": "2026-05-10T08:30:00Z", "quantity": "1.5"}
NOW = to_micros(datetime(2026, 5, 15, tzinfo=UTC))


def good(**changes: object) -> dict[str, object]:
    item: dict[str, object] = {**GOOD, **changes}
    return {k: v for k, v in item.items() if v is not ...}


def as_json(items: list[object]) -> bytes:
    return json.dumps(items).encode()


def as_ndjson(items: list[object]) -> bytes:
    return b"\n".join(json.dumps(i).encode() for i in items) + b"\n"


def refused(decode: Callable[[Any], Any], body: object) -> BadParameters:
    with pytest.raises(BadParameters) as info:
        decode(body)
    error = info.value
    assert row_of(type(error)).status == 400
    assert row_of(type(error)).error == "BAD REQUEST"
    assert message(error).startswith("SOME PARAMETERS ARE REQUIRED: ")
    return error


def fields(error: BadParameters) -> list[tuple[int, str]]:
    for item in error.data:
        assert isinstance(item, dict)
        assert set(item) == {"index", "field", "error"}
        assert isinstance(item["error"], str)
        assert item["error"]
    return [(item["index"], item["field"]) for item in error.data]  # type: ignore[index]


DECODERS = [
    pytest.param(decode_json, as_json, id="json"),
    pytest.param(decode_ndjson, as_ndjson, id="ndjson"),
]


def pipeline(decode: Callable[[Any], Any], body: object) -> list[tuple[int, str]]:
    """Decode, then validate as ingest does: the (index, field) of every problem found."""
    try:
        incoming = decode(body)
    except BadParameters as exc:
        return fields(exc)
    _, problems = validate_batch(incoming, Catalog.load(), calendar("UTC"), NOW)
    return [(p.index, p.field) for p in problems]


# ----------------------------------------------------------------------------- success


@pytest.mark.parametrize(("decode", "encode"), DECODERS)
def test_decodes_every_field(decode: Decode, encode: Encode) -> None:
    body = encode(
        [
            good(),
            good(id="e-2", time="2026-05-10T14:15:00+05:45", quantity=2, subject="s-1"),
            good(id="e-3", product="interactions", quantity=...),
            good(id="e-4", quantity=None, subject=None),
        ]
    )
    events = decode(body)
    assert events == [
        EventIn("e-1", "rsync", datetime(2026, 5, 10, 8, 30, tzinfo=UTC), Decimal("1.5"), None),
        EventIn(
            "e-2",
            "rsync",
            datetime(2026, 5, 10, 14, 15, tzinfo=timezone(timedelta(hours=5, minutes=45))),
            Decimal(2),
            "s-1",
        ),
        EventIn("e-3", "interactions", datetime(2026, 5, 10, 8, 30, tzinfo=UTC), None, None),
        EventIn("e-4", "rsync", datetime(2026, 5, 10, 8, 30, tzinfo=UTC), None, None),
    ]
    assert to_micros(events[1].time) == to_micros(datetime(2026, 5, 10, 8, 30, tzinfo=UTC))


@pytest.mark.parametrize(("decode", "encode"), DECODERS)
def test_json_numbers_are_exact_decimals(decode: Decode, encode: Encode) -> None:
    body = encode([good(quantity=0)]).replace(b'"quantity": 0', b'"quantity": 0.1')
    (event,) = decode(body)
    assert isinstance(event.quantity, Decimal)
    assert event.quantity == Decimal("0.1")  # not 0.1000000000000000055511151231257827
    body = encode([good(quantity=0)]).replace(b'"quantity": 0', b'"quantity": 12.500000')
    assert decode(body)[0].quantity == Decimal("12.5")


def test_ndjson_skips_blank_lines_and_accepts_crlf() -> None:
    line = json.dumps(good()).encode()
    body = b"\n" + line + b"\r\n\r\n   \n" + json.dumps(good(id="e-2")).encode()
    events = decode_ndjson(body)
    assert [e.id for e in events] == ["e-1", "e-2"]


@pytest.mark.parametrize(("decode", "encode"), DECODERS)
def test_ten_thousand_events_are_accepted(decode: Decode, encode: Encode) -> None:
    events = decode(encode([good(id=f"e-{n}") for n in range(10_000)]))
    assert len(events) == 10_000
    assert events[-1].id == "e-9999"


@pytest.mark.parametrize(("decode", "encode"), DECODERS)
def test_id_of_128_chars_is_accepted(decode: Decode, encode: Encode) -> None:
    (event,) = decode(encode([good(id="x" * 128, subject="s" * 128)]))
    assert event.id == "x" * 128
    assert event.subject == "s" * 128


# ------------------------------------------------------------------- whole-body errors


@pytest.mark.parametrize(
    "body",
    [b"", b"[", b"[{]", b"[{'id': 'a'}]", b"not json", b"[1,]", b'[{"id":"a"} {"id":"b"}]'],
)
def test_malformed_json(body: bytes) -> None:
    error = refused(decode_json, body)
    assert "malformed JSON" in message(error)
    assert error.data == []


@pytest.mark.parametrize("body", [b"[" * 1000, b"[" + b"[" * 5000 + b"]" * 5001])
def test_deeply_nested_arrays_are_malformed_json_not_a_crash(body: bytes) -> None:
    assert "malformed JSON" in message(refused(decode_json, body))


def test_nan_literal_is_malformed_json() -> None:
    body = b'[{"id":"a","product":"rsync","time":"2026-05-10T08:30:00Z","quantity":NaN}]'
    assert "malformed JSON" in message(refused(decode_json, body))


@pytest.mark.parametrize("body", [b"\xff\xfe[]", b"\xff", b"[\x80]"])
def test_non_utf8_body(body: bytes) -> None:
    refused(decode_json, body)


@pytest.mark.parametrize(("decode", "encode"), DECODERS)
def test_non_utf8_inside_a_string(decode: Decode, encode: Encode) -> None:
    body = encode([good(id="PLACEHOLDER")]).replace(b"PLACEHOLDER", b"a\xffb")
    error = refused(decode, body)
    # Where the decoder reports it depends on msgspec's release: the body as a whole, the field,
    # or (0.23 and later) the event that holds the string.
    assert fields(error) in ([], [(0, "id")], [(0, "event")])


@pytest.mark.parametrize("body", [b'{"id":"a"}', b"42", b'"events"', b"null", b"true"])
def test_json_body_must_be_an_array(body: bytes) -> None:
    error = refused(decode_json, body)
    assert "JSON array" in message(error)
    assert error.data == []


@pytest.mark.parametrize(
    ("decode", "body"),
    [
        (decode_json, b"[]"),
        (decode_json, b"  [ ]  "),
        (decode_ndjson, b""),
        (decode_ndjson, b"\n \n"),
    ],
)
def test_empty_batch(decode: Decode, body: bytes) -> None:
    error = refused(decode, body)
    assert "empty" in message(error)
    assert error.data == []


@pytest.mark.parametrize(("decode", "encode"), DECODERS)
def test_more_than_ten_thousand_events(decode: Decode, encode: Encode) -> None:
    error = refused(decode, encode([good(id=f"e-{n}") for n in range(10_001)]))
    assert "10000" in message(error)
    assert "10001" in message(error)


@pytest.mark.parametrize(("decode", "encode"), DECODERS)
def test_more_than_ten_thousand_bad_events(decode: Decode, encode: Encode) -> None:
    error = refused(decode, encode([{"id": n} for n in range(10_001)]))
    assert "10000" in message(error)


# -------------------------------------------------------------------- per-event errors


FIELD_CASES = [
    pytest.param(good(id=...), "id", id="missing-id"),
    pytest.param(good(product=...), "product", id="missing-product"),
    pytest.param(good(time=...), "time", id="missing-time"),
    pytest.param(good(id=""), "id", id="empty-id"),
    pytest.param(good(id="x" * 129), "id", id="129-char-id"),
    pytest.param(good(id=None), "id", id="null-id"),
    pytest.param(good(id=7), "id", id="int-id"),
    pytest.param(good(product=5), "product", id="int-product"),
    pytest.param(good(product=["rsync"]), "product", id="list-product"),
    pytest.param(good(time="2026-05-10T08:30:00"), "time", id="naive-time"),
    pytest.param(good(time="2026-05-10"), "time", id="date-only"),
    pytest.param(good(time="yesterday"), "time", id="text-time"),
    pytest.param(good(time=1778401800), "time", id="epoch-time"),
    pytest.param(good(quantity=True), "quantity", id="bool-quantity"),
    pytest.param(good(quantity="abc"), "quantity", id="text-quantity"),
    pytest.param(good(quantity=[1]), "quantity", id="list-quantity"),
    pytest.param(good(quantity={"v": 1}), "quantity", id="object-quantity"),
    pytest.param(good(subject=3), "subject", id="int-subject"),
    pytest.param(good(subject="s" * 129), "subject", id="129-char-subject"),
    pytest.param(good(foo=1), "foo", id="unknown-field"),
    pytest.param(good(quanity="1"), "quanity", id="misspelt-quantity"),
    pytest.param(1, "event", id="number-element"),
    pytest.param("event", "event", id="string-element"),
    pytest.param(None, "event", id="null-element"),
    pytest.param([GOOD], "event", id="array-element"),
]


@pytest.mark.parametrize(("decode", "encode"), DECODERS)
@pytest.mark.parametrize(("item", "field"), FIELD_CASES)
def test_bad_event_field(decode: Decode, encode: Encode, item: object, field: str) -> None:
    error = refused(decode, encode([good(id="ok"), item]))
    assert message(error) == "SOME PARAMETERS ARE REQUIRED: invalid events"
    assert fields(error) == [(1, field)]


def test_unknown_field_is_named_in_the_error() -> None:
    error = refused(decode_json, as_json([good(colour="red")]))
    assert fields(error) == [(0, "colour")]
    assert "colour" in error.data[0]["error"]  # type: ignore[index]


@pytest.mark.parametrize(("decode", "encode"), DECODERS)
def test_every_bad_element_is_listed(decode: Decode, encode: Encode) -> None:
    items = [
        good(id="ok-0"),
        good(id=""),
        good(id="ok-2"),
        good(time="2026-05-10T08:30:00"),
        good(quantity=True),
        42,
        good(id="ok-6"),
        good(extra=1),
        good(product=...),
    ]
    error = refused(decode, encode(items))
    assert fields(error) == [(1, "id"), (3, "time"), (4, "quantity"), (5, "event"),
                             (7, "extra"), (8, "product")]  # fmt: skip


def test_ndjson_malformed_line_is_reported_with_its_index() -> None:
    body = json.dumps(good()).encode() + b"\n{bad\n" + json.dumps(good(id="")).encode() + b"\n"
    error = refused(decode_ndjson, body)
    assert fields(error) == [(1, "event"), (2, "id")]


def test_ndjson_indices_count_events_not_blank_lines() -> None:
    body = b"\n\n" + json.dumps(good()).encode() + b"\n\n" + json.dumps(good(id="")).encode()
    assert fields(refused(decode_ndjson, body)) == [(1, "id")]


@pytest.mark.parametrize(("decode", "encode"), DECODERS)
@pytest.mark.parametrize("value", ["NaN", "nan", "sNaN", "Infinity", "-Infinity", "inf"])
def test_non_finite_quantity_string_is_refused(decode: Decode, encode: Encode, value: str) -> None:
    body = encode([good(id="ok"), good(quantity=value)])
    assert pipeline(decode, body) == [(1, "quantity")]


# ---------------------------------------------------------------------------------- CSV


CSV_HEADER = "id,product,time,quantity,subject\n"


def test_csv_rows_drop_empty_cells() -> None:
    rows = csv_rows(
        CSV_HEADER + "a,rsync,2026-05-10T08:30:00Z,1.5,\nb,interactions,2026-05-10T08:30:00Z,,s\n"
    )
    assert rows == [
        {"id": "a", "product": "rsync", "time": "2026-05-10T08:30:00Z", "quantity": "1.5"},
        {"id": "b", "product": "interactions", "time": "2026-05-10T08:30:00Z", "subject": "s"},
    ]


def test_csv_header_may_name_a_subset_in_any_order() -> None:
    rows = csv_rows('time,id,product\n2026-05-10T08:30:00+05:45,"a,1",vision\n')
    assert rows == [{"time": "2026-05-10T08:30:00+05:45", "id": "a,1", "product": "vision"}]
    (event,) = decode_csv_rows(rows)
    assert event == EventIn(
        "a,1",
        "vision",
        datetime(2026, 5, 10, 8, 30, tzinfo=timezone(timedelta(hours=5, minutes=45))),
    )


@pytest.mark.parametrize(
    "header", ["id,product,time,qty\n", "id,product,when\n", "ID,product,time\n"]
)
def test_csv_unknown_column(header: str) -> None:
    error = refused(csv_rows, header + "a,b,c\n")
    assert "unknown CSV column" in message(error)
    assert error.data == []


def test_csv_decodes_quantities_exactly() -> None:
    events = decode_csv_rows(csv_rows(CSV_HEADER + "a,rsync,2026-05-10T08:30:00Z,0.1,\n"))
    assert events[0].quantity == Decimal("0.1")
    assert events[0].time == datetime(2026, 5, 10, 8, 30, tzinfo=UTC)


def test_csv_problems_list_every_row_with_fields() -> None:
    text = CSV_HEADER + "\n".join(
        [
            "a,rsync,2026-05-10T08:30:00Z,1,",
            ",rsync,2026-05-10T08:30:00Z,1,",
            "c,rsync,2026-05-10T08:30:00,1,",
            "d,rsync,2026-05-10T08:30:00Z,abc,",
            "e,,2026-05-10T08:30:00Z,1,",
            "f,rsync,,1,",
            "g,rsync,2026-05-10T08:30:00Z,1," + "s" * 129,
            "h" * 129 + ",rsync,2026-05-10T08:30:00Z,1,",
        ]
    )
    error = refused(lambda t: decode_csv_rows(csv_rows(t)), text)
    assert fields(error) == [(1, "id"), (2, "time"), (3, "quantity"), (4, "product"),
                             (5, "time"), (6, "subject"), (7, "id")]  # fmt: skip


def test_csv_problems_carry_the_rows_that_did_decode() -> None:
    rows = csv_rows(
        CSV_HEADER + "a,rsync,2026-05-10T08:30:00Z,1,\n,rsync,2026-05-10T08:30:00Z,1,\n"
    )
    error = refused(decode_csv_rows, rows)
    assert fields(error) == [(1, "id")]
    assert isinstance(error, InvalidBatch)
    assert [(index, event.id) for index, event in error.decoded] == [(0, "a")]


def test_csv_row_with_extra_cells_is_refused() -> None:
    text = CSV_HEADER + "a,rsync,2026-05-10T08:30:00Z,1,s,surplus\n"
    error = refused(lambda t: decode_csv_rows(csv_rows(t)), text)
    assert [index for index, _ in fields(error)] == [0]


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-1", "1e400", "0.0000001"])
def test_csv_bad_quantity_is_refused(value: str) -> None:
    text = CSV_HEADER + f"a,rsync,2026-05-10T08:30:00Z,1,\nb,rsync,2026-05-10T08:30:00Z,{value},\n"
    assert pipeline(lambda t: decode_csv_rows(csv_rows(t)), text) == [(1, "quantity")]


def test_a_csv_field_over_the_size_limit_is_a_clear_error() -> None:
    from voxmeter.entrypoints.wire.codec import csv_rows

    text = "id,product,time,quantity\n" + "x" * 200_000 + ",rsync,2026-05-01T00:00:00Z,1\n"
    with pytest.raises(BadParameters, match="malformed CSV"):
        csv_rows(text)


# -------------------------------------------------------------------- oversized batches

BIG = 16 * 1024 * 1024
"""The default body limit."""


def _peak_while(work: Callable[[], object]) -> int:
    """The most memory Python allocated (bytes) while `work` ran, over what it held before."""
    import tracemalloc

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        work()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("decode", "body"),
    [
        pytest.param(decode_json, b"[" + b"0," * (BIG // 2 - 2) + b"0]", id="json-zeros"),
        pytest.param(decode_json, b"[" + b"{}," * (BIG // 3 - 2) + b"{}]", id="json-objects"),
        pytest.param(decode_json, b'["a",' + b'"",' * (BIG // 3 - 3) + b"1]", id="json-strings"),
        pytest.param(decode_ndjson, b"ab\n" * (BIG // 3), id="ndjson-lines"),
        pytest.param(decode_ndjson, b"{}\r\n \n" * (BIG // 6), id="ndjson-crlf-blanks"),
    ],
)
def test_a_batch_over_the_limit_is_refused_without_building_its_elements(
    decode: Decode, body: bytes
) -> None:
    """Millions of elements are counted, not built: refusing one costs a few MB, whatever the
    count (building them cost hundreds)."""
    errors: list[BadParameters] = []

    def work() -> None:
        with pytest.raises(BadParameters) as info:
            decode(body)
        errors.append(info.value)

    peak = _peak_while(work)
    assert peak < 8 * 1024 * 1024, f"{peak / 2**20:.0f} MiB"
    assert message(errors[0]) == (
        "SOME PARAMETERS ARE REQUIRED: at most 10000 events per request, got 10001 or more"
    )


@pytest.mark.parametrize(
    "body",
    [
        b"\n" * BIG,
        b" \r\n" * (BIG // 3),
        (b"\n" * 4094 + json.dumps(good()).encode() + b"\n") * 2,
    ],
    ids=["newlines", "blank-crlf", "sparse"],
)
def test_ndjson_blank_lines_cost_nothing_per_line(body: bytes) -> None:
    """Blank lines never become objects, however many there are."""
    found: list[int] = []
    peak = _peak_while(lambda: found.append(len(_try(decode_ndjson, body))))
    assert peak < 4 * 1024 * 1024, f"{peak / 2**20:.0f} MiB"
    assert found == [0 if body.strip() == b"" else 2]


def _try(decode: Decode, body: bytes) -> list[EventIn]:
    """The events, or none when the body holds none (refused as empty)."""
    try:
        return decode(body)
    except BadParameters as exc:
        if "empty" not in message(exc):
            raise
        return []


def test_ten_thousand_events_then_junk_is_too_many() -> None:
    """The element after the 10,000th is refused whatever it is: valid, junk or malformed."""
    events = [good(id=f"e-{n}") for n in range(10_000)]
    body = as_json(events)
    for tail in (b', {"id": 1}]', b", 0]", b", [[[[]]]]]"):
        error = refused(decode_json, body[:-1] + tail)
        assert message(error).endswith("at most 10000 events per request, got 10001 or more")
    error = refused(decode_json, body[:-1] + b", 0")  # unterminated, but one too many already
    assert message(error).endswith("at most 10000 events per request, got 10001 or more")
    assert "malformed JSON" in message(refused(decode_json, body[:-1]))  # unterminated, 10,000


def test_ndjson_ten_thousand_lines_and_blank_ones_are_accepted() -> None:
    lines = [json.dumps(good(id=f"e-{n}")).encode() for n in range(10_000)]
    body = b"\n \r\n\t\n".join(lines) + b"\n" * 100_000
    assert len(decode_ndjson(body)) == 10_000
    assert "got 10001 or more" in message(refused(decode_ndjson, body + b"x\n"))


# ------------------------------------------------------------------ one pass when it decodes

SHORTEST = b'{"id":"a","product":"","time":"2026-05-10T08:30:00Z"}'
"""The shortest element that decodes to an event."""


def test_no_body_shorter_than_the_plain_decoding_bound_holds_10001_events() -> None:
    """Below SHORT_BODY a batch is decoded as a plain list: it must not be able to hold more
    events than a batch may (the decoder stops at the first element that is not one)."""
    assert len(decode_json(b"[" + SHORTEST + b"]")) == 1
    assert len(b"[" + b",".join([SHORTEST] * 10_001) + b"]") >= SHORT_BODY
    for at in range(len(SHORTEST)):  # no element one byte shorter decodes to an event
        shorter = SHORTEST[:at] + SHORTEST[at + 1 :]
        with pytest.raises(BadParameters):
            decode_json(b"[" + shorter + b"]")
    for time in ("2026-05-10T08:30Z", "20260510T083000Z", "2026-05-10T08:30:00"):
        with pytest.raises(BadParameters):
            decode_json(as_json([{"id": "a", "product": "", "time": time}]))


@pytest.mark.parametrize("count", [1_000, 10_000])
def test_a_batch_that_decodes_is_not_scanned_again(
    count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The count scan (elements kept raw) is for batches that fail only."""
    body = as_json([good(id=f"e-{n}") for n in range(count)])
    assert (len(body) < SHORT_BODY) == (count == 1_000)  # both ways of decoding in one pass

    def no_scan(body: bytes) -> list[object]:
        raise AssertionError("scanned again")

    monkeypatch.setattr(codec, "_elements", no_scan)
    assert [event.id for event in decode_json(body)] == [f"e-{n}" for n in range(count)]


def test_valid_events_over_the_count_are_refused_having_built_at_most_10000() -> None:
    body = b"[" + b",".join([SHORTEST] * (BIG // len(SHORTEST) - 1)) + b"]"
    errors: list[BadParameters] = []

    def work() -> None:
        with pytest.raises(BadParameters) as info:
            decode_json(body)
        errors.append(info.value)

    peak = _peak_while(work)
    assert peak < 8 * 1024 * 1024, f"{peak / 2**20:.0f} MiB"
    assert message(errors[0]).endswith("at most 10000 events per request, got 10001 or more")


@pytest.mark.parametrize("ndjson", [False, True])
def test_a_start_that_cannot_hold_10001_elements_is_not_scanned(
    ndjson: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An early look at a usual batch's start costs a count of one byte, not a scan."""
    encode = as_ndjson if ndjson else as_json
    start = encode([good(id=f"e-{n}") for n in range(2_000)])[:CHUNK_LOOK]

    class NoScan:
        def decode(self, body: bytes) -> None:
            raise AssertionError("scanned")

    monkeypatch.setattr(codec, "_slots", NoScan())
    monkeypatch.setattr(codec, "_ndjson_lines", NoScan().decode)
    too_many_at_start(start, ndjson)  # not refused, and not scanned
    with pytest.raises(AssertionError, match="scanned"):
        too_many_at_start(b"[" + b"0," * 10_000, ndjson=False)
    with pytest.raises(AssertionError, match="scanned"):
        too_many_at_start(b"ab\n" * 10_000, ndjson=True)


CHUNK_LOOK = 64 * 1024
"""The first early look's length."""


@pytest.mark.parametrize(
    ("blank_lines", "blanks"),
    [(0, 0), (20_000, 0), (0, 2 * 1024 * 1024)],
    ids=["split-at-once", "many-line-breaks", "long-body"],
)
def test_ndjson_lines_are_the_same_split_at_once_or_scanned(blank_lines: int, blanks: int) -> None:
    """A short body of few line breaks is split at once, any other scanned: the same lines."""
    lines = [json.dumps(good(id=f"e-{n}")).encode() for n in range(3)]
    body = b"\n".join(
        [b" \t" + lines[0], b"\x0b\x0c" + lines[1] + b" \r", b"\n" * blank_lines + b" " * blanks]
    )
    body += b"\r\n \x0c\n" + lines[2]
    assert [event.id for event in decode_ndjson(body)] == ["e-0", "e-1", "e-2"]
    error = refused(decode_ndjson, body + b"\n \x0b{bad")
    assert fields(error) == [(3, "event")]
