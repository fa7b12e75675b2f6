"""Alerts end to end, on both deployment modes: real servers, real receivers over loopback.

A receiver that is down when an alert fires gets the delivery once it is back, signed both
ways (verified with the `standardwebhooks` library); two multi-process servers ingesting across
a threshold at once deliver exactly one POST, and restarting them fires nothing again."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from bench.receiver import Receiver
from tests.backends import REDIS_URL, pg_schema, redis_prefix
from tests.e2e.harness import VoxServer, free_port

FAST = {"VOXMETER_DELIVERY_BASE_DELAY": "0.2", "VOXMETER_DELIVERY_POLL": "0.05"}
KEY = {"VOXMETER_SECRET_KEY": "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg="}


def _now_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _events(prefix: str, count: int, quantity: str = "1") -> list[dict[str, object]]:
    return [
        {"id": f"{prefix}-{i}", "product": "rsync", "time": _now_time(), "quantity": quantity}
        for i in range(count)
    ]


def _create(srv: VoxServer, name: str, url: str, *extra: str) -> tuple[int, str]:
    made = srv.cli(
        "alert",
        "create",
        "--operation",
        name,
        "--product",
        "rsync",
        "--threshold",
        "10",
        "--webhook",
        url,
        *extra,
        env=KEY,
    )
    lines = made.stdout.strip().splitlines()
    alert_id = int(lines[0].split()[1])
    return alert_id, lines[-1]


def _deliveries(srv: VoxServer) -> list[dict[str, object]]:
    out = srv.cli("alert", "deliveries", "--format", "json")
    return list(json.loads(out.stdout))


def _wait(what: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_receiver_down_then_up_gets_the_delivery_signed_both_ways(
    make_server: Callable[..., VoxServer],
) -> None:
    srv = make_server(env={**FAST, **KEY})
    tenant = srv.tenant()
    port = free_port()
    receiver = Receiver(port=port)
    alert_id, secret = _create(srv, tenant.name, receiver.url)
    assert secret.startswith("whsec_")
    reply = srv.post_events(tenant.token, _events("a", 10))
    assert reply.status_code == 200, reply.text
    # Nobody listens: attempts fail and are listed, the delivery stays pending.
    _wait(lambda: len(_deliveries(srv)) >= 2)
    tried = _deliveries(srv)
    assert {r["state"] for r in tried} == {"pending"}
    assert all(r["status"] is None and r["error"] for r in tried)
    with receiver:
        (got,) = receiver.wait(1)
        _wait(lambda: _deliveries(srv)[0]["state"] == "delivered")
    body = json.loads(got.body)
    assert body["alert_id"] == alert_id
    assert (body["product"], body["value"], body["threshold"], body["on"]) == (
        "rsync",
        "10",
        "10",
        "figure",
    )
    assert body["operation"] == tenant.name
    expected = hmac.new(secret.encode(), got.body, hashlib.sha256).hexdigest()
    assert got.headers["x-voxmeter-signature"] == f"sha256={expected}"
    verified = Webhook(secret).verify(got.body, got.headers)
    assert verified == body
    with pytest.raises(Exception, match=r"(?i)signature"):
        Webhook(secret).verify(got.body + b" ", got.headers)
    listed = srv.get("/api/v2/alerts", tenant.token).json()["data"]
    assert listed[0]["deliveries"][0]["state"] == "delivered"
    assert listed[0]["webhook"] == f"http://127.0.0.1:{port}"
    assert secret not in json.dumps(listed)
    metrics = srv.get("/metrics").text
    assert 'voxmeter_alert_deliveries_total{outcome="delivered"} 1.0' in metrics
    retries = re.search(r'voxmeter_alert_deliveries_total\{outcome="retry"\} ([0-9.]+)', metrics)
    assert retries is not None
    assert float(retries.group(1)) >= len(tried)
    # The month has fired: more usage sends nothing more.
    srv.post_events(tenant.token, _events("b", 5))
    time.sleep(1.0)
    assert len(receiver.received) == 1


def test_slack_payload(make_server: Callable[..., VoxServer]) -> None:
    srv = make_server(env={**FAST, **KEY})
    tenant = srv.tenant()
    with Receiver() as receiver:
        _create(srv, tenant.name, receiver.url, "--payload", "slack")
        srv.post_events(tenant.token, _events("a", 10))
        (got,) = receiver.wait(1)
    body = json.loads(got.body)
    assert list(body) == ["text"]
    assert tenant.name in body["text"]
    assert "rsync" in body["text"]
    assert "reached 10" in body["text"]


def test_a_receiver_that_always_fails_is_retried_then_failed(
    make_server: Callable[..., VoxServer],
) -> None:
    srv = make_server(env={**FAST, **KEY, "VOXMETER_DELIVERY_RETRY_FOR": "2"})
    tenant = srv.tenant()
    with Receiver(status=500) as receiver:
        _create(srv, tenant.name, receiver.url)
        srv.post_events(tenant.token, _events("a", 10))
        _wait(lambda: _deliveries(srv)[0]["state"] == "failed")
    tried = _deliveries(srv)
    assert len(tried) >= 2
    assert {r["status"] for r in tried} == {500}
    assert len(receiver.received) == len(tried)


def test_two_multi_process_servers_racing_across_a_threshold_deliver_once(
    tmp_path: Path,
) -> None:
    """The scaled-out mode: 2 `serve --workers 2` on one PostgreSQL schema and Redis prefix."""
    with pg_schema() as db, redis_prefix() as prefix, Receiver() as receiver:
        env = {**FAST, **KEY, "VOXMETER_REDIS_PREFIX": prefix}
        servers = [
            _started(
                VoxServer(db, free_port(), ("--workers", "2", "--redis", REDIS_URL), env), tmp_path
            )
            for _ in range(2)
        ]
        try:
            _race(servers, receiver, tmp_path)
        finally:
            for srv in servers:
                srv.stop()


def _started(srv: VoxServer, folder: Path) -> VoxServer:
    """Started with time to spare: on a loaded machine uvicorn may replace a worker that was
    slow to answer its first health check before the server is up."""
    srv.log_path = folder / f"server-{srv.port}.log"
    srv.run(timeout=120)
    return srv


def _race(servers: list[VoxServer], receiver: Receiver, folder: Path) -> None:
    tenant = servers[0].tenant()
    alert_id, _ = _create(servers[0], tenant.name, receiver.url, "--threshold", "150")
    tokens = [tenant.token] + [servers[0].token_for(tenant.name).token for _ in range(3)]

    def post(n: int) -> set[int]:
        """One writer: its own token, alternating servers, 10 batches of 5."""
        return {
            servers[(n + b) % 2].post_events(tokens[n], _events(f"r{n}-{b}", 5)).status_code
            for b in range(10)
        }

    with ThreadPoolExecutor(len(tokens)) as pool:
        assert set().union(*pool.map(post, range(len(tokens)))) == {200}
    (got,) = receiver.wait(1)
    assert json.loads(got.body)["value"] in {str(v) for v in range(150, 155)}
    # Restarted, with more usage: the month's firing is remembered.
    for srv in servers:
        srv.stop()
        _started(srv, folder)
    assert servers[1].post_events(tenant.token, _events("after", 10)).status_code == 200
    time.sleep(1.5)
    assert len(receiver.received) == 1
    assert [r["alert"] for r in _deliveries(servers[0])] == [alert_id]


def test_a_mirror_gone_stale_delivers_one_signed_alert(
    make_server: Callable[..., VoxServer],
) -> None:
    """A mirror whose upstream never answers is stale a minute after its creation: its
    staleness alert is delivered once, signed, and stays delivered once while it stays stale."""
    srv = make_server(env={**FAST, **KEY})
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens: every sweep fails
    srv.cli(
        "operation", "create", "mirrored", "--server", "9950", "--mirror",
        "--upstream-url", down, "--upstream-token-env", "UPSTREAM_TOKEN",
        "--interval", "1", "--stale-after", "1",
        env={**KEY, "UPSTREAM_TOKEN": "upstream-token"},
    )  # fmt: skip
    with Receiver() as receiver:
        not_mirror = srv.tenant()
        for who, extra, told in (
            (not_mirror.name, (), "is not a mirror"),
            ("mirrored", ("--threshold", "1"), "leave out --threshold"),
            ("mirrored", ("--product", "rsync"), "leave out --product"),
        ):
            refused = srv.cli(
                "alert", "create", "--operation", who, "--on", "stale",
                "--webhook", receiver.url, *extra, env=KEY, check=False,
            )  # fmt: skip
            assert refused.returncode != 0
            assert told in refused.stderr
        assert "stale" not in srv.cli("alert", "list").stdout  # nothing was stored
        made = srv.cli(
            "alert", "create", "--operation", "mirrored", "--on", "stale",
            "--webhook", receiver.url, env=KEY,
        )  # fmt: skip
        first, *_, secret = made.stdout.strip().splitlines()
        assert first.startswith("alert ")
        assert " on stale for 9950/mirrored " in first
        alert_id = int(first.split()[1])
        (got,) = receiver.wait(1, timeout=150)  # stale after its minute, checked every 5 s
        time.sleep(6)  # a later check: the same staleness episode fires nothing more
        assert len(receiver.received) == 1
    body = Webhook(secret).verify(got.body, got.headers)
    assert body == json.loads(got.body)
    assert (body["alert_id"], body["on"], body["operation"], body["server"]) == (
        alert_id,
        "stale",
        "mirrored",
        "9950",
    )
    assert (body["product"], body["threshold"], body["value"]) == (None, None, None)
    assert (body["last_sync"], body["stale_after_minutes"]) == (None, 1)
    listed = srv.cli("alert", "list", "--operation", "mirrored", "--server", "9950").stdout
    assert "stale" in listed
    mine = srv.token_for("mirrored", server="9950")
    (shown,) = srv.get("/api/v2/alerts", mine.token).json()["data"]
    assert (shown["id"], shown["on"], shown["product"], shown["threshold"]) == (
        alert_id,
        "stale",
        None,
        None,
    )
    _wait(lambda: _deliveries(srv)[0]["state"] == "delivered")
    assert "mirror mirrored is stale: alert" in srv.log()
