"""The Wolkvox-compatible reads, billing.php and information.php (docs/api.md).

They are the hot path of the hosted API's clients, so they are served by a small ASGI lane in
front of the framework: the same admission, figures and envelope as every other endpoint,
without building request and response objects or walking the route table per request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from urllib.parse import parse_qsl

from voxmeter.domain.catalog import Product
from voxmeter.domain.months import Month
from voxmeter.domain.quantities import format_micro
from voxmeter.domain.tenancy import READ
from voxmeter.entrypoints.http import envelope
from voxmeter.entrypoints.http.guard import Visit, admit, release
from voxmeter.entrypoints.http.state import AppState
from voxmeter.entrypoints.http.types import ASGIApp, Receive, Scope, Send
from voxmeter.errors import BadParameters, MethodNotAllowed, UnknownApi, VoxmeterError
from voxmeter.service.figures import month_figures, resolve_month

log = logging.getLogger("voxmeter.http")

Reply = tuple[str, list[dict[str, str]]]


def billing(state: AppState, visit: Visit, params: dict[str, str]) -> Reply:
    """One row per requested product: the month's figure as a plain decimal string."""
    ctx = state.ctx
    op = visit.operation
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
    month = visit.calendar.month_of(visit.now) if requested is None else requested
    figures = month_figures(ctx, op, products, month)
    today = visit.day
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
        return "Information found for the current month", rows
    return f"Information found for {Month.from_index(month)}", rows


def information(state: AppState, visit: Visit, params: dict[str, str]) -> Reply:
    """`api=token_info`: the operation's daily quota and what this token and all have used."""
    api = params.get("api")
    if not api:
        raise BadParameters("api")
    if api != "token_info":
        raise UnknownApi()
    op = visit.operation
    token = visit.caller.token
    day = visit.day
    mine, everyone = state.limiter.usage(token.id, op.id, day)
    limit = op.daily_quota
    row = {
        "description": token.description,
        "token_limit": str(limit),
        "token_use_today": str(mine),
        "all_token_today": str(everyone),
        "available_consumption_options": str(max(0, limit - everyone)),
    }
    return "Information found", [row]


def _params(query: bytes) -> dict[str, str]:
    return dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True))


READS: dict[str, Callable[[AppState, Visit, dict[str, str]], Reply]] = {
    "/api/v2/billing.php": billing,
    "/api/v2/information.php": information,
}


class WolkvoxReads:
    """Serves READS directly and passes every other request on to `app`.

    A billing reply depends only on the operation, the query, the operation's local day and the
    stored figures, so it is kept until the storage `version()` or the day changes.
    """

    def __init__(self, state: AppState, app: ASGIApp) -> None:
        self.state = state
        self.app = app
        self._replies: dict[tuple[int, bytes, str], tuple[Hashable, bytes]] = {}

    def _billing_body(self, visit: Visit, query: bytes) -> bytes:
        version = self.state.ctx.storage.version()
        key = (visit.operation.id, query, visit.day)
        cached = self._replies.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        body = envelope.ok_body(*billing(self.state, visit, _params(query)))
        if len(self._replies) > 10_000:
            self._replies.clear()
        self._replies[key] = (version, body)
        return body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        read = READS.get(scope["path"]) if scope["type"] == "http" else None
        if read is None:
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        try:
            if scope["method"] not in ("GET", "HEAD"):
                raise MethodNotAllowed("GET, HEAD")
            visit = admit(self.state, scope["headers"], READ)
            try:
                query: bytes = scope["query_string"]
                if read is billing:
                    body = self._billing_body(visit, query)
                else:
                    body = envelope.ok_body(*read(self.state, visit, _params(query)))
                status = 200
            finally:
                release(self.state, visit)
        except VoxmeterError as exc:
            status, body, headers = envelope.error_parts(exc)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            status, body, headers = envelope.error_parts(VoxmeterError())
        raw = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})
