"""Bounded soak: mixed load on a real server over loopback, judged response by response.

One client thread per kind of traffic, each at a modest fixed rate so the server and this load
generator fit on two cores together: valid ingest batches (with retries and repeated ids),
billing.php reads, token_info, reconciliation listings, voids, deliberate bad input, a
concurrency probe (two stalled uploads on one token, then a third request) and a small operation
whose daily quota is used up on purpose. Every response is classed as an expected success, an
expected refusal (its error envelope checked) or an unexpected error. At the end the server's
figures, its event listing and its own counters must agree exactly with what the soak sent, and
the server's RSS must not grow by 10 % or more after the warm-up.

Bounded by `--minutes` and `--max-requests`; exits 1 when the verdict is FAIL. Writes
`<out>/soak.md` and `<out>/soak.json` (`soak-postgres.*` for the scaled-out backend).

    .venv/bin/python bench/soak.py                      # 10 minutes, embedded SQLite
    .venv/bin/python bench/soak.py --backend postgres   # fresh PostgreSQL database + Redis
    .venv/bin/python bench/soak.py --minutes 1 --warmup-minutes 0.5 --out /tmp/soak
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from common import Server, add_backend_option, cpu_note, fresh_db, fresh_postgres, write_json

from voxmeter import bootstrap
from voxmeter.config import Settings
from voxmeter.service import tenancy

REDIS_URL = "redis://127.0.0.1:6379/0"
SERVER = "9901"
BIG_LICENSES = 1_000_000
SMALL_LICENSES = 1
SUM_PRODUCTS = ("ivr_minutes", "tts_chars", "interactions")
LEVEL_PRODUCT = "agent_script"
READ_APIS = ("ivr_minutes", "tts_chars", "interactions", "agent_script", "rec_minutes", "all")
PLAIN_DECIMAL = re.compile(r"^(0|[1-9]\d*)(\.\d*[1-9])?$")
SAMPLE_SECONDS = 10.0
JsonDict = dict[str, Any]

BAD = "400 bad input"
NO_TOKEN = "401 no token"
INVALID_TOKEN = "403 invalid token"
CONCURRENCY = "403 concurrency"
QUOTA = "403 quota"
UNKNOWN_ID = "404 unknown id"
CONCURRENCY_MSG = "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2)"


# --- what the soak sends, and what the server must therefore report --------------------------


def event_of(seq: int) -> tuple[str, Decimal]:
    """The product and quantity of soak event `seq`, derived so they never need storing."""
    mix = (seq * 2654435761) & 0xFFFFFFFF
    if seq % 997 == 5:
        return LEVEL_PRODUCT, Decimal(1 + mix % 500)
    product = SUM_PRODUCTS[seq % 3]
    if product == "ivr_minutes":
        return product, Decimal(1 + mix % 600_000).scaleb(-3)
    if product == "tts_chars":
        return product, Decimal(mix % 5_000_000).scaleb(-2)
    return product, Decimal(1 + mix % 3)


def contribution(product: str, quantity: Decimal) -> Decimal:
    """What one event adds to its sum/count product (IVR minutes round up per event)."""
    if product == "ivr_minutes":
        return quantity.to_integral_value(rounding=ROUND_CEILING)
    return quantity


def event_json(event_id: str, product: str, quantity: Decimal, when: str, seq: int) -> str:
    """One event, with the quantity sometimes a JSON number, sometimes a string or left out."""
    if product == "interactions" and quantity == 1 and seq % 2:
        return f'{{"id":"{event_id}","product":"{product}","time":"{when}"}}'
    if seq % 4 == 0:
        return f'{{"id":"{event_id}","product":"{product}","time":"{when}","quantity":{quantity}}}'
    return f'{{"id":"{event_id}","product":"{product}","time":"{when}","quantity":"{quantity}"}}'


def soak_id(seq: int) -> str:
    return f"soak-{seq:010d}"


@dataclass
class Ledger:
    """Acknowledged events and voids: the figures the server must show at the end."""

    zone: ZoneInfo
    acked: int = 0
    """Soak events 0..acked-1 are acknowledged as stored (ids are handed out in order)."""
    sums: dict[str, Decimal] = field(
        default_factory=lambda: dict.fromkeys(SUM_PRODUCTS, Decimal(0))
    )
    levels: dict[int, Decimal] = field(default_factory=dict)
    voided: set[int] = field(default_factory=set)
    holds: int = 0
    accepted_total: int = 0
    duplicates_total: int = 0
    uncertain: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def store(self, first: int, count: int, duplicates: int) -> None:
        """Soak events first..first+count-1 were acknowledged as new."""
        with self.lock:
            assert first == self.acked
            for seq in range(first, first + count):
                product, quantity = event_of(seq)
                if product == LEVEL_PRODUCT:
                    self.levels[seq] = quantity
                else:
                    self.sums[product] += contribution(product, quantity)
            self.acked = first + count
            self.accepted_total += count
            self.duplicates_total += duplicates

    def store_hold(self) -> None:
        """A concurrency-probe upload (one interaction) was acknowledged as new."""
        with self.lock:
            self.holds += 1
            self.sums["interactions"] += 1
            self.accepted_total += 1

    def void(self, seq: int) -> None:
        with self.lock:
            self.voided.add(seq)
            product, quantity = event_of(seq)
            if product == LEVEL_PRODUCT:
                del self.levels[seq]
            else:
                self.sums[product] -= contribution(product, quantity)

    def expected(self) -> dict[str, Decimal]:
        with self.lock:
            out = dict(self.sums)
            out[LEVEL_PRODUCT] = max(self.levels.values(), default=Decimal(0))
            return out

    def local_now(self) -> datetime:
        return datetime.now(self.zone)


# --- judging responses -------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    verdict: str
    """"ok", "refused" (an intended refusal) or "unexpected"."""
    label: str = ""
    detail: str = ""


OK = Outcome("ok")


@dataclass(frozen=True)
class Refusal:
    """One error row of the API (docs/api.md, Errors) the request is meant to get."""

    label: str
    status: int
    error: str
    msg: str
    prefix: bool = False
    retry_after: bool = False
    problems: frozenset[int] | None = None
    """For a refused batch: the indexes `data` must list."""


def bad(msg: str, prefix: bool = True, problems: frozenset[int] | None = None) -> Refusal:
    return Refusal(BAD, 400, "BAD REQUEST", msg, prefix=prefix, problems=problems)


UNKNOWN_API = bad("THE API YOU WANT TO CONSULT DOES NOT EXIST", prefix=False)
PARAMETERS = "SOME PARAMETERS ARE REQUIRED"


def body_of(reply: httpx.Response) -> JsonDict | None:
    try:
        body = reply.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def unexpected_status(reply: httpx.Response, wanted: int) -> Outcome:
    label = "5xx" if reply.status_code >= 500 else "wrong status"
    return Outcome(
        "unexpected", label, f"{reply.status_code} (wanted {wanted}): {reply.text[:300]}"
    )


def judge_ok(reply: httpx.Response, check: Callable[[JsonDict], str | None]) -> Outcome:
    """A success must be a 200 envelope whose body passes `check`."""
    if reply.status_code != 200:
        return unexpected_status(reply, 200)
    body = body_of(reply)
    if body is None or body.get("code") != 200 or body.get("error") is not None:
        return Outcome("unexpected", "wrong body", reply.text[:300])
    problem = check(body)
    if problem:
        return Outcome("unexpected", "wrong body", f"{problem}: {reply.text[:300]}")
    return OK


def expect_ok(check: Callable[[JsonDict], str | None]) -> Callable[[httpx.Response], Outcome]:
    return lambda reply: judge_ok(reply, check)


def expect_refusal(row: Refusal) -> Callable[[httpx.Response], Outcome]:
    return lambda reply: judge_refusal(reply, row)


def judge_refusal(reply: httpx.Response, row: Refusal) -> Outcome:
    """A refusal must be exactly its envelope row, status equal to `code`."""
    if reply.status_code != row.status:
        return unexpected_status(reply, row.status)
    body = body_of(reply)
    why = ""
    if body is None:
        why = "not a JSON object"
    elif body.get("code") != row.status or body.get("error") != row.error:
        why = "code/error differ"
    elif not isinstance(body.get("msg"), str) or not (
        body["msg"].startswith(row.msg) if row.prefix else body["msg"] == row.msg
    ):
        why = f"msg is not {row.msg!r}"
    elif not isinstance(body.get("data"), list):
        why = "data is not a list"
    elif row.problems is None and body["data"]:
        why = "data is not []"
    elif row.problems is not None and (
        not all(isinstance(p, dict) and {"index", "field", "error"} <= set(p) for p in body["data"])
        or {p["index"] for p in body["data"]} != row.problems
    ):
        why = f"data does not list exactly indexes {sorted(row.problems)}"
    elif row.retry_after and not reply.headers.get("retry-after", "").isdigit():
        why = "no Retry-After"
    if why:
        return Outcome("unexpected", "wrong body", f"{why}: {reply.text[:300]}")
    return Outcome("refused", row.label)


# --- bookkeeping ---------------------------------------------------------------------------------


@dataclass
class KindStats:
    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    unexpected: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    notes: Counter[str] = field(default_factory=Counter)


class Soak:
    """Shared state of one run: the clock, the budget, and every response's class."""

    KINDS = (
        "ingest",
        "billing",
        "token_info",
        "listing",
        "void",
        "bad input",
        "concurrency probe",
        "concurrency hold",
        "quota (small op)",
    )

    def __init__(self, seconds: float, max_requests: int) -> None:
        self.start = time.monotonic()
        self.deadline = self.start + seconds
        self.max_requests = max_requests
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.kinds = {name: KindStats() for name in self.KINDS}
        self.requests = 0
        self.per_minute: Counter[int] = Counter()

    def running(self) -> bool:
        if time.monotonic() >= self.deadline or self.requests >= self.max_requests:
            self.stop.set()
        return not self.stop.is_set()

    def record(self, kind: str, seconds: float, outcome: Outcome) -> None:
        with self.lock:
            stats = self.kinds[kind]
            self.requests += 1
            self.per_minute[int((time.monotonic() - self.start) // 60)] += 1
            stats.latencies.append(seconds)
            if outcome.verdict == "ok":
                stats.ok += 1
            elif outcome.verdict == "refused":
                stats.refusals[outcome.label] += 1
            else:
                stats.unexpected[outcome.label] += 1
                if len(stats.examples) < 5:
                    stats.examples.append(f"{outcome.label}: {outcome.detail}")

    def note(self, kind: str, what: str, count: int = 1) -> None:
        with self.lock:
            self.kinds[kind].notes[what] += count

    def unexpected(self) -> int:
        with self.lock:
            return sum(sum(s.unexpected.values()) for s in self.kinds.values())

    def pace(self, per_second: float) -> Iterator[int]:
        """Ticks at a fixed rate without catching up after a slow request (no bursts)."""
        interval = 1.0 / per_second
        tick = time.monotonic()
        n = 0
        while self.running():
            yield n
            n += 1
            tick += interval
            now = time.monotonic()
            if tick < now:
                tick = now
            if self.stop.wait(tick - now):
                return


def send(
    soak: Soak,
    client: httpx.Client,
    kind: str,
    method: str,
    url: str,
    judge: Callable[[httpx.Response], Outcome],
    **kwargs: Any,
) -> httpx.Response | None:
    """One timed request, judged and recorded; None after a transport error."""
    started = time.perf_counter()
    try:
        reply = client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        soak.record(
            kind, time.perf_counter() - started, Outcome("unexpected", "transport", repr(exc))
        )
        return None
    elapsed = time.perf_counter() - started
    soak.record(kind, elapsed, judge(reply))
    return reply


# --- traffic -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tenant:
    base: str
    tokens: dict[str, str]
    zone: ZoneInfo
    quota_token: str

    def client(self, token: str | None, timeout: float = 90.0) -> httpx.Client:
        headers = {"wolkvox-token": token} if token else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=timeout)


def ingest_traffic(soak: Soak, tenant: Tenant, ledger: Ledger, rate: float, seed: int) -> None:
    """Valid batches of 1,000-10,000 events: new time-ordered ids, repeats of stored ids with
    other fields (the first copy must win), repeats inside a batch, and replays of whole batches."""
    rng = random.Random(seed)
    client = tenant.client(tenant.tokens["ingest"])
    headers = {"Content-Type": "application/json"}
    last: tuple[bytes, int] | None = None
    for _ in soak.pace(rate):
        now = ledger.local_now()
        stamps = [
            (now - timedelta(seconds=rng.uniform(1, 120))).isoformat(timespec="milliseconds")
            for _ in range(16)
        ]
        first, new = ledger.acked, 0
        if last is not None and rng.random() < 0.05:
            payload, total = last
            soak.note("ingest", "replays of an acknowledged batch")
        else:
            new = rng.randint(1_000, 9_000)
            lines = [
                event_json(soak_id(s), *event_of(s), stamps[s & 15], s)
                for s in range(first, first + new)
            ]
            if first and rng.random() < 0.2:
                for old in rng.sample(range(first), min(first, rng.randint(1, new // 10))):
                    other = event_json(soak_id(old), *event_of(old + 1), stamps[old & 15], old)
                    lines.insert(rng.randrange(len(lines) + 1), other)
                soak.note("ingest", "batches repeating stored ids")
            if rng.random() < 0.1:
                for s in rng.sample(range(first, first + new), rng.randint(1, 20)):
                    lines.append(event_json(soak_id(s), *event_of(s + 1), stamps[0], s + 1))
                soak.note("ingest", "batches repeating their own ids")
            payload, total = ("[" + ",".join(lines) + "]").encode(), len(lines)

        def check(body: JsonDict, new: int = new, total: int = total) -> str | None:
            data = body.get("data")
            want = {"accepted": new, "duplicates": total - new}
            msg = "1 event accepted" if new == 1 else f"{new} events accepted"
            if data != want or body.get("msg") != msg:
                return f"wanted {want}"
            return None

        maybe_stored = False
        for _ in range(5):
            reply = send(
                soak,
                client,
                "ingest",
                "POST",
                "/api/v2/events",
                judge_retry if maybe_stored else expect_ok(check),
                content=payload,
                headers=headers,
            )
            if reply is not None and reply.status_code == 200:
                break
            maybe_stored = maybe_stored or reply is None or reply.status_code >= 500
            soak.note("ingest", "retries after a failed attempt")
            time.sleep(1)
        else:
            ledger.uncertain = True
            soak.stop.set()
            return
        ledger.store(first, new, total - new)
        soak.note("ingest", "events sent", total)
        last = (payload, total)


def judge_retry(reply: httpx.Response) -> Outcome:
    """A batch retried after an attempt that may have been stored (transport error, 5xx): any
    200 will do, since its counts depend on whether that attempt was committed."""
    return OK if reply.status_code == 200 else unexpected_status(reply, 200)


def billing_traffic(soak: Soak, tenant: Tenant, ledger: Ledger, rate: float) -> None:
    """billing.php for several products and api=all: the current month (implicit and explicit)
    and the previous month, which must read 0 everywhere."""
    client = tenant.client(tenant.tokens["billing"])
    for n in soak.pace(rate):
        api = READ_APIS[n % len(READ_APIS)]
        today = ledger.local_now().date()
        past = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
        current = today.strftime("%Y-%m")
        month = (None, current, past)[(n // len(READ_APIS)) % 3]
        params = {"api": api} | ({"month": month} if month else {})

        def check(
            body: JsonDict,
            api: str = api,
            month: str | None = month,
            past: str = past,
            today: date = today,
        ) -> str | None:
            wanted = (
                f"Information found for {month}"
                if month
                else ("Information found for the current month")
            )
            rows = body.get("data")
            if body.get("msg") != wanted or not isinstance(rows, list):
                return f"msg is not {wanted!r}"
            if len(rows) != (27 if api == "all" else 1):
                return "wrong row count"
            for row in rows:
                items = row.get("items")
                if row.get("operation") != "soak" or not isinstance(items, str):
                    return "wrong row"
                if not PLAIN_DECIMAL.match(items) or (month == past and items != "0"):
                    return f"wrong items {items!r}"
                if row.get("date") not in (str(today), str(ledger.local_now().date())):
                    return "wrong date"
            return None

        send(
            soak,
            client,
            "billing",
            "GET",
            "/api/v2/billing.php",
            expect_ok(check),
            params=params,
        )


def info_traffic(soak: Soak, tenant: Tenant, rate: float) -> None:
    """token_info on a token nothing else uses: its use count must be exact."""
    client = tenant.client(tenant.tokens["info"])
    for admitted in soak.pace(rate):

        def check(body: JsonDict, n: int = admitted + 1) -> str | None:
            rows = body.get("data")
            if not isinstance(rows, list) or len(rows) != 1:
                return "wrong rows"
            row = rows[0]
            try:
                limit, mine = int(row["token_limit"]), int(row["token_use_today"])
                every, left = int(row["all_token_today"]), int(row["available_consumption_options"])
            except (KeyError, TypeError, ValueError):
                return "missing figure"
            if limit != BIG_LICENSES * 1000 or mine != n or every < mine or left != limit - every:
                return f"wanted token_use_today {n}"
            return None

        send(
            soak,
            client,
            "token_info",
            "GET",
            "/api/v2/information.php",
            expect_ok(check),
            params={"api": "token_info"},
        )


def listing_traffic(soak: Soak, tenant: Tenant, ledger: Ledger, rate: float) -> None:
    """Reconciliation listings of the last two minutes, 1,000 a page, following one cursor."""
    client = tenant.client(tenant.tokens["listing"])
    for n in soak.pace(rate):
        now = ledger.local_now()
        product = SUM_PRODUCTS[n % 3] if n % 2 else None
        params = {
            "date_ini": (now - timedelta(minutes=2)).strftime("%Y%m%d%H%M%S"),
            "date_end": now.strftime("%Y%m%d%H%M%S"),
            "limit": "1000",
        } | ({"product": product} if product else {})

        def check(body: JsonDict, product: str | None = product) -> str | None:
            rows = body.get("data")
            if not isinstance(rows, list) or len(rows) > 1000 or "next_cursor" not in body:
                return "wrong page"
            if product and any(row.get("product") != product for row in rows):
                return "row of another product"
            msg = "1 event found" if len(rows) == 1 else f"{len(rows)} events found"
            if body.get("msg") != msg:
                return "wrong msg"
            return None

        reply = send(
            soak,
            client,
            "listing",
            "GET",
            "/api/v2/events",
            expect_ok(check),
            params=params,
        )
        page = body_of(reply) if reply is not None else None
        cursor = page.get("next_cursor") if page else None
        if cursor:
            send(
                soak,
                client,
                "listing",
                "GET",
                "/api/v2/events",
                expect_ok(check),
                params=params | {"cursor": cursor},
            )


def void_traffic(soak: Soak, tenant: Tenant, ledger: Ledger, rate: float, seed: int) -> None:
    """Voids of stored events, repeated voids (idempotent 200) and unknown ids (404)."""
    rng = random.Random(seed)
    client = tenant.client(tenant.tokens["void"])
    for n in soak.pace(rate):
        choice = n % 10
        if choice == 9:
            target = f"nope-{uuid.uuid4().hex}"
            row = Refusal(UNKNOWN_ID, 404, "NOT FOUND", f"NO EVENT WITH ID {target!r}")
            send(
                soak,
                client,
                "void",
                "DELETE",
                f"/api/v2/events/{target}",
                expect_refusal(row),
            )
            continue
        with ledger.lock:
            acked, voided = ledger.acked, sorted(ledger.voided) if choice == 8 else []
        if choice == 8 and voided:
            seq, again = rng.choice(voided), True
        elif acked:
            seq, again = rng.randrange(acked), False
            if seq in ledger.voided:
                continue
        else:
            continue
        wanted = "Event was already voided" if again else "Event voided"

        def check(body: JsonDict, seq: int = seq, wanted: str = wanted) -> str | None:
            rows = body.get("data")
            if body.get("msg") != wanted:
                return f"msg is not {wanted!r}"
            if rows != [{"id": soak_id(seq), "product": event_of(seq)[0], "voided": True}]:
                return "wrong row"
            return None

        for _ in range(5):
            reply = send(
                soak,
                client,
                "void",
                "DELETE",
                f"/api/v2/events/{soak_id(seq)}",
                expect_ok(check),
            )
            if reply is not None and reply.status_code == 200:
                if not again:
                    ledger.void(seq)
                break
            time.sleep(1)
        else:
            ledger.uncertain = True


def bad_cases(ledger: Ledger, n: int) -> list[tuple[str, str, str, dict[str, Any], Refusal]]:
    """(token, method, path, httpx arguments, refusal): the deliberate mistakes of one cycle.

    Rejected batches mix valid new events with bad ones: atomicity means none of them may count.
    """
    now = ledger.local_now()
    when = now.isoformat(timespec="seconds")
    future = (now + timedelta(hours=1)).isoformat(timespec="seconds")
    json_type = {"Content-Type": "application/json"}
    good = f'{{"id":"bad-{n}-ok","product":"ivr_minutes","time":"{when}","quantity":"7"}}'
    mixed = (
        f'[{good},{{"id":"bad-{n}-a","product":"no_such_product","time":"{when}"}},'
        f'{{"id":"bad-{n}-b","product":"tts_chars","time":"{when}","quantity":"-1"}},'
        f'{{"id":"bad-{n}-c","product":"interactions","time":"{when[:19]}"}},'
        f'{{"id":"bad-{n}-d","product":"tts_chars","time":"{future}","quantity":"1"}},'
        f'{{"id":"bad-{n}-e","product":"tts_chars","time":"{when}","quantity":"1.1234567"}},'
        f'{{"id":"bad-{n}-f","product":"ivr_minutes","time":"{when}","quantity":"2","qty":1}}]'
    )
    oversize = (
        "["
        + ",".join(
            f'{{"id":"bad-{n}-{i}","product":"interactions","time":"{when}"}}'
            for i in range(10_001)
        )
        + "]"
    )
    month_ahead = (now.replace(day=28) + timedelta(days=5)).strftime("%Y-%m")
    day = now.strftime("%Y%m%d")
    post = "POST"
    return [
        (
            "bad",
            post,
            "/api/v2/events",
            {"content": b'[{"id": ', "headers": json_type},
            bad(f"{PARAMETERS}: malformed JSON"),
        ),
        (
            "bad",
            post,
            "/api/v2/events",
            {"content": mixed.encode(), "headers": json_type},
            bad(f"{PARAMETERS}: invalid events", problems=frozenset(range(1, 7))),
        ),
        (
            "bad",
            post,
            "/api/v2/events",
            {"content": b"[]", "headers": json_type},
            bad(f"{PARAMETERS}: the batch is empty"),
        ),
        (
            "bad",
            post,
            "/api/v2/events",
            {"content": f"[{good}]".encode(), "headers": {"Content-Type": "text/plain"}},
            bad(f"{PARAMETERS}: Content-Type"),
        ),
        (
            "bad",
            post,
            "/api/v2/events",
            {"content": oversize.encode(), "headers": json_type},
            bad(PARAMETERS),
        ),
        ("bad", "GET", "/api/v2/billing.php", {"params": {"api": "no_such_product"}}, UNKNOWN_API),
        (
            "bad",
            "GET",
            "/api/v2/billing.php",
            {"params": {"api": "ivr_minutes", "month": "2026-13"}},
            bad(f"{PARAMETERS}: month"),
        ),
        (
            "bad",
            "GET",
            "/api/v2/billing.php",
            {"params": {"api": "all", "month": month_ahead}},
            bad(f"{PARAMETERS}: month"),
        ),
        ("bad", "GET", "/api/v2/billing.php", {}, bad(PARAMETERS)),
        (
            "bad",
            "GET",
            "/api/v2/events",
            {"params": {"date_end": f"{day}000000"}},
            bad(f"{PARAMETERS}: date_ini"),
        ),
        (
            "bad",
            "GET",
            "/api/v2/events",
            {"params": {"date_ini": "20200101000000", "date_end": f"{day}000000"}},
            bad(PARAMETERS),
        ),
        (
            "bad",
            "GET",
            "/api/v2/events",
            {"params": {"date_ini": f"{day}000000", "date_end": f"{day}235959", "limit": "-5"}},
            bad(PARAMETERS),
        ),
        ("bad", "GET", "/api/v2/no_such_thing.php", {}, UNKNOWN_API),
        (
            "",
            "GET",
            "/api/v2/billing.php",
            {"params": {"api": "ivr_minutes"}},
            Refusal(NO_TOKEN, 401, "UNAUTHORIZED", "PLEASE ENTER THE WOLKVOX-TOKEN"),
        ),
        (
            "vxm_" + "x" * 43,
            "GET",
            "/api/v2/billing.php",
            {"params": {"api": "ivr_minutes"}},
            Refusal(INVALID_TOKEN, 403, "FORBIDDEN", "PLEASE VALIDATE TOKEN"),
        ),
        (
            "readonly",
            post,
            "/api/v2/events",
            {"content": f"[{good}]".encode(), "headers": json_type},
            Refusal(INVALID_TOKEN, 403, "FORBIDDEN", "PLEASE VALIDATE TOKEN"),
        ),
        (
            "bad",
            "GET",
            "/api/v2/billing.php",
            {"params": {"api": "ivr_minutes"}, "headers": {"wolkvox_server": "0042"}},
            Refusal(INVALID_TOKEN, 403, "FORBIDDEN", "PLEASE VALIDATE TOKEN"),
        ),
    ]


def bad_traffic(soak: Soak, tenant: Tenant, ledger: Ledger, rate: float) -> None:
    """Deliberate bad input and bad credentials, each expecting its exact envelope row."""
    clients: dict[str, httpx.Client] = {}
    cases = bad_cases(ledger, 0)
    for n in soak.pace(rate):
        if n % len(cases) == 0:
            cases = bad_cases(ledger, n)
        who, method, path, kwargs, row = cases[n % len(cases)]
        token = tenant.tokens.get(who, who)
        if token not in clients:
            clients[token] = tenant.client(token or None)
        send(
            soak,
            clients[token],
            "bad input",
            method,
            path,
            expect_refusal(row),
            **kwargs,
        )


def concurrency_traffic(soak: Soak, tenant: Tenant, ledger: Ledger, rate: float) -> None:
    """Two uploads stalled mid-body hold both slots of one token; a third request must get the
    concurrency 403 at once, and once the uploads finish the token must be free again."""
    token = tenant.tokens["probe"]
    client = tenant.client(token)
    port = int(tenant.base.rsplit(":", 1)[1])
    row = Refusal(CONCURRENCY, 403, "FORBIDDEN", CONCURRENCY_MSG, retry_after=True)
    for n in soak.pace(rate):
        when = ledger.local_now().isoformat(timespec="seconds")
        holds: list[tuple[http.client.HTTPConnection, bytes]] = []
        try:
            for k in range(2):
                body = (
                    f'[{{"id":"hold-{n:08d}-{k}","product":"interactions","time":"{when}"}}]'
                ).encode()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=90)
                conn.putrequest("POST", "/api/v2/events")
                conn.putheader("wolkvox-token", token)
                conn.putheader("Content-Type", "application/json")
                conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body[:10])
                holds.append((conn, body[10:]))
            time.sleep(0.05)
            for _ in range(40):
                reply = send(
                    soak,
                    client,
                    "concurrency probe",
                    "GET",
                    "/api/v2/billing.php",
                    lambda r: OK if r.status_code == 200 else judge_refusal(r, row),
                    params={"api": "interactions"},
                )
                if reply is None or reply.status_code != 200:
                    break
                soak.note("concurrency probe", "probes admitted before the holds were (retried)")
                time.sleep(0.05)
            else:
                soak.record(
                    "concurrency probe",
                    0.0,
                    Outcome("unexpected", "no concurrency 403", "40 probes admitted"),
                )
        except OSError as exc:
            soak.record("concurrency hold", 0.0, Outcome("unexpected", "transport", repr(exc)))
        for conn, rest in holds:
            started = time.perf_counter()
            try:
                conn.send(rest)
                answer = conn.getresponse()
                text = answer.read()
                elapsed = time.perf_counter() - started
                ok = answer.status == 200 and json.loads(text).get("data") == {
                    "accepted": 1,
                    "duplicates": 0,
                }
                outcome = (
                    OK
                    if ok
                    else Outcome(
                        "unexpected",
                        "5xx" if answer.status >= 500 else "wrong body",
                        f"{answer.status}: {text[:300]!r}",
                    )
                )
                soak.record("concurrency hold", elapsed, outcome)
                if ok:
                    ledger.store_hold()
                else:
                    ledger.uncertain = True
            except (OSError, ValueError, http.client.HTTPException) as exc:
                soak.record(
                    "concurrency hold",
                    time.perf_counter() - started,
                    Outcome("unexpected", "transport", repr(exc)),
                )
                ledger.uncertain = True
            finally:
                conn.close()
        send(
            soak,
            client,
            "concurrency probe",
            "GET",
            "/api/v2/billing.php",
            expect_ok(lambda body: None),
            params={"api": "interactions"},
        )


def quota_traffic(soak: Soak, tenant: Tenant, fast: float, slow: float) -> dict[str, Any]:
    """Use up the small operation's daily quota: exactly licences x 1000 requests succeed, then
    every request gets TOKEN LIMIT EXCEEDED with Retry-After."""
    client = tenant.client(tenant.quota_token)
    quota = SMALL_LICENSES * 1000
    row = Refusal(QUOTA, 403, "FORBIDDEN", "TOKEN LIMIT EXCEEDED", retry_after=True)
    admitted = 0
    refused_at: float | None = None
    for _ in soak.pace(fast):
        wanted_ok = admitted < quota
        reply = send(
            soak,
            client,
            "quota (small op)",
            "GET",
            "/api/v2/billing.php",
            expect_ok(lambda body: None) if wanted_ok else expect_refusal(row),
            params={"api": "ivr_minutes"},
        )
        if reply is not None and reply.status_code == 200:
            admitted += 1
        if not wanted_ok and reply is not None:
            refused_at = time.monotonic() - soak.start
            break
    for _ in soak.pace(slow):
        send(
            soak,
            client,
            "quota (small op)",
            "GET",
            "/api/v2/billing.php",
            expect_refusal(row),
            params={"api": "ivr_minutes"},
        )
    return {"quota": quota, "admitted": admitted, "exhausted_after_s": refused_at}


# --- server-side figures, memory, counters --------------------------------------------------------


def proc_pids(server: Server) -> list[int]:
    assert server.proc is not None
    pids = [server.proc.pid]
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    return pids


def cpu_seconds(server: Server) -> float:
    """User + system CPU time of the server's processes so far."""
    total = 0
    for pid in proc_pids(server):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    t: float
    rss_mib: float
    events: int
    requests: int


def sample_rss(soak: Soak, server: Server, ledger: Ledger, out: list[Sample]) -> None:
    """Server RSS every SAMPLE_SECONDS on a fixed grid from the start of the soak."""
    k = 0
    while True:
        out.append(Sample(k * SAMPLE_SECONDS, server.rss_mib(), ledger.acked, soak.requests))
        k += 1
        if soak.stop.wait(max(0.0, soak.start + k * SAMPLE_SECONDS - time.monotonic())):
            return


def final_figures(tenant: Tenant, ledger: Ledger) -> dict[str, Any]:
    """The server's figures against the ledger, product by product and in one api=all reply:
    the soak's products must match exactly and every other product must read 0."""
    expected = ledger.expected()
    with tenant.client(tenant.tokens["billing"]) as client:
        every = client.get("/api/v2/billing.php", params={"api": "all"}).json()["data"]
        single = {
            api: client.get("/api/v2/billing.php", params={"api": api}).json()["data"][0]
            for api in (*SUM_PRODUCTS, LEVEL_PRODUCT)
        }
    in_all = {row["description"]: row["items"] for row in every}
    table = [
        {
            "product": api,
            "expected": format(expected[api].normalize(), "f"),
            "server": row["items"],
            "ok": Decimal(row["items"]) == expected[api]
            and in_all.get(row["description"]) == row["items"],
        }
        for api, row in single.items()
    ]
    titles = {row["description"] for row in single.values()}
    others_zero = len(every) == 27 and all(
        items == "0" for title, items in in_all.items() if title not in titles
    )
    return {
        "products": table,
        "other_products_zero": others_zero,
        "ok": all(r["ok"] for r in table) and others_zero and not ledger.uncertain,
        "uncertain": ledger.uncertain,
    }


def reconcile(tenant: Tenant, ledger: Ledger) -> dict[str, Any]:
    """Page through today's listing: each acknowledged event exactly once, voids marked, and no
    event of a refused batch."""
    today = ledger.local_now().strftime("%Y%m%d")
    params = {"date_ini": f"{today}000000", "date_end": f"{today}235959", "limit": "60000"}
    seen = bytearray(ledger.acked)
    counts: Counter[str] = Counter()
    pages = 0
    with tenant.client(tenant.tokens["listing"], timeout=300) as client:
        cursor: str | None = None
        while True:
            reply = client.get(
                "/api/v2/events", params=params | ({"cursor": cursor} if cursor else {})
            )
            body = reply.json()
            pages += 1
            for row in body["data"]:
                event_id = row["id"]
                if event_id.startswith("soak-"):
                    seq = int(event_id[5:])
                    if seq >= len(seen) or seen[seq]:
                        counts["soak out of range or repeated"] += 1
                        continue
                    seen[seq] = 1
                    counts["soak"] += 1
                    if row["voided"]:
                        counts["soak voided"] += 1
                        if seq not in ledger.voided:
                            counts["voided but not by the soak"] += 1
                    elif seq in ledger.voided:
                        counts["void lost"] += 1
                    product, quantity = event_of(seq)
                    if row["product"] != product or Decimal(row["quantity"]) != quantity:
                        counts["first copy did not win"] += 1
                elif event_id.startswith("hold-"):
                    counts["hold"] += 1
                else:
                    counts["foreign (refused batch stored?)"] += 1
            cursor = body.get("next_cursor")
            if not cursor:
                break
    ok = (
        counts["soak"] == ledger.acked
        and counts["soak voided"] == len(ledger.voided)
        and counts["hold"] == ledger.holds
        and set(counts) <= {"soak", "soak voided", "hold"}
    )
    return {
        "pages": pages,
        "listed": dict(counts),
        "expected": {"soak": ledger.acked, "soak voided": len(ledger.voided), "hold": ledger.holds},
        "ok": ok,
    }


def server_counters(base: str) -> dict[str, float]:
    """The server's own Prometheus counters that the soak can check."""
    text = httpx.get(base + "/metrics", timeout=30).text
    out: dict[str, float] = defaultdict(float)
    for line in text.splitlines():
        if line.startswith("voxmeter_limit_rejections_total"):
            label = line.split('limit="', 1)[1].split('"', 1)[0]
            out[f"limit {label}"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("voxmeter_ingest_events_total"):
            label = line.split('result="', 1)[1].split('"', 1)[0]
            out[f"ingest {label}"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("voxmeter_requests_total"):
            status = line.split('status="', 1)[1].split('"', 1)[0]
            if status.startswith("5"):
                out["5xx"] += float(line.rsplit(" ", 1)[1])
    return dict(out)


# --- set-up and report ---------------------------------------------------------------------------


def code_version() -> str:
    """The commit the server ran, and any uncommitted change under src/ (it runs from the tree)."""
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    files = sorted(line[3:] for line in changed if line.strip())
    return f"commit {head}" + (f" + uncommitted changes to {', '.join(files)}" if files else "")


def zone_near_noon() -> ZoneInfo:
    """A fixed-offset zone where it is about noon, so the run never crosses a local midnight
    (the quota day) or a month boundary."""
    offset = 12 - datetime.now(UTC).hour
    name = "Etc/GMT" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"
    return ZoneInfo(name)


def make_tenants(db: str, zone: ZoneInfo) -> tuple[dict[str, str], str]:
    """The soak operation with one token per kind of traffic, and the small-quota operation."""
    ctx = bootstrap.context(Settings(database_url=db))
    big = tenancy.create_operation(ctx, "soak", SERVER, zone.key, BIG_LICENSES)
    small = tenancy.create_operation(ctx, "soak-quota", SERVER, zone.key, SMALL_LICENSES)
    names = ("ingest", "billing", "info", "listing", "void", "bad", "probe")
    tokens = {name: tenancy.create_token(ctx, big, f"soak {name}", [])[1] for name in names}
    tokens["readonly"] = tenancy.create_token(ctx, big, "soak read-only", ["billing:read"])[1]
    quota_token = tenancy.create_token(ctx, small, "soak quota", [])[1]
    ctx.storage.close()
    return tokens, quota_token


def percentile(values: list[float], pct: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, math.ceil(pct / 100 * len(ordered)) - 1)]


def milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def summarise(
    soak: Soak,
    seconds: float,
    planned: float,
    samples: list[Sample],
    warmup: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per-kind rows and the RSS analysis."""
    kinds: dict[str, Any] = {}
    for name, stats in soak.kinds.items():
        kinds[name] = {
            "count": len(stats.latencies),
            "req_per_s": round(len(stats.latencies) / seconds, 3),
            "p50_ms": milliseconds(percentile(stats.latencies, 50)),
            "p99_ms": milliseconds(percentile(stats.latencies, 99)),
            "max_ms": milliseconds(max(stats.latencies, default=None)),
            "ok": stats.ok,
            "refusals": dict(stats.refusals),
            "unexpected": dict(stats.unexpected),
            "examples": stats.examples,
            "notes": dict(stats.notes),
        }
    at_warmup = min(samples, key=lambda s: abs(s.t - warmup))
    after = [s for s in samples if s.t > at_warmup.t]
    peak_after = max((s.rss_mib for s in after), default=at_warmup.rss_mib)
    warmup_peak = max(s.rss_mib for s in samples if at_warmup.t - 60 < s.t <= at_warmup.t)
    minutes = []
    last = math.ceil(planned / 60 - 1e-9)
    for m in range(1, last + 1):
        inside = [s for s in samples if 60 * (m - 1) < s.t and (m == last or s.t <= 60 * m + 1e-6)]
        if inside:
            end = inside[-1]
            minutes.append(
                {
                    "minute": m,
                    "rss_end_mib": end.rss_mib,
                    "rss_max_mib": max(s.rss_mib for s in inside),
                    "requests": soak.per_minute.get(m - 1, 0),
                    "events_stored": end.events,
                }
            )
    rss = {
        "samples": [[round(s.t, 1), round(s.rss_mib, 1)] for s in samples],
        "per_minute": minutes,
        "start_mib": samples[0].rss_mib,
        "warmup_end_mib": at_warmup.rss_mib,
        "max_after_warmup_mib": peak_after,
        "end_mib": samples[-1].rss_mib,
        "growth_after_warmup": (peak_after - at_warmup.rss_mib) / at_warmup.rss_mib,
        "warmup_last_minute_peak_mib": warmup_peak,
        "growth_peak_to_peak": (peak_after - warmup_peak) / warmup_peak,
    }
    return kinds, rss


def fmt_ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f}" if value >= 10 else f"{value:.2f}"


def markdown(report: dict[str, Any]) -> str:
    """The committed table: per kind, memory over time, the figure checks and the verdict."""
    run = report["run"]
    lines = [
        f"# Soak report ({run['backend']})",
        "",
        f"{run['started']}: {run['minutes']:g} min of mixed load on loopback "
        f"(warm-up {run['warmup_minutes']:g} min), {run['description']}; "
        f"machine: {run['machine']}; code: {run['code']}. "
        "The load generator shares the cores with the server and other work ran on the machine "
        "at the same time, so absolute latencies are noisy; latencies are client-side, "
        "request sent to reply read.",
        "",
        f"Command: `{run['command']}`",
        "",
        "| request kind | count | req/s | p50 ms | p99 ms | expected refusals | unexpected |",
        "|---|--:|--:|--:|--:|---|--:|",
    ]
    total = {"count": 0, "unexpected": 0}
    for name, row in report["kinds"].items():
        refusals = ", ".join(f"{k}: {v:,}" for k, v in sorted(row["refusals"].items())) or "–"
        unexpected = sum(row["unexpected"].values())
        total["count"] += row["count"]
        total["unexpected"] += unexpected
        lines.append(
            f"| {name} | {row['count']:,} | {row['req_per_s']:.1f} | {fmt_ms(row['p50_ms'])} | "
            f"{fmt_ms(row['p99_ms'])} | {refusals} | {unexpected:,} |"
        )
    refused = Counter[str]()
    for row in report["kinds"].values():
        refused.update(row["refusals"])
    lines.append(
        f"| **all** | **{total['count']:,}** | **{total['count'] / run['seconds']:.1f}** | | | "
        f"{sum(refused.values()):,} | **{total['unexpected']:,}** |"
    )
    lines += [
        "",
        "Expected refusals by kind: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(refused.items()))
        + ".",
    ]
    examples = [
        f"- {name}: {example}"
        for name, row in report["kinds"].items()
        for example in row["examples"]
    ]
    if examples:
        lines += ["", "Unexpected responses (first of each kind):", "", *examples]
    ing = report["ingest"]
    wrong = report["kinds"]["ingest"]["unexpected"].get("wrong body", 0)
    predicted = (
        "every acknowledged batch's counts as predicted"
        if not wrong
        else f"**{wrong} acknowledged batches with counts other than predicted**"
    )
    lines += [
        "",
        f"Ingest: {ing['batches']:,} batches, {ing['events_sent']:,} events sent "
        f"({ing['events_per_s']:,.0f}/s), {ing['accepted']:,} accepted and "
        f"{ing['duplicates']:,} duplicates, {predicted}; {ing['retries_after_failure']} "
        f"batches sent again after a failed attempt; {ing['replays']} replays of an "
        f"acknowledged batch (all duplicates), {ing['repeating_stored']} batches "
        f"repeating stored ids with other fields, {ing['repeating_own']} repeating their own ids. "
        f"Voids: {report['voids']['voided']:,} events voided. Concurrency probe: "
        f"{report['concurrency']['refused']:,} rounds refused the third request "
        f"({report['concurrency']['early']:,} probes sent before both uploads were admitted, "
        "retried); the hold row times the rest of each stalled upload. "
        f"Quota: the small operation admitted {report['quota']['admitted']:,} requests of "
        f"{report['quota']['quota']:,} before TOKEN LIMIT EXCEEDED.",
        "",
        f"Server CPU: {report['server']['cpu_percent']:.0f} % of one core on average; "
        f"server exit status after SIGTERM: {report['server']['exit_status']}.",
        "",
        "| minute | RSS MiB (end) | RSS MiB (max) | requests | events stored |",
        "|--:|--:|--:|--:|--:|",
    ]
    rss = report["rss"]
    for row in rss["per_minute"]:
        lines.append(
            f"| {row['minute']} | {row['rss_end_mib']:.1f} | {row['rss_max_mib']:.1f} | "
            f"{row['requests']:,} | {row['events_stored']:,} |"
        )
    lines += [
        "",
        f"RSS at start {rss['start_mib']:.1f} MiB, at the end of warm-up "
        f"{rss['warmup_end_mib']:.1f} MiB, highest after warm-up "
        f"{rss['max_after_warmup_mib']:.1f} MiB, at the end {rss['end_mib']:.1f} MiB: "
        f"growth after warm-up **{rss['growth_after_warmup'] * 100:.1f} %** "
        f"(sampled every {SAMPLE_SECONDS:g} s). The server gives free heap back every 15 s, so "
        f"single samples swing by several MiB; peak to peak (highest in the last warm-up minute, "
        f"{rss['warmup_last_minute_peak_mib']:.1f} MiB, against highest after) the growth is "
        f"{rss['growth_peak_to_peak'] * 100:.1f} %.",
        "",
        "| product | expected (soak's ledger) | server (billing.php) | equal |",
        "|---|--:|--:|---|",
    ]
    figures = report["figures"]
    for row in figures["products"]:
        lines.append(
            f"| {row['product']} | {row['expected']} | {row['server']} | "
            f"{'yes' if row['ok'] else '**no**'} |"
        )
    rec = report["reconciliation"]
    counters = report["server_counters"]
    lines += [
        "",
        f"Other 23 products read 0: {'yes' if figures['other_products_zero'] else '**no**'}. "
        f"Reconciliation listing ({rec['pages']} pages): {rec['listed']} against expected "
        f"{rec['expected']}: {'equal' if rec['ok'] else '**different**'}. Server counters "
        f"{counters['values']} against the soak's {counters['expected']}: "
        f"{'equal' if counters['ok'] else '**different**'}. These final checks took "
        f"{run['final_checks_s']:g} s, after the timed load.",
        "",
    ]
    verdict = report["verdict"]
    lines += [
        f"**Verdict: {'PASS' if verdict['pass'] else 'FAIL'}**: unexpected errors "
        f"{verdict['unexpected']} (criterion 0), RSS growth after warm-up "
        f"{verdict['rss_growth'] * 100:.1f} % (criterion < 10 %), figures, listing and "
        f"counters {'exact' if verdict['figures_ok'] else '**not exact**'}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup-minutes", type=float, default=2.0)
    add_backend_option(parser)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=1.0, help="scale every traffic rate")
    parser.add_argument("--out", default=str(Path(__file__).parent / "reports"))
    parser.add_argument("--keep-db", action="store_true", help="leave the database in place")
    parser.add_argument("--seed", type=int, default=20261122)
    args = parser.parse_args()
    if args.minutes <= 0 or args.warmup_minutes <= 0:
        parser.error("--minutes and --warmup-minutes must be above 0")
    if args.warmup_minutes >= args.minutes:
        args.warmup_minutes = args.minutes / 2
        print(f"soak: warm-up shortened to {args.warmup_minutes:g} min (half the run)")

    zone = zone_near_noon()
    code = code_version()
    extra: tuple[str, ...] = ("--workers", str(args.workers))
    prefix = ""
    if args.backend == "postgres":
        db = fresh_postgres()
        prefix = f"voxsoak-{uuid.uuid4().hex[:8]}"
        os.environ["VOXMETER_REDIS_PREFIX"] = prefix
        extra += ("--redis", REDIS_URL)
        description = (
            f"PostgreSQL + Redis (fresh database, Redis key prefix {prefix}), "
            f"{args.workers} worker(s)"
        )
    else:
        db = fresh_db()
        description = f"embedded SQLite, {args.workers} worker(s)"
    tokens, quota_token = make_tenants(db, zone)
    server = Server(db, args=extra).start()
    tenant = Tenant(server.base, tokens, zone, quota_token)
    ledger = Ledger(zone)
    seconds = args.minutes * 60
    started = datetime.now(UTC)
    print(
        f"soak: {args.minutes:g} min, {description}, operation timezone {zone.key}, {cpu_note()}",
        flush=True,
    )
    cpu_before = cpu_seconds(server)
    soak = Soak(seconds, args.max_requests)
    rate = args.rate
    quota_result: dict[str, Any] = {}
    samples: list[Sample] = []

    def quota_job() -> None:
        quota_result.update(quota_traffic(soak, tenant, 20 * rate, 2 * rate))

    jobs: list[Callable[[], None]] = [
        lambda: ingest_traffic(soak, tenant, ledger, 1.0 * rate, args.seed),
        lambda: billing_traffic(soak, tenant, ledger, 20 * rate),
        lambda: info_traffic(soak, tenant, 5 * rate),
        lambda: listing_traffic(soak, tenant, ledger, 2 * rate),
        lambda: void_traffic(soak, tenant, ledger, 4 * rate, args.seed + 1),
        lambda: bad_traffic(soak, tenant, ledger, 5 * rate),
        lambda: concurrency_traffic(soak, tenant, ledger, 0.5 * rate),
        quota_job,
    ]
    sampler = threading.Thread(target=sample_rss, args=(soak, server, ledger, samples))
    threads = [threading.Thread(target=job, daemon=True) for job in jobs]
    sampler.start()
    for thread in threads:
        thread.start()
    last_minute = 0
    while soak.running():
        soak.stop.wait(1.0)
        minute = int((time.monotonic() - soak.start) // 60)
        if minute > last_minute:
            last_minute = minute
            print(
                f"  minute {minute}: {soak.requests:,} requests, {ledger.acked:,} events, "
                f"RSS {server.rss_mib():.1f} MiB, unexpected {soak.unexpected()}",
                flush=True,
            )
    elapsed = time.monotonic() - soak.start
    for thread in threads:
        thread.join(timeout=120)
    sampler.join()
    if elapsed - samples[-1].t > 1:
        samples.append(Sample(elapsed, server.rss_mib(), ledger.acked, soak.requests))
    cpu_used = cpu_seconds(server) - cpu_before

    checks_started = time.monotonic()
    figures = final_figures(tenant, ledger)
    reconciliation = reconcile(tenant, ledger)
    counters = server_counters(server.base)
    probe = soak.kinds["concurrency probe"]
    quota_refused = soak.kinds["quota (small op)"].refusals[QUOTA]
    expected_counters = {
        "limit concurrency": float(probe.refusals[CONCURRENCY]),
        "limit quota": float(quota_refused),
        "ingest accepted": float(ledger.accepted_total),
        "ingest duplicate": float(ledger.duplicates_total),
        "5xx": 0.0,
    }
    counter_values = {k: counters.get(k, 0.0) for k in expected_counters}
    checks_seconds = time.monotonic() - checks_started
    server.stop()
    exit_status = server.proc.returncode if server.proc else None

    kinds, rss = summarise(soak, elapsed, seconds, samples, args.warmup_minutes * 60)
    ingest_notes = soak.kinds["ingest"].notes
    figures_ok = (
        figures["ok"]
        and reconciliation["ok"]
        and counter_values == expected_counters
        and quota_result.get("admitted") == SMALL_LICENSES * 1000
    )
    unexpected = soak.unexpected()
    growth = rss["growth_after_warmup"]
    passed = unexpected == 0 and growth < 0.10 and figures_ok and exit_status == 0
    report: dict[str, Any] = {
        "bench": "soak",
        "minutes": args.minutes,
        "requests": soak.requests,
        "unexpected": unexpected,
        "rss_growth_pct": round(growth * 100, 2),
        "passed": passed,
        "run": {
            "started": started.strftime("%Y-%m-%d %H:%M UTC"),
            "minutes": args.minutes,
            "warmup_minutes": args.warmup_minutes,
            "seconds": elapsed,
            "backend": args.backend,
            "workers": args.workers,
            "description": description,
            "timezone": zone.key,
            "machine": cpu_note(),
            "code": code,
            "command": " ".join([".venv/bin/python", "bench/soak.py", *sys.argv[1:]]),
            "rate_scale": rate,
            "final_checks_s": round(checks_seconds, 1),
        },
        "kinds": kinds,
        "ingest": {
            "batches": len(soak.kinds["ingest"].latencies)
            - ingest_notes["retries after a failed attempt"],
            "retries_after_failure": ingest_notes["retries after a failed attempt"],
            "events_sent": ingest_notes["events sent"],
            "events_per_s": ingest_notes["events sent"] / elapsed,
            "accepted": ledger.accepted_total - ledger.holds,
            "duplicates": ledger.duplicates_total,
            "replays": ingest_notes["replays of an acknowledged batch"],
            "repeating_stored": ingest_notes["batches repeating stored ids"],
            "repeating_own": ingest_notes["batches repeating their own ids"],
        },
        "voids": {"voided": len(ledger.voided)},
        "concurrency": {
            "refused": probe.refusals[CONCURRENCY],
            "early": probe.notes["probes admitted before the holds were (retried)"],
        },
        "quota": quota_result,
        "server": {"cpu_percent": 100 * cpu_used / elapsed, "exit_status": exit_status},
        "rss": rss,
        "figures": figures,
        "reconciliation": reconciliation,
        "server_counters": {
            "values": counter_values,
            "expected": expected_counters,
            "ok": counter_values == expected_counters,
        },
        "verdict": {
            "pass": passed,
            "unexpected": unexpected,
            "rss_growth": growth,
            "figures_ok": figures_ok,
            "server_exit_status": exit_status,
        },
    }
    text = markdown(report)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "soak" if args.backend == "sqlite" else f"soak-{args.backend}"
    (out / f"{stem}.md").write_text(text)
    write_json(str(out / f"{stem}.json"), report)

    if prefix:
        import redis

        with redis.Redis.from_url(REDIS_URL) as r:
            keys = list(r.scan_iter(f"{prefix}*"))
            if keys:
                r.delete(*keys)
    if not args.keep_db:
        if db.startswith("postgresql"):
            import psycopg

            admin, name = db.rsplit("/", 1)
            with psycopg.connect(admin + "/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE "{name}"')
        else:
            shutil.rmtree(Path(db.removeprefix("sqlite:///")).parent, ignore_errors=True)
    if not passed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
