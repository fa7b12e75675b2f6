"""After the faults: unknown batches resolved, every figure and stored id verified."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode

from bench.faults.events import PAGE, PRODUCTS, contribution, event_spec, plain
from bench.faults.load import until_ok
from bench.faults.run import Run
from bench.faults.wire import stamp


def listing(run: Run, token: str, first: int, last: int) -> Iterator[dict[str, object]]:
    """Every stored event with first <= time < last + 1 s, page by page."""
    cursor: str | None = None
    while True:
        params = {"date_ini": stamp(first), "date_end": stamp(last), "limit": str(PAGE)}
        if cursor:
            params["cursor"] = cursor
        reply = until_ok(run, "read", "R", "GET", "/api/v2/events?" + urlencode(params), token)
        assert isinstance(reply.body, dict)
        yield from reply.body["data"]
        cursor = reply.body.get("next_cursor")
        if cursor is None:
            return


def resolve_unknown(run: Run, writer: str, reader: str) -> None:
    """Find out what became of each batch without a 200, then re-send it as a client would.

    Its fresh events own one second of event time, so listing that second shows exactly what was
    stored: all of them or none. The re-send must then report them as all duplicates or all new.
    """
    for batch, why in run.take_unknown():
        second = run.base_epoch + batch.number
        listed = [str(e["id"]) for e in listing(run, reader, second, second)]
        fresh = batch.fresh_ids()
        found = len(fresh.intersection(listed))
        if len(listed) != found:
            run.problem(f"batch {batch.number}: {len(listed) - found} stray or repeated events")
        state = "present" if found == batch.fresh else "absent" if found == 0 else "partial"
        run.resolutions[state] += 1
        run.resolved_by_reason.setdefault(why, Counter())[state] += 1
        if state == "partial":
            run.problem(f"batch {batch.number} ({why}): PARTIAL, {found} of {batch.fresh} stored")
        reply = until_ok(run, "ingest", "W", "POST", "/api/v2/events", writer, batch.body(run.base))
        data = reply.data()
        expected = (batch.fresh - found, len(batch.resent) + found)
        if (data["accepted"], data["duplicates"]) != expected:
            run.problem(
                f"batch {batch.number}: re-send counted {data['accepted']}/{data['duplicates']}, "
                f"expected {expected[0]}/{expected[1]}"
            )
        run.store(batch)


def check_figures(run: Run, reader: str) -> bool:
    """Each product's billing figure equals the Decimal sum over the batches known stored."""
    month = run.base.strftime("%Y-%m")
    exact = True
    for product in PRODUCTS:
        reply = until_ok(
            run, "read", "R", "GET", f"/api/v2/billing.php?api={product}&month={month}", reader
        )
        assert isinstance(reply.body, dict)
        items = str(reply.body["data"][0]["items"])
        if items != plain(run.totals[product]):
            exact = False
            run.problem(
                f"{product}: billing says {items}, "
                f"stored events sum to {plain(run.totals[product])}"
            )
    return exact


@dataclass
class Verdict:
    stored: int = 0
    duplicates: int = 0
    missing: int = 0
    extra: int = 0
    field_mismatches: int = 0
    figures_exact: bool = False


def verify(run: Run, reader: str) -> Verdict:
    """The final word, from the listing: each expected event once, as sent, and exact figures."""
    expected: set[str] = set()
    with run.lock:
        stored = list(run.stored.values())
    for batch in stored:
        expected |= batch.fresh_ids()
    seen: set[str] = set()
    verdict = Verdict()
    sums = dict.fromkeys(PRODUCTS, Decimal(0))
    last = run.base_epoch + max(run.next_number, *(b.number + 1 for b in stored), 1)
    for event in listing(run, reader, run.base_epoch, last):
        key = str(event["id"])
        if key in seen:
            verdict.duplicates += 1
            continue
        seen.add(key)
        if key not in expected:
            verdict.extra += 1
            continue
        number, index = (int(part) for part in key.split("-")[1:])
        _, product, offset, quantity = event_spec(number, index)
        when = run.base + timedelta(microseconds=offset)
        value = Decimal(1) if quantity is None else Decimal(quantity)
        if (
            event["product"] != product
            or Decimal(str(event["quantity"])) != value
            or datetime.fromisoformat(str(event["time"])) != when
        ):
            verdict.field_mismatches += 1
        sums[product] += contribution(product, quantity)
    verdict.stored = len(seen)
    verdict.missing = len(expected - seen)
    if sums != run.totals:
        run.problem(f"listing sums {sums} differ from the acknowledged batches' {run.totals}")
    verdict.figures_exact = check_figures(run, reader) and sums == run.totals
    for name in ("duplicates", "missing", "extra", "field_mismatches"):
        if getattr(verdict, name):
            run.problem(f"final listing: {getattr(verdict, name)} {name.replace('_', ' ')}")
    return verdict
