"""Event ingest over HTTP (docs/api.md, Ingest): formats, the envelope, batch size, dedupe and
figures."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.e2e.harness import (
    SPEC_CATALOG,
    Tenant,
    VoxServer,
    accepted_msg,
    all_events,
    envelope_ok,
    figure_of,
    local_stamp,
    plain,
    times_this_month,
)
from tests.e2e.inprocess import AppServer

Event = dict[str, object]


def _uid(prefix: str = "ev") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def _now() -> str:
    return (datetime.now(UTC) - timedelta(seconds=1)).isoformat()


def _accepted(reply: requests.Response, accepted: int, duplicates: int) -> None:
    body = envelope_ok(reply, 200, None, accepted_msg(accepted))
    assert body["data"] == {"accepted": accepted, "duplicates": duplicates}


def _listed(server: VoxServer, tenant: Tenant, product: str | None = None) -> list[Event]:
    """Every event of this operation from the last 30 days (the listing is capped at 31)."""
    now = datetime.now(UTC)
    extra = {"product": product} if product else {}
    return all_events(
        server,
        tenant.token,
        local_stamp(now - timedelta(days=30), "UTC"),
        local_stamp(now + timedelta(minutes=10), "UTC"),
        **extra,
    )


@pytest.fixture(scope="module")
def server(app_server: AppServer) -> AppServer:
    """Ingest cases need no separate process: the app runs in this one (inprocess.py)."""
    return app_server


def test_json_array_reply_envelope_and_figure(server: VoxServer) -> None:
    tenant = server.tenant()
    events: list[Event] = [
        {"id": _uid(), "product": "ivr_minutes", "time": _now(), "quantity": "0.1"},
        {"id": _uid(), "product": "ivr_minutes", "time": _now(), "quantity": 2},
        {"id": _uid(), "product": "ivr_minutes", "time": _now(), "quantity": "2.01"},
    ]
    reply = server.post_events(tenant.token, events)
    assert reply.headers["content-type"].startswith("application/json")
    body = envelope_ok(reply, 200, None, "3 events accepted")
    assert body == {
        "code": 200,
        "error": None,
        "msg": "3 events accepted",
        "data": {"accepted": 3, "duplicates": 0},
    }
    # 0.1 -> 1, 2 -> 2, 2.01 -> 3
    assert server.items(tenant.token, "ivr_minutes") == "6"


def test_ndjson_body(server: VoxServer) -> None:
    tenant = server.tenant()
    events: list[Event] = [
        {"id": _uid(), "product": "rsync", "time": _now(), "quantity": "1.25"},
        {"id": _uid(), "product": "rsync", "time": _now(), "quantity": 0.000001},
        {"id": _uid(), "product": "interactions", "time": _now()},
        {"id": _uid(), "product": "interactions", "time": _now(), "quantity": 4},
    ]
    _accepted(server.post_events(tenant.token, events, ndjson=True), 4, 0)
    assert server.items(tenant.token, "rsync") == "1.250001"
    assert server.items(tenant.token, "interactions") == "5"


def test_ndjson_with_trailing_newline_and_crlf(server: VoxServer) -> None:
    tenant = server.tenant()
    lines = [
        json.dumps({"id": _uid(), "product": "tts_chars", "time": _now(), "quantity": 100}),
        json.dumps({"id": _uid(), "product": "tts_chars", "time": _now(), "quantity": "23"}),
    ]
    body = ("\r\n".join(lines) + "\r\n").encode()
    reply = server.post(
        "/api/v2/events",
        data=body,
        headers={"wolkvox-token": tenant.token, "Content-Type": "application/x-ndjson"},
        timeout=30,
    )
    _accepted(reply, 2, 0)
    assert server.items(tenant.token, "tts_chars") == "123"


def test_content_type_with_charset_parameter(server: VoxServer) -> None:
    tenant = server.tenant()
    event = {"id": _uid(), "product": "vision", "time": _now()}
    reply = server.post_events(
        tenant.token, [event], headers={"Content-Type": "application/json; charset=utf-8"}
    )
    _accepted(reply, 1, 0)
    assert server.items(tenant.token, "vision") == "1"


def test_exactly_ten_thousand_events_in_one_request(server: VoxServer) -> None:
    tenant = server.tenant()
    rng = random.Random(10_000)
    times = times_this_month(rng, 10_000)
    events: list[Event] = [
        {
            "id": f"big-{i}",
            "product": "ivr_minutes",
            "time": times[i],
            "quantity": str(Decimal(rng.randint(1, 9_999_999)).scaleb(-rng.randint(0, 6))),
        }
        for i in range(10_000)
    ]
    _accepted(server.post_events(tenant.token, events), 10_000, 0)
    expected = sum(
        (Decimal(str(e["quantity"])).to_integral_value(ROUND_CEILING) for e in events),
        Decimal(0),
    )
    assert server.items(tenant.token, "ivr_minutes") == plain(expected)
    listed = _listed(server, tenant, "ivr_minutes")
    assert sorted(e["id"] for e in listed) == sorted(e["id"] for e in events)


def test_resending_a_batch_is_all_duplicates_and_changes_nothing(server: VoxServer) -> None:
    tenant = server.tenant()
    rng = random.Random(7)
    events: list[Event] = [
        {"id": _uid(), "product": "rec_minutes", "time": t, "quantity": str(rng.randint(1, 500))}
        for t in times_this_month(rng, 300)
    ]
    _accepted(server.post_events(tenant.token, events), 300, 0)
    before = server.items(tenant.token, "rec_minutes")
    assert before == figure_of(events, "rec_minutes")
    for ndjson in (False, True, False):
        _accepted(server.post_events(tenant.token, events, ndjson=ndjson), 0, 300)
        assert server.items(tenant.token, "rec_minutes") == before
    assert len(_listed(server, tenant)) == 300


def test_overlapping_batches_count_each_id_once(server: VoxServer) -> None:
    tenant = server.tenant()
    rng = random.Random(42)
    times = times_this_month(rng, 150)
    events: list[Event] = [
        {
            "id": f"ov-{i}",
            "product": "speech_analytics",
            "time": times[i],
            "quantity": f"{rng.randint(0, 300)}.{rng.randint(0, 999):03d}",
        }
        for i in range(150)
    ]
    _accepted(server.post_events(tenant.token, events[:100]), 100, 0)
    _accepted(server.post_events(tenant.token, events[50:]), 50, 50)
    _accepted(server.post_events(tenant.token, events[25:125], ndjson=True), 0, 100)
    assert server.items(tenant.token, "speech_analytics") == figure_of(events, "speech_analytics")
    assert sorted(e["id"] for e in _listed(server, tenant)) == sorted(str(e["id"]) for e in events)


def test_one_id_sent_a_thousand_times_counts_once(server: VoxServer) -> None:
    tenant = server.tenant()
    rng = random.Random(1000)
    times = times_this_month(rng, 1000)
    copies: list[Event] = [
        {
            "id": "the-one",
            "product": "video_call",
            "time": t,
            "quantity": f"{rng.randint(0, 90)}.{rng.randint(0, 999_999):06d}",
        }
        for t in times
    ]
    # 500 copies in one batch, then the other 500 one request per 50 copies.
    _accepted(server.post_events(tenant.token, copies[:500]), 1, 499)
    for start in range(500, 1000, 50):
        _accepted(server.post_events(tenant.token, copies[start : start + 50]), 0, 50)
    first = Decimal(str(copies[0]["quantity"]))
    assert server.items(tenant.token, "video_call") == plain(first.to_integral_value(ROUND_CEILING))
    listed = _listed(server, tenant)
    assert len(listed) == 1
    assert listed[0]["id"] == "the-one"
    assert Decimal(str(listed[0]["quantity"])) == first
    assert datetime.fromisoformat(str(listed[0]["time"])) == datetime.fromisoformat(times[0])


def test_count_product_id_repeated_counts_once(server: VoxServer) -> None:
    tenant = server.tenant()
    rng = random.Random(99)
    copies: list[Event] = [
        {"id": "call-1", "product": "interactions", "time": t} for t in times_this_month(rng, 1000)
    ]
    _accepted(server.post_events(tenant.token, copies, ndjson=True), 1, 999)
    assert server.items(tenant.token, "interactions") == "1"


def test_first_copy_wins_across_requests(server: VoxServer) -> None:
    tenant = server.tenant()
    original = {"id": "dup", "product": "rsync", "time": _now(), "quantity": "3.5"}
    _accepted(server.post_events(tenant.token, [original]), 1, 0)
    later = [
        {"id": "dup", "product": "rsync", "time": _now(), "quantity": "900"},
        {"id": "dup", "product": "tts_chars", "time": _now(), "quantity": "7"},
        {"id": "dup", "product": "pbx_licenses", "time": _now(), "quantity": "40"},
    ]
    _accepted(server.post_events(tenant.token, later), 0, 3)
    assert server.items(tenant.token, "rsync") == "3.5"
    assert server.items(tenant.token, "tts_chars") == "0"
    assert server.items(tenant.token, "pbx_licenses") == "0"
    listed = _listed(server, tenant)
    assert [(e["id"], e["product"], e["quantity"]) for e in listed] == [("dup", "rsync", "3.5")]


def test_first_copy_wins_within_one_batch(server: VoxServer) -> None:
    tenant = server.tenant()
    batch = [
        {"id": "x", "product": "amazon_s3", "time": _now(), "quantity": "2.5"},
        {"id": "y", "product": "amazon_s3", "time": _now(), "quantity": "1"},
        {"id": "x", "product": "amazon_s3", "time": _now(), "quantity": "99"},
    ]
    _accepted(server.post_events(tenant.token, batch), 2, 1)
    assert server.items(tenant.token, "amazon_s3") == "2.5"


def test_every_accepted_batch_is_visible_at_once(make_server: Callable[..., VoxServer]) -> None:
    server = make_server()  # a real process: the batches and reads share one keep-alive connection
    tenant = server.tenant(licenses=2)
    rng = random.Random(5)
    sent: list[Event] = []
    with requests.Session() as session:
        for round_ in range(25):
            batch = [
                {
                    "id": _uid(f"vis{round_}"),
                    "product": "rec_screen",
                    "time": _now(),
                    "quantity": f"{rng.randint(0, 5)}.{rng.randint(0, 99):02d}",
                }
                for _ in range(rng.randint(1, 40))
            ]
            reply = session.post(
                server.url("/api/v2/events"),
                data=json.dumps(batch),
                headers={"wolkvox-token": tenant.token, "Content-Type": "application/json"},
                timeout=30,
            )
            _accepted(reply, len(batch), 0)
            sent.extend(batch)
            billing = session.get(
                server.url("/api/v2/billing.php"),
                params={"api": "rec_screen"},
                headers={"wolkvox-token": tenant.token},
                timeout=30,
            )
            assert billing.status_code == 200, billing.text
            assert billing.json()["data"][0]["items"] == figure_of(sent, "rec_screen"), round_


def test_realistic_mix_over_several_products(server: VoxServer) -> None:
    tenant = server.tenant(timezone="America/Bogota", licenses=2)
    rng = random.Random(2026)
    products = {
        "ivr_minutes": lambda: f"{rng.randint(0, 45)}.{rng.randint(0, 999_999):06d}",
        "rec_minutes": lambda: str(rng.randint(0, 30)),
        "rsync": lambda: f"{rng.randint(0, 4)}.{rng.randint(0, 999):03d}",
        "tts_chars": lambda: rng.randint(1, 5000),
        "interactions": lambda: None,
        "ivr_calls": lambda: rng.randint(1, 3),
        "pbx_licenses": lambda: rng.randint(5, 60),
        "amazon_s3": lambda: f"{rng.randint(10, 99)}.{rng.randint(0, 99):02d}",
    }
    times = times_this_month(rng, 2400, "America/Bogota")
    events: list[Event] = []
    for i, time in enumerate(times):
        product = rng.choice(list(products))
        event: Event = {"id": f"mix-{i}", "product": product, "time": time}
        quantity = products[product]()
        if quantity is not None:
            event["quantity"] = quantity
        if rng.random() < 0.2:
            event["subject"] = f"agent-{rng.randint(1, 30)}"
        if rng.random() < 0.5:
            # The same instant written in UTC: the month is the operation's (Bogota) month.
            event["time"] = datetime.fromisoformat(time).astimezone(UTC).isoformat()
        events.append(event)

    # Retries: some events are sent again (same id, other quantity) in later batches.
    def retry(event: Event) -> Event:
        return dict(event, quantity="12345") if "quantity" in event else dict(event, quantity=7)

    early = [retry(e) for e in rng.sample(events[:800], 100)]
    late = [retry(e) for e in rng.sample(events, 100)]
    batches = [events[:800], events[800:1600] + early, events[1600:], late]
    accepted = duplicates = 0
    for n, batch in enumerate(batches):
        reply = server.post_events(tenant.token, batch, ndjson=n % 2 == 1)
        assert reply.status_code == 200, reply.text
        accepted += reply.json()["data"]["accepted"]
        duplicates += reply.json()["data"]["duplicates"]
    assert (accepted, duplicates) == (2400, 200)

    for product in products:
        assert server.items(tenant.token, product) == figure_of(events, product), product
    rows = envelope_ok(
        server.billing(tenant.token, "all"), 200, None, "Information found for the current month"
    )["data"]
    assert [row["description"] for row in rows] == [title for _, title, _ in SPEC_CATALOG]
    for row, (api, _, _) in zip(rows, SPEC_CATALOG, strict=True):
        assert row["items"] == figure_of(events, api), api
        assert row["operation"] == tenant.name


def test_month_follows_the_operation_timezone(server: VoxServer) -> None:
    """An instant just after local midnight on the 1st belongs to the new local month."""
    tenant = server.tenant(timezone="Asia/Kathmandu")
    local_start = datetime.now(ZoneInfo("Asia/Kathmandu")).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    # Written in UTC (the previous day, 18:15Z): still this month in Kathmandu (+05:45).
    at = local_start.astimezone(UTC)
    event = {"id": _uid(), "product": "rsync", "time": at.isoformat(), "quantity": "4.5"}
    _accepted(server.post_events(tenant.token, [event]), 1, 0)
    assert server.items(tenant.token, "rsync") == "4.5"


def test_quantity_and_time_notations(server: VoxServer) -> None:
    """JSON numbers in any notation, decimal strings, RFC 3339 offsets and fractions."""
    tenant = server.tenant()
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    stamp = base.strftime("%Y-%m-%dT%H:%M:%S")
    kathmandu = base.astimezone(ZoneInfo("Asia/Kathmandu")).isoformat()
    ahead = (base + timedelta(minutes=6)).isoformat()  # 4 minutes ahead of now: allowed
    rows = [
        ("n1", f"{stamp}Z", "1e2"),
        ("n2", f"{stamp}.5Z", "2.5E-1"),
        ("n3", f"{stamp}+00:00", '"3.10"'),
        ("n4", f"{stamp}.123Z", "0"),
        ("n5", f"{stamp}Z", '"0.000001"'),
        ("n6", kathmandu, "0.1"),
        ("n7", ahead, '"7"'),
    ]
    body = (
        "["
        + ",".join(
            f'{{"id": "{i}", "product": "rsync", "time": "{t}", "quantity": {q}}}'
            for i, t, q in rows
        )
        + "]"
    )
    reply = server.post(
        "/api/v2/events",
        data=body.encode(),
        headers={"wolkvox-token": tenant.token, "Content-Type": "application/json"},
        timeout=30,
    )
    _accepted(reply, 7, 0)
    expected = sum(Decimal(q) for q in ["1e2", "2.5E-1", "3.10", "0", "0.000001", "0.1", "7"])
    assert expected == Decimal("110.450001")
    assert server.items(tenant.token, "rsync") == "110.450001"
    listed = {e["id"]: e for e in _listed(server, tenant)}
    assert listed["n1"]["quantity"] == "100"
    assert listed["n3"]["quantity"] == "3.1"
    assert listed["n4"]["quantity"] == "0"
    assert datetime.fromisoformat(str(listed["n6"]["time"])) == base


def test_concurrent_copies_of_one_batch_are_counted_once(server: VoxServer) -> None:
    """Four clients (four tokens of one operation) send the same batch at the same moment."""
    import threading

    tenant = server.tenant()
    tokens = [tenant.token] + [server.token_for(tenant.name).token for _ in range(3)]
    rng = random.Random(4)
    batch: list[Event] = [
        {"id": f"cc-{i}", "product": "stereo_rec", "time": t, "quantity": str(rng.randint(1, 9))}
        for i, t in enumerate(times_this_month(rng, 3000))
    ]
    start = threading.Barrier(len(tokens))
    replies: list[requests.Response] = []
    lock = threading.Lock()

    def send(token: str) -> None:
        start.wait(timeout=10)
        reply = server.post_events(token, batch)
        with lock:
            replies.append(reply)

    threads = [threading.Thread(target=send, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [r.status_code for r in replies] == [200] * 4, [r.text for r in replies]
    counts = [r.json()["data"] for r in replies]
    assert sum(c["accepted"] for c in counts) == 3000, counts
    assert sum(c["duplicates"] for c in counts) == 9000, counts
    assert all(c["accepted"] in (0, 3000) for c in counts), counts  # each batch is atomic
    assert server.items(tenant.token, "stereo_rec") == figure_of(batch, "stereo_rec")
