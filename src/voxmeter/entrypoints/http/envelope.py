"""The Wolkvox response envelope: `{"code", "error", "msg", "data"}`, code equal to the status."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from starlette.responses import Response

from voxmeter.errors import QuotaExceeded, TooManyInFlight, VoxmeterError

_encode = msgspec.json.Encoder().encode


def ok(msg: str, data: object, extra: Mapping[str, object] | None = None) -> Response:
    body: dict[str, object] = {"code": 200, "error": None, "msg": msg, "data": data}
    if extra:
        body.update(extra)
    return Response(_encode(body), 200, media_type="application/json")


def error(exc: VoxmeterError) -> Response:
    body = {"code": exc.status, "error": exc.error, "msg": exc.msg, "data": exc.data}
    headers: dict[str, str] = {}
    if isinstance(exc, QuotaExceeded | TooManyInFlight):
        headers["Retry-After"] = str(exc.retry_after)
    return Response(_encode(body), exc.status, headers=headers, media_type="application/json")


def json(body: object, status: int = 200) -> Response:
    return Response(_encode(body), status, media_type="application/json")
