"""A real `voxmeter serve` process on loopback (bench/server.py), and the CLI as a user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import requests

from bench.server import ServerProcess
from bench.server import free_port as free_port  # the tests' import of it
from voxmeter import bootstrap
from voxmeter.config import Settings
from voxmeter.service import tenancy
from voxmeter.service.context import Context


def accepted_msg(n: int) -> str:
    """The ingest reply's `msg` for `n` new events."""
    return "1 event accepted" if n == 1 else f"{n} events accepted"


def cli(
    db: str, *args: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `voxmeter ARGS --db DB` exactly as a user would (a separate process)."""
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(
        [sys.executable, "-m", "voxmeter", *args, "--db", db],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"voxmeter {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


@dataclass
class Tenant:
    """An operation with a token, created through the CLI."""

    name: str
    server: str
    token: str
    token_id: str


@contextmanager
def admin_context(db: str) -> Iterator[Context]:
    """The service layer on `db`, configured as the CLI configures it, closed after use.

    Test set-up (operations, tokens) goes through it in this process: the same service calls as
    `voxmeter operation create` / `token create`, without starting an interpreter for each; the
    CLI itself is tested as a separate process in test_cli*.py.
    """
    ctx = bootstrap.context(replace(Settings.from_env(), database_url=db))
    try:
        yield ctx
    finally:
        ctx.storage.close()


class ServerApi:
    """The tests' helpers over one served database: set-up (operations, tokens, the CLI) and
    HTTP calls. `request` is the only transport-specific part: a real process over loopback
    (VoxServer) or the app in this process (tests/e2e/inprocess.py)."""

    db: str

    def url(self, path: str) -> str:
        raise NotImplementedError

    def request(self, method: str, path: str, **kw: Any) -> Any:
        """`method path` (path relative to the server) with requests' keywords."""
        raise NotImplementedError

    def cli(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return cli(self.db, *args, check=check, env=env)

    def tenant(
        self,
        *,
        server: str = "9901",
        timezone: str = "UTC",
        licenses: int = 1,
        scopes: Sequence[str] = (),
        name: str | None = None,
    ) -> Tenant:
        """A fresh operation (unique name) and a token for it."""
        name = name or f"op-{uuid.uuid4().hex[:10]}"
        with admin_context(self.db) as ctx:
            tenancy.create_operation(ctx, name, server, timezone, licenses)
        return self.token_for(name, server=server, scopes=scopes)

    def token_for(
        self,
        name: str,
        *,
        server: str = "9901",
        scopes: Sequence[str] = (),
        description: str = "test token",
    ) -> Tenant:
        """A new token of operation `name`, as `voxmeter token create` makes it."""
        with admin_context(self.db) as ctx:
            op = tenancy.find_operation(ctx, name, server)
            token, secret = tenancy.create_token(ctx, op, description, list(scopes))
        return Tenant(name=name, server=server, token=secret, token_id=token.id)

    # HTTP helpers
    def get(self, path: str, token: str | None = None, **kw: Any) -> requests.Response:
        headers = dict(kw.pop("headers", {}) or {})
        if token is not None:
            headers["wolkvox-token"] = token
        return self.request("GET", path, headers=headers, timeout=30, **kw)  # type: ignore[no-any-return]

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.request("POST", path, **{"timeout": 60, **kw})  # type: ignore[no-any-return]

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.request("DELETE", path, **{"timeout": 30, **kw})  # type: ignore[no-any-return]

    def billing(
        self, token: str, api: str, month: str | None = None, **kw: Any
    ) -> requests.Response:
        params = {"api": api} | ({"month": month} if month else {})
        return self.get("/api/v2/billing.php", token, params=params, **kw)

    def items(self, token: str, api: str, month: str | None = None) -> str:
        reply = self.billing(token, api, month)
        assert reply.status_code == 200, reply.text
        return str(reply.json()["data"][0]["items"])

    def post_events(
        self, token: str, events: object, *, ndjson: bool = False, **kw: Any
    ) -> requests.Response:
        import json

        headers = {"wolkvox-token": token}
        if ndjson:
            assert isinstance(events, list)
            body = "\n".join(json.dumps(e) for e in events).encode()
            headers["Content-Type"] = "application/x-ndjson"
        else:
            body = json.dumps(events).encode()
            headers["Content-Type"] = "application/json"
        headers.update(kw.pop("headers", {}) or {})
        return self.post("/api/v2/events", data=body, headers=headers, **kw)


class VoxServer(ServerProcess, ServerApi):
    """The shared server process (bench/server.py), with the CLI and HTTP helpers of the tests."""

    def __init__(
        self,
        db: str,
        port: int | None = None,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(db, port, args, env)

    def start(self, log_dir: Path) -> VoxServer:
        """Start with its log in `log_dir` and wait for /healthz (failing the test if it can't)."""
        self.log_path = log_dir / f"server-{self.port}.log"
        try:
            self.run(timeout=30)
        except RuntimeError as exc:
            raise AssertionError(str(exc)) from None
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """`sig`, then the exit status (a server still up after `timeout` is killed)."""
        assert self.proc is not None
        super().stop(sig, timeout)
        return int(self.proc.wait())

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        return requests.request(method, self.url(path), **kw)


def envelope_ok(reply: requests.Response, status: int, error: str | None, msg: str) -> dict:  # type: ignore[type-arg]
    """Assert the Wolkvox envelope: status line == code, exact error and msg."""
    body = reply.json()
    assert reply.status_code == status, reply.text
    assert body["code"] == status, body
    assert body["error"] == error, body
    assert body["msg"] == msg, body
    assert list(body)[:4] == ["code", "error", "msg", "data"], body
    return body  # type: ignore[no-any-return]


# --- Event helpers (ingest, voids, listing, months, CLI and durability suites) -------------

#: Aggregation of every catalog product, as docs/products.md states it.
AGGREGATION: dict[str, str] = {
    "agent_script": "max",
    "intelligent_dial": "max",
    "gamification": "max",
    "ivr_minutes": "sum_round_up",
    "rec_minutes": "sum_round_up",
    "amazon_s3": "max",
    "rsync": "sum",
    "rsync_s3_mp3": "sum",
    "rec_screen": "sum_round_up",
    "interactions": "count",
    "rec_screen_on_demand": "sum_round_up",
    "speech_analytics": "sum_round_up",
    "wp_connectors": "max",
    "sentiment_analysis": "count",
    "chat_licenses": "max",
    "interaction_licenses": "max",
    "video_call": "sum_round_up",
    "pbx_licenses": "max",
    "ivr_calls": "count",
    "asr_calls": "count",
    "vision": "count",
    "tts_chars": "sum",
    "wp_connectors_official": "max",
    "contact_center_licenses": "max",
    "amd_ai": "count",
    "stereo_rec": "sum_round_up",
    "nlp_ai": "count",
}


def plain(value: object) -> str:
    """A Decimal as the API writes `items`: no exponent, no trailing zeros ("0", "12.5")."""
    from decimal import Decimal

    number = Decimal(str(value))
    if number == 0:
        return "0"
    text = f"{number:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def figure_of(events: list[dict[str, object]], product: str) -> str:
    """The month figure of `product` over these (distinct-id, same-month) events, in Decimal.

    The first copy of an id wins (docs/api.md, Ingest); events of other products are ignored.
    """
    from decimal import ROUND_CEILING, Decimal

    aggregation = AGGREGATION[product]
    first: dict[object, dict[str, object]] = {}
    for event in events:
        first.setdefault(event["id"], event)
    quantities = [
        Decimal(str(e.get("quantity", "1"))) for e in first.values() if e["product"] == product
    ]
    if not quantities:
        return "0"
    if aggregation == "max":
        return plain(max(quantities))
    if aggregation == "sum_round_up":
        return plain(sum(q.to_integral_value(ROUND_CEILING) for q in quantities))
    return plain(sum(quantities, Decimal(0)))


def local_stamp(moment: object, timezone: str) -> str:
    """An aware datetime as the listing's `YYYYmmddHHiiss` in `timezone`."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    assert isinstance(moment, datetime)
    return moment.astimezone(ZoneInfo(timezone)).strftime("%Y%m%d%H%M%S")


def void_event(srv: ServerApi, token: str, event_id: str) -> requests.Response:
    """`DELETE /api/v2/events/<id>` with the id percent-encoded (every character but none safe)."""
    from urllib.parse import quote

    return srv.delete(
        "/api/v2/events/" + quote(event_id, safe=""), headers={"wolkvox-token": token}
    )


def list_events(srv: ServerApi, token: str, **params: object) -> requests.Response:
    """`GET /api/v2/events?...` (date_ini, date_end, product, limit, cursor)."""
    return srv.get("/api/v2/events", token, params={k: str(v) for k, v in params.items()})


def all_events(
    srv: ServerApi, token: str, date_ini: str, date_end: str, **params: object
) -> list[dict[str, object]]:
    """Every event of the window, following `next_cursor` until it is null."""
    found: list[dict[str, object]] = []
    cursor: str | None = None
    for _ in range(10_000):
        extra = dict(params) | ({"cursor": cursor} if cursor else {})
        reply = list_events(srv, token, date_ini=date_ini, date_end=date_end, **extra)
        body = reply.json()
        assert reply.status_code == 200, reply.text
        assert (body["code"], body["error"]) == (200, None), body
        assert isinstance(body["data"], list), body
        found.extend(body["data"])
        cursor = body.get("next_cursor")
        if cursor is None:
            return found
    raise AssertionError("the listing never returned a null next_cursor")


# --- Shared helpers for the API/limits/operational e2e modules (additions only) ---

#: docs/products.md, in catalog order: (api, title, aggregation).
SPEC_CATALOG: tuple[tuple[str, str, str], ...] = (
    ("agent_script", "Agent Script", "max"),
    ("intelligent_dial", "Intelligent dial", "max"),
    ("gamification", "Gamification", "max"),
    ("ivr_minutes", "IVR minutes", "sum_round_up"),
    ("rec_minutes", "Recording minutes", "sum_round_up"),
    ("amazon_s3", "Amazon S3 storage", "max"),
    ("rsync", "Rsync transfer", "sum"),
    ("rsync_s3_mp3", "Rsync S3 MP3 transfer", "sum"),
    ("rec_screen", "Screen recording", "sum_round_up"),
    ("interactions", "Interactions", "count"),
    ("rec_screen_on_demand", "Screen recording on demand", "sum_round_up"),
    ("speech_analytics", "Speech analytics", "sum_round_up"),
    ("wp_connectors", "WhatsApp connectors", "max"),
    ("sentiment_analysis", "Sentiment analysis", "count"),
    ("chat_licenses", "Chat licenses", "max"),
    ("interaction_licenses", "Interaction licenses", "max"),
    ("video_call", "Video call", "sum_round_up"),
    ("pbx_licenses", "PBX licenses", "max"),
    ("ivr_calls", "IVR calls", "count"),
    ("asr_calls", "ASR calls", "count"),
    ("vision", "Vision", "count"),
    ("tts_chars", "TTS characters", "sum"),
    ("wp_connectors_official", "Official WhatsApp connectors", "max"),
    ("contact_center_licenses", "Contact center licenses", "max"),
    ("amd_ai", "AMD AI", "count"),
    ("stereo_rec", "Stereo recording", "sum_round_up"),
    ("nlp_ai", "NLP", "count"),
)


def plain_decimal(value: object) -> str:
    """A figure as the API prints it: plain decimal, no exponent, no trailing zeros."""
    from decimal import Decimal

    text = format(Decimal(str(value)).normalize(), "f")
    return "0" if text in ("-0", "") else text


def aggregate(aggregation: str, quantities: Sequence[str | int | None]) -> str:
    """The month's figure (docs/products.md) for events carrying these quantities, all in one
    month."""
    from decimal import ROUND_CEILING, Decimal

    if not quantities:
        return "0"
    if aggregation == "count":
        total = sum(Decimal(1 if q is None else str(q)) for q in quantities)
    elif aggregation == "sum_round_up":
        total = sum(
            Decimal(str(q)).to_integral_value(rounding=ROUND_CEILING)
            for q in quantities
            if q is not None
        )
    elif aggregation == "sum":
        total = sum(Decimal(str(q)) for q in quantities if q is not None)
    elif aggregation == "max":
        total = max(Decimal(str(q)) for q in quantities if q is not None)
    else:
        raise ValueError(aggregation)
    return plain_decimal(total)


def token_info(srv: ServerApi, token: str) -> dict:  # type: ignore[type-arg]
    """information.php?api=token_info's single row (asserting a 200 envelope)."""
    reply = srv.get("/api/v2/information.php", token, params={"api": "token_info"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["code"] == 200, body
    assert body["error"] is None, body
    assert len(body["data"]) == 1, body
    return body["data"][0]  # type: ignore[no-any-return]


def uses_today(srv: VoxServer, token_id: str) -> int:
    """The `uses today` column of `voxmeter token list` for one token."""
    out = srv.cli("token", "list").stdout
    for line in out.splitlines():
        cells = [c.strip() for c in line.replace("┃", "│").split("│")]
        if token_id in cells:
            header = next(
                [c.strip() for c in h.replace("┃", "│").split("│")]
                for h in out.splitlines()
                if "uses today" in h
            )
            return int(cells[header.index("uses today")])
    raise AssertionError(f"{token_id} not listed:\n{out}")


class SlowPosts:
    """`n` POST /api/v2/events requests on one token whose bodies stream until released.

    Each request sends its headers and the first body byte at once, then waits (server-side the
    request is admitted and holds an in-flight slot) until `release()`; then the body completes.
    Use as a context manager; `replies` holds the responses once released.
    """

    def __init__(self, srv: VoxServer, token: str, batches: Sequence[list[dict]]) -> None:  # type: ignore[type-arg]
        import json
        import threading

        self.srv = srv
        self.token = token
        self.bodies = [json.dumps(batch).encode() for batch in batches]
        self.released = threading.Event()
        self.replies: list[requests.Response | BaseException | None] = [None] * len(batches)
        self.threads = [
            threading.Thread(target=self._post, args=(i,), daemon=True) for i in range(len(batches))
        ]

    def _body(self, body: bytes) -> Iterator[bytes]:
        yield body[:1]
        self.released.wait(timeout=30)
        yield body[1:]

    def _post(self, index: int) -> None:
        try:
            self.replies[index] = requests.post(
                self.srv.url("/api/v2/events"),
                data=self._body(self.bodies[index]),
                headers={"wolkvox-token": self.token, "Content-Type": "application/json"},
                timeout=60,
            )
        except BaseException as exc:  # reported by the test through `replies`
            self.replies[index] = exc

    def __enter__(self) -> SlowPosts:
        for thread in self.threads:
            thread.start()
        return self

    def release(self) -> list[requests.Response]:
        self.released.set()
        for thread in self.threads:
            thread.join(timeout=30)
        out = []
        for reply in self.replies:
            assert isinstance(reply, requests.Response), reply
            out.append(reply)
        return out

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        for thread in self.threads:
            thread.join(timeout=30)


def wait_for_stale_slots(srv: VoxServer, token: str, seconds: float = 15.0) -> None:
    """After a kill -9 in the scaled-out mode, the dead process's in-flight slots stay taken in
    Redis until their leases expire (a few seconds); wait for that, failing if they never free."""
    deadline = time.monotonic() + seconds
    while True:
        reply = srv.billing(token, "ivr_minutes")
        if reply.status_code == 200:
            return
        assert reply.status_code == 403, reply.text
        assert "SIMULTANEOUS" in reply.json()["msg"], reply.text
        assert time.monotonic() < deadline, "slots of a killed server were never freed"
        time.sleep(0.2)


def wait_until_admitted(
    srv: VoxServer, observer: str, others_before: int, expected: int, timeout: float = 5.0
) -> int:
    """Poll token_info with `observer` (another token of the same operation) until the
    operation's other tokens have `expected` more requests admitted today than `others_before`.
    Returns the other tokens' count. (Each poll costs the observer one quota unit.)"""
    deadline = time.monotonic() + timeout
    while True:
        info = token_info(srv, observer)
        others = int(info["all_token_today"]) - int(info["token_use_today"])
        if others >= others_before + expected or time.monotonic() > deadline:
            return others
        time.sleep(0.02)


def month_start(timezone: str = "UTC") -> object:
    """The first instant of the current month in `timezone` (an aware datetime)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    now = datetime.now(ZoneInfo(timezone))
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def times_this_month(rng: object, count: int, timezone: str = "UTC") -> list[str]:
    """`count` random RFC 3339 times in the current month (operation timezone), none in the
    future, with microseconds, each written with the zone's own offset."""
    import random
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    assert isinstance(rng, random.Random)
    start = month_start(timezone)
    assert isinstance(start, datetime)
    now = datetime.now(ZoneInfo(timezone)) - timedelta(seconds=2)
    span = max(0, int((now - start).total_seconds() * 1_000_000))
    return [
        (start + timedelta(microseconds=rng.randint(0, span))).isoformat() for _ in range(count)
    ]
