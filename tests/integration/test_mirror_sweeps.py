"""Sweeps of a mirror through the service, with a simulated clock, against the hosted-like
upstream over loopback and every storage backend: a whole day's schedule and request count,
readings stored idempotently, and their projection into month and day figures; and the
month-end freeze against a real voxmeter app as the upstream (on its own database and the
same clock, through `httpx.ASGITransport`), which answers `month=`."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.fakes import FakeSecretBox
from tests.integration.support import FakeClock, ev
from tests.upstreams.hosted import HostedLike, hosted_like
from voxmeter import bootstrap
from voxmeter.adapters.upstream import fetch
from voxmeter.config import Settings
from voxmeter.domain.mirrors import MICROS_PER_MINUTE, MirrorOptions, SyncState
from voxmeter.domain.months import Month, from_micros
from voxmeter.domain.quantities import MICRO
from voxmeter.domain.tenancy import Operation
from voxmeter.entrypoints.http.app import create_app
from voxmeter.errors import MirrorUsage
from voxmeter.service.context import Context
from voxmeter.service.daily import daily_figures
from voxmeter.service.figures import month_figures
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.mirrors import create_mirror
from voxmeter.service.sweeps import begin_sweep, finish_sweep, skip_sweep
from voxmeter.service.tenancy import create_operation, create_token

TOKEN = "upstream-secret-token"
IN_USE = {"ivr_minutes": "10", "rec_minutes": "3", "interactions": "7", "pbx_licenses": "4"}
START = "2026-05-15T00:00:00Z"


async def _renew() -> bool:
    return True


def _day_of(clock: FakeClock) -> str:
    return from_micros(clock.now, UTC).date().isoformat()  # type: ignore[arg-type]


@pytest.fixture
def upstream() -> Iterator[HostedLike]:
    with hosted_like(TOKEN, figures=dict(IN_USE)) as server:
        yield server


def _mirror(ctx: Context, upstream: HostedLike, **options: int) -> Operation:
    opts = MirrorOptions(upstream_url=upstream.base_url, **options)
    return create_mirror(ctx, FakeSecretBox(), "mirrored", "9901", opts, TOKEN)


def sweep_once(ctx: Context, op: Operation, upstream: HostedLike, clock: FakeClock) -> SyncState:
    """One scheduled sweep at the clock's time; the state after it."""
    upstream.today = _day_of(clock)
    job = begin_sweep(ctx, FakeSecretBox(), op.id, "owner-1")
    assert job is not None
    if not job.affordable:
        return skip_sweep(ctx, job, "owner-1")
    outcome = asyncio.run(fetch(job, ctx.catalog, _renew))
    state, _ = finish_sweep(ctx, job, outcome, "owner-1")
    return state


def run_day(
    ctx: Context, op: Operation, upstream: HostedLike, clock: FakeClock, grow: bool = False
) -> list[int]:
    """Sweep whenever due from the clock's time to the end of its day; the sweep instants."""
    end = clock.now + 24 * 60 * MICROS_PER_MINUTE
    sweeps = []
    while clock.now < end:
        sweeps.append(clock.now)
        if grow:  # one more IVR minute an hour
            hours = (clock.now - sweeps[0]) // (60 * MICROS_PER_MINUTE)
            upstream.figures["ivr_minutes"] = str(10 + hours)
        state = sweep_once(ctx, op, upstream, clock)
        assert state.failure is None, state.last_error
        clock.now = max(state.next_due, clock.now + 1)
    return sweeps


def test_a_one_licence_upstream_sees_at_most_250_requests_a_day(
    ctx: Context, clock: FakeClock, upstream: HostedLike
) -> None:
    clock.set(START)
    op = _mirror(ctx, upstream)
    sweeps = run_day(ctx, op, upstream, clock)
    assert upstream.count() <= 250
    assert len(sweeps) >= 24  # more than one an hour
    assert upstream.most_in_flight == 1
    # The first sweep asked every product (and found api=all refused once), then only those
    # in use were asked.
    asked = [entry.api for entry in upstream.log]
    assert asked[0] == "token_info"
    assert asked.count("all") == 1
    assert asked.count("amazon_s3") == 1
    assert asked.count("ivr_minutes") == len(sweeps)


def test_a_twenty_licence_upstream_is_swept_every_five_minutes(
    ctx: Context, clock: FakeClock, upstream: HostedLike
) -> None:
    upstream.licenses = 20
    clock.set(START)
    op = _mirror(ctx, upstream)
    sweeps = run_day(ctx, op, upstream, clock)
    gaps = {b - a for a, b in itertools.pairwise(sweeps)}
    assert gaps == {5 * MICROS_PER_MINUTE}
    assert len(sweeps) == 288
    assert upstream.count() <= 5000


def test_readings_are_idempotent_and_project_into_month_and_day_figures(
    ctx: Context, clock: FakeClock, upstream: HostedLike
) -> None:
    upstream.licenses = 20
    clock.set(START)
    op = _mirror(ctx, upstream, interval_minutes=30)
    run_day(ctx, op, upstream, clock, grow=True)
    month = Month(2026, 5).index
    products = list(ctx.catalog)
    figures = month_figures(ctx, op, products, month)
    last_ivr = int(upstream.figures["ivr_minutes"])
    assert figures["ivr_minutes"] == last_ivr * MICRO
    assert figures["pbx_licenses"] == 4 * MICRO
    assert figures["amazon_s3"] == 0
    # One stored reading per distinct figure, however many sweeps saw it.
    readings = ctx.storage.readings(op.id, month, month)
    ivr = [r for r in readings if r.product == "ivr_minutes"]
    assert [r.figure // MICRO for r in ivr] == list(range(10, last_ivr + 1))
    assert all(r.last_seen >= r.first_seen for r in ivr)
    assert len([r for r in readings if r.product == "rec_minutes"]) == 1
    # The days add up to the month; the level's day is the level read.
    days = daily_figures(ctx, op, products, month)
    assert sum(days.figures["ivr_minutes"]) == figures["ivr_minutes"]
    by_day = dict(zip(days.days, days.figures["ivr_minutes"], strict=True))
    first_day = datetime(2026, 5, 15).date()
    assert by_day[first_day] == 33 * MICRO  # 10 at midnight, one more each hour to 33
    assert by_day[first_day + timedelta(days=1)] == last_ivr * MICRO - 33 * MICRO
    assert days.figures["pbx_licenses"][-1] == 4 * MICRO


def test_a_mirror_refuses_events(ctx: Context, clock: FakeClock, upstream: HostedLike) -> None:
    op = _mirror(ctx, upstream)
    with pytest.raises(MirrorUsage):
        ingest_batch(ctx, op, [])
    assert replace(op, mirror=False) != op


def test_a_second_process_cannot_take_a_held_mirror(
    ctx: Context, clock: FakeClock, upstream: HostedLike
) -> None:
    op = _mirror(ctx, upstream)
    first = begin_sweep(ctx, FakeSecretBox(), op.id, "process-a")
    assert first is not None
    assert begin_sweep(ctx, FakeSecretBox(), op.id, "process-b") is None
    clock.advance(seconds=46)  # the lease of a killed process expires
    taken = begin_sweep(ctx, FakeSecretBox(), op.id, "process-b")
    assert taken is not None
    outcome = asyncio.run(fetch(first, ctx.catalog, _renew))
    from voxmeter.service.sweeps import LeaseLost

    with pytest.raises(LeaseLost):
        finish_sweep(ctx, first, outcome, "process-a")
    assert ctx.storage.readings(op.id, 0, 10**6) == []


def test_upstream_failures_back_off_by_kind_and_keep_sweeping(
    ctx: Context, clock: FakeClock, upstream: HostedLike
) -> None:
    clock.set("2026-05-15T10:00:00Z")
    op = _mirror(ctx, upstream)
    upstream.maintenance = True
    state = sweep_once(ctx, op, upstream, clock)
    assert state.failure is not None
    assert "SERVER IN MAINTENANCE" in str(state.last_error)
    assert state.next_due == clock.now + 5 * MICROS_PER_MINUTE
    upstream.maintenance = False
    upstream.used_today = 1000  # the upstream's quota is spent by its other integrations
    clock.now = state.next_due
    state = sweep_once(ctx, op, upstream, clock)
    assert "TOKEN LIMIT EXCEEDED" in str(state.last_error)
    assert from_micros(state.next_due, UTC).isoformat() == "2026-05-16T00:00:00+00:00"
    upstream.used_today = 0
    clock.now = state.next_due
    state = sweep_once(ctx, op, upstream, clock)
    assert state.failure is None
    assert state.last_ok == clock.now
    assert state.failures == 0


def test_the_first_sweep_after_a_month_ends_freezes_its_last_reading(
    ctx: Context, clock: FakeClock, upstream: HostedLike
) -> None:
    upstream.licenses = 20
    clock.set("2026-05-31T23:50:00Z")
    op = _mirror(ctx, upstream)
    upstream.figures["ivr_minutes"] = "500"
    state = sweep_once(ctx, op, upstream, clock)
    may, june = Month(2026, 5).index, Month(2026, 6).index
    assert state.frozen_through is None
    clock.set("2026-06-01T00:10:00Z")
    upstream.figures["ivr_minutes"] = "2"  # the upstream's new month
    state = sweep_once(ctx, op, upstream, clock)
    assert state.frozen_through == may
    products = list(ctx.catalog)
    assert month_figures(ctx, op, products, may)["ivr_minutes"] == 500 * MICRO
    assert month_figures(ctx, op, products, june)["ivr_minutes"] == 2 * MICRO
    # A late answer dated in May is not stored any more: the month is final.
    clock.advance(minutes=5)
    upstream.today = "2026-05-31"
    upstream.figures["ivr_minutes"] = "999"
    job = begin_sweep(ctx, FakeSecretBox(), op.id, "owner-1")
    assert job is not None
    finish_sweep(ctx, job, asyncio.run(fetch(job, ctx.catalog, _renew)), "owner-1")
    assert month_figures(ctx, op, products, may)["ivr_minutes"] == 500 * MICRO
    assert [
        r.figure for r in ctx.storage.readings(op.id, may, may) if r.product == "ivr_minutes"
    ] == [500 * MICRO]


class _Recording(httpx.AsyncBaseTransport):
    """An ASGI app as an upstream, keeping every request's path and query."""

    def __init__(self, app: object) -> None:
        self.inner = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        self.asked: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(f"{request.url.path}?{request.url.query.decode()}")
        return await self.inner.handle_async_request(request)


@dataclass
class VoxmeterUpstream:
    """A real voxmeter app on a database of its own, on the test's clock: operation `source`
    (server 9901, 20 licences) and a billing:read token of it."""

    ctx: Context
    op: Operation
    token: str
    transport: _Recording
    url: str = "http://voxmeter-upstream.test"
    events: int = field(default=0)

    def usage(self, time: str, quantity: str) -> None:
        self.events += 1
        ingest_batch(self.ctx, self.op, [ev(f"e{self.events}", "ivr_minutes", time, quantity)])


@contextmanager
def voxmeter_upstream(folder: Path, clock: FakeClock) -> Iterator[VoxmeterUpstream]:
    settings = replace(Settings.from_env({}), database_url=f"sqlite:///{folder / 'upstream.db'}")
    ctx = replace(bootstrap.context(settings), clock=clock)
    try:
        op = create_operation(ctx, "source", "9901", "UTC", licenses=20)
        _, token = create_token(ctx, op, "the mirror's sweeps", ["billing:read"])
        app = create_app(bootstrap.app_state(settings, ctx), background=False)
        yield VoxmeterUpstream(ctx, op, token, _Recording(app))
    finally:
        ctx.storage.close()


def _sweep_of(ctx: Context, op: Operation, upstream: VoxmeterUpstream) -> SyncState:
    job = begin_sweep(ctx, FakeSecretBox(), op.id, "owner-1")
    assert job is not None
    assert job.affordable
    outcome = asyncio.run(fetch(job, ctx.catalog, _renew, upstream.transport))
    state, _ = finish_sweep(ctx, job, outcome, "owner-1")
    assert state.failure is None, state.last_error
    return state


def test_the_first_sweep_after_a_month_ends_asks_a_voxmeter_upstream_for_it_with_month(
    ctx: Context, clock: FakeClock, tmp_path: Path
) -> None:
    may, june = Month(2026, 5).index, Month(2026, 6).index
    products = list(ctx.catalog)

    def ivr(month: int) -> int:
        return month_figures(ctx, op, products, month)["ivr_minutes"]

    def readings(month: int) -> list[int]:
        found = ctx.storage.readings(op.id, month, month)
        return [r.figure // MICRO for r in found if r.product == "ivr_minutes"]

    clock.set("2026-05-31T23:00:00Z")
    with voxmeter_upstream(tmp_path, clock) as upstream:
        upstream.usage("2026-05-31T22:00:00Z", "500")
        options = MirrorOptions(upstream_url=upstream.url, interval_minutes=1)
        op = create_mirror(ctx, FakeSecretBox(), "mirrored", "9901", options, upstream.token)
        clock.set("2026-05-31T23:50:00Z")  # the last sweep of May
        state = _sweep_of(ctx, op, upstream)
        assert (state.supports_all, state.frozen_through) == (True, None)
        assert ivr(may) == 500 * MICRO
        # Late May usage reaches the upstream after that sweep; June's begins.
        clock.set("2026-06-01T00:05:00Z")
        upstream.usage("2026-05-31T23:55:00Z", "25")
        upstream.usage("2026-06-01T00:01:00Z", "2")
        upstream.transport.asked.clear()
        clock.set("2026-06-01T00:10:00Z")
        state = _sweep_of(ctx, op, upstream)
        asked = upstream.transport.asked
        assert "/api/v2/billing.php?api=all&month=2026-05" in asked
        assert "/api/v2/billing.php?api=all" in asked
        assert (state.frozen_through, state.supports_month) == (may, True)
        # The upstream's final May figure, not the last one seen before the month ended.
        assert ivr(may) == 525 * MICRO
        assert ivr(june) == 2 * MICRO
        assert readings(may) == [500, 525]
        days = daily_figures(ctx, op, products, may)
        assert days.figures["ivr_minutes"][-1] == 525 * MICRO  # both readings on May 31
        assert sum(days.figures["ivr_minutes"]) == 525 * MICRO
        # May is final here: a later answer for it (asked again with month=) is not stored.
        clock.set("2026-06-01T00:20:00Z")
        upstream.usage("2026-05-31T23:58:00Z", "100")
        job = begin_sweep(ctx, FakeSecretBox(), op.id, "owner-1")
        assert job is not None
        assert job.plan.freeze_month is None  # frozen: not asked for again
        again = replace(job, plan=replace(job.plan, freeze_month=may, ask_month=True))
        outcome = asyncio.run(fetch(again, ctx.catalog, _renew, upstream.transport))
        assert ("ivr_minutes", may, Decimal("625")) in outcome.rows
        finish_sweep(ctx, again, outcome, "owner-1")
        assert ivr(may) == 525 * MICRO
        assert readings(may) == [500, 525]
        assert ivr(june) == 2 * MICRO


def test_a_sweep_that_makes_a_figure_reach_a_threshold_fires_its_alert_once(
    ctx: Context, clock: FakeClock, upstream: HostedLike
) -> None:
    from voxmeter.service.alerts import create_alert
    from voxmeter.service.notices import StoredNotices

    upstream.licenses = 20
    clock.set(START)
    op = _mirror(ctx, upstream, interval_minutes=30)
    created = create_alert(
        ctx,
        FakeSecretBox(),
        op,
        product="ivr_minutes",
        threshold="20",
        on="figure",
        url="http://127.0.0.1:9/hook",
    )
    sweeps = run_day(ctx, op, upstream, clock, grow=True)  # 10, 11, ... one an hour: past 20
    assert StoredNotices(ctx.storage).last_synced(op.id) == sweeps[-1]  # the dashboard's
    assert int(upstream.figures["ivr_minutes"]) > 20
    month = Month(2026, 5).index
    fired = ctx.storage.deliveries(op.id, created.alert.id, 10)
    assert [(d.alert_id, d.month, d.state) for d in fired] == [(created.alert.id, month, "pending")]
    # The firing was stored with the sweep's readings: a second day of sweeps adds nothing.
    run_day(ctx, op, upstream, clock, grow=True)
    assert len(ctx.storage.deliveries(op.id, created.alert.id, 10)) == 1
