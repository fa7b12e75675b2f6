"""Alerts on SQLite, PostgreSQL and the fake: a firing is recorded in the transaction of the
batch or void that reaches the threshold, at most once per alert and month (also with writers
racing across the threshold), and its delivery is claimed by one sender at a time."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest

from tests.fakes import FakeSecretBox
from tests.integration.conftest import DbUnderTest
from tests.integration.support import FakeClock, ev, month_index
from voxmeter.domain.catalog import Catalog
from voxmeter.domain.tenancy import Operation
from voxmeter.errors import BadParameters, ConfigError
from voxmeter.service.alerts import (
    DeliveryPolicy,
    create_alert,
    delete_alert,
    finish,
    list_alerts,
    outcome,
)
from voxmeter.service.context import Context
from voxmeter.service.events import void_event
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.ports import DeliveryAttempt
from voxmeter.service.prices import set_price

BOX = FakeSecretBox()


def _alert(ctx: Context, op: Operation, **given: str | None) -> int:
    options: dict[str, str | None] = {
        "product": "rsync",
        "threshold": "10",
        "on": "figure",
        "url": "http://127.0.0.1:9/hook",
    }
    options.update(given)
    made = create_alert(ctx, BOX, op, **options)  # type: ignore[arg-type]
    return made.alert.id


def _bodies(ctx: Context) -> list[dict[str, object]]:
    claimed = ctx.storage.claim_due("test", ctx.clock(), ctx.clock() + 1, 100)
    return [json.loads(c.body) for c in claimed]


def test_an_alert_fires_once_per_month_when_a_batch_reaches_it(
    ctx: Context, op: Operation, clock: FakeClock
) -> None:
    clock.set("2026-05-02T12:00:00Z")  # April is still open
    alert_id = _alert(ctx, op)
    ingest_batch(ctx, op, [ev("a", "rsync", "2026-05-01T00:00:00Z", "9.5")])
    assert ctx.storage.next_due() is None
    ingest_batch(ctx, op, [ev("b", "rsync", "2026-05-01T01:00:00Z", "0.5")])
    ingest_batch(ctx, op, [ev("c", "rsync", "2026-05-01T02:00:00Z", "7")])
    bodies = _bodies(ctx)
    assert bodies == [
        {
            "alert_id": alert_id,
            "operation": "acme",
            "server": "9901",
            "product": "rsync",
            "month": "2026-05",
            "threshold": "10",
            "on": "figure",
            "value": "10",
            "fired_at": "2026-05-02T12:00:00.000Z",
        }
    ]
    # April is another month: a late event reaching it there fires again, once.
    ingest_batch(ctx, op, [ev("d", "rsync", "2026-04-30T00:00:00Z", "11")])
    ingest_batch(ctx, op, [ev("e", "rsync", "2026-04-30T01:00:00Z", "1")])
    assert [b["month"] for b in _bodies(ctx)] == ["2026-04"]


def test_other_products_and_deleted_alerts_do_not_fire(ctx: Context, op: Operation) -> None:
    alert_id = _alert(ctx, op)
    ingest_batch(ctx, op, [ev("a", "rsync_s3_mp3", "2026-05-02T00:00:00Z", "50")])
    assert ctx.storage.next_due() is None
    delete_alert(ctx, alert_id)
    assert list_alerts(ctx, op) == []
    ingest_batch(ctx, op, [ev("b", "rsync", "2026-05-02T00:00:00Z", "50")])
    assert ctx.storage.next_due() is None
    with pytest.raises(ConfigError, match="no alert"):
        delete_alert(ctx, alert_id)


def test_forecast_amount_and_total_alerts(ctx: Context, op: Operation, clock: FakeClock) -> None:
    set_price(ctx, None, "rsync", "USD", unit_price="2")
    forecast = _alert(ctx, op, threshold="20", on="forecast")
    amount = _alert(ctx, op, threshold="9.99", on="amount")
    total = _alert(ctx, op, product=None, threshold="10.00", on="amount")
    # 14.5 of May's 31 days gone: 5 units so far head for about 10.7, 10 for about 21.4.
    ingest_batch(ctx, op, [ev("a", "rsync", "2026-05-02T00:00:00Z", "4.9")])
    assert ctx.storage.next_due() is None
    ingest_batch(ctx, op, [ev("b", "rsync", "2026-05-02T00:00:00Z", "0.1")])
    fired = {b["alert_id"]: b["value"] for b in _bodies(ctx)}
    assert fired == {amount: "10", total: "10"}
    ingest_batch(ctx, op, [ev("c", "rsync", "2026-05-03T00:00:00Z", "5")])
    assert {b["alert_id"] for b in _bodies(ctx)} == {forecast}


def test_a_level_alert_counts_the_level_carried_in(
    ctx: Context, op: Operation, clock: FakeClock
) -> None:
    clock.set("2026-05-02T12:00:00Z")  # April is still open
    ingest_batch(ctx, op, [ev("a", "agent_script", "2026-04-02T00:00:00Z", "30")])
    _alert(ctx, op, product="agent_script", threshold="25")
    ingest_batch(ctx, op, [ev("b", "agent_script", "2026-05-01T00:00:00Z", "3")])
    assert [b["value"] for b in _bodies(ctx)] == ["30"]


def test_a_void_can_fire_an_amount_alert(ctx: Context, op: Operation) -> None:
    """Volume tiers can price fewer units higher: a void is a change of usage like a batch."""
    set_price(ctx, None, "rsync", "USD", volume_tiers=["10:5", "inf:1"])
    _alert(ctx, op, threshold="40", on="amount")
    ingest_batch(
        ctx,
        op,
        [
            ev("a", "rsync", "2026-05-02T00:00:00Z", "8"),
            ev("b", "rsync", "2026-05-02T01:00:00Z", "8"),
        ],
    )
    assert ctx.storage.next_due() is None  # 16 units at 1
    void_event(ctx, op, "b")
    assert [b["value"] for b in _bodies(ctx)] == ["40"]


def test_bad_definitions_are_refused_and_store_nothing(ctx: Context, op: Operation) -> None:
    for given, said in [
        ({"product": "nope"}, "unknown product"),
        ({"threshold": "-1"}, "at least 0"),
        ({"threshold": "1.0000001"}, "decimal places"),
        ({"threshold": "ten"}, "not a decimal"),
        ({"on": "sometimes"}, "--on"),
        ({"payload": "xml"}, "--payload"),
        ({"url": "ftp://x/y"}, "http"),
        ({"url": "not a url"}, "http"),
        ({"secret": "hunter2"}, "whsec_"),
        ({"product": None, "on": "figure"}, "total"),
    ]:
        with pytest.raises(ConfigError, match=said):
            _alert(ctx, op, **given)
    assert list_alerts(ctx, op) == []
    assert not isinstance(ConfigError(), BadParameters)


def test_secrets_are_stored_sealed_and_generated_when_not_given(
    ctx: Context, op: Operation
) -> None:
    made = create_alert(
        ctx, BOX, op, product="rsync", threshold="1", on="figure", url="https://x.example/h"
    )
    assert made.generated
    assert made.secret.startswith("whsec_")
    (stored,) = list_alerts(ctx, op)
    assert stored.secret != made.secret
    assert BOX.open(stored.secret) == made.secret


def test_a_claimed_delivery_is_held_until_its_lease_ends_then_retried(
    ctx: Context, op: Operation, clock: FakeClock
) -> None:
    _alert(ctx, op)
    ingest_batch(ctx, op, [ev("a", "rsync", "2026-05-02T00:00:00Z", "10")])
    now = clock()
    (claimed,) = ctx.storage.claim_due("one", now, now + 60_000_000, 10)
    assert ctx.storage.claim_due("two", now, now + 60_000_000, 10) == []
    # The first sender vanished: after its lease, another may take the delivery.
    later = now + 61_000_000
    (again,) = ctx.storage.claim_due("two", later, later + 60_000_000, 10)
    assert again.id == claimed.id
    policy = DeliveryPolicy(base_delay=1.0)
    failed = DeliveryAttempt(later, None, "connection refused", 1000)
    finish(ctx, "two", again, failed, outcome(policy, again, failed, 0.5))
    (listed,) = ctx.storage.deliveries(op.id, None, 10)
    assert (listed.state, listed.attempts, listed.last_attempt) == ("pending", 1, failed)
    assert listed.next_attempt == later + 1000 + 500_000
    retry = ctx.storage.claim_due("two", listed.next_attempt, listed.next_attempt + 1, 10)
    assert [r.attempts for r in retry] == [1]
    ok = DeliveryAttempt(listed.next_attempt, 204, None, 2000)
    finish(ctx, "two", retry[0], ok, outcome(policy, retry[0], ok, 0.5))
    (done,) = ctx.storage.deliveries(op.id, None, 10)
    assert (done.state, done.attempts) == ("delivered", 2)
    assert [a for _, a in ctx.storage.delivery_attempts(op.id, None, 10)] == [ok, failed]
    assert ctx.storage.next_due() is None


def test_racing_writers_fire_an_alert_once(
    database: DbUnderTest, catalog: Catalog, clock: FakeClock
) -> None:
    """Writers with storages of their own (as separate processes have) ingest across the
    threshold at once: exactly one firing and one delivery."""
    stores = [database.open() for _ in range(4)]
    stores[0].migrate()
    ctxs = [Context(storage=s, catalog=catalog, clock=clock) for s in stores]
    from voxmeter.service.tenancy import create_operation

    op = create_operation(ctxs[0], "race", "9901", "UTC")
    _alert(ctxs[0], op, threshold="100")
    start = threading.Barrier(len(ctxs))
    errors: list[BaseException] = []

    def run(ctx: Context, n: int) -> Callable[[], None]:
        def work() -> None:
            try:
                start.wait()
                for i in range(25):
                    ingest_batch(ctx, op, [ev(f"{n}-{i}", "rsync", "2026-05-02T00:00:00Z", "1")])
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        return work

    threads = [threading.Thread(target=run(c, n)) for n, c in enumerate(ctxs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    bodies = _bodies(ctxs[0])
    assert [b["value"] for b in bodies] == ["100"]
    assert month_index("2026-05") == ctxs[0].storage.deliveries(op.id, None, 10)[0].month
    for s in stores:
        s.close()


def test_concurrent_senders_never_claim_one_delivery_twice(
    database: DbUnderTest, catalog: Catalog, clock: FakeClock
) -> None:
    """Senders with storages of their own (one per process) claim at once: every due delivery
    goes to exactly one of them."""
    stores = [database.open() for _ in range(4)]
    stores[0].migrate()
    ctx = Context(storage=stores[0], catalog=catalog, clock=clock)
    from voxmeter.service.tenancy import create_operation

    op = create_operation(ctx, "claims", "9901", "UTC")
    for n in range(30):
        _alert(ctx, op, threshold=str(n + 1))
    for n in range(30):
        ingest_batch(ctx, op, [ev(f"e{n}", "rsync", "2026-05-02T00:00:00Z", "1")])
    now = clock()
    start = threading.Barrier(len(stores))
    claimed: list[list[int]] = [[] for _ in stores]

    def claim(k: int) -> None:
        start.wait()
        for _ in range(10):
            got = stores[k].claim_due(f"sender-{k}", now, now + 60_000_000, 2)
            claimed[k].extend(c.id for c in got)

    threads = [threading.Thread(target=claim, args=(k,)) for k in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for ids in claimed for i in ids]
    assert sorted(every) == sorted({d.id for d in stores[0].deliveries(op.id, None, 100)})
    assert len(every) == 30
    for s in stores:
        s.close()


def test_a_process_sees_alerts_made_and_fired_by_another(
    database: DbUnderTest, catalog: Catalog, clock: FakeClock
) -> None:
    """Each process keeps its operations' armed alerts while the alerts version holds: an
    alert created, fired or deleted elsewhere is seen at the next batch."""
    first, second = database.open(), database.open()
    first.migrate()
    one = Context(storage=first, catalog=catalog, clock=clock)
    two = Context(storage=second, catalog=catalog, clock=clock)
    from voxmeter.service.tenancy import create_operation

    op = create_operation(one, "seen", "9901", "UTC")
    ingest_batch(one, op, [ev("a", "rsync", "2026-05-02T00:00:00Z", "1")])  # nothing armed
    made = _alert(two, op, threshold="2")
    ingest_batch(one, op, [ev("b", "rsync", "2026-05-02T00:00:00Z", "1")])
    assert [b["alert_id"] for b in _bodies(one)] == [made]
    other = _alert(two, op, threshold="3")
    ingest_batch(two, op, [ev("c", "rsync", "2026-05-02T00:00:00Z", "1")])  # fires `other`
    ingest_batch(one, op, [ev("d", "rsync", "2026-05-02T00:00:00Z", "1")])
    assert [b["alert_id"] for b in _bodies(one)] == [other]
    last = _alert(one, op, threshold="10")
    ingest_batch(one, op, [ev("e", "rsync", "2026-05-02T00:00:00Z", "1")])  # caches `last`
    delete_alert(two, last)
    ingest_batch(one, op, [ev("f", "rsync", "2026-05-02T00:00:00Z", "10")])
    assert _bodies(one) == []
    first.close()
    second.close()
