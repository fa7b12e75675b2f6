"""One exception tree. Every error carries the HTTP status, the envelope's `error` and `msg`."""

from __future__ import annotations

from collections.abc import Sequence


class VoxmeterError(Exception):
    """Base of every error voxmeter reports to a caller."""

    status = 500
    error = "INTERNAL SERVER ERROR"
    default_msg = "THE SERVER COULD NOT COMPLETE THE REQUEST"

    def __init__(self, msg: str | None = None, data: Sequence[object] | None = None) -> None:
        self.msg = msg or self.default_msg
        self.data: list[object] = list(data or [])
        super().__init__(self.msg)


class UnknownApi(VoxmeterError):
    status = 400
    error = "BAD REQUEST"
    default_msg = "THE API YOU WANT TO CONSULT DOES NOT EXIST"


class BadParameters(VoxmeterError):
    """Missing or invalid parameters; detail is appended after `: `."""

    status = 400
    error = "BAD REQUEST"
    default_msg = "SOME PARAMETERS ARE REQUIRED"

    def __init__(self, detail: str | None = None, data: Sequence[object] | None = None) -> None:
        msg = self.default_msg if not detail else f"{self.default_msg}: {detail}"
        super().__init__(msg, data)


class MissingToken(VoxmeterError):
    status = 401
    error = "UNAUTHORIZED"
    default_msg = "PLEASE ENTER THE WOLKVOX-TOKEN"


class InvalidToken(VoxmeterError):
    status = 403
    error = "FORBIDDEN"
    default_msg = "PLEASE VALIDATE TOKEN"


class QuotaExceeded(VoxmeterError):
    status = 403
    error = "FORBIDDEN"
    default_msg = "TOKEN LIMIT EXCEEDED"

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.retry_after = retry_after


class TooManyInFlight(VoxmeterError):
    status = 403
    error = "FORBIDDEN"

    def __init__(self, limit: int) -> None:
        super().__init__(f"EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN ({limit})")
        self.retry_after = 1


class Maintenance(VoxmeterError):
    status = 403
    error = "FORBIDDEN"
    default_msg = "SERVER IN MAINTENANCE"


class NotFound(VoxmeterError):
    status = 404
    error = "NOT FOUND"
    default_msg = "NO SUCH RECORD"


class MethodNotAllowed(VoxmeterError):
    """`allow` lists the path's methods, for the reply's `Allow` header (RFC 9110 §15.5.6)."""

    status = 405
    error = "METHOD NOT ALLOWED"
    default_msg = "THIS METHOD IS NOT ALLOWED ON THIS PATH"

    def __init__(self, allow: str = "") -> None:
        super().__init__()
        self.allow = allow


class Conflict(VoxmeterError):
    status = 409
    error = "CONFLICT"
    default_msg = "THE MONTH IS CLOSED"


class PayloadTooLarge(VoxmeterError):
    status = 413
    error = "PAYLOAD TOO LARGE"


class Unavailable(VoxmeterError):
    """A backing service (database or shared limit store) cannot be reached just now.

    Raised by adapters instead of their driver's errors, so a request gets a clear 503 and the
    next one tries again: service resumes by itself when the component is back."""

    status = 503
    error = "SERVICE UNAVAILABLE"
    default_msg = "A BACKING SERVICE IS UNREACHABLE, TRY AGAIN SHORTLY"

    def __init__(self, msg: str | None = None, retry_after: int = 1) -> None:
        super().__init__(msg)
        self.retry_after = retry_after


class RequestTimeout(VoxmeterError):
    status = 504
    error = "GATEWAY TIMEOUT"
    default_msg = "THE REQUEST DID NOT FINISH WITHIN THE TIME LIMIT"


class ConfigError(VoxmeterError):
    """A setup problem found before serving (bad flag, unknown operation, ...)."""

    status = 400
    error = "BAD REQUEST"


class SchemaError(ConfigError):
    """The database's schema is not the one this release uses (older: run `voxmeter migrate`;
    newer: upgrade voxmeter)."""
