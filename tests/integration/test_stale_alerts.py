"""Staleness alerts (`--on stale`) on SQLite, PostgreSQL and the fake, with a simulated clock and
the hosted-like upstream over loopback: a mirror whose upstream fails goes stale and fires
exactly one delivery; staying stale fires nothing more; recovering and going stale again fires a
second; and a process that checked at the same moment as another records no second firing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.fakes import FakeSecretBox
from tests.integration.conftest import DbUnderTest
from tests.integration.support import FakeClock
from tests.upstreams.hosted import HostedLike, hosted_like
from voxmeter.adapters.upstream import fetch
from voxmeter.domain.mirrors import MirrorOptions, SyncState
from voxmeter.domain.months import from_micros
from voxmeter.domain.tenancy import Operation
from voxmeter.service.alerts import check_stale_alerts, create_alert
from voxmeter.service.context import Context
from voxmeter.service.mirrors import create_mirror
from voxmeter.service.ports import StaleWatch
from voxmeter.service.sweeps import begin_sweep, finish_sweep

TOKEN = "upstream-secret-token"
BOX = FakeSecretBox()
UTC = ZoneInfo("UTC")


async def _renew() -> bool:
    return True


@pytest.fixture
def upstream() -> Iterator[HostedLike]:
    with hosted_like(TOKEN, figures={"ivr_minutes": "10"}) as server:
        server.licenses = 20  # a budget that sweeps every 5 minutes: the limit stays 60
        yield server


@dataclass
class Run:
    """A server's background work, simulated: a sweep whenever due, a staleness check every
    5 minutes."""

    ctx: Context
    op: Operation
    upstream: HostedLike
    clock: FakeClock
    state: SyncState | None = None

    def sweep(self) -> SyncState:
        self.upstream.today = from_micros(self.clock.now, UTC).date().isoformat()
        job = begin_sweep(self.ctx, BOX, self.op.id, "owner-1")
        assert job is not None
        assert job.affordable
        outcome = asyncio.run(fetch(job, self.ctx.catalog, _renew))
        self.state, _ = finish_sweep(self.ctx, job, outcome, "owner-1")
        return self.state

    def for_minutes(self, minutes: int) -> list[tuple[int, str]]:
        """Run the background work for `minutes`; the staleness alerts fired."""
        fired = []
        end = self.clock.now + minutes * 60_000_000
        while self.clock.now < end:
            self.clock.advance(minutes=5)
            if self.state is None or self.clock.now >= self.state.next_due:
                self.sweep()
            fired += check_stale_alerts(self.ctx)
        return fired


def _bodies(ctx: Context) -> list[dict[str, object]]:
    forever = ctx.clock() + 10**15  # claimed for good: each body is read once
    claimed = ctx.storage.claim_due("test", ctx.clock(), forever, 100)
    return [json.loads(c.body) for c in sorted(claimed, key=lambda c: c.id)]


def _setup(ctx: Context, clock: FakeClock, upstream: HostedLike) -> tuple[Run, int]:
    clock.set("2026-05-15T10:00:00Z")
    options = MirrorOptions(upstream_url=upstream.base_url)
    op = create_mirror(ctx, BOX, "mirrored", "9901", options, TOKEN)
    made = create_alert(
        ctx, BOX, op, product=None, threshold=None, on="stale", url="http://127.0.0.1:9/hook"
    )
    run = Run(ctx, op, upstream, clock)
    assert run.sweep().failure is None  # 10:00, the last successful sweep for a while
    return run, made.alert.id


def test_a_mirror_whose_upstream_fails_fires_once_per_staleness_episode(
    ctx: Context, clock: FakeClock, upstream: HostedLike
) -> None:
    run, alert_id = _setup(ctx, clock, upstream)
    upstream.maintenance = True
    assert run.for_minutes(60) == []  # failing, but within the 60-minute limit
    assert run.state is not None
    assert run.state.failure is not None
    assert run.for_minutes(60) == [(alert_id, "mirrored")]  # stale from 11:00 on
    (body,) = _bodies(ctx)
    assert (body["on"], body["operation"], body["server"]) == ("stale", "mirrored", "9901")
    assert body["last_sync"] == "2026-05-15T10:00:00.000Z"
    assert body["stale_after_minutes"] == 60
    assert body["fired_at"] == "2026-05-15T11:05:00.000Z"
    # Still stale hours later: the same episode fires nothing more.
    assert run.for_minutes(180) == []
    assert len(ctx.storage.deliveries(run.op.id, alert_id, 10)) == 1

    # The upstream is back: the next sweep succeeds, and the mirror is fresh again.
    upstream.maintenance = False
    fired = []
    while run.state is not None and run.state.failure is not None:
        fired += run.for_minutes(5)
    assert fired == []
    assert run.state is not None
    assert run.state.last_ok == clock.now
    assert run.for_minutes(60) == []  # swept every 5 minutes
    # And fails again: a second episode, a second delivery, naming the last good sweep.
    last_good = run.state.last_ok
    assert last_good is not None
    upstream.maintenance = True
    assert run.for_minutes(120) == [(alert_id, "mirrored")]
    (second,) = _bodies(ctx)
    assert second["last_sync"] == from_micros(last_good, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert [d.alert_id for d in ctx.storage.deliveries(run.op.id, alert_id, 10)] == [alert_id] * 2


class _ReadEarlier:
    """Another process's storage over the same database, whose check read the staleness
    alerts before this process's firing committed."""

    def __init__(self, storage: Any, watches: list[StaleWatch]) -> None:
        self._storage = storage
        self._watches = watches

    def stale_watches(self) -> list[StaleWatch]:
        return self._watches

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)


def test_two_processes_checking_at_once_fire_one_delivery(
    ctx: Context, clock: FakeClock, upstream: HostedLike, database: DbUnderTest
) -> None:
    run, alert_id = _setup(ctx, clock, upstream)
    upstream.maintenance = True
    clock.advance(minutes=61)
    other = database.open()
    try:
        seen = other.stale_watches()
        assert [w.fired_through for w in seen] == [None]
        assert check_stale_alerts(ctx) == [(alert_id, "mirrored")]
        racing = replace(ctx, storage=_ReadEarlier(other, seen))
        assert check_stale_alerts(racing) == []  # the firing key: a no-op, no delivery
        assert check_stale_alerts(replace(ctx, storage=other)) == []
    finally:
        if other is not ctx.storage:
            other.close()
    assert len(ctx.storage.deliveries(run.op.id, alert_id, 10)) == 1
