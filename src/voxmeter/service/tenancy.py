"""Operations and tokens: creating, listing, revoking, and resolving a presented secret."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from voxmeter.domain import audit
from voxmeter.domain.money import DEFAULT_CURRENCY, CurrencyError, check_currency
from voxmeter.domain.months import MonthError, calendar
from voxmeter.domain.tenancy import (
    Operation,
    Token,
    check_name,
    check_scopes,
    check_server,
)
from voxmeter.errors import ConfigError
from voxmeter.service.audit import record, record_operation_update
from voxmeter.service.context import Context
from voxmeter.service.lru import LruCache
from voxmeter.service.ports import Tenancy, Writer

TOKEN_PREFIX = "vxm_"  # noqa: S105 - a prefix, not a secret


def hash_secret(secret: str) -> str:
    """Tokens are 256-bit random secrets, so one SHA-256 is enough to store them safely."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_operation(
    ctx: Context[Writer],
    name: str,
    server: str,
    timezone: str = "UTC",
    licenses: int = 1,
    currency: str = DEFAULT_CURRENCY,
) -> Operation:
    try:
        check_name(name)
        check_server(server)
        calendar(timezone)
        check_currency(currency)
    except (ValueError, MonthError) as exc:
        raise ConfigError(str(exc)) from exc
    _check_licenses(licenses)
    try:
        with ctx.storage.write() as tx:
            op = tx.create_operation(name, server, timezone, licenses, ctx.clock(), currency)
            details = {
                "name": name,
                "server": server,
                "timezone": timezone,
                "licenses": licenses,
                "currency": currency,
            }
            record(tx, ctx, audit.OPERATION_CREATE, op.id, details)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    return op


def _check_licenses(licenses: int) -> None:
    if licenses < 1:
        raise ConfigError("licenses must be at least 1")


def update_operation(
    ctx: Context[Writer], op: Operation, licenses: int | None, currency: str | None
) -> Operation:
    """Change an operation's licences (its daily quota, at once) and billing currency, in one
    write; nothing changes when any value is refused. Open months' statements are priced in
    the new currency; closed months keep the statement stored when they closed."""
    if licenses is None and currency is None:
        raise ConfigError("nothing to change: pass --licenses and/or --currency")
    if licenses is not None:
        _check_licenses(licenses)
    if currency is not None:
        try:
            check_currency(currency)
        except CurrencyError as exc:
            raise ConfigError(str(exc)) from exc
    with ctx.storage.write() as tx:
        updated = tx.update_operation(op.id, licenses, currency)
        if updated is None:
            raise ConfigError(f"no operation named {op.name!r} on server {op.server}")
        record_operation_update(tx, ctx, op, updated)
    return updated


def find_operation(ctx: Context[Tenancy], name: str, server: str | None = None) -> Operation:
    """An operation by name; `server` disambiguates names used on several servers."""
    found = [
        op
        for op in ctx.storage.operations()
        if op.name == name and (server is None or op.server == server)
    ]
    if not found:
        where = f" on server {server}" if server else ""
        raise ConfigError(f"no operation named {name!r}{where}")
    if len(found) > 1:
        servers = ", ".join(op.server for op in found)
        raise ConfigError(f"operation {name!r} exists on servers {servers}: pass --server")
    return found[0]


def create_token(
    ctx: Context[Writer], op: Operation, description: str, scopes: list[str]
) -> tuple[Token, str]:
    """Create a token; the secret is returned once and only its hash is stored (the audit
    entry names the token by its id, never by its secret or hash)."""
    if not description.strip():
        raise ConfigError("a token needs a description")
    try:
        granted = check_scopes(scopes)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = Token(
        id="tok_" + secrets.token_hex(6),
        operation_id=op.id,
        description=description,
        scopes=granted,
        created=ctx.clock(),
        revoked=None,
        last_used=None,
    )
    with ctx.storage.write() as tx:
        tx.create_token(token, hash_secret(secret))
        details = {
            "token": token.id,
            "description": description,
            "scopes": sorted(granted),
        }
        record(tx, ctx, audit.TOKEN_CREATE, op.id, details)
    return token, secret


def revoke_token(ctx: Context[Writer], token_id: str) -> None:
    """Revoke an operation's token or an admin token; its dashboard sessions end with it."""
    with ctx.storage.write() as tx:
        operation_id = tx.revoke_token(token_id, ctx.clock())
        if operation_id is None and not tx.revoke_admin_token(token_id, ctx.clock()):
            raise ConfigError(f"no active token {token_id!r}")
        record(tx, ctx, audit.TOKEN_REVOKE, operation_id, {"token": token_id})


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: the token and its operation."""

    token: Token
    operation: Operation


TOKEN_CACHE_ENTRIES = 10_000
"""Valid tokens remembered at once (misses are never cached, so only real tokens take room)."""


class Authenticator:
    """Resolves secrets to callers, caching hits for `ttl` seconds.

    A revoked token stops working within `ttl`; a new token works at once (misses are not
    cached). Lookups are by hash, and the stored hash is compared in constant time.

    A caller resolved more than half its `ttl` ago is still answered from memory, and handed to
    `renew` (when given) so that it is read again in the background before it runs out: a
    token in steady use is never looked up on a request's own path.
    """

    def __init__(
        self,
        ctx: Context[Tenancy],
        ttl: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ctx = ctx
        self._ttl = ttl
        self._clock = clock
        self._cache: LruCache[str, tuple[float, Caller]] = LruCache(TOKEN_CACHE_ENTRIES)

    def cached(self, secret: str, renew: Callable[[str], None] | None = None) -> Caller | None:
        """The caller of a secret resolved less than `ttl` ago, without touching storage;
        None means `resolve` must look it up."""
        hit = self._cache.get(hash_secret(secret))
        if hit is None:
            return None
        now = self._clock()
        if hit[0] <= now:
            return None
        if renew is not None and hit[0] - now < self._ttl / 2:
            renew(secret)
        return hit[1]

    def resolve(self, secret: str) -> Caller | None:
        digest = hash_secret(secret)
        now = self._clock()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        return self._look_up(digest, now)

    def refresh(self, secret: str) -> None:
        """Read the secret's token and operation again (a revoked token leaves the cache)."""
        self._look_up(hash_secret(secret), self._clock())

    def _look_up(self, digest: str, now: float) -> Caller | None:
        found = self._ctx.storage.token_by_hash(digest)
        if found is None:
            self._cache.pop(digest)
            return None
        token, stored = found
        if not hmac.compare_digest(stored, digest) or token.revoked is not None:
            self._cache.pop(digest)
            return None
        op = self._ctx.storage.operation(token.operation_id)
        if op is None:
            self._cache.pop(digest)
            return None
        caller = Caller(token, op)
        self._cache.put(digest, (now + self._ttl, caller))
        return caller
