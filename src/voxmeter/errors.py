"""One exception tree: what went wrong, in the domain's terms.

No error here knows an HTTP status or the text a caller reads: `entrypoints/wire/errors.py`
holds the one table that writes each of them for the HTTP envelope, the CLI and the client.
"""

from __future__ import annotations

from collections.abc import Sequence


class VoxmeterError(Exception):
    """Base of every error voxmeter reports to a caller.

    `detail` says more where the error has more to say (what is wrong with a parameter, which
    backing service is down); `data` lists problems, one per refused event."""

    def __init__(self, detail: str | None = None, data: Sequence[object] | None = None) -> None:
        self.detail = detail or None
        self.data: list[object] = list(data or [])
        super().__init__(*([detail] if detail else []))


class UnknownApi(VoxmeterError):
    """The `api` asked for, or the path, does not exist."""


class BadParameters(VoxmeterError):
    """Missing or invalid parameters; `detail` names the problem."""


class MissingToken(VoxmeterError):
    """No token was sent."""


class InvalidToken(VoxmeterError):
    """An unknown, revoked or wrong-scope token, or one of another server."""


class QuotaExceeded(VoxmeterError):
    """The operation's daily quota is used up until `retry_after` seconds from now."""

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.retry_after = retry_after


class TooManyInFlight(VoxmeterError):
    """The token already has `limit` requests in flight."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.retry_after = 1


class Maintenance(VoxmeterError):
    """An admin has switched maintenance on."""


class NotFound(VoxmeterError):
    """No such record (`event_id`: the event looked for)."""

    def __init__(self, event_id: str | None = None) -> None:
        super().__init__()
        self.event_id = event_id


class MethodNotAllowed(VoxmeterError):
    """`allow` lists the path's methods, for the reply's `Allow` header (RFC 9110 §15.5.6)."""

    def __init__(self, allow: str = "") -> None:
        super().__init__()
        self.allow = allow


class Conflict(VoxmeterError):
    """The month (`month`, YYYY-MM) is closed."""

    def __init__(self, month: str | None = None) -> None:
        super().__init__()
        self.month = month


class MirrorUsage(VoxmeterError):
    """Events or voids sent to a mirror, whose usage comes from its upstream server."""


class PayloadTooLarge(VoxmeterError):
    """The body is larger than `limit` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit


class Unavailable(VoxmeterError):
    """A backing service (database or shared limit store) cannot be reached just now.

    Raised by adapters instead of their driver's errors, so a request gets a clear refusal and
    the next one tries again: service resumes by itself when the component is back."""

    def __init__(self, detail: str | None = None, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class RequestTimeout(VoxmeterError):
    """The request did not finish within the time limit."""


class ConfigError(VoxmeterError):
    """A setup problem found before serving (bad flag, unknown operation, ...)."""


class SchemaError(ConfigError):
    """The database's schema is not the one this release uses (older: run `voxmeter migrate`;
    newer: upgrade voxmeter)."""
