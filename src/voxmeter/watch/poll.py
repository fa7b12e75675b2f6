"""One poll cycle: every due operation's current figures into the history.

A failure of one operation (network, token, server) is recorded in the history and returned;
it never stops the cycle or raises past it. Error texts come from the client, which never puts
the token in a message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from voxmeter.client import Client, UsageRow
from voxmeter.domain.months import Month, calendar
from voxmeter.watch.config import OperationConfig
from voxmeter.watch.history import History

log = logging.getLogger("voxmeter.watch")

MICROS_PER_MINUTE = 60_000_000
Fetch = Callable[[OperationConfig], list[UsageRow]]


@dataclass(frozen=True, slots=True)
class PollResult:
    operation: str
    status: Literal["ok", "error", "skipped"]
    added: int = 0
    """Snapshots added (0 when every figure repeated the last one)."""
    error: str | None = None


def _one_line(exc: Exception) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def now_micros() -> int:
    return time.time_ns() // 1000


def fetch_usage(
    op: OperationConfig, *, timeout: float = 60.0, max_retries: int = 2
) -> list[UsageRow]:
    """Every product's figure for the current month on the operation's server."""
    with Client(
        server=op.server,
        token=op.token,
        base_url=op.base_url,
        timeout=timeout,
        max_retries=max_retries,
        process_lock=True,  # a cron run and a manual `voxmeter usage` may share the token
    ) as client:
        return client.usage_all()


def is_due(history: History, op: OperationConfig, now: int) -> bool:
    """Whether the operation's interval has passed since its last attempt (ok or not)."""
    last = history.poll_state(op.name).last_attempt
    return last is None or now - last >= op.interval_minutes * MICROS_PER_MINUTE


def poll_operation(history: History, op: OperationConfig, now: int, fetch: Fetch) -> PollResult:
    current = str(Month.from_index(calendar(op.timezone).current_month(now)))
    try:
        rows = fetch(op)
        added = 0
        for row in rows:
            month = str(Month(row.date.year, row.date.month)) if row.date else current
            added += history.record(op.name, month, row.api, row.items, now)
    except Exception as exc:
        error = _one_line(exc)
        history.mark_attempt(op.name, now, ok=False, error=error)
        log.warning("operation %s: poll failed: %s", op.name, error)
        result = PollResult(op.name, "error", error=error)
    else:
        history.mark_attempt(op.name, now, ok=True)
        log.info("operation %s: %d figures, %d new snapshots", op.name, len(rows), added)
        result = PollResult(op.name, "ok", added=added)
    for month in history.freeze_ended(op.name, current, now):
        log.info("operation %s: froze month-end figures of %s", op.name, month)
    return result


def poll_cycle(
    history: History,
    operations: Sequence[OperationConfig],
    *,
    now: Callable[[], int] = now_micros,
    fetch: Fetch = fetch_usage,
) -> list[PollResult]:
    """Poll every operation whose interval has passed; one result per operation."""
    results = []
    for op in operations:
        at = now()
        if not is_due(history, op, at):
            results.append(PollResult(op.name, "skipped"))
            continue
        try:
            results.append(poll_operation(history, op, at, fetch))
        except Exception as exc:  # the history itself failed: report, keep going
            error = _one_line(exc)
            log.error("operation %s: cannot record the poll: %s", op.name, error)
            results.append(PollResult(op.name, "error", error=error))
    return results


def stale_operations(
    history: History, operations: Sequence[OperationConfig], now: int, stale_after_minutes: int
) -> list[tuple[str, str]]:
    """(name, one-line warning) per operation whose last successful poll is older than the limit."""
    warnings = []
    limit = stale_after_minutes * MICROS_PER_MINUTE
    for op in operations:
        state = history.poll_state(op.name)
        if state.last_ok is not None and now - state.last_ok <= limit:
            continue
        if state.last_ok is None:
            since = "never polled successfully"
        else:
            since = f"last successful poll {(now - state.last_ok) // MICROS_PER_MINUTE} min ago"
        detail = f"; last error: {state.last_error}" if state.last_error else ""
        warnings.append((op.name, f"warning: operation {op.name} is stale: {since}{detail}"))
    return warnings
