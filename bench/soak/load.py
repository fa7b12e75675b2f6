"""The load: one paced client thread per kind of traffic, every reply recorded by kind."""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from bench.soak.judge import (
    OK,
    PARAMETERS,
    UNKNOWN_API,
    Outcome,
    Refusal,
    bad,
    body_of,
    expect_ok,
    expect_refusal,
    judge_refusal,
    unexpected_status,
)
from bench.soak.ledger import (
    BIG_LICENSES,
    CONCURRENCY,
    CONCURRENCY_MSG,
    INVALID_TOKEN,
    NO_TOKEN,
    PLAIN_DECIMAL,
    QUOTA,
    READ_APIS,
    SMALL_LICENSES,
    SUM_PRODUCTS,
    UNKNOWN_ID,
    JsonDict,
    Ledger,
    event_json,
    event_of,
    soak_id,
)

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
