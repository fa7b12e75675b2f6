"""The one error table: what each error is written as, and the client reading the same table."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from voxmeter import errors
from voxmeter.client._errors import (
    APIStatusError,
    BadParametersError,
    InvalidTokenError,
    MaintenanceError,
    MissingTokenError,
    PayloadTooLargeError,
    QuotaExceededError,
    ServerError,
    TooManyRequestsError,
    UnknownApiError,
    error_class,
)
from voxmeter.config import Settings
from voxmeter.entrypoints.http.envelope import error_parts
from voxmeter.entrypoints.http.openapi import message_patterns
from voxmeter.entrypoints.wire.errors import TABLE, message, row_of

CASES: list[tuple[errors.VoxmeterError, int, str, type[APIStatusError]]] = [
    (errors.UnknownApi(), 400, "THE API YOU WANT TO CONSULT DOES NOT EXIST", UnknownApiError),
    (errors.BadParameters(), 400, "SOME PARAMETERS ARE REQUIRED", BadParametersError),
    (errors.BadParameters("api"), 400, "SOME PARAMETERS ARE REQUIRED: api", BadParametersError),
    (errors.MissingToken(), 401, "PLEASE ENTER THE WOLKVOX-TOKEN", MissingTokenError),
    (errors.InvalidToken(), 403, "PLEASE VALIDATE TOKEN", InvalidTokenError),
    (errors.QuotaExceeded(7), 403, "TOKEN LIMIT EXCEEDED", QuotaExceededError),
    (
        errors.TooManyInFlight(3),
        403,
        "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (3)",
        TooManyRequestsError,
    ),
    (errors.Maintenance(), 403, "SERVER IN MAINTENANCE", MaintenanceError),
    (errors.NotFound("a b"), 404, "NO EVENT WITH ID 'a b'", APIStatusError),
    (errors.Conflict("2026-04"), 409, "THE MONTH 2026-04 IS CLOSED", APIStatusError),
    (
        errors.PayloadTooLarge(4096),
        413,
        "THE BODY IS LARGER THAN THE LIMIT OF 4096 BYTES",
        PayloadTooLargeError,
    ),
    (
        errors.Unavailable(),
        503,
        "A BACKING SERVICE IS UNREACHABLE, TRY AGAIN SHORTLY",
        ServerError,
    ),
    (
        errors.Unavailable("THE DATABASE STORAGE IS CLOSED"),
        503,
        "THE DATABASE STORAGE IS CLOSED",
        ServerError,
    ),
    (errors.RequestTimeout(), 504, "THE REQUEST DID NOT FINISH WITHIN THE TIME LIMIT", ServerError),
    (errors.VoxmeterError(), 500, "THE SERVER COULD NOT COMPLETE THE REQUEST", ServerError),
]


@pytest.mark.parametrize(("exc", "status", "msg", "client_class"), CASES)
def test_each_error_is_written_from_the_table_and_read_back_by_the_client(
    exc: errors.VoxmeterError, status: int, msg: str, client_class: type[APIStatusError]
) -> None:
    sent_status, body, headers = error_parts(exc)
    reply = json.loads(body)
    assert list(reply) == ["code", "error", "msg", "data"]
    assert (sent_status, reply["code"], reply["msg"]) == (status, status, msg)
    assert reply["error"] == row_of(type(exc)).error
    assert ("Retry-After" in headers) == row_of(type(exc)).retry_after
    assert error_class(sent_status, reply["msg"]) is client_class


def test_errors_carry_no_status_or_reply_text() -> None:
    for cls in TABLE:
        for name in ("status", "error", "msg", "default_msg"):
            assert not hasattr(cls, name), f"{cls.__name__}.{name}"
    assert message(errors.SchemaError("run voxmeter migrate")) == "run voxmeter migrate"


def test_the_document_accepts_exactly_what_the_table_writes() -> None:
    patterns = message_patterns(Settings(max_in_flight=3, max_body_bytes=4096))
    for _exc, status, msg, _ in CASES:
        if str(status) in patterns:
            assert re.fullmatch(patterns[str(status)], msg), (status, msg)
    assert not re.fullmatch(
        patterns["403"], "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2)"
    )
    assert not re.fullmatch(patterns["413"], "THE BODY IS LARGER THAN THE LIMIT OF 4097 BYTES")


def test_the_client_reads_the_table_without_loading_the_server() -> None:
    code = (
        "import sys, voxmeter.client\n"
        "server = ('voxmeter.service', 'voxmeter.adapters', 'voxmeter.entrypoints.http',"
        " 'starlette', 'uvicorn', 'psycopg', 'redis')\n"
        "print(sorted(m for m in sys.modules if m.startswith(server)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
