"""The client's exception tree: one class per error row of the API (docs/api.md),
under one base.

Callers branch on classes, never on message text, and the retry policy reads one attribute
(`transient`) instead of re-deciding per status: that is how "retry only what is transient"
stays true as rows are added.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from voxmeter import errors as server
from voxmeter.entrypoints.wire import errors as wire


class VoxmeterClientError(Exception):
    """Base of every error the client raises."""

    transient: ClassVar[bool] = False
    """True when the same request may succeed later unchanged (so the client retries it)."""


class ResponseFormatError(VoxmeterClientError):
    """The server answered something that is not a Wolkvox envelope we can read.

    Raised instead of guessing, so a changed or broken server never turns into silent zeros.
    """

    def __init__(self, message: str, raw: object = None) -> None:
        super().__init__(message)
        self.raw = raw


class APIConnectionError(VoxmeterClientError):
    """The request never got an answer (DNS, refused connection, reset, protocol error)."""

    transient = True


class APITimeoutError(APIConnectionError):
    """No answer within the client's timeout."""


class APIStatusError(VoxmeterClientError):
    """The server answered with an error envelope; carries everything it said.

    `status` is the HTTP status line, `code` the envelope's code (they agree on voxmeter; the
    hosted API may differ), `retry_after` the parsed `Retry-After` header in seconds, `raw` the
    decoded body (or its text when it was not JSON).
    """

    def __init__(
        self,
        msg: str,
        *,
        status: int,
        code: int | None = None,
        error: str | None = None,
        retry_after: float | None = None,
        raw: object = None,
    ) -> None:
        super().__init__(f"{status} {error or ''}: {msg}".replace(" :", ":"))
        self.msg = msg
        self.status = status
        self.code = code
        self.error = error
        self.retry_after = retry_after
        self.raw = raw


class BadRequestError(APIStatusError):
    """400 family: the request itself is wrong; repeating it cannot help."""


class UnknownApiError(BadRequestError):
    """400 THE API YOU WANT TO CONSULT DOES NOT EXIST: unknown `api` value or path."""


@dataclass(frozen=True, slots=True)
class EventProblem:
    """One reason an ingest batch was refused: the event's position in the batch, the field and
    what is wrong with it."""

    index: int
    field: str
    error: str

    def __str__(self) -> str:
        return f"event {self.index}: {self.field}: {self.error}"


#: How many problems the message of a `BadParametersError` spells out (all are in `problems`).
SHOWN_PROBLEMS = 20


class BadParametersError(BadRequestError):
    """400 SOME PARAMETERS ARE REQUIRED (detail after `: `), e.g. a future `month`.

    For a refused ingest batch, `problems` lists every problem the server reported, and the
    message shows them (the first `SHOWN_PROBLEMS`), so a log line says what to fix.
    """

    def __init__(
        self,
        msg: str,
        *,
        status: int,
        code: int | None = None,
        error: str | None = None,
        retry_after: float | None = None,
        raw: object = None,
    ) -> None:
        super().__init__(
            msg, status=status, code=code, error=error, retry_after=retry_after, raw=raw
        )
        self.problems = problems_of(raw)
        if self.problems:
            lines = [f"\n  {p}" for p in self.problems[:SHOWN_PROBLEMS]]
            if len(self.problems) > SHOWN_PROBLEMS:
                lines.append(f"\n  ... and {len(self.problems) - SHOWN_PROBLEMS} more")
            self.args = (self.args[0] + "".join(lines),)


def problems_of(raw: object) -> tuple[EventProblem, ...]:
    """The `{"index", "field", "error"}` rows of an error body's `data`; anything else is
    skipped (a hosted server may put other things there)."""
    data = raw.get("data") if isinstance(raw, dict) else None
    if not isinstance(data, list):
        return ()
    found = []
    for item in data:
        if not isinstance(item, dict):
            continue
        index, field, error = item.get("index"), item.get("field"), item.get("error")
        if isinstance(index, int) and not isinstance(index, bool):
            found.append(EventProblem(index, str(field or ""), str(error or "")))
    return tuple(found)


class MissingTokenError(APIStatusError):
    """401 PLEASE ENTER THE WOLKVOX-TOKEN: no token was sent."""


class PermissionDeniedError(APIStatusError):
    """403 family (the hosted API uses 403 for four unrelated refusals)."""


class InvalidTokenError(PermissionDeniedError):
    """403 PLEASE VALIDATE TOKEN: unknown, revoked, wrong-scope or wrong-server token."""


class QuotaExceededError(PermissionDeniedError):
    """403 TOKEN LIMIT EXCEEDED: the operation's daily quota is used up.

    Not transient for the client: retrying burns nothing useful until midnight (`retry_after`).
    """


class TooManyRequestsError(PermissionDeniedError):
    """403 EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN: another caller holds the slots."""

    transient = True


class MaintenanceError(PermissionDeniedError):
    """403 SERVER IN MAINTENANCE: switched on by an admin, expected to end."""

    transient = True


class PayloadTooLargeError(APIStatusError):
    """413: the body is over the server's limit (the client already splits at 10,000 events)."""


class ServerError(APIStatusError):
    """5xx: a server or gateway failure, worth retrying."""

    transient = True


#: The class each server error means. Its `msg` (or the fixed start of it) and status come from
#: the server's own error table, so client and server cannot disagree on a message.
_BY_ERROR: tuple[tuple[type[server.VoxmeterError], type[APIStatusError]], ...] = (
    (server.UnknownApi, UnknownApiError),
    (server.BadParameters, BadParametersError),
    (server.MissingToken, MissingTokenError),
    (server.InvalidToken, InvalidTokenError),
    (server.QuotaExceeded, QuotaExceededError),
    (server.TooManyInFlight, TooManyRequestsError),
    (server.Maintenance, MaintenanceError),
    (server.PayloadTooLarge, PayloadTooLargeError),
)
_BY_MESSAGE: tuple[tuple[str, type[APIStatusError]], ...] = tuple(
    (wire.TABLE[error].msg, cls) for error, cls in _BY_ERROR
)
_MISSING_TOKEN = wire.TABLE[server.MissingToken].status
_TOO_LARGE = wire.TABLE[server.PayloadTooLarge].status


def error_class(status: int, msg: str) -> type[APIStatusError]:
    """The class for an error answer: by the envelope's `msg` first, then by status family.

    The message decides because status alone is ambiguous (four different 403s).
    """
    text = msg.strip().upper()
    for prefix, cls in _BY_MESSAGE:
        if text.startswith(prefix):
            return cls
    if status == _MISSING_TOKEN:
        return MissingTokenError
    if status == _TOO_LARGE:
        return PayloadTooLargeError
    if status >= 500:
        return ServerError
    if status == 403:
        return PermissionDeniedError
    if status == 400:
        return BadRequestError
    return APIStatusError
