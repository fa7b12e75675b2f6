"""The Wolkvox-compatible reads, billing.php and information.php (docs/api.md).

They are the hot path of the hosted API's clients, so they are served by a small ASGI lane in
front of the framework: the same admission, figures and envelope as every other endpoint,
without building request and response objects or walking the route table per request.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from urllib.parse import parse_qsl

from voxmeter.domain.catalog import Product
from voxmeter.domain.months import Month
from voxmeter.domain.quantities import format_micro
from voxmeter.domain.tenancy import READ
from voxmeter.entrypoints.http import envelope, metrics
from voxmeter.entrypoints.http.guard import (
    RawHeaders,
    Visit,
    admit_on_loop,
    admit_parsed,
    caller_in_memory,
    checked,
    off_loop,
    read_headers,
    release,
    remembered_caller,
)
from voxmeter.entrypoints.http.headers import API_HEADERS
from voxmeter.entrypoints.http.replies import Figures, TokenInfo, TokenInformation, UsageRow, encode
from voxmeter.entrypoints.http.state import AppState
from voxmeter.entrypoints.http.types import ASGIApp, Receive, Scope, Send
from voxmeter.entrypoints.wire.months import resolve_month
from voxmeter.errors import BadParameters, MethodNotAllowed, UnknownApi, VoxmeterError
from voxmeter.service.figures import month_figures
from voxmeter.service.lru import LruCache
from voxmeter.service.ports import Changes, LoopLimits

log = logging.getLogger("voxmeter.http")

Reply = Figures | TokenInformation


def billing_query(state: AppState, visit: Visit, params: dict[str, str]) -> tuple[str, int | None]:
    """What a billing reply depends on in the query: the api and the month asked for (None: the
    current one). Every other parameter is ignored."""
    api = params.get("api")
    if not api:
        raise BadParameters("api")
    if api != "all" and state.ctx.catalog.get(api) is None:
        raise UnknownApi()
    return api, resolve_month(state.ctx, visit.operation, params.get("month"))


def billing_reply(state: AppState, visit: Visit, api: str, requested: int | None) -> Figures:
    """One row per requested product: the month's figure as a plain decimal string."""
    ctx = state.ctx
    op = visit.operation
    products: list[Product]
    if api == "all":
        products = list(ctx.catalog)
    else:
        product = ctx.catalog.get(api)
        assert product is not None  # checked by billing_query
        products = [product]
    month = visit.calendar.month_of(visit.now) if requested is None else requested
    figures = month_figures(ctx, op, products, month)
    today = visit.day
    rows = [UsageRow(op.name, p.title, format_micro(figures[p.api]), today) for p in products]
    if requested is None:
        return Figures(msg="Information found for the current month", data=rows)
    return Figures(msg=f"Information found for {Month.from_index(month)}", data=rows)


def billing(state: AppState, visit: Visit, params: dict[str, str]) -> Reply:
    return billing_reply(state, visit, *billing_query(state, visit, params))


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
    row = TokenInfo(
        description=token.description,
        token_limit=str(limit),
        token_use_today=str(mine),
        all_token_today=str(everyone),
        available_consumption_options=str(max(0, limit - everyone)),
    )
    return TokenInformation(msg="Information found", data=[row])


def _params(query: bytes) -> dict[str, str]:
    return dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True))


Read = Callable[[AppState, Visit, dict[str, str]], Reply]

READS: dict[str, Read] = {
    "/api/v2/billing.php": billing,
    "/api/v2/information.php": information,
}


REPLY_CACHE_ENTRIES = 4096
REPLY_CACHE_BYTES = 4 * 1024 * 1024
"""The billing reply cache's bounds: an `api=all` reply is about 3 KB, one product's 0.2 KB."""

QUERY_KEY_ENTRIES = 4096
QUERY_KEY_MAX_BYTES = 512
"""The bounds of the map from raw billing queries to reply cache keys: longer queries (never a
real client's) are parsed every time rather than kept."""

ReplyKey = tuple[int, str, int | None, str]
QueryKey = tuple[int, bytes, str]
"""A billing request as received: (operation, raw query string, the operation's local day)."""
SharedTag = tuple[int, str]
"""A shared-lane reply's validity: (change generation, data version) it was read under."""


class WolkvoxReads:
    """Serves READS directly and passes every other request on to `app`.

    A billing reply depends only on the operation, the api and month asked for, the operation's
    local day and the stored figures, so it is kept under (operation, api, month, day) until the
    storage `version()` changes; least recently used replies make room for new ones.

    Scaled out (`state.loop_limits`), billing replies are admitted on the event loop and kept
    under the database's change generation and the shared data version instead (`_shared`).
    """

    def __init__(self, state: AppState, app: ASGIApp) -> None:
        self.state = state
        self.app = app
        self.replies: LruCache[ReplyKey, tuple[Hashable, bytes]] = LruCache(
            REPLY_CACHE_ENTRIES, REPLY_CACHE_BYTES, lambda entry: len(entry[1])
        )
        self.shared: LruCache[ReplyKey, tuple[SharedTag, bytes]] = LruCache(
            REPLY_CACHE_ENTRIES, REPLY_CACHE_BYTES, lambda entry: len(entry[1])
        )
        self.query_keys: OrderedDict[QueryKey, ReplyKey] = OrderedDict()
        """Read without the lock (one dictionary lookup per request); the oldest entry makes
        room for a new one: forgetting a query costs one parse."""
        self._query_keys_lock = threading.Lock()
        self.fills: dict[tuple[ReplyKey, Hashable], asyncio.Future[bytes]] = {}
        """Replies being read in a worker thread (`_fill_once`)."""

    def _reply_key(self, visit: Visit, query: bytes) -> ReplyKey:
        """The reply cache key of a billing query (its errors raised), parsed once per raw
        query, operation and local day: the same bytes on the same day always ask for the same
        reply (the catalog is fixed, and the day decides which months have begun)."""
        op_id, day = visit.operation.id, visit.day
        received = (op_id, query, day)
        key = self.query_keys.get(received)
        if key is None:
            api, month = billing_query(self.state, visit, _params(query))
            key = (op_id, api, month, day)
            if len(query) <= QUERY_KEY_MAX_BYTES:
                with self._query_keys_lock:
                    self.query_keys[received] = key
                    while len(self.query_keys) > QUERY_KEY_ENTRIES:
                        self.query_keys.popitem(last=False)
        return key

    def _billing_lookup(
        self, visit: Visit, query: bytes
    ) -> tuple[ReplyKey, Hashable, bytes | None]:
        """The reply's cache key, the storage version and the cached reply if still valid."""
        version = self.state.ctx.storage.version()
        key = self._reply_key(visit, query)
        cached = self.replies.get(key)
        return key, version, cached[1] if cached is not None and cached[0] == version else None

    def _billing_fill(self, visit: Visit, key: ReplyKey, version: Hashable) -> bytes:
        body = encode(billing_reply(self.state, visit, key[1], key[2]))
        self.replies.put(key, (version, body))
        return body

    def _billing_body(self, visit: Visit, query: bytes) -> bytes:
        key, version, body = self._billing_lookup(visit, query)
        return body if body is not None else self._billing_fill(visit, key, version)

    async def _fill_once(self, visit: Visit, key: ReplyKey, version: Hashable) -> bytes:
        """The reply read in a worker thread, once per key and version however many requests
        miss it meanwhile (every request in flight misses together after each commit)."""
        filling = self.fills.get((key, version))
        if filling is None:
            filling = asyncio.ensure_future(
                off_loop(self.state, self._billing_fill, visit, key, version)
            )
            self.fills[(key, version)] = filling
            filling.add_done_callback(lambda _: self.fills.pop((key, version), None))
        return await asyncio.shield(filling)

    def _body(self, read: Read, visit: Visit, query: bytes) -> bytes:
        if read is billing:
            return self._billing_body(visit, query)
        return encode(read(self.state, visit, _params(query)))

    def _answer(self, read: Read, secret: str, servers: set[str], query: bytes) -> bytes:
        """Admission, reply and release in one worker thread: one hand-off per request."""
        visit = admit_parsed(self.state, secret, servers, READ)
        try:
            return self._body(read, visit, query)
        finally:
            release(self.state, visit)

    def _shared_fill(self, visit: Visit, key: ReplyKey, tag: SharedTag | None) -> bytes:
        """Read the reply seeing every commit acknowledged before its admission, and keep it
        under `tag` (nothing kept while changes are not followed)."""
        self.state.ctx.storage.refresh()
        body = encode(billing_reply(self.state, visit, key[1], key[2]))
        if tag is not None:
            self.shared.put(key, (tag, body))
        return body

    async def _shared(
        self,
        limits: LoopLimits,
        changes: Changes,
        visit: Visit,
        query: bytes,
    ) -> bytes:
        """A billing read of the scaled-out mode, admitted on the event loop.

        A cached reply is sent when no process has committed since it was read: the shared
        data version (advanced by every serving process after each commit, before it answers)
        is the one it was read under, which the admission itself checks, and no change
        notification (any writer) has arrived since. It is then charged without holding a slot.
        Otherwise the request takes a slot and the reply is read in a worker thread."""
        state = self.state
        generation = changes.generation  # before the read: the data is at least this new
        try:
            key: ReplyKey | None = self._reply_key(visit, query)
        except VoxmeterError:
            key = None  # refused after admission, as on every other path
        expected = ""
        cached = self.shared.get(key) if key is not None and generation is not None else None
        if cached is not None and cached[0][0] == generation:
            expected = cached[0][1]
        visit, found = await admit_on_loop(state, limits, visit, expected)
        if not visit.lease:
            assert cached is not None
            return cached[1]
        try:
            if key is None:
                billing_query(state, visit, _params(query))  # raises the request's error
                raise AssertionError("a billing query failed only once")
            tag = None if generation is None else (generation, found.version)
            return await off_loop(state, self._shared_fill, visit, key, tag)
        finally:
            await limits.release(visit.caller.token.id, visit.lease)

    def _reply(self, read: Read, headers: RawHeaders, query: bytes) -> bytes | Awaitable[bytes]:
        """On the event loop while nothing waits for I/O (embedded mode: a cached token, the
        in-process limiter, a cached reply); the rest in a worker thread, so a stalled database
        or Redis never holds up requests that do not need it.

        The reply itself when it is ready at once (no coroutine is made for the embedded mode's
        usual request), else what to await for it."""
        state = self.state
        secret, servers = read_headers(headers)
        limits, changes = state.loop_limits, state.changes
        if secret and read is billing and limits is not None and changes is not None:
            known = remembered_caller(state, secret)
            if known is not None:
                visit = checked(state, secret, servers, READ, known)
                return self._shared(limits, changes, visit, query)
        caller = caller_in_memory(state, secret) if secret else None
        if secret and caller is None:
            return off_loop(state, self._answer, read, secret, servers, query)
        visit = admit_parsed(state, secret, servers, READ, caller)
        try:
            if read is not billing:
                body = self._body(read, visit, query)  # the in-process limiter's counts
            elif not state.local_reads:
                return self._released(visit, off_loop(state, self._billing_body, visit, query))
            else:
                version = state.ctx.storage.version()
                key = self.query_keys.get((visit.caller.operation.id, query, visit.day))
                found = self.replies.get(key) if key is not None else None
                if found is None or found[0] != version:
                    key, version, cached = self._billing_lookup(visit, query)
                    if cached is None:
                        return self._released(visit, self._fill_once(visit, key, version))
                    found = (version, cached)
                body = found[1]
        except BaseException:
            release(state, visit)
            raise
        release(state, visit)
        return body

    async def _released(self, visit: Visit, work: Awaitable[bytes]) -> bytes:
        """`work`'s reply, the visit's slot released once it is done (or abandoned)."""
        try:
            return await work
        finally:
            release(self.state, visit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        read = READS.get(path)
        if read is None:
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        try:
            if scope["method"] not in ("GET", "HEAD"):
                raise MethodNotAllowed("GET, HEAD")
            reply = self._reply(read, scope["headers"], scope["query_string"])
            body = reply if isinstance(reply, bytes) else await reply
            status = 200
        except VoxmeterError as exc:
            status, body, headers = envelope.error_parts(exc)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], path)
            status, body, headers = envelope.error_parts(VoxmeterError())
        # Counted and given the API's headers here rather than by the app's RequestMetrics
        # (which this lane sits in front of): a wrapped `send` costs two coroutine calls.
        metrics.count_request(metrics.ROUTES[path], status)
        raw = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
            *API_HEADERS,
        ]
        if headers:
            raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})
