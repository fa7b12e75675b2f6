"""Endpoints without a token: health, metrics and the OpenAPI document."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from voxmeter.entrypoints.http import envelope, metrics
from voxmeter.entrypoints.http.mirror_metrics import mirror_exposition
from voxmeter.entrypoints.http.openapi import document
from voxmeter.entrypoints.http.replies import Health, encode
from voxmeter.entrypoints.http.state import AppState
from voxmeter.errors import Unavailable

_HEALTHY = encode(Health())


async def healthz(request: Request) -> Response:
    """Liveness only: no database work, so it stays cheap under any load."""
    return Response(_HEALTHY, media_type="application/json")


async def metrics_(request: Request) -> Response:
    state: AppState = request.app.state.voxmeter
    try:
        mirrors = await run_in_threadpool(mirror_exposition, state.ctx)
    except Unavailable:
        mirrors = b""  # the request counters still answer while the database is away
    return Response(metrics.exposition() + mirrors, media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    state: AppState = request.app.state.voxmeter
    if state.openapi is None:  # the same for the server's whole life: built once
        state.openapi = encode(document(state.ctx.catalog, state.settings))
    return Response(state.openapi, media_type=envelope.JSON)
