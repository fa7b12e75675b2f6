"""One sweep of a mirror, around the upstream calls: take the lease and plan (`begin_sweep`),
then store what was read and schedule the next (`finish_sweep`) (docs/mirrors.md).

The upstream calls themselves are made by the caller (the server's background task, or
`voxmeter watch`), so this module does no network I/O. Storing is one write: the readings,
their projection into the month and day meters every read is served from, and the new sweep
state, which commits only while this process still holds the lease. A sweep whose lease
was lost stores nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import ROUND_DOWN, Decimal

from voxmeter.domain import mirrors as schedule
from voxmeter.domain.catalog import Aggregation
from voxmeter.domain.meters import DayKey, MeterKey, MeterState
from voxmeter.domain.mirrors import Failure, SweepPlan, SyncState
from voxmeter.domain.months import ZoneCalendar, calendar
from voxmeter.domain.quantities import MAX_DECIMALS, micro_or_invalid
from voxmeter.domain.readings import Reading, day_state, landing_day, month_state
from voxmeter.domain.tenancy import Operation
from voxmeter.errors import ConfigError
from voxmeter.service.alerts import evaluate_alerts
from voxmeter.service.context import Context
from voxmeter.service.months import closed_set
from voxmeter.service.ports import MirrorRecord, SecretSealing, Storage, WriteTransaction

MICROS_PER_SECOND = 1_000_000
BUDGET_SPENT = "the daily request budget is spent; the next sweep is at the upstream's midnight"


class LeaseLost(Exception):
    """Another process took the mirror's lease while this one swept: nothing was stored."""


@dataclass(frozen=True, slots=True)
class SweepJob:
    """A claimed sweep: what to ask, with whose token, and the state it starts from."""

    operation: Operation
    record: MirrorRecord
    token: str = field(repr=False)
    state: SyncState
    plan: SweepPlan
    in_use: frozenset[str]
    day: int
    month: int
    day_end: int
    affordable: bool
    """False when the plan costs more than the day's budget has left: ask nothing."""


@dataclass(slots=True)
class SweepOutcome:
    """What the upstream calls gave: figures as (product, month index, figure), the requests
    they took, what was learnt of the upstream, and the failure that ended them, if any."""

    rows: list[tuple[str, int, Decimal]] = field(default_factory=list)
    spent: int = 0
    supports_all: bool | None = None
    supports_month: bool | None = None
    quota: int | None = None
    failure: Failure | None = None
    error: str | None = None


def lease_until(now: int) -> int:
    return now + schedule.LEASE_SECONDS * MICROS_PER_SECOND


def _day_end(cal: ZoneCalendar, day: int) -> int:
    return cal.day_start(date.fromordinal(day) + timedelta(days=1))


def products_in_use(ctx: Context[Storage], op: Operation, month: int) -> frozenset[str]:
    """Products with a non-zero figure this month or last, from the month meters."""
    apis = [p.api for p in ctx.catalog]
    used = set()
    for m in (month - 1, month):
        for api, state in ctx.storage.meter_states(op.id, m, apis).items():
            if state.total:
                used.add(api)
    return frozenset(used)


def begin_sweep(
    ctx: Context[Storage], sealing: SecretSealing, operation_id: int, owner: str
) -> SweepJob | None:
    """Take the lease of a due mirror and plan its sweep; None when it is not due or another
    process holds it."""
    now = ctx.clock()
    storage = ctx.storage
    if not storage.claim_mirror(operation_id, owner, now, lease_until(now)):
        return None
    record = storage.mirror(operation_id)
    op = storage.operation(operation_id)
    if record is None or op is None:
        storage.release_lease(operation_id, owner)
        return None
    cal = calendar(op.timezone)
    day = cal.today(now).toordinal()
    month = cal.current_month(now)
    state = record.state.today(day)
    in_use = products_in_use(ctx, op, month)
    plan = schedule.plan(state, ctx.catalog, in_use, day, month)
    left = schedule.budget(record.options, state.quota) - state.spent
    try:
        token = sealing.open(record.sealed_token)
    except ConfigError:
        token = ""
    return SweepJob(
        operation=op,
        record=record,
        token=token,
        state=state,
        plan=plan,
        in_use=in_use,
        day=day,
        month=month,
        day_end=_day_end(cal, day),
        affordable=plan.cost(state.supports_all) <= left,
    )


def _micro(figure: Decimal) -> int | None:
    """A figure in micro-units; finer than a micro-unit is cut (never rounded up)."""
    found = micro_or_invalid(figure)
    if found < 0 and figure.is_finite() and figure > 0:
        found = micro_or_invalid(figure.quantize(Decimal(1).scaleb(-MAX_DECIMALS), ROUND_DOWN))
    return None if found < 0 else found


def _readings(
    ctx: Context[Storage], job: SweepJob, outcome: SweepOutcome, now: int
) -> list[Reading]:
    """The outcome's figures that may still be stored: known products, months up to the
    current one and after the last frozen one; the last figure of a key wins."""
    frozen = job.state.frozen_through
    found: dict[MeterKey, Reading] = {}
    for api, month, figure in outcome.rows:
        micro = _micro(figure)
        if micro is None or api not in ctx.catalog or month > job.month:
            continue
        if frozen is not None and month <= frozen:
            continue
        found[(api, month)] = Reading(api, month, micro, now)
    return list(found.values())


def _next_state(job: SweepJob, outcome: SweepOutcome, now: int, stored: set[str]) -> SyncState:
    state = job.state
    if outcome.supports_all is not None:
        state = replace(state, supports_all=outcome.supports_all)
    if outcome.supports_month is not None:
        state = replace(state, supports_month=outcome.supports_month)
    if outcome.quota is not None:
        state = replace(state, quota=outcome.quota, quota_day=job.day)
    options = job.record.options
    if outcome.failure is not None:
        return schedule.after_failure(
            state, options, now, outcome.spent, outcome.failure, outcome.error or "", job.day_end
        )
    if job.plan.freeze_month is not None:
        state = replace(state, frozen_through=job.plan.freeze_month)
    if job.plan.full:
        state = replace(state, full_day=job.day, full_month=job.month)
    in_use = job.in_use | stored
    next_plan = SweepPlan(tuple(sorted(in_use)), False, False)
    return schedule.after_success(
        state, options, now, outcome.spent, next_plan.cost(state.supports_all), job.day_end
    )


def skip_sweep(ctx: Context[Storage], job: SweepJob, owner: str) -> SyncState:
    """The budget cannot pay for the planned sweep: ask nothing until the next local day."""
    state = replace(job.state, next_due=job.day_end, last_error=BUDGET_SPENT)
    with ctx.storage.write() as tx:
        if not tx.finish_sweep(job.operation.id, owner, state):
            raise LeaseLost
    return state


def store_and_project(
    ctx: Context[object], tx: WriteTransaction, op: Operation, readings: list[Reading]
) -> list[Reading]:
    """Store readings and project those that changed a figure into the month meters (the last
    reading) and the day meters (the increase on the day each was seen, or the level); returns
    the readings that changed a figure. Readings are taken in time order, in rounds in which
    each (product, month) occurs once, so a sweep's readings are one round."""
    changed: list[Reading] = []
    pending = sorted(readings, key=lambda r: r.seen)
    while pending:
        round_: dict[tuple[str, int], Reading] = {}
        later: list[Reading] = []
        for r in pending:
            key = (r.product, r.month)
            if key in round_:
                later.append(r)
            else:
                round_[key] = r
        changed.extend(_project_round(ctx, tx, op, list(round_.values())))
        pending = later
    return changed


def _project_round(
    ctx: Context[object], tx: WriteTransaction, op: Operation, readings: list[Reading]
) -> list[Reading]:
    cal = calendar(op.timezone)
    previous = tx.last_readings(op.id, [(r.product, r.month) for r in readings])
    tx.store_readings(op.id, readings)
    changed = [r for r in readings if previous.get((r.product, r.month)) != r.figure]
    if not changed:
        return changed
    tx.save_meters(op.id, {(r.product, r.month): month_state(r) for r in changed})
    landed: dict[DayKey, Reading] = {}
    for r in changed:
        first, starts = cal.month_days(r.month)
        landed[(r.product, landing_day(cal.day_of(r.seen), first, first + len(starts) - 1))] = r
    stored = tx.day_meters(op.id, landed.keys())
    days: dict[DayKey, MeterState] = {}
    for key, r in landed.items():
        product = ctx.catalog.get(r.product)
        aggregation = product.aggregation if product else Aggregation.SUM
        prior = previous.get((r.product, r.month))
        days[key] = day_state(aggregation, r, prior, stored.get(key))
    tx.save_day_meters(op.id, days)
    return changed


def finish_sweep(
    ctx: Context[Storage], job: SweepJob, outcome: SweepOutcome, owner: str
) -> tuple[SyncState, bool]:
    """Store the sweep's readings and project them into the meters, save the next state and
    give the lease back, in one write. Returns the state and whether any figure changed.
    Raises LeaseLost (nothing stored) when the lease was taken meanwhile."""
    now = ctx.clock()
    op = job.operation
    readings = _readings(ctx, job, outcome, now)
    with ctx.storage.write() as tx:
        tx.exclusive(op.id)
        closed = closed_set(ctx, tx, op, {r.month for r in readings})
        readings = [r for r in readings if r.month not in closed]
        changed = store_and_project(ctx, tx, op, readings)
        if changed:  # alerts fire in the transaction that stores what made them reach
            evaluate_alerts(tx, ctx, op, {r.month for r in changed}, {r.product for r in changed})
        nonzero = {r.product for r in readings if r.figure and r.month >= job.month - 1}
        state = _next_state(job, outcome, now, nonzero)
        if not tx.finish_sweep(op.id, owner, state):
            raise LeaseLost
    return state, bool(changed)
