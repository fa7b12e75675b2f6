"""Schemathesis hooks for bench/fuzz_api.py (and tests/e2e/test_fuzz_api.py).

Data that matches /openapi.json is still mostly refused, for reasons no schema can state: an
event's time must be in an open month and at most 5 minutes ahead, a listing window at most 31
days, a month not in the future. Left alone, the fuzzer would almost never reach the success
paths. These hooks let Hypothesis turn part of the generated cases into ones the server accepts
(a recent time, a valid window or month, the id of a seeded event); the rest go out unchanged.
The choice is drawn by Hypothesis, so failing cases still shrink and replay. A value is only
ever replaced when the generated one already matches the document: a case generated to violate
it (schemathesis' negative mode) stays invalid, so `--checks all` (negative_data_rejection) is
not fooled.

Loaded by schemathesis from the environment: SCHEMATHESIS_HOOKS=<path of this file>.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

import schemathesis
from hypothesis import strategies as st

from voxmeter.domain.catalog import Aggregation, Catalog

#: Events the driver stores before fuzzing (`seed_ids`): in the current month, and in the
#: previous month, which it then closes (voids of those answer 409).
SEED_OPEN = 40
SEED_CLOSED = 10
_AGGREGATIONS = {p.api: p.aggregation for p in Catalog.load()}
_OFFSETS = (UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=45)))
_DECIMAL_IN = re.compile(r"[0-9]+(\.[0-9]{1,6})?")
_DIGITS14 = re.compile(r"[0-9]{14}")
_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")


def seed_ids() -> tuple[list[str], list[str]]:
    opened = [f"seed-open-{k}" for k in range(SEED_OPEN)]
    return opened, [f"seed-closed-{k}" for k in range(SEED_CLOSED)]


def _is(context: Any, method: str, path: str) -> bool:
    op = context.operation
    return op is not None and op.method.upper() == method and op.path == path


# POST /api/v2/events


def _recent(age: int) -> datetime:
    """`age` seconds ago, but not before the start of the current month (UTC operations)."""
    now = datetime.now(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return max(now - timedelta(seconds=age), start)


def _documented_time(value: Any) -> bool:
    """An RFC 3339 date-time with an offset, as the document's `format: date-time` asks."""
    if not isinstance(value, str) or len(value) < 20 or value[10] not in "Tt":
        return False
    try:
        return datetime.fromisoformat(value.upper()).tzinfo is not None
    except ValueError:
        return False


def _documented_quantity(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return 0 <= value <= 10**12
    return isinstance(value, str) and _DECIMAL_IN.fullmatch(value) is not None


def _product_quantity(event: dict[str, Any]) -> Any:
    """A quantity the event's product accepts, made from a documented one."""
    raw = event.get("quantity")
    try:
        value = Decimal(str(raw)) if raw is not None else Decimal(1)
    except InvalidOperation:
        value = Decimal(1)
    if not value.is_finite() or not 0 <= value <= 10**12:
        return raw  # a documented string may still be out of range: left to the server
    if _AGGREGATIONS.get(event.get("product", "")) is Aggregation.COUNT:
        return max(1, int(value))
    return f"{value.quantize(Decimal('0.000001')).normalize():f}"


def _printable(text: Any) -> Any:
    """Same length, control characters replaced (printability is not in the document)."""
    if not isinstance(text, str):
        return text
    return "".join(ch if ch.isprintable() else "_" for ch in text)


def _event(event: Any, mode: int, age: int) -> Any:
    """mode 0: as generated; 1: a recent time; 2: also an id, subject and quantity its product
    accepts."""
    if mode == 0 or not isinstance(event, dict) or not _documented_time(event.get("time")):
        return event
    changed = dict(event)
    changed["time"] = _recent(age).astimezone(_OFFSETS[age % 3]).isoformat()
    if mode == 2:
        changed["id"] = _printable(event.get("id"))
        if "subject" in event:
            changed["subject"] = _printable(event["subject"])
        if _documented_quantity(event.get("quantity")):
            changed["quantity"] = _product_quantity(event)
    return changed


@schemathesis.hook
def flatmap_body(context: Any, body: Any) -> Any:
    """One choice per batch (a batch is all or nothing), one age per event."""
    if not _is(context, "POST", "/api/v2/events") or not isinstance(body, list):
        return st.just(body)
    ages = st.lists(st.integers(0, 7 * 86400), min_size=len(body), max_size=len(body))
    return st.tuples(st.integers(0, 2), ages).map(
        lambda drawn: [_event(e, drawn[0], age) for e, age in zip(body, drawn[1], strict=True)]
    )


# GET /api/v2/events, GET /api/v2/audit and GET /api/v2/billing.php


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%S")


def _listing(query: dict[str, Any]) -> Any:
    def window(drawn: tuple[bool, int, int, bool]) -> dict[str, Any]:
        keep, back, length, drop_cursor = drawn
        dates = (query.get("date_ini"), query.get("date_end"))
        if keep or not all(isinstance(d, str) and _DIGITS14.fullmatch(d) for d in dates):
            return query
        start = datetime.now(UTC) - timedelta(seconds=back)
        changed = {**query, "date_ini": _stamp(start)}
        changed["date_end"] = _stamp(start + timedelta(seconds=length))
        if drop_cursor:
            changed.pop("cursor", None)
        return changed

    return st.tuples(
        st.booleans(), st.integers(0, 62 * 86400), st.integers(0, 31 * 86400), st.booleans()
    ).map(window)


MONTH_PATHS = ("/api/v2/billing.php", "/api/v2/forecast", "/api/v2/statement")
"""Reads that take a `month`: drawn mostly among past months, so that not nearly every case is
a refusal of a far-future month."""


def _billing(query: dict[str, Any]) -> Any:
    now = datetime.now(UTC)

    def month(drawn: tuple[bool, int]) -> dict[str, Any]:
        keep, index = drawn
        text = query.get("month")
        if keep or not (isinstance(text, str) and _MONTH.fullmatch(text)):
            return query
        return {**query, "month": f"{index // 12:04d}-{index % 12 + 1:02d}"}

    return st.tuples(st.booleans(), st.integers(1970 * 12, now.year * 12 + now.month - 1)).map(
        month
    )


@schemathesis.hook
def flatmap_query(context: Any, query: Any) -> Any:
    if isinstance(query, dict) and (
        _is(context, "GET", "/api/v2/events") or _is(context, "GET", "/api/v2/audit")
    ):
        return _listing(query)
    if isinstance(query, dict) and any(_is(context, "GET", p) for p in MONTH_PATHS):
        return _billing(query)
    return st.just(query)


# DELETE /api/v2/events/{event_id}


@schemathesis.hook
def flatmap_path_parameters(context: Any, path_parameters: Any) -> Any:
    """Sometimes the id of a seeded event: voided (200), already void (200), closed (409)."""
    if (
        not _is(context, "DELETE", "/api/v2/events/{event_id}")
        or not isinstance(path_parameters, dict)
        or not isinstance(path_parameters.get("event_id"), str)
        or not path_parameters["event_id"]
    ):
        return st.just(path_parameters)
    opened, closed = seed_ids()
    return st.one_of(
        st.just(path_parameters),
        st.sampled_from(opened + closed).map(lambda i: {**path_parameters, "event_id": i}),
    )
