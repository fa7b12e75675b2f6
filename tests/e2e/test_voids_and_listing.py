"""Voids and the reconciliation listing (docs/api.md)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.e2e.harness import (
    Tenant,
    VoxServer,
    accepted_msg,
    all_events,
    envelope_ok,
    figure_of,
    list_events,
    local_stamp,
    void_event,
)
from tests.e2e.inprocess import AppServer

Event = dict[str, object]
NY = "America/New_York"
LISTED_FIELDS = {"id", "product", "time", "quantity", "subject", "voided"}


def _ago(**delta: float) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(**delta)


def _post_ok(server: VoxServer, tenant: Tenant, events: list[Event], accepted: int) -> None:
    reply = server.post_events(tenant.token, events)
    body = envelope_ok(reply, 200, None, accepted_msg(accepted))
    assert body["data"] == {"accepted": accepted, "duplicates": len(events) - accepted}


def _recent(server: VoxServer, tenant: Tenant, tz: str = NY, **params: object) -> list[Event]:
    """Every event of the operation in the last 30 days (listing in the operation's zone)."""
    now = datetime.now(UTC)
    return all_events(
        server,
        tenant.token,
        local_stamp(now - timedelta(days=30), tz),
        local_stamp(now + timedelta(hours=1), tz),
        **params,
    )


def _by_id(events: list[Event]) -> dict[object, Event]:
    return {e["id"]: e for e in events}


def _refused(reply: requests.Response, status: int) -> dict:  # type: ignore[type-arg]
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert list(body) == ["code", "error", "msg", "data"], body
    assert body["code"] == status, body
    assert isinstance(body["error"], str), body
    assert body["error"], body
    assert body["msg"], body
    assert body["data"] == [], body
    return body  # type: ignore[no-any-return]


# -- voids -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(app_server: AppServer) -> AppServer:
    """Voids and listings need no separate process: the app runs in this one (inprocess.py)."""
    return app_server


def test_void_drops_the_figure_keeps_the_event_listed_and_the_id_taken(
    server: VoxServer,
) -> None:
    tenant = server.tenant(timezone=NY)
    events: list[Event] = [
        {
            "id": "call-1",
            "product": "ivr_minutes",
            "time": _ago(minutes=9).isoformat(),
            "quantity": "3.2",
        },
        {
            "id": "call-2",
            "product": "ivr_minutes",
            "time": _ago(minutes=8).isoformat(),
            "quantity": "0.4",
        },
        {
            "id": "call-3",
            "product": "ivr_minutes",
            "time": _ago(minutes=7).isoformat(),
            "quantity": "10",
        },
    ]
    _post_ok(server, tenant, events, 3)
    assert server.items(tenant.token, "ivr_minutes") == "15"  # 4 + 1 + 10

    body = envelope_ok(void_event(server, tenant.token, "call-1"), 200, None, "Event voided")
    assert body["data"] == [{"id": "call-1", "product": "ivr_minutes", "voided": True}]
    assert server.items(tenant.token, "ivr_minutes") == "11"

    listed = _by_id(_recent(server, tenant))
    assert set(listed) == {"call-1", "call-2", "call-3"}
    assert listed["call-1"]["voided"] is True
    assert listed["call-1"]["quantity"] == "3.2"
    assert listed["call-2"]["voided"] is False
    assert listed["call-3"]["voided"] is False

    # The id stays taken: re-sending it (even with another quantity) is a duplicate.
    again = [dict(events[0]), dict(events[0], quantity="50")]
    _post_ok(server, tenant, again, 0)
    assert server.items(tenant.token, "ivr_minutes") == "11"
    assert _by_id(_recent(server, tenant))["call-1"]["voided"] is True


def test_voiding_twice_is_idempotent(server: VoxServer) -> None:
    tenant = server.tenant(timezone=NY)
    events: list[Event] = [
        {"id": f"r{i}", "product": "rsync", "time": _ago(minutes=i).isoformat(), "quantity": q}
        for i, q in enumerate(["1.5", "2.25", "0.000001"])
    ]
    _post_ok(server, tenant, events, 3)
    assert server.items(tenant.token, "rsync") == "3.750001"
    envelope_ok(void_event(server, tenant.token, "r1"), 200, None, "Event voided")
    assert server.items(tenant.token, "rsync") == "1.500001"
    for _ in range(3):
        reply = void_event(server, tenant.token, "r1")
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["code"] == 200
        assert body["error"] is None
        assert body["data"] == [{"id": "r1", "product": "rsync", "voided": True}]
        assert server.items(tenant.token, "rsync") == "1.500001"


def test_void_of_a_level_event_recomputes_the_peak(server: VoxServer) -> None:
    tenant = server.tenant(timezone=NY)
    levels = [("l1", 5, 50), ("l2", 12, 40), ("l3", 8, 30)]
    _post_ok(
        server,
        tenant,
        [
            {"id": i, "product": "pbx_licenses", "time": _ago(minutes=m).isoformat(), "quantity": q}
            for i, q, m in levels
        ],
        3,
    )
    assert server.items(tenant.token, "pbx_licenses") == "12"
    envelope_ok(void_event(server, tenant.token, "l2"), 200, None, "Event voided")
    assert server.items(tenant.token, "pbx_licenses") == "8"


def test_void_of_a_count_event(server: VoxServer) -> None:
    tenant = server.tenant(timezone=NY)
    events: list[Event] = [
        {"id": "c1", "product": "interactions", "time": _ago(minutes=3).isoformat()},
        {"id": "c2", "product": "interactions", "time": _ago(minutes=2).isoformat(), "quantity": 4},
    ]
    _post_ok(server, tenant, events, 2)
    assert server.items(tenant.token, "interactions") == "5"
    envelope_ok(void_event(server, tenant.token, "c2"), 200, None, "Event voided")
    assert server.items(tenant.token, "interactions") == "1"
    envelope_ok(void_event(server, tenant.token, "c1"), 200, None, "Event voided")
    assert server.items(tenant.token, "interactions") == "0"


def test_void_unknown_id_is_404(server: VoxServer) -> None:
    tenant = server.tenant(timezone=NY)
    _post_ok(
        server,
        tenant,
        [{"id": "known", "product": "vision", "time": _ago(minutes=1).isoformat()}],
        1,
    )
    body = _refused(void_event(server, tenant.token, "unknown"), 404)
    assert body["error"] == "NOT FOUND"
    _refused(void_event(server, tenant.token, "KNOWN"), 404)  # ids are case-sensitive
    assert server.items(tenant.token, "vision") == "1"


@pytest.mark.parametrize(
    "event_id", ["a\x00b", "line\nbreak", "tab\there", "\x7f", "\u2028", "x" * 129]
)
def test_void_of_an_id_no_event_can_have_is_404(server: VoxServer, event_id: str) -> None:
    """Ids breaking the id rules were never stored, whatever the database can hold (NUL)."""
    tenant = server.tenant(timezone=NY)
    _post_ok(
        server,
        tenant,
        [{"id": "kept", "product": "vision", "time": _ago(minutes=1).isoformat()}],
        1,
    )
    body = _refused(void_event(server, tenant.token, event_id), 404)
    assert body["error"] == "NOT FOUND"
    assert server.items(tenant.token, "vision") == "1"


def test_void_is_per_operation(server: VoxServer) -> None:
    owner = server.tenant(timezone=NY)
    other = server.tenant(timezone=NY)
    event = {"id": "shared-id", "product": "vision", "time": _ago(minutes=1).isoformat()}
    _post_ok(server, owner, [event], 1)
    _refused(void_event(server, other.token, "shared-id"), 404)
    assert server.items(owner.token, "vision") == "1"
    # The same id is free in the other operation.
    _post_ok(server, other, [event], 1)
    assert [e["id"] for e in _recent(server, other)] == ["shared-id"]


def test_void_and_listing_need_the_right_scope(server: VoxServer) -> None:
    tenant = server.tenant(timezone=NY)
    reader = server.token_for(tenant.name, scopes=["billing:read"])
    writer = server.token_for(tenant.name, scopes=["usage:write"])
    event = {"id": "scoped", "product": "vision", "time": _ago(minutes=1).isoformat()}
    _post_ok(server, writer, [event], 1)
    forbidden = _refused(void_event(server, reader.token, "scoped"), 403)
    assert forbidden["msg"] == "PLEASE VALIDATE TOKEN"
    now = datetime.now(UTC)
    listing = list_events(
        server,
        writer.token,
        date_ini=local_stamp(now - timedelta(days=1), NY),
        date_end=local_stamp(now, NY),
    )
    assert _refused(listing, 403)["msg"] == "PLEASE VALIDATE TOKEN"
    assert [e["voided"] for e in _recent(server, reader)] == [False]
    envelope_ok(void_event(server, writer.token, "scoped"), 200, None, "Event voided")


SPECIAL_IDS = [
    "with space",
    "a/b/c",
    "/leading-and-trailing/",
    "100%",
    "%2F-not-a-slash",
    "plus+sign",
    "query?x=1&y=2",
    "hash#fragment",
    "semi;colon,comma",
    "back\\slash",
    "quote'\"",
    "ñandú ☎ 日本語 🎧",
    "x" * 128,
]


def test_void_ids_with_special_characters(server: VoxServer) -> None:
    """Every id is voided through its percent-encoded path; nothing else is touched."""
    tenant = server.tenant(timezone=NY)
    events: list[Event] = [
        {
            "id": event_id,
            "product": "tts_chars",
            "time": _ago(minutes=2).isoformat(),
            "quantity": 2**n,
        }
        for n, event_id in enumerate(SPECIAL_IDS)
    ]
    events.append(
        {"id": "other", "product": "tts_chars", "time": _ago(minutes=1).isoformat(), "quantity": 1}
    )
    _post_ok(server, tenant, events, len(events))
    assert set(_by_id(_recent(server, tenant))) == {*SPECIAL_IDS, "other"}
    remaining = 2 ** len(SPECIAL_IDS)  # 1 + 2 + 4 + ... + 2**(n-1), plus "other"'s 1
    for n, event_id in enumerate(SPECIAL_IDS):
        reply = void_event(server, tenant.token, event_id)
        body = envelope_ok(reply, 200, None, "Event voided")
        assert body["data"] == [{"id": event_id, "product": "tts_chars", "voided": True}], event_id
        remaining -= 2**n
        assert server.items(tenant.token, "tts_chars") == str(remaining), event_id
    assert remaining == 1
    listed = _by_id(_recent(server, tenant))
    assert {i for i, e in listed.items() if e["voided"]} == set(SPECIAL_IDS)
    assert listed["other"]["voided"] is False
    assert len(listed) == len(SPECIAL_IDS) + 1


# -- listing ---------------------------------------------------------------------------------


def test_listing_window_is_in_the_operation_timezone_with_inclusive_end_second(
    server: VoxServer,
) -> None:
    tenant = server.tenant(timezone=NY)
    base = _ago(hours=3)
    window_end = base + timedelta(hours=1)
    ini, end = local_stamp(base, NY), local_stamp(window_end, NY)
    # Where the window would be if the server read the stamps as UTC wall-clock times.
    utc_misread = datetime.strptime(ini, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    plus_two = timezone(timedelta(hours=2))
    events: list[Event] = [
        {"id": "before", "time": base - timedelta(seconds=1)},
        {"id": "first-second", "time": base},
        {"id": "middle", "time": base + timedelta(minutes=17, microseconds=500_000)},
        {"id": "middle-other-offset", "time": (base + timedelta(minutes=30)).astimezone(plus_two)},
        {"id": "last-second", "time": window_end},
        {"id": "last-second-fraction", "time": window_end + timedelta(microseconds=999_999)},
        {"id": "after", "time": window_end + timedelta(seconds=1)},
        {"id": "utc-misread", "time": utc_misread + timedelta(minutes=30)},
    ]
    for n, event in enumerate(events):
        moment = event["time"]
        assert isinstance(moment, datetime)
        event.update(
            product="rsync" if n % 2 else "ivr_minutes",
            time=moment.isoformat(),
            quantity=f"{n}.5",
            subject=f"agent-{n}",
        )
    _post_ok(server, tenant, events, len(events))

    reply = list_events(server, tenant.token, date_ini=ini, date_end=end)
    body = reply.json()
    assert reply.status_code == 200, reply.text
    assert (body["code"], body["error"]) == (200, None)
    assert body["next_cursor"] is None
    listed = body["data"]
    assert [e["id"] for e in listed] == [
        "first-second",
        "middle",
        "middle-other-offset",
        "last-second",
        "last-second-fraction",
    ]
    sent = _by_id(events)
    for row in listed:
        assert set(row) == LISTED_FIELDS, row
        original = sent[row["id"]]
        assert row["product"] == original["product"]
        assert Decimal(row["quantity"]) == Decimal(str(original["quantity"]))
        assert row["subject"] == original["subject"]
        assert row["voided"] is False
        moment = datetime.fromisoformat(row["time"])
        assert moment == datetime.fromisoformat(str(original["time"]))
        # Written in the operation's timezone.
        assert moment.utcoffset() == moment.astimezone(ZoneInfo(NY)).utcoffset()

    # One second narrower on each side drops the boundary events.
    narrow = list_events(
        server,
        tenant.token,
        date_ini=local_stamp(base + timedelta(seconds=1), NY),
        date_end=local_stamp(window_end - timedelta(seconds=1), NY),
    )
    assert narrow.status_code == 200, narrow.text
    assert [e["id"] for e in narrow.json()["data"]] == ["middle", "middle-other-offset"]

    # A one-second window holds exactly the events of that second.
    second = list_events(server, tenant.token, date_ini=end, date_end=end)
    assert second.status_code == 200, second.text
    assert [e["id"] for e in second.json()["data"]] == ["last-second", "last-second-fraction"]


def test_listing_product_filter(server: VoxServer) -> None:
    tenant = server.tenant(timezone=NY)
    rng = random.Random(3)
    products = ["ivr_minutes", "interactions", "pbx_licenses", "rsync"]
    events: list[Event] = []
    for i in range(60):
        product = products[i % 4]
        event: Event = {
            "id": f"p{i}",
            "product": product,
            "time": _ago(minutes=rng.randint(1, 600)).isoformat(),
        }
        if product != "interactions":
            event["quantity"] = str(rng.randint(1, 30))
        events.append(event)
    _post_ok(server, tenant, events, 60)
    for product in products:
        listed = _recent(server, tenant, product=product)
        assert sorted(str(e["id"]) for e in listed) == sorted(
            str(e["id"]) for e in events if e["product"] == product
        ), product
        assert {e["product"] for e in listed} == {product}
    empty = _recent(server, tenant, product="tts_chars")
    assert empty == []
    assert len(_recent(server, tenant)) == 60
    # The listing reconciles the figure.
    for product in products:
        assert server.items(tenant.token, product) == figure_of(events, product)


def test_ingest_and_listing_messages_count_in_the_right_number(server: VoxServer) -> None:
    """`1 event accepted` / `1 event found`, and the plural for any other count."""
    tenant = server.tenant(timezone=NY)
    one = [{"id": "n1", "product": "vision", "time": _ago(minutes=3).isoformat()}]
    assert server.post_events(tenant.token, one).json()["msg"] == "1 event accepted"
    two = [
        {"id": f"n{i}", "product": "vision", "time": _ago(minutes=2).isoformat()} for i in (2, 3)
    ]
    assert server.post_events(tenant.token, two).json()["msg"] == "2 events accepted"
    assert server.post_events(tenant.token, one).json()["msg"] == "0 events accepted"
    now = datetime.now(UTC)
    window = {
        "date_ini": local_stamp(now - timedelta(hours=1), NY),
        "date_end": local_stamp(now + timedelta(hours=1), NY),
    }
    for limit, msg in ((1, "1 event found"), (2, "2 events found"), (5, "3 events found")):
        reply = list_events(server, tenant.token, limit=limit, **window)
        assert envelope_ok(reply, 200, None, msg)["data"], reply.text
    early = {"date_ini": "20200101000000", "date_end": "20200102000000"}
    envelope_ok(list_events(server, tenant.token, **early), 200, None, "0 events found")


def test_listing_window_limits_and_parameter_errors(server: VoxServer) -> None:
    tenant = server.tenant(timezone=NY)
    start = datetime(2026, 1, 1, 0, 0, 0)

    def stamp(moment: datetime) -> str:
        return moment.strftime("%Y%m%d%H%M%S")

    exactly_31_days = list_events(
        server,
        tenant.token,
        date_ini=stamp(start),
        date_end=stamp(start + timedelta(days=31)),
    )
    assert exactly_31_days.status_code == 200, exactly_31_days.text
    assert exactly_31_days.json()["data"] == []
    too_long = list_events(
        server,
        tenant.token,
        date_ini=stamp(start),
        date_end=stamp(start + timedelta(days=31, seconds=1)),
    )
    assert _refused(too_long, 400)["msg"].startswith("SOME PARAMETERS ARE REQUIRED")
    a_year = list_events(server, tenant.token, date_ini="20250101000000", date_end="20251231235959")
    _refused(a_year, 400)

    bad_params: list[dict[str, object]] = [
        {"date_ini": "2026-01-01", "date_end": "2026-01-02"},
        {"date_ini": "20260101", "date_end": "20260102"},
        {"date_ini": "2026010100000", "date_end": "20260102000000"},
        {"date_ini": "202601010000000", "date_end": "20260102000000"},
        {"date_ini": "20261301000000", "date_end": "20261302000000"},
        {"date_ini": "20260132000000", "date_end": "20260201000000"},
        {"date_ini": "20260101250000", "date_end": "20260102000000"},
        {"date_ini": "2026O101000000", "date_end": "20260102000000"},
        {"date_ini": "20260101000000"},
        {"date_end": "20260101000000"},
        {},
        {"date_ini": "20260102000000", "date_end": "20260101000000"},
        {"date_ini": "20260101000000", "date_end": "20260102000000", "product": "nope"},
        {"date_ini": "20260101000000", "date_end": "20260102000000", "limit": "0"},
        {"date_ini": "20260101000000", "date_end": "20260102000000", "limit": "ten"},
        {"date_ini": "20260101000000", "date_end": "20260102000000", "limit": "\u00b2"},
        {"date_ini": "20260101000000", "date_end": "20260102000000", "limit": "\u0663"},
        {"date_ini": "20260101000000", "date_end": "20260102000000", "cursor": "garbage!"},
    ]
    for params in bad_params:
        body = _refused(list_events(server, tenant.token, **params), 400)
        assert body["error"] == "BAD REQUEST", params
        assert body["msg"].startswith("SOME PARAMETERS ARE REQUIRED"), (params, body)


def test_paging_returns_every_event_exactly_once(server: VoxServer) -> None:
    tenant = server.tenant(timezone=NY)
    rng = random.Random(250)
    shared = _ago(minutes=30)  # 40 events share one instant: the cursor must break ties
    events: list[Event] = [
        {
            "id": f"page-{i:03d}",
            "product": rng.choice(["ivr_minutes", "rsync", "tts_chars"]),
            "time": (shared if i < 40 else _ago(seconds=rng.randint(60, 7200))).isoformat(),
            "quantity": str(rng.randint(1, 99)),
        }
        for i in range(250)
    ]
    rng.shuffle(events)
    _post_ok(server, tenant, events[:120], 120)
    _post_ok(server, tenant, events[120:], 130)
    envelope_ok(void_event(server, tenant.token, "page-007"), 200, None, "Event voided")

    now = datetime.now(UTC)
    ini, end = local_stamp(now - timedelta(hours=3), NY), local_stamp(now, NY)
    for limit, sizes in [(40, [40] * 6 + [10]), (1, [1] * 250), (250, [250]), (249, [249, 1])]:
        pages: list[list[Event]] = []
        cursor: str | None = None
        while True:
            params: dict[str, object] = {"date_ini": ini, "date_end": end, "limit": limit}
            if cursor:
                params["cursor"] = cursor
            reply = list_events(server, tenant.token, **params)
            assert reply.status_code == 200, reply.text
            body = reply.json()
            pages.append(body["data"])
            cursor = body["next_cursor"]
            if cursor is None:
                break
            assert len(pages) <= 300, "the cursor never ends"
        assert [len(p) for p in pages] == sizes, limit
        ids = [str(e["id"]) for page in pages for e in page]
        assert len(ids) == len(set(ids)) == 250, limit
        assert set(ids) == {str(e["id"]) for e in events}
        times = [datetime.fromisoformat(str(e["time"])) for page in pages for e in page]
        assert times == sorted(times), "oldest first, across pages"
        voided = [e["id"] for page in pages for e in page if e["voided"]]
        assert voided == ["page-007"]
