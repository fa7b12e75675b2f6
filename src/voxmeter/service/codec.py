"""Decoding event batches (JSON array, NDJSON, CSV) into typed records, fast.

The fast path decodes a whole batch in one msgspec call. Only when that fails is the batch
decoded again element by element, to report every problem with its index and field.
"""

from __future__ import annotations

import csv
import io
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
_raw_list = msgspec.json.Decoder(list[msgspec.Raw])
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
    if count == 0:
        raise BadParameters("the batch is empty")
    if count > MAX_BATCH:
        raise BadParameters(f"at most {MAX_BATCH} events per request, got {count}")


def decode_json(body: bytes) -> list[EventIn]:
    """A JSON array of events."""
    try:
        events = _batch.decode(body)
    except UnicodeDecodeError as exc:
        raise BadParameters("the body is not valid UTF-8") from exc
    except msgspec.MsgspecError:
        pass
    else:
        _check_size(len(events))
        return events
    try:
        raws = _raw_list.decode(body)
    except msgspec.ValidationError as exc:
        raise BadParameters("the body must be a JSON array of events") from exc
    except msgspec.DecodeError as exc:
        raise BadParameters(f"malformed JSON ({exc})") from exc
    except RecursionError as exc:  # arrays nested thousands deep: no event looks like that
        raise BadParameters("malformed JSON (nested too deeply)") from exc
    _check_size(len(raws))
    return _decode_each(bytes(raw) for raw in raws)


def decode_ndjson(body: bytes) -> list[EventIn]:
    """One JSON event per line; blank lines are skipped."""
    lines = [line for line in body.split(b"\n") if line.strip()]
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
