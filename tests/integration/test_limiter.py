"""Both limiters over real storage (in-process and Redis): concurrency, the shared daily quota,
flush; then what only the Redis one has: leases that expire, several processes, outages."""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from tests.backends import REDIS_URL, pg_schema, redis_prefix
from tests.integration.support import FakeClock, Sql
from tests.proxy import CuttableProxy
from voxmeter.adapters.limits import InProcessLimiter
from voxmeter.adapters.redis_limits import RedisLimiter
from voxmeter.bootstrap import limiter as wired_limiter
from voxmeter.bootstrap import open_storage
from voxmeter.config import Settings
from voxmeter.domain.catalog import Catalog
from voxmeter.domain.tenancy import Token
from voxmeter.errors import Unavailable
from voxmeter.service.context import Context
from voxmeter.service.ports import Limiter
from voxmeter.service.tenancy import create_operation, create_token, hash_secret

DAY = "2026-05-15"
MakeLimiter = Callable[..., Limiter]
MakeRedis = Callable[..., RedisLimiter]


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def redis_keys() -> Iterator[str]:
    """A key prefix of this test's own in the test Redis (skips or, with CI=true, fails without
    Redis); its keys are deleted afterwards."""
    with redis_prefix() as prefix:
        yield prefix


#: The deployment id of limiters made without storage (the ones with storage use its own).
DEPLOYMENT = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def make_redis(redis_keys: str) -> Iterator[MakeRedis]:
    """RedisLimiters over one fresh prefix (several of them play several processes)."""
    made: list[RedisLimiter] = []

    def make(storage: Any = None, **options: Any) -> RedisLimiter:
        if storage is None:
            options.setdefault("deployment", DEPLOYMENT)
        limiter = RedisLimiter(REDIS_URL, storage, prefix=redis_keys, **options)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        limiter.close()


@pytest.fixture
def make_limiter(
    backend: str, ctx: Context, request: pytest.FixtureRequest
) -> Iterator[MakeLimiter]:
    """A limiter over the test's storage, in-process or through Redis."""
    if backend == "memory":
        yield lambda: InProcessLimiter(ctx.storage)
        return
    make: MakeRedis = request.getfixturevalue("make_redis")
    yield lambda: make(ctx.storage)


def test_third_request_in_flight_is_busy_and_release_frees_a_slot(
    ctx: Context, make_limiter: MakeLimiter
) -> None:
    op = create_operation(ctx, "acme", "9901", "UTC")
    token, _ = create_token(ctx, op, "a", [])
    other, _ = create_token(ctx, op, "b", [])
    limiter = make_limiter()
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
    limiter.release(token.id, first.lease)
    fourth = limiter.admit(token.id, op.id, DAY, 2, quota)
    assert (fourth.outcome, fourth.token_today, fourth.operation_today) == ("ok", 3, 4)
    assert limiter.admit(token.id, op.id, DAY, 2, quota).outcome == "busy"
    limiter.release(token.id, second.lease)
    limiter.release(token.id, fourth.lease)
    assert limiter.admit(token.id, op.id, DAY, 2, quota).outcome == "ok"
    assert limiter.admit(token.id, op.id, DAY, 2, quota).outcome == "ok"
    assert limiter.admit(token.id, op.id, DAY, 2, quota).outcome == "busy"


def test_daily_quota_is_exact_and_shared_and_refusals_do_not_consume(
    ctx: Context, make_limiter: MakeLimiter
) -> None:
    op = create_operation(ctx, "acme", "9901", "UTC", licenses=2)
    neighbour = create_operation(ctx, "globex", "9901", "UTC")
    assert op.daily_quota == 2000
    a, _ = create_token(ctx, op, "a", [])
    b, _ = create_token(ctx, op, "b", [])
    n, _ = create_token(ctx, neighbour, "n", [])
    limiter = make_limiter()

    outcomes = []
    for i in range(2000):
        token = a if i % 4 else b  # 1500 on a, 500 on b
        admission = limiter.admit(token.id, op.id, DAY, 2, op.daily_quota)
        outcomes.append(admission.outcome)
        limiter.release(token.id, admission.lease)
    assert outcomes == ["ok"] * 2000
    assert limiter.usage(a.id, op.id, DAY) == (1500, 2000)
    assert limiter.usage(b.id, op.id, DAY) == (500, 2000)

    for token in (a, b, a, b, a):
        refused = limiter.admit(token.id, op.id, DAY, 2, op.daily_quota)
        assert (refused.outcome, refused.operation_today) == ("quota", 2000)
    assert limiter.usage(a.id, op.id, DAY) == (1500, 2000)
    assert limiter.usage(b.id, op.id, DAY) == (500, 2000)
    # Quota refusals take no in-flight slot either.
    x = limiter.admit(a.id, op.id, DAY, 2, 10**6)
    y = limiter.admit(a.id, op.id, DAY, 2, 10**6)
    assert (x.outcome, y.outcome) == ("ok", "ok")
    limiter.release(a.id, x.lease)
    limiter.release(a.id, y.lease)

    # Other operations and other days have their own counts.
    assert limiter.admit(n.id, neighbour.id, DAY, 2, neighbour.daily_quota).operation_today == 1
    assert limiter.admit(a.id, op.id, "2026-05-16", 2, op.daily_quota).outcome == "ok"
    assert limiter.usage(a.id, op.id, "2026-05-16") == (1, 1)


def test_flush_persists_counts_and_a_restart_continues_from_them(
    ctx: Context, sql: Sql, backend: str, make_limiter: MakeLimiter
) -> None:
    op = create_operation(ctx, "acme", "9901", "UTC")
    a, _ = create_token(ctx, op, "a", [])
    b, _ = create_token(ctx, op, "b", [])
    limiter = make_limiter()
    for token, count in ((a, 600), (b, 399)):
        for _ in range(count):
            admission = limiter.admit(token.id, op.id, DAY, 2, op.daily_quota)
            assert admission.outcome == "ok"
            limiter.release(token.id, admission.lease)
    admission = limiter.admit(a.id, op.id, "2026-05-14", 2, op.daily_quota)
    limiter.release(a.id, admission.lease)
    assert ctx.storage.request_counts(DAY, op.id) == {}  # nothing persisted before a flush

    limiter.flush()
    assert ctx.storage.request_counts(DAY, op.id) == {a.id: 600, b.id: 399}
    assert ctx.storage.request_counts("2026-05-14", None) == {a.id: 1}
    assert sorted(sql("SELECT token_id, day, operation_id, n FROM request_counts")) == sorted(
        [(a.id, DAY, op.id, 600), (b.id, DAY, op.id, 399), (a.id, "2026-05-14", op.id, 1)]
    )
    used = {t.id: t.last_used for t in ctx.storage.tokens(op.id)}
    assert used[a.id] is not None
    assert used[b.id] is not None

    # More use, a second flush: counts are replaced by the new totals, not added twice.
    admission = limiter.admit(b.id, op.id, DAY, 2, op.daily_quota)
    assert admission.outcome == "ok"
    limiter.release(b.id, admission.lease)
    limiter.flush()
    limiter.flush()
    assert ctx.storage.request_counts(DAY, op.id) == {a.id: 600, b.id: 400}

    # A restart: the in-process limiter restores the days; Redis loses its memory (no
    # persistence) and its counters are seeded from the database on first use.
    if backend == "memory":
        memory = InProcessLimiter(ctx.storage)
        memory.restore([DAY, "2026-05-14", "2026-05-16"])
        restarted: Limiter = memory
        assert restarted.usage(a.id, op.id, DAY) == (600, 1000)
        assert restarted.usage(b.id, op.id, DAY) == (400, 1000)
        assert restarted.usage(a.id, op.id, "2026-05-14") == (1, 1)
    else:
        assert isinstance(limiter, RedisLimiter)
        _forget_everything(limiter)
        restarted = make_limiter()
        # Until an admission seeds the counters, usage reads the last flushed figures.
        assert restarted.usage(b.id, op.id, DAY) == (400, 1000)
    refused = restarted.admit(b.id, op.id, DAY, 2, op.daily_quota)
    assert (refused.outcome, refused.token_today, refused.operation_today) == ("quota", 400, 1000)
    assert restarted.usage(a.id, op.id, DAY) == (600, 1000)
    fine = restarted.admit(b.id, op.id, "2026-05-16", 2, op.daily_quota)
    assert (fine.outcome, fine.token_today, fine.operation_today) == ("ok", 1, 1)
    restarted.flush()  # a token whose Redis counter is gone keeps its stored figure
    assert ctx.storage.request_counts(DAY, op.id) == {a.id: 600, b.id: 400}


def _forget_everything(limiter: RedisLimiter) -> None:
    """What a Redis restart without persistence does to this limiter's keys."""
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{limiter.namespace}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


# Redis only


def test_redis_keys_are_named_after_the_prefix_and_the_database_and_expire_by_themselves(
    ctx: Context, make_redis: MakeRedis, redis_keys: str
) -> None:
    deployment = ctx.storage.deployment_id()
    assert len(deployment) == 32
    int(deployment, 16)  # 128 random bits, in hex
    limiter = make_redis(ctx.storage, lease_seconds=5)
    ns = f"{redis_keys}:{deployment}"
    assert limiter.namespace == ns
    held = limiter.admit("tok", 7, DAY, 2, 100)
    assert held.outcome == "ok"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        ttls = {key.decode(): client.pttl(key) for key in client.scan_iter(f"{redis_keys}*")}
    finally:
        client.close()
    assert set(ttls) == {f"{ns}:lease:tok", f"{ns}:tday:tok:{DAY}", f"{ns}:oday:7:{DAY}"}
    assert 5_000 < ttls[f"{ns}:lease:tok"] <= 6_000  # the newest lease + 1 s
    assert 3 * 86_400_000 - 60_000 < ttls[f"{ns}:oday:7:{DAY}"] <= 3 * 86_400_000
    assert 3 * 86_400_000 - 60_000 < ttls[f"{ns}:tday:tok:{DAY}"] <= 3 * 86_400_000


def test_a_limiter_needs_a_deployment_id() -> None:
    with pytest.raises(ValueError, match="deployment id"):
        RedisLimiter(REDIS_URL, prefix="vxtest-none")
    with pytest.raises(ValueError, match="deployment id"):
        RedisLimiter(REDIS_URL, prefix="vxtest-none", deployment="")


@pytest.mark.serial
def test_a_dead_holders_slot_frees_itself_after_the_lease(make_redis: MakeRedis) -> None:
    dead = make_redis(lease_seconds=1, auto_renew=False)  # admits, then never renews nor releases
    other = make_redis(lease_seconds=1)
    start = time.monotonic()
    assert dead.admit("tok", 1, DAY, 1, 1000).outcome == "ok"
    assert other.admit("tok", 1, DAY, 1, 1000).outcome == "busy"
    while time.monotonic() - start < 3:
        admission = other.admit("tok", 1, DAY, 1, 1000)
        if admission.outcome == "ok":
            break
        assert admission.outcome == "busy"
        time.sleep(0.02)
    waited = time.monotonic() - start
    assert admission.outcome == "ok"
    assert 0.95 <= waited <= 2.0


@pytest.mark.serial
def test_renewed_leases_keep_their_slots(make_redis: MakeRedis) -> None:
    holder = make_redis(lease_seconds=1, renew_every=0.2)  # its own renewing thread
    manual = make_redis(lease_seconds=1, auto_renew=False)  # renewed by hand below
    other = make_redis(lease_seconds=1)
    held = holder.admit("tok", 1, DAY, 1, 1000)
    kept = manual.admit("tik", 1, DAY, 1, 1000)
    assert (held.outcome, kept.outcome) == ("ok", "ok")
    until = time.monotonic() + 2.5
    while time.monotonic() < until:
        assert manual.renew() == 1
        assert other.admit("tok", 1, DAY, 1, 1000).outcome == "busy"
        assert other.admit("tik", 1, DAY, 1, 1000).outcome == "busy"
        time.sleep(0.2)
    holder.release("tok", held.lease)
    manual.release("tik", kept.lease)
    assert manual.renew() == 0
    assert other.admit("tok", 1, DAY, 1, 1000).outcome == "ok"
    assert other.admit("tik", 1, DAY, 1, 1000).outcome == "ok"


def test_a_lease_lost_in_redis_is_forgotten_by_renew(make_redis: MakeRedis) -> None:
    limiter = make_redis(auto_renew=False)
    one = limiter.admit("tok", 1, DAY, 2, 1000)
    two = limiter.admit("tok", 1, DAY, 2, 1000)
    assert limiter.renew() == 2
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.zrem(f"{limiter.namespace}:lease:tok", one.lease)  # as if pruned after expiring
    finally:
        client.close()
    assert limiter.renew() == 1
    limiter.release("tok", one.lease)  # harmless
    limiter.release("tok", two.lease)
    assert limiter.renew() == 0


def _hammer(
    prefix: str,
    token_id: str,
    attempts: int,
    max_in_flight: int,
    quota: int,
    keep: bool,
    start: Any,
    results: Any,
) -> None:
    """One OS process admitting (and releasing unless `keep`) as fast as it can."""
    limiter = RedisLimiter(REDIS_URL, prefix=prefix, deployment=DEPLOYMENT)
    try:
        start.wait(timeout=60)
        outcomes: Counter[str] = Counter()
        for _ in range(attempts):
            admission = limiter.admit(token_id, 1, DAY, max_in_flight, quota)
            outcomes[admission.outcome] += 1
            if admission.outcome == "ok" and not keep:
                limiter.release(token_id, admission.lease)
        results.put(dict(outcomes))
    finally:
        limiter.close()


def _in_processes(prefix: str, jobs: list[tuple[str, int, int, int, bool]]) -> Counter[str]:
    """Run `_hammer` in one spawned process per job, all starting together; sum the outcomes."""
    mp = multiprocessing.get_context("spawn")
    start = mp.Barrier(len(jobs))
    results = mp.Queue()
    procs = [
        mp.Process(target=_hammer, args=(prefix, *job, start, results), daemon=True) for job in jobs
    ]
    for proc in procs:
        proc.start()
    total: Counter[str] = Counter()
    try:
        for _ in procs:
            total.update(results.get(timeout=120))
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
    assert all(proc.exitcode == 0 for proc in procs)
    return total


def test_quota_is_exact_across_processes(make_redis: MakeRedis, redis_keys: str) -> None:
    # Four processes, two tokens of one operation, 600 attempts against a quota of 300.
    jobs = [(f"tok{i % 2}", 150, 1000, 300, False) for i in range(4)]
    total = _in_processes(redis_keys, jobs)
    assert total == {"ok": 300, "quota": 300}
    observer = make_redis()
    mine, everyone = observer.usage("tok0", 1, DAY)
    theirs, _ = observer.usage("tok1", 1, DAY)
    assert everyone == 300
    assert mine + theirs == 300


def test_concurrency_is_exact_across_processes(make_redis: MakeRedis, redis_keys: str) -> None:
    # Four processes each try to hold 5 slots of one token at once; only 5 in all get one.
    total = _in_processes(redis_keys, [("tok", 5, 5, 1000, True)] * 4)
    assert total == {"ok": 5, "busy": 15}
    observer = make_redis()
    assert observer.usage("tok", 1, DAY) == (5, 5)
    assert observer.admit("tok", 1, DAY, 5, 1000).outcome == "busy"


@pytest.mark.serial
def test_unreachable_redis_is_unavailable_at_once(ctx: Context) -> None:
    limiter = RedisLimiter("redis://127.0.0.1:1/0", ctx.storage, prefix="vxtest-nowhere")
    try:
        start = time.monotonic()
        with pytest.raises(Unavailable):
            limiter.admit("tok", 1, DAY, 2, 1000)
        with pytest.raises(Unavailable):
            limiter.usage("tok", 1, DAY)
        limiter.release("tok", "0123456789abcdef")  # logs, never raises
        assert limiter.renew() == 0
        limiter.flush()  # nothing admitted, nothing to save
        assert time.monotonic() - start < 2
    finally:
        limiter.close()


@pytest.mark.serial
def test_limits_resume_when_redis_comes_back(
    ctx: Context, make_redis: MakeRedis, redis_keys: str
) -> None:
    op = create_operation(ctx, "acme", "9901", "UTC")
    token, _ = create_token(ctx, op, "a", [])
    proxy = CuttableProxy(("127.0.0.1", _redis_port()))
    limiter = RedisLimiter(f"redis://127.0.0.1:{proxy.port}/0", ctx.storage, prefix=redis_keys)
    try:
        held = limiter.admit(token.id, op.id, DAY, 2, 1000)
        assert held.outcome == "ok"
        proxy.cut()
        start = time.monotonic()
        with pytest.raises(Unavailable):
            limiter.admit(token.id, op.id, DAY, 2, 1000)
        with pytest.raises(Unavailable):
            limiter.renew()
        limiter.release(token.id, held.lease)  # the lease will expire instead
        with pytest.raises(Unavailable):
            limiter.flush()
        assert time.monotonic() - start < 2
        proxy.restore()
        back = limiter.admit(token.id, op.id, DAY, 2, 1000)  # the pool reconnects by itself
        assert (back.outcome, back.token_today, back.operation_today) == ("ok", 2, 2)
        limiter.release(token.id, back.lease)
        limiter.flush()  # the failed flush's tokens were kept for this one
        assert ctx.storage.request_counts(DAY, op.id) == {token.id: 2}
    finally:
        limiter.close()
        proxy.close()


def _redis_port() -> int:
    return urlsplit(REDIS_URL).port or 6379


def test_admission_survives_a_script_flush(make_redis: MakeRedis) -> None:
    limiter = make_redis()
    first = limiter.admit("tok", 1, DAY, 2, 1000)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.script_flush()  # as after a Redis restart: the scripts are gone (NOSCRIPT)
    finally:
        client.close()
    second = limiter.admit("tok", 1, DAY, 2, 1000)
    assert (first.outcome, second.outcome, second.operation_today) == ("ok", "ok", 2)
    assert limiter.renew() == 2


def test_two_databases_sharing_a_redis_and_a_prefix_never_share_a_counter_or_a_slot(
    redis_keys: str, catalog: Catalog, clock: FakeClock
) -> None:
    """Two fresh databases (operation ids restart at 1 in each) with a token of the same id,
    wired as `voxmeter serve` wires them to one Redis under one prefix."""
    with pg_schema() as first_url, pg_schema() as second_url:
        limiters: list[Limiter] = []
        storages = [open_storage(url) for url in (first_url, second_url)]
        try:
            for url, storage in zip((first_url, second_url), storages, strict=True):
                ctx = Context(storage=storage, catalog=catalog, clock=clock)
                op = create_operation(ctx, "acme", "9901", "UTC", licenses=1)
                assert (op.id, op.daily_quota) == (1, 1000)
                token = Token("tok_000000000001", 1, "same id", frozenset(), clock(), None, None)
                with storage.write() as tx:
                    tx.create_token(token, hash_secret(url))
                settings = Settings(database_url=url, redis_url=REDIS_URL, redis_prefix=redis_keys)
                limiters.append(wired_limiter(settings, ctx))
            first, second = limiters
            tok = "tok_000000000001"

            # In-flight slots: the first database's token holds both of its slots...
            held = [first.admit(tok, 1, DAY, 2, 1000) for _ in range(2)]
            assert [a.outcome for a in held] == ["ok", "ok"]
            assert first.admit(tok, 1, DAY, 2, 1000).outcome == "busy"
            # ...and the second database's token of the same id still has both of its own.
            other = [second.admit(tok, 1, DAY, 2, 1000) for _ in range(2)]
            assert [(a.outcome, a.token_today, a.operation_today) for a in other] == [
                ("ok", 1, 1),
                ("ok", 2, 2),
            ]
            for limiter, admissions in ((first, held), (second, other)):
                for admission in admissions:
                    limiter.release(tok, admission.lease)

            # The daily quota: operation 1 of the first database uses up its 1,000 requests...
            for _ in range(998):
                admission = first.admit(tok, 1, DAY, 2, 1000)
                assert admission.outcome == "ok"
                first.release(tok, admission.lease)
            refused = first.admit(tok, 1, DAY, 2, 1000)
            assert (refused.outcome, refused.operation_today) == ("quota", 1000)
            # ...and operation 1 of the second database is untouched.
            assert second.usage(tok, 1, DAY) == (2, 2)
            fine = second.admit(tok, 1, DAY, 2, 1000)
            assert (fine.outcome, fine.token_today, fine.operation_today) == ("ok", 3, 3)
            second.release(tok, fine.lease)

            # The counts each saves to its database are its own, and so are the ones a limiter
            # re-seeds from after Redis lost its keys.
            for limiter in limiters:
                limiter.flush()
            assert storages[0].request_counts(DAY, 1) == {tok: 1000}
            assert storages[1].request_counts(DAY, 1) == {tok: 3}
            for limiter in limiters:
                assert isinstance(limiter, RedisLimiter)
                _forget_everything(limiter)
            assert first.admit(tok, 1, DAY, 2, 1000).outcome == "quota"
            again = second.admit(tok, 1, DAY, 2, 1000)
            assert (again.outcome, again.token_today, again.operation_today) == ("ok", 4, 4)
            second.release(tok, again.lease)

            ids = [storage.deployment_id() for storage in storages]
            assert ids[0] != ids[1]
            namespaces = [
                limiter.namespace for limiter in limiters if isinstance(limiter, RedisLimiter)
            ]
            assert namespaces == [f"{redis_keys}:{ids[0]}", f"{redis_keys}:{ids[1]}"]
        finally:
            for limiter in limiters:
                limiter.close()
            for storage in storages:
                storage.close()
