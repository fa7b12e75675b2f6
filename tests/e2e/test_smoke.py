"""The shortest path a newcomer takes: an operation, a token, an event, a figure."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.e2e.harness import VoxServer, envelope_ok


def test_ingest_then_read_one_product(server: VoxServer) -> None:
    tenant = server.tenant()
    now = datetime.now(UTC).isoformat()
    reply = server.post_events(
        tenant.token, [{"id": "e1", "product": "ivr_minutes", "time": now, "quantity": "2.01"}]
    )
    body = envelope_ok(reply, 200, None, "1 event accepted")
    assert body["data"] == {"accepted": 1, "duplicates": 0}
    billing = envelope_ok(
        server.billing(tenant.token, "ivr_minutes"),
        200,
        None,
        "Information found for the current month",
    )
    row = billing["data"][0]
    assert row == {
        "operation": tenant.name,
        "description": "IVR minutes",
        "items": "3",
        "date": datetime.now(UTC).date().isoformat(),
    }
