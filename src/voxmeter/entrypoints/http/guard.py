"""Admission of an API request: token, scope, server, maintenance, concurrency and quota."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from typing import NamedTuple, TypeVar

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from voxmeter.domain.months import ZoneCalendar, calendar
from voxmeter.domain.tenancy import Operation
from voxmeter.entrypoints.http import metrics
from voxmeter.entrypoints.http.state import AppState
from voxmeter.errors import (
    BadParameters,
    InvalidToken,
    Maintenance,
    MissingToken,
    QuotaExceeded,
    RequestTimeout,
    TooManyInFlight,
)
from voxmeter.service.ports import Admission, LoopAdmission, LoopLimits
from voxmeter.service.tenancy import Caller

T = TypeVar("T")
RawHeaders = Iterable[tuple[bytes, bytes]]


class Visit(NamedTuple):
    """An admitted request: who asks, and when in their operation's timezone. (A named tuple:
    one is made for every request, which a frozen dataclass makes several times slower.)"""

    caller: Caller
    now: int
    calendar: ZoneCalendar
    day: str
    """The operation's local date, YYYY-MM-DD: the quota day and the rows' `date`."""
    lease: str = ""
    """The in-flight slot this request holds until it is answered."""

    @property
    def operation(self) -> Operation:
        return self.caller.operation


def read_headers(headers: RawHeaders) -> tuple[str | None, set[str]]:
    """The token and every server the request names, in one pass over the raw headers.

    Servers are named by `wolkvox_server` / `wolkvox-server` headers (any number of them) and by
    a `Host` of the form `wv<server>.<domain>`; all of them must match the token's server. A
    second token is refused rather than one of the two picked.
    """
    token: str | None = None
    servers: set[str] = set()
    for name, value in headers:
        if name == b"wolkvox-token":
            if token is not None:
                raise BadParameters("send the wolkvox-token header once, not several times")
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


def seconds_to_midnight(cal: ZoneCalendar, now: int) -> int:
    """Whole seconds (rounded up, at least 1) until the operation's next local day starts.

    Measured between instants, not wall times: on a day the clock changes, the wait is the
    23 or 25 hours that really pass."""
    tomorrow = cal.today(now) + timedelta(days=1)
    return max(1, -(-(cal.day_start(tomorrow) - now) // 1_000_000))


def admit(state: AppState, headers: RawHeaders, scope: str) -> Visit:
    """Every admission check, in the order of docs/limits.md; on success an in-flight slot
    is taken (`release`). Blocking: from a coroutine, use `enter`."""
    secret, servers = read_headers(headers)
    return admit_parsed(state, secret, servers, scope)


def caller_in_memory(state: AppState, secret: str) -> Caller | None:
    """The caller when admitting this secret touches no storage and no network: an
    in-process limiter, the maintenance flag read less than a second ago and the token resolved
    less than a second ago. None: admission needs I/O. Entries past half their life are read
    again in the background meanwhile (renewals.py)."""
    if not state.limiter.in_process:
        return None
    return remembered_caller(state, secret)


def remembered_caller(state: AppState, secret: str) -> Caller | None:
    """The secret's caller from memory when both it and the maintenance switch are there (see
    `caller_in_memory`), whatever the limiter."""
    renewals = state.renewals
    if not state.maintenance.known(renewals.maintenance):
        return None
    return state.auth.cached(secret.strip(), renewals.token)


async def enter(state: AppState, headers: RawHeaders, scope: str) -> Visit:
    """`admit` for coroutines: on the event loop when it needs no I/O (the embedded mode's
    usual case), else in a worker thread, so a stalled database or Redis holds up only the
    requests that need it. The thread is waited for (its slot must be released); the adapters'
    own timeouts bound it."""
    secret, servers = read_headers(headers)
    caller = caller_in_memory(state, secret) if secret else None
    if caller is not None or not secret:
        return admit_parsed(state, secret, servers, scope, caller)
    return await anyio.to_thread.run_sync(admit_parsed, state, secret, servers, scope)


async def leave(state: AppState, visit: Visit) -> None:
    """`release` for coroutines; a shared limiter's release runs in a thread, even when the
    request is being cancelled."""
    if state.limiter.in_process:
        release(state, visit)
        return
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(release, state, visit)


async def off_loop(state: AppState, work: Callable[..., T], *args: object) -> T:
    """Run blocking work that holds nothing (reads) in a thread, answering 504 at the request
    time limit; a thread still waiting then is left to finish on its own."""
    try:
        with anyio.fail_after(state.settings.request_timeout):
            return await anyio.to_thread.run_sync(work, *args, abandon_on_cancel=True)
    except TimeoutError as exc:
        raise RequestTimeout() from exc


def admit_parsed(
    state: AppState,
    secret: str | None,
    servers: set[str],
    scope: str,
    caller: Caller | None = None,
) -> Visit:
    """`admit` of headers already read by `read_headers`, and of the secret's caller when
    already known (`caller_in_memory`)."""
    caller, now, cal, day = _checked(state, secret, servers, scope, caller)
    op = caller.operation
    admission = state.limiter.admit(
        caller.token.id, op.id, day, state.settings.max_in_flight, op.daily_quota
    )
    visit = Visit(caller, now, cal, day, admission.lease)
    if admission.outcome != "ok":
        refuse(state, admission, visit)
    return visit


def checked(
    state: AppState,
    secret: str | None,
    servers: set[str],
    scope: str,
    caller: Caller | None = None,
) -> Visit:
    """Every admission check before the limiter's, in the order of docs/limits.md: the
    request as it will be admitted, holding no slot yet."""
    return Visit(*_checked(state, secret, servers, scope, caller))


def _checked(
    state: AppState,
    secret: str | None,
    servers: set[str],
    scope: str,
    caller: Caller | None,
) -> tuple[Caller, int, ZoneCalendar, str]:
    """`checked`'s parts, so that `admit_parsed` makes its visit once (a hot path)."""
    if not secret:
        raise MissingToken()
    if caller is None:
        caller = state.auth.resolve(secret.strip())
    if caller is None or scope not in caller.token.scopes:
        raise InvalidToken()
    op = caller.operation
    if servers and servers != {op.server}:
        raise InvalidToken()
    if state.maintenance.on():
        raise Maintenance()
    cal = calendar(op.timezone)
    now = state.ctx.clock()
    return caller, now, cal, cal.day_label(now)


def refuse(state: AppState, admission: Admission, visit: Visit) -> None:
    """The limiter's refusal as the request's error (counted); nothing for an admission."""
    if admission.outcome == "busy":
        metrics.LIMIT_REJECTIONS.labels("concurrency").inc()
        raise TooManyInFlight(state.settings.max_in_flight)
    if admission.outcome == "quota":
        metrics.LIMIT_REJECTIONS.labels("quota").inc()
        raise QuotaExceeded(seconds_to_midnight(visit.calendar, visit.now))


async def admit_on_loop(
    state: AppState, limits: LoopLimits, visit: Visit, expected: str
) -> tuple[Visit, LoopAdmission]:
    """The limiter's part of `admit` on the event loop (see `LoopLimits.admit`): the visit with
    its slot (none when admitted against `expected`), and the admission."""
    op = visit.operation
    found = await limits.admit(
        visit.caller.token.id,
        op.id,
        visit.day,
        state.settings.max_in_flight,
        op.daily_quota,
        expected,
    )
    refuse(state, found.admission, visit)
    lease = found.admission.lease
    return visit._replace(lease=lease), found


def release(state: AppState, visit: Visit) -> None:
    state.limiter.release(visit.caller.token.id, visit.lease)


@asynccontextmanager
async def admitted(request: Request, scope: str) -> AsyncIterator[Visit]:
    """`admit` for Starlette handlers; the in-flight slot is held until exit."""
    state: AppState = request.app.state.voxmeter
    visit = await enter(state, request.scope["headers"], scope)
    try:
        yield visit
    finally:
        await leave(state, visit)


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
