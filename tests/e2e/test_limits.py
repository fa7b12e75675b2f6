"""Per-token concurrency and per-operation daily quota (docs/limits.md) on a real server."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.e2e.harness import (
    SlowPosts,
    VoxServer,
    envelope_ok,
    token_info,
    uses_today,
    wait_until_admitted,
)

BUSY = "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2)"
QUOTA = "TOKEN LIMIT EXCEEDED"


def event(event_id: str, product: str = "ivr_minutes", quantity: str = "1") -> dict:  # type: ignore[type-arg]
    return {
        "id": event_id,
        "product": product,
        "time": datetime.now(UTC).isoformat(),
        "quantity": quantity,
    }


def retry_after(reply: requests.Response) -> int:
    value = reply.headers.get("Retry-After")
    assert value is not None, reply.headers
    assert value.isdigit(), value
    return int(value)


def others_today(srv: VoxServer, observer: str) -> int:
    info = token_info(srv, observer)
    return int(info["all_token_today"]) - int(info["token_use_today"])


# --- concurrency -------------------------------------------------------------------------------


@pytest.mark.serial
def test_third_request_in_flight_on_one_token_is_refused_at_once(server: VoxServer) -> None:
    tenant = server.tenant()
    observer = server.token_for(tenant.name, description="observer")
    before = others_today(server, observer.token)

    with SlowPosts(
        server, tenant.token, [[event("slow-1", quantity="2")], [event("slow-2")]]
    ) as slow:
        admitted = wait_until_admitted(server, observer.token, before, 2)
        assert admitted == before + 2, "the two slow requests were never admitted"

        for send in (
            lambda: server.billing(tenant.token, "ivr_minutes"),
            lambda: server.get(
                "/api/v2/information.php", tenant.token, params={"api": "token_info"}
            ),
            lambda: server.post_events(tenant.token, [event("third")]),
        ):
            start = time.monotonic()
            reply = send()
            elapsed = time.monotonic() - start
            assert envelope_ok(reply, 403, "FORBIDDEN", BUSY)["data"] == []
            assert elapsed < 0.5, f"the refusal took {elapsed:.3f}s: it must not queue"
            assert retry_after(reply) >= 1

        # another token of the same operation is not blocked
        body = envelope_ok(
            server.billing(observer.token, "ivr_minutes"),
            200,
            None,
            "Information found for the current month",
        )
        assert body["data"][0]["items"] == "0"  # the slow batches are not stored yet
        assert server.post_events(observer.token, [event("observer-1", quantity="4")]).ok
        assert all(r is None for r in slow.replies), "the slow requests ended too early"
        replies = slow.release()

    for reply in replies:
        assert envelope_ok(reply, 200, None, "1 event accepted")["data"] == {
            "accepted": 1,
            "duplicates": 0,
        }
    # the slots are free again; the refused POST stored nothing
    assert server.items(tenant.token, "ivr_minutes") == "7"  # 2 + 1 + 4
    assert server.post_events(tenant.token, [event("after")]).ok
    assert server.items(tenant.token, "ivr_minutes") == "8"


def test_two_requests_in_flight_are_allowed(server: VoxServer) -> None:
    tenant = server.tenant()
    observer = server.token_for(tenant.name, description="observer")
    before = others_today(server, observer.token)
    with SlowPosts(server, tenant.token, [[event("one-slow", quantity="3")]]) as slow:
        assert wait_until_admitted(server, observer.token, before, 1) == before + 1
        reply = server.billing(tenant.token, "ivr_minutes")
        body = envelope_ok(reply, 200, None, "Information found for the current month")
        assert body["data"][0]["items"] == "0"
        (done,) = slow.release()
    envelope_ok(done, 200, None, "1 event accepted")
    assert server.items(tenant.token, "ivr_minutes") == "3"


# --- daily quota ---------------------------------------------------------------------------------


def calm_timezone() -> str:
    """A timezone whose local midnight is not within the next 15 minutes (the day stays put)."""
    for timezone in ("Asia/Kathmandu", "America/St_Johns", "Pacific/Chatham", "UTC"):
        local = datetime.now(ZoneInfo(timezone))
        if local.hour < 23 or local.minute < 45:
            return timezone
    raise AssertionError("unreachable: these zones cannot all be near midnight at once")


def seconds_to_local_midnight(timezone: str) -> float:
    zone = ZoneInfo(timezone)
    now = datetime.now(zone)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), zone)
    return (midnight - now).total_seconds()


def test_daily_quota_is_shared_by_the_operation_tokens(server: VoxServer) -> None:
    timezone = calm_timezone()
    first = server.tenant(licenses=1, timezone=timezone)
    second = server.token_for(first.name, description="second")
    bystander = server.tenant(licenses=1)

    one, two = requests.Session(), requests.Session()
    one.headers["wolkvox-token"] = first.token
    two.headers["wolkvox-token"] = second.token
    local = datetime.now(ZoneInfo(timezone))
    window = {
        "date_ini": (local - timedelta(hours=1)).strftime("%Y%m%d%H%M%S"),
        "date_end": (local + timedelta(hours=1)).strftime("%Y%m%d%H%M%S"),
    }
    billing, information = server.url("/api/v2/billing.php"), server.url("/api/v2/information.php")
    events = server.url("/api/v2/events")
    used = {"one": 0, "two": 0}
    posted = 0
    for i in range(998):
        kind = i % 5
        if kind == 0:
            reply = one.get(billing, params={"api": "ivr_minutes"}, timeout=30)
        elif kind == 1:
            reply = two.get(information, params={"api": "token_info"}, timeout=30)
        elif kind == 2:
            reply = one.get(events, params=window, timeout=30)
        elif kind == 3:
            reply = two.post(events, json=[event(f"q-{i}", "interactions", "1")], timeout=30)
            posted += 1
        else:
            reply = one.get(billing, params={"api": "all"}, timeout=30)
        assert reply.status_code == 200, (i, reply.text)
        used["one" if kind in (0, 2, 4) else "two"] += 1

    # request 999 sees the day's use; request 1000, api=all, is one unit and still succeeds
    reply = two.get(information, params={"api": "token_info"}, timeout=30)
    used["two"] += 1
    info = envelope_ok(reply, 200, None, reply.json()["msg"])["data"][0]
    assert info["token_limit"] == "1000"
    assert info["all_token_today"] == "999"
    assert info["token_use_today"] == str(used["two"])
    assert info["available_consumption_options"] == "1"
    reply = one.get(billing, params={"api": "all"}, timeout=30)
    used["one"] += 1
    body = envelope_ok(reply, 200, None, "Information found for the current month")
    assert len(body["data"]) == 27
    assert body["data"][9]["description"] == "Interactions"
    assert body["data"][9]["items"] == str(posted)  # one-event batches posted above
    assert sum(used.values()) == 1000

    # request 1001, on either token and any endpoint, is refused
    expected_wait = seconds_to_local_midnight(timezone)
    reply = one.get(billing, params={"api": "ivr_minutes"}, timeout=30)
    assert envelope_ok(reply, 403, "FORBIDDEN", QUOTA)["data"] == []
    wait = retry_after(reply)
    assert 1 <= wait <= 86401, wait
    assert abs(wait - expected_wait) <= 3, (wait, expected_wait, timezone)
    for refused in (
        two.get(information, params={"api": "token_info"}, timeout=30),
        one.get(events, params=window, timeout=30),
        two.post(events, json=[event("over-quota", "interactions", "1")], timeout=30),
        one.get(billing, params={"api": "all"}, timeout=30),
    ):
        envelope_ok(refused, 403, "FORBIDDEN", QUOTA)
        assert 1 <= retry_after(refused) <= 86401

    # another operation has its own quota
    assert server.items(bystander.token, "interactions") == "0"
    assert token_info(server, bystander.token)["all_token_today"] == "2"

    # refused requests are not counted: the persisted counters stay at exactly 1000
    deadline = time.monotonic() + 5
    while True:
        counts = (uses_today(server, first.token_id), uses_today(server, second.token_id))
        if counts == (used["one"], used["two"]) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert counts == (used["one"], used["two"]), (counts, used)


def test_day_counts_survive_a_restart(make_server: Callable[..., VoxServer]) -> None:
    srv = make_server()
    tenant = srv.tenant(licenses=1)
    second = srv.token_for(tenant.name, description="second")
    for _ in range(4):
        assert srv.billing(tenant.token, "ivr_minutes").status_code == 200
    assert token_info(srv, second.token)["all_token_today"] == "5"
    srv.stop()  # SIGTERM: a graceful shutdown

    again = make_server(db=srv.db)
    info = token_info(again, second.token)
    assert (info["token_use_today"], info["all_token_today"]) == ("2", "6"), info
    assert info["available_consumption_options"] == "994", info


def test_abandoned_requests_free_their_slots(server: VoxServer) -> None:
    tenant = server.tenant()
    observer = server.token_for(tenant.name, description="observer")
    before = others_today(server, observer.token)
    head = (
        "POST /api/v2/events HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\n"
        f"wolkvox-token: {tenant.token}\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: 500\r\n\r\n["
    ).encode()
    sockets = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(2)]
    try:
        for sock in sockets:
            sock.sendall(head)
        assert wait_until_admitted(server, observer.token, before, 2) == before + 2
        envelope_ok(server.billing(tenant.token, "ivr_minutes"), 403, "FORBIDDEN", BUSY)
    finally:
        for sock in sockets:
            sock.close()  # the clients go away mid-body
    deadline = time.monotonic() + 3
    while (reply := server.billing(tenant.token, "ivr_minutes")).status_code != 200:
        assert time.monotonic() < deadline, f"slots still held after the clients left: {reply.text}"
        time.sleep(0.05)
    assert reply.json()["data"][0]["items"] == "0"
