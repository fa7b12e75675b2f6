"""The Wolkvox response envelope: `{"code", "error", "msg", "data"}`, code equal to the status."""

from __future__ import annotations

import msgspec
from starlette.responses import Response

from voxmeter.entrypoints.http.replies import Error, encode
from voxmeter.errors import (
    MethodNotAllowed,
    QuotaExceeded,
    TooManyInFlight,
    Unavailable,
    VoxmeterError,
)

JSON = "application/json"


def error_parts(exc: VoxmeterError) -> tuple[int, bytes, dict[str, str]]:
    """(status, body, extra headers) of an error; limit refusals and outages say when to retry."""
    body = Error(exc.status, exc.error, exc.msg, exc.data)  # type: ignore[arg-type]
    headers: dict[str, str] = {}
    if isinstance(exc, QuotaExceeded | TooManyInFlight | Unavailable):
        headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, MethodNotAllowed) and exc.allow:
        headers["Allow"] = exc.allow
    return exc.status, encode(body), headers


def ok(reply: msgspec.Struct) -> Response:
    return Response(encode(reply), 200, media_type=JSON)


def error(exc: VoxmeterError) -> Response:
    status, body, headers = error_parts(exc)
    return Response(body, status, headers=headers, media_type=JSON)
