"""Day meters for events stored before the day meters existed, built during the migration
that adds them, with the same fold and merge as ingest (domain/meters.py).

The migration knows no `Context`, so it folds with the deployment's catalog as the server
would load it (`VOXMETER_CATALOG`, else the packaged one). Events of products that catalog
does not have are left out: the daily breakdown only shows catalog products.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from voxmeter.domain.catalog import Aggregation, Catalog
from voxmeter.domain.events import UsageEvent
from voxmeter.domain.meters import MeterState, fold, merge, unique_total
from voxmeter.domain.months import calendar

CHUNK = 50_000
"""Events folded at a time: memory stays flat however many events there are."""

DayRow = tuple[int, str, int]
"""(operation id, product api, day as a date ordinal)."""
SubjectRow = tuple[int, str, int, str]


def migration_catalog() -> Catalog:
    path = os.environ.get("VOXMETER_CATALOG")
    return Catalog.load(Path(path) if path else None)


def day_meters(
    events: Iterable[tuple[int, str, int, int, str | None]],
    zones: dict[int, str],
    catalog: Catalog,
) -> tuple[dict[DayRow, MeterState], dict[SubjectRow, int]]:
    """The day states and day subject counts of non-voided events given in arrival order as
    (operation id, api, time, quantity, subject)."""
    states: dict[DayRow, MeterState] = {}
    subjects: dict[SubjectRow, int] = defaultdict(int)
    aggregations = {p.api: p.aggregation for p in catalog}
    pending: dict[int, list[UsageEvent]] = defaultdict(list)

    def flush(operation_id: int) -> None:
        cal = calendar(zones[operation_id])
        batch = pending.pop(operation_id)
        for (api, day), delta in fold(catalog, batch, lambda e: cal.day_of(e.time)).items():
            if aggregations[api] is Aggregation.UNIQUE:
                continue
            key = (operation_id, api, day)
            states[key] = merge(aggregations[api], states.get(key), delta)
        for e in batch:
            if e.subject is not None and aggregations[e.product] is Aggregation.UNIQUE:
                subjects[(operation_id, e.product, cal.day_of(e.time), e.subject)] += 1

    for operation_id, api, time, quantity, subject in events:
        if api not in aggregations or operation_id not in zones:
            continue
        batch = pending[operation_id]
        batch.append(UsageEvent("", api, time, 0, quantity, subject))
        if len(batch) >= CHUNK:
            flush(operation_id)
    for operation_id in list(pending):
        flush(operation_id)
    distinct: dict[DayRow, int] = defaultdict(int)
    for operation_id, api, day, _ in subjects:
        distinct[(operation_id, api, day)] += 1
    for key, count in distinct.items():
        states[key] = MeterState(unique_total(count))
    return states, dict(subjects)
