"""InProcessLimiter over real storage: concurrency, the shared daily quota, flush and restore."""

from __future__ import annotations

from tests.integration.support import query
from voxmeter.adapters.limits import InProcessLimiter
from voxmeter.service.context import Context
from voxmeter.service.tenancy import create_operation, create_token

DAY = "2026-05-15"


def test_third_request_in_flight_is_busy_and_release_frees_a_slot(ctx: Context) -> None:
    op = create_operation(ctx, "acme", "9901", "UTC")
    token, _ = create_token(ctx, op, "a", [])
    other, _ = create_token(ctx, op, "b", [])
    limiter = InProcessLimiter(ctx.storage)
    quota = op.daily_quota

    first = limiter.admit(token.id, op.id, DAY, 2, quota)
    second = limiter.admit(token.id, op.id, DAY, 2, quota)
    third = limiter.admit(token.id, op.id, DAY, 2, quota)
    assert (first.outcome, first.token_today, first.operation_today) == ("ok", 1, 1)
    assert (second.outcome, second.token_today, second.operation_today) == ("ok", 2, 2)
    assert (third.outcome, third.token_today, third.operation_today) == ("busy", 2, 2)
    assert limiter.usage(token.id, op.id, DAY) == (2, 2)  # busy did not count

    # The limit is per token: another token of the operation gets in.
    assert limiter.admit(other.id, op.id, DAY, 2, quota).outcome == "ok"
    limiter.release(token.id)
    fourth = limiter.admit(token.id, op.id, DAY, 2, quota)
    assert (fourth.outcome, fourth.token_today, fourth.operation_today) == ("ok", 3, 4)
    assert limiter.admit(token.id, op.id, DAY, 2, quota).outcome == "busy"
    limiter.release(token.id)
    limiter.release(token.id)
    assert limiter.admit(token.id, op.id, DAY, 2, quota).outcome == "ok"
    assert limiter.admit(token.id, op.id, DAY, 2, quota).outcome == "ok"
    assert limiter.admit(token.id, op.id, DAY, 2, quota).outcome == "busy"


def test_daily_quota_is_exact_and_shared_and_refusals_do_not_consume(ctx: Context) -> None:
    op = create_operation(ctx, "acme", "9901", "UTC", licenses=2)
    neighbour = create_operation(ctx, "globex", "9901", "UTC")
    assert op.daily_quota == 2000
    a, _ = create_token(ctx, op, "a", [])
    b, _ = create_token(ctx, op, "b", [])
    n, _ = create_token(ctx, neighbour, "n", [])
    limiter = InProcessLimiter(ctx.storage)

    outcomes = []
    for i in range(2000):
        token = a if i % 4 else b  # 1500 on a, 500 on b
        admission = limiter.admit(token.id, op.id, DAY, 2, op.daily_quota)
        outcomes.append(admission.outcome)
        limiter.release(token.id)
    assert outcomes == ["ok"] * 2000
    assert limiter.usage(a.id, op.id, DAY) == (1500, 2000)
    assert limiter.usage(b.id, op.id, DAY) == (500, 2000)

    for token in (a, b, a, b, a):
        refused = limiter.admit(token.id, op.id, DAY, 2, op.daily_quota)
        assert (refused.outcome, refused.operation_today) == ("quota", 2000)
    assert limiter.usage(a.id, op.id, DAY) == (1500, 2000)
    assert limiter.usage(b.id, op.id, DAY) == (500, 2000)
    # Quota refusals take no in-flight slot either.
    assert limiter.admit(a.id, op.id, DAY, 2, 10**6).outcome == "ok"
    assert limiter.admit(a.id, op.id, DAY, 2, 10**6).outcome == "ok"
    limiter.release(a.id)
    limiter.release(a.id)

    # Other operations and other days have their own counts.
    assert limiter.admit(n.id, neighbour.id, DAY, 2, neighbour.daily_quota).operation_today == 1
    assert limiter.admit(a.id, op.id, "2026-05-16", 2, op.daily_quota).outcome == "ok"
    assert limiter.usage(a.id, op.id, "2026-05-16") == (1, 1)


def test_flush_persists_counts_and_restore_reloads_them(ctx: Context, db_path) -> None:
    op = create_operation(ctx, "acme", "9901", "UTC")
    a, _ = create_token(ctx, op, "a", [])
    b, _ = create_token(ctx, op, "b", [])
    limiter = InProcessLimiter(ctx.storage)
    for token, count in ((a, 600), (b, 399)):
        for _ in range(count):
            assert limiter.admit(token.id, op.id, DAY, 2, op.daily_quota).outcome == "ok"
            limiter.release(token.id)
    limiter.admit(a.id, op.id, "2026-05-14", 2, op.daily_quota)
    limiter.release(a.id)
    assert ctx.storage.request_counts(DAY, op.id) == {}  # nothing persisted before a flush

    limiter.flush()
    assert ctx.storage.request_counts(DAY, op.id) == {a.id: 600, b.id: 399}
    assert ctx.storage.request_counts("2026-05-14", None) == {a.id: 1}
    assert sorted(
        query(db_path, "SELECT token_id, day, operation_id, n FROM request_counts")
    ) == sorted([(a.id, DAY, op.id, 600), (b.id, DAY, op.id, 399), (a.id, "2026-05-14", op.id, 1)])
    used = {t.id: t.last_used for t in ctx.storage.tokens(op.id)}
    assert used[a.id] is not None
    assert used[b.id] is not None

    # More use, a second flush: counts are replaced by the new totals, not added twice.
    assert limiter.admit(b.id, op.id, DAY, 2, op.daily_quota).outcome == "ok"
    limiter.release(b.id)
    limiter.flush()
    limiter.flush()
    assert ctx.storage.request_counts(DAY, op.id) == {a.id: 600, b.id: 400}

    # A restart: a new limiter restores the day and the quota continues where it stopped.
    restarted = InProcessLimiter(ctx.storage)
    restarted.restore([DAY, "2026-05-14", "2026-05-16"])
    assert restarted.usage(a.id, op.id, DAY) == (600, 1000)
    assert restarted.usage(b.id, op.id, DAY) == (400, 1000)
    assert restarted.usage(a.id, op.id, "2026-05-14") == (1, 1)
    refused = restarted.admit(b.id, op.id, DAY, 2, op.daily_quota)
    assert (refused.outcome, refused.token_today, refused.operation_today) == ("quota", 400, 1000)
    fine = restarted.admit(b.id, op.id, "2026-05-16", 2, op.daily_quota)
    assert (fine.outcome, fine.token_today, fine.operation_today) == ("ok", 1, 1)
