"""The listing's query as sent: local times as YYYYmmddHHiiss text, the page cursor as an opaque
token. Parsed here, so the service deals in datetimes and (time, seq) positions only."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from voxmeter.domain.tenancy import Operation
from voxmeter.errors import BadParameters
from voxmeter.service import events
from voxmeter.service.context import Context
from voxmeter.service.events import MAX_PAGE
from voxmeter.service.ports import EventLog, StoredEvent

_DATE_FORMAT = "%Y%m%d%H%M%S"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1  # what every storage keeps times and seqs in


@dataclass(frozen=True, slots=True)
class Listing:
    events: list[StoredEvent]
    zone: ZoneInfo
    next_cursor: str | None


def parse_local(text: str | None, name: str) -> datetime:
    if not text:
        raise BadParameters(f"{name} is required (YYYYmmddHHiiss)")
    try:
        if len(text) != 14 or not text.isdigit():
            raise ValueError(text)
        return datetime.strptime(text, _DATE_FORMAT)
    except ValueError as exc:
        raise BadParameters(f"{name} must be YYYYmmddHHiiss") from exc


def page_limit(text: str | None, most: int) -> int:
    """A listing's `limit` query parameter (absent: `most`): ASCII digits only; the range is
    checked by the listing itself."""
    text = str(most) if text is None else text
    if not (text.isascii() and text.isdigit()):
        raise BadParameters(f"limit must be a whole number up to {most}")
    return int(text)


def encode_cursor(time: int, seq: int) -> str:
    return base64.urlsafe_b64encode(f"{time}:{seq}".encode()).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        time, seq = (int(part) for part in raw.split(":"))
        if not (_INT64_MIN <= time <= _INT64_MAX and 0 <= seq <= _INT64_MAX):
            raise ValueError("out of range")
        return time, seq
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadParameters("cursor is not one this server issued") from exc


def list_events(
    ctx: Context[EventLog],
    op: Operation,
    date_ini: str | None,
    date_end: str | None,
    product: str | None,
    cursor: str | None,
    limit: int = MAX_PAGE,
) -> Listing:
    """A listing request as sent: problems are reported in the order they always were (the
    times, then the window, product and page size, then the cursor)."""
    start, end = parse_local(date_ini, "date_ini"), parse_local(date_end, "date_end")
    events.check_listing(ctx, start, end, product, limit)
    after = decode_cursor(cursor) if cursor else None
    page = events.list_events(ctx, op, start, end, product, after, limit)
    next_cursor = encode_cursor(*page.next_after) if page.next_after else None
    return Listing(page.events, page.zone, next_cursor)
