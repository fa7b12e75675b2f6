"""A small server with exactly the hosted Billing API's shape, for the mirror tests.

It answers `billing.php?api=<product>` and `information.php?api=token_info` the way the hosted
service does, quirks included: it refuses `api=all` and `month=`, writes `code` as the string
"200" on every other success, a zero figure as a blank " ", keeps its own daily quota
(`licenses x 1000`) and its limit of 2 requests in flight per token, and answers 403 SERVER
IN MAINTENANCE while `maintenance` is set. It records every request, and the most requests it
ever had in flight at once, so a test can check what a mirror cost it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from voxmeter.domain.catalog import Catalog

CATALOG = Catalog.load()


@dataclass
class Logged:
    """One request the server received."""

    at: float
    path: str
    api: str | None
    params: dict[str, str]
    status: int


@dataclass
class HostedLike:
    """The server's state; tests change figures, tokens, quota and faults while it runs."""

    token: str
    licenses: int = 1
    operation: str = "hosted-op"
    figures: dict[str, str] = field(default_factory=dict)
    maintenance: bool = False
    delay: float = 0.0
    """Seconds each answer waits (a slow or hanging upstream)."""
    log: list[Logged] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    used_today: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    base_url: str = ""
    today: str | None = None
    """The `date` of the answers (YYYY-MM-DD); the real UTC day when None (a test with a
    simulated clock sets it)."""

    def count(self, path_prefix: str = "/api/") -> int:
        with self.lock:
            return sum(1 for entry in self.log if entry.path.startswith(path_prefix))


def _envelope(code: int, error: str | None, msg: str, data: list[object], odd: bool) -> bytes:
    return json.dumps(
        {"code": str(code) if odd else code, "error": error, "msg": msg, "data": data}
    ).encode()


def _handler(state: HostedLike) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            params = {k: v[0] for k, v in parse_qs(parts.query).items()}
            with state.lock:
                state.in_flight += 1
                state.most_in_flight = max(state.most_in_flight, state.in_flight)
                busy = state.in_flight > 2
            try:
                if state.delay:
                    time.sleep(state.delay)
                status, body = self._answer(parts.path, params, busy)
            finally:
                with state.lock:
                    state.in_flight -= 1
            with state.lock:
                state.log.append(Logged(time.time(), parts.path, params.get("api"), params, status))
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                return  # the caller went away (a killed process): nothing to answer

        def _answer(self, path: str, params: dict[str, str], busy: bool) -> tuple[int, bytes]:
            odd = len(state.log) % 2 == 1
            if self.headers.get("wolkvox-token") != state.token:
                return 403, _envelope(403, "FORBIDDEN", "PLEASE VALIDATE TOKEN", [], odd)
            if state.maintenance:
                return 403, _envelope(403, "FORBIDDEN", "SERVER IN MAINTENANCE", [], odd)
            if busy:
                msg = "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2)"
                return 403, _envelope(403, "FORBIDDEN", msg, [], odd)
            with state.lock:
                if state.used_today >= state.licenses * 1000:
                    return 403, _envelope(403, "FORBIDDEN", "TOKEN LIMIT EXCEEDED", [], odd)
                state.used_today += 1
            today = state.today or datetime.now(UTC).date().isoformat()
            api = params.get("api", "")
            if path == "/api/v2/information.php" and api == "token_info":
                quota = state.licenses * 1000
                row = {
                    "description": "token",
                    "token_limit": str(quota),
                    "token_use_today": str(state.used_today),
                    "all_token_today": str(state.used_today),
                    "available_consumption_options": str(quota - state.used_today),
                }
                return 200, _envelope(200, None, "Information found", [row], odd)
            if path != "/api/v2/billing.php" or api not in CATALOG:
                msg = "THE API YOU WANT TO CONSULT DOES NOT EXIST"
                return 400, _envelope(400, "BAD REQUEST", msg, [], odd)
            if "month" in params:
                msg = "SOME PARAMETERS ARE REQUIRED"
                return 400, _envelope(400, "BAD REQUEST", msg, [], odd)
            product = CATALOG.get(api)
            assert product is not None
            items = state.figures.get(api, "0")
            row = {
                "operation": state.operation,
                "description": product.title,
                "items": " " if items == "0" else items,
                "date": today,
            }
            msg = "Information found for the current month"
            return 200, _envelope(200, None, msg, [row], odd)

    return Handler


@contextmanager
def hosted_like(token: str, **kw: object) -> Iterator[HostedLike]:
    """Run the server on a free loopback port for the duration of the block."""
    state = HostedLike(token=token, **kw)  # type: ignore[arg-type]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
