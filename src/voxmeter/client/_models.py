"""Typed results and the tolerant parsing of hosted-API responses.

The hosted API is loose: `code` is `200`, `"200"` or `"0"`, blanks (`" "`, `""`) stand for
missing values and figures are strings that may carry spaces. Everything here accepts those
shapes, keeps the raw JSON on each result for debugging, and raises `ResponseFormatError` for
anything it cannot read rather than guessing (no float ever touches a figure).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from voxmeter.client._errors import ResponseFormatError

#: Envelope codes that mean success ("0" is used by another hosted API family).
SUCCESS_CODES = frozenset({0, 200})

_SPACES = re.compile(r"[\s\u00a0\u202f]+")
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[ T].*)?$")


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One product's figure for the month, as the billing API reported it."""

    api: str
    """The product asked for (`ivr_minutes`); the hosted row itself does not carry it."""
    operation: str | None
    description: str | None
    items: Decimal
    """The month's figure, exact (parsed from the string, never via float)."""
    date: dt.date | None
    """The day of the query in the operation's timezone, when the server sent one."""
    unit: str | None
    """The catalog unit (`minutes`, `licenses`); None for a product not in the local catalog."""
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """`information.php?api=token_info`: today's quota and use (blank fields become None)."""

    description: str | None
    token_limit: int | None
    token_use_today: int | None
    all_token_today: int | None
    available_consumption_options: int | None
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class IngestResult:
    """The sum over every batch of one `send_events` call."""

    accepted: int
    duplicates: int
    batches: int
    raw: list[dict[str, Any]] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded `{"code", "error", "msg", "data"}` body; `data` always a list of objects."""

    code: int | None
    error: str | None
    msg: str
    data: list[Any]
    raw: dict[str, Any] = field(repr=False, compare=False)


def blank(value: object) -> bool:
    """None, `""` and whitespace-only strings all mean "missing" on the hosted API."""
    return value is None or (isinstance(value, str) and not value.strip())


def text_or_none(value: object) -> str | None:
    if blank(value):
        return None
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | Decimal):
        return str(value)
    raise ResponseFormatError(f"expected a string, got {type(value).__name__}", value)


def parse_decimal(value: object, name: str = "items") -> Decimal:
    """A figure: JSON number or string, spaces allowed anywhere (`" 1 234.5 "`)."""
    if isinstance(value, bool):
        raise ResponseFormatError(f"{name} is a boolean, not a number", value)
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(_SPACES.sub("", value))
        except InvalidOperation:
            raise ResponseFormatError(f"{name} is not a number: {value!r}", value) from None
    else:
        raise ResponseFormatError(f"{name} is not a number: {value!r}", value)
    if not number.is_finite():
        raise ResponseFormatError(f"{name} is not a finite number: {value!r}", value)
    return number


def parse_int(value: object, name: str) -> int | None:
    """A whole-number field; blanks are None, fractions are refused."""
    if blank(value):
        return None
    number = parse_decimal(value, name)
    if number != number.to_integral_value():
        raise ResponseFormatError(f"{name} is not a whole number: {value!r}", value)
    return int(number)


def parse_code(value: object) -> int | None:
    """`200`, `"200"`, `" 200 "`, `"0"` -> int; absent or blank -> None."""
    return parse_int(value, "code")


def parse_date(value: object) -> dt.date | None:
    """`YYYY-MM-DD` (a trailing time is ignored); blanks are None."""
    if blank(value):
        return None
    match = _DATE.match(str(value).strip()) if isinstance(value, str) else None
    if match is None:
        raise ResponseFormatError(f"date is not YYYY-MM-DD: {value!r}", value)
    try:
        return dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise ResponseFormatError(f"date does not exist: {value!r}", value) from None


def decode_json(content: bytes) -> Any:
    """JSON with every non-integer number as Decimal, so no figure is ever a float."""
    return json.loads(content, parse_float=Decimal)


def parse_envelope(body: object) -> Envelope:
    """Check the envelope shape; `data` may be a list, a single object, or null/blank."""
    if not isinstance(body, dict):
        raise ResponseFormatError(
            f"expected a JSON object envelope, got {type(body).__name__}", body
        )
    if "data" not in body and "code" not in body:
        raise ResponseFormatError("not a Wolkvox envelope (no code and no data)", body)
    data = body.get("data")
    if blank(data):
        rows: list[Any] = []
    elif isinstance(data, list):
        rows = data
    elif isinstance(data, dict):
        rows = [data]
    else:
        raise ResponseFormatError(f"data is a {type(data).__name__}, not a list", body)
    return Envelope(
        code=parse_code(body.get("code")),
        error=text_or_none(body.get("error")),
        msg=text_or_none(body.get("msg")) or "",
        data=rows,
        raw=body,
    )


def _row(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ResponseFormatError(f"a data row is a {type(value).__name__}, not an object", value)
    return value


def usage_row(row: object, api: str, unit: str | None) -> UsageRow:
    """One billing row. A blank `items` on a success answer is the hosted "no usage": 0."""
    data = _row(row)
    if "items" not in data:
        raise ResponseFormatError("billing row has no items field", data)
    items = data["items"]
    return UsageRow(
        api=api,
        operation=text_or_none(data.get("operation")),
        description=text_or_none(data.get("description")),
        items=Decimal(0) if blank(items) else parse_decimal(items),
        date=parse_date(data.get("date")),
        unit=unit,
        raw=data,
    )


def token_info(envelope: Envelope) -> TokenInfo:
    if not envelope.data:
        raise ResponseFormatError("token_info answered no row", envelope.raw)
    data = _row(envelope.data[0])
    return TokenInfo(
        description=text_or_none(data.get("description")),
        token_limit=parse_int(data.get("token_limit"), "token_limit"),
        token_use_today=parse_int(data.get("token_use_today"), "token_use_today"),
        all_token_today=parse_int(data.get("all_token_today"), "all_token_today"),
        available_consumption_options=parse_int(
            data.get("available_consumption_options"), "available_consumption_options"
        ),
        raw=data,
    )


def ingest_counts(envelope: Envelope) -> tuple[int, int]:
    """(accepted, duplicates) of one batch; voxmeter returns them as `data` (one object)."""
    if not envelope.data:
        raise ResponseFormatError("events answer has no data", envelope.raw)
    data = _row(envelope.data[0])
    accepted = parse_int(data.get("accepted"), "accepted")
    duplicates = parse_int(data.get("duplicates"), "duplicates")
    if accepted is None:
        raise ResponseFormatError("events answer has no accepted count", envelope.raw)
    return accepted, duplicates or 0
