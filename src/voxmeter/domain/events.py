"""Usage events and the rules an incoming event must meet (SPEC §4.1)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from voxmeter.domain.catalog import Aggregation, Catalog
from voxmeter.domain.months import EPOCH, MICROSECOND, ZoneCalendar
from voxmeter.domain.quantities import MICRO, QuantityError, to_micro

MAX_ID_LENGTH = 128
MAX_SUBJECT_LENGTH = 128
MAX_BATCH = 10_000
#: How far ahead of the server's clock an event may be stamped.
MAX_FUTURE_MICROS = 5 * 60 * 1_000_000


class IncomingEvent(Protocol):
    """The shape a decoder hands over: types checked, rules not yet."""

    @property
    def id(self) -> str: ...
    @property
    def product(self) -> str: ...
    @property
    def time(self) -> datetime: ...
    @property
    def quantity(self) -> Decimal | None: ...
    @property
    def subject(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """A valid event: time in epoch microseconds, quantity in micro-units, month precomputed."""

    id: str
    product: str
    time: int
    month: int
    quantity: int
    subject: str | None


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a batch was refused, reported as `{"index", "field", "error"}`."""

    index: int
    field: str
    error: str

    def as_dict(self) -> dict[str, object]:
        return {"index": self.index, "field": self.field, "error": self.error}


def validate_batch(
    incoming: list[IncomingEvent],
    catalog: Catalog,
    calendar: ZoneCalendar,
    now_micros: int,
) -> tuple[list[UsageEvent], list[Problem]]:
    """Check every event; return the valid events and every problem found (not just the first)."""
    events: list[UsageEvent] = []
    problems: list[Problem] = []
    aggregations = {p.api: p.aggregation for p in catalog}
    latest = now_micros + MAX_FUTURE_MICROS
    month_of = calendar.month_of
    for index, raw in enumerate(incoming):
        before = len(problems)
        if not raw.id.isprintable():
            problems.append(Problem(index, "id", "must contain printable characters only"))
        aggregation = aggregations.get(raw.product)
        if aggregation is None:
            problems.append(Problem(index, "product", f"unknown product {raw.product!r}"))
        micros = (raw.time - EPOCH) // MICROSECOND
        if micros > latest:
            problems.append(Problem(index, "time", "is more than 5 minutes in the future"))
        elif micros < calendar.min_micros or micros > calendar.max_micros:
            problems.append(Problem(index, "time", "is outside the supported years"))
        quantity = _quantity(index, raw, aggregation, problems)
        if aggregation is Aggregation.UNIQUE and not raw.subject:
            problems.append(Problem(index, "subject", "is required for this product"))
        if len(problems) == before:
            events.append(
                UsageEvent(raw.id, raw.product, micros, month_of(micros), quantity, raw.subject)
            )
    return events, problems


def _quantity(
    index: int,
    raw: IncomingEvent,
    aggregation: Aggregation | None,
    problems: list[Problem],
) -> int:
    value = raw.quantity
    if value is None:
        if aggregation is Aggregation.SUM or aggregation is Aggregation.SUM_ROUND_UP:
            problems.append(Problem(index, "quantity", "is required for this product"))
        elif aggregation is Aggregation.MAX:
            problems.append(Problem(index, "quantity", "is required for a level product"))
        return MICRO
    try:
        micros = to_micro(value)
    except QuantityError as exc:
        problems.append(Problem(index, "quantity", str(exc)))
        return 0
    if aggregation is Aggregation.COUNT and (micros % MICRO or micros < MICRO):
        problems.append(Problem(index, "quantity", "must be a whole number of at least 1"))
    return micros
