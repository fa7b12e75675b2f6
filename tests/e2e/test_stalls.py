"""A stalled or unreachable backing service holds up only the requests that need it: while Redis
hangs (as under `CLIENT PAUSE`) or PostgreSQL refuses connections, `/healthz` keeps answering
at once, the requests that need the missing service get the 503 envelope within that service's
timeout, and the counter flush catches up as soon as the service is back."""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from tests.backends import REDIS_URL, pg_schema, pg_url, redis_prefix, schema_of
from tests.e2e.harness import VoxServer, free_port, token_info, uses_today
from tests.proxy import CuttableProxy

pytestmark = pytest.mark.serial  # p99 latencies and timeouts under load: measured alone

HEALTHZ_P99 = 0.050
"""Seconds: /healthz does no I/O, so nothing but the machine should slow it down."""
REDIS_TIMEOUT = 1.0
"""The limiter's connect and reply timeout (RedisLimiter's default)."""
PG_CONNECT_TIMEOUT = 3.0
"""The PostgreSQL adapter's connect timeout."""
SLACK = 1.0
"""Seconds allowed on top of a timeout for the reply to travel on a busy machine."""
SERVICE_UNAVAILABLE = "SERVICE UNAVAILABLE"

Call = Callable[[], requests.Response]


class Load:
    """Threads sending requests one after another (a short pause between them, so the load
    is waiting clients rather than a CPU hog) until the block ends, keeping each reply with the
    seconds it took."""

    def __init__(self, calls: list[Call]) -> None:
        self.calls = calls
        self.replies: list[tuple[float, requests.Response]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(c,)) for c in calls]

    def _run(self, call: Call) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            reply = call()
            with self._lock:
                self.replies.append((time.perf_counter() - started, reply))
            time.sleep(0.02)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def healthz_p99(srv: VoxServer, seconds: float) -> tuple[float, int]:
    """The 99th percentile of /healthz reply times over `seconds` of one request every 10 ms,
    and how many were timed."""
    times: list[float] = []
    with requests.Session() as session:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            reply = session.get(srv.url("/healthz"), timeout=30)
            times.append(time.perf_counter() - started)
            assert reply.status_code == 200, reply.text
            time.sleep(0.01)
    times.sort()
    return times[math.ceil(0.99 * len(times)) - 1], len(times)


def assert_unavailable_in_time(load: Load, timeout: float) -> None:
    assert load.replies, "no request finished while the service was stalled"
    for seconds, reply in load.replies:
        assert reply.status_code == 503, reply.text
        body = reply.json()
        assert body["error"] == SERVICE_UNAVAILABLE, body
        assert body["data"] == [], body
        assert reply.headers.get("Retry-After", "").isdigit(), reply.headers
        assert seconds < timeout + SLACK, f"a 503 took {seconds:.2f} s"


def wait_for_flush(srv: VoxServer, token: str, token_id: str, seconds: float = 10.0) -> int:
    """Wait until the stored request count of the token (what the counter flush writes)
    reaches the limiter's live count, read once (that read is the token's last request);
    return it."""
    live = int(token_info(srv, token)["token_use_today"])
    deadline = time.monotonic() + seconds
    while True:
        stored = uses_today(srv, token_id)
        if stored == live or time.monotonic() > deadline:
            assert stored == live, f"flushed {stored}, counted {live}"
            return stored
        time.sleep(0.2)


@pytest.fixture
def schema() -> Iterator[str]:
    with pg_schema() as db:
        yield db


@pytest.fixture
def prefix() -> Iterator[str]:
    with redis_prefix() as name:
        yield name


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Callable[..., VoxServer]]:
    servers: list[VoxServer] = []

    def start(db: str, *args: str, env: dict[str, str] | None = None) -> VoxServer:
        srv = VoxServer(db=db, port=free_port(), args=args, env=env or {})
        servers.append(srv.start(tmp_path))
        return srv

    yield start
    for srv in servers:
        srv.stop()


def test_a_stalled_redis_holds_up_only_the_requests_that_need_it(
    schema: str, prefix: str, started: Callable[..., VoxServer]
) -> None:
    proxy = CuttableProxy(("127.0.0.1", 6379))
    try:
        srv = started(
            schema,
            "--redis",
            f"redis://127.0.0.1:{proxy.port}/0",
            env={"VOXMETER_REDIS_PREFIX": prefix},
        )
        tenants = [srv.tenant(), srv.tenant()]
        for tenant in tenants:
            assert srv.billing(tenant.token, "all").status_code == 200
        proxy.stall()
        calls = [lambda t=t: srv.billing(t.token, "all") for t in tenants for _ in range(2)]
        with Load(calls) as load:
            time.sleep(0.3)  # every load thread is waiting on Redis
            p99, timed = healthz_p99(srv, 2.5)
        proxy.restore()
        assert p99 < HEALTHZ_P99, f"/healthz p99 {p99 * 1000:.0f} ms over {timed} requests"
        assert_unavailable_in_time(load, REDIS_TIMEOUT)
        # Back to normal, and the request counts reach the database right after.
        for tenant in tenants:
            assert srv.billing(tenant.token, "all").status_code == 200
            assert wait_for_flush(srv, tenant.token, tenant.token_id) >= 2
        assert "Traceback" not in srv.log()
    finally:
        proxy.close()


@pytest.mark.parametrize("shared_limits", [True, False], ids=["redis", "in-process limits"])
def test_unreachable_postgresql_holds_up_only_the_requests_that_need_it(
    schema: str, prefix: str, started: Callable[..., VoxServer], shared_limits: bool
) -> None:
    proxy = CuttableProxy(("127.0.0.1", 5432))
    try:
        args = ("--redis", REDIS_URL) if shared_limits else ()
        srv = started(
            pg_url(schema_of(schema), port=proxy.port),
            *args,
            env={"VOXMETER_REDIS_PREFIX": prefix},
        )
        tenant = srv.tenant()
        assert srv.billing(tenant.token, "all").status_code == 200
        window = {"date_ini": "20200101000000", "date_end": "20200102000000"}
        proxy.cut()
        calls: list[Call] = [
            lambda: srv.billing(tenant.token, "all"),
            lambda: srv.get("/api/v2/events", tenant.token, params=window),
        ]
        with Load(calls) as load:
            time.sleep(0.3)
            p99, timed = healthz_p99(srv, 2.5)
        assert p99 < HEALTHZ_P99, f"/healthz p99 {p99 * 1000:.0f} ms over {timed} requests"
        assert_unavailable_in_time(load, PG_CONNECT_TIMEOUT)
        proxy.restore()
        deadline = time.monotonic() + 15
        while srv.billing(tenant.token, "all").status_code != 200:
            assert time.monotonic() < deadline, "service did not resume"
            time.sleep(0.2)
        # Admissions counted during the outage (in memory, or in Redis) are flushed right after.
        assert wait_for_flush(srv, tenant.token, tenant.token_id) >= 2
        assert "Traceback" not in srv.log()
    finally:
        proxy.close()


def test_embedded_server_keeps_answering_while_another_process_holds_the_write_lock(
    tmp_path: Path, started: Callable[..., VoxServer]
) -> None:
    """SQLite has no outage, but another process (a CLI command, a backup) may hold the write
    lock: reads, admissions of tokens not yet seen and /healthz go on, writes and the counter
    flush wait for the lock and complete right after."""
    path = tmp_path / "embedded.db"
    srv = started(f"sqlite:///{path}")
    seen, unseen = srv.tenant(), srv.tenant()
    assert srv.billing(seen.token, "all").status_code == 200
    now = datetime.now(UTC).isoformat()
    event = {"id": "held-1", "product": "interactions", "time": now}
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        calls: list[Call] = [
            lambda: srv.billing(seen.token, "all"),
            lambda: srv.get("/api/v2/information.php", seen.token, params={"api": "token_info"}),
        ]
        with Load(calls) as load:
            time.sleep(0.3)
            first_use = srv.billing(unseen.token, "all")
            p99, timed = healthz_p99(srv, 2.5)
        assert p99 < HEALTHZ_P99, f"/healthz p99 {p99 * 1000:.0f} ms over {timed} requests"
        assert first_use.status_code == 200, first_use.text
        assert load.replies
        assert all(reply.status_code == 200 for _, reply in load.replies)
        writing: list[requests.Response] = []
        post = threading.Thread(target=lambda: writing.append(srv.post_events(seen.token, [event])))
        post.start()
        time.sleep(0.5)
        assert not writing, "a write went through while another process held the lock"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    post.join(timeout=30)
    assert writing, "the write did not complete once the lock was free"
    assert writing[0].status_code == 200, writing[0].text
    assert wait_for_flush(srv, seen.token, seen.token_id) >= 3
    assert wait_for_flush(srv, unseen.token, unseen.token_id) >= 2
    assert "Traceback" not in srv.log()
