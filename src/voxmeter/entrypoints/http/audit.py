"""The audit log as an operation sees it: its own entries in a window (docs/api.md, Audit)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from voxmeter.domain.audit import AuditEntry
from voxmeter.domain.months import from_micros
from voxmeter.domain.tenancy import READ
from voxmeter.entrypoints.http import envelope
from voxmeter.entrypoints.http.guard import admitted, in_time
from voxmeter.entrypoints.http.replies import AuditOut, AuditPage
from voxmeter.entrypoints.http.state import AppState
from voxmeter.entrypoints.wire.audit import list_audit
from voxmeter.entrypoints.wire.listing import page_limit
from voxmeter.service.audit import MAX_PAGE

_details = msgspec.json.Decoder(dict[str, Any])


async def list_(request: Request) -> Response:
    state: AppState = request.app.state.voxmeter
    async with admitted(request, READ) as visit:
        params = request.query_params
        limit = page_limit(params.get("limit"), MAX_PAGE)
        listing = await in_time(
            request,
            list_audit,
            state.ctx,
            visit.operation,
            params.get("date_ini"),
            params.get("date_end"),
            params.get("cursor"),
            limit,
        )
        found = len(listing.entries)
        msg = f"{found} entry found" if found == 1 else f"{found} entries found"
        rows = [audit_row(entry, listing.zone) for entry in listing.entries]
        return envelope.ok(AuditPage(msg=msg, data=rows, next_cursor=listing.next_cursor))


def audit_row(entry: AuditEntry, zone: ZoneInfo) -> AuditOut:
    """An entry as listed: its time in the operation zone, its details as an object."""
    return AuditOut(
        time=from_micros(entry.time, zone).isoformat(),
        actor=entry.actor,
        action=entry.action,
        details=_details.decode(entry.details),
    )
