"""Fault injection under sustained ingest: kill -9 of the server, Redis and PostgreSQL restarts.

Each scenario drives real `voxmeter serve` processes on loopback with two client threads sending
10,000-event batches (time-ordered ids, known Decimal quantities, every fourth batch re-sending
1,000 already acknowledged events), breaks something at random moments, and then checks what the
contract promises: every acknowledged event is stored exactly once, a batch whose outcome the
client could not know is wholly present or wholly absent, and every figure equals the exact
Decimal sum over the stored distinct events.

- sqlite-kill: embedded server; `kill -9` of its process group, restart on the same file.
- pg-kill: `--workers 2` on PostgreSQL + Redis; `kill -9` of supervisor and workers together.
- redis-restart: `--workers 2`; Redis is stopped (SIGTERM and SIGKILL alternately) and started
  empty mid-load. Meanwhile only 503 envelopes with Retry-After; afterwards the concurrency limit
  holds again and the daily quota counters are re-seeded from the database (a quiet token's
  count stays exact; the busy operation loses at most the last second of counts, as the README
  documents).
- pg-restart: `--workers 2`; PostgreSQL is stopped (fast and immediate, alternately) for a few
  seconds mid-load. Meanwhile only 503 envelopes with Retry-After or successes, within a bound;
  afterwards full service by itself.

PostgreSQL and Redis are private to the run (initdb into a temporary directory, a redis-server
without persistence, both on free ports), so the machine's own services are never touched.

    .venv/bin/python bench/faults.py --scenario all
    .venv/bin/python bench/faults.py --scenario pg-restart --rounds 3 --seed 7

Prints a markdown table, writes bench/reports/faults.md and bench/reports/faults.json, and exits
1 when any scenario fails.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from types import FrameType
from urllib.parse import urlencode

from common import cpu_note, free_port, fresh_db, make_tenant

SCENARIOS = ("sqlite-kill", "pg-kill", "redis-restart", "pg-restart")
BATCH = 10_000
RESEND = 1_000
RESEND_EVERY = 4
PRODUCTS = ("ivr_minutes", "rsync", "tts_chars", "interactions")
PAGE = 60_000
CLIENT_TIMEOUT = 30.0
HANG_BOUND = 10.0
RECOVERY_BOUND = 30.0
FLUSH_SETTLE = 2.5
"""Seconds a quiet counter needs to reach the database (each process saves them every second)."""
COUNTS_AT_RISK = 2.0
"""Seconds of request counts a Redis restart may lose (the README: "the last second")."""
ADMITTED = frozenset({200, 400, 404, 409, 413, 504})
"""Statuses of requests that passed admission and so count against the daily quota."""
BUSY = "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2)"
REPORTS = Path(__file__).resolve().parent / "reports"


# --- events ---------------------------------------------------------------------------------


def event_spec(number: int, index: int) -> tuple[str, str, int, str | None]:
    """(id, product, microseconds after the run's base time, quantity) of one event.

    Derived from (batch, index) alone, so a re-sent copy is identical and any stored event can
    be checked field by field. Batch `number` owns the second `base + number`, so listing that
    one second shows exactly what is stored of its fresh events.
    """
    key = f"fx-{number:07d}-{index:05d}"
    product = PRODUCTS[(number + index) % len(PRODUCTS)]
    k = number * 7_919 + index * 104_729
    quantity: str | None
    if product == "ivr_minutes":
        quantity = f"{k % 60}.{k % 999_983:06d}"
    elif product == "rsync":
        quantity = f"0.{k * 31 % 1_000_000:06d}"
    elif product == "tts_chars":
        quantity = str(1 + k % 5_000)
    else:
        quantity = None
    return key, product, number * 1_000_000 + index * 100, quantity


def contribution(product: str, quantity: str | None) -> Decimal:
    """What one event adds to its product's month figure (all four products are additive)."""
    value = Decimal(1) if quantity is None else Decimal(quantity)
    if product == "ivr_minutes":
        return value.to_integral_value(rounding=ROUND_CEILING)
    return value


def plain(value: Decimal) -> str:
    """A figure as the API writes `items`."""
    if value == 0:
        return "0"
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class Batch:
    """Fresh events `fx-<number>-<0..fresh-1>`, then copies of acknowledged events."""

    number: int
    fresh: int
    resent: tuple[tuple[int, int], ...]

    def specs(self) -> Iterator[tuple[str, str, int, str | None]]:
        for index in range(self.fresh):
            yield event_spec(self.number, index)
        for number, index in self.resent:
            yield event_spec(number, index)

    def fresh_ids(self) -> set[str]:
        return {event_spec(self.number, i)[0] for i in range(self.fresh)}

    def totals(self) -> dict[str, Decimal]:
        """Figure contributions of the fresh events, by product."""
        out = dict.fromkeys(PRODUCTS, Decimal(0))
        for i in range(self.fresh):
            _, product, _, quantity = event_spec(self.number, i)
            out[product] += contribution(product, quantity)
        return out

    def body(self, base: datetime) -> bytes:
        parts = []
        for key, product, offset, quantity in self.specs():
            when = (base + timedelta(microseconds=offset)).isoformat()
            extra = "" if quantity is None else f',"quantity":"{quantity}"'
            parts.append(f'{{"id":"{key}","product":"{product}","time":"{when}"{extra}}}')
        return ("[" + ",".join(parts) + "]").encode()


# --- HTTP -----------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    """0 when no reply arrived (refused, reset, timed out)."""
    body: object
    retry_after: str | None
    started: float
    ended: float
    error: str = ""
    refused: bool = False

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def envelope(self) -> bool:
        """The Wolkvox envelope with `code` equal to the status."""
        body = self.body
        return (
            isinstance(body, dict)
            and list(body)[:4] == ["code", "error", "msg", "data"]
            and body["code"] == self.status
        )

    @property
    def unavailable_ok(self) -> bool:
        """A proper 503: envelope, SERVICE UNAVAILABLE, empty data, a numeric Retry-After."""
        return (
            self.status == 503
            and self.envelope
            and isinstance(self.body, dict)
            and self.body["error"] == "SERVICE UNAVAILABLE"
            and self.body["data"] == []
            and (self.retry_after or "").isdigit()
        )

    @property
    def busy(self) -> bool:
        return self.status == 403 and isinstance(self.body, dict) and self.body.get("msg") == BUSY

    def data(self) -> dict[str, object]:
        assert isinstance(self.body, dict), self.body
        data = self.body["data"]
        assert isinstance(data, dict), self.body
        return data

    def describe(self) -> str:
        if self.status == 0:
            return f"no reply ({self.error})"
        msg = self.body.get("msg") if isinstance(self.body, dict) else str(self.body)[:120]
        return f"{self.status} {msg}"


def call(
    port: int,
    method: str,
    path: str,
    token: str | None = None,
    body: bytes | None = None,
    timeout: float = CLIENT_TIMEOUT,
) -> Reply:
    """One request on a fresh connection, so a refused connect means "never sent"."""
    headers = {"wolkvox-token": token} if token else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.monotonic()
    try:
        try:
            conn.connect()
        except ConnectionRefusedError:
            return Reply(0, None, None, started, time.monotonic(), "refused", refused=True)
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        ended = time.monotonic()
        try:
            parsed: object = json.loads(raw)
        except ValueError:
            parsed = raw[:200].decode(errors="replace")
        return Reply(response.status, parsed, response.getheader("Retry-After"), started, ended)
    except (OSError, http.client.HTTPException) as exc:
        return Reply(0, None, None, started, time.monotonic(), type(exc).__name__)
    finally:
        conn.close()


def stamp(epoch: int) -> str:
    """A listing bound (UTC operations): YYYYmmddHHiiss."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y%m%d%H%M%S")


# --- private services and server processes --------------------------------------------------


def _pg_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").iterdir(), key=lambda p: int(p.name))
    return versions[-1] / "bin"


class PrivatePostgres:
    """A PostgreSQL cluster of this run only: its own data directory, port and socket folder."""

    def __init__(self, root: Path) -> None:
        self.root = root / "pg"
        self.root.mkdir()
        shutil.chown(self.root, "postgres")
        self.data = self.root / "data"
        self.port = free_port()
        self.bin = _pg_bin()
        self.running = False
        self._as_postgres(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"
        )
        self.start()

    def _as_postgres(self, tool: str, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(self.bin / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._as_postgres(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-o",
            options,
            "-w",
            "start",
        )
        self.running = True

    def stop(self, mode: str) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        self.running = False

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        if self.running:
            with contextlib.suppress(subprocess.SubprocessError):
                self.stop("immediate")


class PrivateRedis:
    """A redis-server of this run only, without persistence: a restart starts it empty."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.log = root / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--maxmemory-policy",
                    "noeviction",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 20
        while True:
            try:
                if client.ping():
                    client.close()
                    return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise RuntimeError("private redis-server did not start") from None
                time.sleep(0.05)

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        self.proc = None

    def close(self) -> None:
        self.stop()


def _group_members(pgid: int) -> list[int]:
    """Live processes of a process group (zombies excluded)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


class ServerProcess:
    """`voxmeter serve` in a session of its own, so `kill -9` reaches every worker at once."""

    def __init__(
        self, db: str, log: Path, args: tuple[str, ...] = (), env: dict[str, str] | None = None
    ) -> None:
        self.db = db
        self.port = free_port()
        self.log = log
        self.args = args
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start and wait for /healthz; return the seconds that took."""
        started = time.monotonic()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "voxmeter",
                    "serve",
                    "--db",
                    self.db,
                    "--port",
                    str(self.port),
                    *self.args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        deadline = started + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log}")
            if call(self.port, "GET", "/healthz", timeout=2).status == 200:
                return time.monotonic() - started
            time.sleep(0.05)
        raise RuntimeError(f"server did not start; see {self.log}")

    def kill9(self) -> None:
        """SIGKILL to the whole process group, then wait until none of it is left."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _group_members(self.proc.pid):
            if time.monotonic() > deadline:
                raise RuntimeError("server processes survived kill -9")
            time.sleep(0.05)

    def stop(self) -> int | None:
        """SIGTERM (graceful); the exit status, or None if it had to be killed."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None

    def close(self) -> None:
        if self.proc is not None and (self.proc.poll() is None or _group_members(self.proc.pid)):
            self.kill9()

    def tracebacks(self) -> dict[str, int]:
        """Stack traces in the server log, by the message logged with them."""
        if not self.log.exists():
            return {}
        lines = self.log.read_text(errors="replace").splitlines()
        found: Counter[str] = Counter()
        for i, line in enumerate(lines):
            # A chained traceback follows a blank line; the first follows the logged message.
            if line.startswith("Traceback") and i and lines[i - 1].strip():
                found[lines[i - 1]] += 1
        return dict(found)


class Environment:
    """The run's temporary folder and the private services, started on first use."""

    def __init__(self, keep: bool) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="voxmeter-faults-"))
        self.root.chmod(0o755)
        self.keep = keep
        self._postgres: PrivatePostgres | None = None
        self._redis: PrivateRedis | None = None
        self.servers: list[ServerProcess] = []

    def postgres(self) -> PrivatePostgres:
        if self._postgres is None:
            self._postgres = PrivatePostgres(self.root)
        return self._postgres

    def redis(self) -> PrivateRedis:
        if self._redis is None:
            self._redis = PrivateRedis(self.root)
        return self._redis

    def server(
        self, db: str, name: str, args: tuple[str, ...] = (), env: dict[str, str] | None = None
    ) -> ServerProcess:
        srv = ServerProcess(db, self.root / f"{name}-server.log", args, env)
        self.servers.append(srv)
        return srv

    def close(self, failed: bool) -> None:
        for srv in self.servers:
            with contextlib.suppress(Exception):
                srv.close()
        if self._redis is not None:
            self._redis.close()
        if self._postgres is not None:
            self._postgres.close()
        if self.keep or failed:
            print(f"logs and databases kept in {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)


# --- one scenario's bookkeeping -------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    kind: str
    """ingest, read, health, quota, limits"""
    who: str
    """W (writer token) or R (reader token) of the main operation, or '-'"""
    started: float
    ended: float
    status: int
    unavailable_ok: bool
    detail: str


class Run:
    """Every batch sent, what became of it, and every request's outcome, for one scenario."""

    def __init__(self, port: int, base: datetime, max_batches: int) -> None:
        self.port = port
        self.base = base
        self.base_epoch = int(base.timestamp())
        self.max_batches = max_batches
        self.lock = threading.Lock()
        self.next_number = 0
        self.stored: dict[int, Batch] = {}
        """Batches known to be stored: acknowledged, or resolved and sent again."""
        self.stored_order: list[int] = []
        self.unknown: dict[int, tuple[Batch, str]] = {}
        self.totals = dict.fromkeys(PRODUCTS, Decimal(0))
        self.samples: list[Sample] = []
        self.problems: list[str] = []
        self.batches_acked = 0
        self.events_acked = 0
        self.never_sent = 0
        self.resolutions: Counter[str] = Counter()
        self.resolved_by_reason: dict[str, Counter[str]] = {}
        self.outages: list[tuple[float, float]] = []

    def problem(self, text: str) -> None:
        with self.lock:
            if len(self.problems) < 50:
                self.problems.append(text)

    def record(self, kind: str, who: str, reply: Reply) -> Reply:
        sample = Sample(
            kind,
            who,
            reply.started,
            reply.ended,
            reply.status,
            reply.unavailable_ok,
            reply.describe() if reply.status != 200 else "",
        )
        with self.lock:
            self.samples.append(sample)
        return reply

    def new_batch(self, rng: random.Random) -> Batch | None:
        with self.lock:
            number = self.next_number
            if number >= self.max_batches:
                return None
            self.next_number += 1
            if number % RESEND_EVERY == RESEND_EVERY - 1 and self.stored_order:
                source = self.stored[rng.choice(self.stored_order)]
                picked = rng.sample(range(source.fresh), RESEND)
                return Batch(number, BATCH - RESEND, tuple((source.number, i) for i in picked))
        return Batch(number, BATCH, ())

    def store(self, batch: Batch) -> None:
        """The batch is stored now: its events may be re-sent and count in the figures."""
        totals = batch.totals()
        with self.lock:
            self.stored[batch.number] = batch
            self.stored_order.append(batch.number)
            for product, value in totals.items():
                self.totals[product] += value

    def acknowledge(self, batch: Batch, reply: Reply) -> None:
        """A 200: the batch is stored; its counts must say which events were new."""
        data = reply.data()
        if (data["accepted"], data["duplicates"]) != (batch.fresh, len(batch.resent)):
            self.problem(
                f"batch {batch.number}: 200 with accepted={data['accepted']} "
                f"duplicates={data['duplicates']}, expected {batch.fresh}/{len(batch.resent)}"
            )
        self.store(batch)
        with self.lock:
            self.batches_acked += 1
            self.events_acked += batch.fresh

    def lose(self, batch: Batch, why: str) -> None:
        with self.lock:
            self.unknown[batch.number] = (batch, why)

    def drop(self) -> None:
        with self.lock:
            self.never_sent += 1

    def take_unknown(self) -> list[tuple[Batch, str]]:
        with self.lock:
            out = [self.unknown[n] for n in sorted(self.unknown)]
            self.unknown.clear()
        return out

    def samples_between(self, start: float, end: float) -> list[Sample]:
        """Requests in flight at any moment of [start, end]."""
        with self.lock:
            return [s for s in self.samples if s.started <= end and s.ended >= start]


def send_loop(run: Run, token: str, stop: threading.Event, rng: random.Random) -> None:
    """A client sending batches back to back, honouring Retry-After like a real one: a batch
    refused by the concurrency limit is sent again; any other failure leaves it unknown."""
    pending: Batch | None = None
    while not stop.is_set():
        batch = pending or run.new_batch(rng)
        pending = None
        if batch is None:
            return
        body = batch.body(run.base)
        reply = run.record("ingest", "W", call(run.port, "POST", "/api/v2/events", token, body))
        hint = reply.retry_after or ""
        wait = float(hint) if hint.isdigit() else 0.5
        if reply.status == 200:
            run.acknowledge(batch, reply)
            continue
        if reply.refused:
            run.drop()
        elif reply.busy:
            pending = batch
        else:
            run.lose(batch, reply.describe())
        stop.wait(min(wait, 2.0))
    if pending is not None:
        run.lose(pending, "403 busy, not sent again before the round ended")


def read_loop(run: Run, token: str, stop: threading.Event) -> None:
    """A dashboard-like reader: billing, token_info, a small listing, and /healthz in turn."""
    month = run.base.strftime("%Y-%m")
    window = urlencode({"date_ini": stamp(run.base_epoch), "date_end": stamp(run.base_epoch)})
    paths: list[tuple[str, str, str | None]] = [
        ("read", f"/api/v2/billing.php?api=ivr_minutes&month={month}", token),
        ("read", "/api/v2/information.php?api=token_info", token),
        ("read", f"/api/v2/events?{window}&limit=10", token),
        ("health", "/healthz", None),
    ]
    turn = 0
    while not stop.is_set():
        kind, path, tok = paths[turn % len(paths)]
        turn += 1
        run.record(
            kind, "R" if tok else "-", call(run.port, "GET", path, tok, timeout=CLIENT_TIMEOUT)
        )
        stop.wait(0.02)


@contextlib.contextmanager
def load(run: Run, writer: str, reader: str | None, seed: int) -> Iterator[threading.Event]:
    """Two senders (and optionally a reader) until the block ends."""
    stop = threading.Event()
    threads = [
        threading.Thread(target=send_loop, args=(run, writer, stop, random.Random(seed * 10 + i)))
        for i in range(2)
    ]
    if reader is not None:
        threads.append(threading.Thread(target=read_loop, args=(run, reader, stop)))
    for thread in threads:
        thread.start()
    try:
        yield stop
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=CLIENT_TIMEOUT + 10)


def until_ok(
    run: Run,
    kind: str,
    who: str,
    method: str,
    path: str,
    token: str,
    body: bytes | None = None,
    seconds: float = 60.0,
) -> Reply:
    """Retry transient refusals (503, busy, no reply) like a client would, within a bound."""
    deadline = time.monotonic() + seconds
    while True:
        reply = run.record(kind, who, call(run.port, method, path, token, body))
        if reply.status == 200:
            return reply
        transient = reply.status in (0, 503) or reply.busy
        if not transient or time.monotonic() > deadline:
            raise RuntimeError(f"{method} {path.split('?')[0]}: {reply.describe()}")
        time.sleep(0.2)


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


# --- results --------------------------------------------------------------------------------


@dataclass
class Result:
    scenario: str
    backend: str
    rounds: int = 0
    batches_acked: int = 0
    events_acked: int = 0
    unknown_batches: int = 0
    unknown_present: int = 0
    unknown_absent: int = 0
    unknown_partial: int = 0
    unknown_resolved_by_reason: dict[str, dict[str, int]] = field(default_factory=dict)
    batches_never_sent: int = 0
    stored_events: int = 0
    duplicates: int = 0
    missing: int = 0
    figures_exact: bool = False
    responses: dict[str, int] = field(default_factory=dict)
    responses_during_faults: dict[str, int] = field(default_factory=dict)
    max_latency_during_fault_s: float | None = None
    recovery_s: list[float] = field(default_factory=list)
    restart_s: list[float] = field(default_factory=list)
    limits: dict[str, object] = field(default_factory=dict)
    server_tracebacks: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    passed: bool = False
    reason: str = ""
    problems: list[str] = field(default_factory=list)

    def count(self, run: Run) -> None:
        self.batches_acked = run.batches_acked
        self.events_acked = run.events_acked
        self.unknown_present = run.resolutions["present"]
        self.unknown_absent = run.resolutions["absent"]
        self.unknown_partial = run.resolutions["partial"]
        self.unknown_batches = sum(run.resolutions.values())
        self.unknown_resolved_by_reason = {k: dict(v) for k, v in run.resolved_by_reason.items()}
        self.batches_never_sent = run.never_sent
        with run.lock:
            samples = list(run.samples)
        self.responses = dict(Counter(_status_key(s) for s in samples))

    def finish(self, run: Run, verdict: Verdict) -> None:
        self.count(run)
        self.stored_events = verdict.stored
        self.duplicates = verdict.duplicates
        self.missing = verdict.missing
        self.figures_exact = verdict.figures_exact
        self.problems = list(run.problems)
        self.passed = not self.problems
        self.reason = "all checks hold" if self.passed else self.problems[0]


def _status_key(sample: Sample) -> str:
    if sample.status == 0:
        return "refused" if "refused" in sample.detail else "no reply"
    if sample.status == 403 and ("SIMULTANEOUS" in sample.detail or "LIMIT" in sample.detail):
        return "403 limit"
    return str(sample.status)


def base_time() -> tuple[datetime, int]:
    """Event time 0 of a scenario and how many batches fit between it and now (one second each)."""
    now = datetime.now(UTC).replace(microsecond=0)
    month_start = now.replace(day=1, hour=0, minute=0, second=0)
    base = max(month_start + timedelta(seconds=1), now - timedelta(hours=6))
    room = int((now - base).total_seconds()) - 120
    if room < 600:
        raise SystemExit(
            "too early in the month for the event-time windows; run after 00:15 UTC on the 1st"
        )
    return base, room


# --- scenarios ------------------------------------------------------------------------------


@dataclass
class Options:
    rounds: int
    seed: int
    down: float
    max_seconds: float


def wait_admitted(run: Run, token: str, who: str) -> float:
    """Seconds until a read on `token` is admitted (after a kill -9 the dead processes' slots
    stay taken until their leases expire, as the README says)."""
    started = time.monotonic()
    deadline = started + RECOVERY_BOUND
    month = run.base.strftime("%Y-%m")
    while True:
        reply = run.record(
            "read",
            who,
            call(run.port, "GET", f"/api/v2/billing.php?api=rsync&month={month}", token),
        )
        if reply.status == 200:
            return time.monotonic() - started
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"not admitted {RECOVERY_BOUND:.0f} s after restart: {reply.describe()}"
            )
        time.sleep(0.1)


def kill_scenario(name: str, env: Environment, opts: Options) -> Result:
    """Repeated kill -9 of the whole server during sustained ingest; restart on the same data."""
    scaled = name == "pg-kill"
    result = Result(name, "PostgreSQL + Redis, 2 workers" if scaled else "SQLite, embedded")
    started = time.monotonic()
    if scaled:
        db = env.postgres().create_database("faults_kill")
        args: tuple[str, ...] = ("--redis", env.redis().url, "--workers", "2")
        extra_env = {"VOXMETER_REDIS_PREFIX": "faults-kill"}
    else:
        db = fresh_db(str(env.root / "sqlite"))
        args, extra_env = (), {}
    writer, reader = make_tenant(db, "faults", tokens=2)
    server = env.server(db, name, args, extra_env)
    base, room = base_time()
    run = Run(server.port, base, room)
    rng = random.Random(opts.seed)
    try:
        for round_ in range(opts.rounds + 1):
            booted = server.start()
            admitted = wait_admitted(run, writer, "W")
            if round_:
                result.restart_s.append(round(booted, 3))
                result.recovery_s.append(round(booted + admitted, 3))
            resolve_unknown(run, writer, reader)
            check_figures(run, reader)
            last = round_ == opts.rounds or time.monotonic() - started > opts.max_seconds
            if last:
                break
            with load(run, writer, None, opts.seed + round_):
                time.sleep(rng.uniform(0.3, 4.0))
                server.kill9()
            result.rounds += 1
        verdict = verify(run, reader)
        code = server.stop()
        if code != 0:
            run.problem(f"graceful stop exited {code}")
    except RuntimeError as exc:
        run.problem(str(exc))
        verdict = Verdict()
    result.server_tracebacks = server.tracebacks()
    if result.rounds < opts.rounds:
        run.problem(f"only {result.rounds} of {opts.rounds} rounds within {opts.max_seconds:.0f} s")
    _unexpected(run, busy_ok=scaled)
    result.finish(run, verdict)
    result.seconds = round(time.monotonic() - started, 1)
    return result


def _unexpected(
    run: Run, windows: list[tuple[float, float]] | None = None, busy_ok: bool = False
) -> None:
    """Outside the fault windows every reply is a 200 (never a 500), but for the slots of killed
    processes that stay taken until their leases expire, when `busy_ok`."""
    with run.lock:
        samples = list(run.samples)
    for sample in samples:
        if any(s <= sample.ended and sample.started <= e for s, e in windows or []):
            continue
        if sample.status in (0, 200) or sample.kind in ("limits", "quota"):
            continue  # no reply: the kill itself, resolved above; limits are checked on their own
        if busy_ok and sample.status == 403 and "SIMULTANEOUS" in sample.detail:
            continue
        run.problem(f"{sample.kind} got {sample.detail} outside any fault")
        return


def outage_checks(run: Run, result: Result) -> None:
    """While a component was down: only proper 503s or successes, healthz up, no hang."""
    during: Counter[str] = Counter()
    worst = 0.0
    for down, up in run.outages:
        for sample in run.samples_between(down, up):
            during[_status_key(sample)] += 1
            worst = max(worst, sample.ended - sample.started)
            if sample.kind == "health":
                if sample.status != 200:
                    run.problem(f"/healthz answered {sample.detail} during the outage")
            elif sample.status == 503:
                if not sample.unavailable_ok:
                    run.problem(f"a 503 without the envelope or Retry-After: {sample.detail}")
            elif sample.status != 200:
                run.problem(f"{sample.kind} got {sample.detail} during the outage")
            if sample.ended - sample.started > HANG_BOUND:
                run.problem(
                    f"{sample.kind} took {sample.ended - sample.started:.1f} s during the outage"
                )
    result.responses_during_faults = dict(during)
    result.max_latency_during_fault_s = round(worst, 3)


def wait_recovered(run: Run, since: float) -> float:
    """Seconds from `since` until both an ingest and a read succeeded, started after it."""
    deadline = since + RECOVERY_BOUND
    while time.monotonic() < deadline:
        done: dict[str, float] = {}
        with run.lock:
            for sample in run.samples:
                if (
                    sample.started >= since
                    and sample.status == 200
                    and sample.kind in ("ingest", "read")
                ):
                    done[sample.kind] = min(done.get(sample.kind, sample.ended), sample.ended)
        if len(done) == 2:
            return max(done.values()) - since
        time.sleep(0.1)
    run.problem(f"service did not resume within {RECOVERY_BOUND:.0f} s")
    return RECOVERY_BOUND


def token_info(run: Run, token: str, kind: str, who: str) -> tuple[int, int]:
    reply = until_ok(run, kind, who, "GET", "/api/v2/information.php?api=token_info", token)
    assert isinstance(reply.body, dict)
    row = reply.body["data"][0]
    return int(row["token_use_today"]), int(row["all_token_today"])


def three_in_flight(run: Run, token: str, round_: int) -> list[int]:
    """Two ingests on one token hold their slots (bodies still streaming) while a third request
    arrives: the statuses of the two ingests and the third, which must be the one refused."""
    import requests

    release = threading.Event()
    replies: list[int] = []

    def slow_post(index: int) -> None:
        key, product, offset, quantity = event_spec(900_000 + round_, index)
        when = (run.base + timedelta(microseconds=offset % 1_000_000)).isoformat()
        event = {"id": key, "product": product, "time": when, "quantity": quantity or "1"}
        payload = json.dumps([event]).encode()

        def chunks() -> Iterator[bytes]:
            yield payload[:1]
            release.wait(timeout=20)
            yield payload[1:]

        try:
            reply = requests.post(
                f"http://127.0.0.1:{run.port}/api/v2/events",
                data=chunks(),
                headers={"wolkvox-token": token, "Content-Type": "application/json"},
                timeout=CLIENT_TIMEOUT,
            )
            replies.append(reply.status_code)
        except requests.RequestException:
            replies.append(0)

    threads = [threading.Thread(target=slow_post, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.7)
    third = run.record("limits", "-", call(run.port, "GET", "/api/v2/billing.php?api=rsync", token))
    release.set()
    for thread in threads:
        thread.join(timeout=CLIENT_TIMEOUT)
    if not (third.busy and third.retry_after == "1"):
        run.problem(
            f"round {round_}: a third request in flight got {third.describe()}, "
            "not the concurrency 403"
        )
    if sorted(replies) != [200, 200]:
        run.problem(f"round {round_}: the two requests holding slots got {replies}")
    return [*replies, third.status]


def outage_scenario(name: str, env: Environment, opts: Options) -> Result:
    """Redis or PostgreSQL goes away for a few seconds, repeatedly, under sustained load."""
    redis_case = name == "redis-restart"
    result = Result(name, "PostgreSQL + Redis, 2 workers")
    started = time.monotonic()
    pg, cache = env.postgres(), env.redis()
    db = pg.create_database("faults_" + name.replace("-", "_"))
    writer, reader = make_tenant(db, "faults", tokens=2)
    concurrency = make_tenant(db, "limits", tokens=1)[0]
    quota_token = make_tenant(db, "quota", licenses=1, tokens=1)[0]  # 1,000 requests a day
    server = env.server(
        db,
        name,
        ("--redis", cache.url, "--workers", "2"),
        {"VOXMETER_REDIS_PREFIX": "faults-" + name},
    )
    base, room = base_time()
    run = Run(server.port, base, room)
    rng = random.Random(opts.seed)
    quota_checks: list[str] = []
    concurrency_checks: list[list[int]] = []
    at_risk = ambiguous = 0
    try:
        result.restart_s.append(round(server.start(), 3))
        wait_admitted(run, writer, "W")
        if redis_case:
            wait_admitted(run, quota_token, "-")
            three_in_flight(run, concurrency, -1)
        with load(run, writer, reader, opts.seed):
            for round_ in range(opts.rounds):
                if time.monotonic() - started > opts.max_seconds:
                    break
                load_for = rng.uniform(1.5, 3.0)
                if redis_case:
                    for _ in range(100):
                        until_ok(
                            run, "quota", "-", "GET", "/api/v2/billing.php?api=rsync", quota_token
                        )
                    before = token_info(run, quota_token, "quota", "-")
                    load_for = max(load_for, FLUSH_SETTLE)
                time.sleep(load_for)
                down = time.monotonic()
                if redis_case:
                    cache.stop(signal.SIGKILL if round_ % 2 else signal.SIGTERM)
                else:
                    pg.stop("immediate" if round_ % 2 else "fast")
                time.sleep(opts.down)
                if redis_case:
                    cache.start()
                else:
                    pg.start()
                up = time.monotonic()
                run.outages.append((down, up))
                result.recovery_s.append(round(wait_recovered(run, up), 3))
                result.rounds += 1
                if redis_case:
                    after = token_info(run, quota_token, "quota", "-")
                    exact = after == (before[0] + 1, before[1] + 1)
                    quota_checks.append(f"{before[1]}->{after[1]}")
                    if not exact:
                        run.problem(
                            f"round {round_}: quiet token's counts {before} became {after} "
                            "after the Redis restart, not +1"
                        )
                    concurrency_checks.append(three_in_flight(run, concurrency, round_))
                    at_risk += _admitted_main(run, down - COUNTS_AT_RISK, down)
                    ambiguous += _ambiguous_main(run, down - COUNTS_AT_RISK, down)
        resolve_unknown(run, writer, reader)
        verdict = verify(run, reader)
        if redis_case:
            result.limits = _final_limits(run, reader, quota_token, at_risk, ambiguous)
            result.limits["quiet_token_counts"] = quota_checks
            result.limits["three_in_flight"] = concurrency_checks
        code = server.stop()
        if code != 0:
            run.problem(f"graceful stop exited {code}")
    except RuntimeError as exc:
        run.problem(str(exc))
        verdict = Verdict()
    outage_checks(run, result)
    windows = [(d, u + r) for (d, u), r in zip(run.outages, result.recovery_s, strict=False)]
    _unexpected(run, windows)
    result.server_tracebacks = server.tracebacks()
    if result.rounds < opts.rounds:
        run.problem(f"only {result.rounds} of {opts.rounds} rounds within {opts.max_seconds:.0f} s")
    result.finish(run, verdict)
    result.seconds = round(time.monotonic() - started, 1)
    return result


def _admitted_main(run: Run, start: float, end: float) -> int:
    """Main-operation requests started in [start, end] that were admitted (counted)."""
    with run.lock:
        return sum(
            1
            for s in run.samples
            if s.who in ("W", "R") and start <= s.started <= end and s.status in ADMITTED
        )


def _ambiguous_main(run: Run, start: float, end: float) -> int:
    """Main-operation requests whose admission the client cannot know (no reply, or a 503 that
    may have followed an admission)."""
    with run.lock:
        return sum(
            1
            for s in run.samples
            if s.who in ("W", "R") and start <= s.started <= end and s.status in (0, 503)
        )


def _final_limits(
    run: Run, reader: str, quota_token: str, at_risk: int, ambiguous: int
) -> dict[str, object]:
    """After the restarts: the busy operation's counter lost at most the requests admitted in
    the last seconds before each restart (the README: "the last second of counts"; `ambiguous`
    are replies that cannot tell whether they were counted), and the small operation's quota
    ends exactly at 1,000."""
    _, counted = token_info(run, reader, "read", "R")
    with run.lock:
        admitted = sum(1 for s in run.samples if s.who in ("W", "R") and s.status in ADMITTED)
    deficit = admitted - counted
    if not -ambiguous <= deficit <= at_risk + ambiguous:
        run.problem(
            f"operation counter {counted} vs {admitted} admitted: "
            f"deficit {deficit} outside [{-ambiguous}, {at_risk + ambiguous}]"
        )
    _, used = token_info(run, quota_token, "quota", "-")
    granted = 0
    refused: Reply | None = None
    for _ in range(1_100):
        reply = run.record(
            "quota", "-", call(run.port, "GET", "/api/v2/billing.php?api=rsync", quota_token)
        )
        if reply.status == 200:
            granted += 1
            continue
        refused = reply
        break
    quota_ok = (
        refused is not None
        and refused.status == 403
        and isinstance(refused.body, dict)
        and refused.body.get("msg") == "TOKEN LIMIT EXCEEDED"
        and (refused.retry_after or "").isdigit()
        and granted == 1_000 - used
    )
    if not quota_ok:
        run.problem(
            f"quota: {used} used, then {granted} granted before "
            f"{refused.describe() if refused else 'no refusal'}; expected {1_000 - used}"
        )
    return {
        "main_operation_admitted": admitted,
        "main_operation_counted": counted,
        "counts_lost": deficit,
        "admitted_in_the_last_2_s_before_restarts": at_risk,
        "ambiguous_replies_before_restarts": ambiguous,
        "quota_used_before_final_check": used,
        "quota_granted_until_refused": granted,
        "quota_exact": quota_ok,
    }


# --- report ---------------------------------------------------------------------------------


def _cell_statuses(counts: dict[str, int]) -> str:
    """200 / 503 / 403 limit / no reply (refused included) / anything else."""
    named = ("200", "503", "403 limit")
    lost = counts.get("no reply", 0) + counts.get("refused", 0)
    other = sum(counts.values()) - sum(counts.get(k, 0) for k in named) - lost
    return " / ".join(f"{n:,}" for n in (*(counts.get(k, 0) for k in named), lost, other))


def table(results: list[Result]) -> str:
    head = (
        "| scenario | backend | rounds | batches acked | events acked | unknown batches "
        "(present/absent/partial) | duplicates | missing | figures exact | responses "
        "200 / 503 / 403 limit / no reply / other | max latency in fault (s) "
        "| recovery (s, max) | result |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for r in results:
        latency = (
            "-" if r.max_latency_during_fault_s is None else f"{r.max_latency_during_fault_s:.2f}"
        )
        recovery = f"{max(r.recovery_s):.2f}" if r.recovery_s else "-"
        verdict = "PASS" if r.passed else f"FAIL: {r.reason}"
        rows.append(
            f"| {r.scenario} | {r.backend} | {r.rounds} | {r.batches_acked:,} | {r.events_acked:,} "
            f"| {r.unknown_batches} ({r.unknown_present}/{r.unknown_absent}/{r.unknown_partial}) "
            f"| {r.duplicates} | {r.missing} | {'yes' if r.figures_exact else 'no'} "
            f"| {_cell_statuses(r.responses)} | {latency} | {recovery} | {verdict} |"
        )
    return head + "\n".join(rows) + "\n"


def details(r: Result) -> str:
    lines = [
        f"### {r.scenario}",
        "",
        f"- {r.seconds:.0f} s; {r.rounds} rounds; {r.stored_events:,} events stored at the end; "
        f"{r.batches_never_sent} batches never sent (connection refused while the server was down)",
        f"- responses by status: {dict(sorted(r.responses.items()))}",
    ]
    if r.restart_s:
        lines.append(f"- server start to /healthz (s): {r.restart_s}")
    if r.responses_during_faults:
        lines.append(
            "- responses in flight during the faults: "
            f"{dict(sorted(r.responses_during_faults.items()))}"
        )
    if r.unknown_resolved_by_reason:
        lines.append(f"- unknown-outcome batches by cause: {r.unknown_resolved_by_reason}")
    if r.recovery_s:
        lines.append(f"- recovery (s): {r.recovery_s}")
    if r.limits:
        lines.append(f"- limits: {json.dumps(r.limits)}")
    lines.append(f"- stack traces in the server log, by message: {r.server_tracebacks or 'none'}")
    for problem in r.problems[:10]:
        lines.append(f"- problem: {problem}")
    return "\n".join(lines) + "\n"


def write_reports(results: list[Result], command: str, started: datetime) -> str:
    text = table(results)
    passed = all(r.passed for r in results)
    REPORTS.mkdir(parents=True, exist_ok=True)
    md = [
        "# Fault injection",
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC on {cpu_note()}: `{command}`. "
        "Recovery: for kills, from starting the server again to its first admitted request "
        "(in the scaled-out mode this includes waiting for the killed processes' slot leases, "
        "up to 5 s, as the README documents); for outages, from the component's return to the "
        "first successful ingest and read (the senders honour Retry-After, so ingest resumes up "
        "to a second late). Responses count every request the script made; '403 limit' are, in "
        "pg-kill, reads polling while those leases expire, and in redis-restart the deliberate "
        "third request of each concurrency check plus the final quota refusal. Unknown batches "
        "are those without a 200 (no reply at the kill, or a 503): each is looked up in its own "
        "second of event time, then sent again, as a client would.",
        "",
        text,
        *(details(r) for r in results),
        f"Overall: {'PASS' if passed else 'FAIL'}",
        "",
    ]
    (REPORTS / "faults.md").write_text("\n".join(md))
    payload = {
        "report": "faults",
        "generated": started.isoformat(),
        "command": command,
        "machine": cpu_note(),
        "passed": passed,
        "scenarios": [asdict(r) for r in results],
    }
    (REPORTS / "faults.json").write_text(json.dumps(payload, indent=2) + "\n")
    return text


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", choices=["all", *SCENARIOS], default="all")
    parser.add_argument("--rounds", type=int, default=5, help="kills or outages per scenario")
    parser.add_argument("--seed", type=int, default=1, help="kill moments and re-sent events")
    parser.add_argument("--down", type=float, default=3.0, help="seconds a component stays down")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="bound per scenario")
    parser.add_argument("--keep", action="store_true", help="keep logs and databases")
    args = parser.parse_args()
    opts = Options(args.rounds, args.seed, args.down, args.max_seconds)
    chosen = SCENARIOS if args.scenario == "all" else (args.scenario,)
    runners: dict[str, Callable[[str, Environment, Options], Result]] = {
        "sqlite-kill": kill_scenario,
        "pg-kill": kill_scenario,
        "redis-restart": outage_scenario,
        "pg-restart": outage_scenario,
    }
    signal.signal(signal.SIGTERM, _interrupt)
    started = datetime.now(UTC)
    env = Environment(args.keep)
    results: list[Result] = []
    failed = True
    try:
        for name in chosen:
            print(f"{name}: running", flush=True)
            results.append(runners[name](name, env, opts))
            print(
                f"{name}: {'PASS' if results[-1].passed else 'FAIL: ' + results[-1].reason}",
                flush=True,
            )
        failed = not all(r.passed for r in results)
    finally:
        env.close(failed)
    command = "bench/faults.py " + " ".join(sys.argv[1:])
    print(write_reports(results, command.strip(), started))
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
