"""The month-end forecast (docs/api.md, Forecast)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from voxmeter.domain.months import Month
from voxmeter.domain.quantities import format_micro
from voxmeter.domain.tenancy import READ
from voxmeter.entrypoints.http import envelope
from voxmeter.entrypoints.http.guard import admitted, off_loop
from voxmeter.entrypoints.http.replies import ForecastRow, Forecasts
from voxmeter.entrypoints.http.state import AppState
from voxmeter.entrypoints.wire.months import resolve_month
from voxmeter.service.forecast import month_forecast


async def forecast(request: Request) -> Response:
    state: AppState = request.app.state.voxmeter
    async with admitted(request, READ) as visit:
        requested = resolve_month(state.ctx, visit.operation, request.query_params.get("month"))
        month = visit.calendar.month_of(visit.now) if requested is None else requested
        found = await off_loop(state, month_forecast, state.ctx, visit.operation, month, visit.now)
        rows = [
            ForecastRow(
                api=f.product.api,
                description=f.product.title,
                unit=f.product.unit,
                items=format_micro(f.items),
                forecast=format_micro(f.forecast),
            )
            for f in found
        ]
        return envelope.ok(Forecasts(msg=f"Forecast for {Month.from_index(month)}", data=rows))
