"""The OpenAPI 3.1 document: every endpoint, its parameters and every error it can answer.

Every schema here is checked against the real server by `bench/fuzz_api.py` (schemathesis,
thousands of generated requests per operation) and `tests/e2e/test_fuzz_api.py`: a response
the document does not describe is a failure, so keep them in step.
"""

from __future__ import annotations

from typing import Any

from voxmeter import __version__
from voxmeter.domain.catalog import Catalog
from voxmeter.domain.events import MAX_BATCH, MAX_ID_LENGTH, MAX_SUBJECT_LENGTH
from voxmeter.domain.quantities import MAX_QUANTITY
from voxmeter.service.events import MAX_PAGE, MAX_WINDOW_DAYS

_ERRORS = {
    "400": "Unknown api or path (THE API YOU WANT TO CONSULT DOES NOT EXIST), or missing/invalid "
    "parameters (SOME PARAMETERS ARE REQUIRED[: detail]), a wolkvox-token header sent more than "
    "once included; for ingest, `data` lists every problem",
    "401": "No wolkvox-token header (PLEASE ENTER THE WOLKVOX-TOKEN)",
    "403": "PLEASE VALIDATE TOKEN (unknown, revoked or wrong-scope token, or another server), "
    "TOKEN LIMIT EXCEEDED, EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2), or "
    "SERVER IN MAINTENANCE",
    "404": "No event with that id in the token's operation",
    "408": "The request line and headers did not arrive within the time limit (60 s)",
    "409": "The event's month is closed",
    "413": "The body is larger than the configured limit (16 MiB by default)",
    "431": "The request line and headers are larger than 64 KiB",
    "500": "A bug: a generic message, never a stack trace",
    "503": "The database or Redis cannot be reached just now (SERVICE UNAVAILABLE); "
    "a Retry-After header says when to try again, and service resumes by itself",
    "504": "The request did not finish within the time limit (60 s), waiting for room among "
    "the uploads in flight included",
}

# The envelope's `error` for each status, and what its `msg` can be (docs/api.md, Errors).
_ERROR_WORDS = {
    "400": "BAD REQUEST",
    "401": "UNAUTHORIZED",
    "403": "FORBIDDEN",
    "404": "NOT FOUND",
    "408": "REQUEST TIMEOUT",
    "409": "CONFLICT",
    "413": "PAYLOAD TOO LARGE",
    "431": "REQUEST HEADER FIELDS TOO LARGE",
    "500": "INTERNAL SERVER ERROR",
    "503": "SERVICE UNAVAILABLE",
    "504": "GATEWAY TIMEOUT",
}
_ERROR_MSGS = {
    "400": r"^(THE API YOU WANT TO CONSULT DOES NOT EXIST"
    r"|SOME PARAMETERS ARE REQUIRED(: [\s\S]+)?)$",
    "401": r"^PLEASE ENTER THE WOLKVOX-TOKEN$",
    "403": r"^(PLEASE VALIDATE TOKEN|TOKEN LIMIT EXCEEDED|SERVER IN MAINTENANCE"
    r"|EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN \([0-9]+\))$",
}
_RETRY_AFTER = {
    "description": "Whole seconds to wait before trying again",
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}

_DECIMAL = r"^(0|[1-9][0-9]*)(\.[0-9]*[1-9])?$"
"""A figure or stored quantity as voxmeter writes it: plain decimal, no exponent, no trailing
zeros (`0`, `12`, `12.5`)."""
_DECIMAL_IN = r"^[0-9]+(\.[0-9]{1,6})?$"
_DATE = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
_COUNT = r"^(0|[1-9][0-9]*)$"


def _envelope(data: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A success reply: `code` 200, `error` null."""
    return {
        "type": "object",
        "required": ["code", "error", "msg", "data", *(extra or {})],
        "properties": {
            "code": {"const": 200, "description": "Always equal to the HTTP status."},
            "error": {"type": "null"},
            "msg": {"type": "string"},
            "data": data,
            **(extra or {}),
        },
    }


def _error_schema(status: str) -> dict[str, Any]:
    """The shared Error envelope, narrowed to one status: `code` equals the HTTP status,
    `error` is that status' word, and `data` lists problems only on a 400."""
    narrowed: dict[str, Any] = {
        "code": {"const": int(status)},
        "error": {"const": _ERROR_WORDS[status]},
    }
    if status in _ERROR_MSGS:
        narrowed["msg"] = {"pattern": _ERROR_MSGS[status]}
    if status != "400":
        narrowed["data"] = {"maxItems": 0}
    return {"allOf": [{"$ref": "#/components/schemas/Error"}, {"properties": narrowed}]}


def _error_responses(*statuses: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status in statuses:
        out[status] = {
            "description": _ERRORS[status],
            "content": {"application/json": {"schema": _error_schema(status)}},
        }
        if status == "403":
            out[status]["headers"] = {
                "Retry-After": {
                    **_RETRY_AFTER,
                    "description": "Seconds to wait: on concurrency and quota refusals only",
                }
            }
        elif status == "503":
            out[status]["headers"] = {"Retry-After": {**_RETRY_AFTER, "required": True}}
    return out


def _ok(description: str, data: dict[str, Any], extra: dict[str, Any] | None = None) -> Any:
    schema = _envelope(data, extra)
    return {
        "200": {"description": description, "content": {"application/json": {"schema": schema}}}
    }


_AUTH: list[dict[str, list[str]]] = [{"token": []}]
_SERVER_HEADERS = [
    {
        "name": name,
        "in": "header",
        "required": False,
        "description": "The server (4 digits) the caller expects; a mismatch is refused (403). "
        "A Host of the form wv<server>.<domain> names it too, and so does a request line in "
        "absolute form (whose host is then checked instead of Host's).",
        "schema": {"type": "string", "pattern": "^[0-9]{4}$"},
    }
    for name in ("wolkvox_server", "wolkvox-server")
]
_MONTH = {
    "name": "month",
    "in": "query",
    "required": False,
    "description": "YYYY-MM, the current month or a past one (default: current month); "
    "a future month is refused (400).",
    "schema": {"type": "string", "pattern": r"^[0-9]{4}-(0[1-9]|1[0-2])$"},
}
_API_ERRORS = ("400", "401", "403", "408", "431", "500", "503", "504")


def document(catalog: Catalog) -> dict[str, Any]:
    apis = [p.api for p in catalog]
    usage_row = {
        "type": "object",
        "required": ["operation", "description", "items", "date"],
        "properties": {
            "operation": {"type": "string"},
            "description": {"type": "string"},
            "items": {
                "type": "string",
                "pattern": _DECIMAL,
                "description": "Plain decimal, no exponent, no trailing zeros",
            },
            "date": {
                "type": "string",
                "pattern": _DATE,
                "description": "YYYY-MM-DD in the operation timezone",
            },
        },
    }
    token_info = {
        "type": "object",
        "required": [
            "description",
            "token_limit",
            "token_use_today",
            "all_token_today",
            "available_consumption_options",
        ],
        "properties": {
            "description": {"type": "string"},
            "token_limit": {"type": "string", "pattern": _COUNT},
            "token_use_today": {"type": "string", "pattern": _COUNT},
            "all_token_today": {"type": "string", "pattern": _COUNT},
            "available_consumption_options": {"type": "string", "pattern": _COUNT},
        },
    }
    event_in = {
        "type": "object",
        "required": ["id", "product", "time"],
        "additionalProperties": False,
        "properties": {
            "id": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_ID_LENGTH,
                "description": "Printable characters; the idempotency key, unique for ever",
            },
            "product": {"type": "string", "enum": apis},
            "time": {
                "type": "string",
                "format": "date-time",
                "description": "RFC 3339 with an offset or Z, at most 5 minutes in the future, "
                "in an open month; kept to the microsecond (further digits are cut, never "
                "rounded), a leap second as 23:59:59.999999",
            },
            "quantity": {
                "description": "A decimal, at most 6 decimal places. Required for sum and level "
                "products; for count products a whole number >= 1 (default 1)",
                "anyOf": [
                    {"type": "number", "minimum": 0, "maximum": int(MAX_QUANTITY)},
                    {"type": "string", "pattern": _DECIMAL_IN},
                    {"type": "null"},
                ],
            },
            "subject": {"type": ["string", "null"], "maxLength": MAX_SUBJECT_LENGTH},
        },
    }
    event_out = {
        "type": "object",
        "required": ["id", "product", "time", "quantity", "subject", "voided"],
        "properties": {
            "id": {"type": "string"},
            "product": {"type": "string"},
            "time": {
                "type": "string",
                "format": "date-time",
                "description": "In the operation timezone",
            },
            "quantity": {"type": "string", "pattern": _DECIMAL},
            "subject": {"type": ["string", "null"]},
            "voided": {"type": "boolean"},
        },
    }
    problem = {
        "type": "object",
        "required": ["index", "field", "error"],
        "properties": {
            "index": {"type": "integer", "minimum": 0},
            "field": {"type": "string"},
            "error": {"type": "string"},
        },
    }
    voided = {
        "type": "object",
        "required": ["id", "product", "voided"],
        "properties": {
            "id": {"type": "string"},
            "product": {"type": "string"},
            "voided": {"const": True},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "voxmeter",
            "version": __version__,
            "description": "Usage metering with a Wolkvox Billing API v2 compatible read side. "
            "Every reply carries `X-Content-Type-Options: nosniff` and `Content-Security-Policy: "
            "default-src 'none'; frame-ancestors 'none'`; replies under /api/ also carry "
            "`Cache-Control: no-store`.",
        },
        "components": {
            "securitySchemes": {
                "token": {"type": "apiKey", "in": "header", "name": "wolkvox-token"}
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["code", "error", "msg", "data"],
                    "properties": {
                        "code": {
                            "type": "integer",
                            "description": "Always equal to the HTTP status.",
                        },
                        "error": {"type": "string"},
                        "msg": {"type": "string"},
                        "data": {
                            "type": "array",
                            "description": "[] except on invalid ingest: every problem found",
                            "items": {"$ref": "#/components/schemas/Problem"},
                        },
                    },
                },
                "Problem": problem,
                "UsageRow": usage_row,
                "TokenInfo": token_info,
                "EventIn": event_in,
                "EventOut": event_out,
            },
        },
        "paths": {
            "/api/v2/billing.php": {
                "get": {
                    "summary": "A product's figure for the month (or every product with api=all)",
                    "security": _AUTH,
                    "parameters": [
                        {
                            "name": "api",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string", "enum": [*apis, "all"]},
                        },
                        _MONTH,
                        *_SERVER_HEADERS,
                    ],
                    "responses": {
                        **_ok(
                            "Figures",
                            {
                                "type": "array",
                                "minItems": 1,
                                "items": {"$ref": "#/components/schemas/UsageRow"},
                            },
                        ),
                        **_error_responses(*_API_ERRORS),
                    },
                }
            },
            "/api/v2/information.php": {
                "get": {
                    "summary": "Quota use of the token and its operation (api=token_info)",
                    "security": _AUTH,
                    "parameters": [
                        {
                            "name": "api",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string", "enum": ["token_info"]},
                        },
                        *_SERVER_HEADERS,
                    ],
                    "responses": {
                        **_ok(
                            "Token information",
                            {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": 1,
                                "items": {"$ref": "#/components/schemas/TokenInfo"},
                            },
                        ),
                        **_error_responses(*_API_ERRORS),
                    },
                }
            },
            "/api/v2/events": {
                "post": {
                    "summary": f"Ingest up to {MAX_BATCH} usage events, all or nothing",
                    "security": _AUTH,
                    "parameters": [*_SERVER_HEADERS],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "array",
                                    "minItems": 1,
                                    "maxItems": MAX_BATCH,
                                    "items": {"$ref": "#/components/schemas/EventIn"},
                                }
                            },
                            "application/x-ndjson": {
                                "schema": {
                                    "type": "string",
                                    "description": "One EventIn per line; blank lines skipped",
                                }
                            },
                        },
                    },
                    "responses": {
                        **_ok(
                            "Batch stored",
                            {
                                "type": "object",
                                "required": ["accepted", "duplicates"],
                                "properties": {
                                    "accepted": {"type": "integer", "minimum": 0},
                                    "duplicates": {"type": "integer", "minimum": 0},
                                },
                            },
                        ),
                        **_error_responses(*_API_ERRORS, "413"),
                    },
                },
                "get": {
                    "summary": "The operation's raw events in a window (reconciliation)",
                    "security": _AUTH,
                    "parameters": [
                        {
                            "name": name,
                            "in": "query",
                            "required": True,
                            "description": "YYYYmmddHHiiss, operation timezone; the window is "
                            f"at most {MAX_WINDOW_DAYS} days, both ends included. A time the "
                            "clock skips (DST) is the instant of the change, one it shows twice "
                            "its first pass, so consecutive windows never overlap",
                            "schema": {"type": "string", "pattern": "^[0-9]{14}$"},
                        }
                        for name in ("date_ini", "date_end")
                    ]
                    + [
                        {
                            "name": "product",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "enum": apis},
                        },
                        {
                            "name": "cursor",
                            "in": "query",
                            "required": False,
                            "description": "`next_cursor` of the previous page",
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "description": f"Events per page (default {MAX_PAGE})",
                            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
                        },
                        *_SERVER_HEADERS,
                    ],
                    "responses": {
                        **_ok(
                            "Events, oldest first",
                            {
                                "type": "array",
                                "maxItems": MAX_PAGE,
                                "items": {"$ref": "#/components/schemas/EventOut"},
                            },
                            {
                                "next_cursor": {
                                    "type": ["string", "null"],
                                    "description": "null on the last page",
                                }
                            },
                        ),
                        **_error_responses(*_API_ERRORS),
                    },
                },
            },
            "/api/v2/events/{event_id}": {
                "delete": {
                    "summary": "Void one event",
                    "security": _AUTH,
                    "parameters": [
                        {
                            "name": "event_id",
                            "in": "path",
                            "required": True,
                            "description": "The event's id (printable characters)",
                            "schema": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": MAX_ID_LENGTH,
                            },
                        },
                        *_SERVER_HEADERS,
                    ],
                    "responses": {
                        **_ok(
                            "Voided (or already void)",
                            {"type": "array", "minItems": 1, "maxItems": 1, "items": voided},
                        ),
                        **_error_responses(*_API_ERRORS, "404", "409"),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness (no database work)",
                    "responses": {
                        "200": {
                            "description": '{"status":"ok"}',
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["status"],
                                        "properties": {"status": {"const": "ok"}},
                                    }
                                }
                            },
                        }
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["openapi", "info", "paths"],
                                    }
                                }
                            },
                        }
                    },
                }
            },
        },
    }
