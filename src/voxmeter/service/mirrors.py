"""Making and changing mirrors, and their status (docs/mirrors.md).

A mirror is an operation and its upstream settings, made in one write with its audit entry.
The upstream token is sealed before it is stored and never appears in an audit entry, a
status or a message.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol
from urllib.parse import urlsplit

from voxmeter.domain import audit
from voxmeter.domain.mirrors import (
    HOSTED_MIN_INTERVAL_MINUTES,
    MirrorOptions,
    SyncState,
    budget,
    is_stale,
    stale_limit,
)
from voxmeter.domain.money import check_currency
from voxmeter.domain.months import MonthError, calendar
from voxmeter.domain.tenancy import Operation, check_name, check_server
from voxmeter.errors import ConfigError
from voxmeter.service.audit import record
from voxmeter.service.context import Context
from voxmeter.service.ports import MirrorReads, MirrorRecord, SecretSealing, Tenancy, Writer

HOSTED_DOMAIN = "wolkvox.com"


def is_hosted(upstream_url: str | None) -> bool:
    """Whether an upstream is the hosted service (the default when no URL is given)."""
    if upstream_url is None:
        return True
    host = (urlsplit(upstream_url).hostname or "").lower()
    return host == HOSTED_DOMAIN or host.endswith("." + HOSTED_DOMAIN)


def check_options(options: MirrorOptions) -> MirrorOptions:
    """Refuse options a mirror cannot run with, with a message saying which and why."""
    url = options.upstream_url
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("--upstream-url must be an http:// or https:// URL")
        if parts.username or parts.password:
            raise ConfigError("--upstream-url must not hold credentials; give the token apart")
    least = HOSTED_MIN_INTERVAL_MINUTES if is_hosted(url) else 1
    if options.interval_minutes < least:
        where = " against the hosted service" if least > 1 else ""
        raise ConfigError(f"--interval must be at least {least} minute(s){where}")
    if not 1 <= options.budget_percent <= 100:
        raise ConfigError("--budget must be a percentage from 1 to 100")
    if options.stale_minutes < 1:
        raise ConfigError("--stale-after must be at least 1 minute")
    return options


def check_token(token: str) -> str:
    token = token.strip()
    if not token or not token.isprintable() or len(token) > 512:
        raise ConfigError("the upstream token is empty or not a printable line of text")
    return token


def first_state(options: MirrorOptions) -> SyncState:
    """The hosted service answers neither `api=all` nor `month=`: known from the start, so
    no request is spent finding it out. Any other upstream is asked once."""
    if is_hosted(options.upstream_url):
        return SyncState(supports_all=False, supports_month=False)
    return SyncState()


def _details(options: MirrorOptions) -> dict[str, object]:
    return {
        "upstream_url": options.upstream_url or "hosted",
        "interval_minutes": options.interval_minutes,
        "budget_percent": options.budget_percent,
        "stale_minutes": options.stale_minutes,
    }


def create_mirror(
    ctx: Context[Writer],
    sealing: SecretSealing,
    name: str,
    server: str,
    options: MirrorOptions,
    token: str,
    timezone: str = "UTC",
    currency: str = "USD",
    licenses: int = 1,
) -> Operation:
    """Create an operation that mirrors an upstream one; its first sweep is due at once.
    `licenses` sets the quota of the operation's own tools reading it here, not upstream's."""
    try:
        check_name(name)
        check_server(server)
        calendar(timezone)
        check_currency(currency)
    except (ValueError, MonthError) as exc:
        raise ConfigError(str(exc)) from exc
    check_options(options)
    if licenses < 1:
        raise ConfigError("licenses must be at least 1")
    sealed = sealing.seal(check_token(token))
    try:
        with ctx.storage.write() as tx:
            op = tx.create_operation(name, server, timezone, licenses, ctx.clock(), currency)
            tx.create_mirror(MirrorRecord(op.id, options, sealed, first_state(options)))
            details = {"name": name, "server": server, "timezone": timezone}
            record(tx, ctx, audit.OPERATION_CREATE, op.id, details | {"currency": currency})
            record(tx, ctx, audit.MIRROR_CREATE, op.id, _details(options))
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    return replace(op, mirror=True)


def update_mirror(
    ctx: Context[Writer],
    sealing: SecretSealing,
    op: Operation,
    current: MirrorRecord,
    options: MirrorOptions,
    token: str | None,
) -> MirrorRecord:
    """Change a mirror's options and, when given, its token; its next sweep is due at once
    (so a corrected token is tried now, not tomorrow)."""
    check_options(options)
    sealed = None if token is None else sealing.seal(check_token(token))
    changes: dict[str, object] = {
        key: {"from": before, "to": after}
        for (key, before), after in zip(
            _details(current.options).items(), _details(options).values(), strict=True
        )
        if before != after
    }
    if sealed is not None:
        changes["token"] = "replaced"  # noqa: S105 - what changed, never the token
    if not changes:
        raise ConfigError("nothing to change")
    with ctx.storage.write() as tx:
        if not tx.update_mirror(op.id, options, sealed):
            raise ConfigError(f"operation {op.name!r} is not a mirror")
        record(tx, ctx, audit.MIRROR_UPDATE, op.id, changes)
    return replace(current, options=options, sealed_token=sealed or current.sealed_token)


def find_mirror(ctx: Context[MirrorReads], op: Operation) -> MirrorRecord:
    found = ctx.storage.mirror(op.id)
    if found is None:
        raise ConfigError(f"operation {op.name!r} is not a mirror")
    return found


@dataclass(frozen=True, slots=True)
class MirrorStatus:
    """What `voxmeter mirror status` and /metrics show of one mirror."""

    operation: Operation
    record: MirrorRecord
    stale: bool
    stale_after: int
    """Micros without a successful sweep before it is stale."""
    requests_today: int
    budget: int


class MirrorDirectory(MirrorReads, Tenancy, Protocol):
    """Mirrors beside the operations they belong to."""


def statuses(ctx: Context[MirrorDirectory], now: int) -> list[MirrorStatus]:
    """Every mirror's status, by server and name."""
    storage = ctx.storage
    by_id = {op.id: op for op in storage.operations()}
    found = []
    for rec in storage.mirrors():
        op = by_id.get(rec.operation_id)
        if op is None:
            continue
        day = calendar(op.timezone).today(now).toordinal()
        state = rec.state.today(day)
        found.append(
            MirrorStatus(
                operation=op,
                record=rec,
                stale=is_stale(state, rec.options, now, op.created),
                stale_after=stale_limit(state, rec.options),
                requests_today=state.spent,
                budget=budget(rec.options, state.quota),
            )
        )
    return sorted(found, key=lambda s: (s.operation.server, s.operation.name))
