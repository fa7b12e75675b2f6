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
from voxmeter.service.daily import Days, daily_figures


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
        found = await in_time(request, daily_figures, state.ctx, visit.operation, products, month)
        if requested is None:
            msg = "Information found for the current month"
        else:
            msg = f"Information found for {Month.from_index(month)}"
        return envelope.ok(daily_reply(found, api, msg))


def daily_reply(found: Days, api: str, msg: str) -> DailyFigures | DailyAllFigures:
    """The reply: rows by product (in the order found), then by date."""
    dates = [day.isoformat() for day in found.days]
    if api == "all":
        return DailyAllFigures(
            msg=msg,
            data=[
                ProductDayRow(product, day, _text(micros))
                for product, figures in found.figures.items()
                for day, micros in zip(dates, figures, strict=True)
            ],
        )
    figures = found.figures[api]
    return DailyFigures(
        msg=msg,
        data=[DayRow(day, _text(micros)) for day, micros in zip(dates, figures, strict=True)],
    )


def _text(micros: int) -> str:
    """A figure as a plain decimal; most days of most products are "0"."""
    return "0" if micros == 0 else format_micro(micros)
