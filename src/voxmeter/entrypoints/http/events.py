"""Usage ingest, voids and reconciliation listing (docs/api.md)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response

from voxmeter.domain.months import from_micros
from voxmeter.domain.quantities import format_micro
from voxmeter.domain.tenancy import READ, WRITE
from voxmeter.entrypoints.http import envelope, metrics, uploads
from voxmeter.entrypoints.http.guard import admitted, in_time, time_limit
from voxmeter.entrypoints.http.replies import (
    EventOut,
    EventPage,
    Ingested,
    IngestResult,
    Voided,
    VoidResult,
)
from voxmeter.entrypoints.http.state import AppState
from voxmeter.entrypoints.wire import codec
from voxmeter.entrypoints.wire.listing import list_events, page_limit
from voxmeter.errors import BadParameters
from voxmeter.service.events import MAX_PAGE, void_event
from voxmeter.service.ingest import ingest_body
from voxmeter.service.ports import StoredEvent


class AnyText(Convertor[str]):
    """A path segment of any characters, slashes and line breaks included (Starlette's `path`
    stops at a line break, which would turn `DELETE /api/v2/events/a%0Ab` into an unknown API)."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("any", AnyText())

_DECODERS = {
    "application/json": codec.decode_json,
    "application/x-ndjson": codec.decode_ndjson,
    "application/ndjson": codec.decode_ndjson,
    "application/jsonl": codec.decode_ndjson,
}

LARGE_BODY = 1024 * 1024
_large_decodes = threading.Lock()
"""Decoding holds the interpreter lock (about 2 ms per MiB): bodies above LARGE_BODY are
decoded one at a time, so other requests wait for at most one of them."""


def _decoded_alone(
    decode: Callable[[bytes], list[codec.EventIn]],
) -> Callable[[bytes], list[codec.EventIn]]:
    def alone(body: bytes) -> list[codec.EventIn]:
        if len(body) <= LARGE_BODY:
            return decode(body)
        with _large_decodes:
            return decode(body)

    return alone


async def collection(request: Request) -> Response:
    """One route for the path's two methods, so a wrong one is told both in `Allow`."""
    if request.method == "POST":
        return await ingest(request)
    return await list_(request)


async def ingest(request: Request) -> Response:
    state: AppState = request.app.state.voxmeter
    async with admitted(request, WRITE) as visit:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        decode = _DECODERS.get(content_type)
        if decode is None:
            raise BadParameters("Content-Type must be application/json or application/x-ndjson")
        ndjson = decode is codec.decode_ndjson

        def look(start: bytes) -> None:
            codec.too_many_at_start(start, ndjson)

        def work(body: bytes) -> tuple[int, int]:
            result = ingest_body(state.ctx, visit.operation, body, _decoded_alone(decode))
            return result.accepted, result.duplicates

        limit = state.settings.max_body_bytes
        with time_limit(request):  # a stalled upload must not hold its slot for ever
            async with uploads.upload(request, state.uploads, limit, look) as body:
                accepted, duplicates = await run_in_threadpool(work, body)
        metrics.INGESTED.labels("accepted").inc(accepted)
        metrics.INGESTED.labels("duplicate").inc(duplicates)
        noun = "event" if accepted == 1 else "events"
        result = IngestResult(accepted=accepted, duplicates=duplicates)
        return envelope.ok(Ingested(msg=f"{accepted} {noun} accepted", data=result))


async def list_(request: Request) -> Response:
    state: AppState = request.app.state.voxmeter
    async with admitted(request, READ) as visit:
        params = request.query_params
        limit = page_limit(params.get("limit"), MAX_PAGE)
        page = await in_time(
            request,
            list_events,
            state.ctx,
            visit.operation,
            params.get("date_ini"),
            params.get("date_end"),
            params.get("product"),
            params.get("cursor"),
            limit,
        )
        found = len(page.events)
        msg = f"{found} event found" if found == 1 else f"{found} events found"
        rows = [listed_row(event, page.zone) for event in page.events]
        return envelope.ok(EventPage(msg=msg, data=rows, next_cursor=page.next_cursor))


async def void(request: Request) -> Response:
    state: AppState = request.app.state.voxmeter
    async with admitted(request, WRITE) as visit:
        event_id = request.path_params["event_id"]
        ctx = replace(state.ctx, actor=visit.caller.token.id)  # the audit log names the token
        event, changed = await in_time(request, void_event, ctx, visit.operation, event_id)
        msg = "Event voided" if changed else "Event was already voided"
        return envelope.ok(VoidResult(msg=msg, data=[Voided(event.id, event.product)]))


def listed_row(event: StoredEvent, zone: ZoneInfo) -> EventOut:
    """An event as the listing shows it: its time in the operation zone, a plain decimal."""
    return EventOut(
        id=event.id,
        product=event.product,
        time=from_micros(event.time, zone).isoformat(),
        quantity=format_micro(event.quantity),
        subject=event.subject,
        voided=event.voided is not None,
    )
