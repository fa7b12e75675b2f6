"""Admission of an API request: token, scope, server, maintenance, concurrency and quota."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timedelta
from typing import TypeVar

import anyio
from starlette.concurrency import run_in_threadpool
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

T = TypeVar("T")


def _headers(request: Request) -> tuple[str | None, set[str]]:
    """The token and every server the request names, in one pass over the raw headers.

    Servers are named by `wolkvox_server` / `wolkvox-server` headers (any number of them) and by
    a `Host` of the form `wv<server>.<domain>`; all of them must match the token's server.
    """
    token: str | None = None
    servers: set[str] = set()
    for name, value in request.scope["headers"]:
        if name == b"wolkvox-token":
            token = value.decode("latin-1")
        elif name in (b"wolkvox_server", b"wolkvox-server"):
            named = value.decode("latin-1").strip()
            if named:
                servers.add(named)
        elif name == b"host" and value[:2].lower() == b"wv":
            prefix = value[2:].decode("latin-1").split(".", 1)
            if len(prefix) == 2 and prefix[0].isdigit():
                servers.add(prefix[0])
    return token, servers


def seconds_to_midnight(now: datetime) -> int:
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((tomorrow - now).total_seconds()) + 1)


@asynccontextmanager
async def admitted(request: Request, scope: str) -> AsyncIterator[Caller]:
    """Yield the caller once every check passes; the in-flight slot is held until exit."""
    state: AppState = request.app.state.voxmeter
    secret, servers = _headers(request)
    if not secret:
        raise MissingToken()
    caller = state.auth.resolve(secret.strip())
    if caller is None or scope not in caller.token.scopes:
        raise InvalidToken()
    if servers and servers != {caller.operation.server}:
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
        yield caller
    finally:
        state.limiter.release(caller.token.id)


async def in_time(request: Request, work: Callable[..., T], *args: object) -> T:
    """Run blocking work in a thread, answering 504 if it outlasts the request time limit.

    Only work that can wait (the write lock, large listings) goes through here: billing reads
    are a few indexed lookups on a WAL snapshot, which never wait for writers.
    """
    with time_limit(request):
        return await run_in_threadpool(work, *args)


@contextmanager
def time_limit(request: Request) -> Iterator[None]:
    """Answer 504 instead of hanging once the request time limit has passed."""
    state: AppState = request.app.state.voxmeter
    try:
        with anyio.fail_after(state.settings.request_timeout):
            yield
    except TimeoutError as exc:
        raise RequestTimeout() from exc
