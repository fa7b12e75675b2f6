"""The ASGI application: routes, error translation and request metrics."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from voxmeter.entrypoints.dashboard.routes import dashboard_routes
from voxmeter.entrypoints.http import (
    alerts,
    audit,
    billing,
    daily,
    deliveries,
    envelope,
    events,
    forecast,
    headers,
    memory,
    metrics,
    operational,
    statement,
)
from voxmeter.entrypoints.http.state import AppState
from voxmeter.entrypoints.http.types import ASGIApp, Message, Receive, Scope, Send
from voxmeter.entrypoints.wire.errors import message
from voxmeter.errors import MethodNotAllowed, Unavailable, UnknownApi, VoxmeterError
from voxmeter.service.months import close_due_months
from voxmeter.service.notices import StoredNotices

log = logging.getLogger("voxmeter.http")


async def _voxmeter_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, VoxmeterError)
    return envelope.error(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "")
        return envelope.error(MethodNotAllowed(allow))
    return envelope.error(UnknownApi())


class _NoReply(Response):
    """Sends nothing: there is no one left to answer."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return None


async def _client_gone(request: Request, exc: Exception) -> Response:
    """A client that hangs up before its request has arrived: the client's doing, not a server
    error, so one line and a count of its own (no reply, so no status in the request count)."""
    log.info("client disconnected before sending all of %s %s", request.method, request.url.path)
    metrics.CLIENT_DISCONNECTS.labels(metrics.route_of(request.url.path)).inc()
    return _NoReply()


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return envelope.error(VoxmeterError())


class RequestMetrics:
    """Counts every response by route and status and adds the security headers (pure ASGI, no
    per-request objects). The Wolkvox reads' lane, in front of it, does both for its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        route = metrics.route_of(path)
        extra = headers.for_path(path)

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                metrics.count_request(route, message["status"])
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, counting_send)


def create_app(state: AppState, background: bool = True) -> ASGIApp:
    """Build the app. With `background`, counters are flushed and due months closed periodically."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Threads of their own: requests stalled on a database or Redis (which take the
        # shared worker threads) never delay a flush or a month close.
        threads = anyio.CapacityLimiter(BACKGROUND_THREADS)
        async with anyio.create_task_group() as tasks:
            if state.changes is not None:
                tasks.start_soon(state.changes.run)
            if background:
                tasks.start_soon(_flush_counters, state, threads)
                tasks.start_soon(_close_months, state, threads)
                tasks.start_soon(_trim_memory, threads)
                sender = deliveries.Sender(
                    state.ctx,
                    state.settings,
                    _OutageLog("deliver").failed,
                    state.ctx.storage.version if state.local_reads else None,
                )
                tasks.start_soon(sender.run)
                if state.sealing is not None:
                    tasks.start_soon(_sweep_mirrors, state)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()
                state.renewals.close()
        try:
            await anyio.to_thread.run_sync(state.limiter.flush, limiter=threads)
        finally:
            if state.loop_limits is not None:
                await state.loop_limits.aclose()
            state.limiter.close()

    app = Starlette(
        routes=[  # matched in order: the most frequent first
            Route("/healthz", operational.healthz, methods=["GET"]),
            Route("/api/v2/events", events.collection, methods=["GET", "POST"]),
            Route("/api/v2/daily", daily.daily, methods=["GET"]),
            Route("/api/v2/events/{event_id:any}", events.void, methods=["DELETE"]),
            Route("/api/v2/audit", audit.list_, methods=["GET"]),
            Route("/api/v2/alerts", alerts.list_, methods=["GET"]),
            Route("/api/v2/forecast", forecast.forecast, methods=["GET"]),
            Route("/api/v2/statement", statement.statement, methods=["GET"]),
            Route("/metrics", operational.metrics_, methods=["GET"]),
            Route("/openapi.json", operational.openapi, methods=["GET"]),
            *dashboard_routes(state, StoredNotices(state.ctx.storage)),
        ],
        exception_handlers={
            VoxmeterError: _voxmeter_error,
            HTTPException: _http_error,
            ClientDisconnect: _client_gone,
            Exception: _unexpected,
        },
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # `/billing.php/` is an unknown path, not a redirect
    app.state.voxmeter = state
    # The Wolkvox reads, the hot path, count their replies and add their headers themselves.
    return billing.WolkvoxReads(state, RequestMetrics(app))


#: During an outage the background tasks say so once per this many seconds, not every second.
OUTAGE_LOG_INTERVAL = 10.0


class _OutageLog:
    """One warning line per interval while a dependency is down, instead of a stack trace a
    second per task; anything else is logged in full every time."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.last = -OUTAGE_LOG_INTERVAL

    def failed(self, exc: Exception) -> None:
        if not isinstance(exc, Unavailable):
            log.exception("could not %s; will retry", self.what)
            return
        now = anyio.current_time()
        if now - self.last >= OUTAGE_LOG_INTERVAL:
            self.last = now
            log.warning("could not %s: %s; will retry", self.what, message(exc))


#: Worker threads kept for the background tasks, one each.
BACKGROUND_THREADS = 3


async def _flush_counters(state: AppState, threads: anyio.CapacityLimiter) -> None:
    outage = _OutageLog("persist request counters")
    while True:
        await anyio.sleep(1.0)
        try:
            await anyio.to_thread.run_sync(state.limiter.flush, limiter=threads)
        except Exception as exc:
            outage.failed(exc)


async def _trim_memory(threads: anyio.CapacityLimiter) -> None:
    while True:
        await anyio.sleep(memory.TRIM_INTERVAL)
        await anyio.to_thread.run_sync(memory.release_free_memory, limiter=threads)


#: Worker threads of the mirror sweeps' storage work, apart from requests and other tasks.
SWEEP_THREADS = 4


async def _sweep_mirrors(state: AppState) -> None:
    from voxmeter.entrypoints.http.sweeper import Sweeper, no_hook

    assert state.sealing is not None
    sweeper = Sweeper(
        state.ctx,
        state.sealing,
        anyio.CapacityLimiter(SWEEP_THREADS),
        state.after_sweep or no_hook,
    )
    await sweeper.run()


async def _close_months(state: AppState, threads: anyio.CapacityLimiter) -> None:
    outage = _OutageLog("close due months")
    while True:
        try:
            closed = await anyio.to_thread.run_sync(close_due_months, state.ctx, limiter=threads)
            for name, months in closed.items():
                log.info("closed %s for %s", ", ".join(map(str, months)), name)
        except Exception as exc:
            outage.failed(exc)
        await anyio.sleep(state.settings.auto_close_interval)
