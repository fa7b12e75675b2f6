"""Ingesting a batch: validate everything, then store new events and fold them in, atomically."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from voxmeter.domain.batch import check_and_fold, validate_batch
from voxmeter.domain.catalog import Aggregation
from voxmeter.domain.events import IncomingEvent, Problem, UsageEvent, first_copies
from voxmeter.domain.meters import DayKey, MeterKey, MeterState, fold, merge, roll_up, unique_total
from voxmeter.domain.months import Month, ZoneCalendar, calendar, month_of_day
from voxmeter.domain.tenancy import Operation
from voxmeter.errors import BadParameters, MirrorUsage
from voxmeter.service.alerts import evaluate_alerts
from voxmeter.service.context import Context
from voxmeter.service.months import closed_set
from voxmeter.service.ports import Writer, WriteTransaction


class InvalidBatch(BadParameters):
    """Some events did not decode. Carries those that did, so their rule problems can be listed
    beside the decoding ones (every problem of a batch is reported at once)."""

    def __init__(
        self, problems: list[Problem], decoded: Sequence[tuple[int, IncomingEvent]]
    ) -> None:
        super().__init__("invalid events", [p.as_dict() for p in problems])
        self.problems = problems
        self.decoded = decoded


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    duplicates: int
    new_events: tuple[UsageEvent, ...] = ()


def ingest_body(
    ctx: Context[Writer],
    op: Operation,
    body: bytes,
    decode: Callable[[bytes], Sequence[IncomingEvent]],
) -> IngestResult:
    """Decode a request body and ingest it; problems of every kind are reported together."""
    if op.mirror:
        raise MirrorUsage
    try:
        incoming = decode(body)
    except InvalidBatch as exc:
        problems = all_problems(ctx, op, exc)
        raise BadParameters("invalid events", [p.as_dict() for p in problems]) from exc
    return ingest_batch(ctx, op, incoming)  # type: ignore[arg-type]


def all_problems(ctx: Context[object], op: Operation, exc: InvalidBatch) -> list[Problem]:
    """Decoding problems merged with the rule problems of the events that did decode."""
    indices = [index for index, _ in exc.decoded]
    incoming: list[IncomingEvent] = [event for _, event in exc.decoded]
    _, rules = validate_batch(incoming, ctx.catalog, calendar(op.timezone), ctx.clock())
    moved = [Problem(indices[p.index], p.field, p.error) for p in rules]
    return sorted([*exc.problems, *moved], key=lambda p: p.index)


def check_batch(
    ctx: Context[Writer], op: Operation, incoming: list[IncomingEvent]
) -> list[Problem]:
    """Every reason this batch would be refused now, storing nothing."""
    if op.mirror:
        raise MirrorUsage
    events, problems = validate_batch(incoming, ctx.catalog, calendar(op.timezone), ctx.clock())
    if problems:
        return problems
    with ctx.storage.write() as tx:
        return _closed_month_problems(ctx, tx, op, events)


def ingest_batch(
    ctx: Context[Writer], op: Operation, incoming: list[IncomingEvent]
) -> IngestResult:
    """All or nothing: any invalid event rejects the batch with every problem listed."""
    if op.mirror:
        raise MirrorUsage
    now = ctx.clock()
    cal = calendar(op.timezone)
    events, problems, folded, day_folded = check_and_fold(incoming, ctx.catalog, cal, now)
    if problems:
        raise BadParameters("invalid events", [p.as_dict() for p in problems])
    firsts = first_copies(events)
    # Folded before taking the write lock: in the usual case every first copy is new.
    planned_for = firsts
    planned = (folded, day_folded) if firsts is events else fold_by_day(ctx, cal, firsts)
    with ctx.storage.write() as tx:
        # Every copy must be valid, later copies of an id included: check all their months.
        closed = closed_set(ctx, tx, op, {e.month for e in events})
        if closed:
            refused = _closed_month_problems(ctx, tx, op, events, closed)
            if refused:
                raise BadParameters("invalid events", [p.as_dict() for p in refused])
            firsts = [e for e in firsts if e.month not in closed]
        new = tx.insert_new(op.id, firsts, now)
        deltas, day_deltas = planned if new is planned_for else fold_by_day(ctx, cal, new)
        if any(_aggregation(ctx, key[0]) is Aggregation.UNIQUE for key in deltas):
            uniques = _unique_events(ctx, new)
            for key, count in tx.add_subjects(op.id, uniques).items():
                deltas[key] = MeterState(unique_total(count))
            uses = [(e.product, cal.day_of(e.time), e.subject) for e in uniques if e.subject]
            for key, count in tx.add_day_subjects(op.id, uses).items():
                day_deltas[key] = MeterState(unique_total(count))
        stored = tx.meters(op.id, deltas.keys())
        saved = _merged(ctx, stored, deltas)
        tx.save_meters(op.id, saved)
        stored_days = tx.day_meters(op.id, day_deltas.keys())
        tx.save_day_meters(op.id, _merged(ctx, stored_days, day_deltas))
        if deltas:
            evaluate_alerts(tx, ctx, op, {m for _, m in deltas}, {p for p, _ in deltas}, saved)
    return IngestResult(len(new), len(events) - len(new), tuple(new))


def fold_by_day(
    ctx: Context[object], cal: ZoneCalendar, events: list[UsageEvent]
) -> tuple[dict[MeterKey, MeterState], dict[DayKey, MeterState]]:
    """A batch's month and day deltas: folded by local day, the months rolled up from them."""
    days = fold(ctx.catalog, events, lambda e: cal.day_of(e.time))
    return roll_up(ctx.catalog, days, month_of_day), days


def _merged(
    ctx: Context[object],
    stored: dict[tuple[str, int], MeterState],
    deltas: dict[tuple[str, int], MeterState],
) -> dict[tuple[str, int], MeterState]:
    return {
        key: merge(_aggregation(ctx, key[0]), stored.get(key), delta)
        for key, delta in deltas.items()
    }


def _aggregation(ctx: Context[object], api: str) -> Aggregation:
    product = ctx.catalog.get(api)
    assert product is not None  # validated above
    return product.aggregation


def _unique_events(ctx: Context[object], events: list[UsageEvent]) -> list[UsageEvent]:
    return [e for e in events if _aggregation(ctx, e.product) is Aggregation.UNIQUE]


def _closed_month_problems(
    ctx: Context[object],
    tx: WriteTransaction,
    op: Operation,
    events: list[UsageEvent],
    closed: set[int] | None = None,
) -> list[Problem]:
    """New events for closed months are refused; copies of stored ones are only duplicates."""
    if closed is None:
        closed = closed_set(ctx, tx, op, {e.month for e in events})
    if not closed:
        return []
    late = [e for e in events if e.month in closed]
    known = tx.known_ids(op.id, [e.id for e in late])
    return [
        Problem(i, "time", f"month {Month.from_index(e.month)} is closed")
        for i, e in enumerate(events)
        if e.month in closed and e.id not in known
    ]
