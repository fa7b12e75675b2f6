"""Limits shared through Redis for the scaled-out mode: exact across every process and machine.

Behaves like `InProcessLimiter` (busy is checked before quota; refusals take no slot and do not
count), but the state lives in Redis so any number of `voxmeter serve` processes agree:

- `{ns}:lease:{token}` - sorted set of the token's in-flight slots, scored by expiry (ms of
  the Redis server clock, so machines with skewed clocks agree). A slot is a *lease*: a process
  that dies without releasing frees it within `lease_seconds`; a live process keeps its slots by
  renewing them from a daemon thread (`renew`, every `renew_every` seconds).
- `{ns}:tday:{token}:{day}` and `{ns}:oday:{operation}:{day}` - request counters of the
  operation's local day, expiring 3 days after their last use.
- `{ns}:data` - the data version: advanced by every process after each commit to the database
  (`data_changed`), before the request that wrote is answered; cached billing replies are valid
  while it stays (adapters/redis_loop.py).

`{ns}` is `{prefix}:{deployment id}`: the deployment id is the random id the database got with
its schema (`Storage.deployment_id`), so two databases never share a key even with the same
prefix and the same operation ids (which restart at 1 in every database). The counters seeded
from and flushed to the database therefore always belong to that database.

Admission is one round trip: a Lua script checks and charges atomically, so the quota is exact
under any concurrency. Redis is the source of truth for the quota; `flush` copies this process's
tokens' counts to the database so the CLI can show per-token usage.

Redis restarts: leases are lost (requests in flight at that moment stop counting toward
concurrency) and, unless Redis persists, so are the counters. A counter found missing is seeded
from the database's last flushed counts (`Storage.request_counts`) before it is charged, so at
most the requests of the last flush interval (about a second) are forgotten. Without storage the
counters restart from zero.

Redis unreachable or failing: `admit`, `usage`, `renew` and `flush` raise `Unavailable` (503)
within the socket timeouts; the connection pool reconnects on the next call once Redis is back.
A failing `release` only logs: the lease expires by itself.

Every key of one admission is touched by one script, so this needs a single Redis (optionally
with replicas/Sentinel), not Redis Cluster. Run it with `maxmemory-policy noeviction`: every key
here has a TTL, so a `volatile-*` policy could evict a counter mid-day.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from voxmeter.errors import Unavailable
from voxmeter.service.ports import Admission, Storage

log = logging.getLogger("voxmeter.limits")

DAY_TTL_SECONDS = 3 * 86_400
_WARN_EVERY = 10.0  # seconds between repeated warnings about an unreachable Redis

# A lease set expires 1 s after its newest lease, so an idle token leaves nothing behind.
# KEYS: lease set, token-day counter, operation-day counter.
# ARGV: max_in_flight, quota, lease id, lease ms, day ttl s, token seed, operation seed.
# A seed of '' means "unknown": a missing counter is then reported ('seed') instead of charged,
# and the caller asks again with the seeds read from the database.
_ADMIT = """
local token_n = redis.call('GET', KEYS[2])
local op_n = redis.call('GET', KEYS[3])
if not token_n or not op_n then
  if ARGV[6] == '' then return {'seed', 0, 0} end
  if not token_n then
    token_n = ARGV[6]
    redis.call('SET', KEYS[2], token_n, 'EX', ARGV[5])
  end
  if not op_n then
    op_n = ARGV[7]
    redis.call('SET', KEYS[3], op_n, 'EX', ARGV[5])
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return {'busy', tonumber(token_n), tonumber(op_n)}
end
if tonumber(op_n) >= tonumber(ARGV[2]) then
  return {'quota', tonumber(token_n), tonumber(op_n)}
end
local lease_ms = tonumber(ARGV[4])
redis.call('ZADD', KEYS[1], now + lease_ms, ARGV[3])
redis.call('PEXPIRE', KEYS[1], lease_ms + 1000)
token_n = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[5])
op_n = redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], ARGV[5])
return {'ok', token_n, op_n}
"""

# KEYS: lease sets. ARGV: lease ms, then for each key: how many leases, then their ids.
# A lease still in its set is extended (even if just past its expiry: no admission pruned it,
# so nobody has been given its slot); one no longer there is returned as lost.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease_ms = tonumber(ARGV[1])
local lost = {}
local i = 2
for k = 1, #KEYS do
  local n = tonumber(ARGV[i])
  i = i + 1
  local kept = 0
  for _ = 1, n do
    if redis.call('ZSCORE', KEYS[k], ARGV[i]) then
      redis.call('ZADD', KEYS[k], now + lease_ms, ARGV[i])
      kept = kept + 1
    else
      table.insert(lost, ARGV[i])
    end
    i = i + 1
  end
  if kept > 0 then redis.call('PEXPIRE', KEYS[k], lease_ms + 1000) end
end
return lost
"""


class RedisLimiter:
    """Per-token concurrency and per-operation daily quota shared by every process via Redis."""

    in_process = False
    """Every call is a network round trip that may wait up to `timeout`: never on the loop."""

    def __init__(
        self,
        url: str,
        storage: Storage | None = None,
        *,
        prefix: str = "voxmeter",
        deployment: str | None = None,
        lease_seconds: float = 5.0,
        renew_every: float | None = None,
        auto_renew: bool = True,
        timeout: float = 1.0,
        day_ttl_seconds: int = DAY_TTL_SECONDS,
    ) -> None:
        """`deployment` defaults to the storage's deployment id (one of them is needed: keys
        without it would be shared by every database using the prefix). `renew_every` defaults
        to min(2 s, lease_seconds / 3); with `auto_renew` off nothing renews leases unless the
        owner calls `renew()` (tests use that to play a dead process). `timeout` bounds
        connecting and each reply, so an unreachable Redis is a prompt 503."""
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        if deployment is None:
            if storage is None:
                raise ValueError("a deployment id (or the storage holding it) is needed")
            deployment = storage.deployment_id()
        if not deployment:
            raise ValueError("the deployment id must not be empty")
        self._storage = storage
        self._namespace = f"{prefix}:{deployment}"
        self._lease_ms = max(1, round(lease_seconds * 1000))
        self._renew_every = renew_every if renew_every is not None else min(2.0, lease_seconds / 3)
        self._auto_renew = auto_renew
        self._day_ttl = day_ttl_seconds
        # No automatic retry: an admission is not idempotent (a reply lost after the script ran
        # would charge twice). The pool drops broken connections and reconnects on the next call.
        self._redis: redis.Redis = redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._admit_script = self._redis.register_script(_ADMIT)
        self._renew_script = self._redis.register_script(_RENEW)
        self._lock = threading.Lock()
        self._leases: dict[str, set[str]] = {}  # this process's live leases per token
        self._dirty: dict[tuple[str, str], int] = {}  # (token, day) -> operation, to flush
        self._last_used: dict[str, int] = {}
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._closed = False
        self._warned = 0.0

    # keys

    @property
    def namespace(self) -> str:
        """What every key of this limiter starts with: `{prefix}:{deployment id}`."""
        return self._namespace

    def _lease_key(self, token_id: str) -> str:
        return f"{self._namespace}:lease:{token_id}"

    def _token_key(self, token_id: str, day: str) -> str:
        return f"{self._namespace}:tday:{token_id}:{day}"

    def _operation_key(self, operation_id: int, day: str) -> str:
        return f"{self._namespace}:oday:{operation_id}:{day}"

    # what the event loop's admission (adapters/redis_loop.py) shares with this one

    lease_key = _lease_key
    token_key = _token_key
    operation_key = _operation_key

    @property
    def data_key(self) -> str:
        return f"{self._namespace}:data"

    @property
    def lease_ms(self) -> int:
        return self._lease_ms

    @property
    def day_ttl(self) -> int:
        return self._day_ttl

    @property
    def seeded(self) -> bool:
        """Whether missing counters restart from the database's flushed counts."""
        return self._storage is not None

    def charged(self, token_id: str, operation_id: int, day: str, lease: str) -> None:
        """Note an admission made elsewhere: its lease is renewed, its counts flushed."""
        with self._lock:
            if lease:
                self._leases.setdefault(token_id, set()).add(lease)
                self._start_renewer()
            self._dirty[(token_id, day)] = operation_id
            self._last_used[token_id] = time.time_ns() // 1000

    def forget(self, token_id: str, lease: str) -> None:
        """Stop renewing a lease that is being released."""
        with self._lock:
            held = self._leases.get(token_id)
            if held is not None:
                held.discard(lease)
                if not held:
                    del self._leases[token_id]

    def seeds(self, token_id: str, operation_id: int, day: str) -> tuple[str, str]:
        return self._seeds(token_id, operation_id, day)

    def unavailable(self, what: str, exc: RedisError) -> Unavailable:
        return self._unavailable(what, exc)

    def data_changed(self) -> None:
        """Advance the data version: call after each commit, before answering the request that
        wrote. Never raises: if Redis is unreachable, cached replies are still dropped by the
        database's change notifications (adapters/postgres/changes.py)."""
        try:
            self._redis.incr(self.data_key)
        except RedisError as exc:
            self._warn("data version", exc, "cached replies wait for the database's notice")

    # the Limiter port

    def admit(
        self, token_id: str, operation_id: int, day: str, max_in_flight: int, quota: int
    ) -> Admission:
        lease = secrets.token_hex(8)
        keys = (
            self._lease_key(token_id),
            self._token_key(token_id, day),
            self._operation_key(operation_id, day),
        )
        args: list[str | int] = [max_in_flight, quota, lease, self._lease_ms, self._day_ttl]
        seeds = ("", "") if self._storage is not None else ("0", "0")
        try:
            answer = self._admit_script(keys, [*args, *seeds])
            if answer[0] == b"seed":
                answer = self._admit_script(
                    keys, [*args, *self._seeds(token_id, operation_id, day)]
                )
        except RedisError as exc:
            raise self._unavailable("admit", exc) from exc
        outcome = answer[0].decode()
        if outcome != "ok":
            return Admission(outcome, int(answer[1]), int(answer[2]))
        self.charged(token_id, operation_id, day, lease)
        return Admission("ok", int(answer[1]), int(answer[2]), lease)

    def release(self, token_id: str, lease: str) -> None:
        """Free the slot. Never raises: if Redis is unreachable the lease simply expires."""
        if not lease:
            return
        self.forget(token_id, lease)
        try:
            self._redis.zrem(self._lease_key(token_id), lease)
        except RedisError as exc:
            self._warn("release", exc, "the slot frees itself when its lease expires")

    def usage(self, token_id: str, operation_id: int, day: str) -> tuple[int, int]:
        try:
            mine, everyone = self._redis.mget(
                self._token_key(token_id, day), self._operation_key(operation_id, day)
            )
        except RedisError as exc:
            raise self._unavailable("usage", exc) from exc
        if (mine is None or everyone is None) and self._storage is not None:
            # Not charged since Redis lost it (or never this day): the last flushed figures.
            token_seed, op_seed = self._seeds(token_id, operation_id, day)
            mine = token_seed if mine is None else mine
            everyone = op_seed if everyone is None else everyone
        return int(mine or 0), int(everyone or 0)

    def flush(self) -> None:
        """Copy the shared counts of the tokens this process admitted to the database.

        Stores values, not increments, so every process flushing the same token is harmless."""
        if self._storage is None:
            with self._lock:
                self._dirty.clear()
                self._last_used.clear()
            return
        with self._lock:
            dirty = self._dirty
            last_used = self._last_used
            self._dirty = {}
            self._last_used = {}
        if not dirty and not last_used:
            return
        try:
            pairs = list(dirty.items())
            values = (
                self._redis.mget([self._token_key(t, d) for (t, d), _ in pairs]) if pairs else []
            )
            counts = {
                key: (op, int(value))
                for (key, op), value in zip(pairs, values, strict=True)
                if value is not None  # lost with a Redis restart: keep the stored figure
            }
            self._storage.save_request_counts(counts, last_used)
        except Exception as exc:
            with self._lock:
                for key, op in dirty.items():
                    self._dirty.setdefault(key, op)
                for token_id, when in last_used.items():
                    self._last_used[token_id] = max(when, self._last_used.get(token_id, 0))
            if isinstance(exc, RedisError):
                raise self._unavailable("flush", exc) from exc
            raise

    # leases

    def renew(self) -> int:
        """Extend every live lease of this process in one round trip; return how many.

        Leases no longer in Redis (expired and pruned, or lost with a restart) are forgotten."""
        with self._lock:
            held = {token: sorted(leases) for token, leases in self._leases.items() if leases}
        if not held:
            return 0
        keys = [self._lease_key(token) for token in held]
        args: list[str | int] = [self._lease_ms]
        for leases in held.values():
            args.append(len(leases))
            args.extend(leases)
        try:
            lost = {bytes(x).decode() for x in self._renew_script(keys, args)}
        except RedisError as exc:
            raise self._unavailable("renew", exc) from exc
        if lost:
            log.warning("%d in-flight slot(s) expired before renewal or lost with Redis", len(lost))
            with self._lock:
                for token in held:
                    mine = self._leases.get(token)
                    if mine is not None:
                        mine -= lost
                        if not mine:
                            del self._leases[token]
        return sum(len(leases) for leases in held.values()) - len(lost)

    def close(self) -> None:
        """Stop renewing and close the connections. Slots still held expire by themselves."""
        with self._lock:
            self._closed = True
            renewer = self._renewer
        self._stop.set()
        if renewer is not None and renewer is not threading.current_thread():
            renewer.join(timeout=5)
        self._redis.close()

    def _start_renewer(self) -> None:
        """Start the renewing thread on first use (and again in a forked child); lock held."""
        if not self._auto_renew or self._closed:
            return
        if self._renewer is not None and self._renewer.is_alive():
            return
        self._renewer = threading.Thread(
            target=self._renew_loop, name="voxmeter-lease-renewer", daemon=True
        )
        self._renewer.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self._renew_every):
            try:
                self.renew()
            except Unavailable:
                pass  # already logged; the next round retries
            except Exception:
                log.exception("renewing in-flight slots failed; will retry")

    # helpers

    def _seeds(self, token_id: str, operation_id: int, day: str) -> tuple[str, str]:
        """The day's counts last flushed to the database, to restart missing counters from."""
        assert self._storage is not None
        stored = self._storage.request_counts(day, operation_id)
        return str(stored.get(token_id, 0)), str(sum(stored.values()))

    def _unavailable(self, what: str, exc: RedisError) -> Unavailable:
        self._warn(what, exc, "answering 503")
        return Unavailable()

    def _warn(self, what: str, exc: RedisError, consequence: str) -> None:
        """Log a Redis failure at most every few seconds (never the URL: it may hold a password)."""
        now = time.monotonic()
        if now - self._warned < _WARN_EVERY:
            return
        self._warned = now
        log.warning(
            "limits: Redis %s failed (%s: %s); %s", what, type(exc).__name__, exc, consequence
        )
