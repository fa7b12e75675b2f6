"""The upstream calls of one sweep, made with the async client (docs/mirrors.md).

Serial: one request in flight per mirror. Every request sent is counted, retries included,
because every one costs the upstream operation a unit of its quota; the client itself does
not retry (the schedule backs off instead). Before each request the sweep's lease is
renewed; a lost lease stops the sweep at once. Error texts come from the client, which never
puts the token in a message.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from decimal import Decimal

import httpx

from voxmeter.client import (
    APIConnectionError,
    AsyncClient,
    BadRequestError,
    InvalidTokenError,
    MaintenanceError,
    MissingTokenError,
    QuotaExceededError,
    UsageRow,
    VoxmeterClientError,
)
from voxmeter.domain.catalog import Catalog
from voxmeter.domain.mirrors import Failure
from voxmeter.domain.months import Month
from voxmeter.service.sweeps import LeaseLost, SweepJob, SweepOutcome

REQUEST_TIMEOUT = 30.0
"""Seconds one upstream request may take (a hanging upstream costs a sweep this long per
request, and never blocks anything else)."""

Renew = Callable[[], Awaitable[bool]]


def classify(error: Exception) -> Failure:
    """The failure kind of an upstream error, which decides the backoff."""
    if isinstance(error, QuotaExceededError):
        return Failure.QUOTA
    if isinstance(error, InvalidTokenError | MissingTokenError):
        return Failure.INVALID_TOKEN
    if isinstance(error, MaintenanceError):
        return Failure.MAINTENANCE
    if isinstance(error, APIConnectionError):
        return Failure.NETWORK
    return Failure.UPSTREAM


def one_line(error: Exception) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())[:500]


class _Counter:
    def __init__(self) -> None:
        self.sent = 0

    async def __call__(self, request: httpx.Request) -> None:
        self.sent += 1


def _month_of(row: UsageRow, fallback: int) -> int:
    return fallback if row.date is None else Month(row.date.year, row.date.month).index


async def fetch(
    job: SweepJob,
    catalog: Catalog,
    renew: Renew,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: float = REQUEST_TIMEOUT,
) -> SweepOutcome:
    """Make the planned requests; whatever was read before a failure is kept."""
    outcome = SweepOutcome()
    counter = _Counter()
    http = httpx.AsyncClient(transport=transport, event_hooks={"request": [counter]})
    client = AsyncClient(
        job.operation.server,
        job.token,
        job.record.options.upstream_url,
        timeout=timeout,
        max_retries=0,
        http_client=http,
        catalog=catalog,
    )
    plan = job.plan
    supports_all = job.state.supports_all

    async def ask(month: dt.date | None, fallback: int) -> None:
        nonlocal supports_all
        if not await renew():
            raise LeaseLost
        if supports_all or (supports_all is None and plan.full):
            before = counter.sent
            rows = await client.usage_all(month)
            supports_all = counter.sent - before == 1
            outcome.supports_all = supports_all
        else:
            rows = []
            for api in plan.products:
                if not await renew():
                    raise LeaseLost
                rows.extend(await client.usage(api, month))
        wanted = set(plan.products)
        outcome.rows.extend(
            (row.api, _month_of(row, fallback), Decimal(row.items))
            for row in rows
            if row.api in wanted
        )

    try:
        if not plan.products and not plan.token_info:
            return outcome
        if not job.token:
            raise InvalidTokenError("the stored upstream token cannot be opened", status=403)
        if plan.token_info:
            if not await renew():
                raise LeaseLost
            info = await client.token_info()
            outcome.quota = info.token_limit
        if plan.ask_month and plan.freeze_month is not None and plan.products:
            ended = Month.from_index(plan.freeze_month)
            try:
                await ask(dt.date(ended.year, ended.month, 1), plan.freeze_month)
                outcome.supports_month = True
            except BadRequestError:
                outcome.supports_month = False
            # A month= answer's rows carry the day of the query: they are the ended month's.
            outcome.rows = [
                (api, plan.freeze_month if month > plan.freeze_month else month, figure)
                for api, month, figure in outcome.rows
            ]
        if plan.products:
            await ask(None, job.month)
    except VoxmeterClientError as error:
        outcome.failure = classify(error)
        outcome.error = one_line(error)
    finally:
        outcome.spent = counter.sent
        await http.aclose() if transport is None else None
    return outcome
