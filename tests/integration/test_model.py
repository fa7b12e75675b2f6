"""Random ingest/void sequences checked against a reference computed from the listed events.

The meters are incremental state; the reference recomputes every figure from scratch out of
`list_events`, so any drift between the two (a void applied twice, a lost level, a subject
counted twice) shows up as a mismatch. Runs in Asia/Kathmandu (+05:45), across three months.
"""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal

import pytest

from tests.integration.conftest import DbUnderTest
from tests.integration.support import FakeClock, Sql, ev, figures, page_rows
from voxmeter.domain.catalog import Aggregation, Catalog
from voxmeter.domain.months import Month
from voxmeter.domain.quantities import format_decimal
from voxmeter.domain.tenancy import Operation
from voxmeter.entrypoints.wire.listing import list_events
from voxmeter.errors import NotFound
from voxmeter.service.context import Context
from voxmeter.service.events import void_event
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.months import close_month
from voxmeter.service.ports import Database
from voxmeter.service.tenancy import create_operation

PRODUCTS = ["rsync", "ivr_minutes", "interactions", "agent_script", "active_agents"]
MONTHS = ["2026-03", "2026-04", "2026-05"]
WINDOWS = {
    "2026-03": ("20260301000000", "20260331235959"),
    "2026-04": ("20260401000000", "20260430235959"),
    "2026-05": ("20260501000000", "20260531235959"),
}


def listed(ctx: Context, op: Operation) -> dict[str, list[dict]]:
    """Every event of each month, in (time, seq) order, through the public listing."""
    found: dict[str, list[dict]] = {}
    for month, (start, end) in WINDOWS.items():
        rows: list[dict] = []
        cursor = None
        while True:
            page = list_events(ctx, op, start, end, None, cursor, limit=500)
            rows += page_rows(page)
            cursor = page.next_cursor
            if cursor is None:
                break
        assert all(r["time"][:7] == month for r in rows)
        found[month] = rows
    return found


def reference(catalog: Catalog, events: dict[str, list[dict]]) -> dict[str, dict[str, str]]:
    """Each month's figures recomputed from scratch (SPEC 4.3), as plain decimal strings."""
    result: dict[str, dict[str, str]] = {}
    level: dict[str, Decimal] = {}
    for month in MONTHS:
        live = [e for e in events[month] if not e["voided"]]
        figs: dict[str, str] = {}
        for api in PRODUCTS:
            kind = catalog.get(api).aggregation
            mine = [e for e in live if e["product"] == api]
            quantities = [Decimal(e["quantity"]) for e in mine]
            if kind is Aggregation.SUM:
                value = sum(quantities, Decimal(0))
            elif kind is Aggregation.SUM_ROUND_UP:
                value = sum((q.to_integral_value(ROUND_CEILING) for q in quantities), Decimal(0))
            elif kind is Aggregation.COUNT:
                value = sum(quantities, Decimal(0))
            elif kind is Aggregation.MAX:
                candidates = [*quantities, *([level[api]] if api in level else [])]
                value = max(candidates, default=Decimal(0))
                if mine:
                    level[api] = quantities[-1]  # the listing is in (time, seq) order
            else:
                value = Decimal(len({e["subject"] for e in mine}))
            figs[api] = format_decimal(value)
        result[month] = figs
    return result


def random_time(rng: random.Random) -> str:
    # Kathmandu: 1 March 00:00 local is 28 Feb 18:15 UTC; stay inside March..May local.
    start = datetime.fromisoformat("2026-02-28T18:15:00+00:00")
    end = datetime.fromisoformat("2026-05-31T18:15:00+00:00")
    edges = [
        datetime.fromisoformat(t)
        for t in ("2026-03-31T18:15:00+00:00", "2026-04-30T18:15:00+00:00")
    ]
    if rng.random() < 0.15:  # right at a month edge, either side
        edge = rng.choice(edges)
        return (edge + timedelta(microseconds=rng.choice([-1, 0, 1]))).isoformat()
    seconds = rng.randrange(int((end - start).total_seconds()))
    return (start + timedelta(seconds=seconds, microseconds=rng.randrange(10**6))).isoformat()


def random_event(rng: random.Random, event_id: str):
    api = rng.choice(PRODUCTS)
    time = random_time(rng)
    if api == "interactions":
        return ev(event_id, api, time, rng.choice([None, 1, 2, 7]))
    if api == "active_agents":
        return ev(event_id, api, time, subject=rng.choice(["ana", "bo", "cy", "di", "ed"]))
    if api == "agent_script":
        return ev(event_id, api, time, rng.randrange(0, 40))
    quantity = Decimal(rng.randrange(0, 10**8)).scaleb(-rng.randrange(0, 7))
    return ev(event_id, api, time, str(quantity))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_meters_match_a_from_scratch_reference(
    make_ctx, unique_catalog: Catalog, clock: FakeClock, seed: int
) -> None:
    ctx = make_ctx(grace_days=90, catalog=unique_catalog)
    clock.set("2026-05-31T18:30:00Z")  # 1 June 00:15 in Kathmandu: March..May all open
    op = create_operation(ctx, "ktm", "0042", "Asia/Kathmandu")
    rng = random.Random(seed)
    ids: list[str] = []
    voided: set[str] = set()
    for step in range(120):
        if ids and rng.random() < 0.3:
            target = rng.choice(ids)
            _, changed = void_event(ctx, op, target)
            assert changed is (target not in voided)
            voided.add(target)
        elif rng.random() < 0.05:
            with pytest.raises(NotFound):
                void_event(ctx, op, f"missing-{step}")
        else:
            batch = []
            for _ in range(rng.randrange(1, 15)):
                if ids and rng.random() < 0.2:
                    batch.append(random_event(rng, rng.choice(ids)))  # a resend, other fields
                else:
                    batch.append(random_event(rng, f"s{seed}-{len(ids) + len(batch)}"))
            known = set(ids)
            fresh = list(dict.fromkeys(e.id for e in batch if e.id not in known))
            result = ingest_batch(ctx, op, batch)
            assert (result.accepted, result.duplicates) == (len(fresh), len(batch) - len(fresh))
            ids += fresh
        if step % 30 == 29:
            expected = reference(ctx.catalog, listed(ctx, op))
            for month in MONTHS:
                assert figures(ctx, op, month, PRODUCTS) == expected[month], (step, month)

    events = listed(ctx, op)
    assert sum(len(rows) for rows in events.values()) == len(ids)
    assert {e["id"] for rows in events.values() for e in rows if e["voided"]} == voided
    expected = reference(ctx.catalog, events)
    clock.set("2026-06-02T00:00:00Z")
    close_month(ctx, op, Month(2026, 5))
    for month in MONTHS:
        assert figures(ctx, op, month, PRODUCTS) == expected[month], month


def test_concurrent_writers_on_one_file_dedupe_exactly(
    database: DbUnderTest, storage: Database, sql: Sql, catalog: Catalog, clock: FakeClock
) -> None:
    """Threads on two storages over one file (two processes, say) send the same ids."""
    stores = [storage, database.open()]
    contexts = [Context(storage=s, catalog=catalog, clock=clock) for s in stores]
    op = create_operation(contexts[0], "acme", "9901", "UTC")
    results: dict[int, list[tuple[int, int]]] = defaultdict(list)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        rng = random.Random(worker)
        ctx = contexts[worker % 2]
        try:
            for round_ in range(8):
                batch = [
                    ev(f"id-{n}", "rsync", "2026-05-02T00:00:00Z", str(rng.randrange(1, 1000)))
                    for n in rng.sample(range(60), 15)
                ]
                batch.append(ev(f"own-{worker}-{round_}", "interactions", "2026-05-03T00:00:00Z"))
                r = ingest_batch(ctx, op, batch)
                results[worker].append((r.accepted, r.duplicates))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        all_results = [r for rs in results.values() for r in rs]
        assert len(all_results) == 48
        assert all(a + d == 16 for a, d in all_results)
        stored = sql("SELECT count(*), count(DISTINCT id) FROM events")
        accepted = sum(a for a, _ in all_results)
        assert stored == [(accepted, accepted)]
        distinct_shared = sql("SELECT count(*) FROM events WHERE id LIKE 'id-%'")[0][0]
        assert accepted == distinct_shared + 48
        # The meter equals the sum of the stored (first) copies, read from either storage.
        total = sql("SELECT sum(quantity) FROM events WHERE id LIKE 'id-%'")[0][0]
        for ctx in contexts:
            assert figures(ctx, op, "2026-05", ["rsync", "interactions"]) == {
                "rsync": str(total // 10**6),
                "interactions": "48",
            }
    finally:
        stores[1].close()
