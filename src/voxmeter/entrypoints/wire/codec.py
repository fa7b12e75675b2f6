"""Decoding event batches (JSON array, NDJSON, CSV) into typed records, fast.

The fast path decodes a whole batch in one msgspec call. Only when that fails is the batch
decoded again element by element, to report every problem with its index and field. Two things
the parser would get wrong are looked for in the text first (a cheap scan of the body, and a
closer look only where it finds something): times with more than 6 fractional digits or a leap
second (see `timetext`), and quantity strings written with other than ASCII digits ("١٢").

Decoding stops at the 10,001st element (JSON) or non-blank line (NDJSON): the rest of the body
is neither scanned nor turned into objects, so decoding an upload holds at most 10,000 events
whatever its body. A JSON body is decoded in one pass when that pass succeeds: a body too short
to hold 10,001 events is decoded as a plain list, a longer one into MAX_BATCH slots that refuse
one element more as soon as it starts. Only a batch that fails is scanned again, its elements
kept raw and counted first, so that its refusal names the count before any event's problem.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import re
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec

from voxmeter.domain.events import MAX_BATCH, MAX_ID_LENGTH, MAX_SUBJECT_LENGTH, Problem
from voxmeter.entrypoints.wire.timetext import LEAP_SECOND, LONG_FRACTION, kept_time
from voxmeter.errors import BadParameters
from voxmeter.service.ingest import InvalidBatch

ASCII_ONLY = "must be written with ASCII digits"


class EventIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """An event as sent. Unknown fields are refused so a misspelt `quantity` is never ignored.
    Its fields (text, a datetime, a Decimal) can't form reference cycles, so the garbage
    collector need not track the ten thousand of a batch."""

    id: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
    product: str
    time: Annotated[datetime, msgspec.Meta(tz=True)]
    quantity: Decimal | None = None
    subject: Annotated[str, msgspec.Meta(max_length=MAX_SUBJECT_LENGTH)] | None = None


class _Texts(msgspec.Struct, gc=False):
    """The raw JSON of an event's time and quantity; every other field is skipped."""

    time: msgspec.Raw = msgspec.Raw()
    quantity: msgspec.Raw = msgspec.Raw()


class _NotAscii(ValueError):
    """A quantity string with characters other than ASCII (digits of other scripts)."""


_batch = msgspec.json.Decoder(list[EventIn])
_one = msgspec.json.Decoder(EventIn)
_texts = msgspec.json.Decoder(list[_Texts])
_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])
_string = msgspec.json.Decoder(str)


def _parsed_plain(text: bytes) -> bool:
    """Nothing in JSON the parser accepted needs a closer look: all ASCII without escapes (so no
    quantity is written in other digits), and no time over 6 fractional digits (the parser
    refuses leap seconds, so a batch holding one never gets here)."""
    return text.isascii() and b"\\" not in text and LONG_FRACTION.search(text) is None


def _plain(text: bytes) -> bool:
    """As `_parsed_plain`, for JSON not parsed yet: no leap second either."""
    return _parsed_plain(text) and LEAP_SECOND not in text


def _json_string(raw: msgspec.Raw) -> str | None:
    """The text of a raw JSON value when it is a string."""
    data = bytes(raw)
    return _string.decode(data) if data[:1] == b'"' else None


def _texts_plain(body: bytes) -> bool:
    """The times and quantities of a parsed batch need no closer look (other fields, ids and
    subjects, may hold any text)."""
    texts = _texts.decode(body)
    quantities = b"".join([t.quantity for t in texts])
    return _parsed_plain(quantities) and _parsed_plain(b"".join([t.time for t in texts]))


def _rewritten(item: bytes) -> bytes:
    """One event's JSON with its time as kept; _NotAscii for a quantity in other digits."""
    try:
        fields = _fields.decode(item)
    except msgspec.MsgspecError:
        return item  # not an object: decoding it reports that
    quantity = fields.get("quantity")
    if quantity is not None:
        text = _json_string(quantity)
        if text is not None and not text.isascii():
            raise _NotAscii(text)
    time = fields.get("time")
    text = None if time is None else _json_string(time)
    if text is None or kept_time(text) == text:
        return item
    fields["time"] = msgspec.Raw(msgspec.json.encode(kept_time(text)))
    return msgspec.json.encode(fields)


def _decode_one(item: bytes) -> EventIn:
    return _one.decode(item if _plain(item) else _rewritten(item))


_NO_ELEMENT = msgspec.Raw(b"")
_Slots = msgspec.defstruct(
    "_Slots",
    [(f"e{i}", msgspec.Raw, _NO_ELEMENT) for i in range(MAX_BATCH)],
    array_like=True,
    frozen=True,
    gc=False,
    forbid_unknown_fields=True,
)
"""A JSON array as MAX_BATCH slots of raw (unparsed) elements: msgspec refuses one element more
as soon as it starts, even in a truncated body, so a batch over the limit costs a scan of its
first MAX_BATCH elements and at most MAX_BATCH small objects, whatever follows."""
_slots = msgspec.json.Decoder(_Slots)
_EVENT_LINE = re.compile(rb"\S[^\n]*")
_LINE_WINDOW = 1 << 20
_FIELD_AT = re.compile(r"at `\$(?:\[\d+\])?\.?([A-Za-z_]*)")
_FIELD_NAMED = re.compile(r"field `([^`]*)`")


def _problem(index: int, exc: msgspec.MsgspecError) -> Problem:
    text = str(exc)
    named = _FIELD_NAMED.search(text)
    at = _FIELD_AT.search(text)
    field = (named[1] if named else "") or (at[1] if at else "") or "event"
    message = text.split(" - at `", 1)[0]
    return Problem(index, field, message)


def _check_size(count: int) -> None:
    """`count` is the number of elements found, counting stops at MAX_BATCH + 1."""
    if count == 0:
        raise BadParameters("the batch is empty")
    if count > MAX_BATCH:
        raise BadParameters(f"at most {MAX_BATCH} events per request, got {count} or more")


def _elements(body: bytes) -> list[msgspec.Raw]:
    """The array's elements, raw, or BadParameters: not an array, malformed or too many."""
    try:
        slots = _slots.decode(body)
    except UnicodeDecodeError as exc:
        raise BadParameters("the body is not valid UTF-8") from exc
    except msgspec.ValidationError as exc:
        if body.lstrip().startswith(b"["):  # elements are raw: only their number can be wrong
            _check_size(MAX_BATCH + 1)
        raise BadParameters("the body must be a JSON array of events") from exc
    except msgspec.DecodeError as exc:
        raise BadParameters(f"malformed JSON ({exc})") from exc
    except RecursionError as exc:  # arrays nested thousands deep: no event looks like that
        raise BadParameters("malformed JSON (nested too deeply)") from exc
    raws = list(itertools.takewhile(bool, msgspec.structs.astuple(slots)))
    _check_size(len(raws))
    return raws


def too_many_at_start(start: bytes, ndjson: bool) -> None:
    """BadParameters when the start of a body already holds more than MAX_BATCH events (the
    rest need not be read); anything else, truncated or malformed, is left to the decoder.
    A start with fewer than MAX_BATCH line breaks (NDJSON) or commas (JSON, whose elements are
    separated by them) cannot hold that many, and is not scanned."""
    if start.count(b"\n" if ndjson else b",") < MAX_BATCH:
        return
    if ndjson:
        if len(_ndjson_lines(start)) > MAX_BATCH:
            _check_size(MAX_BATCH + 1)
        return
    if not start.lstrip().startswith(b"["):
        return
    try:
        _slots.decode(start)
    except msgspec.ValidationError:  # elements are raw: only their number can be wrong
        _check_size(MAX_BATCH + 1)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return


SHORTEST_EVENT = len(b'{"id":"a","product":"","time":"2026-05-10T08:30:00Z"},')
"""The fewest bytes an element that decodes to an event takes, with its comma: every key is
required text and every value's shortest form is here (a time needs its seconds and offset)."""
SHORT_BODY = (MAX_BATCH + 1) * SHORTEST_EVENT
"""A body shorter than this cannot hold MAX_BATCH + 1 events: decoding it as a plain list builds
at most MAX_BATCH of them (the decoder stops at the first element that is not one)."""


class _NoEvent:
    """What a slot holds when the array ended before it."""


_NO_EVENT = _NoEvent()


@functools.cache
def _slotted() -> msgspec.json.Decoder[Any]:
    """A decoder of a JSON array of at most MAX_BATCH events into slots (built when first
    needed: a type of ten thousand fields takes a tenth of a second to make)."""
    slots = msgspec.defstruct(
        "_EventSlots",
        [(f"e{i}", EventIn, _NO_EVENT) for i in range(MAX_BATCH)],
        array_like=True,
        frozen=True,
        gc=False,
        forbid_unknown_fields=True,
    )
    return msgspec.json.Decoder(slots)


def _decoded(body: bytes) -> list[EventIn]:
    """The batch's events in one pass, never more than MAX_BATCH of them built; MsgspecError
    (or UnicodeDecodeError) for anything else, too many elements included."""
    if len(body) < SHORT_BODY:
        return _batch.decode(body)
    slots = msgspec.structs.astuple(_slotted().decode(body))
    low, high = 0, len(slots)  # events fill the slots from the first: find where they end
    while low < high:
        middle = (low + high) // 2
        if slots[middle] is _NO_EVENT:
            high = middle
        else:
            low = middle + 1
    return list(slots[:low])


def decode_json(body: bytes) -> list[EventIn]:
    """A JSON array of events."""
    try:
        events = _decoded(body)
    except UnicodeDecodeError as exc:
        _elements(body)  # a refusal of the body as a whole comes first
        raise BadParameters("the body is not valid UTF-8") from exc
    except (msgspec.MsgspecError, RecursionError):
        pass
    else:
        _check_size(len(events))
        if _parsed_plain(body) or _texts_plain(body):
            return events
    return _decode_each(bytes(raw) for raw in _elements(body))


def _ndjson_lines(body: bytes) -> list[bytes]:
    """The non-blank lines (without their leading blanks), at most MAX_BATCH + 1 of them.

    A body of at most a window's length and MAX_BATCH line breaks is split at once (at most
    MAX_BATCH + 1 pieces, copies of at most a megabyte together). Any other is one
    regular-expression scan, a window of about a megabyte at a time so that other threads (the
    event loop) run in between: blank lines never become objects.
    """
    if len(body) <= _LINE_WINDOW and body.count(b"\n") <= MAX_BATCH:
        return [line for piece in body.split(b"\n") if (line := piece.lstrip())]
    lines: list[bytes] = []
    start, size = 0, len(body)
    while start < size and len(lines) <= MAX_BATCH:
        end = body.find(b"\n", min(start + _LINE_WINDOW, size))
        end = size if end < 0 else end
        found = _EVENT_LINE.finditer(body, start, end)
        lines += (m.group() for m in itertools.islice(found, MAX_BATCH + 1 - len(lines)))
        start = end + 1
    return lines


def decode_ndjson(body: bytes) -> list[EventIn]:
    """One JSON event per line; blank lines are skipped."""
    lines = _ndjson_lines(body)
    _check_size(len(lines))
    try:
        events = [_one.decode(line) for line in lines]
    except UnicodeDecodeError as exc:
        raise BadParameters("the body is not valid UTF-8") from exc
    except msgspec.MsgspecError:
        return _decode_each(lines)
    return events if _parsed_plain(body) else _decode_each(lines)


def _decode_each(items: Iterable[bytes]) -> list[EventIn]:
    decoded: list[tuple[int, EventIn]] = []
    problems: list[Problem] = []
    for index, item in enumerate(items):
        try:
            decoded.append((index, _decode_one(item)))
        except msgspec.MsgspecError as exc:
            problems.append(_problem(index, exc))
        except _NotAscii:
            problems.append(Problem(index, "quantity", ASCII_ONLY))
        except UnicodeDecodeError:
            problems.append(Problem(index, "event", "is not valid UTF-8"))
    if problems:
        raise InvalidBatch(problems, decoded)
    return [event for _, event in decoded]


CSV_FIELDS = ("id", "product", "time", "quantity", "subject")


def csv_rows(text: str) -> list[dict[str, str]]:
    """CSV with a header naming some of id, product, time, quantity, subject."""
    reader = csv.DictReader(io.StringIO(text))
    try:
        unknown = [f for f in reader.fieldnames or [] if f not in CSV_FIELDS]
        if unknown:
            raise BadParameters(f"unknown CSV column {unknown[0]!r}")
        return [{k: v for k, v in row.items() if v not in ("", None)} for row in reader]
    except csv.Error as exc:  # e.g. a field over the csv module's size limit
        raise BadParameters(f"malformed CSV (line {reader.line_num}: {exc})") from exc


def decode_csv_rows(rows: list[dict[str, str]]) -> list[EventIn]:
    decoded: list[tuple[int, EventIn]] = []
    problems: list[Problem] = []
    for index, row in enumerate(rows):
        quantity, time = row.get("quantity"), row.get("time")
        if quantity is not None and not quantity.isascii():
            problems.append(Problem(index, "quantity", ASCII_ONLY))
            continue
        if time is not None:
            row = {**row, "time": kept_time(time)}
        try:
            decoded.append((index, msgspec.convert(row, EventIn, strict=False)))
        except msgspec.MsgspecError as exc:
            problems.append(_problem(index, exc))
    if problems:
        raise InvalidBatch(problems, decoded)
    return [event for _, event in decoded]
