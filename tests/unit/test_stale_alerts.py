"""Staleness alerts (`--on stale`) on the in-memory fake: the rule of one firing per staleness
episode, the body a receiver gets, and every refused definition storing nothing."""

from __future__ import annotations

import json

import pytest

from tests.fakes import FakeSecretBox, MemoryDatabase
from tests.integration.support import FakeClock
from voxmeter.domain import alerts as rules
from voxmeter.domain.alerts import On, Payload
from voxmeter.domain.mirrors import MirrorOptions, SyncState, stale_since
from voxmeter.domain.tenancy import Operation
from voxmeter.errors import ConfigError
from voxmeter.service.alerts import (
    check_stale_alerts,
    create_alert,
    delete_alert,
    evaluate_alerts,
)
from voxmeter.service.context import Context
from voxmeter.service.mirrors import create_mirror
from voxmeter.service.sweeps import SweepOutcome, begin_sweep, finish_sweep

HOOK = "http://127.0.0.1:9/hook"


def _mirror(ctx: Context[MemoryDatabase], stale_minutes: int = 60) -> Operation:
    options = MirrorOptions("http://127.0.0.1:9", stale_minutes=stale_minutes)
    return create_mirror(ctx, FakeSecretBox(), "mirrored", "9902", options, "upstream-token")


def _stale_alert(ctx: Context[MemoryDatabase], op: Operation, payload: str = "json") -> int:
    made = create_alert(
        ctx, FakeSecretBox(), op, product=None, threshold=None, on="stale", url=HOOK,
        payload=payload,
    )  # fmt: skip
    return made.alert.id


def _bodies(ctx: Context[MemoryDatabase]) -> list[dict[str, object]]:
    forever = ctx.clock() + 10**15  # claimed for good: each body is read once
    claimed = ctx.storage.claim_due("test", ctx.clock(), forever, 100)
    return [json.loads(c.body) for c in claimed]


def _swept(ctx: Context[MemoryDatabase], op: Operation) -> None:
    """A successful sweep (the upstream answered, with nothing new)."""
    job = begin_sweep(ctx, FakeSecretBox(), op.id, "owner")
    assert job is not None
    state, _ = finish_sweep(ctx, job, SweepOutcome(), "owner")
    assert state.last_ok == ctx.clock()


def test_the_rule_fires_once_per_episode() -> None:
    assert not rules.stale_fires(False, 100, None)
    assert rules.stale_fires(True, 100, None)
    assert not rules.stale_fires(True, 100, 100)  # this episode has fired
    assert rules.stale_fires(True, 200, 100)  # recovered at 200, then stale again
    assert stale_since(SyncState(), created=7) == 7
    assert stale_since(SyncState(last_ok=9), created=7) == 9


def test_a_mirror_gone_stale_fires_once_then_again_after_recovering(
    ctx: Context[MemoryDatabase], clock: FakeClock
) -> None:
    mirror = _mirror(ctx)
    alert_id = _stale_alert(ctx, mirror)
    assert check_stale_alerts(ctx) == []
    clock.advance(minutes=60)
    assert check_stale_alerts(ctx) == []  # at the limit, not past it
    clock.advance(minutes=1)
    assert check_stale_alerts(ctx) == [(alert_id, "mirrored")]
    assert _bodies(ctx) == [
        {
            "alert_id": alert_id,
            "operation": "mirrored",
            "server": "9902",
            "product": None,
            "month": "2026-05",
            "threshold": None,
            "on": "stale",
            "value": None,
            "last_sync": None,
            "stale_after_minutes": 60,
            "fired_at": "2026-05-15T13:01:00.000Z",
        }
    ]
    clock.advance(hours=5)
    assert check_stale_alerts(ctx) == []  # still the same episode
    _swept(ctx, mirror)
    assert check_stale_alerts(ctx) == []
    clock.advance(minutes=61)
    assert check_stale_alerts(ctx) == [(alert_id, "mirrored")]
    (again,) = _bodies(ctx)
    assert again["last_sync"] == "2026-05-15T18:01:00.000Z"  # the recovering sweep
    deliveries = ctx.storage.deliveries(mirror.id, alert_id, 10)
    assert [d.month for d in deliveries] == [2026 * 12 + 4] * 2


def test_the_limit_in_effect_is_the_one_reported(
    ctx: Context[MemoryDatabase], clock: FakeClock
) -> None:
    mirror = _mirror(ctx, stale_minutes=5)
    _stale_alert(ctx, mirror, payload="slack")
    clock.advance(minutes=6)
    assert len(check_stale_alerts(ctx)) == 1
    (body,) = _bodies(ctx)
    assert list(body) == ["text"]
    text = str(body["text"])
    assert "mirrored (9902) is stale" in text
    assert "never been swept successfully" in text
    assert "5 minutes" in text


def test_a_deleted_alert_and_an_alert_on_usage_fire_nothing_here(
    ctx: Context[MemoryDatabase], clock: FakeClock, op: Operation
) -> None:
    mirror = _mirror(ctx)
    delete_alert(ctx, _stale_alert(ctx, mirror))
    create_alert(ctx, FakeSecretBox(), op, product="rsync", threshold="0", on="figure", url=HOOK)
    clock.advance(hours=2)
    assert check_stale_alerts(ctx) == []
    assert ctx.storage.next_due() is None


def test_a_staleness_alert_is_never_armed_for_usage(
    ctx: Context[MemoryDatabase], clock: FakeClock
) -> None:
    mirror = _mirror(ctx)
    _stale_alert(ctx, mirror)
    month = 2026 * 12 + 4
    with ctx.storage.write() as tx:
        assert tx.armed_alerts(mirror.id, month) == []
        assert evaluate_alerts(tx, ctx, mirror, [month], {"ivr_minutes"}) == 0


@pytest.mark.parametrize(
    ("given", "told"),
    [
        ({"product": "ivr_minutes"}, "leave out --product"),
        ({"threshold": "10"}, "leave out --threshold"),
        ({"operation": "not a mirror"}, "is not a mirror"),
        ({"on": "figure", "product": "ivr_minutes"}, "needs --threshold"),
    ],
)
def test_a_bad_definition_is_refused_and_nothing_stored(
    ctx: Context[MemoryDatabase], op: Operation, given: dict[str, str], told: str
) -> None:
    mirror = _mirror(ctx)
    target = op if given.pop("operation", None) else mirror
    options: dict[str, str | None] = {"product": None, "threshold": None, "on": "stale"}
    options.update(given)
    audited = len(ctx.storage.audit_entries(None, None, None, None, 1000))
    with pytest.raises(ConfigError, match=told):
        create_alert(ctx, FakeSecretBox(), target, url=HOOK, **options)  # type: ignore[arg-type]
    assert ctx.storage.alerts(None) == []
    assert len(ctx.storage.audit_entries(None, None, None, None, 1000)) == audited


def test_the_audit_entry_names_no_threshold(ctx: Context[MemoryDatabase]) -> None:
    mirror = _mirror(ctx)
    alert_id = _stale_alert(ctx, mirror)
    entry = ctx.storage.audit_entries(mirror.id, None, None, None, 1000)[-1]
    assert json.loads(entry.details) == {
        "alert": alert_id,
        "on": "stale",
        "webhook": "http://127.0.0.1:9",
        "payload": "json",
    }
    (stored,) = ctx.storage.alerts(mirror.id)
    assert (stored.on, stored.product, stored.payload) == (On.STALE, None, Payload.JSON)
