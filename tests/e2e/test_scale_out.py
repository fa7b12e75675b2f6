"""Scaled-out mode (README, Scaled out): several `voxmeter serve` processes on one PostgreSQL
and one Redis give the same figures and limits as one embedded server, survive a killed worker,
stop gracefully, and answer 503 while PostgreSQL or Redis is unreachable, recovering by
themselves."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.backends import REDIS_URL, pg_query, pg_schema, pg_url, redis_prefix, schema_of
from tests.e2e.harness import (
    SlowPosts,
    Tenant,
    VoxServer,
    envelope_ok,
    figure_of,
    free_port,
    token_info,
)
from tests.proxy import CuttableProxy

Event = dict[str, object]
BUSY = "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2)"
PRODUCTS = ("ivr_minutes", "tts_chars", "interactions", "rec_minutes")


class Cluster:
    """Servers sharing one fresh PostgreSQL schema and one Redis key prefix."""

    def __init__(self, db: str, prefix: str, folder: Path) -> None:
        self.db = db
        self.prefix = prefix
        self.folder = folder
        self.servers: list[VoxServer] = []

    def start(
        self,
        *args: str,
        db: str | None = None,
        redis: str = REDIS_URL,
        env: dict[str, str] | None = None,
    ) -> VoxServer:
        srv = VoxServer(
            db=db or self.db,
            port=free_port(),
            args=("--redis", redis, *args),
            env={"VOXMETER_REDIS_PREFIX": self.prefix, **(env or {})},
        )
        self.servers.append(srv.start(self.folder))
        return srv

    def stop(self) -> None:
        for srv in self.servers:
            srv.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with pg_schema() as db, redis_prefix() as prefix:
        group = Cluster(db, prefix, tmp_path)
        yield group
        group.stop()


def _event(event_id: str) -> Event:
    """The same id always describes the same event, so any copy may be the first."""
    rng = random.Random(event_id)
    product = PRODUCTS[rng.randrange(len(PRODUCTS))]
    when = datetime.now(UTC) - timedelta(seconds=rng.randrange(1, 3600))
    event: Event = {"id": event_id, "product": product, "time": when.isoformat()}
    if product != "interactions":
        event["quantity"] = f"{rng.randrange(1, 500)}.{rng.randrange(0, 1000):03d}"
    return event


def _accepted(reply: requests.Response) -> tuple[int, int]:
    assert reply.status_code == 200, reply.text
    data = reply.json()["data"]
    return int(data["accepted"]), int(data["duplicates"])


def test_overlapping_batches_through_two_processes_are_counted_once(cluster: Cluster) -> None:
    a = cluster.start()
    b = cluster.start("--workers", "2")
    tenant = a.tenant()
    tokens = [tenant.token] + [a.token_for(tenant.name).token for _ in range(3)]
    pool = [f"shared-{i}" for i in range(6_000)]
    totals = [0, 0]
    sent: list[int] = []
    lock = threading.Lock()
    failures: list[str] = []

    def client(index: int) -> None:
        rng = random.Random(index)
        for round_ in range(6):
            ids = rng.sample(pool, 2_000)
            target = (a, b)[(index + round_) % 2]
            reply = target.post_events(tokens[index], [_event(i) for i in ids])
            if reply.status_code != 200:
                failures.append(reply.text)
                return
            accepted, duplicates = _accepted(reply)
            with lock:
                totals[0] += accepted
                totals[1] += duplicates
                sent.append(len(ids))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures[:3]
    assert len(sent) == 24
    assert totals[0] + totals[1] == sum(sent)

    # Exactly the distinct ids were stored, and every process shows the same exact figures.
    stored = {f"shared-{i}" for i in range(6_000)} & {str(e["id"]) for e in _listing(a, tenant)}
    assert totals[0] == len(stored)
    events = [_event(i) for i in sorted(stored)]
    for srv in (a, b):
        for product in PRODUCTS:
            reply = srv.billing(tenant.token, product)
            assert reply.status_code == 200, reply.text
            assert str(reply.json()["data"][0]["items"]) == figure_of(events, product), product
    # Re-sending everything through the other process: all duplicates.
    again = b.post_events(tokens[0], events[:5_000])
    assert _accepted(again) == (0, 5_000)


def _listing(srv: VoxServer, tenant: Tenant) -> list[Event]:
    from tests.e2e.harness import all_events, local_stamp

    now = datetime.now(UTC)
    return all_events(
        srv,
        tenant.token,
        local_stamp(now - timedelta(days=1), "UTC"),
        local_stamp(now + timedelta(minutes=5), "UTC"),
    )


def test_three_requests_in_flight_over_processes_get_exactly_one_403(cluster: Cluster) -> None:
    a = cluster.start()
    b = cluster.start()
    tenant = a.tenant()
    with (
        SlowPosts(a, tenant.token, [[_event("slow-a1")], [_event("slow-a2")]]) as on_a,
        SlowPosts(b, tenant.token, [[_event("slow-b1")]]) as on_b,
    ):
        time.sleep(1.0)  # all three are admitted or refused by now
        replies = on_a.release() + on_b.release()
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [200, 200, 403], [r.text for r in replies]
    refused = next(r for r in replies if r.status_code == 403)
    envelope_ok(refused, 403, "FORBIDDEN", BUSY)
    assert refused.headers.get("Retry-After") == "1"
    # The slots were given back in both processes.
    for srv in (a, b, a):
        assert srv.billing(tenant.token, "ivr_minutes").status_code == 200


def test_daily_quota_is_exact_across_processes(cluster: Cluster) -> None:
    a = cluster.start()
    b = cluster.start("--workers", "2")
    tenant = a.tenant(licenses=1)  # 1,000 requests a day for the whole operation
    tokens = [tenant.token] + [a.token_for(tenant.name).token for _ in range(3)]
    statuses: list[int] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        session = requests.Session()
        for n in range(300):
            target = (a, b)[(index + n) % 2]
            reply = session.get(
                target.url("/api/v2/billing.php"),
                params={"api": "ivr_minutes"},
                headers={"wolkvox-token": tokens[index]},
                timeout=30,
            )
            with lock:
                statuses.append(reply.status_code)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(statuses) == 1_200
    assert statuses.count(200) == 1_000
    assert statuses.count(403) == 200
    info = b.get("/api/v2/information.php", tokens[1], params={"api": "token_info"})
    assert info.status_code == 403  # the quota is spent for every token, in every process


def test_two_databases_on_one_redis_and_prefix_keep_their_own_limits(cluster: Cluster) -> None:
    """A fresh database whose operation ids restart at 1, beside another one on the same Redis
    under the same prefix, with the same tenant and token (as a copy of its tables would have):
    neither sees the other's in-flight slots nor its day's requests."""
    with pg_schema() as other_db:
        a = cluster.start()
        b = cluster.start(db=other_db)
        tenant = a.tenant(licenses=1)  # 1,000 requests a day
        b.tenant(licenses=1, name=tenant.name)  # the same operation name, in the other database
        first, second = schema_of(a.db), schema_of(other_db)
        copied = pg_query(
            other_db,
            f'INSERT INTO "{second}".tokens SELECT * FROM "{first}".tokens WHERE id = %s'
            " RETURNING id",
            (tenant.token_id,),
        )
        assert copied == [(tenant.token_id,)]
        for db in (a.db, other_db):
            assert pg_query(db, "SELECT id FROM operations WHERE name = %s", (tenant.name,)) == [
                (1,)
            ]

        # In-flight slots: the token holds both of its slots on the first deployment...
        with SlowPosts(a, tenant.token, [[_event("slow-1")], [_event("slow-2")]]) as slow:
            time.sleep(1.0)  # both are admitted by now
            envelope_ok(a.billing(tenant.token, "ivr_minutes"), 403, "FORBIDDEN", BUSY)
            # ...and the same token of the second deployment is not busy.
            assert b.billing(tenant.token, "ivr_minutes").status_code == 200
            assert all(r.status_code == 200 for r in slow.release())

        # The daily quota: the first deployment's operation 1 spends its 1,000 requests...
        session = requests.Session()
        used = int(token_info(a, tenant.token)["all_token_today"])  # this request included
        for _ in range(1000 - used):
            reply = session.get(
                a.url("/api/v2/billing.php"),
                params={"api": "ivr_minutes"},
                headers={"wolkvox-token": tenant.token},
                timeout=30,
            )
            assert reply.status_code == 200, reply.text
        envelope_ok(
            a.billing(tenant.token, "ivr_minutes"), 403, "FORBIDDEN", "TOKEN LIMIT EXCEEDED"
        )
        # ...while the second deployment's operation 1 has used only its own two requests.
        info = token_info(b, tenant.token)
        assert (info["all_token_today"], info["available_consumption_options"]) == ("2", "998")


def _worker_pids(srv: VoxServer) -> list[int]:
    assert srv.proc is not None
    out = subprocess.run(
        ["pgrep", "-P", str(srv.proc.pid)], capture_output=True, text=True, check=False
    ).stdout
    return [int(pid) for pid in out.split() if _is_worker(int(pid))]


def _is_worker(pid: int) -> bool:
    """A uvicorn worker, not multiprocessing's resource tracker."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"resource_tracker" not in cmdline


def _wait_for_workers(srv: VoxServer, count: int, exclude: set[int] = frozenset()) -> list[int]:  # type: ignore[assignment]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = [p for p in _worker_pids(srv) if p not in exclude]
        if len(pids) >= count:
            return pids
        time.sleep(0.1)
    raise AssertionError(f"workers did not start: {_worker_pids(srv)}\n{srv.log()}")


def _billing_requests(srv: VoxServer) -> float:
    """`voxmeter_requests_total` of the billing route in one scrape."""
    reply = requests.get(srv.url("/metrics"), timeout=10)
    assert reply.status_code == 200, reply.text
    return sum(
        sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
        if sample.name == "voxmeter_requests_total" and sample.labels.get("route") == "billing"
    )


@contextmanager
def _only_the_other_worker(stopped: int) -> Iterator[None]:
    """Every new connection goes to the other worker while this one is stopped (SIGSTOP): the
    workers share one listening socket, and a stopped process accepts nothing."""
    os.kill(stopped, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(stopped, signal.SIGCONT)


def _wait_for_startups(srv: VoxServer, count: int) -> None:
    """Until `count` workers have finished starting (each then serves the shared socket)."""
    deadline = time.monotonic() + 30
    while srv.log().count("Application startup complete.") < count:
        assert time.monotonic() < deadline, srv.log()
        time.sleep(0.05)


def test_one_scrape_sums_the_counters_of_every_worker(cluster: Cluster, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = tmp / f"voxmeter-metrics-{gone.pid}-left"  # a killed supervisor's directory
    stale.mkdir()
    (stale / "counter_1.db").write_bytes(b"")
    srv = cluster.start("--workers", "2", env={"TMPDIR": str(tmp)})
    tenant = srv.tenant(licenses=3)
    first, second = _wait_for_workers(srv, 2)
    _wait_for_startups(srv, 2)

    # 30 requests served by the second worker only, then 50 by the first only: on new
    # connections, each accepted by whichever worker is running.
    for stopped, count in ((first, 30), (second, 50)):
        with _only_the_other_worker(stopped):
            for _ in range(count):
                assert srv.billing(tenant.token, "ivr_minutes").status_code == 200
    # Each worker's scrape reports both workers' requests.
    for stopped in (first, second, first, second):
        with _only_the_other_worker(stopped):
            assert _billing_requests(srv) == 80
    assert _billing_requests(srv) == 80

    # A worker killed and replaced: its requests stay in the sum, and the new one adds its own.
    assert srv.proc is not None
    [folder] = tmp.glob(f"voxmeter-metrics-{srv.proc.pid}-*")
    assert {f"counter_{first}.db", f"counter_{second}.db"} <= {p.name for p in folder.iterdir()}
    os.kill(first, signal.SIGKILL)
    [third] = [p for p in _wait_for_workers(srv, 2, exclude={first}) if p != second]
    _wait_for_startups(srv, 3)
    with _only_the_other_worker(second):
        for _ in range(5):
            assert srv.billing(tenant.token, "ivr_minutes").status_code == 200
        assert _billing_requests(srv) == 85
    with _only_the_other_worker(third):
        assert _billing_requests(srv) == 85

    # The directory is the server's own: a dead supervisor's was removed at start, and this one
    # goes at stop.
    assert not stale.exists()
    assert srv.stop() == 0
    assert not folder.exists()


def test_kill_9_of_a_worker_loses_no_acknowledged_event(cluster: Cluster) -> None:
    srv = cluster.start("--workers", "2")
    tenant = srv.tenant()
    first = _wait_for_workers(srv, 2)
    sent: list[Event] = []
    killed: set[int] = set()
    for round_ in range(4):
        batch = [_event(f"k{round_}-{i}") for i in range(5_000)]
        assert _accepted(srv.post_events(tenant.token, batch)) == (5_000, 0)
        sent += batch
        victim = next(p for p in _worker_pids(srv) if p not in killed)
        subprocess.run(["kill", "-9", str(victim)], check=True)
        killed.add(victim)
    _wait_for_workers(srv, 2, exclude=killed)
    assert set(first) & killed
    for product in PRODUCTS:
        assert srv.items(tenant.token, product) == figure_of(sent, product)
    assert _accepted(srv.post_events(tenant.token, sent[:10_000])) == (0, 10_000)


def test_sigterm_lets_in_flight_requests_finish_and_takes_no_new_ones(cluster: Cluster) -> None:
    srv = cluster.start("--workers", "2")
    tenant = srv.tenant()
    _wait_for_workers(srv, 2)
    with SlowPosts(srv, tenant.token, [[_event("in-flight")]]) as slow:
        time.sleep(0.5)
        assert srv.proc is not None
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        # No new request is taken: the connection is refused, or queued unanswered until the
        # listening socket closes with the last process.
        with pytest.raises((requests.ConnectionError, requests.Timeout)):
            requests.get(srv.url("/healthz"), timeout=2)
        (reply,) = slow.release()
    assert _accepted(reply) == (1, 0)
    assert srv.proc.wait(timeout=30) == 0
    assert "Traceback" not in srv.log()
    again = cluster.start()
    assert again.items(tenant.token, "ivr_minutes") == figure_of(
        [_event("in-flight")], "ivr_minutes"
    )


SERVICE_UNAVAILABLE = "SERVICE UNAVAILABLE"


def _stamp(offset_seconds: int) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_seconds)).strftime("%Y%m%d%H%M%S")


def _unavailable(reply: requests.Response) -> None:
    body = envelope_ok(reply, 503, SERVICE_UNAVAILABLE, reply.json()["msg"])
    assert body["data"] == []
    assert reply.headers.get("Retry-After", "").isdigit()


def _until_ok(call: object, seconds: float = 15.0) -> requests.Response:
    deadline = time.monotonic() + seconds
    while True:
        reply = call()  # type: ignore[operator]
        if reply.status_code == 200 or time.monotonic() > deadline:
            return reply  # type: ignore[no-any-return]
        time.sleep(0.2)


def test_postgresql_outage_is_a_503_and_service_resumes_by_itself(cluster: Cluster) -> None:
    proxy = CuttableProxy(("127.0.0.1", 5432))
    try:
        srv = cluster.start(db=pg_url(schema_of(cluster.db), port=proxy.port))
        tenant = srv.tenant()
        assert _accepted(srv.post_events(tenant.token, [_event("before")])) == (1, 0)
        proxy.cut()
        started = time.monotonic()
        _unavailable(srv.post_events(tenant.token, [_event("during")]))
        _unavailable(srv.billing(tenant.token, "ivr_minutes"))
        window = {"date_ini": _stamp(-3600), "date_end": _stamp(60)}
        _unavailable(srv.get("/api/v2/events", tenant.token, params=window))
        assert time.monotonic() - started < 15, "an outage must not hang requests"
        assert requests.get(srv.url("/healthz"), timeout=5).status_code == 200
        proxy.restore()
        reply = _until_ok(lambda: srv.post_events(tenant.token, [_event("after")]))
        assert _accepted(reply) == (1, 0)
        stored = [_event("before"), _event("after")]
        for product in PRODUCTS:
            assert srv.items(tenant.token, product) == figure_of(stored, product)
        assert "Traceback" not in srv.log()
    finally:
        proxy.close()


def test_redis_outage_is_a_503_and_limits_resume_by_themselves(cluster: Cluster) -> None:
    proxy = CuttableProxy(("127.0.0.1", 6379))
    try:
        srv = cluster.start(redis=f"redis://127.0.0.1:{proxy.port}/0")
        tenant = srv.tenant()
        assert srv.billing(tenant.token, "ivr_minutes").status_code == 200
        proxy.cut()
        started = time.monotonic()
        _unavailable(srv.billing(tenant.token, "ivr_minutes"))
        _unavailable(srv.post_events(tenant.token, [_event("during")]))
        assert time.monotonic() - started < 10, "an outage must not hang requests"
        proxy.restore()
        assert _until_ok(lambda: srv.billing(tenant.token, "ivr_minutes")).status_code == 200
        assert _accepted(srv.post_events(tenant.token, [_event("after")])) == (1, 0)
        # Limits work again: a third request in flight is refused.
        with SlowPosts(srv, tenant.token, [[_event("s1")], [_event("s2")]]) as slow:
            time.sleep(0.7)
            envelope_ok(srv.billing(tenant.token, "ivr_minutes"), 403, "FORBIDDEN", BUSY)
            assert [r.status_code for r in slow.release()] == [200, 200]
        assert "Traceback" not in srv.log()
    finally:
        proxy.close()


def test_a_write_acknowledged_by_one_process_is_read_at_once_by_another(
    cluster: Cluster,
) -> None:
    """Replies cached by the other process are never sent once a write was acknowledged:
    every read right after each acknowledged batch shows it, whichever process answers."""
    a = cluster.start()
    b = cluster.start("--workers", "2")
    tenant = a.tenant()
    reader = a.token_for(tenant.name).token
    for srv in (a, b, b, b):  # a's and every worker of b's cache the reply (token resolved)
        assert srv.items(reader, "ivr_minutes") == "0"
    now = datetime.now(UTC)
    sent: list[Event] = []
    for n in range(12):
        event: Event = {
            "id": f"ryw-{n}",
            "product": "ivr_minutes",
            "time": (now - timedelta(seconds=n + 1)).isoformat(),
            "quantity": f"{n + 1}.25",
        }
        writer, other = (a, b) if n % 2 == 0 else (b, a)
        assert _accepted(writer.post_events(tenant.token, [event])) == (1, 0)
        sent.append(event)
        expected = figure_of(sent, "ivr_minutes")
        for srv in (other, other, writer):
            assert srv.items(reader, "ivr_minutes") == expected, n


def test_a_batch_ingested_by_the_cli_reaches_cached_replies(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The CLI writes straight to the database (no server, no Redis): a process whose reply
    was cached sees the batch through the database's change notification."""
    a = cluster.start()
    tenant = a.tenant()
    for _ in range(3):
        assert a.items(tenant.token, "ivr_minutes") == "0"
    when = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    batch = tmp_path / "batch.ndjson"
    batch.write_text(
        f'{{"id": "cli-1", "product": "ivr_minutes", "time": "{when}", "quantity": "2.5"}}\n'
    )
    a.cli("ingest", "--operation", tenant.name, str(batch))
    expected = figure_of([json.loads(batch.read_text())], "ivr_minutes")
    deadline = time.monotonic() + 10
    while a.items(tenant.token, "ivr_minutes") != expected:
        assert time.monotonic() < deadline, "the cached reply was never dropped"
        time.sleep(0.05)
    # and never sent again (the reply cached before the batch is gone, not just bypassed)
    assert {a.items(tenant.token, "ivr_minutes") for _ in range(30)} == {expected}


def test_cached_replies_are_refused_while_two_slow_requests_hold_the_slots(
    cluster: Cluster,
) -> None:
    a = cluster.start()
    b = cluster.start()
    tenant = a.tenant()
    for _ in range(3):
        assert b.items(tenant.token, "ivr_minutes") == "0"  # cached in b
    with SlowPosts(a, tenant.token, [[_event("hold-1")], [_event("hold-2")]]) as held:
        time.sleep(1.0)  # both admitted by now
        for srv in (b, a):
            refused = srv.billing(tenant.token, "ivr_minutes")
            envelope_ok(refused, 403, "FORBIDDEN", BUSY)
        replies = held.release()
    assert [r.status_code for r in replies] == [200, 200]
    assert b.billing(tenant.token, "ivr_minutes").status_code == 200
