"""The operation's alerts and their last deliveries (docs/api.md, Alerts)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from voxmeter.domain.months import calendar
from voxmeter.domain.tenancy import READ
from voxmeter.entrypoints.http import envelope
from voxmeter.entrypoints.http.guard import admitted, in_time
from voxmeter.entrypoints.http.replies import AlertList
from voxmeter.entrypoints.http.state import AppState
from voxmeter.entrypoints.wire.alerts import DELIVERIES_SHOWN, MOST_DELIVERIES_SHOWN, alerts_of
from voxmeter.entrypoints.wire.listing import page_limit
from voxmeter.errors import BadParameters


async def list_(request: Request) -> Response:
    state: AppState = request.app.state.voxmeter
    async with admitted(request, READ) as visit:
        op = visit.operation
        given = request.query_params.get("limit")
        shown = DELIVERIES_SHOWN if given is None else page_limit(given, MOST_DELIVERIES_SHOWN)
        if not 1 <= shown <= MOST_DELIVERIES_SHOWN:
            raise BadParameters(f"limit must be between 1 and {MOST_DELIVERIES_SHOWN}")
        zone = calendar(op.timezone).zone
        rows = await in_time(request, alerts_of, state.ctx.storage, op.id, zone, shown)
        msg = f"{len(rows)} alert found" if len(rows) == 1 else f"{len(rows)} alerts found"
        return envelope.ok(AlertList(msg=msg, data=rows))
