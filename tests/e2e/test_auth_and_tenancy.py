"""Tokens, scopes, servers, maintenance, body size and tenant isolation
(docs/api.md, docs/limits.md)."""

from __future__ import annotations

import math
import secrets
import socket
import string
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.backends import pg_dump_text
from tests.e2e.harness import SPEC_CATALOG, VoxServer, envelope_ok

VALIDATE = "PLEASE VALIDATE TOKEN"
ENTER = "PLEASE ENTER THE WOLKVOX-TOKEN"
MAINTENANCE = "SERVER IN MAINTENANCE"

#: Every API route (method, path, params) that needs a token.
API_ROUTES: list[tuple[str, str, dict[str, str]]] = [
    ("GET", "/api/v2/billing.php", {"api": "ivr_minutes"}),
    ("GET", "/api/v2/billing.php", {"api": "all"}),
    ("GET", "/api/v2/information.php", {"api": "token_info"}),
    ("GET", "/api/v2/events", {"date_ini": "20260101000000", "date_end": "20260102000000"}),
    ("POST", "/api/v2/events", {}),
    ("DELETE", "/api/v2/events/some-id", {}),
]


def now_event(event_id: str, product: str = "ivr_minutes", quantity: str = "1") -> dict:  # type: ignore[type-arg]
    return {
        "id": event_id,
        "product": product,
        "time": datetime.now(UTC).isoformat(),
        "quantity": quantity,
    }


def call(
    srv: VoxServer,
    method: str,
    path: str,
    params: dict[str, str],
    token: str | None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    sent = dict(headers or {})
    if token is not None:
        sent["wolkvox-token"] = token
    body = None
    if method == "POST":
        sent["Content-Type"] = "application/json"
        body = b'[{"id": "x-%s", "product": "interactions", "time": "%s"}]' % (
            secrets.token_hex(4).encode(),
            datetime.now(UTC).isoformat().encode(),
        )
    return requests.request(
        method, srv.url(path), params=params, data=body, headers=sent, timeout=30
    )


def window(timezone: str = "UTC") -> dict[str, str]:
    """A listing window of now ± 1 hour, in the operation's local time."""
    local = datetime.now(ZoneInfo(timezone))
    fmt = "%Y%m%d%H%M%S"
    return {
        "date_ini": (local - timedelta(hours=1)).strftime(fmt),
        "date_end": (local + timedelta(hours=1)).strftime(fmt),
    }


def listed(srv: VoxServer, token: str, **extra: str) -> list[dict]:  # type: ignore[type-arg]
    """The ids the reconciliation listing shows this token for now ± 1 hour."""
    reply = srv.get("/api/v2/events", token, params=window() | extra)
    body = envelope_ok(reply, 200, None, reply.json()["msg"])
    assert body.get("next_cursor") is None, body
    return body["data"]  # type: ignore[no-any-return]


def db_files(srv: VoxServer) -> list[Path]:
    if not srv.db.startswith("sqlite:///"):
        return []
    main = Path(srv.db.removeprefix("sqlite:///"))
    return [p for p in (main, Path(f"{main}-wal"), Path(f"{main}-shm")) if p.exists()]


def stored_bytes(srv: VoxServer) -> bytes:
    """Everything the server's database holds: the SQLite files, or PostgreSQL's rows."""
    if srv.db.startswith("sqlite:///"):
        return b"".join(p.read_bytes() for p in db_files(srv))
    return pg_dump_text(srv.db)


# --- 401 / 403 PLEASE VALIDATE TOKEN ------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "params"), API_ROUTES)
def test_no_token_header_is_401(
    server: VoxServer, method: str, path: str, params: dict[str, str]
) -> None:
    reply = call(server, method, path, params, None)
    assert envelope_ok(reply, 401, "UNAUTHORIZED", ENTER)["data"] == []


@pytest.mark.parametrize(("method", "path", "params"), API_ROUTES)
def test_unknown_token_is_403(
    server: VoxServer, method: str, path: str, params: dict[str, str]
) -> None:
    for token in ("vxm_" + secrets.token_urlsafe(32), "not-a-token", secrets.token_hex(16)):
        reply = call(server, method, path, params, token)
        assert envelope_ok(reply, 403, "FORBIDDEN", VALIDATE)["data"] == []


@pytest.mark.serial
def test_revoked_token_stops_working_within_3_seconds(server: VoxServer) -> None:
    tenant = server.tenant()
    spare = server.token_for(tenant.name, description="stays valid")
    assert server.billing(tenant.token, "ivr_minutes").status_code == 200
    assert server.post_events(tenant.token, [now_event("before-revoke")]).status_code == 200

    server.cli("token", "revoke", tenant.token_id)
    revoked_at = time.monotonic()
    while True:
        reply = server.billing(tenant.token, "ivr_minutes")
        if reply.status_code != 200:
            break
        assert time.monotonic() - revoked_at < 3.0, "revoked token still accepted after 3 s"
        time.sleep(0.05)
    envelope_ok(reply, 403, "FORBIDDEN", VALIDATE)
    for method, path, params in API_ROUTES:
        envelope_ok(call(server, method, path, params, tenant.token), 403, "FORBIDDEN", VALIDATE)
    # irreversible, and the operation's other token is unaffected
    time.sleep(1.2)
    envelope_ok(server.billing(tenant.token, "ivr_minutes"), 403, "FORBIDDEN", VALIDATE)
    assert server.items(spare.token, "ivr_minutes") == "1"
    listed = server.cli("token", "list", "--operation", tenant.name).stdout
    assert tenant.token_id in listed
    assert "revoked" in listed


def test_wrong_scope_is_403(server: VoxServer) -> None:
    tenant = server.tenant()
    reader = server.token_for(tenant.name, scopes=["billing:read"], description="reader")
    writer = server.token_for(tenant.name, scopes=["usage:write"], description="writer")

    # a billing:read-only token cannot write or void
    reply = server.post_events(reader.token, [now_event("by-reader")])
    envelope_ok(reply, 403, "FORBIDDEN", VALIDATE)
    reply = requests.delete(
        server.url("/api/v2/events/by-writer"), headers={"wolkvox-token": reader.token}, timeout=30
    )
    envelope_ok(reply, 403, "FORBIDDEN", VALIDATE)

    # a usage:write-only token cannot read billing, information or the event listing
    assert server.post_events(writer.token, [now_event("by-writer", quantity="2.5")]).ok
    envelope_ok(server.billing(writer.token, "ivr_minutes"), 403, "FORBIDDEN", VALIDATE)
    envelope_ok(server.billing(writer.token, "all"), 403, "FORBIDDEN", VALIDATE)
    reply = server.get("/api/v2/information.php", writer.token, params={"api": "token_info"})
    envelope_ok(reply, 403, "FORBIDDEN", VALIDATE)
    envelope_ok(
        server.get("/api/v2/events", writer.token, params=window()), 403, "FORBIDDEN", VALIDATE
    )

    # each does what its scope allows; the refused write stored nothing
    assert server.items(reader.token, "ivr_minutes") == "3"
    assert [e["id"] for e in listed(server, reader.token)] == ["by-writer"]
    reply = requests.delete(
        server.url("/api/v2/events/by-writer"), headers={"wolkvox-token": writer.token}, timeout=30
    )
    assert reply.status_code == 200, reply.text
    assert server.items(reader.token, "ivr_minutes") == "0"


# --- server naming ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def on_9901(server: VoxServer) -> str:
    return server.tenant(server="9901").token


@pytest.mark.parametrize(
    "headers",
    [
        {"wolkvox_server": "9902"},
        {"wolkvox-server": "9902"},
        {"Host": "wv9902.example.com"},
        {"Host": "wv9902.wolkvox.com"},
        {"wolkvox_server": "0990"},
        {"wolkvox_server": "99010"},
    ],
    ids=["underscore", "hyphen", "host", "host-wolkvox", "other-code", "longer-code"],
)
def test_server_mismatch_is_403(server: VoxServer, on_9901: str, headers: dict[str, str]) -> None:
    for method, path, params in API_ROUTES:
        reply = call(server, method, path, params, on_9901, headers)
        assert envelope_ok(reply, 403, "FORBIDDEN", VALIDATE)["data"] == [], (path, headers)
    # the refused POST stored nothing
    assert server.items(on_9901, "interactions") == "0"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"wolkvox_server": "9901"},
        {"wolkvox-server": "9901"},
        {"Host": "wv9901.example.com"},
        {"Host": "wv9901.wolkvox.com"},
        {"wolkvox_server": "9901", "Host": "wv9901.example.com"},
    ],
    ids=["none", "underscore", "hyphen", "host", "host-wolkvox", "both"],
)
def test_matching_server_is_served(
    server: VoxServer, on_9901: str, headers: dict[str, str]
) -> None:
    reply = server.billing(on_9901, "ivr_minutes", headers=headers)
    body = envelope_ok(reply, 200, None, "Information found for the current month")
    assert body["data"][0]["items"] == "0"


@pytest.mark.parametrize(
    "headers",
    [
        {"wolkvox_server": "9901", "Host": "wv9902.example.com"},
        {"wolkvox-server": "9901", "Host": "wv9902.example.com"},
        {"wolkvox_server": "9902", "Host": "wv9901.example.com"},
        {"wolkvox_server": "9901", "wolkvox-server": "9902"},
        {"wolkvox-server": "9902", "wolkvox_server": "9901"},
    ],
    ids=[
        "underscore-ok-host-wrong",
        "hyphen-ok-host-wrong",
        "host-ok-underscore-wrong",
        "hyphen-wrong-last",
        "hyphen-wrong-first",
    ],
)
def test_any_named_server_that_differs_is_403(
    server: VoxServer, on_9901: str, headers: dict[str, str]
) -> None:
    # docs/api.md, Headers: each of the three names a server; when a named server differs, 403
    reply = server.billing(on_9901, "ivr_minutes", headers=headers)
    assert envelope_ok(reply, 403, "FORBIDDEN", VALIDATE)["data"] == [], headers


def raw_get(srv: VoxServer, path: str, header_lines: list[str]) -> tuple[int, bytes]:
    """A request written byte for byte on a socket (no client library touches the headers)."""
    request = "\r\n".join(
        [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{srv.port}", *header_lines, "Connection: close"]
    )
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(request.encode() + b"\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def test_underscore_header_reaches_the_app_raw_on_the_wire(server: VoxServer, on_9901: str) -> None:
    path = "/api/v2/billing.php?api=ivr_minutes"
    status, body = raw_get(server, path, ["wolkvox_server: 9902", f"wolkvox-token: {on_9901}"])
    assert status == 403
    assert VALIDATE.encode() in body
    status, body = raw_get(server, path, ["wolkvox_server: 9901", f"wolkvox-token: {on_9901}"])
    assert status == 200, body


def test_leading_zeros_of_a_server_code_are_kept(server: VoxServer) -> None:
    tenant = server.tenant(server="0042")
    assert server.billing(tenant.token, "ivr_minutes", headers={"wolkvox_server": "0042"}).ok
    assert server.billing(tenant.token, "ivr_minutes", headers={"Host": "wv0042.x.com"}).ok
    for headers in ({"wolkvox_server": "42"}, {"wolkvox-server": "042"}, {"Host": "wv42.x.com"}):
        reply = server.billing(tenant.token, "ivr_minutes", headers=headers)
        envelope_ok(reply, 403, "FORBIDDEN", VALIDATE)


# --- maintenance and body size (servers of their own) --------------------------------------


def poll_status(
    srv: VoxServer, token: str, wanted: int, limit: float
) -> tuple[float, requests.Response]:
    start = time.monotonic()
    while True:
        reply = srv.billing(token, "ivr_minutes")
        elapsed = time.monotonic() - start
        if reply.status_code == wanted or elapsed > limit:
            return elapsed, reply
        time.sleep(0.05)


@pytest.mark.serial
def test_maintenance_on_and_off(make_server: Callable[..., VoxServer]) -> None:
    srv = make_server()
    tenant = srv.tenant()
    assert srv.post_events(tenant.token, [now_event("m1", quantity="1.2")]).ok
    assert srv.items(tenant.token, "ivr_minutes") == "2"

    srv.cli("maintenance", "on")
    elapsed, reply = poll_status(srv, tenant.token, 403, 2.5)
    assert elapsed <= 2.5, f"maintenance took {elapsed:.2f}s"
    assert envelope_ok(reply, 403, "FORBIDDEN", MAINTENANCE)["data"] == []
    for method, path, params in API_ROUTES:
        reply = call(srv, method, path, params, tenant.token)
        envelope_ok(reply, 403, "FORBIDDEN", MAINTENANCE)
    # operational endpoints keep answering
    assert requests.get(srv.url("/healthz"), timeout=10).json() == {"status": "ok"}

    srv.cli("maintenance", "off")
    elapsed, reply = poll_status(srv, tenant.token, 200, 2.5)
    assert elapsed <= 2.5, f"leaving maintenance took {elapsed:.2f}s"
    # nothing was written while in maintenance: the refused POST stored nothing
    assert (
        envelope_ok(reply, 200, None, "Information found for the current month")["data"][0]["items"]
        == "2"
    )
    assert srv.post_events(tenant.token, [now_event("m2", quantity="1")]).ok
    assert srv.items(tenant.token, "ivr_minutes") == "3"


def test_body_over_the_configured_size_is_413(make_server: Callable[..., VoxServer]) -> None:
    srv = make_server("--max-body-bytes", "1000")
    tenant = srv.tenant()
    events = [now_event(f"big-{i}", quantity="1") for i in range(20)]  # ~2 KB of JSON
    reply = srv.post_events(tenant.token, events)
    body = envelope_ok(reply, 413, "PAYLOAD TOO LARGE", reply.json()["msg"])
    assert "1000" in body["msg"], body
    assert body["data"] == []

    # the same body streamed without a Content-Length (chunked) is refused the same way
    import json

    raw = json.dumps(events).encode()

    def chunks() -> object:
        for start in range(0, len(raw), 300):
            yield raw[start : start + 300]

    reply = requests.post(
        srv.url("/api/v2/events"),
        data=chunks(),
        headers={"wolkvox-token": tenant.token, "Content-Type": "application/json"},
        timeout=30,
    )
    body = envelope_ok(reply, 413, "PAYLOAD TOO LARGE", reply.json()["msg"])
    assert "1000" in body["msg"], body

    # nothing was stored; a body under the limit is accepted
    assert srv.items(tenant.token, "ivr_minutes") == "0"
    small = [now_event("small-1", quantity="4")]
    assert len(json.dumps(small)) < 1000
    envelope_ok(srv.post_events(tenant.token, small), 200, None, "1 event accepted")
    assert srv.items(tenant.token, "ivr_minutes") == "4"


# --- tokens and secrets ----------------------------------------------------------------------


def test_tokens_created_while_serving_work_at_once(server: VoxServer) -> None:
    first = server.tenant(server="9903")
    assert server.billing(first.token, "ivr_minutes").status_code == 200
    second = server.token_for(first.name, server="9903", description="made later")
    reply = server.billing(second.token, "ivr_minutes", headers={"wolkvox_server": "9903"})
    envelope_ok(reply, 200, None, "Information found for the current month")
    assert server.post_events(second.token, [now_event("fresh")]).status_code == 200


def random_bits(tokens: list[str]) -> float:
    """Entropy of the part the tokens do not share, judged by the alphabet they use."""
    shared = 0
    while all(len(t) > shared and t[shared] == tokens[0][shared] for t in tokens):
        shared += 1
    rests = [t[shared:] for t in tokens]
    used = set("".join(rests))
    if used <= set(string.hexdigits):
        per_char = 4.0
    elif used <= set(string.ascii_letters + string.digits):
        per_char = math.log2(62)
    else:
        per_char = 6.0  # base64 / base64url
    return min(len(r) for r in rests) * per_char


def test_secrets_are_strong_and_never_listed_logged_or_stored(server: VoxServer) -> None:
    tenant = server.tenant()
    others = [server.token_for(tenant.name, description=f"t{i}") for i in range(3)]
    tokens = [tenant.token, *(o.token for o in others)]
    assert len(set(tokens)) == len(tokens)
    for token in tokens:
        assert 22 <= len(token) <= 256, token
        assert set(token) <= set(string.ascii_letters + string.digits + "-_.~"), token
    assert random_bits(tokens) >= 128, tokens

    # use them: successes, failures, a revoked one, a wrong server, a bad body
    for token in tokens:
        assert server.billing(token, "all").ok
        assert server.post_events(token, [now_event(f"s-{token[-6:]}")]).ok
    assert server.billing(tokens[0], "nope").status_code == 400
    bad = server.post_events(tokens[1], [{"id": "x", "product": "nope", "time": "yesterday"}])
    assert bad.status_code == 400
    reply = requests.post(
        server.url("/api/v2/events"),
        data=b"{not json",
        headers={"wolkvox-token": tokens[1], "Content-Type": "application/json"},
        timeout=30,
    )
    assert reply.status_code == 400
    assert (
        server.billing(tokens[2], "ivr_minutes", headers={"wolkvox_server": "9999"}).status_code
        == 403
    )
    server.cli("token", "revoke", others[2].token_id)
    time.sleep(1.5)  # let the server see the revocation and flush its counters
    assert server.billing(others[2].token, "ivr_minutes").status_code == 403

    listing = server.cli("token", "list")
    scoped = server.cli("token", "list", "--operation", tenant.name)
    for out in (listing, scoped):
        for token in [tenant.token, *(o.token for o in others)]:
            assert token not in out.stdout
            assert token not in out.stderr
        for token_id in [tenant.token_id, *(o.token_id for o in others)]:
            assert token_id in out.stdout

    log = server.log()
    assert str(server.port) in log, "not the server's log? it does not name its port"
    files = db_files(server)
    stored = stored_bytes(server)
    assert tenant.token_id.encode() in stored, "token ids should be in the database file(s)"
    for token in tokens:
        assert token not in log
        assert token.encode() not in stored, [str(p) for p in files]
        # nor its distinctive random part, in case a prefix is stripped before storing
        random_part = token[-24:]
        assert random_part not in log
        assert random_part.encode() not in stored


# --- tenant isolation --------------------------------------------------------------------------


def test_operations_never_see_each_other(server: VoxServer) -> None:
    a = server.tenant()
    b = server.tenant()
    events = [
        now_event("shared-id", "ivr_minutes", "2.5"),
        now_event("a-2", "interactions", "1"),
        now_event("a-3", "interactions", "2"),
        now_event("a-4", "agent_script", "4"),
    ]
    envelope_ok(server.post_events(a.token, events), 200, None, "4 events accepted")
    expected_a = {"ivr_minutes": "3", "interactions": "3", "agent_script": "4"}
    for api, figure in expected_a.items():
        assert server.items(a.token, api) == figure
        assert server.items(b.token, api) == "0"
    b_all = envelope_ok(
        server.billing(b.token, "all"), 200, None, "Information found for the current month"
    )
    assert [r["items"] for r in b_all["data"]] == ["0"] * len(SPEC_CATALOG)
    assert {r["operation"] for r in b_all["data"]} == {b.name}

    assert sorted(e["id"] for e in listed(server, a.token)) == ["a-2", "a-3", "a-4", "shared-id"]
    assert listed(server, b.token) == []
    for product in ("ivr_minutes", "interactions"):
        assert listed(server, b.token, product=product) == []

    # B cannot void A's events
    for event_id in ("shared-id", "a-2"):
        reply = requests.delete(
            server.url("/api/v2/events/" + quote(event_id, safe="")),
            headers={"wolkvox-token": b.token},
            timeout=30,
        )
        body = envelope_ok(reply, 404, reply.json()["error"], reply.json()["msg"])
        assert body["error"], body
    for api, figure in expected_a.items():
        assert server.items(a.token, api) == figure
    a_list = listed(server, a.token)
    assert len(a_list) == 4
    assert not any(e["voided"] for e in a_list)

    # ids are per operation: B may use A's id, and each keeps its own figure
    reply = server.post_events(b.token, [now_event("shared-id", "ivr_minutes", "10")])
    assert envelope_ok(reply, 200, None, "1 event accepted")["data"] == {
        "accepted": 1,
        "duplicates": 0,
    }
    assert server.items(b.token, "ivr_minutes") == "10"
    assert server.items(a.token, "ivr_minutes") == "3"
    # A voiding its own "shared-id" leaves B's alone
    reply = requests.delete(
        server.url("/api/v2/events/shared-id"), headers={"wolkvox-token": a.token}, timeout=30
    )
    assert reply.status_code == 200, reply.text
    assert server.items(a.token, "ivr_minutes") == "0"
    assert server.items(b.token, "ivr_minutes") == "10"


def test_same_name_on_two_servers_are_two_operations(server: VoxServer) -> None:
    name = f"same-{secrets.token_hex(4)}"
    on_1 = server.tenant(name=name, server="9901")
    on_2 = server.tenant(name=name, server="9902")
    assert server.post_events(on_1.token, [now_event("n1", "vision", "3")]).ok
    assert server.items(on_1.token, "vision") == "3"
    assert server.items(on_2.token, "vision") == "0"
    reply = server.billing(on_2.token, "vision", headers={"wolkvox_server": "9901"})
    envelope_ok(reply, 403, "FORBIDDEN", VALIDATE)
    assert listed(server, on_2.token) == []
    assert [e["id"] for e in listed(server, on_1.token)] == ["n1"]
