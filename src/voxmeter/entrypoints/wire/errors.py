"""The one table from error classes to what a caller is told: status, `error`, `msg`, and
whether a Retry-After goes with it.

Domain and service errors say what went wrong (a limit, an event id, a month); how that is
written is decided here only. The HTTP envelope, the CLI's messages, /openapi.json and the
client's exception classes all read this table.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from voxmeter.errors import (
    BadParameters,
    ConfigError,
    Conflict,
    InvalidToken,
    Maintenance,
    MethodNotAllowed,
    MirrorUsage,
    MissingToken,
    NotFound,
    PayloadTooLarge,
    QuotaExceeded,
    RequestTimeout,
    TooManyInFlight,
    Unavailable,
    UnknownApi,
    VoxmeterError,
)

_SYNTAX = re.compile(r"([\\^$.|?*+()\[\]{}])")


def _escape(text: str) -> str:
    """`text` as a literal in a regular expression that both Python and ECMA-262 (JSON Schema)
    read the same way: only syntax characters are escaped."""
    return _SYNTAX.sub(r"\\\1", text)


@dataclass(frozen=True, slots=True)
class ErrorRow:
    status: int
    error: str
    msg: str
    """The message when the error carries nothing more (also the start every variant shares,
    except where `template` says otherwise)."""
    template: str | None = None
    """The message when the error carries the attribute the template names."""
    retry_after: bool = False
    """The reply says, in a Retry-After header, when to try again."""
    http: bool = True
    """False for errors only the command line reports."""

    def field(self) -> str | None:
        if self.template is None:
            return None
        names = [name for _, name, _, _ in string.Formatter().parse(self.template) if name]
        return names[0] if names else None

    def pattern(self, known: dict[str, object] | None = None) -> str:
        """A regular expression for every `msg` this row can give; a template's attribute is
        either the value `known` gives or any text."""
        always = known is not None and self.field() in known  # the template is always used
        shapes = [] if always else [_escape(self.msg)]
        if self.template is not None:
            out = []
            for literal, name, spec, _conv in string.Formatter().parse(self.template):
                out.append(_escape(literal))
                if name is None:
                    continue
                if known and name in known:
                    out.append(_escape(format(known[name], spec or "")))
                else:
                    out.append(r"[\s\S]+")
            shapes.append("".join(out))
        return "|".join(dict.fromkeys(shapes))


BAD_REQUEST = "BAD REQUEST"
FORBIDDEN = "FORBIDDEN"

TABLE: dict[type[VoxmeterError], ErrorRow] = {
    UnknownApi: ErrorRow(400, BAD_REQUEST, "THE API YOU WANT TO CONSULT DOES NOT EXIST"),
    BadParameters: ErrorRow(
        400, BAD_REQUEST, "SOME PARAMETERS ARE REQUIRED", "SOME PARAMETERS ARE REQUIRED: {detail}"
    ),
    MissingToken: ErrorRow(401, "UNAUTHORIZED", "PLEASE ENTER THE WOLKVOX-TOKEN"),
    InvalidToken: ErrorRow(403, FORBIDDEN, "PLEASE VALIDATE TOKEN"),
    QuotaExceeded: ErrorRow(403, FORBIDDEN, "TOKEN LIMIT EXCEEDED", retry_after=True),
    TooManyInFlight: ErrorRow(
        403,
        FORBIDDEN,
        "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN",
        "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN ({limit})",
        retry_after=True,
    ),
    Maintenance: ErrorRow(403, FORBIDDEN, "SERVER IN MAINTENANCE"),
    NotFound: ErrorRow(404, "NOT FOUND", "NO SUCH RECORD", "NO EVENT WITH ID {event_id!r}"),
    MethodNotAllowed: ErrorRow(
        405, "METHOD NOT ALLOWED", "THIS METHOD IS NOT ALLOWED ON THIS PATH"
    ),
    Conflict: ErrorRow(409, "CONFLICT", "THE MONTH IS CLOSED", "THE MONTH {month} IS CLOSED"),
    MirrorUsage: ErrorRow(
        409,
        "CONFLICT",
        "THIS OPERATION IS A MIRROR: ITS USAGE COMES FROM ITS UPSTREAM SERVER, NOT FROM EVENTS",
    ),
    PayloadTooLarge: ErrorRow(
        413,
        "PAYLOAD TOO LARGE",
        "THE BODY IS LARGER THAN THE LIMIT",
        "THE BODY IS LARGER THAN THE LIMIT OF {limit} BYTES",
    ),
    Unavailable: ErrorRow(
        503,
        "SERVICE UNAVAILABLE",
        "A BACKING SERVICE IS UNREACHABLE, TRY AGAIN SHORTLY",
        "{detail}",
        retry_after=True,
    ),
    RequestTimeout: ErrorRow(
        504, "GATEWAY TIMEOUT", "THE REQUEST DID NOT FINISH WITHIN THE TIME LIMIT"
    ),
    ConfigError: ErrorRow(
        400, BAD_REQUEST, "THE SERVER COULD NOT COMPLETE THE REQUEST", "{detail}", http=False
    ),
    VoxmeterError: ErrorRow(
        500, "INTERNAL SERVER ERROR", "THE SERVER COULD NOT COMPLETE THE REQUEST"
    ),
}

PROTOCOL: dict[int, ErrorRow] = {
    408: ErrorRow(408, "REQUEST TIMEOUT", "THE REQUEST WAS NOT RECEIVED IN TIME"),
    431: ErrorRow(
        431,
        "REQUEST HEADER FIELDS TOO LARGE",
        "THE REQUEST HEADERS ARE LARGER THAN THE LIMIT",
        "THE REQUEST HEADERS ARE LARGER THAN THE LIMIT OF {limit} BYTES",
    ),
}
"""Refusals the HTTP protocol layer writes itself, before any request object exists."""


def row_of(cls: type[VoxmeterError]) -> ErrorRow:
    """The row of `cls`, or of its nearest listed ancestor."""
    for klass in cls.__mro__:
        row = TABLE.get(klass)
        if row is not None:
            return row
    return TABLE[VoxmeterError]


def message(exc: VoxmeterError) -> str:
    """The `msg` a caller is shown for `exc`."""
    row = row_of(type(exc))
    name = row.field()
    if row.template is not None and name is not None and getattr(exc, name, None) is not None:
        return row.template.format_map({name: getattr(exc, name)})
    return row.msg


def words(status: int) -> str:
    """The envelope's `error` for an HTTP status voxmeter answers with."""
    for row in (*TABLE.values(), *PROTOCOL.values()):
        if row.status == status and row.http:
            return row.error
    raise KeyError(status)
