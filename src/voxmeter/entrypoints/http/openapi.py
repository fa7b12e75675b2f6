"""The OpenAPI 3.1 document: every endpoint, its parameters and every error it can answer."""

from __future__ import annotations

from typing import Any

from voxmeter import __version__
from voxmeter.domain.catalog import Catalog
from voxmeter.domain.events import MAX_BATCH, MAX_ID_LENGTH, MAX_SUBJECT_LENGTH

_ERRORS = {
    "400": "Unknown api or path (THE API YOU WANT TO CONSULT DOES NOT EXIST), or missing/invalid "
    "parameters (SOME PARAMETERS ARE REQUIRED[: detail]); for ingest, `data` lists every problem",
    "401": "No wolkvox-token header (PLEASE ENTER THE WOLKVOX-TOKEN)",
    "403": "PLEASE VALIDATE TOKEN (unknown, revoked or wrong-scope token, or another server), "
    "TOKEN LIMIT EXCEEDED, EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2), or "
    "SERVER IN MAINTENANCE",
    "500": "A bug: a generic message, never a stack trace",
    "503": "The database or Redis cannot be reached just now (SERVICE UNAVAILABLE); "
    "a Retry-After header says when to try again, and service resumes by itself",
    "504": "The request did not finish within the time limit (60 s)",
}


def _envelope(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["code", "error", "msg", "data"],
        "properties": {
            "code": {"type": "integer", "description": "Always equal to the HTTP status."},
            "error": {"type": ["string", "null"]},
            "msg": {"type": "string"},
            "data": data,
        },
    }


def _error_responses(*statuses: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status in statuses:
        out[status] = {
            "description": _ERRORS.get(status, "Error"),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        if status == "403":
            out[status]["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait (concurrency and quota refusals)",
                    "schema": {"type": "string"},
                }
            }
    return out


def _ok(description: str, data: dict[str, Any], extra: dict[str, Any] | None = None) -> Any:
    schema = _envelope(data)
    if extra:
        schema["properties"].update(extra)
    return {
        "200": {"description": description, "content": {"application/json": {"schema": schema}}}
    }


_AUTH: list[dict[str, list[str]]] = [{"token": []}]
_SERVER_HEADERS = [
    {
        "name": "wolkvox_server",
        "in": "header",
        "required": False,
        "description": "The server (4 digits) the caller expects; a mismatch is refused.",
        "schema": {"type": "string"},
    },
]
_MONTH = {
    "name": "month",
    "in": "query",
    "required": False,
    "description": "YYYY-MM, the current month or a past one (default: current month).",
    "schema": {"type": "string"},
}


def document(catalog: Catalog) -> dict[str, Any]:
    apis = [p.api for p in catalog]
    usage_row = {
        "type": "object",
        "required": ["operation", "description", "items", "date"],
        "properties": {
            "operation": {"type": "string"},
            "description": {"type": "string"},
            "items": {"type": "string", "description": "Plain decimal, no exponent"},
            "date": {"type": "string", "description": "YYYY-MM-DD in the operation timezone"},
        },
    }
    event_in = {
        "type": "object",
        "required": ["id", "product", "time"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH},
            "product": {"type": "string", "enum": apis},
            "time": {"type": "string", "description": "RFC 3339 with an offset or Z"},
            "quantity": {"type": ["number", "string", "null"]},
            "subject": {"type": ["string", "null"], "maxLength": MAX_SUBJECT_LENGTH},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "voxmeter",
            "version": __version__,
            "description": "Usage metering with a Wolkvox Billing API v2 compatible read side.",
        },
        "components": {
            "securitySchemes": {
                "token": {"type": "apiKey", "in": "header", "name": "wolkvox-token"}
            },
            "schemas": {
                "Error": _envelope({"type": "array"}),
                "UsageRow": usage_row,
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
                        **_ok(
                            "Figures",
                            {"type": "array", "items": {"$ref": "#/components/schemas/UsageRow"}},
                        ),
                        **_error_responses("400", "401", "403", "500", "503", "504"),
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
                        **_ok("Token information", {"type": "array"}),
                        **_error_responses("400", "401", "403", "500", "503", "504"),
                    },
                }
            },
            "/api/v2/events": {
                "post": {
                    "summary": f"Ingest up to {MAX_BATCH} usage events, all or nothing",
                    "security": _AUTH,
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
                            "application/x-ndjson": {"schema": {"type": "string"}},
                        },
                    },
                    "responses": {
                        **_ok(
                            "Batch stored",
                            {
                                "type": "object",
                                "properties": {
                                    "accepted": {"type": "integer"},
                                    "duplicates": {"type": "integer"},
                                },
                            },
                        ),
                        **_error_responses("400", "401", "403", "413", "500", "503", "504"),
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
                            "description": "YYYYmmddHHiiss, operation timezone",
                            "schema": {"type": "string"},
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
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        **_ok(
                            "Events",
                            {"type": "array"},
                            {"next_cursor": {"type": ["string", "null"]}},
                        ),
                        **_error_responses("400", "401", "403", "500", "503", "504"),
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
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        **_ok("Voided", {"type": "array"}),
                        **_error_responses("400", "401", "403", "500", "503", "504"),
                        "404": {
                            "description": "No event with that id",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Error"}
                                }
                            },
                        },
                        "409": {
                            "description": "The event's month is closed",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Error"}
                                }
                            },
                        },
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness (no database work)",
                    "responses": {"200": {"description": '{"status":"ok"}'}},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "Prometheus text format"}},
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1"}},
                }
            },
        },
    }
