"""Admission of an API request: token, scope, server, maintenance, concurrency and quota."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import anyio
from starlette.requests import Request

from voxmeter.domain.months import calendar, from_micros
from voxmeter.entrypoints.http import metrics
from voxmeter.entrypoints.http.state import AppState
from voxmeter.errors import (
    InvalidToken,
    Maintenance,
    MissingToken,
    QuotaExceeded,
    RequestTimeout,
    TooManyInFlight,
)
from voxmeter.service.tenancy import Caller


def requested_server(request: Request) -> str | None:
    """The server named by a `wolkvox_server`/`wolkvox-server` header or a `wv<server>.` host."""
    headers = request.headers
    named = headers.get("wolkvox_server") or headers.get("wolkvox-server")
    if named:
        return named.strip()
    host = headers.get("host", "")
    if host[:2].lower() == "wv":
        prefix = host[2:].split(".", 1)
        if len(prefix) == 2 and prefix[0].isdigit():
            return prefix[0]
    return None


def seconds_to_midnight(now: datetime) -> int:
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((tomorrow - now).total_seconds()) + 1)


@asynccontextmanager
async def admitted(request: Request, scope: str) -> AsyncIterator[Caller]:
    """Yield the caller once every check passes; the in-flight slot is held until exit."""
    state: AppState = request.app.state.voxmeter
    secret = request.headers.get("wolkvox-token")
    if not secret:
        raise MissingToken()
    caller = state.auth.resolve(secret.strip())
    if caller is None or scope not in caller.token.scopes:
        raise InvalidToken()
    server = requested_server(request)
    if server is not None and server != caller.operation.server:
        raise InvalidToken()
    if state.maintenance.on():
        raise Maintenance()
    op = caller.operation
    local_now = from_micros(state.ctx.clock(), calendar(op.timezone).zone)
    admission = state.limiter.admit(
        caller.token.id,
        op.id,
        local_now.date().isoformat(),
        state.settings.max_in_flight,
        op.daily_quota,
    )
    if admission.outcome == "busy":
        metrics.LIMIT_REJECTIONS.labels("concurrency").inc()
        raise TooManyInFlight(state.settings.max_in_flight)
    if admission.outcome == "quota":
        metrics.LIMIT_REJECTIONS.labels("quota").inc()
        raise QuotaExceeded(seconds_to_midnight(local_now))
    try:
        with anyio.fail_after(state.settings.request_timeout):
            yield caller
    except TimeoutError as exc:
        raise RequestTimeout() from exc
    finally:
        state.limiter.release(caller.token.id)
