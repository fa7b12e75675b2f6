"""Prometheus metrics, kept in a registry of their own (no global default registry state).

One process counts in memory. Worker processes started by `voxmeter serve --workers N` count in
prometheus-client's multiprocess mode instead: the supervisor gives them a private directory in
`PROMETHEUS_MULTIPROC_DIR` (see entrypoints/cli/worker_metrics.py), each worker writes its
counters to its own files there, and a scrape of any worker sums every worker's files, so one
scrape reports the whole server."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, generate_latest, multiprocess

#: Read at import, as prometheus-client does when it chooses between in-memory and file-backed
#: values (in a worker both happen as it starts).
MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None

REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "voxmeter_requests", "HTTP requests by route and status", ["route", "status"], registry=REGISTRY
)
INGESTED = Counter(
    "voxmeter_ingest_events", "Events received by ingest, by result", ["result"], registry=REGISTRY
)
LIMIT_REJECTIONS = Counter(
    "voxmeter_limit_rejections", "Requests refused by a limit", ["limit"], registry=REGISTRY
)
CLIENT_DISCONNECTS = Counter(
    "voxmeter_client_disconnects",
    "Requests whose client hung up before sending all of it (not answered, so not in requests)",
    ["route"],
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "voxmeter_alert_deliveries",
    "Webhook delivery attempts of alerts, by outcome (delivered, retry, failed)",
    ["outcome"],
    registry=REGISTRY,
)

ROUTES = {
    "/api/v2/billing.php": "billing",
    "/api/v2/information.php": "information",
    "/api/v2/events": "events",
    "/api/v2/daily": "daily",
    "/api/v2/audit": "audit",
    "/api/v2/forecast": "forecast",
    "/api/v2/statement": "statement",
    "/api/v2/alerts": "alerts",
    "/healthz": "healthz",
    "/metrics": "metrics",
    "/openapi.json": "openapi",
}


def route_of(path: str) -> str:
    route = ROUTES.get(path)
    if route is not None:
        return route
    if path.startswith("/api/v2/events/"):
        return "event"
    if path.startswith("/dashboard"):
        return "dashboard_login" if path == "/dashboard/login" else "dashboard"
    return "other"


_request_counters: dict[tuple[str, int], Counter] = {}


def count_request(route: str, status: int) -> None:
    """Count a response; label children are cached (labels() takes a lock and builds a key)."""
    child = _request_counters.get((route, status))
    if child is None:
        child = _request_counters[(route, status)] = REQUESTS.labels(route, str(status))
    child.inc()


def exposition() -> bytes:
    """The text a scrape gets: this process's counters, or every worker's summed."""
    if MULTIPROCESS_DIR is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, MULTIPROCESS_DIR)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
