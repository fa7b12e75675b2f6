"""The daily breakdown of a month, `GET /api/v2/daily` (docs/api.md, Daily breakdown).

The same admission, envelope and parameter errors as billing.php: `api` a product or `all`,
`month` the current month or a past one."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from voxmeter.domain.catalog import Product
from voxmeter.domain.months import Month
from voxmeter.domain.quantities import format_micro
from voxmeter.domain.tenancy import READ
from voxmeter.entrypoints.http import envelope
from voxmeter.entrypoints.http.guard import admitted, in_time
from voxmeter.entrypoints.http.replies import DailyAllFigures, DailyFigures, DayRow, ProductDayRow
from voxmeter.entrypoints.http.state import AppState
from voxmeter.entrypoints.wire.months import resolve_month
from voxmeter.errors import BadParameters, UnknownApi
from voxmeter.service.daily import daily_figures


async def daily(request: Request) -> Response:
    state: AppState = request.app.state.voxmeter
    async with admitted(request, READ) as visit:
        params = request.query_params
        api = params.get("api")
        if not api:
            raise BadParameters("api")
        products: list[Product]
        if api == "all":
            products = list(state.ctx.catalog)
        else:
            product = state.ctx.catalog.get(api)
            if product is None:
                raise UnknownApi()
            products = [product]
        requested = resolve_month(state.ctx, visit.operation, params.get("month"))
        month = visit.calendar.month_of(visit.now) if requested is None else requested
        rows = await in_time(request, daily_figures, state.ctx, visit.operation, products, month)
        if requested is None:
            msg = "Information found for the current month"
        else:
            msg = f"Information found for {Month.from_index(month)}"
        if api == "all":
            return envelope.ok(
                DailyAllFigures(
                    msg=msg,
                    data=[
                        ProductDayRow(r.api, r.day.isoformat(), format_micro(r.micros))
                        for r in rows
                    ],
                )
            )
        return envelope.ok(
            DailyFigures(
                msg=msg, data=[DayRow(r.day.isoformat(), format_micro(r.micros)) for r in rows]
            )
        )
