"""The audit log: recording a change inside its own transaction, and reading entries back.

Every change to money or access calls `record` with the transaction that makes the change, so
the entry and the change commit together or not at all (docs/behaviour.md, Audit log)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime

from voxmeter.domain.audit import OPERATION_UPDATE, AuditEntry, new_entry
from voxmeter.domain.months import calendar
from voxmeter.domain.tenancy import Operation
from voxmeter.errors import BadParameters
from voxmeter.service.context import Context
from voxmeter.service.ports import AuditLog, AuditWrites
from voxmeter.service.windows import window_micros

MAX_PAGE = 10_000
"""Entries per page of a listing at most."""


def record(
    tx: AuditWrites,
    ctx: Context[object],
    action: str,
    operation_id: int | None,
    details: Mapping[str, object],
) -> None:
    """Append one entry, by `ctx.actor` at `ctx.clock()`, to the transaction `tx` that makes
    the change. `details` says what changed (a small JSON object, never a secret)."""
    tx.append_audit(new_entry(ctx.clock(), ctx.actor, action, operation_id, details))


def record_operation_update(
    tx: AuditWrites, ctx: Context[object], before: Operation, after: Operation
) -> bool:
    """Record an operation's update, made in `tx`: each field that changed, `{"from", "to"}`
    (every field of Operation but its id and creation time, so a field added later is covered).
    Nothing is recorded when nothing changed; returns whether an entry was appended."""
    changed: dict[str, object] = {}
    for field in fields(Operation):
        if field.name in ("id", "created"):
            continue
        old, new = getattr(before, field.name), getattr(after, field.name)
        if old != new:
            changed[field.name] = {"from": old, "to": new}
    if not changed:
        return False
    record(tx, ctx, OPERATION_UPDATE, after.id, changed)
    return True


@dataclass(frozen=True, slots=True)
class AuditPage:
    entries: list[AuditEntry]
    next_after: tuple[int, int] | None
    """Where the next page starts ((time, seq) of this page's last entry); None on the last."""


def entries(
    ctx: Context[AuditLog],
    operation_id: int | None,
    start: int | None,
    end: int | None,
    after: tuple[int, int] | None,
    limit: int = MAX_PAGE,
) -> AuditPage:
    """One page of entries with `start <= time < end` (None: unbounded), oldest first."""
    if not 1 <= limit <= MAX_PAGE:
        raise BadParameters(f"limit must be between 1 and {MAX_PAGE}")
    rows = ctx.storage.audit_entries(operation_id, start, end, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(rows, (rows[-1].time, rows[-1].seq) if more else None)


def operation_entries(
    ctx: Context[AuditLog],
    op: Operation,
    start_local: datetime,
    end_local: datetime,
    after: tuple[int, int] | None = None,
    limit: int = MAX_PAGE,
) -> AuditPage:
    """An operation's own entries in a window of its wall clock (the event listing's window
    rules); a window that starts in the future is refused."""
    cal = calendar(op.timezone)
    if start_local > cal.local_now(ctx.clock()).replace(tzinfo=None):
        raise BadParameters("date_ini is in the future")
    start, end = window_micros(op, start_local, end_local)
    return entries(ctx, op.id, start, end, after, limit)
