"""Security: secrets never in logs, CLI output or storage; tokens checked in constant time on
every endpoint; every documented endpoint isolated between operations; request size and time
limits; security headers (docs/behaviour.md, Tokens, Limits and Security)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import select
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
import pytest
import requests
from standardwebhooks.webhooks import Webhook

from bench.receiver import Received, Receiver
from tests.backends import REDIS_URL, pg_dump_text, pg_url, schema_of
from tests.e2e.conftest import Databases
from tests.e2e.harness import (
    SPEC_CATALOG,
    Tenant,
    VoxServer,
    accepted_msg,
    admin_context,
    envelope_ok,
    free_port,
)
from tests.proxy import CuttableProxy

VALIDATE = "PLEASE VALIDATE TOKEN"
SECRET_KEY_ENV = {"VOXMETER_SECRET_KEY": "0p4JyKX1bFgqXv1hQ7xPRZ3eFObXW0K0kGgZlqQ6uJM="}
"""The deployment key that seals webhook secrets (a PostgreSQL deployment keeps no key file)."""
WIDTH = 16
"""A secret counts as leaked when any run of this many of its characters shows up."""
API_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
NOSNIFF = "nosniff"
CSP = "default-src 'none'; frame-ancestors 'none'"

Event = dict[str, object]


# --- finding secrets ------------------------------------------------------------------------


def slices(text: str, width: int = WIDTH) -> set[str]:
    return {text[i : i + width] for i in range(len(text) - width + 1)}


def secret_forms(secret: str) -> dict[str, str]:
    """The secret as text, and its random part as raw bytes (latin-1) and as hex."""
    forms = {"text": secret}
    rest = secret.removeprefix("vxm_")
    try:
        raw = base64.urlsafe_b64decode(rest + "=" * (-len(rest) % 4))
    except ValueError:
        return forms
    forms["raw"] = raw.decode("latin-1")
    forms["hex"] = raw.hex()
    return forms


def leaks(secret_list: Iterable[str], where: str | bytes) -> list[str]:
    """Which secrets (by their first characters) have a WIDTH-long run in `where`."""
    text = where.decode("latin-1") if isinstance(where, bytes) else where
    found = []
    for secret in secret_list:
        for form, value in secret_forms(secret).items():
            hit = next((s for s in slices(value) if s in text), None)
            if hit is not None:
                found.append(f"{secret[:8]}… as {form}: {hit!r}")
    return found


def db_files(db: str) -> list[Path]:
    main = Path(db.removeprefix("sqlite:///"))
    return [p for p in (main, Path(f"{main}-wal"), Path(f"{main}-shm")) if p.exists()]


def stored_bytes(db: str) -> bytes:
    """What the database holds: the SQLite file and its -wal/-shm, or every PostgreSQL row."""
    if db.startswith("sqlite:///"):
        return b"".join(p.read_bytes() for p in db_files(db))
    return pg_dump_text(db)


def redis_bytes(prefix: str) -> bytes:
    """Every key under `prefix` with its serialized value."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        out = []
        for key in client.scan_iter(f"{prefix}*", count=1000):
            out += [key, client.dump(key) or b""]  # type: ignore[list-item]
        return b"\n".join(out)
    finally:
        client.close()


# --- raw HTTP ---------------------------------------------------------------------------------


@dataclass
class RawReply:
    data: bytes
    elapsed: float

    @property
    def status(self) -> int:
        """The status code, or 0 when the connection closed without a reply."""
        if not self.data.startswith(b"HTTP/1."):
            return 0
        return int(self.data.split(b" ", 2)[1])

    @property
    def headers(self) -> dict[str, str]:
        head = self.data.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")[1:]
        return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head)}

    @property
    def body(self) -> dict:  # type: ignore[type-arg]
        return json.loads(self.data.partition(b"\r\n\r\n")[2])  # type: ignore[no-any-return]


def raw_request(
    port: int, chunks: Sequence[bytes], gap: float = 0.0, timeout: float = 20.0
) -> RawReply:
    """Send `chunks` (`gap` seconds apart, stopping early once the server answers or closes),
    then read until the server closes the connection."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for index, chunk in enumerate(chunks):
            if index and gap:
                time.sleep(gap)
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(chunk)
            except OSError:
                break
        data = b""
        try:
            while piece := sock.recv(65536):
                data += piece
        except OSError:
            pass
    return RawReply(data, time.monotonic() - started)


def head(method: str, path: str, *lines: str, length: int | None = None) -> bytes:
    """A request head with `Connection: close` (and a Content-Length if given)."""
    extra = [f"Content-Length: {length}"] if length is not None else []
    text = "\r\n".join([f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *lines, *extra])
    return (text + "\r\nConnection: close\r\n\r\n").encode("latin-1")


# --- events and windows -----------------------------------------------------------------------


def event(event_id: str, product: str = "ivr_minutes", quantity: str | None = "1") -> Event:
    out: Event = {
        "id": event_id,
        "product": product,
        "time": (datetime.now(UTC) - timedelta(seconds=2)).isoformat(),
    }
    if quantity is not None:
        out["quantity"] = quantity
    return out


def window(back: timedelta = timedelta(hours=2), timezone: str = "UTC") -> dict[str, str]:
    local = datetime.now(ZoneInfo(timezone))
    fmt = "%Y%m%d%H%M%S"
    return {
        "date_ini": (local - back).strftime(fmt),
        "date_end": (local + timedelta(hours=1)).strftime(fmt),
    }


def post_json(srv: VoxServer, token: str, body: bytes, **headers: str) -> requests.Response:
    sent = {"wolkvox-token": token, "Content-Type": "application/json", **headers}
    return requests.post(srv.url("/api/v2/events"), data=body, headers=sent, timeout=30)


def create_token(
    srv: VoxServer, name: str, server: str, description: str, *scopes: str
) -> tuple[Tenant, subprocess.CompletedProcess[str]]:
    """`voxmeter token create`, keeping its output."""
    scope_args = [a for s in scopes for a in ("--scope", s)]
    out = srv.cli(
        "token",
        "create",
        "--operation",
        name,
        "--server",
        server,
        "--description",
        description,
        *scope_args,
    )
    lines = out.stdout.strip().splitlines()
    return Tenant(name, server, lines[-1], lines[0].split()[1]), out


# === 1-2. Secrets in logs, CLI output and storage ============================================


@dataclass
class Exposure:
    """Everything a deployment writes down while its tokens are created, used and misused."""

    secrets: dict[str, str] = field(default_factory=dict)
    hashes: list[str] = field(default_factory=list)
    token_ids: list[str] = field(default_factory=list)
    creations: list[tuple[str, subprocess.CompletedProcess[str]]] = field(default_factory=list)
    cli: list[tuple[str, str]] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    log: str = ""
    stored_running: bytes = b""
    stored_stopped: bytes = b""
    redis: bytes = b""
    history: bytes = b""
    webhook_secret: str = ""
    webhook_creation: subprocess.CompletedProcess[str] | None = None
    webhook_posts: list[Received] = field(default_factory=list)


def _alert_delivered(admin: VoxServer, srv: VoxServer, ex: Exposure, main: Tenant) -> None:
    """An alert created with a generated secret, fired and delivered (signed with the secret),
    its deliveries listed: the secret was stored, opened and used."""
    with Receiver() as receiver:
        made = admin.cli(
            "alert",
            "create",
            "--operation",
            "main",
            "--server",
            "9901",
            "--product",
            "rsync",
            "--threshold",
            "1",
            "--webhook",
            receiver.url,
            env=SECRET_KEY_ENV,
        )
        ex.webhook_creation = made
        ex.webhook_secret = made.stdout.strip().splitlines()[-1]
        assert srv.post_events(main.token, [event("fires-alert", "rsync", "2")]).ok
        ex.webhook_posts = receiver.wait(1)
    for command in (
        ("alert", "list"),
        ("alert", "deliveries"),
        ("alert", "deliveries", "--format", "json"),
    ):
        ex.cli.append((" ".join(command), admin.cli(*command).stdout))
    ex.cli.append(("GET /api/v2/alerts", srv.get("/api/v2/alerts", main.token).text))


def _misuse(srv: VoxServer, ex: Exposure, tokens: dict[str, Tenant]) -> None:
    """Every way a token reaches the server: good, wrong, misplaced, with errors of all kinds."""
    main, reader, writer = tokens["main"].token, tokens["reader"].token, tokens["writer"].token
    other = tokens["other-server"].token
    status = ex.statuses

    status["billing"] = srv.billing(main, "all").status_code
    status["information"] = srv.get(
        "/api/v2/information.php", main, params={"api": "token_info"}
    ).status_code
    status["ingest"] = srv.post_events(main, [event("log-1"), event("log-2")]).status_code
    status["listing"] = srv.get("/api/v2/events", main, params=window()).status_code
    audit = srv.get("/api/v2/audit", main, params=window(timedelta(days=1)))
    status["audit"] = audit.status_code
    ex.cli.append(("GET /api/v2/audit", audit.text))
    status["void"] = requests.delete(
        srv.url("/api/v2/events/log-1"), headers={"wolkvox-token": main}, timeout=30
    ).status_code
    status["other-server"] = srv.billing(
        other, "ivr_minutes", headers={"wolkvox_server": "9902"}
    ).status_code

    status["reader-writes"] = srv.post_events(reader, [event("by-reader")]).status_code
    status["writer-reads"] = srv.billing(writer, "all").status_code
    status["wrong-server-header"] = srv.billing(
        main, "all", headers={"wolkvox_server": "9902"}
    ).status_code
    status["wrong-server-host"] = srv.billing(
        main, "all", headers={"Host": "wv9902.example.com"}
    ).status_code
    for label, variant in {
        "appended": main + "x",
        "truncated": main[:-1],
        "upper": main.upper(),
        "doubled": f"{main}, {main}",
    }.items():
        status[f"malformed-{label}"] = srv.billing(variant, "all").status_code
    status["bearer"] = requests.get(
        srv.url("/api/v2/billing.php"),
        params={"api": "all"},
        headers={"Authorization": f"Bearer {main}"},
        timeout=30,
    ).status_code
    status["query"] = requests.get(
        srv.url("/api/v2/billing.php"),
        params={"api": "all", "wolkvox-token": main, "token": main},
        timeout=30,
    ).status_code
    status["query-and-header"] = srv.get(
        "/api/v2/billing.php", main, params={"api": "all", "wolkvox-token": main}
    ).status_code
    status["api-value"] = srv.billing(main, main).status_code
    status["month-value"] = srv.billing(main, "all", month=main).status_code
    status["listing-params"] = srv.get(
        "/api/v2/events", main, params={"date_ini": main, "date_end": main, "cursor": main}
    ).status_code
    status["audit-params"] = srv.get(
        "/api/v2/audit", main, params={"date_ini": main, "date_end": main, "cursor": main}
    ).status_code
    status["path"] = srv.get(f"/api/v2/{main}", main).status_code
    status["void-id"] = requests.delete(
        srv.url(f"/api/v2/events/{quote(main, safe='')}"),
        headers={"wolkvox-token": main},
        timeout=30,
    ).status_code
    status["method"] = requests.put(
        srv.url(f"/api/v2/events?token={main}"), headers={"wolkvox-token": main}, timeout=30
    ).status_code
    status["bad-event"] = srv.post_events(main, [{"id": main, "product": main}]).status_code
    status["bad-json"] = post_json(srv, main, b'[{"id": "' + main.encode() + b'"').status_code
    status["too-large"] = post_json(srv, main, json.dumps([event(main)] * 80).encode()).status_code
    status["content-type"] = post_json(
        srv, main, b"[]", **{"Content-Type": f"text/{main}"}
    ).status_code

    token_line = f"wolkvox-token: {main}"
    stalled = raw_request(
        srv.port,
        [head("POST", "/api/v2/events", token_line, "Content-Type: application/json", length=500)],
    )
    status["stalled-upload"] = stalled.status
    slow = raw_request(
        srv.port, [b"GET /api/v2/billing.php?api=all HTTP/1.1\r\n", token_line.encode()]
    )
    status["slow-head"] = slow.status
    big = raw_request(
        srv.port,
        [head("GET", "/api/v2/billing.php?api=all", token_line, "x-big: " + "a" * 100_000)],
    )
    status["huge-header"] = big.status
    status["invalid-http"] = raw_request(
        srv.port,
        [f"GET /healthz HTTP/1.1\r\n{token_line}\r\nbad header\x01: {main}\r\n\r\n".encode()],
    ).status
    status["latin1-token"] = raw_request(
        srv.port, [head("GET", "/api/v2/billing.php?api=all", token_line + "\xe9")]
    ).status

    assert srv.billing(tokens["revoked"].token, "all").ok  # in the server's cache when revoked
    srv.cli("token", "revoke", tokens["revoked"].token_id)
    deadline = time.monotonic() + 5
    while srv.billing(tokens["revoked"].token, "all").status_code == 200:
        assert time.monotonic() < deadline, "the revoked token kept working"
        time.sleep(0.1)
    status["revoked"] = srv.post_events(tokens["revoked"].token, [event("late")]).status_code


def _outage(
    srv: VoxServer, ex: Exposure, proxies: list[CuttableProxy], tokens: dict[str, Tenant]
) -> None:
    """PostgreSQL, then Redis, cut while tokens are presented: one just used (so still cached
    and admitted, its count then unsaveable), one never seen before."""
    main, fresh = tokens["main"].token, tokens["fresh"].token
    postgres, redis = proxies
    assert srv.billing(main, "all").ok
    postgres.cut()
    try:
        ex.statuses["outage-cached"] = srv.billing(main, "ivr_minutes").status_code
        ex.statuses["outage-fresh"] = srv.billing(fresh, "all").status_code
        redis.cut()
        ex.statuses["outage-ingest"] = srv.post_events(fresh, [event("outage")]).status_code
        deadline = time.monotonic() + 15
        while "could not persist request counters" not in srv.log():  # a counter flush fails
            assert time.monotonic() < deadline, "the failed counter flush was not logged"
            time.sleep(0.1)
    finally:
        for proxy in proxies:
            proxy.restore()
    deadline = time.monotonic() + 15
    while srv.billing(fresh, "all").status_code != 200:
        assert time.monotonic() < deadline, "service did not resume after the outage"
        time.sleep(0.2)


def voxmeter(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, with `env` added to the environment."""
    return subprocess.run(
        [sys.executable, "-m", "voxmeter", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


def _cli_clients(srv: VoxServer, ex: Exposure, tokens: dict[str, Tenant], tmp: Path) -> None:
    """`voxmeter usage` and `voxmeter watch` with good and revoked tokens."""
    main, revoked = tokens["main"], tokens["revoked"]
    for label, tenant in (("good", main), ("revoked", revoked)):
        result = voxmeter(
            "usage",
            "--server",
            "9901",
            "--base-url",
            srv.base,
            "--token-env",
            "VOXTOK",
            "--all",
            env={"VOXTOK": tenant.token},
        )
        assert (result.returncode == 0) == (label == "good"), result.stderr
        ex.cli.append((f"usage {label}", result.stdout + result.stderr))
    config = tmp / "operations.toml"
    config.write_text(
        f'[[operation]]\nname = "main"\nserver = "9901"\nbase_url = "{srv.base}"\n'
        f'interval_minutes = 1\ntoken_env = "VOXTOK"\n'
        f'[[operation]]\nname = "gone"\nserver = "9901"\nbase_url = "{srv.base}"\n'
        f'interval_minutes = 1\ntoken = "{revoked.token}"\n',
        encoding="utf-8",
    )
    config.chmod(0o600)
    history = tmp / "history.db"
    for run in range(2):
        result = voxmeter(
            "watch",
            "--config",
            str(config),
            "--db",
            f"sqlite:///{history}",
            "--once",
            env={"VOXTOK": main.token},
        )
        assert result.returncode in (0, 2), result.stderr
        ex.cli.append((f"watch {run}", result.stdout + result.stderr))
    with sqlite3.connect(history) as conn:
        errors = conn.execute(
            "SELECT state FROM mirrors JOIN operations ON id = operation_id WHERE name = 'gone'"
        ).fetchall()
    assert "last_error" in errors[0][0], "the revoked token's sweep failure was not recorded"
    ex.history = b"".join(p.read_bytes() for p in tmp.glob("history.db*"))


@pytest.fixture(scope="module")
def exposure(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exposure]:
    """A server of its own (PostgreSQL and Redis behind cuttable proxies when scaled out), its
    tokens used in every way, then stopped: what it printed, logged and stored."""
    folder = tmp_path_factory.mktemp("exposure")
    ex = Exposure()
    with ExitStack() as stack:
        dbs = Databases(backend, folder, stack)
        db = dbs.new()
        env = dbs.server_env(db, {**SECRET_KEY_ENV, "VOXMETER_DELIVERY_POLL": "0.05"})
        args: tuple[str, ...] = ("--request-timeout", "1.5", "--max-body-bytes", "4096")
        served_db = db
        proxies: list[CuttableProxy] = []
        if backend == "postgres":
            proxies = [CuttableProxy(("127.0.0.1", 5432)), CuttableProxy(("127.0.0.1", 6379))]
            for proxy in proxies:
                stack.callback(proxy.close)
            served_db = pg_url(schema_of(db), port=proxies[0].port)
            args += ("--redis", f"redis://127.0.0.1:{proxies[1].port}/0")
        srv = VoxServer(db=served_db, port=free_port(), args=args, env=env).start(folder)
        stack.callback(srv.stop)
        admin = VoxServer(db=db, port=srv.port)

        tokens: dict[str, Tenant] = {}
        for server_code in ("9901", "9902"):
            admin.cli("operation", "create", "main", "--server", server_code)
        specs = {
            "main": ("9901", ()),
            "reader": ("9901", ("billing:read",)),
            "writer": ("9901", ("usage:write",)),
            "other-server": ("9902", ()),
            "revoked": ("9901", ()),
            "fresh": ("9901", ()),
        }
        # Independent CLI processes: run side by side, kept in the order of `specs`.
        with ThreadPoolExecutor(len(specs)) as pool:
            created = pool.map(
                lambda item: create_token(
                    admin, "main", item[1][0], f"{item[0]} token", *item[1][1]
                ),
                specs.items(),
            )
            for label, (tenant, out) in zip(specs, created, strict=True):
                tokens[label] = tenant
                ex.creations.append((tenant.token, out))
        ex.secrets = {label: t.token for label, t in tokens.items()}
        ex.hashes = [hashlib.sha256(s.encode()).hexdigest() for s in ex.secrets.values()]
        ex.token_ids = [t.token_id for t in tokens.values()]

        _alert_delivered(admin, srv, ex, tokens["main"])
        _misuse(srv, ex, tokens)
        if proxies:
            _outage(srv, ex, proxies, tokens)
        _cli_clients(srv, ex, tokens, folder)
        commands = (
            ("token", "list"),
            ("token", "list", "--operation", "main", "--server", "9901"),
            ("operation", "list"),
            ("audit",),
            ("audit", "--format", "json"),
            ("audit", "--format", "csv"),
            ("audit", "--operation", "main", "--server", "9901"),
        )
        with ThreadPoolExecutor(len(commands)) as pool:
            listed = pool.map(lambda command: admin.cli(*command), commands)
            for command, result in zip(commands, listed, strict=True):
                ex.cli.append((" ".join(command), result.stdout + result.stderr))

        time.sleep(1.2)  # request counts and last-used times reach the database
        ex.stored_running = stored_bytes(db)
        if backend == "postgres":
            ex.redis = redis_bytes(env["VOXMETER_REDIS_PREFIX"])
        assert srv.stop() == 0
        ex.log = srv.log()
        ex.stored_stopped = stored_bytes(db)
        yield ex


def test_token_create_shows_the_secret_once_as_its_last_line(exposure: Exposure) -> None:
    assert len(exposure.creations) == 6
    for secret, out in exposure.creations:
        lines = out.stdout.strip().splitlines()
        assert lines[-1] == secret
        assert leaks([secret], "\n".join(lines[:-1])) == []
        assert leaks([secret], out.stderr) == []
        others = [s for s in exposure.secrets.values() if s != secret]
        assert leaks(others, out.stdout + out.stderr) == []


def test_a_webhook_secret_is_shown_once_then_never_again(exposure: Exposure) -> None:
    """Generated, printed as the last line of `alert create`, used to sign the delivery (so it
    was stored and opened), and found nowhere else: not in the rest of that output, the server
    log, any other command's output, the API, the database files or dump, or Redis."""
    secret = exposure.webhook_secret
    made = exposure.webhook_creation
    assert made is not None
    assert secret.startswith("whsec_")
    lines = made.stdout.strip().splitlines()
    assert lines[-1] == secret
    assert leaks([secret], "\n".join(lines[:-1]) + made.stderr) == []
    (post,) = exposure.webhook_posts
    assert Webhook(secret).verify(post.body, post.headers)["product"] == "rsync"
    assert leaks([secret], exposure.log) == []
    for command, output in exposure.cli:
        assert leaks([secret], output) == [], command
    assert '"state": "delivered"' in dict(exposure.cli)["alert deliveries --format json"]
    for stored in (exposure.stored_running, exposure.stored_stopped, exposure.redis):
        assert leaks([secret], stored) == []
    assert b"gAAAAA" in exposure.stored_stopped, "the sealed secret is not in what was searched"


def test_every_misuse_was_answered_as_documented(exposure: Exposure) -> None:
    """The log and storage checks mean something only if every path really ran."""
    expected = {
        "billing": 200,
        "information": 200,
        "ingest": 200,
        "listing": 200,
        "audit": 200,
        "void": 200,
        "other-server": 200,
        "reader-writes": 403,
        "writer-reads": 403,
        "wrong-server-header": 403,
        "wrong-server-host": 403,
        "malformed-appended": 403,
        "malformed-truncated": 403,
        "malformed-upper": 403,
        "malformed-doubled": 403,
        "bearer": 401,
        "query": 401,
        "query-and-header": 200,
        "api-value": 400,
        "month-value": 400,
        "listing-params": 400,
        "audit-params": 400,
        "path": 400,
        "void-id": 404,
        "method": 405,
        "bad-event": 400,
        "bad-json": 400,
        "too-large": 413,
        "content-type": 400,
        "stalled-upload": 504,
        "slow-head": 408,
        "huge-header": 431,
        "invalid-http": 400,
        "latin1-token": 403,
        "revoked": 403,
    }
    if "outage-fresh" in exposure.statuses:
        expected |= {"outage-cached": 503, "outage-fresh": 503, "outage-ingest": 503}
    assert exposure.statuses == expected


def test_no_secret_in_the_server_log(exposure: Exposure, backend: str) -> None:
    log = exposure.log
    assert "Uvicorn running on" in log, log
    assert "Invalid HTTP request received" in log, "the log did not capture the server's warnings"
    if backend == "postgres":
        assert "could not persist request counters" in log, "the outage was not logged"
    assert leaks(exposure.secrets.values(), log) == [], log


def test_no_secret_in_cli_output(exposure: Exposure) -> None:
    outputs = dict(exposure.cli)
    assert any(tid in outputs["token list"] for tid in exposure.token_ids), outputs["token list"]
    for command in ("audit", "audit --format json", "audit --format csv", "GET /api/v2/audit"):
        # the audit log names every created token (by id), so a leak would show here
        created = [t for t in exposure.token_ids if t in outputs[command]]
        assert created, (command, outputs[command])
        assert [h for h in exposure.hashes if h in outputs[command]] == [], command
    assert "InvalidTokenError" in outputs["usage revoked"], outputs["usage revoked"]
    for command, output in exposure.cli:
        assert leaks(exposure.secrets.values(), output) == [], (command, output)


def test_no_secret_stored_in_plaintext(exposure: Exposure, backend: str) -> None:
    """Only SHA-256 hashes: neither the secret, nor its random part raw or as hex, anywhere in
    the database (SQLite file, -wal and -shm while serving and after; or every PostgreSQL row),
    Redis, or the watch history."""
    for name, stored in (
        ("running", exposure.stored_running),
        ("stopped", exposure.stored_stopped),
    ):
        for digest in exposure.hashes:
            assert digest.encode() in stored, f"{name}: not the database that holds the tokens"
        assert leaks(exposure.secrets.values(), stored) == [], name
    if backend == "postgres":
        assert b"tok_" in exposure.redis, "not the Redis that holds the limits"
        assert leaks(exposure.secrets.values(), exposure.redis) == []
    assert b"mirror_readings" in exposure.history
    assert leaks(exposure.secrets.values(), exposure.history) == []


# === 3. Constant-time verification on every endpoint, in process at DEBUG ====================


def _in_process_request(
    path: str, method: str, token: str, event_id: str
) -> tuple[str, str, dict[str, str], bytes | None]:
    """(method, url, headers, body) of a request with `token` for one documented operation."""
    headers = {"wolkvox-token": token}
    query = f"?api=all&token={token}"
    body = None
    if (method, path) == ("get", "/api/v2/information.php"):
        query = f"?api=token_info&token={token}"
    elif (method, path) in (("get", "/api/v2/events"), ("get", "/api/v2/audit")):
        stamps = window()
        query = f"?date_ini={stamps['date_ini']}&date_end={stamps['date_end']}&token={token}"
    elif (method, path) == ("post", "/api/v2/events"):
        headers["Content-Type"] = "application/json"
        body = json.dumps([event(event_id)]).encode()
    elif (method, path) == ("delete", "/api/v2/events/{event_id}"):
        path = f"/api/v2/events/{event_id}"
    elif (method, path) not in (
        ("get", "/api/v2/billing.php"),
        ("get", "/api/v2/daily"),
        ("get", "/api/v2/forecast"),
        ("get", "/api/v2/statement"),
        ("get", "/api/v2/alerts"),
    ):
        raise AssertionError(f"no in-process request for {method.upper()} {path}: add one")
    return method.upper(), path + query, headers, body


def asgi_request(
    app: object,
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
) -> httpx.Response:
    """One request to an ASGI app in this process."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.request(method, url, headers=headers, content=content)

    return asyncio.run(send())


def test_tokens_are_checked_in_constant_time_and_never_logged_at_debug(
    backend: str,
    databases: Databases,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every documented endpoint that takes a token compares its hash with hmac.compare_digest
    (a fresh token each time, so no cache answers), and with every logger at DEBUG, an
    unexpected failure (500) logs neither the token header nor a token in the query string."""
    from voxmeter import bootstrap
    from voxmeter.config import Settings
    from voxmeter.entrypoints.http import billing, events
    from voxmeter.entrypoints.http.app import create_app
    from voxmeter.service import tenancy

    db = databases.new()
    settings = Settings(database_url=db)
    if backend == "postgres":
        prefix = databases.server_env(db, {})["VOXMETER_REDIS_PREFIX"]
        settings = Settings(database_url=db, redis_url=REDIS_URL, redis_prefix=prefix)
    ctx = bootstrap.context(settings)
    state = bootstrap.app_state(settings, ctx)
    op = tenancy.create_operation(ctx, "acme", "9901")

    compared: list[tuple[object, object]] = []
    real = hmac.compare_digest

    def spy(a: object, b: object) -> bool:
        compared.append((a, b))
        return real(a, b)  # type: ignore[arg-type]

    for module in (hmac, secrets):
        monkeypatch.setattr(module, "compare_digest", spy)
    monkeypatch.setattr(tenancy, "compare_digest", spy, raising=False)
    caplog.set_level(logging.DEBUG)

    used: list[str] = []
    try:
        app = create_app(state, background=False)
        _, setup = tenancy.create_token(ctx, op, "setup", [])
        used.append(setup)
        document = asgi_request(app, "GET", "/openapi.json").json()
        operations = [
            (path, method)
            for path, item in document["paths"].items()
            for method, spec in item.items()
            if method in API_METHODS and spec.get("security")
        ]
        assert len(operations) >= 5, operations
        for path, method in operations:
            _, secret = tenancy.create_token(ctx, op, f"{method} {path}", [])
            used.append(secret)
            event_id = f"ct-{uuid.uuid4().hex}"
            if method == "delete":
                stored = asgi_request(
                    app,
                    "POST",
                    "/api/v2/events",
                    {"wolkvox-token": setup, "Content-Type": "application/json"},
                    json.dumps([event(event_id)]).encode(),
                )
                assert stored.status_code == 200, stored.text
            compared.clear()
            verb, url, headers, body = _in_process_request(path, method, secret, event_id)
            reply = asgi_request(app, verb, url, headers, body)
            assert reply.status_code == 200, (path, method, reply.text)
            digest = tenancy.hash_secret(secret)
            assert any(digest in map(str, pair) for pair in compared), (path, method, compared)

        def broken(*args: object, **kwargs: object) -> object:
            raise RuntimeError("storage exploded")

        monkeypatch.setattr(billing, "month_figures", broken)
        monkeypatch.setattr(events, "list_events", broken)
        for path, method in (
            ("/api/v2/billing.php", "get"),
            ("/api/v2/events", "get"),
        ):
            _, secret = tenancy.create_token(ctx, op, "failing", [])
            used.append(secret)
            verb, url, headers, body = _in_process_request(path, method, secret, "x")
            reply = asgi_request(app, verb, url, headers, body)
            assert reply.status_code == 500, reply.text
            assert reply.json()["error"] == "INTERNAL SERVER ERROR"
    finally:
        state.limiter.close()
        ctx.storage.close()

    server_records = [
        r for r in caplog.records if not r.name.startswith(("httpx", "httpcore", "asyncio"))
    ]
    logged = "\n".join(caplog.handler.format(r) for r in server_records)
    assert "storage exploded" in logged, "the 500s were not logged"
    assert "unhandled error on GET /api/v2/billing.php" in logged
    assert leaks(used, logged) == [], logged


# === 4. Tenant isolation, for every documented endpoint ======================================


@dataclass
class World:
    """Operation A (server 9901) with data; three others that must never reach it."""

    a: Tenant
    a_description: str
    a_ids: list[str]
    a_voided: str
    a_cursor: str
    others: dict[str, Tenant]
    b_posted: dict[str, int] = field(default_factory=dict)
    a_own_requests: int = 0
    """Requests A's token makes inside the checks (they count against A's quota, rightly)."""


A_EVENTS = [
    ("ivr_minutes", "4241.5"),
    ("tts_chars", "777.125"),
    ("pbx_licenses", "61"),
    ("interactions", None),
    ("interactions", None),
    ("rec_minutes", "3.2"),
    ("rsync", "0.000007"),
    ("amazon_s3", "12.5"),
    ("ivr_calls", "9"),
]
A_FIGURES = {
    "ivr_minutes": "4242",
    "tts_chars": "777.125",
    "pbx_licenses": "61",
    "interactions": "2",
    "rec_minutes": "4",
    "rsync": "0.000007",
    "amazon_s3": "12.5",
    "ivr_calls": "9",
}
B_PRODUCT = "vision"
NAMINGS: dict[str, dict[str, str]] = {
    "unnamed": {},
    "underscore": {"wolkvox_server": "9901"},
    "hyphen": {"wolkvox-server": "9901"},
    "host": {"Host": "wv9901.wolkvox.com"},
}


@pytest.fixture(scope="module")
def world(server: VoxServer) -> World:
    tag = uuid.uuid4().hex[:8]
    name = f"alpha-{tag}"
    server.cli("operation", "create", name, "--server", "9901")
    description = f"alpha-secret-description-{tag}"
    a, _ = create_token(server, name, "9901", description)
    ids = [f"alpha-{tag}-{i}" for i in range(len(A_EVENTS))]
    batch = [event(i, p, q) for i, (p, q) in zip(ids, A_EVENTS, strict=True)]
    voided = f"alpha-{tag}-voided"
    batch.append(event(voided, "ivr_minutes", "100"))
    envelope_ok(server.post_events(a.token, batch), 200, None, accepted_msg(len(batch)))
    assert requests.delete(
        server.url(f"/api/v2/events/{voided}"), headers={"wolkvox-token": a.token}, timeout=30
    ).ok
    page = server.get("/api/v2/events", a.token, params=window() | {"limit": "1"}).json()
    assert page["next_cursor"], page
    server.cli(
        "alert",
        "create",
        "--operation",
        name,
        "--server",
        "9901",
        "--product",
        "ivr_minutes",
        "--threshold",
        "999999999",
        "--webhook",
        f"https://alpha-{tag}.example/private-{tag}",
        env=SECRET_KEY_ENV,
    )
    others = {
        "same-server": server.tenant(server="9901", licenses=5),
        "other-server": server.tenant(server="9902", licenses=5),
        "same-name": server.tenant(server="9902", licenses=5, name=name),
    }
    return World(a, description, ids, voided, page["next_cursor"], others)


@dataclass(frozen=True)
class AState:
    operations: frozenset[str]
    figures: dict[str, str]
    events: list[str]
    description: str


def a_state(srv: VoxServer, world: World) -> AState:
    """A's figures, its events as listed, and its token's description."""
    rows = srv.billing(world.a.token, "all").json()["data"]
    listing = srv.get("/api/v2/events", world.a.token, params=window()).json()
    info = srv.get("/api/v2/information.php", world.a.token, params={"api": "token_info"}).json()
    apis = [api for api, _, _ in SPEC_CATALOG]
    return AState(
        frozenset(r["operation"] for r in rows),
        dict(zip(apis, [r["items"] for r in rows], strict=True)),
        sorted(json.dumps(e, sort_keys=True) for e in listing["data"]),
        info["data"][0]["description"],
    )


def a_requests_today(srv: VoxServer, world: World) -> int:
    reply = srv.get("/api/v2/information.php", world.a.token, params={"api": "token_info"})
    return int(reply.json()["data"][0]["all_token_today"])


def must_not_show_a(world: World, text: str, b: Tenant) -> None:
    """Nothing of A in a reply to B: not its token, token id, description, event ids or name
    (unless B shares the name)."""
    private = [world.a.token, world.a.token_id, world.a_description, world.a_voided, *world.a_ids]
    if b.name != world.a.name:
        private.append(world.a.name)
    assert [p for p in private if p in text] == [], text


Check = Callable[[VoxServer, World, Tenant, dict[str, str], int], None]


def _billing(srv: VoxServer, world: World, b: Tenant, headers: dict[str, str], k: int) -> None:
    for query in ({"api": "all"}, {"api": "ivr_minutes"}, {"api": "tts_chars"}):
        own = srv.get("/api/v2/billing.php", world.a.token, params=query)
        world.a_own_requests += 1
        assert own.ok, own.text  # A's reply is now cached for this query
        reply = srv.get("/api/v2/billing.php", b.token, params=query, headers=headers)
        body = envelope_ok(reply, 200, None, "Information found for the current month")
        for row in body["data"]:
            assert row["operation"] == b.name, row
            if row["description"] != dict((a, t) for a, t, _ in SPEC_CATALOG)[B_PRODUCT]:
                assert row["items"] == "0", row
        must_not_show_a(world, reply.text, b)


def _daily(srv: VoxServer, world: World, b: Tenant, headers: dict[str, str], k: int) -> None:
    """B's days show B's events only: A's products all "0", B's own adding up to its posts."""
    for query in ({"api": "all"}, {"api": "ivr_minutes"}, {"api": B_PRODUCT}):
        own = srv.get("/api/v2/daily", world.a.token, params=query)
        world.a_own_requests += 1
        assert own.ok, own.text
        reply = srv.get("/api/v2/daily", b.token, params=query, headers=headers)
        body = envelope_ok(reply, 200, None, "Information found for the current month")
        mine = 0
        for row in body["data"]:
            if row.get("api", query["api"]) == B_PRODUCT:
                mine += int(row["items"])
            else:
                assert row["items"] == "0", row
        if query["api"] != "ivr_minutes":
            assert mine == world.b_posted.get(b.token, 0), body
        must_not_show_a(world, reply.text, b)


def _information(srv: VoxServer, world: World, b: Tenant, headers: dict[str, str], k: int) -> None:
    params = {"api": "token_info"}
    reply = srv.get("/api/v2/information.php", b.token, params=params, headers=headers)
    row = envelope_ok(reply, 200, None, "Information found")["data"][0]
    assert row["description"] == "test token", row
    assert row["token_limit"] == "5000", row
    assert row["all_token_today"] == row["token_use_today"], row  # B's one token only
    must_not_show_a(world, reply.text, b)


def _forecast(srv: VoxServer, world: World, b: Tenant, headers: dict[str, str], k: int) -> None:
    own = srv.get("/api/v2/forecast", world.a.token)
    world.a_own_requests += 1
    assert own.ok, own.text
    reply = srv.get("/api/v2/forecast", b.token, headers=headers)
    body = envelope_ok(reply, 200, None, reply.json()["msg"])
    for row in body["data"]:
        if row["api"] != B_PRODUCT:
            assert row["items"] == row["forecast"] == "0", row
    must_not_show_a(world, reply.text, b)


def _statement(srv: VoxServer, world: World, b: Tenant, headers: dict[str, str], k: int) -> None:
    for fmt in ("json", "csv"):
        own = srv.get("/api/v2/statement", world.a.token, params={"format": fmt})
        world.a_own_requests += 1
        assert own.ok, own.text
        reply = srv.get("/api/v2/statement", b.token, params={"format": fmt}, headers=headers)
        assert reply.status_code == 200, reply.text
        if fmt == "json":
            data = reply.json()["data"]
            assert (data["operation"], data["server"]) == (b.name, b.server), data
            for line in data["lines"]:
                if line["api"] != B_PRODUCT:
                    assert line["items"] == "0", line
        must_not_show_a(world, reply.text, b)


def _listing(srv: VoxServer, world: World, b: Tenant, headers: dict[str, str], k: int) -> None:
    for extra in ({}, {"product": "ivr_minutes"}, {"cursor": world.a_cursor}):
        reply = srv.get("/api/v2/events", b.token, params=window() | extra, headers=headers)
        body = envelope_ok(reply, 200, None, reply.json()["msg"])
        assert {e["product"] for e in body["data"]} <= {B_PRODUCT}, body
        assert all(e["quantity"] == "1" for e in body["data"]), body
        if b.name != world.a.name:
            assert world.a.name not in reply.text


def _ingest(srv: VoxServer, world: World, b: Tenant, headers: dict[str, str], k: int) -> None:
    """B may use A's ids: they are new to B (no duplicate count betrays that A has them)."""
    reply = srv.post_events(b.token, [event(world.a_ids[k], B_PRODUCT, None)], headers=headers)
    body = envelope_ok(reply, 200, None, "1 event accepted")
    assert body["data"] == {"accepted": 1, "duplicates": 0}, body
    world.b_posted[b.token] = world.b_posted.get(b.token, 0) + 1
    assert srv.items(b.token, B_PRODUCT) == str(world.b_posted[b.token])


def _void(srv: VoxServer, world: World, b: Tenant, headers: dict[str, str], k: int) -> None:
    for event_id in (world.a_ids[-1 - k], world.a_voided):
        reply = requests.delete(
            srv.url("/api/v2/events/" + quote(event_id, safe="")),
            headers={"wolkvox-token": b.token, **headers},
            timeout=30,
        )
        body = envelope_ok(reply, 404, reply.json()["error"], reply.json()["msg"])
        assert body["data"] == [], body


def _audit(srv: VoxServer, world: World, b: Tenant, headers: dict[str, str], k: int) -> None:
    """A's own listing names its token and its void; B's names neither, only B's own token."""
    own = srv.get("/api/v2/audit", world.a.token, params=window())
    world.a_own_requests += 1
    assert world.a.token_id in own.text, own.text
    assert world.a_voided in own.text, own.text
    for extra in ({}, {"cursor": world.a_cursor}, {"limit": "1"}):
        reply = srv.get("/api/v2/audit", b.token, params=window() | extra, headers=headers)
        body = envelope_ok(reply, 200, None, reply.json()["msg"])
        assert {e["action"] for e in body["data"]} <= {"operation.create", "token.create"}, body
        if not extra:
            assert b.token_id in reply.text, body
        must_not_show_a(world, reply.text, b)


def _alerts(srv: VoxServer, world: World, b: Tenant, headers: dict[str, str], k: int) -> None:
    """A's listing has its alert; B's has none of A's (nor its webhook's host)."""
    own = srv.get("/api/v2/alerts", world.a.token)
    world.a_own_requests += 1
    (alert,) = own.json()["data"]
    host = alert["webhook"]
    assert alert["product"] == "ivr_minutes", alert
    reply = srv.get("/api/v2/alerts", b.token, headers=headers)
    body = envelope_ok(reply, 200, None, reply.json()["msg"])
    assert body["data"] == [], body
    assert host not in reply.text
    must_not_show_a(world, reply.text, b)


def _operational(path: str) -> Check:
    def check(srv: VoxServer, world: World, b: Tenant, headers: dict[str, str], k: int) -> None:
        reply = requests.get(
            srv.url(path), headers={"wolkvox-token": b.token, **headers}, timeout=30
        )
        assert reply.status_code == 200, reply.text
        must_not_show_a(world, reply.text, b)
        if path == "/healthz":
            assert reply.json() == {"status": "ok"}

    return check


#: One case per documented operation (METHOD, path as /openapi.json writes it).
ISOLATION: dict[tuple[str, str], Check] = {
    ("GET", "/api/v2/billing.php"): _billing,
    ("GET", "/api/v2/information.php"): _information,
    ("GET", "/api/v2/daily"): _daily,
    ("GET", "/api/v2/forecast"): _forecast,
    ("GET", "/api/v2/statement"): _statement,
    ("GET", "/api/v2/events"): _listing,
    ("POST", "/api/v2/events"): _ingest,
    ("DELETE", "/api/v2/events/{event_id}"): _void,
    ("GET", "/api/v2/audit"): _audit,
    ("GET", "/api/v2/alerts"): _alerts,
    ("GET", "/healthz"): _operational("/healthz"),
    ("GET", "/metrics"): _operational("/metrics"),
    ("GET", "/openapi.json"): _operational("/openapi.json"),
}


def documented_operations(srv: VoxServer) -> dict[tuple[str, str], dict]:  # type: ignore[type-arg]
    paths = requests.get(srv.url("/openapi.json"), timeout=30).json()["paths"]
    return {
        (method.upper(), path): spec
        for path, item in paths.items()
        for method, spec in item.items()
        if method in API_METHODS
    }


def test_every_documented_endpoint_has_an_isolation_case(server: VoxServer) -> None:
    documented = documented_operations(server)
    assert set(documented) == set(ISOLATION), (
        f"documented but not checked: {sorted(set(documented) - set(ISOLATION))}; "
        f"checked but not documented: {sorted(set(ISOLATION) - set(documented))}"
    )


@pytest.mark.parametrize("operation", list(ISOLATION), ids=[" ".join(k) for k in ISOLATION])
def test_no_other_operation_reaches_a_through(
    server: VoxServer, world: World, operation: tuple[str, str]
) -> None:
    """With the token of another operation (on A's server, on another server, or of the same
    name on another server), naming A's server or not: B reads nothing of A, writes and voids
    nothing of A's, and none of its requests count against A's quota."""
    check = ISOLATION[operation]
    takes_token = bool(documented_operations(server)[operation].get("security"))
    before = a_state(server, world)
    assert before.operations == {world.a.name}
    assert {api: before.figures[api] for api in A_FIGURES} == A_FIGURES
    assert len(before.events) == len(A_EVENTS) + 1
    assert before.description == world.a_description
    requests_before = a_requests_today(server, world)
    own_before = world.a_own_requests
    for b in world.others.values():
        for k, (naming, headers) in enumerate(NAMINGS.items()):
            refused = takes_token and naming != "unnamed" and b.server != world.a.server
            if refused:
                method, path = operation
                reply = requests.request(
                    method,
                    server.url(path.replace("{event_id}", quote(world.a_ids[0], safe=""))),
                    params={"api": "all"} | window(),
                    headers={
                        "wolkvox-token": b.token,
                        "Content-Type": "application/json",
                        **headers,
                    },
                    data=json.dumps([event(world.a_ids[0], B_PRODUCT, None)]).encode(),
                    timeout=30,
                )
                assert envelope_ok(reply, 403, "FORBIDDEN", VALIDATE)["data"] == [], (b, naming)
            else:
                check(server, world, b, headers, k)
    own = world.a_own_requests - own_before
    assert a_requests_today(server, world) == requests_before + own + 1
    assert a_state(server, world) == before
    for b in world.others.values():
        assert server.items(b.token, B_PRODUCT) == str(world.b_posted.get(b.token, 0))


DASHBOARD_PATHS = (
    "/dashboard/operations/{id}",
    "/dashboard/operations/{id}/statement",
    "/dashboard/operations/{id}?month={month}",
    "/dashboard/operations/{id}/statement?month={month}",
)
"""Every dashboard route that names an operation (the others show the session's own)."""


def test_no_other_operation_reaches_a_through_the_dashboard(
    server: VoxServer, world: World
) -> None:
    """Signed in to the dashboard with another operation's token (on A's server, another
    server, or of A's name on another server): A's id in any dashboard URL is a 404 page
    holding nothing of A's, the overview is refused, and none of it counts against A's quota."""
    from voxmeter.service import tenancy

    with admin_context(server.db) as ctx:
        a_id = tenancy.find_operation(ctx, world.a.name, world.a.server).id
    month = datetime.now(UTC).strftime("%Y-%m")
    before = a_state(server, world)
    requests_before = a_requests_today(server, world)
    for label, b in world.others.items():
        browser = requests.Session()
        page = browser.get(server.url("/dashboard"), timeout=30)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf, page.text
        signed = browser.post(
            server.url("/dashboard/login"),
            data={"token": b.token, "csrf": csrf[1]},
            allow_redirects=False,
            timeout=30,
        )
        assert signed.status_code == 303, (label, signed.text)
        own = browser.get(server.url("/dashboard"), timeout=30)
        assert own.status_code == 200
        must_not_show_a(world, own.text, b)
        for template in DASHBOARD_PATHS:
            reply = browser.get(server.url(template.format(id=a_id, month=month)), timeout=30)
            assert reply.status_code == 404, (label, template)
            assert "There is no such operation" in reply.text
            must_not_show_a(world, reply.text, b)
        assert browser.get(server.url("/dashboard/overview"), timeout=30).status_code == 403
    assert a_requests_today(server, world) == requests_before + 1  # this one
    assert a_state(server, world) == before


# === 5. Request size and time limits ==========================================================


@pytest.fixture(scope="module")
def tenant(server: VoxServer) -> Tenant:
    return server.tenant(licenses=5)


def _query(size: int) -> Callable[[str], bytes]:
    return lambda token: head("GET", "/api/v2/billing.php?api=" + "a" * size, token)


def _header(line: str, path: str = "/api/v2/billing.php?api=all") -> Callable[[str], bytes]:
    return lambda token: head("GET", path, token, line)


#: label: (the request, given the token header line; the statuses it may get)
LONG_PARTS: dict[str, tuple[Callable[[str], bytes], set[int]]] = {
    "query 40 KB": (_query(40_000), {400}),
    "query 70 KB": (_query(70_000), {400, 431}),
    "url 1 MB": (_query(1_000_000), {400, 431}),
    "void path 60 KB": (lambda t: head("DELETE", "/api/v2/events/" + "e" * 60_000, t), {404}),
    "token 60 KB": (
        lambda t: head("GET", "/api/v2/billing.php?api=all", "wolkvox-token: " + "v" * 60_000),
        {403},
    ),
    "server 60 KB": (_header("wolkvox_server: " + "9" * 60_000), {403}),
    "header 100 KB": (_header("x-big: " + "a" * 100_000), {431}),
    "header 8 MB": (_header("x-big: " + "a" * 8_000_000, "/healthz"), {431}),
    "20,000 headers": (
        lambda t: head("GET", "/healthz", t, *(f"x-h{i}: v" for i in range(20_000))),
        {431},
    ),
}


@pytest.mark.parametrize("label", list(LONG_PARTS))
def test_over_long_request_parts_get_a_clean_4xx(
    server: VoxServer, tenant: Tenant, label: str
) -> None:
    build, statuses = LONG_PARTS[label]
    data = build(f"wolkvox-token: {tenant.token}")
    reply = raw_request(server.port, [data[i : i + 16_384] for i in range(0, len(data), 16_384)])
    assert reply.status in statuses, (label, reply.data[:300])
    if reply.headers.get("content-type") == "application/json":
        body = reply.body
        assert body["code"] == reply.status, body
        assert body["data"] == [], body
    assert server.billing(tenant.token, "ivr_minutes").ok, "the server stopped answering"


def test_head_size_limit_spares_ordinary_large_requests(server: VoxServer, tenant: Tenant) -> None:
    """Headers up to tens of KB and bodies of any allowed size still go through."""
    reply = server.billing(tenant.token, "ivr_minutes", headers={"x-pad": "p" * 40_000})
    assert reply.status_code == 200, reply.text
    batch = [event(f"size-{i}", "interactions", None) for i in range(5_000)]
    body = json.dumps(batch).encode()
    assert len(body) > 400_000
    reply = post_json(server, tenant.token, body, **{"x-pad": "p" * 20_000})
    envelope_ok(reply, 200, None, "5000 events accepted")


def test_head_size_limit_counts_only_the_head_on_a_kept_alive_connection(
    server: VoxServer, tenant: Tenant
) -> None:
    """Requests that end inside one read (small posts, reads) must not count against the head
    of the next request on the same connection: every batch here is accepted."""
    with httpx.Client(base_url=server.base, headers={"wolkvox-token": tenant.token}) as client:
        for n in range(24):
            size = (10, 1_000, 5_000, 10_000)[n % 4]
            batch = [event(f"alive-{n}-{i}", "interactions", None) for i in range(size)]
            reply = client.post("/api/v2/events", json=batch, timeout=60)
            assert reply.status_code == 200, (n, size, reply.text[:200])
            assert client.get("/api/v2/billing.php", params={"api": "all"}).status_code == 200


@pytest.fixture(scope="module")
def quick(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VoxServer]:
    """A server whose requests must arrive within 1.5 s."""
    folder = tmp_path_factory.mktemp("quick")
    with ExitStack() as stack:
        dbs = Databases(backend, folder, stack)
        db = dbs.new()
        srv = VoxServer(
            db=db,
            port=free_port(),
            args=dbs.server_args(db, ("--request-timeout", "1.5")),
            env=dbs.server_env(db, {}),
        ).start(folder)
        yield srv
        srv.stop()


@pytest.mark.serial
def test_a_head_sent_slowly_gets_408_at_the_time_limit(quick: VoxServer) -> None:
    tenant = quick.tenant()
    lines = [f"x-slow-{i}: {i}\r\n".encode() for i in range(40)]
    chunks = [b"GET /api/v2/billing.php?api=all HTTP/1.1\r\n", *lines]
    reply = raw_request(quick.port, chunks, gap=0.25)
    assert reply.status == 408, reply.data
    assert 1.4 <= reply.elapsed < 4, reply.elapsed
    body = reply.body
    assert (body["code"], body["error"], body["data"]) == (408, "REQUEST TIMEOUT", [])
    assert reply.headers["connection"] == "close"
    assert quick.billing(tenant.token, "ivr_minutes").ok


@pytest.mark.serial
def test_an_idle_connection_is_closed_at_the_time_limit(quick: VoxServer) -> None:
    reply = raw_request(quick.port, [])
    assert reply.status == 408, reply.data
    assert 1.4 <= reply.elapsed < 4, reply.elapsed


@pytest.mark.serial
def test_an_upload_trickling_in_gets_504_at_the_time_limit(quick: VoxServer) -> None:
    """The limit is on the whole request, not on silence: a byte every 0.2 s is still too slow."""
    tenant = quick.tenant()
    body = json.dumps([event("trickle", "ivr_minutes", "5")]).encode()
    first = head(
        "POST",
        "/api/v2/events",
        f"wolkvox-token: {tenant.token}",
        "Content-Type: application/json",
        length=len(body),
    )
    chunks = [first, *(body[i : i + 1] for i in range(len(body)))]
    reply = raw_request(quick.port, chunks, gap=0.2)
    assert reply.status == 504, reply.data
    assert reply.elapsed < 4, reply.elapsed
    assert reply.body["error"] == "GATEWAY TIMEOUT"
    assert quick.items(tenant.token, "ivr_minutes") == "0"
    assert quick.get("/api/v2/events", tenant.token, params=window()).json()["data"] == []


def test_a_body_nobody_reads_cannot_hold_the_connection(quick: VoxServer) -> None:
    """A read answered while its (unread) body still trickles in: the connection is closed at
    the time limit instead of staying open for as long as the client keeps sending."""
    tenant = quick.tenant()
    with socket.create_connection(("127.0.0.1", quick.port), timeout=10) as sock:
        sock.sendall(
            head(
                "GET",
                "/api/v2/billing.php?api=ivr_minutes",
                f"wolkvox-token: {tenant.token}",
                length=1_000_000,
            ).replace(b"Connection: close\r\n", b"")
        )
        started = time.monotonic()
        reply = b""
        while b'"data"' not in reply:
            reply += sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200"), reply
        closed = False
        while time.monotonic() - started < 8:
            try:
                sock.sendall(b"x")
            except OSError:
                closed = True
                break
            if select.select([sock], [], [], 0.2)[0]:
                try:
                    closed = sock.recv(1) == b""
                except OSError:
                    closed = True
                if closed:
                    break
        assert closed, "the connection was still open after 8 s"
        assert time.monotonic() - started < 5


def test_big_body_on_a_read_is_never_a_5xx(quick: VoxServer) -> None:
    tenant = quick.tenant()
    reply = requests.get(
        quick.url("/api/v2/billing.php"),
        params={"api": "ivr_minutes"},
        data=b"z" * 2_000_000,
        headers={"wolkvox-token": tenant.token},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    assert quick.billing(tenant.token, "ivr_minutes").ok


# === 6. Security headers ======================================================================


def test_every_response_carries_the_security_headers(server: VoxServer, tenant: Tenant) -> None:
    """nosniff and a CSP that allows nothing on every reply, success or error, JSON or text;
    `Cache-Control: no-store` on every /api/ reply (figures and quota use)."""
    token = tenant.token
    probes: list[tuple[str, requests.Response]] = [
        ("billing", server.billing(token, "all")),
        ("billing cached", server.billing(token, "all")),
        ("information", server.get("/api/v2/information.php", token, params={"api": "token_info"})),
        ("listing", server.get("/api/v2/events", token, params=window())),
        ("ingest", server.post_events(token, [event(f"h-{uuid.uuid4().hex}")])),
        (
            "void 404",
            requests.delete(
                server.url("/api/v2/events/nope"), headers={"wolkvox-token": token}, timeout=30
            ),
        ),
        ("401", server.billing(None, "all")),  # type: ignore[arg-type]
        ("403", server.billing("vxm_unknown", "all")),
        ("400", server.billing(token, "nope")),
        ("405", requests.put(server.url("/api/v2/billing.php"), timeout=30)),
        ("405 events", requests.put(server.url("/api/v2/events"), timeout=30)),
        ("unknown path", requests.get(server.url("/nope"), timeout=30)),
        ("unknown api path", requests.get(server.url("/api/v2/nope.php"), timeout=30)),
        (
            "head",
            requests.head(
                server.url("/api/v2/billing.php?api=all"),
                headers={"wolkvox-token": token},
                timeout=30,
            ),
        ),
        ("healthz", requests.get(server.url("/healthz"), timeout=30)),
        ("metrics", requests.get(server.url("/metrics"), timeout=30)),
        ("openapi", requests.get(server.url("/openapi.json"), timeout=30)),
    ]
    assert probes[-2][1].headers["content-type"].startswith("text/plain")
    for label, reply in probes:
        assert reply.headers.get("x-content-type-options") == NOSNIFF, (label, reply.headers)
        assert reply.headers.get("content-security-policy") == CSP, (label, reply.headers)
        path = reply.request.path_url
        if path.startswith("/api/"):
            assert reply.headers.get("cache-control") == "no-store", (label, reply.headers)
        assert "," not in reply.headers["x-content-type-options"], (label, "sent twice")

    refused = raw_request(server.port, [head("GET", "/healthz", "x-big: " + "a" * 100_000)])
    assert refused.status == 431
    assert refused.headers["x-content-type-options"] == NOSNIFF
    assert refused.headers["content-security-policy"] == CSP
