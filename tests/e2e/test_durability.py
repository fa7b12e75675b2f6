"""Durability (docs/api.md, Ingest): an acknowledged batch survives kill -9; SIGTERM is graceful."""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import requests

from tests.e2e.harness import (
    Tenant,
    VoxServer,
    all_events,
    envelope_ok,
    figure_of,
    local_stamp,
    times_this_month,
    wait_for_stale_slots,
)

Event = dict[str, object]
MakeServer = Callable[..., VoxServer]
FreshDb = Callable[[str], str]
PRODUCTS = ("ivr_minutes", "interactions", "pbx_licenses", "rsync")


def _batch(rng: random.Random, prefix: str, count: int) -> list[Event]:
    events: list[Event] = []
    for i, moment in enumerate(times_this_month(rng, count)):
        product = PRODUCTS[i % len(PRODUCTS)]
        event: Event = {"id": f"{prefix}-{i}", "product": product, "time": moment}
        if product == "ivr_minutes":
            event["quantity"] = f"{rng.randint(0, 59)}.{rng.randint(0, 999_999):06d}"
        elif product == "pbx_licenses":
            event["quantity"] = rng.randint(1, 500)
        elif product == "rsync":
            event["quantity"] = f"0.{rng.randint(0, 999_999):06d}"
        events.append(event)
    return events


def _check_figures(srv: VoxServer, tenant: Tenant, sent: list[Event]) -> None:
    for product in PRODUCTS:
        assert srv.items(tenant.token, product) == figure_of(sent, product), product


def _stored_ids(srv: VoxServer, tenant: Tenant) -> set[str]:
    now = datetime.now(UTC)
    listed = all_events(
        srv,
        tenant.token,
        local_stamp(now - timedelta(days=30), "UTC"),
        local_stamp(now + timedelta(hours=1), "UTC"),
    )
    ids = [str(e["id"]) for e in listed]
    assert len(ids) == len(set(ids))
    return set(ids)


def test_kill_9_right_after_the_reply_loses_nothing(
    make_server: MakeServer, fresh_db: FreshDb
) -> None:
    db = fresh_db("durable")
    srv = make_server(db=db)
    tenant = srv.tenant()
    rng = random.Random(9)
    sent: list[Event] = []
    for round_ in range(4):
        batch = _batch(rng, f"r{round_}", 10_000)
        reply = srv.post_events(tenant.token, batch, ndjson=round_ % 2 == 1)
        assert srv.stop(signal.SIGKILL) == -signal.SIGKILL
        body = envelope_ok(reply, 200, None, "10000 events accepted")
        assert body["data"] == {"accepted": 10_000, "duplicates": 0}
        sent.extend(batch)
        srv = make_server(db=db)
        wait_for_stale_slots(srv, tenant.token)
        _check_figures(srv, tenant, sent)
    assert _stored_ids(srv, tenant) == {str(e["id"]) for e in sent}
    # Re-sending everything after the crashes: all duplicates.
    reply = srv.post_events(tenant.token, sent[:10_000])
    envelope_ok(reply, 200, None, "0 events accepted")
    _check_figures(srv, tenant, sent)


def test_kill_9_during_a_batch_stores_all_or_nothing(
    make_server: MakeServer, fresh_db: FreshDb
) -> None:
    db = fresh_db("atomic")
    srv = make_server(db=db)
    tenant = srv.tenant()
    rng = random.Random(10)
    sent: list[Event] = []
    for round_, delay in enumerate((0.0, 0.03, 0.08, 0.15)):
        batch = _batch(rng, f"a{round_}", 10_000)
        replies: list[object] = []

        def post(
            target: VoxServer = srv, batch: list[Event] = batch, replies: list[object] = replies
        ) -> None:
            try:
                replies.append(target.post_events(tenant.token, batch))
            except requests.RequestException as exc:
                replies.append(exc)

        thread = threading.Thread(target=post)
        thread.start()
        time.sleep(delay)
        srv.stop(signal.SIGKILL)
        thread.join(timeout=60)
        srv = make_server(db=db)
        wait_for_stale_slots(srv, tenant.token)
        stored = _stored_ids(srv, tenant)
        before = {str(e["id"]) for e in sent}
        complete = before | {str(e["id"]) for e in batch}
        assert stored in (before, complete), (round_, len(stored), len(before))
        reply = replies[0]
        if isinstance(reply, requests.Response) and reply.status_code == 200:
            assert stored == complete, "a 200 was sent for a batch that was not kept"
        # The client retries after the crash: the batch ends up counted exactly once.
        retry = srv.post_events(tenant.token, batch)
        assert retry.status_code == 200, retry.text
        assert retry.json()["data"] == {
            "accepted": 0 if stored == complete else 10_000,
            "duplicates": 10_000 if stored == complete else 0,
        }
        sent.extend(batch)
        _check_figures(srv, tenant, sent)


def test_sigterm_finishes_a_request_in_flight(make_server: MakeServer, fresh_db: FreshDb) -> None:
    db = fresh_db("graceful")
    srv = make_server(db=db)
    tenant = srv.tenant()
    batch = _batch(random.Random(11), "slow", 3_000)
    body = json.dumps(batch).encode()
    pieces = [body[i : i + len(body) // 10 + 1] for i in range(0, len(body), len(body) // 10 + 1)]
    assert b"".join(pieces) == body
    first_sent = threading.Event()
    signalled = threading.Event()

    def slowly() -> Iterator[bytes]:
        yield pieces[0]
        first_sent.set()
        signalled.wait(timeout=10)
        for piece in pieces[1:]:
            time.sleep(0.15)
            yield piece

    result: dict[str, object] = {}

    def post() -> None:
        try:
            result["reply"] = requests.post(
                srv.url("/api/v2/events"),
                data=slowly(),
                headers={"wolkvox-token": tenant.token, "Content-Type": "application/json"},
                timeout=60,
            )
        except requests.RequestException as exc:
            result["reply"] = exc
        result["at"] = time.monotonic()

    thread = threading.Thread(target=post)
    thread.start()
    assert first_sent.wait(timeout=10)
    time.sleep(0.3)  # the request is admitted and reading its body
    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGTERM)
    term_at = time.monotonic()
    signalled.set()
    time.sleep(0.5)
    assert srv.proc.poll() is None, "the server quit with a request in flight"
    thread.join(timeout=60)

    reply = result["reply"]
    assert isinstance(reply, requests.Response), reply
    assert float(str(result["at"])) > term_at + 1.0  # the body kept streaming after SIGTERM
    envelope_ok(reply, 200, None, "3000 events accepted")
    assert reply.json()["data"] == {"accepted": 3000, "duplicates": 0}
    code = srv.proc.wait(timeout=30)
    assert code == 0, code  # a requested stop is a clean exit for supervisors
    assert "Traceback" not in srv.log()

    restarted = make_server(db=db)
    _check_figures(restarted, tenant, batch)
    assert _stored_ids(restarted, tenant) == {str(e["id"]) for e in batch}
