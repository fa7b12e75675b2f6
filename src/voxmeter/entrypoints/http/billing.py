"""The Wolkvox-compatible read side: billing.php and information.php (SPEC §2)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from voxmeter.domain.catalog import Product
from voxmeter.domain.months import Month, calendar
from voxmeter.domain.quantities import format_micro
from voxmeter.domain.tenancy import READ
from voxmeter.entrypoints.http import envelope
from voxmeter.entrypoints.http.guard import admitted
from voxmeter.entrypoints.http.state import AppState
from voxmeter.errors import BadParameters, UnknownApi
from voxmeter.service.figures import month_figures, resolve_month


async def billing(request: Request) -> Response:
    state: AppState = request.app.state.voxmeter
    ctx = state.ctx
    async with admitted(request, READ) as caller:
        op = caller.operation
        params = request.query_params
        api = params.get("api")
        if not api:
            raise BadParameters("api")
        products: list[Product]
        if api == "all":
            products = list(ctx.catalog)
        else:
            product = ctx.catalog.get(api)
            if product is None:
                raise UnknownApi()
            products = [product]
        requested = resolve_month(ctx, op, params.get("month"))
        cal = calendar(op.timezone)
        now = ctx.clock()
        month = cal.current_month(now) if requested is None else requested
        figures = month_figures(ctx, op, products, month)
        today = cal.today(now).isoformat()
        rows = [
            {
                "operation": op.name,
                "description": p.title,
                "items": format_micro(figures[p.api]),
                "date": today,
            }
            for p in products
        ]
        if requested is None:
            msg = "Information found for the current month"
        else:
            msg = f"Information found for {Month.from_index(month)}"
        return envelope.ok(msg, rows)


async def information(request: Request) -> Response:
    state: AppState = request.app.state.voxmeter
    async with admitted(request, READ) as caller:
        api = request.query_params.get("api")
        if not api:
            raise BadParameters("api")
        if api != "token_info":
            raise UnknownApi()
        op = caller.operation
        day = calendar(op.timezone).today(state.ctx.clock()).isoformat()
        mine, everyone = state.limiter.usage(caller.token.id, op.id, day)
        limit = op.daily_quota
        row = {
            "description": caller.token.description,
            "token_limit": str(limit),
            "token_use_today": str(mine),
            "all_token_today": str(everyone),
            "available_consumption_options": str(max(0, limit - everyone)),
        }
        return envelope.ok("Information found", [row])
