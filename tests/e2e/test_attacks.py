"""What a client with valid tokens can try against a running server: uploads at the body limit
that are mostly junk, query strings of junk, hanging up mid-upload, a request line naming
another server, two tokens on one request (README Limits, Security)."""

from __future__ import annotations

import http.client
import json
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests.e2e.harness import Tenant, VoxServer, envelope_ok
from tests.e2e.test_security import head, raw_request

MIB = 1024 * 1024
LIMIT = 16 * MIB
"""The default body limit: the largest upload a client may send."""


def _json_zeros() -> bytes:
    return b"[" + b"0," * ((LIMIT - 3) // 2) + b"0]"


def _json_empty_objects() -> bytes:
    return b"[" + b"{}," * ((LIMIT - 4) // 3) + b"{}]"


def _json_zeros_after_blanks() -> bytes:
    """Millions of elements the early looks at the body's first MiB cannot see."""
    start = b"[" + b" " * (2 * MIB)
    return start + b"0," * ((LIMIT - len(start) - 2) // 2) + b"0]"


def _nested_zeros() -> bytes:
    """10,000 elements, each an array of zeros: within the count, so scanned to the end."""
    element = b"[" + b"0," * ((LIMIT // 10_000 - 4) // 2) + b"0]"
    return b"[" + b",".join([element] * 10_000) + b"]"


def _ndjson_lines() -> bytes:
    return b"ab\n" * (LIMIT // 3)


def _valid_padded(tag: str) -> bytes:
    """10,000 valid events, spread out by blanks to the body limit."""
    moment = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    events = [
        json.dumps({"id": f"{tag}-{i}", "product": "interactions", "time": moment}).encode()
        for i in range(10_000)
    ]
    pad = b" " * ((LIMIT - 2 - sum(len(e) + 1 for e in events)) // len(events))
    body = b"[" + b",".join(pad + e for e in events) + b"]"
    assert LIMIT - len(events) < len(body) <= LIMIT
    return body


#: shape: (body for one upload, content type, status, envelope msg)
SHAPES: dict[str, tuple[Callable[[str], bytes], str, int, str]] = {
    "json [0,0,...]": (
        lambda tag: _json_zeros(),
        "application/json",
        400,
        "SOME PARAMETERS ARE REQUIRED: at most 10000 events per request, got 10001 or more",
    ),
    "json [{},{},...]": (
        lambda tag: _json_empty_objects(),
        "application/json",
        400,
        "SOME PARAMETERS ARE REQUIRED: at most 10000 events per request, got 10001 or more",
    ),
    "json 2 MiB of blanks, then [0,0,...]": (
        lambda tag: _json_zeros_after_blanks(),
        "application/json",
        400,
        "SOME PARAMETERS ARE REQUIRED: at most 10000 events per request, got 10001 or more",
    ),
    "json 10,000 arrays of zeros": (
        lambda tag: _nested_zeros(),
        "application/json",
        400,
        "SOME PARAMETERS ARE REQUIRED: invalid events",
    ),
    "ndjson ab lines": (
        lambda tag: _ndjson_lines(),
        "application/x-ndjson",
        400,
        "SOME PARAMETERS ARE REQUIRED: at most 10000 events per request, got 10001 or more",
    ),
    "10,000 valid events, padded": (
        _valid_padded,
        "application/json",
        200,
        "10000 events accepted",
    ),
}


def status_kib(pid: int, field: str) -> int:
    """A `/proc/<pid>/status` figure (VmRSS, VmHWM) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def reset_peak(pid: int) -> int:
    """Start measuring the peak (VmHWM) afresh; the current RSS in KiB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return status_kib(pid, "VmRSS")


def pid_of(srv: VoxServer) -> int:
    assert srv.proc is not None
    return srv.proc.pid


def tokens_of(srv: VoxServer, count: int) -> list[Tenant]:
    first = srv.tenant(licenses=10)
    return [first, *(srv.token_for(first.name) for _ in range(count - 1))]


# === 1. An upload's memory is bounded by the body limit, not by its element count ==========


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.serial  # resident memory figures: measured alone
def test_eight_uploads_at_the_body_limit_keep_memory_and_health(
    make_server: Callable[..., VoxServer], shape: str
) -> None:
    """Eight uploads at once (four tokens, two slots each) of the largest body allowed: the
    server grows by less than 100 MB and keeps answering `/healthz`, and each upload gets its
    documented reply."""
    build, content_type, status, msg = SHAPES[shape]
    srv = make_server()
    tenants = tokens_of(srv, 4)
    bodies = [build(uuid.uuid4().hex[:8]) for _ in range(8)]
    assert all(len(b) <= LIMIT for b in bodies)
    reply = srv.post_events(tenants[0].token, [])  # warm up the ingest path
    assert reply.status_code == 400, reply.text
    pid = pid_of(srv)
    before = reset_peak(pid)

    replies: list[requests.Response] = []
    failures: list[BaseException] = []

    def upload(token: str, body: bytes) -> None:
        try:
            replies.append(
                requests.post(
                    srv.url("/api/v2/events"),
                    data=body,
                    headers={"wolkvox-token": token, "Content-Type": content_type},
                    timeout=120,
                )
            )
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [
        threading.Thread(target=upload, args=(tenants[i // 2].token, body))
        for i, body in enumerate(bodies)
    ]
    for thread in threads:
        thread.start()
    slowest = 0.0
    while any(t.is_alive() for t in threads):
        started = time.monotonic()
        health = requests.get(srv.url("/healthz"), timeout=30)
        slowest = max(slowest, time.monotonic() - started)
        assert health.status_code == 200
        time.sleep(0.01)
    for thread in threads:
        thread.join()
    grown_mib = (status_kib(pid, "VmHWM") - before) / 1024

    assert not failures, failures
    assert grown_mib < 100, f"the server grew by {grown_mib:.0f} MiB"
    # Still answering while the uploads run (the speed target is bench/attacks.py's).
    assert slowest < 1.0, f"/healthz took {slowest:.2f} s"
    assert len(replies) == 8
    for reply in replies:
        envelope_ok(reply, status, None if status == 200 else "BAD REQUEST", msg)


# === 2. Junk query strings do not grow the billing reply cache ==============================


@pytest.mark.serial  # resident memory figures: measured alone
def test_junk_query_strings_leave_memory_flat(make_server: Callable[..., VoxServer]) -> None:
    """5,000 billing reads, each with 60,000 bytes of an unused parameter: one cached reply,
    not 5,000 (the cache is keyed by what changes the reply)."""
    srv = make_server()
    tenant = srv.tenant(licenses=6)
    expected = srv.billing(tenant.token, "ivr_minutes")
    assert expected.status_code == 200, expected.text
    pid = pid_of(srv)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)

    def junk_read() -> None:
        path = f"/api/v2/billing.php?api=ivr_minutes&z={secrets.token_hex(30_000)}"
        conn.request("GET", path, headers={"wolkvox-token": tenant.token})
        reply = conn.getresponse()
        body = reply.read()
        assert reply.status == 200, body[:300]
        assert json.loads(body) == expected.json()

    try:
        for _ in range(100):  # warm up
            junk_read()
        before = reset_peak(pid)
        for _ in range(5_000):
            junk_read()
    finally:
        conn.close()
    grown_mib = (status_kib(pid, "VmHWM") - before) / 1024
    assert grown_mib < 20, f"the server grew by {grown_mib:.0f} MiB"


# === 3. A client hanging up mid-upload is the client's doing ================================


def test_a_client_hanging_up_mid_upload_is_one_quiet_line(
    make_server: Callable[..., VoxServer],
) -> None:
    srv = make_server()
    tenant = srv.tenant()
    request = head(
        "POST",
        "/api/v2/events",
        f"wolkvox-token: {tenant.token}",
        "Content-Type: application/json",
        length=1_000_000,
    )
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(request + b'[{"id": "half", "product": "rsync"' + b" " * 500_000)
        time.sleep(0.3)  # the server is reading the body
    deadline = time.monotonic() + 10
    while "disconnect" not in srv.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    metrics = requests.get(srv.url("/metrics"), timeout=30).text
    assert srv.get("/healthz").status_code == 200
    log = srv.log()

    assert 'status="500"' not in metrics, metrics
    assert 'voxmeter_client_disconnects_total{route="events"} 1.0' in metrics, metrics
    assert "Traceback" not in log, log
    assert "ERROR" not in log, log
    told = [line for line in log.splitlines() if "disconnect" in line.lower()]
    assert len(told) == 1, log
    assert " INFO " in told[0], told
    assert "POST /api/v2/events" in told[0], told
    assert srv.items(tenant.token, "rsync") == "0"


# === 4. The host a request addresses, and its one token =====================================


@pytest.fixture(scope="module")
def tenant(server: VoxServer) -> Tenant:
    return server.tenant(server="9901")


def absolute(target_host: str, token: str, *lines: str) -> bytes:
    path = f"http://{target_host}/api/v2/billing.php?api=ivr_minutes"
    return head("GET", path, f"wolkvox-token: {token}", *lines).replace(b"Host: 127.0.0.1\r\n", b"")


@pytest.mark.parametrize(
    ("target_host", "host_header", "status"),
    [
        ("wv9902.example", "x", 403),
        ("wv9902.example:8080", "wv9901.example", 403),
        ("user@wv9902.example", "wv9901.example", 403),
        ("wv9901.example", "wv9902.example", 200),
        ("127.0.0.1", "wv9902.example", 200),
    ],
)
def test_the_request_line_host_is_the_effective_host(
    server: VoxServer, tenant: Tenant, target_host: str, host_header: str, status: int
) -> None:
    """A request line in absolute form names the host the client addresses; a `Host` header
    beside it does not count."""
    request = absolute(target_host, tenant.token, f"Host: {host_header}")
    reply = raw_request(server.port, [request])
    assert reply.status == status, reply.data[:300]
    if status == 403:
        body = reply.body
        assert (body["code"], body["error"]) == (403, "FORBIDDEN")
        assert body["msg"] == "PLEASE VALIDATE TOKEN"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v2/billing.php?api=ivr_minutes",
        "/api/v2/information.php?api=token_info",
        "/api/v2/events?date_ini=20260101000000&date_end=20260102000000",
    ],
)
def test_two_token_headers_are_refused(server: VoxServer, tenant: Tenant, path: str) -> None:
    """Two `wolkvox-token` headers: a 400 naming the header, not whichever came last."""
    other = server.tenant(server="9901")
    for first, second in ((tenant.token, other.token), (tenant.token, tenant.token)):
        request = head("GET", path, f"wolkvox-token: {first}", f"wolkvox-token: {second}")
        reply = raw_request(server.port, [request])
        assert reply.status == 400, reply.data[:300]
        body = reply.body
        assert (body["code"], body["error"], body["data"]) == (400, "BAD REQUEST", [])
        assert body["msg"] == (
            "SOME PARAMETERS ARE REQUIRED: send the wolkvox-token header once, not several times"
        )
