"""The Wolkvox response envelope: `{"code", "error", "msg", "data"}`, code equal to the status."""

from __future__ import annotations

import msgspec
from starlette.responses import Response

from voxmeter.entrypoints.http.replies import Error, encode
from voxmeter.entrypoints.wire.errors import message, row_of
from voxmeter.errors import MethodNotAllowed, VoxmeterError

JSON = "application/json"


def error_parts(exc: VoxmeterError) -> tuple[int, bytes, dict[str, str]]:
    """(status, body, extra headers) of an error; limit refusals and outages say when to retry."""
    row = row_of(type(exc))
    body = Error(row.status, row.error, message(exc), exc.data)  # type: ignore[arg-type]
    headers: dict[str, str] = {}
    if row.retry_after:
        headers["Retry-After"] = str(getattr(exc, "retry_after", 1))
    elif isinstance(exc, MethodNotAllowed) and exc.allow:
        headers["Allow"] = exc.allow
    return row.status, encode(body), headers


def ok(reply: msgspec.Struct) -> Response:
    return Response(encode(reply), 200, media_type=JSON)


def error(exc: VoxmeterError) -> Response:
    status, body, headers = error_parts(exc)
    return Response(body, status, headers=headers, media_type=JSON)
