"""The Wolkvox response envelope: `{"code", "error", "msg", "data"}`, code equal to the status."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from starlette.responses import Response

from voxmeter.errors import (
    MethodNotAllowed,
    QuotaExceeded,
    TooManyInFlight,
    Unavailable,
    VoxmeterError,
)

_encode = msgspec.json.Encoder().encode
JSON = "application/json"


def ok_body(msg: str, data: object, extra: Mapping[str, object] | None = None) -> bytes:
    body: dict[str, object] = {"code": 200, "error": None, "msg": msg, "data": data}
    if extra:
        body.update(extra)
    return _encode(body)


def error_parts(exc: VoxmeterError) -> tuple[int, bytes, dict[str, str]]:
    """(status, body, extra headers) of an error; limit refusals and outages say when to retry."""
    body = {"code": exc.status, "error": exc.error, "msg": exc.msg, "data": exc.data}
    headers: dict[str, str] = {}
    if isinstance(exc, QuotaExceeded | TooManyInFlight | Unavailable):
        headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, MethodNotAllowed) and exc.allow:
        headers["Allow"] = exc.allow
    return exc.status, _encode(body), headers


def ok(msg: str, data: object, extra: Mapping[str, object] | None = None) -> Response:
    return Response(ok_body(msg, data, extra), 200, media_type=JSON)


def error(exc: VoxmeterError) -> Response:
    status, body, headers = error_parts(exc)
    return Response(body, status, headers=headers, media_type=JSON)


def json(body: object, status: int = 200) -> Response:
    return Response(_encode(body), status, media_type=JSON)
