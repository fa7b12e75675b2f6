"""The dashboard's notices read from storage (on the in-memory fake): each alert with its last
delivery, and when a mirror last synced."""

from __future__ import annotations

from tests.fakes import FakeSecretBox, MemoryDatabase
from tests.integration.support import ev
from voxmeter.domain.mirrors import MirrorOptions
from voxmeter.domain.tenancy import Operation
from voxmeter.service.alerts import create_alert
from voxmeter.service.context import Context
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.mirrors import create_mirror
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
