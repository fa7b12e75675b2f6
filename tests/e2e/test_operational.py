"""Operational endpoints without a token (docs/api.md): /healthz, /openapi.json, /metrics."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import (
    SPEC_CATALOG,
    SlowPosts,
    VoxServer,
    envelope_ok,
    token_info,
    wait_until_admitted,
)

API_ROUTES = {
    "/api/v2/billing.php": ["get"],
    "/api/v2/information.php": ["get"],
    "/api/v2/events": ["get", "post"],
    "/api/v2/events/{event_id}": ["delete"],
}
OPERATIONAL_ROUTES = {"/healthz": ["get"], "/metrics": ["get"], "/openapi.json": ["get"]}


def event(event_id: str, product: str = "ivr_minutes", quantity: str = "1") -> dict:  # type: ignore[type-arg]
    return {
        "id": event_id,
        "product": product,
        "time": datetime.now(UTC).isoformat(),
        "quantity": quantity,
    }


def test_healthz(server: VoxServer) -> None:
    for headers in ({}, {"wolkvox-token": "not-a-token"}, {"wolkvox_server": "0000"}):
        reply = requests.get(server.url("/healthz"), headers=headers, timeout=10)
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("application/json")
        assert reply.json() == {"status": "ok"}


def test_operational_endpoints_cost_no_quota(server: VoxServer) -> None:
    tenant = server.tenant()
    before = token_info(server, tenant.token)
    for path in ("/healthz", "/metrics", "/openapi.json"):
        reply = requests.get(server.url(path), headers={"wolkvox-token": tenant.token}, timeout=10)
        assert reply.status_code == 200, path
    after = token_info(server, tenant.token)
    assert int(after["all_token_today"]) == int(before["all_token_today"]) + 1


def resolve(document: dict, ref: str) -> object:  # type: ignore[type-arg]
    assert ref.startswith("#/"), ref
    node: object = document
    for part in ref[2:].split("/"):
        assert isinstance(node, dict), ref
        assert part in node, f"unresolvable $ref {ref}"
        node = node[part]
    return node


def walk_refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in walk_refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in walk_refs(value)]
    return []


def test_openapi_documents_every_route_and_its_errors(server: VoxServer) -> None:
    reply = requests.get(server.url("/openapi.json"), timeout=10)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/json")
    doc = reply.json()
    assert isinstance(doc["openapi"], str)
    assert doc["openapi"].startswith("3.1"), doc["openapi"]
    assert doc["info"]["title"]
    assert doc["info"]["version"]
    paths = doc["paths"]
    for path, methods in (API_ROUTES | OPERATIONAL_ROUTES).items():
        assert path in paths, f"{path} is not documented"
        for method in methods:
            assert method in paths[path], f"{method.upper()} {path} is not documented"
            assert "200" in paths[path][method]["responses"], (path, method)
    for path, methods in API_ROUTES.items():
        for method in methods:
            responses = paths[path][method]["responses"]
            for status in ("400", "401", "403"):
                assert status in responses, f"{method.upper()} {path} lacks {status}"
                assert responses[status].get("description"), (path, method, status)
    assert "413" in paths["/api/v2/events"]["post"]["responses"]

    # the token header is documented, and billing's api parameter lists the catalog and "all"
    text = reply.text
    assert "wolkvox-token" in text
    params = paths["/api/v2/billing.php"]["get"].get("parameters", [])
    api_param = next(p for p in params if p.get("name") == "api")
    assert api_param["in"] == "query"
    enum = api_param["schema"].get("enum")
    if enum is not None:
        assert set(enum) >= {api for api, _, _ in SPEC_CATALOG} | {"all"}
    # every $ref points somewhere
    for ref in walk_refs(doc):
        resolve(doc, ref)


def scrape(srv: VoxServer) -> dict[str, Counter[tuple[tuple[str, str], ...]]]:
    reply = requests.get(srv.url("/metrics"), timeout=10)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain"), reply.headers
    samples: dict[str, Counter[tuple[tuple[str, str], ...]]] = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, Counter())[key] += sample.value
    return samples


def requests_by(
    samples: dict[str, Counter[tuple[tuple[str, str], ...]]], route_part: str, status: str
) -> float:
    total = 0.0
    for key, value in samples.get("voxmeter_requests_total", Counter()).items():
        labels = dict(key)
        if route_part in labels.get("route", "") and labels.get("status") == status:
            total += value
    return total


def total(samples: dict[str, Counter[tuple[tuple[str, str], ...]]], name: str) -> float:
    return sum(samples.get(name, Counter()).values())


def test_metrics_count_requests_ingest_and_limit_rejections(server: VoxServer) -> None:
    tenant = server.tenant()
    observer = server.token_for(tenant.name, description="observer")
    before = scrape(server)
    assert "voxmeter_requests_total" in before
    for key in before["voxmeter_requests_total"]:
        assert {"route", "status"} <= set(dict(key)), key

    for _ in range(3):
        assert server.billing(tenant.token, "ivr_minutes").status_code == 200
    assert server.billing(tenant.token, "no_such_api").status_code == 400
    envelope_ok(
        server.post_events(tenant.token, [event(f"m-{i}") for i in range(3)]),
        200,
        None,
        "3 events accepted",
    )
    # one concurrency rejection
    info = token_info(server, observer.token)
    others = int(info["all_token_today"]) - int(info["token_use_today"])
    with SlowPosts(server, tenant.token, [[event("slow-a")], [event("slow-b")]]) as slow:
        assert wait_until_admitted(server, observer.token, others, 2) == others + 2
        refused = server.billing(tenant.token, "ivr_minutes")
        assert refused.status_code == 403, refused.text
        slow.release()

    after = scrape(server)
    assert requests_by(after, "billing", "200") - requests_by(before, "billing", "200") == 3
    assert requests_by(after, "billing", "400") - requests_by(before, "billing", "400") == 1
    assert requests_by(after, "billing", "403") - requests_by(before, "billing", "403") == 1
    assert requests_by(after, "events", "200") - requests_by(before, "events", "200") >= 3
    assert requests_by(after, "information", "200") > requests_by(before, "information", "200")
    assert "voxmeter_ingest_events_total" in after, sorted(after)
    ingested = total(after, "voxmeter_ingest_events_total") - total(
        before, "voxmeter_ingest_events_total"
    )
    assert ingested == 3 + 2, ingested  # the batch of 3 and the two slow single-event batches
    assert "voxmeter_limit_rejections_total" in after, sorted(after)
    rejected = total(after, "voxmeter_limit_rejections_total") - total(
        before, "voxmeter_limit_rejections_total"
    )
    assert rejected == 1, rejected


def test_a_wrong_method_gets_405_with_the_allowed_ones(server: VoxServer) -> None:
    """Every documented path answers an undocumented method with 405 and an `Allow` header
    naming exactly its documented methods (RFC 9110 §15.5.6)."""
    tenant = server.tenant()
    paths = requests.get(server.url("/openapi.json"), timeout=10).json()["paths"]
    probes = {"/api/v2/events/{event_id}": "/api/v2/events/some-id"}
    for path, operations in paths.items():
        documented = {m.upper() for m in operations if m in {"get", "post", "put", "delete"}}
        for method in sorted({"GET", "POST", "PUT", "PATCH", "DELETE"} - documented):
            reply = requests.request(
                method,
                server.url(probes.get(path, path)),
                headers={"wolkvox-token": tenant.token},
                timeout=10,
            )
            where = f"{method} {path}"
            envelope_ok(reply, 405, "METHOD NOT ALLOWED", "THIS METHOD IS NOT ALLOWED ON THIS PATH")
            allowed = {m.strip() for m in reply.headers.get("allow", "").split(",")}
            assert allowed - {"HEAD"} == documented, (where, reply.headers.get("allow"))


def test_openapi_and_replies_follow_the_configured_limits(make_server: Any) -> None:
    """/openapi.json is written from the running settings: a server with 3 requests in flight
    per token, a 4,096-byte body limit and a 7.5 s time limit says so in the document, and its
    refusals say the same (and match the document's patterns)."""
    srv: VoxServer = make_server(
        env={
            "VOXMETER_MAX_IN_FLIGHT": "3",
            "VOXMETER_MAX_BODY_BYTES": "4096",
            "VOXMETER_REQUEST_TIMEOUT": "7.5",
        }
    )
    doc = requests.get(srv.url("/openapi.json"), timeout=10).json()
    text = json.dumps(doc)
    for default in ("(2)", "60 s", "16 MiB", "16777216"):
        assert default not in text, default
    post = doc["paths"]["/api/v2/events"]["post"]["responses"]
    billing = doc["paths"]["/api/v2/billing.php"]["get"]["responses"]
    assert "(3)" in billing["403"]["description"]
    assert "4096 bytes" in post["413"]["description"]
    assert "7.5 s" in billing["504"]["description"]
    assert "7.5 s" in billing["408"]["description"]
    in_flight_pattern = billing["403"]["content"]["application/json"]["schema"]["allOf"][1]
    body_pattern = post["413"]["content"]["application/json"]["schema"]["allOf"][1]

    tenant = srv.tenant()
    observer = srv.token_for(tenant.name, description="observer")
    info = token_info(srv, observer.token)
    others = int(info["all_token_today"]) - int(info["token_use_today"])
    batches = [[event(f"slow-{i}")] for i in range(3)]
    with SlowPosts(srv, tenant.token, batches) as slow:
        assert wait_until_admitted(srv, observer.token, others, 3) == others + 3
        refused = srv.billing(tenant.token, "ivr_minutes")
        slow.release()
    msg = "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (3)"
    envelope_ok(refused, 403, "FORBIDDEN", msg)
    assert re.fullmatch(in_flight_pattern["properties"]["msg"]["pattern"], msg)

    big = [event(f"big-{i}", quantity="1") for i in range(60)]
    assert len(json.dumps(big)) > 4096
    too_large = srv.post_events(tenant.token, big)
    msg = "THE BODY IS LARGER THAN THE LIMIT OF 4096 BYTES"
    envelope_ok(too_large, 413, "PAYLOAD TOO LARGE", msg)
    assert re.fullmatch(body_pattern["properties"]["msg"]["pattern"], msg)
