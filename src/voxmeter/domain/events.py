"""Usage events and the rules an incoming event must meet (docs/api.md, Ingest)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple, Protocol

from voxmeter.domain.catalog import Aggregation
from voxmeter.domain.months import ZoneCalendar
from voxmeter.domain.quantities import MICRO, QuantityError, to_micro

MAX_ID_LENGTH = 128
MAX_SUBJECT_LENGTH = 128


def is_possible_id(text: str) -> bool:
    """Whether `text` passes the id rules, so that an event could have been stored under it."""
    return 0 < len(text) <= MAX_ID_LENGTH and text.isprintable()


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


class UsageEvent(NamedTuple):
    """A valid event: time in epoch microseconds, quantity in micro-units, month precomputed.

    A named tuple, not a dataclass: a batch builds ten thousand of them, and it encodes
    straight to a JSON array for the storage's bulk insert.
    """

    id: str
    product: str
    time: int
    month: int
    quantity: int
    subject: str | None


def first_copies(events: list[UsageEvent]) -> list[UsageEvent]:
    """The first copy of each id, in order: within a batch, too, the first copy wins. The same
    list when ids are distinct (the usual case, checked without building a dict)."""
    if len({e.id for e in events}) == len(events):
        return events
    seen: dict[str, UsageEvent] = {}
    for event in events:
        seen.setdefault(event.id, event)
    return list(seen.values())


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a batch was refused, reported as `{"index", "field", "error"}`."""

    index: int
    field: str
    error: str

    def as_dict(self) -> dict[str, object]:
        return {"index": self.index, "field": self.field, "error": self.error}


def explain(
    index: int,
    raw: IncomingEvent,
    aggregation: Aggregation | None,
    micros: int,
    now_micros: int,
    calendar: ZoneCalendar,
) -> list[Problem]:
    """Why one event breaks the rules: the slow, explanatory check of an event that failed the
    fast one (`batch.check_and_fold`). An empty list if it breaks none."""
    found: list[Problem] = []
    if not raw.id.isprintable():
        found.append(Problem(index, "id", "must contain printable characters only"))
    if aggregation is None:
        found.append(Problem(index, "product", f"unknown product {raw.product!r}"))
    if micros > now_micros + MAX_FUTURE_MICROS:
        found.append(Problem(index, "time", "is more than 5 minutes in the future"))
    elif not calendar.min_micros <= micros <= calendar.max_micros:
        found.append(Problem(index, "time", "is outside the supported years"))
    found.extend(_quantity_problems(index, raw.quantity, aggregation))
    if aggregation is Aggregation.UNIQUE and not raw.subject:
        found.append(Problem(index, "subject", "is required for this product"))
    if raw.subject is not None and not raw.subject.isprintable():
        found.append(Problem(index, "subject", "must contain printable characters only"))
    return found


def _quantity_problems(
    index: int, value: Decimal | None, aggregation: Aggregation | None
) -> list[Problem]:
    if value is None:
        if aggregation in (Aggregation.SUM, Aggregation.SUM_ROUND_UP, Aggregation.MAX):
            noun = "a level product" if aggregation is Aggregation.MAX else "this product"
            return [Problem(index, "quantity", f"is required for {noun}")]
        return []
    try:
        micros = to_micro(value)
    except QuantityError as exc:
        return [Problem(index, "quantity", str(exc))]
    if aggregation is Aggregation.COUNT and (micros % MICRO or micros < MICRO):
        return [Problem(index, "quantity", "must be a whole number of at least 1")]
    return []
