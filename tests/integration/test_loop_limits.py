"""The shared limits on the event loop (adapters/redis_loop.py) against a real Redis: the same
admissions as `RedisLimiter`, plus the cached-reply admission that charges without a slot while
the shared data version is the expected one; outages answer `Unavailable` and never hang."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis

from tests.backends import REDIS_URL, redis_prefix
from tests.proxy import CuttableProxy
from voxmeter.adapters.redis_limits import RedisLimiter
from voxmeter.adapters.redis_loop import LoopLimiter
from voxmeter.errors import Unavailable

DAY = "2026-05-15"
DEPLOYMENT = "fedcba9876543210fedcba9876543210"


@pytest.fixture
def limiter() -> Iterator[RedisLimiter]:
    with redis_prefix() as prefix:
        made = RedisLimiter(REDIS_URL, prefix=prefix, deployment=DEPLOYMENT, auto_renew=False)
        yield made
        made.close()


def _run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_an_expected_version_is_charged_without_a_slot_and_any_other_takes_one(
    limiter: RedisLimiter,
) -> None:
    async def scenario() -> None:
        loop = LoopLimiter(limiter, REDIS_URL)
        try:
            first = await loop.admit("tok", 1, DAY, 2, 1000)
            assert first.admission.outcome == "ok"
            assert first.admission.lease  # nothing expected: a slot, as RedisLimiter.admit
            await loop.release("tok", first.admission.lease)
            # The version is still the one the reply was read at: charged, no slot taken.
            hits = [await loop.admit("tok", 1, DAY, 2, 1000, first.version) for _ in range(5)]
            assert [h.admission.outcome for h in hits] == ["ok"] * 5
            assert [h.admission.lease for h in hits] == [""] * 5
            assert [h.admission.operation_today for h in hits] == [2, 3, 4, 5, 6]
            assert limiter.usage("tok", 1, DAY) == (6, 6)
            # A commit somewhere advances the version: the next admission takes a slot again.
            limiter.data_changed()
            after = await loop.admit("tok", 1, DAY, 2, 1000, first.version)
            assert after.admission.lease
            assert after.version != first.version
            await loop.release("tok", after.admission.lease)
        finally:
            await loop.aclose()

    _run(scenario())


def test_busy_and_quota_refuse_cached_replies_as_any_other(limiter: RedisLimiter) -> None:
    async def scenario() -> None:
        loop = LoopLimiter(limiter, REDIS_URL)
        try:
            first = await loop.admit("tok", 1, DAY, 2, 5, "")
            await loop.release("tok", first.admission.lease)
            version = first.version
            # Two slow requests (any process) hold the token's two slots.
            held = [limiter.admit("tok", 1, DAY, 2, 5) for _ in range(2)]
            assert [h.outcome for h in held] == ["ok", "ok"]
            busy = await loop.admit("tok", 1, DAY, 2, 5, version)
            assert (busy.admission.outcome, busy.admission.operation_today) == ("busy", 3)
            for h in held:
                limiter.release("tok", h.lease)
            hits = [await loop.admit("tok", 1, DAY, 2, 5, version) for _ in range(3)]
            outcomes = [h.admission.outcome for h in hits]
            assert outcomes == ["ok", "ok", "quota"]
            assert hits[-1].admission.operation_today == 5
            assert limiter.usage("tok", 1, DAY) == (5, 5)  # refusals are not counted
        finally:
            await loop.aclose()

    _run(scenario())


def test_cached_admissions_in_one_loop_iteration_are_exact(limiter: RedisLimiter) -> None:
    """Many admissions sent together (one pipeline): the quota is exact and every one answered."""

    async def scenario() -> None:
        loop = LoopLimiter(limiter, REDIS_URL)
        try:
            version = (await loop.admit("tok", 1, DAY, 2, 100, "")).version
            found = await asyncio.gather(
                *(loop.admit(f"tok{i % 7}", 1, DAY, 2, 100, version) for i in range(150))
            )
            outcomes = [f.admission.outcome for f in found]
            assert outcomes.count("ok") == 99
            assert outcomes.count("quota") == 51
            assert limiter.usage("tok", 1, DAY)[1] == 100
        finally:
            await loop.aclose()

    _run(scenario())


def test_admission_survives_a_script_flush(limiter: RedisLimiter) -> None:
    async def scenario() -> None:
        loop = LoopLimiter(limiter, REDIS_URL)
        try:
            first = await loop.admit("tok", 1, DAY, 2, 1000, "")
            await loop.release("tok", first.admission.lease)
            client = redis.Redis.from_url(REDIS_URL)
            try:
                client.script_flush()  # as after a Redis restart: NOSCRIPT
            finally:
                client.close()
            second = await loop.admit("tok", 1, DAY, 2, 1000, first.version)
            assert (second.admission.outcome, second.admission.operation_today) == ("ok", 2)
        finally:
            await loop.aclose()

    _run(scenario())


def _proxied(limiter: RedisLimiter, proxy: CuttableProxy) -> LoopLimiter:
    return LoopLimiter(limiter, f"redis://127.0.0.1:{proxy.port}/0", timeout=0.5)


@pytest.mark.serial
@pytest.mark.parametrize("outage", ["cut", "stall"])
def test_an_outage_is_unavailable_within_the_timeout_and_admissions_resume(
    limiter: RedisLimiter, outage: str
) -> None:
    proxy = CuttableProxy(("127.0.0.1", urlsplit(REDIS_URL).port or 6379))

    async def scenario() -> None:
        loop = _proxied(limiter, proxy)
        try:
            first = await loop.admit("tok", 1, DAY, 2, 1000, "")
            await loop.release("tok", first.admission.lease)
            getattr(proxy, outage)()
            started = time.monotonic()
            failed = await asyncio.gather(
                *(loop.admit("tok", 1, DAY, 2, 1000, first.version) for _ in range(3)),
                return_exceptions=True,
            )
            assert all(isinstance(f, Unavailable) for f in failed), failed
            assert time.monotonic() - started < 0.5 + 1.0  # the timeout, and slack
            proxy.restore()
            deadline = time.monotonic() + 10
            while True:
                try:
                    back = await loop.admit("tok", 1, DAY, 2, 1000, first.version)
                    break
                except Unavailable:
                    assert time.monotonic() < deadline, "admissions did not resume"
                    await asyncio.sleep(0.1)
            assert back.admission.outcome == "ok"
        finally:
            await loop.aclose()

    try:
        _run(scenario())
    finally:
        proxy.close()
