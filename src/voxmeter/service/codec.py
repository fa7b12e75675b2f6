"""Decoding event batches (JSON array, NDJSON, CSV) into typed records, fast.

The fast path decodes a whole batch in one msgspec call. Only when that fails is the batch
decoded again element by element, to report every problem with its index and field.

A batch is counted before anything is built per event, and counting stops at the 10,001st
element (JSON) or non-blank line (NDJSON): the rest of the body is neither scanned nor turned
into objects, so decoding an upload holds at most 10,000 events whatever its body.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Annotated

import msgspec

from voxmeter.domain.events import MAX_BATCH, MAX_ID_LENGTH, MAX_SUBJECT_LENGTH, Problem
from voxmeter.errors import BadParameters


class InvalidBatch(BadParameters):
    """Some events did not decode. Carries those that did, so their rule problems can be listed
    beside the decoding ones (every problem of a batch is reported at once)."""

    def __init__(self, problems: list[Problem], decoded: list[tuple[int, EventIn]]) -> None:
        super().__init__("invalid events", [p.as_dict() for p in problems])
        self.problems = problems
        self.decoded = decoded


class EventIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """An event as sent. Unknown fields are refused so a misspelt `quantity` is never ignored.
    Its fields (text, a datetime, a Decimal) can't form reference cycles, so the garbage
    collector need not track the ten thousand of a batch."""

    id: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
    product: str
    time: Annotated[datetime, msgspec.Meta(tz=True)]
    quantity: Decimal | None = None
    subject: Annotated[str, msgspec.Meta(max_length=MAX_SUBJECT_LENGTH)] | None = None


_batch = msgspec.json.Decoder(list[EventIn])
_one = msgspec.json.Decoder(EventIn)
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
    rest need not be read); anything else, truncated or malformed, is left to the decoder."""
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


def decode_json(body: bytes) -> list[EventIn]:
    """A JSON array of events."""
    raws = _elements(body)
    try:
        return _batch.decode(body)
    except UnicodeDecodeError as exc:
        raise BadParameters("the body is not valid UTF-8") from exc
    except msgspec.MsgspecError:
        return _decode_each(bytes(raw) for raw in raws)


def _ndjson_lines(body: bytes) -> list[bytes]:
    """The non-blank lines (without their leading blanks), at most MAX_BATCH + 1 of them.

    One regular-expression scan, a window of about a megabyte at a time so that other threads
    (the event loop) run in between; blank lines never become objects.
    """
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
        return [_one.decode(line) for line in lines]
    except UnicodeDecodeError as exc:
        raise BadParameters("the body is not valid UTF-8") from exc
    except msgspec.MsgspecError:
        return _decode_each(lines)


def _decode_each(items: Iterable[bytes]) -> list[EventIn]:
    decoded: list[tuple[int, EventIn]] = []
    problems: list[Problem] = []
    for index, item in enumerate(items):
        try:
            decoded.append((index, _one.decode(item)))
        except msgspec.MsgspecError as exc:
            problems.append(_problem(index, exc))
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
        try:
            decoded.append((index, msgspec.convert(row, EventIn, strict=False)))
        except msgspec.MsgspecError as exc:
            problems.append(_problem(index, exc))
    if problems:
        raise InvalidBatch(problems, decoded)
    return [event for _, event in decoded]
