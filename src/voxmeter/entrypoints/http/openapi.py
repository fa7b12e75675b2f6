"""The OpenAPI 3.1 document: every endpoint, its parameters and every error it can answer.

Reply schemas are generated from the Structs that encode the replies (`replies`), and the limits
it names from the running server's `Settings`, so the document cannot drift from what is sent.
Every schema is checked against the real server by `bench/fuzz_api.py` (schemathesis, thousands
of generated requests per operation) and `tests/e2e/test_fuzz_api.py`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from voxmeter import __version__
from voxmeter.config import Settings
from voxmeter.domain.catalog import Catalog
from voxmeter.domain.events import MAX_BATCH, MAX_ID_LENGTH, MAX_SUBJECT_LENGTH
from voxmeter.domain.quantities import MAX_QUANTITY
from voxmeter.entrypoints.http import replies
from voxmeter.entrypoints.wire import alerts as wire_alerts
from voxmeter.entrypoints.wire import errors as wire
from voxmeter.errors import PayloadTooLarge, TooManyInFlight, VoxmeterError
from voxmeter.service import audit
from voxmeter.service.events import MAX_PAGE, MAX_WINDOW_DAYS

JSON = "application/json"
_REF = "#/components/schemas/{name}"


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _errors(settings: Settings) -> dict[str, str]:
    """What each status means on this server, its configured limits written in."""
    timeout = _seconds(settings.request_timeout)
    return {
        "400": "Unknown api or path (THE API YOU WANT TO CONSULT DOES NOT EXIST), or missing/"
        "invalid parameters (SOME PARAMETERS ARE REQUIRED[: detail]), a wolkvox-token header "
        "sent more than once included; for ingest, `data` lists every problem",
        "401": "No wolkvox-token header (PLEASE ENTER THE WOLKVOX-TOKEN)",
        "403": "PLEASE VALIDATE TOKEN (unknown, revoked or wrong-scope token, or another server), "
        "TOKEN LIMIT EXCEEDED, EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN "
        f"({settings.max_in_flight}), or SERVER IN MAINTENANCE",
        "404": "No event with that id in the token's operation",
        "408": f"The request line and headers did not arrive within the time limit ({timeout})",
        "409": "The event's month is closed (THE MONTH YYYY-MM IS CLOSED), or the operation is "
        "a mirror, whose usage comes from its upstream server (THIS OPERATION IS A MIRROR: ...)",
        "413": f"The body is larger than this server's limit of {settings.max_body_bytes} bytes "
        "(THE BODY IS LARGER THAN THE LIMIT OF N BYTES)",
        "431": "The request line and headers are larger than 64 KiB",
        "500": "A bug: a generic message, never a stack trace",
        "503": "The database or Redis cannot be reached just now (SERVICE UNAVAILABLE); "
        "a Retry-After header says when to try again, and service resumes by itself",
        "504": f"The request did not finish within the time limit ({timeout}), waiting for room "
        "among the uploads in flight included",
    }


_EXACT = ("400", "401", "403", "413")
"""The statuses whose every `msg` the document spells out (the others say what happened in
their own words: which event, which month, which backing service)."""


def message_patterns(settings: Settings) -> dict[str, str]:
    """What the envelope's `msg` can be, from the error table and this server's limits."""
    known: dict[type[VoxmeterError], dict[str, object]] = {
        TooManyInFlight: {"limit": settings.max_in_flight},
        PayloadTooLarge: {"limit": settings.max_body_bytes},
    }
    shapes: dict[str, list[str]] = {}
    for cls, row in wire.TABLE.items():
        if row.http and str(row.status) in _EXACT:
            shapes.setdefault(str(row.status), []).append(row.pattern(known.get(cls)))
    return {status: f"^({'|'.join(found)})$" for status, found in shapes.items()}


_RETRY_AFTER = {
    "description": "Whole seconds to wait before trying again",
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}
_DECIMAL_IN = r"^[0-9]+(\.[0-9]{1,6})?$"


def _error_schema(status: str, messages: dict[str, str]) -> dict[str, Any]:
    """The shared Error envelope, narrowed to one status: `code` equals the HTTP status,
    `error` is that status' word, and `data` lists problems only on a 400."""
    narrowed: dict[str, Any] = {
        "code": {"const": int(status)},
        "error": {"const": wire.words(int(status))},
    }
    if status in messages:
        narrowed["msg"] = {"pattern": messages[status]}
    if status != "400":
        narrowed["data"] = {"maxItems": 0}
    return {"allOf": [{"$ref": _REF.format(name="Error")}, {"properties": narrowed}]}


def _error_responses(
    errors: dict[str, str], messages: dict[str, str], statuses: tuple[str, ...]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status in statuses:
        out[status] = {
            "description": errors[status],
            "content": {JSON: {"schema": _error_schema(status, messages)}},
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


def _components() -> dict[str, Any]:
    """The reply Structs' JSON schemas. Every field is written on every reply (defaults
    included), so every property is required."""
    _, generated = msgspec.json.schema_components(replies.REPLIES, ref_template=_REF)
    components: dict[str, Any] = {}
    for name, schema in generated.items():
        properties = schema.get("properties")
        if properties is None:
            components[name] = schema
            continue
        for prop in properties.values():
            prop.pop("default", None)
        # the Struct's title and docstring are for readers of the code, not of the document
        components[name] = {
            "type": "object",
            "required": list(properties),
            "properties": properties,
        }
    return components


_COMPONENTS = _components()
_ENVELOPES = {s.__name__ for s in replies.ENVELOPES}


def _reply(description: str, struct: type[msgspec.Struct]) -> dict[str, Any]:
    """A success reply; its envelope written in place, the rows it holds by reference."""
    schema = _COMPONENTS[struct.__name__]
    return {"200": {"description": description, "content": {JSON: {"schema": schema}}}}


def document(catalog: Catalog, settings: Settings) -> dict[str, Any]:
    """The document for this server: its catalog and its configured limits."""
    apis = [p.api for p in catalog]
    errors = _errors(settings)
    messages = message_patterns(settings)

    def error_responses(*statuses: str) -> dict[str, Any]:
        return _error_responses(errors, messages, statuses)

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
                **{k: v for k, v in _COMPONENTS.items() if k not in _ENVELOPES},
                "EventIn": event_in,
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
                        **_reply("Figures", replies.Figures),
                        **error_responses(*_API_ERRORS),
                    },
                }
            },
            "/api/v2/daily": {
                "get": {
                    "summary": "Each local day's figure of the month, from the 1st to today "
                    "(current month) or to the last day; with api=all, every product in catalog "
                    "order, then by date",
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
                        "200": {
                            "description": "Daily figures (DailyAllFigures with api=all)",
                            "content": {
                                JSON: {
                                    "schema": {
                                        "anyOf": [
                                            _COMPONENTS["DailyFigures"],
                                            _COMPONENTS["DailyAllFigures"],
                                        ]
                                    }
                                }
                            },
                        },
                        **error_responses(*_API_ERRORS),
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
                        **_reply("Token information", replies.TokenInformation),
                        **error_responses(*_API_ERRORS),
                    },
                }
            },
            "/api/v2/forecast": {
                "get": {
                    "summary": "Every product's figure so far and its expected month-end figure",
                    "security": _AUTH,
                    "parameters": [_MONTH, *_SERVER_HEADERS],
                    "responses": {
                        **_reply("Forecasts, in catalog order", replies.Forecasts),
                        **error_responses(*_API_ERRORS),
                    },
                }
            },
            "/api/v2/statement": {
                "get": {
                    "summary": "The month's statement: every product priced in the operation's "
                    "currency (draft while the month is open, final once it has closed)",
                    "security": _AUTH,
                    "parameters": [
                        _MONTH,
                        {
                            "name": "format",
                            "in": "query",
                            "required": False,
                            "description": "json (default): the envelope; csv: one row per line",
                            "schema": {"type": "string", "enum": ["json", "csv"]},
                        },
                        *_SERVER_HEADERS,
                    ],
                    "responses": {
                        "200": {
                            "description": "The statement",
                            "content": {
                                JSON: {"schema": _COMPONENTS[replies.StatementReply.__name__]},
                                "text/csv": {"schema": {"type": "string"}},
                            },
                        },
                        **error_responses(*_API_ERRORS),
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
                            JSON: {
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
                        **_reply("Batch stored", replies.Ingested),
                        **error_responses(*_API_ERRORS, "409", "413"),
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
                        **_reply("Events, oldest first", replies.EventPage),
                        **error_responses(*_API_ERRORS),
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
                        **_reply("Voided (or already void)", replies.VoidResult),
                        **error_responses(*_API_ERRORS, "404", "409"),
                    },
                }
            },
            "/api/v2/audit": {
                "get": {
                    "summary": "The operation's own audit log entries in a window, oldest first",
                    "security": _AUTH,
                    "parameters": [
                        {
                            "name": name,
                            "in": "query",
                            "required": True,
                            "description": "YYYYmmddHHiiss, operation timezone; the same window "
                            f"rules as the event listing (at most {MAX_WINDOW_DAYS} days, both "
                            "ends included); a window starting in the future is refused",
                            "schema": {"type": "string", "pattern": "^[0-9]{14}$"},
                        }
                        for name in ("date_ini", "date_end")
                    ]
                    + [
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
                            "description": f"Entries per page (default {audit.MAX_PAGE})",
                            "schema": {"type": "integer", "minimum": 1, "maximum": audit.MAX_PAGE},
                        },
                        *_SERVER_HEADERS,
                    ],
                    "responses": {
                        **_reply("Entries, oldest first", replies.AuditPage),
                        **error_responses(*_API_ERRORS),
                    },
                }
            },
            "/api/v2/alerts": {
                "get": {
                    "summary": "The operation's alerts with their last deliveries (never a secret)",
                    "security": _AUTH,
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "description": "Last deliveries listed per alert (default "
                            f"{wire_alerts.DELIVERIES_SHOWN})",
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": wire_alerts.MOST_DELIVERIES_SHOWN,
                            },
                        },
                        *_SERVER_HEADERS,
                    ],
                    "responses": {
                        **_reply("Alerts, oldest first", replies.AlertList),
                        **error_responses(*_API_ERRORS),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness (no database work)",
                    "responses": _reply('{"status":"ok"}', replies.Health),
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
                                JSON: {
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
