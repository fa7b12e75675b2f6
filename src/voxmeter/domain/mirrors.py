"""Mirrors: what a sweep of an upstream server asks, when the next one is due, and how a
failure backs off (docs/mirrors.md).

Pure arithmetic over integer microseconds and local days, so a whole day of sweeps can be
simulated with a fake clock. The daily budget is a share of the upstream operation's quota;
the spacing of sweeps spreads what is left of it over what is left of the upstream's local day,
never closer than the configured interval.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum

from voxmeter.domain.catalog import Catalog

MICROS_PER_MINUTE = 60_000_000
DEFAULT_INTERVAL_MINUTES = 5
HOSTED_MIN_INTERVAL_MINUTES = 5
DEFAULT_BUDGET_PERCENT = 25
DEFAULT_STALE_MINUTES = 60
DEFAULT_QUOTA = 1000
"""Assumed until `token_info` has told the upstream's real quota: one licence, the smallest."""
MAX_BACKOFF_MINUTES = 60
INVALID_TOKEN_RETRY_MINUTES = 24 * 60
LEASE_SECONDS = 45
"""A sweeping process holds its lease this long and renews it before every request; a killed
process's mirror is free again within a minute."""


class Failure(StrEnum):
    """What kind of upstream failure ended a sweep; it decides the backoff."""

    QUOTA = "quota"
    INVALID_TOKEN = "invalid_token"  # noqa: S105 - a failure kind, not a secret
    MAINTENANCE = "maintenance"
    NETWORK = "network"
    UPSTREAM = "upstream"
    """Anything else the upstream answered that cannot be used (5xx, a malformed reply)."""


@dataclass(frozen=True, slots=True)
class MirrorOptions:
    """A mirror's settings. `upstream_url` None means the hosted service."""

    upstream_url: str | None
    interval_minutes: int = DEFAULT_INTERVAL_MINUTES
    budget_percent: int = DEFAULT_BUDGET_PERCENT
    stale_minutes: int = DEFAULT_STALE_MINUTES


@dataclass(frozen=True, slots=True)
class SyncState:
    """Where a mirror's sweeps stand. Days are the operation's local days (date ordinals);
    months are month indexes. `spent` counts the upstream requests of `day`."""

    next_due: int = 0
    day: int = 0
    spent: int = 0
    quota: int | None = None
    quota_day: int | None = None
    full_day: int | None = None
    full_month: int | None = None
    frozen_through: int | None = None
    """The last month whose figures are final here (later readings of it are ignored)."""
    supports_all: bool | None = None
    supports_month: bool | None = None
    last_attempt: int | None = None
    last_ok: int | None = None
    last_error: str | None = None
    failure: Failure | None = None
    failures: int = 0
    gap: int = 0
    """The spacing the schedule chose after the last sweep (micros): the staleness limit
    grows with it when the budget spaces sweeps out."""

    def today(self, day: int) -> SyncState:
        """The state with its daily counters for `day` (a new day starts from nothing)."""
        if day == self.day:
            return self
        return replace(self, day=day, spent=0)


@dataclass(frozen=True, slots=True)
class SweepPlan:
    """What one sweep asks: `products` (catalog order), whether to read `token_info`, and
    the month that ended since the last sweep (`freeze_month`, None: none), and whether to
    ask the upstream for it with `month=` (`ask_month`) rather than keep its last reading."""

    products: tuple[str, ...]
    token_info: bool
    full: bool
    freeze_month: int | None = None
    ask_month: bool = False

    def cost(self, supports_all: bool | None) -> int:
        """Upstream requests this plan takes (an `api=all` answer is one request)."""
        asks = 1 if supports_all and self.products else len(self.products)
        frozen = 0
        if self.ask_month:
            frozen = 1 if supports_all else len(self.products)
        return asks + frozen + (1 if self.token_info else 0)


def min_interval(upstream_url: str | None, hosted: bool) -> int:
    """The shortest interval allowed: 1 minute, 5 against the hosted service."""
    return HOSTED_MIN_INTERVAL_MINUTES if hosted or upstream_url is None else 1


def budget(options: MirrorOptions, quota: int | None) -> int:
    """Requests a day this mirror may spend: its share of the upstream quota."""
    return (quota or DEFAULT_QUOTA) * options.budget_percent // 100


def plan(
    state: SyncState,
    catalog: Catalog,
    in_use: Iterable[str],
    day: int,
    month: int,
) -> SweepPlan:
    """Every product on the first sweep of a month and of a day, else the products in use;
    `token_info` once a day; and, the first time a month has ended, its freeze."""
    full = state.full_day != day or state.full_month != month
    used = set(in_use)
    products = tuple(p.api for p in catalog if full or p.api in used)
    ended = month - 1
    swept_before = state.full_month is not None and state.full_month <= ended
    unfrozen = state.frozen_through is None or state.frozen_through < ended
    freeze = ended if swept_before and unfrozen else None
    ask = freeze is not None and state.supports_month is not False
    return SweepPlan(products, state.quota_day != day, full, freeze, ask)


def after_success(
    state: SyncState,
    options: MirrorOptions,
    now: int,
    spent: int,
    next_cost: int,
    day_end: int,
) -> SyncState:
    """The state after a successful sweep that made `spent` requests: the next sweep is due
    after the interval, or later when the budget left for the day must stretch to its end;
    with not even one more sweep affordable, at the start of the next day."""
    total = state.spent + spent
    interval = options.interval_minutes * MICROS_PER_MINUTE
    left = budget(options, state.quota) - total
    if next_cost <= 0:
        due = now + interval
    elif left < next_cost:
        due = day_end
    else:
        sweeps = left // next_cost
        due = now + max(interval, -(-(day_end - now) // sweeps))
    return replace(
        state,
        spent=total,
        next_due=due,
        last_attempt=now,
        last_ok=now,
        last_error=None,
        failure=None,
        failures=0,
        gap=due - now,
    )


def after_failure(
    state: SyncState,
    options: MirrorOptions,
    now: int,
    spent: int,
    failure: Failure,
    error: str,
    day_end: int,
) -> SyncState:
    """The state after a failed sweep: quota exhaustion waits for the upstream's next local
    day, an invalid token a day, anything else backs off exponentially from the interval up
    to an hour."""
    failures = state.failures + 1
    if failure is Failure.QUOTA:
        due = day_end
    elif failure is Failure.INVALID_TOKEN:
        due = now + INVALID_TOKEN_RETRY_MINUTES * MICROS_PER_MINUTE
    else:
        minutes = min(options.interval_minutes * 2 ** (failures - 1), MAX_BACKOFF_MINUTES)
        due = now + max(minutes, options.interval_minutes) * MICROS_PER_MINUTE
    return replace(
        state,
        spent=state.spent + spent,
        next_due=due,
        last_attempt=now,
        last_error=error,
        failure=failure,
        failures=failures,
    )


def stale_limit(state: SyncState, options: MirrorOptions) -> int:
    """Micros without a successful sweep before a mirror is stale: its own limit, or twice
    the spacing its budget chose when that is longer."""
    return max(options.stale_minutes * MICROS_PER_MINUTE, 2 * state.gap)


def stale_since(state: SyncState, created: int) -> int:
    """Where staleness is counted from: the last successful sweep, or the mirror's creation
    before any. It names a staleness episode: it changes only when a sweep succeeds."""
    return state.last_ok if state.last_ok is not None else created


def is_stale(state: SyncState, options: MirrorOptions, now: int, created: int) -> bool:
    """A mirror never swept successfully is stale once its limit has passed since creation."""
    return now - stale_since(state, created) > stale_limit(state, options)


def in_use(readings: Iterable[tuple[str, int, int]], month: int) -> set[str]:
    """Products with a non-zero reading this month or last, from (product, month, figure)."""
    return {api for api, m, figure in readings if figure != 0 and month - 1 <= m <= month}
