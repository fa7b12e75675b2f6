"""Synthetic usage for `voxmeter demo`: every product, every day of the month so far."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal

from voxmeter.domain.catalog import Aggregation
from voxmeter.domain.months import calendar, from_micros
from voxmeter.entrypoints.wire.codec import EventIn
from voxmeter.errors import ConfigError
from voxmeter.service import tenancy
from voxmeter.service.context import Context
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.ports import Storage

DEMO_NAME = "demo"
DEMO_SERVER = "9901"


def load_demo(ctx: Context[Storage], seed: int = 2026) -> tuple[str, int]:
    """Create (or reuse) the demo operation and a fresh token; return (secret, events added)."""
    try:
        op = tenancy.find_operation(ctx, DEMO_NAME, DEMO_SERVER)
        fresh = False
    except ConfigError:
        op = tenancy.create_operation(ctx, DEMO_NAME, DEMO_SERVER, "America/Bogota", 5)
        fresh = True
    _, secret = tenancy.create_token(ctx, op, "demo token", [])
    if not fresh:
        return secret, 0
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets
    cal = calendar(op.timezone)
    now = ctx.clock()
    start, _ = cal.window(cal.current_month(now))
    first = from_micros(start, cal.zone)
    local_now = from_micros(now, cal.zone)
    events: list[EventIn] = []
    for product in ctx.catalog:
        day = first
        level = rng.randint(5, 40)
        while day <= local_now:
            for n in range(rng.randint(3, 12)):
                at = min(day + timedelta(minutes=rng.randint(0, 1439)), local_now)
                events.append(_event(product.api, product.aggregation, at, n, level, rng))
            day += timedelta(days=1)
            level = max(1, level + rng.randint(-2, 2))
    for i in range(0, len(events), 10_000):
        ingest_batch(ctx, op, events[i : i + 10_000])  # type: ignore[arg-type]
    return secret, len(events)


def _event(
    api: str, aggregation: Aggregation, at: datetime, n: int, level: int, rng: random.Random
) -> EventIn:
    event_id = f"demo-{api}-{at:%Y%m%d%H%M%S}-{n}-{rng.randrange(10**6)}"
    quantity: Decimal | None
    if aggregation is Aggregation.MAX:
        quantity = Decimal(level)
    elif aggregation is Aggregation.COUNT:
        quantity = Decimal(rng.randint(1, 20))
    else:
        quantity = Decimal(rng.randint(1, 60_000)) / 1000
    return EventIn(id=event_id, product=api, time=at, quantity=quantity)
