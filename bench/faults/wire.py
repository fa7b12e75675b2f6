"""One HTTP request to the server under test, and its reply as the checks see it."""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from bench.faults.events import BUSY, CLIENT_TIMEOUT

# --- HTTP -----------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    """0 when no reply arrived (refused, reset, timed out)."""
    body: object
    retry_after: str | None
    started: float
    ended: float
    error: str = ""
    refused: bool = False

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def envelope(self) -> bool:
        """The Wolkvox envelope with `code` equal to the status."""
        body = self.body
        return (
            isinstance(body, dict)
            and list(body)[:4] == ["code", "error", "msg", "data"]
            and body["code"] == self.status
        )

    @property
    def unavailable_ok(self) -> bool:
        """A proper 503: envelope, SERVICE UNAVAILABLE, empty data, a numeric Retry-After."""
        return (
            self.status == 503
            and self.envelope
            and isinstance(self.body, dict)
            and self.body["error"] == "SERVICE UNAVAILABLE"
            and self.body["data"] == []
            and (self.retry_after or "").isdigit()
        )

    @property
    def busy(self) -> bool:
        return self.status == 403 and isinstance(self.body, dict) and self.body.get("msg") == BUSY

    def data(self) -> dict[str, object]:
        assert isinstance(self.body, dict), self.body
        data = self.body["data"]
        assert isinstance(data, dict), self.body
        return data

    def describe(self) -> str:
        if self.status == 0:
            return f"no reply ({self.error})"
        msg = self.body.get("msg") if isinstance(self.body, dict) else str(self.body)[:120]
        return f"{self.status} {msg}"


def call(
    port: int,
    method: str,
    path: str,
    token: str | None = None,
    body: bytes | None = None,
    timeout: float = CLIENT_TIMEOUT,
) -> Reply:
    """One request on a fresh connection, so a refused connect means "never sent"."""
    headers = {"wolkvox-token": token} if token else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.monotonic()
    try:
        try:
            conn.connect()
        except ConnectionRefusedError:
            return Reply(0, None, None, started, time.monotonic(), "refused", refused=True)
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        ended = time.monotonic()
        try:
            parsed: object = json.loads(raw)
        except ValueError:
            parsed = raw[:200].decode(errors="replace")
        return Reply(response.status, parsed, response.getheader("Retry-After"), started, ended)
    except (OSError, http.client.HTTPException) as exc:
        return Reply(0, None, None, started, time.monotonic(), type(exc).__name__)
    finally:
        conn.close()


def stamp(epoch: int) -> str:
    """A listing bound (UTC operations): YYYYmmddHHiiss."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y%m%d%H%M%S")
