"""Generated requests for the operations that take no input (/healthz, /metrics, /openapi.json).

Schemathesis derives cases from an operation's parameters; with none, it has only a handful of
distinct requests to send. Here each such operation gets as many requests as the others get
cases, each with a generated query string and generated extra headers that it must ignore, and
each reply is checked as schemathesis checks one: no 5xx, a documented status, the documented
content type, and a JSON body valid against the documented schema.
"""

from __future__ import annotations

import http.client
import json
import random
import urllib.parse
from collections import Counter
from typing import Any

import jsonschema_rs

# Headers that change how HTTP itself frames or routes a request: not the operation's input.
_FRAMING = {
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "expect",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
}
_TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"
_VALUE_CHARS = "".join(chr(c) for c in range(0x20, 0x7F)) + "éü€\t"
_TEXT_POOL = "az09 -_.~/?=&%+#;:\"'<>{}[]\\\x00\x01\x7f é€😀\u2028"


def inputless_operations(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(method, path) of every documented operation without parameters or request body."""
    found = []
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if not operation.get("parameters") and "requestBody" not in operation:
                found.append((method.upper(), path))
    return found


def _text(rng: random.Random, pool: str, most: int) -> str:
    return "".join(rng.choice(pool) for _ in range(rng.randint(0, most)))


def _query(rng: random.Random) -> str:
    pairs = [
        (_text(rng, _TEXT_POOL, 12), _text(rng, _TEXT_POOL, 40)) for _ in range(rng.randint(0, 4))
    ]
    return urllib.parse.urlencode(pairs) if pairs else ""


def _headers(rng: random.Random) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(rng.randint(0, 4)):
        name = _text(rng, _TOKEN_CHARS, 20) or "x"
        if name.lower() not in _FRAMING:
            value = _text(rng, _VALUE_CHARS, 60).strip()
            headers[name] = value.encode("utf-8").decode("latin-1")
    if rng.random() < 0.3:
        headers["Accept"] = rng.choice(["*/*", "text/html", "application/xml", "", "x/y;q=0"])
    return headers


_validators: dict[str, Any] = {}


def _validator(doc: dict[str, Any], pointer: str) -> Any:
    """A JSON Schema validator of the schema at `pointer` in the document (refs resolved)."""
    if pointer not in _validators:
        _validators[pointer] = jsonschema_rs.validator_for({**doc, "$ref": "#" + pointer})
    return _validators[pointer]


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def probe(
    host: str, port: int, doc: dict[str, Any], count: int, seed: int = 0
) -> tuple[Counter[str], dict[str, Counter[int]], list[str]]:
    """Send `count` generated requests to each input-less operation; return the cases, the
    statuses and one line per distinct failure, by operation ("METHOD /path")."""
    cases: Counter[str] = Counter()
    statuses: dict[str, Counter[int]] = {}
    failures: dict[tuple[str, str], str] = {}
    rng = random.Random(seed)
    for method, path in inputless_operations(doc):
        name = f"{method} {path}"
        responses = doc["paths"][path][method.lower()]["responses"]
        conn = http.client.HTTPConnection(host, port, timeout=30)
        for _ in range(count):
            query = _query(rng)
            target = path + ("?" + query if query else "")
            headers = _headers(rng)
            conn.request(method, target, headers=headers)
            reply = conn.getresponse()
            body = reply.read()
            cases[name] += 1
            statuses.setdefault(name, Counter())[reply.status] += 1
            problem = _check(doc, path, method, responses, reply, body)
            if problem is not None and (name, problem) not in failures:
                failures[(name, problem)] = f"{name}: {problem} (GET {target!r}, {headers!r})"
            if reply.getheader("connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.close()
    return cases, statuses, list(failures.values())


def _check(
    doc: dict[str, Any],
    path: str,
    method: str,
    responses: dict[str, Any],
    reply: http.client.HTTPResponse,
    body: bytes,
) -> str | None:
    status = str(reply.status)
    if reply.status >= 500:
        return f"server error {status}"
    key = next((k for k in (status, f"{status[0]}XX", "default") if k in responses), None)
    if key is None:
        return f"undocumented status {status}"
    documented = responses[key]
    content = documented.get("content") or {}
    media = (reply.getheader("content-type") or "").split(";")[0].strip()
    if content and media not in content:
        return f"undocumented content type {media!r} for {status}"
    schema = (content.get(media) or {}).get("schema")
    if schema is not None and media.endswith("json"):
        parts = ["paths", _escape(path), method.lower(), "responses", key, "content"]
        pointer = "/" + "/".join([*parts, _escape(media), "schema"])
        try:
            errors = [e.message for e in _validator(doc, pointer).iter_errors(json.loads(body))]
        except ValueError as exc:
            return f"body is not JSON ({exc})"
        if errors:
            return f"body does not match the schema: {errors[0][:200]}"
    return None
