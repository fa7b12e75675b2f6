"""The audit listing's query as sent: the same window and cursor text as the event listing."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from voxmeter.domain.audit import AuditEntry
from voxmeter.domain.months import calendar
from voxmeter.domain.tenancy import Operation
from voxmeter.entrypoints.wire.listing import decode_cursor, encode_cursor, parse_local
from voxmeter.service import audit
from voxmeter.service.context import Context
from voxmeter.service.ports import AuditLog
from voxmeter.service.windows import check_window


@dataclass(frozen=True, slots=True)
class AuditListing:
    entries: list[AuditEntry]
    zone: ZoneInfo
    next_cursor: str | None


def list_audit(
    ctx: Context[AuditLog],
    op: Operation,
    date_ini: str | None,
    date_end: str | None,
    cursor: str | None,
    limit: int = audit.MAX_PAGE,
) -> AuditListing:
    """An operation's own entries as asked for: the times, then the window, then the cursor,
    then a window starting in the future and the page size are checked, in that order."""
    start, end = parse_local(date_ini, "date_ini"), parse_local(date_end, "date_end")
    check_window(start, end)
    after = decode_cursor(cursor) if cursor else None
    page = audit.operation_entries(ctx, op, start, end, after, limit)
    next_cursor = encode_cursor(*page.next_after) if page.next_after else None
    return AuditListing(page.entries, calendar(op.timezone).zone, next_cursor)
