"""The month's statement, as JSON in the envelope or as CSV (docs/api.md, Statement)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from voxmeter.domain.months import Month
from voxmeter.domain.tenancy import READ
from voxmeter.entrypoints.http.envelope import JSON
from voxmeter.entrypoints.http.guard import admitted, off_loop
from voxmeter.entrypoints.http.state import AppState
from voxmeter.entrypoints.wire.months import resolve_month
from voxmeter.entrypoints.wire.statement_csv import to_csv
from voxmeter.errors import BadParameters
from voxmeter.service.statements import decoded, encoded

CSV = "text/csv; charset=utf-8"
FORMATS = ("json", "csv")


def wrapped(month: str, body: bytes) -> bytes:
    """The envelope around a statement's stored bytes, exactly as replies.StatementReply
    encodes: a final statement's `data` is the bytes stored when its month closed."""
    return b'{"code":200,"error":null,"msg":"Statement for %s","data":%s}' % (
        month.encode(),
        body,
    )


async def statement(request: Request) -> Response:
    """A statement kept since the data last changed is answered on the event loop when
    storage reads are local (SQLite); anything else is read in a worker thread."""
    state: AppState = request.app.state.voxmeter
    async with admitted(request, READ) as visit:
        params = request.query_params
        fmt = params.get("format", "json")
        if fmt not in FORMATS:
            raise BadParameters("format must be json or csv")
        requested = resolve_month(state.ctx, visit.operation, params.get("month"))
        month = visit.calendar.month_of(visit.now) if requested is None else requested
        cache, ctx, op = state.statements, state.ctx, visit.operation
        if not state.local_reads:
            reading = await off_loop(state, cache.read, ctx, op, month)
        else:
            version, kept = cache.lookup(ctx, op, month)  # the loop's version, as billing's
            if kept is None:
                kept = await off_loop(state, cache.fill, ctx, op, month, version)
            reading = kept
        if fmt == "csv":
            return Response(to_csv([decoded(reading, visit.now)]), 200, media_type=CSV)
        body = encoded(reading, visit.now)
        return Response(wrapped(str(Month.from_index(month)), body), 200, media_type=JSON)
