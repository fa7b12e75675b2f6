"""Typed sync and async clients for any Wolkvox-compatible billing server.

Everything public is re-exported here; the underscored modules are private and may move.
"""

from voxmeter.client._client import DEFAULT_BASE_URL, AsyncClient, Client
from voxmeter.client._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    BadParametersError,
    BadRequestError,
    EventProblem,
    InvalidTokenError,
    MaintenanceError,
    MissingTokenError,
    PayloadTooLargeError,
    PermissionDeniedError,
    QuotaExceededError,
    ResponseFormatError,
    ServerError,
    TooManyRequestsError,
    UnknownApiError,
    VoxmeterClientError,
)
from voxmeter.client._models import IngestResult, TokenInfo, UsageRow
from voxmeter.client._retry import RetryPolicy

__all__ = [
    "DEFAULT_BASE_URL",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "BadParametersError",
    "BadRequestError",
    "Client",
    "EventProblem",
    "IngestResult",
    "InvalidTokenError",
    "MaintenanceError",
    "MissingTokenError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "ResponseFormatError",
    "RetryPolicy",
    "ServerError",
    "TokenInfo",
    "TooManyRequestsError",
    "UnknownApiError",
    "UsageRow",
    "VoxmeterClientError",
]
