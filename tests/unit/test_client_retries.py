"""Retry behaviour of the clients against scripted transports (no network, no real sleeping)."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from voxmeter.client import (
    APIConnectionError,
    APITimeoutError,
    AsyncClient,
    Client,
    InvalidTokenError,
    MaintenanceError,
    QuotaExceededError,
    RetryPolicy,
    ServerError,
    TooManyRequestsError,
    UnknownApiError,
)
from voxmeter.client._retry import parse_retry_after

OK = {
    "code": 200,
    "error": None,
    "msg": "Information found for the current month",
    "data": [{"operation": "acme", "description": "IVR minutes", "items": "12.5", "date": ""}],
}

Step = Callable[[httpx.Request], httpx.Response]


def envelope(status: int, error: str, msg: str, **headers: str) -> Step:
    body = {"code": status, "error": error, "msg": msg, "data": []}
    return lambda _: httpx.Response(status, json=body, headers=headers)


def ok(_: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=OK)


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def time_out(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


class Script:
    """A transport that answers with the next step each time and records every request."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.steps.pop(0)(request)


def client(script: Script, sleeps: list[float], max_retries: int = 3) -> Client:
    return Client(
        "9901",
        token="secret-token",
        base_url="http://billing.test",
        max_retries=max_retries,
        http_client=httpx.Client(transport=httpx.MockTransport(script)),
        sleep=sleeps.append,
    )


BUSY = "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2)"


@pytest.mark.parametrize(
    "failure",
    [
        refuse,
        time_out,
        envelope(503, "SERVICE UNAVAILABLE", "TRY LATER"),
        envelope(500, "INTERNAL SERVER ERROR", "OOPS"),
        envelope(403, "FORBIDDEN", BUSY),
        envelope(403, "FORBIDDEN", "SERVER IN MAINTENANCE"),
    ],
)
def test_transient_failures_are_retried_until_success(failure: Step) -> None:
    script = Script(failure, failure, ok)
    sleeps: list[float] = []
    [row] = client(script, sleeps).usage("ivr_minutes")
    assert row.items == Decimal("12.5")
    assert len(script.requests) == 3
    assert len(sleeps) == 2
    # Exponential backoff with jitter: attempt n waits within (0.5*2^n / 2, 0.5*2^n].
    assert 0.25 <= sleeps[0] <= 0.5
    assert 0.5 <= sleeps[1] <= 1.0


@pytest.mark.parametrize(
    ("failure", "cls"),
    [
        (
            envelope(403, "FORBIDDEN", "TOKEN LIMIT EXCEEDED", **{"Retry-After": "5"}),
            QuotaExceededError,
        ),
        (envelope(403, "FORBIDDEN", "PLEASE VALIDATE TOKEN"), InvalidTokenError),
        (
            envelope(400, "BAD REQUEST", "THE API YOU WANT TO CONSULT DOES NOT EXIST"),
            UnknownApiError,
        ),
    ],
)
def test_permanent_errors_are_never_retried(failure: Step, cls: type[Exception]) -> None:
    script = Script(failure, ok)
    sleeps: list[float] = []
    with pytest.raises(cls):
        client(script, sleeps).usage("ivr_minutes")
    assert len(script.requests) == 1
    assert sleeps == []


def test_retry_after_is_honoured() -> None:
    busy = envelope(403, "FORBIDDEN", BUSY, **{"Retry-After": "7"})
    unavailable = envelope(503, "SERVICE UNAVAILABLE", "LATER", **{"Retry-After": "2"})
    script = Script(busy, unavailable, ok)
    sleeps: list[float] = []
    client(script, sleeps).usage("ivr_minutes")
    assert sleeps == [7.0, 2.0]


def test_a_retry_after_longer_than_a_minute_is_raised_not_waited() -> None:
    script = Script(envelope(403, "FORBIDDEN", "SERVER IN MAINTENANCE", **{"Retry-After": "3600"}))
    sleeps: list[float] = []
    with pytest.raises(MaintenanceError) as caught:
        client(script, sleeps).usage("ivr_minutes")
    assert caught.value.retry_after == 3600
    assert sleeps == []


def test_retries_stop_after_max_retries_with_the_last_error() -> None:
    script = Script(refuse, refuse, time_out)
    sleeps: list[float] = []
    with pytest.raises(APITimeoutError):
        client(script, sleeps, max_retries=2).usage("ivr_minutes")
    assert len(script.requests) == 3
    assert len(sleeps) == 2
    script = Script(refuse)
    sleeps = []
    with pytest.raises(APIConnectionError):
        client(script, sleeps, max_retries=0).usage("ivr_minutes")
    assert sleeps == []


def test_send_events_retries_a_batch_whole_and_sums_batches() -> None:
    accepted = {
        "code": 200,
        "error": None,
        "msg": "ok",
        "data": {"accepted": 10_000, "duplicates": 0},
    }
    rest = {"code": 200, "error": None, "msg": "ok", "data": {"accepted": 4, "duplicates": 1}}
    script = Script(
        envelope(502, "BAD GATEWAY", "UPSTREAM"),
        lambda _: httpx.Response(200, json=accepted),
        lambda _: httpx.Response(200, json=rest),
    )
    sleeps: list[float] = []
    events = [
        {"id": f"e{i}", "product": "rsync", "quantity": Decimal("0.5")} for i in range(10_005)
    ]
    result = client(script, sleeps).send_events(events)
    assert (result.accepted, result.duplicates, result.batches) == (10_004, 1, 2)
    bodies = [json.loads(r.content) for r in script.requests]
    assert [len(b) for b in bodies] == [10_000, 10_000, 5]
    assert bodies[0] == bodies[1]  # the retried batch is the same ids again: safe
    assert bodies[2][0] == {"id": "e10000", "product": "rsync", "quantity": "0.5"}
    assert all(r.headers["content-type"] == "application/json" for r in script.requests)


def test_headers_carry_token_and_server_and_repr_hides_the_token() -> None:
    script = Script(ok)
    sleeps: list[float] = []
    c = client(script, sleeps)
    c.usage("ivr_minutes", month="2026-10")
    [request] = script.requests
    assert request.headers["wolkvox-token"] == "secret-token"
    assert request.headers["wolkvox_server"] == "9901"
    assert (
        str(request.url) == "http://billing.test/api/v2/billing.php?api=ivr_minutes&month=2026-10"
    )
    assert "secret" not in repr(c)
    assert repr(c) == "Client(server='9901', base_url='http://billing.test')"


def test_default_base_url_is_the_hosted_server() -> None:
    with Client("0042", token="x") as c:
        assert c.base_url == "https://wv0042.wolkvox.com"


def test_token_falls_back_to_the_environment_but_an_explicit_empty_one_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WOLKVOX_TOKEN", "from-env")
    script = Script(ok, ok)
    transport = httpx.Client(transport=httpx.MockTransport(script))
    Client("1", http_client=transport, base_url="http://t").usage("ivr_minutes")
    Client("1", token="", http_client=transport, base_url="http://t").usage("ivr_minutes")
    assert script.requests[0].headers["wolkvox-token"] == "from-env"
    assert "wolkvox-token" not in script.requests[1].headers


def test_max_in_flight_is_validated() -> None:
    for bad in (0, 3):
        with pytest.raises(ValueError, match="between 1 and 2"):
            Client("1", token="t", max_in_flight=bad)


def test_one_request_in_flight_per_token_across_threads_and_clients() -> None:
    """Two clients for the same token in one process share the default limit of 1."""
    inside = 0
    peak = 0
    lock = threading.Lock()
    gate = threading.Event()

    def slow(_: httpx.Request) -> httpx.Response:
        nonlocal inside, peak
        with lock:
            inside += 1
            peak = max(peak, inside)
        gate.wait(0.05)
        with lock:
            inside -= 1
        return httpx.Response(200, json=OK)

    token = f"shared-{random.random()}"
    clients = [
        Client(
            "1",
            token=token,
            base_url="http://t",
            http_client=httpx.Client(transport=httpx.MockTransport(slow)),
        )
        for _ in range(2)
    ]
    threads = [
        threading.Thread(target=clients[i % 2].usage, args=("ivr_minutes",)) for i in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert peak == 1


def test_async_client_retries_and_limits_in_flight() -> None:
    inside = 0
    peak = 0
    calls = 0

    async def handler(_: httpx.Request) -> httpx.Response:
        nonlocal inside, peak, calls
        calls += 1
        mine = calls
        inside += 1
        peak = max(peak, inside)
        await asyncio.sleep(0.01)
        inside -= 1
        if mine == 1:
            return httpx.Response(503, json={"code": 503, "error": "X", "msg": "LATER", "data": []})
        return httpx.Response(200, json=OK)

    sleeps: list[float] = []

    async def fake_sleep(delay: float) -> None:
        sleeps.append(delay)

    async def main() -> list[Decimal]:
        async with AsyncClient(
            "1",
            token=f"async-{random.random()}",
            base_url="http://t",
            max_in_flight=2,
            http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
            sleep=fake_sleep,
        ) as c:
            results = await asyncio.gather(*(c.usage("ivr_minutes") for _ in range(5)))
        return [rows[0].items for rows in results]

    assert asyncio.run(main()) == [Decimal("12.5")] * 5
    assert calls == 6
    assert len(sleeps) == 1
    assert peak == 2


def test_async_client_does_not_retry_quota() -> None:
    script = Script(envelope(403, "FORBIDDEN", "TOKEN LIMIT EXCEEDED"), ok)

    async def main() -> None:
        async with AsyncClient(
            "1",
            token="t",
            base_url="http://t",
            http_client=httpx.AsyncClient(transport=httpx.MockTransport(script)),
        ) as c:
            await c.token_info()

    with pytest.raises(QuotaExceededError):
        asyncio.run(main())
    assert len(script.requests) == 1


def test_policy_backoff_caps_and_jitters() -> None:
    policy = RetryPolicy(max_retries=10, rng=random.Random(1))
    error = ServerError("x", status=500)
    waits = [policy.delay(n, error) for n in range(10)]
    assert all(w is not None and 0 < w <= 8.0 for w in waits)
    assert waits[9] is not None
    assert waits[9] >= 4.0  # capped at 8, floor half of it
    assert policy.delay(10, error) is None
    assert RetryPolicy(max_retries=3).delay(0, TooManyRequestsError("x", status=403)) is not None
    with pytest.raises(ValueError, match="0 or more"):
        RetryPolicy(max_retries=-1)


def test_retry_after_parsing() -> None:
    now = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(" 3 ") == 3.0
    assert parse_retry_after("Sun, 22 Nov 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Sun, 22 Nov 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("") is None
    assert parse_retry_after(None) is None


def test_usage_all_sweeps_the_catalog_when_api_all_is_unknown_and_remembers() -> None:
    """The hosted API has no `api=all`: one refusal, then a serial sweep of the 27 products."""
    from voxmeter.domain.catalog import Catalog

    products = list(Catalog.load())
    asked: list[str] = []

    def hosted(request: httpx.Request) -> httpx.Response:
        api = request.url.params["api"]
        asked.append(api)
        if api == "all":
            body = {
                "code": "400",
                "error": "BAD REQUEST",
                "msg": "THE API YOU WANT TO CONSULT DOES NOT EXIST",
                "data": [],
            }
            return httpx.Response(400, json=body)
        row = {"operation": "acme", "description": api.upper(), "items": f" {len(asked)} "}
        return httpx.Response(200, json={"code": "200", "error": "", "msg": "ok", "data": [row]})

    with Client(
        "1",
        token="t",
        base_url="http://t",
        http_client=httpx.Client(transport=httpx.MockTransport(hosted)),
    ) as c:
        rows = c.usage_all(month="2026-10")
        assert asked == ["all", *(p.api for p in products)]
        assert [(r.api, r.unit, r.items) for r in rows] == [
            (p.api, p.unit, Decimal(i + 2)) for i, p in enumerate(products)
        ]
        asked.clear()
        c.usage_all()
        assert asked == [p.api for p in products]  # api=all is not asked again


def test_usage_all_does_not_hide_unknown_api_once_all_worked() -> None:
    answers = Script(
        lambda _: httpx.Response(200, json={"code": 200, "msg": "ok", "data": []}),
        envelope(400, "BAD REQUEST", "THE API YOU WANT TO CONSULT DOES NOT EXIST"),
    )
    sleeps: list[float] = []
    c = client(answers, sleeps)
    assert c.usage_all() == []
    with pytest.raises(UnknownApiError):
        c.usage_all()
    assert len(answers.requests) == 2


def test_sync_and_async_clients_share_one_limit_per_token() -> None:
    """A sync client in a thread and an async client on a loop: together at most 1 in flight."""
    inside = 0
    peak = 0
    lock = threading.Lock()

    def enter() -> None:
        nonlocal inside, peak
        with lock:
            inside += 1
            peak = max(peak, inside)

    def leave() -> None:
        nonlocal inside
        with lock:
            inside -= 1

    def slow(_: httpx.Request) -> httpx.Response:
        enter()
        time.sleep(0.03)
        leave()
        return httpx.Response(200, json=OK)

    async def slow_async(_: httpx.Request) -> httpx.Response:
        enter()
        await asyncio.sleep(0.03)
        leave()
        return httpx.Response(200, json=OK)

    token = f"mixed-{random.random()}"
    sync_client = Client(
        "1",
        token=token,
        base_url="http://t",
        http_client=httpx.Client(transport=httpx.MockTransport(slow)),
    )
    threads = [threading.Thread(target=sync_client.usage, args=("ivr_minutes",)) for _ in range(4)]

    async def main() -> None:
        async with AsyncClient(
            "1",
            token=token,
            base_url="http://t",
            http_client=httpx.AsyncClient(transport=httpx.MockTransport(slow_async)),
        ) as c:
            await asyncio.gather(*(c.usage("ivr_minutes") for _ in range(4)))

    for t in threads:
        t.start()
    asyncio.run(main())
    for t in threads:
        t.join(10)
    assert peak == 1
