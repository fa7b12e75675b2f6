"""Sending one webhook POST (httpx's async client): whatever happens comes back as a
`DeliveryAttempt`, never as an exception, with no header (so no signature) in its error text."""

from __future__ import annotations

import time

import httpx

from voxmeter.domain.alerts import MAX_BODY_TEXT
from voxmeter.service.ports import DeliveryAttempt


def client(timeout: float) -> httpx.AsyncClient:
    """One client per sender: connections reused, no redirects followed (a receiver's redirect
    is an answer like any other non-2xx), no proxy from the environment."""
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False)


async def post(
    http: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], now: int
) -> DeliveryAttempt:
    """POST `body`; the attempt made at `now` (epoch microseconds), with its duration."""
    started = time.monotonic_ns()
    status: int | None = None
    error: str | None = None
    try:
        reply = await http.post(url, content=body, headers=headers)
        status = reply.status_code
        if not 200 <= status < 300:
            error = reply.text[:MAX_BODY_TEXT] or None
    except httpx.TimeoutException:
        error = "timed out"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:MAX_BODY_TEXT]
    duration = (time.monotonic_ns() - started) // 1000
    return DeliveryAttempt(now, status, error, duration)
