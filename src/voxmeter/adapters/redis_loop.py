"""The shared limits on the event loop: `RedisLimiter`'s admission and release over redis.asyncio.

The scaled-out billing lane admits on the event loop instead of in a worker thread per request,
and every Redis command issued by the requests of one loop iteration goes out as one pipeline
(one write, one read) instead of one round trip each.

Admission also answers whether a cached reply may be used: Redis holds the deployment's data
version (`{ns}:data`), which every `voxmeter serve` process advances after each commit, before
the request that wrote is answered. A request that brings a cached reply names the version it
was made at; when that is still the version, the script charges the request (quota exact, busy
checked against the token's live leases) without taking a lease: the reply is sent at once, like
the embedded mode's cached replies, which are admitted, answered and released in one step. Any
other admission takes a lease as `RedisLimiter.admit` does and returns the version, which the
reply read afterwards is cached under.

Every wait is bounded by the limiter's timeout: a stalled or unreachable Redis answers 503
(`Unavailable`) within it and never holds up the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
from collections import deque
from collections.abc import Callable

import anyio
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError

from voxmeter.adapters.redis_limits import RedisLimiter
from voxmeter.errors import Unavailable
from voxmeter.service.ports import Admission, LoopAdmission

# KEYS: lease set, token-day counter, operation-day counter, data version.
# ARGV: max_in_flight, quota, lease id, lease ms, day ttl s, token seed, operation seed,
# expected data version ('' : none, take a lease).
# Answers {outcome, token count, operation count, data version}; outcome 'hit' is an admission
# charged without a lease because the data version is the expected one.
_ADMIT = """
local token_n = redis.call('GET', KEYS[2])
local op_n = redis.call('GET', KEYS[3])
if not token_n or not op_n then
  if ARGV[6] == '' then return {'seed', 0, 0, '0'} end
  if not token_n then
    token_n = ARGV[6]
    redis.call('SET', KEYS[2], token_n, 'EX', ARGV[5])
  end
  if not op_n then
    op_n = ARGV[7]
    redis.call('SET', KEYS[3], op_n, 'EX', ARGV[5])
  end
end
local version = redis.call('GET', KEYS[4]) or '0'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return {'busy', tonumber(token_n), tonumber(op_n), version}
end
if tonumber(op_n) >= tonumber(ARGV[2]) then
  return {'quota', tonumber(token_n), tonumber(op_n), version}
end
local outcome = 'hit'
if ARGV[8] ~= version then
  outcome = 'ok'
  local lease_ms = tonumber(ARGV[4])
  redis.call('ZADD', KEYS[1], now + lease_ms, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], lease_ms + 1000)
end
token_n = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[5])
op_n = redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], ARGV[5])
return {outcome, token_n, op_n, version}
"""


class LoopLimiter:
    """Admission and release of `RedisLimiter` for coroutines, batched per loop iteration.

    The limiter's lease bookkeeping (renewal, flushing counts) stays with `limiter`; this only
    replaces its round trips. Seeding a missing counter reads the database in a thread."""

    def __init__(self, limiter: RedisLimiter, url: str, *, timeout: float = 1.0) -> None:
        self._limiter = limiter
        self._timeout = timeout
        self._pipe = AutoPipeline(url, timeout, lambda exc: limiter.unavailable("admit", exc))

    async def admit(
        self,
        token_id: str,
        operation_id: int,
        day: str,
        max_in_flight: int,
        quota: int,
        expected: str = "",
    ) -> LoopAdmission:
        """`RedisLimiter.admit`, or with `expected` (a data version) an admission without a
        lease (`hit`) while the data version is still `expected`."""
        limiter = self._limiter
        lease = secrets.token_hex(8)
        keys = (
            limiter.lease_key(token_id),
            limiter.token_key(token_id, day),
            limiter.operation_key(operation_id, day),
            limiter.data_key,
        )
        args = (max_in_flight, quota, lease, limiter.lease_ms, limiter.day_ttl)
        seeds: tuple[str, str] = ("", "") if limiter.seeded else ("0", "0")
        answer = await self._admit(keys, (*args, *seeds, expected))
        if answer[0] == b"seed":
            seeds = await self._seeds(token_id, operation_id, day)
            answer = await self._admit(keys, (*args, *seeds, expected))
        outcome = answer[0].decode()
        version = answer[3].decode()
        if outcome == "hit":
            limiter.charged(token_id, operation_id, day, "")
            return LoopAdmission(Admission("ok", int(answer[1]), int(answer[2])), version)
        if outcome != "ok":
            return LoopAdmission(Admission(outcome, int(answer[1]), int(answer[2])), version)
        limiter.charged(token_id, operation_id, day, lease)
        return LoopAdmission(Admission("ok", int(answer[1]), int(answer[2]), lease), version)

    async def release(self, token_id: str, lease: str) -> None:
        """Free the slot before the request is answered (its client may ask again at once, in
        another process). Never raises: a lease Redis did not hear about expires by itself."""
        if not lease:
            return
        self._limiter.forget(token_id, lease)
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._pipe.send(("ZREM", self._limiter.lease_key(token_id), lease), future)
        with anyio.CancelScope(shield=True), contextlib.suppress(Unavailable):
            await future

    async def aclose(self) -> None:
        await self._pipe.aclose()

    async def _admit(self, keys: tuple[str, ...], args: tuple[str | int, ...]) -> list[bytes]:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._pipe.send(("EVALSHA", _ADMIT_SHA, len(keys), *keys, *args), future)
        found = await future
        assert isinstance(found, list)
        return found

    async def _seeds(self, token_id: str, operation_id: int, day: str) -> tuple[str, str]:
        try:
            with anyio.fail_after(self._timeout * 5):
                return await anyio.to_thread.run_sync(
                    self._limiter.seeds, token_id, operation_id, day, abandon_on_cancel=True
                )
        except TimeoutError as exc:
            raise Unavailable() from exc


_ADMIT_SHA = hashlib.sha1(_ADMIT.encode(), usedforsecurity=False).hexdigest()
Command = tuple[str | int, ...]
_LOAD: Command = ("SCRIPT", "LOAD", _ADMIT)
Waiting = tuple[Command, "asyncio.Future[object] | None"]


class AutoPipeline:
    """One connection to Redis; every command sent during one loop iteration goes out in one
    write, and the answers are read back in order by one reader.

    A command's future gets its answer, or the error of `failed(exc)` when Redis fails or does
    not answer within `timeout` (the connection is then closed, everything waiting on it fails,
    and the next command connects again). A command sent with no future is not waited for."""

    def __init__(self, url: str, timeout: float, failed: Callable[[RedisError], Exception]) -> None:
        # No automatic retry: an admission is not idempotent (see RedisLimiter).
        self._pool = aioredis.ConnectionPool.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._failed = failed
        self._queue: list[Waiting] = []
        self._pending: deque[Waiting] = deque()
        self._wake: asyncio.Event | None = None
        self._answered: asyncio.Event | None = None
        self._driver: asyncio.Task[None] | None = None
        self._closed = False

    def send(self, command: Command, future: asyncio.Future[object] | None) -> None:
        if self._closed:
            if future is not None:
                future.set_exception(self._failed(RedisError("closed")))
            return
        self._queue.append((command, future))
        if self._driver is None:
            self._wake = asyncio.Event()
            self._answered = asyncio.Event()
            self._driver = asyncio.get_running_loop().create_task(self._drive())
        assert self._wake is not None
        self._wake.set()

    async def aclose(self) -> None:
        self._closed = True
        if self._driver is not None:
            self._driver.cancel()
            with contextlib.suppress(BaseException):
                await self._driver
        await self._pool.disconnect()

    async def _drive(self) -> None:
        """Connect, then write what is queued each time something is, until a failure."""
        wake, answered = self._wake, self._answered
        assert wake is not None
        assert answered is not None
        conn: aioredis.connection.AbstractConnection = self._pool.make_connection()  # type: ignore[no-untyped-call]
        reader: asyncio.Task[None] | None = None
        try:
            await conn.connect()  # type: ignore[no-untyped-call]
            self._queue.insert(0, (_LOAD, None))
            reader = asyncio.get_running_loop().create_task(self._read(conn, answered))
            while True:
                await wake.wait()
                wake.clear()
                if reader.done():
                    reader.result()  # the reader's failure
                    raise RedisError("the reply reader stopped")
                if not conn.is_connected:
                    raise RedisConnectionError("the connection was closed")
                batch, self._queue = self._queue, []
                if batch:
                    self._pending.extend(batch)
                    answered.set()
                    packed = b"".join([_packed(command) for command, _ in batch])
                    await conn.send_packed_command(packed, check_health=False)
        except Exception as exc:  # any failure of the connection ends it: all waiting fail
            self._fail_all(_as_redis_error(exc))
        finally:
            self._driver = None
            if reader is not None:
                reader.cancel()
            with contextlib.suppress(BaseException):
                await conn.disconnect(nowait=True)
            if self._closed:
                self._fail_all(RedisError("closed"))

    async def _read(
        self, conn: aioredis.connection.AbstractConnection, more: asyncio.Event
    ) -> None:
        """Hand each answer to the oldest command waiting for one."""
        pending = self._pending
        try:
            while True:
                if not pending:
                    more.clear()
                    await more.wait()
                    continue
                try:
                    answer: object = await conn.read_response()
                except ResponseError as exc:
                    answer = exc
                command, future = pending.popleft()
                if isinstance(answer, NoScriptError):
                    # Redis lost its scripts (a restart): load it again; nothing ran.
                    self._queue[:0] = [(_LOAD, None), (command, future)]
                    assert self._wake is not None
                    self._wake.set()
                elif future is None or future.done():
                    continue
                elif isinstance(answer, ResponseError):
                    future.set_exception(self._failed(answer))
                else:
                    future.set_result(answer)
        finally:
            if self._wake is not None:
                self._wake.set()  # the driver notices a failed reader

    def _fail_all(self, exc: RedisError) -> None:
        waiting = [*self._pending, *self._queue]
        self._pending.clear()
        self._queue = []
        for _, future in waiting:
            if future is not None and not future.done():
                future.set_exception(self._failed(exc))


def _as_redis_error(exc: BaseException) -> RedisError:
    return exc if isinstance(exc, RedisError) else RedisError(f"{type(exc).__name__}: {exc}")


def _packed(command: Command) -> bytes:
    """A command in Redis's wire format (an array of bulk strings): the few argument types
    sent here, without the general encoder's per-argument dispatch, which was the largest cost
    of an admission on the loop."""
    parts = [b"*%d\r\n" % len(command)]
    for arg in command:
        data = arg.encode() if isinstance(arg, str) else b"%d" % arg
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)
