"""The Python client against a real `voxmeter serve` (docs/api.md): figures, errors, retries."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
import pytest

from tests.e2e.harness import (
    SPEC_CATALOG,
    SlowPosts,
    Tenant,
    VoxServer,
    free_port,
    wait_until_admitted,
)
from voxmeter.client import (
    APIConnectionError,
    APITimeoutError,
    AsyncClient,
    BadParametersError,
    Client,
    InvalidTokenError,
    MaintenanceError,
    MissingTokenError,
    PayloadTooLargeError,
    QuotaExceededError,
    TooManyRequestsError,
    UnknownApiError,
)
from voxmeter.domain.catalog import Catalog

CATALOG = Catalog.load()


class Counting(httpx.HTTPTransport):
    """A real transport that counts the requests that actually went out."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        return super().handle_request(request)


def client_for(
    server: VoxServer,
    tenant: Tenant,
    *,
    token: str | None = None,
    transport: Counting | None = None,
    sleep: Callable[[float], None] | None = None,
    max_retries: int = 2,
) -> Client:
    return Client(
        tenant.server,
        token=tenant.token if token is None else token,
        base_url=server.base,
        max_retries=max_retries,
        http_client=httpx.Client(transport=transport or Counting()),
        sleep=sleep or (lambda _: None),
    )


def now() -> str:
    return datetime.now(UTC).isoformat()


@pytest.fixture(scope="module")
def loaded(server: VoxServer) -> tuple[Tenant, dict[str, Decimal]]:
    """A tenant with events sent through the client itself; returns the expected figures."""
    tenant = server.tenant()
    events: list[dict[str, object]] = [
        {"id": "ivr-1", "product": "ivr_minutes", "time": now(), "quantity": Decimal("2.01")},
        {"id": "ivr-2", "product": "ivr_minutes", "time": now(), "quantity": Decimal("0.1")},
        {"id": "tts-1", "product": "tts_chars", "time": now(), "quantity": Decimal("1234.5")},
        {"id": "tts-2", "product": "tts_chars", "time": now(), "quantity": "0.25"},
        {"id": "call-1", "product": "ivr_calls", "time": now()},
    ]
    with client_for(server, tenant) as client:
        first = client.send_events(events)
        again = client.send_events(events)  # the same ids: all duplicates, nothing counted twice
    assert (first.accepted, first.duplicates, first.batches) == (5, 0, 1)
    assert (again.accepted, again.duplicates) == (0, 5)
    assert first.raw[0]["msg"] == "5 events accepted"
    # ivr_minutes rounds each event up (3 + 1); tts_chars sums exactly; ivr_calls counts.
    return tenant, {
        "ivr_minutes": Decimal("4"),
        "tts_chars": Decimal("1234.75"),
        "ivr_calls": Decimal("1"),
    }


def test_usage_returns_exact_typed_rows(
    server: VoxServer, loaded: tuple[Tenant, dict[str, Decimal]]
) -> None:
    tenant, figures = loaded
    with client_for(server, tenant) as client:
        [row] = client.usage("tts_chars")
        [empty] = client.usage("vision", month=date.today())
    assert row.items == figures["tts_chars"]
    assert type(row.items) is Decimal
    assert (row.api, row.operation, row.description) == ("tts_chars", tenant.name, "TTS characters")
    product = CATALOG.get("tts_chars")
    assert product is not None
    assert row.unit == product.unit
    assert row.date == datetime.now(UTC).date()
    assert row.raw["items"] == "1234.75"
    assert (empty.api, empty.items) == ("vision", Decimal("0"))


def test_usage_all_is_one_request_with_every_product(
    server: VoxServer, loaded: tuple[Tenant, dict[str, Decimal]]
) -> None:
    tenant, figures = loaded
    transport = Counting()
    with client_for(server, tenant, transport=transport) as client:
        rows = client.usage_all()
    assert transport.sent == 1
    assert [(r.api, r.description) for r in rows] == [(a, t) for a, t, _ in SPEC_CATALOG]
    assert {r.api: r.items for r in rows} == {
        a: figures.get(a, Decimal(0)) for a, _, _ in SPEC_CATALOG
    }
    assert [r.unit for r in rows] == [p.unit for p in CATALOG]


def test_token_info_counts_the_clients_requests(server: VoxServer) -> None:
    tenant = server.tenant(licenses=2)
    with client_for(server, tenant) as client:
        first = client.token_info()
        client.usage("ivr_minutes")
        second = client.token_info()
    assert first.token_limit == 2000
    assert (first.token_use_today, second.token_use_today) == (1, 3)
    assert second.available_consumption_options == 2000 - 3
    assert second.raw["token_limit"] in (2000, "2000")


def test_async_client_round_trip(
    server: VoxServer, loaded: tuple[Tenant, dict[str, Decimal]]
) -> None:
    tenant, figures = loaded

    async def main() -> tuple[Decimal, list[Decimal], int | None]:
        async with AsyncClient(tenant.server, token=tenant.token, base_url=server.base) as client:
            [row] = await client.usage("ivr_minutes")
            rows = await client.usage_all()
            info = await client.token_info()
        return row.items, [r.items for r in rows], info.token_limit

    items, all_items, limit = asyncio.run(main())
    assert items == figures["ivr_minutes"]
    assert all_items == [figures.get(a, Decimal(0)) for a, _, _ in SPEC_CATALOG]
    assert limit == 1000


def test_send_events_splits_ten_thousand_per_call(server: VoxServer) -> None:
    tenant = server.tenant()
    events = [
        {"id": f"r-{i}", "product": "rsync", "time": now(), "quantity": "0.5"}
        for i in range(10_003)
    ]
    transport = Counting()
    with client_for(server, tenant, transport=transport) as client:
        result = client.send_events(events)
        [row] = client.usage("rsync")
    assert (result.accepted, result.duplicates, result.batches) == (10_003, 0, 2)
    assert transport.sent == 3
    assert row.items == Decimal("5001.5")


def test_a_refused_batch_names_each_bad_event(server: VoxServer) -> None:
    tenant = server.tenant()
    events = [
        {"id": "ok-1", "product": "rsync", "time": now(), "quantity": "1"},
        {"id": "bad-1", "product": "rsync", "time": now(), "quantity": "-1"},
        {"id": "bad-2", "product": "no_such_product", "time": now()},
    ]
    with client_for(server, tenant) as client:
        with pytest.raises(BadParametersError) as refused:
            client.send_events(events)
        [row] = client.usage("rsync")
    text = str(refused.value)
    assert "event 1: quantity: must not be negative" in text, text
    assert "event 2: product: unknown product 'no_such_product'" in text, text
    assert {p.index for p in refused.value.problems} == {1, 2}
    assert row.items == Decimal(0)


# --- every error row, from the real server ------------------------------------------------------


def test_missing_token(server: VoxServer) -> None:
    tenant = server.tenant()
    with client_for(server, tenant, token="") as client, pytest.raises(MissingTokenError) as caught:
        client.usage("ivr_minutes")
    assert (caught.value.status, caught.value.msg) == (401, "PLEASE ENTER THE WOLKVOX-TOKEN")


def test_invalid_token_and_wrong_server_are_not_retried(server: VoxServer) -> None:
    tenant = server.tenant()
    transport = Counting()
    sleeps: list[float] = []
    with (
        client_for(
            server, tenant, token="not-a-token", transport=transport, sleep=sleeps.append
        ) as client,
        pytest.raises(InvalidTokenError),
    ):
        client.token_info()
    wrong = Tenant(tenant.name, "1234", tenant.token, tenant.token_id)
    with client_for(server, wrong, transport=transport) as client, pytest.raises(InvalidTokenError):
        client.token_info()
    assert transport.sent == 2
    assert sleeps == []


def test_unknown_api_and_bad_month(server: VoxServer) -> None:
    tenant = server.tenant()
    with client_for(server, tenant) as client:
        with pytest.raises(UnknownApiError) as unknown:
            client.usage("no_such_product")
        with pytest.raises(BadParametersError) as future:
            client.usage("ivr_minutes", month="2999-01")
        with pytest.raises(BadParametersError):
            client.usage("ivr_minutes", month="January")
    assert unknown.value.status == 400
    assert future.value.msg.startswith("SOME PARAMETERS ARE REQUIRED")


def test_quota_exceeded_is_raised_once_and_not_retried(server: VoxServer) -> None:
    tenant = server.tenant(licenses=1)
    with client_for(server, tenant, max_retries=0) as client:
        used = 0
        while used < 1100:
            try:
                client.token_info()
            except QuotaExceededError:
                break
            used += 1
    assert used == 1000

    transport = Counting()
    sleeps: list[float] = []
    with (
        client_for(
            server, tenant, transport=transport, sleep=sleeps.append, max_retries=5
        ) as client,
        pytest.raises(QuotaExceededError) as caught,
    ):
        client.usage("ivr_minutes")
    assert transport.sent == 1
    assert sleeps == []
    assert caught.value.retry_after is not None
    assert caught.value.retry_after >= 1


def test_concurrency_refusal_is_transient_and_retried(server: VoxServer) -> None:
    """Two slow uploads hold both server slots; the client is refused, then retried."""
    tenant = server.tenant()
    observer = server.token_for(tenant.name, description="observer")
    body = [{"id": "slow", "product": "vision", "time": now()}]
    with SlowPosts(server, tenant.token, [body, body]) as slow:
        assert wait_until_admitted(server, observer.token, 0, 2) == 2
        with (
            client_for(server, tenant, max_retries=0) as client,
            pytest.raises(TooManyRequestsError) as caught,
        ):
            client.usage("vision")
        assert caught.value.transient
        assert caught.value.retry_after == 1

        sleeps: list[float] = []

        def sleep(delay: float) -> None:
            sleeps.append(delay)
            slow.release()

        with client_for(server, tenant, sleep=sleep) as client:
            [row] = client.usage("vision")
    assert sleeps == [1.0]
    assert row.items == Decimal("1")


def test_maintenance_is_classified_and_retried_until_it_ends(
    make_server: Callable[..., VoxServer],
) -> None:
    srv = make_server()
    tenant = srv.tenant()
    srv.cli("maintenance", "on")
    deadline = time.monotonic() + 5
    refused: MaintenanceError | None = None
    with client_for(srv, tenant, max_retries=0) as client:
        while refused is None:  # the server re-reads the switch within a second
            try:
                client.token_info()
            except MaintenanceError as error:
                refused = error
            assert time.monotonic() < deadline, "maintenance never took effect"
            time.sleep(0.1)
    assert refused.transient
    assert refused.msg == "SERVER IN MAINTENANCE"

    def sleep(delay: float) -> None:
        srv.cli("maintenance", "off")
        time.sleep(1.2)  # let the server's one-second cache of the switch expire

    transport = Counting()
    with client_for(srv, tenant, transport=transport, sleep=sleep, max_retries=3) as client:
        info = client.token_info()
    assert transport.sent == 2
    assert info.token_limit == 1000


# --- real network failures ---------------------------------------------------------------------


def test_a_refused_connection_is_retried_then_raised() -> None:
    port = free_port()  # nothing listens here
    sleeps: list[float] = []
    with (
        Client(
            "1", token="t", base_url=f"http://127.0.0.1:{port}", max_retries=2, sleep=sleeps.append
        ) as c,
        pytest.raises(APIConnectionError) as caught,
    ):
        c.token_info()
    assert type(caught.value) is APIConnectionError
    assert len(sleeps) == 2


def test_a_server_that_never_answers_times_out_and_is_retried() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # accepts connections (kernel backlog) but never answers
        port = listener.getsockname()[1]
        sleeps: list[float] = []
        started = time.monotonic()
        with (
            Client(
                "1",
                token="t",
                base_url=f"http://127.0.0.1:{port}",
                timeout=0.3,
                max_retries=1,
                sleep=sleeps.append,
            ) as c,
            pytest.raises(APITimeoutError),
        ):
            c.usage("ivr_minutes")
        elapsed = time.monotonic() - started
    assert len(sleeps) == 1
    assert 0.5 <= elapsed < 5


def test_an_over_size_batch_is_payload_too_large_and_not_retried(
    make_server: Callable[..., VoxServer],
) -> None:
    srv = make_server("--max-body-bytes", "2000")
    tenant = srv.tenant()
    transport = Counting()
    now = datetime.now(UTC).isoformat()
    events = [
        {"id": f"big-{i}", "product": "ivr_minutes", "time": now, "quantity": "1"}
        for i in range(100)
    ]
    with (
        Client(
            "9901",
            token=tenant.token,
            base_url=srv.base,
            http_client=httpx.Client(transport=transport),
        ) as client,
        pytest.raises(PayloadTooLargeError),
    ):
        client.send_events(events)
    assert transport.sent == 1
    assert srv.items(tenant.token, "ivr_minutes") == "0"
