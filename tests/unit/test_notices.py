"""The dashboard's notices read from storage (on the in-memory fake): each alert with its last
delivery, when a mirror last synced, and whether it is stale."""

from __future__ import annotations

from tests.fakes import FakeSecretBox, MemoryDatabase
from tests.integration.support import FakeClock, ev
from voxmeter.domain.mirrors import MirrorOptions
from voxmeter.domain.tenancy import Operation
from voxmeter.service.alerts import create_alert
from voxmeter.service.context import Context
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.mirrors import create_mirror, statuses
from voxmeter.service.notices import StoredNotices


def test_an_alert_is_listed_with_its_last_delivery(
    ctx: Context[MemoryDatabase], op: Operation
) -> None:
    notices = StoredNotices(ctx.storage)
    assert notices.alert_summaries(op.id) == []
    made = create_alert(
        ctx,
        FakeSecretBox(),
        op,
        product="ivr_minutes",
        threshold="100",
        on="figure",
        url="http://127.0.0.1:9/hook",
    )
    [quiet] = notices.alert_summaries(op.id)
    assert (quiet.id, quiet.target, quiet.on, quiet.threshold) == (
        str(made.alert.id),
        "ivr_minutes",
        "figure",
        "100",
    )
    assert (quiet.last_delivery, quiet.last_status) == (None, "")
    ingest_batch(ctx, op, [ev("e1", "ivr_minutes", "2026-05-15T11:00:00Z", "150")])
    [fired] = notices.alert_summaries(op.id)
    assert fired.last_delivery == ctx.clock()  # queued now, not yet attempted
    assert fired.last_status == "pending"


def test_a_mirror_shows_its_last_sync_and_an_operation_none(
    ctx: Context[MemoryDatabase], op: Operation
) -> None:
    notices = StoredNotices(ctx.storage)
    assert notices.last_synced(op.id) is None
    mirror = create_mirror(
        ctx,
        FakeSecretBox(),
        "mirrored",
        "9901",
        MirrorOptions(upstream_url="http://127.0.0.1:9"),
        "upstream-token",
    )
    assert notices.last_synced(mirror.id) is None  # never swept yet


def test_a_mirror_is_stale_past_its_limit_as_mirror_status_says(
    ctx: Context[MemoryDatabase], op: Operation, clock: FakeClock
) -> None:
    notices = StoredNotices(ctx.storage)
    options = MirrorOptions(upstream_url="http://127.0.0.1:9", stale_minutes=30)
    mirror = create_mirror(ctx, FakeSecretBox(), "mirrored", "9901", options, "upstream-token")
    create_alert(
        ctx, FakeSecretBox(), mirror, product=None, threshold=None, on="stale", url="http://h"
    )
    [summary] = notices.alert_summaries(mirror.id)
    assert (summary.target, summary.on, summary.threshold) == ("mirror", "stale", "")
    clock.advance(minutes=30)
    assert not notices.is_stale(mirror.id, clock.now)
    assert notices.stale_mirrors(clock.now) == set()
    clock.advance(minutes=1)
    expected = [s.operation.id for s in statuses(ctx, clock.now) if s.stale]
    assert expected == [mirror.id]
    assert notices.is_stale(mirror.id, clock.now)
    assert notices.stale_mirrors(clock.now) == {mirror.id}
    assert not notices.is_stale(op.id, clock.now)  # not a mirror
