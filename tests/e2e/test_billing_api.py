"""The Wolkvox-compatible read side (docs/api.md) against a real `voxmeter serve` process."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.e2e.harness import (
    SPEC_CATALOG,
    VoxServer,
    accepted_msg,
    aggregate,
    envelope_ok,
    token_info,
)
from tests.e2e.inprocess import AppServer
from voxmeter.domain.months import Month
from voxmeter.entrypoints.http import billing
from voxmeter.entrypoints.http.billing import QUERY_KEY_MAX_BYTES, WolkvoxReads
from voxmeter.service import tenancy

ROW_KEYS = ["operation", "description", "items", "date"]
BAD_PARAMS = "SOME PARAMETERS ARE REQUIRED"
NO_SUCH_API = "THE API YOU WANT TO CONSULT DOES NOT EXIST"


def local_today(timezone: str) -> date:
    return datetime.now(ZoneInfo(timezone)).date()


def month_text(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def previous_month_start(day: date) -> date:
    return (day.replace(day=1) - timedelta(days=1)).replace(day=1)


def next_month_start(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def quantities_for(number: int, aggregation: str) -> list[str | int | None]:
    """Three distinct quantities per product, scaled by its catalog number so rows differ."""
    if aggregation == "max":
        return [f"{number}", f"{number + 10}.5", f"{number}.25"]
    if aggregation == "sum_round_up":
        return [f"{number}.01", "0.1", f"{number}"]
    if aggregation == "sum":
        return [f"{number}.25", "2.5", "0.000001"]
    return [None, None, number]  # count: default 1, 1, then an explicit integer


def event(event_id: str, product: str, when: datetime, quantity: str | int | None) -> dict:  # type: ignore[type-arg]
    out: dict[str, object] = {"id": event_id, "product": product, "time": when.isoformat()}
    if quantity is not None:
        out["quantity"] = quantity
    return out


def check_row(row: dict, operation: str, title: str, items: str, timezone: str) -> None:  # type: ignore[type-arg]
    assert list(row) == ROW_KEYS, row
    assert row["operation"] == operation, row
    assert row["description"] == title, row
    assert isinstance(row["items"], str), row
    assert row["items"] == items, row
    assert row["date"] == local_today(timezone).isoformat(), row


def check_current_month_envelope(reply: requests.Response) -> dict:  # type: ignore[type-arg]
    assert reply.headers["content-type"].startswith("application/json"), reply.headers
    body = envelope_ok(reply, 200, None, "Information found for the current month")
    assert type(body["code"]) is int, body
    assert list(body) == ["code", "error", "msg", "data"], body
    return body


@pytest.fixture(scope="module")
def server(app_server: AppServer) -> AppServer:
    """These reads need no separate process: the app runs in this one (inprocess.py); the
    test that restarts with other settings uses a real server."""
    return app_server


@pytest.fixture(scope="module")
def usage(server: VoxServer) -> tuple[str, str, dict[str, str]]:
    """An operation with three events of every product this month; its expected figures."""
    tenant = server.tenant()
    now = datetime.now(UTC)
    events, expected = [], {}
    for number, (api, _title, aggregation) in enumerate(SPEC_CATALOG, start=1):
        quantities = quantities_for(number, aggregation)
        events += [event(f"{api}-{i}", api, now, q) for i, q in enumerate(quantities)]
        expected[api] = aggregate(aggregation, quantities)
    reply = server.post_events(tenant.token, events)
    envelope_ok(reply, 200, None, accepted_msg(len(events)))
    return tenant.name, tenant.token, expected


@pytest.fixture(scope="module")
def reader(server: VoxServer) -> str:
    """A token of an operation without usage, shared by the error-path tests."""
    return server.tenant().token


@pytest.mark.parametrize(("api", "title", "aggregation"), SPEC_CATALOG)
def test_every_product_answers_its_figure(
    server: VoxServer,
    usage: tuple[str, str, dict[str, str]],
    api: str,
    title: str,
    aggregation: str,
) -> None:
    name, token, expected = usage
    body = check_current_month_envelope(server.billing(token, api))
    assert len(body["data"]) == 1, body
    check_row(body["data"][0], name, title, expected[api], "UTC")


def test_products_without_usage_answer_zero_not_empty_or_404(server: VoxServer) -> None:
    tenant = server.tenant()
    for api, title, _ in SPEC_CATALOG:
        body = check_current_month_envelope(server.billing(tenant.token, api))
        assert len(body["data"]) == 1, body
        check_row(body["data"][0], tenant.name, title, "0", "UTC")
    # "no usage" and "unknown product" stay distinguishable
    envelope_ok(server.billing(tenant.token, "no_such_product"), 400, "BAD REQUEST", NO_SUCH_API)


def test_api_all_is_every_product_in_catalog_order_for_one_quota_unit(
    server: VoxServer, usage: tuple[str, str, dict[str, str]]
) -> None:
    name, token, expected = usage
    before = token_info(server, token)
    reply = server.billing(token, "all")
    after = token_info(server, token)
    body = check_current_month_envelope(reply)
    assert [row["description"] for row in body["data"]] == [t for _, t, _ in SPEC_CATALOG]
    assert len(body["data"]) == 27
    for row, (api, title, _) in zip(body["data"], SPEC_CATALOG, strict=True):
        check_row(row, name, title, expected[api], "UTC")
    # the api=all request and the second token_info are the only requests in between
    assert int(after["token_use_today"]) == int(before["token_use_today"]) + 2, (before, after)
    assert int(after["all_token_today"]) == int(before["all_token_today"]) + 2, (before, after)


def test_api_all_of_an_operation_without_usage_is_27_zeros(server: VoxServer) -> None:
    tenant = server.tenant()
    body = check_current_month_envelope(server.billing(tenant.token, "all"))
    assert [(r["description"], r["items"]) for r in body["data"]] == [
        (t, "0") for _, t, _ in SPEC_CATALOG
    ]


def test_past_and_current_month(make_server: Callable[..., VoxServer]) -> None:
    # a long grace period keeps last month open, so its events are accepted today
    srv = make_server("--grace-days", "62")
    timezone = "America/Bogota"
    tenant = srv.tenant(timezone=timezone)
    zone = ZoneInfo(timezone)
    today = local_today(timezone)
    this_start = datetime.combine(today.replace(day=1), datetime.min.time(), zone)
    last_start = datetime.combine(previous_month_start(today), datetime.min.time(), zone)
    last_mid = last_start + timedelta(days=14, hours=12)
    last_second = this_start - timedelta(seconds=1)
    now = datetime.now(UTC)
    last_events = [
        event("l1", "ivr_minutes", last_mid, "1.5"),
        event("l2", "ivr_minutes", last_second, "0.2"),
        event("l3", "interactions", last_mid, None),
        event("l4", "interactions", last_second, 2),
        event("l5", "agent_script", last_mid, "5"),
        event("l6", "rsync", last_mid, "0.75"),
    ]
    this_events = [
        event("t1", "ivr_minutes", this_start, "3"),  # first instant of this month (local)
        event("t2", "ivr_minutes", now, "0.01"),
        event("t3", "interactions", now, None),
        event("t4", "rsync", now, "1.5"),
    ]
    envelope_ok(
        srv.post_events(tenant.token, last_events + this_events), 200, None, "10 events accepted"
    )

    last_month, this_month = month_text(last_start.date()), month_text(today)
    expected_last = {
        "ivr_minutes": aggregate("sum_round_up", ["1.5", "0.2"]),
        "interactions": aggregate("count", [None, 2]),
        "agent_script": aggregate("max", ["5"]),
        "rsync": aggregate("sum", ["0.75"]),
    }
    expected_this = {
        "ivr_minutes": aggregate("sum_round_up", ["3", "0.01"]),
        "interactions": aggregate("count", [None]),
        "agent_script": aggregate("max", ["5"]),  # the level carries forward into this month
        "rsync": aggregate("sum", ["1.5"]),
    }
    titles = {api: title for api, title, _ in SPEC_CATALOG}
    for api in expected_last:
        past = envelope_ok(
            srv.billing(tenant.token, api, last_month),
            200,
            None,
            f"Information found for {last_month}",
        )
        check_row(past["data"][0], tenant.name, titles[api], expected_last[api], timezone)
        named = envelope_ok(
            srv.billing(tenant.token, api, this_month),
            200,
            None,
            f"Information found for {this_month}",
        )
        check_row(named["data"][0], tenant.name, titles[api], expected_this[api], timezone)
        default = check_current_month_envelope(srv.billing(tenant.token, api))
        check_row(default["data"][0], tenant.name, titles[api], expected_this[api], timezone)

    every = envelope_ok(
        srv.billing(tenant.token, "all", last_month),
        200,
        None,
        f"Information found for {last_month}",
    )
    assert len(every["data"]) == 27
    for row, (api, title, _) in zip(every["data"], SPEC_CATALOG, strict=True):
        check_row(row, tenant.name, title, expected_last.get(api, "0"), timezone)

    # two months back, before any event: "0", the level included (nothing to carry yet)
    older = month_text(previous_month_start(last_start.date()))
    body = envelope_ok(
        srv.billing(tenant.token, "ivr_minutes", older), 200, None, f"Information found for {older}"
    )
    check_row(body["data"][0], tenant.name, "IVR minutes", "0", timezone)
    body = envelope_ok(
        srv.billing(tenant.token, "agent_script", older),
        200,
        None,
        f"Information found for {older}",
    )
    check_row(body["data"][0], tenant.name, "Agent Script", "0", timezone)


@pytest.mark.parametrize("month", ["2026-13", "2026-00", "2026-1", "26-01", "abc", "2026-01-01"])
def test_malformed_month_is_400_with_detail(server: VoxServer, reader: str, month: str) -> None:
    reply = server.billing(reader, "ivr_minutes", month)
    body = envelope_ok(reply, 400, "BAD REQUEST", reply.json()["msg"])
    assert body["msg"].startswith(BAD_PARAMS + ": "), body
    assert len(body["msg"]) > len(BAD_PARAMS + ": "), body
    assert body["data"] == [], body


def test_future_month_is_400_with_a_clear_message(server: VoxServer) -> None:
    timezone = "Pacific/Kiritimati"
    tenant = server.tenant(timezone=timezone)
    future = month_text(next_month_start(local_today(timezone)))
    for api in ("ivr_minutes", "all"):
        reply = server.billing(tenant.token, api, future)
        body = envelope_ok(reply, 400, "BAD REQUEST", reply.json()["msg"])
        assert body["msg"].startswith(BAD_PARAMS + ": "), body
        assert future in body["msg"], body
        assert body["data"] == [], body


def test_missing_api_parameter(server: VoxServer, reader: str) -> None:
    for path in ("/api/v2/billing.php", "/api/v2/information.php"):
        for params in ({}, {"api": ""}, {"month": "2026-01"}):
            reply = server.get(path, reader, params=params)
            body = envelope_ok(reply, 400, "BAD REQUEST", reply.json()["msg"])
            assert body["msg"] == BAD_PARAMS or body["msg"].startswith(BAD_PARAMS + ": "), body
            assert body["data"] == [], body


@pytest.mark.parametrize("api", ["nope", "token_info", "ivr-minutes", "IVR_MINUTES_X"])
def test_unknown_api_value(server: VoxServer, reader: str, api: str) -> None:
    body = envelope_ok(server.billing(reader, api), 400, "BAD REQUEST", NO_SUCH_API)
    assert body["data"] == []


def test_a_query_is_parsed_once_per_day_and_junk_ones_are_not_kept(
    server: AppServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Billing queries are remembered by their exact bytes, per operation and local day, as the
    reply they ask for; within a bound (the oldest first), never a failing query and
    never one too long to be a client's. Every reply is the one the query asks for."""
    reads = server.app
    assert isinstance(reads, WolkvoxReads)
    monkeypatch.setattr(reads, "query_keys", OrderedDict())
    monkeypatch.setattr(billing, "QUERY_KEY_ENTRIES", 4)
    tenant = server.tenant()
    op_id = tenancy.find_operation(server.ctx, tenant.name, tenant.server).id

    def read(query: str) -> dict:  # type: ignore[type-arg]
        return server.get(f"/api/v2/billing.php?{query}", tenant.token).json()  # type: ignore[no-any-return]

    def kept(query: str) -> object:
        return reads.query_keys.get((op_id, query.encode(), day))

    current = read("api=ivr_minutes")
    day = current["data"][0]["date"]  # the operation's local day
    previous = month_text(previous_month_start(date.fromisoformat(day)))
    past = read(f"api=all&month={previous}")
    assert read("api=nope")["msg"] == NO_SUCH_API
    assert kept("api=ivr_minutes") == (op_id, "ivr_minutes", None, day)
    assert kept(f"api=all&month={previous}") == (op_id, "all", Month.parse(previous).index, day)
    assert kept("api=nope") is None
    assert read(f"api=all&month={previous}&x=1") == past
    junk = "api=ivr_minutes&z=" + "x" * QUERY_KEY_MAX_BYTES
    assert read(junk) == current
    assert kept(junk) is None
    for n in range(6):
        assert read(f"api=ivr_minutes&n={n}") == current
    assert len(reads.query_keys) == 4
    assert kept("api=ivr_minutes") is None  # the oldest went first
    assert kept("api=ivr_minutes&n=5") == (op_id, "ivr_minutes", None, day)


def test_unknown_information_api(server: VoxServer, reader: str) -> None:
    reply = server.get("/api/v2/information.php", reader, params={"api": "ivr_minutes"})
    assert envelope_ok(reply, 400, "BAD REQUEST", NO_SUCH_API)["data"] == []


@pytest.mark.parametrize(
    "path",
    [
        "/api/v2/nope.php",
        "/foo",
        "/api/v2/billing",
        "/api/v1/billing.php",
        "/",
        "/api/v2/billing.php/",
        "/api/v2/information.php/x",
    ],
)
@pytest.mark.parametrize("with_token", [True, False])
def test_unknown_path(server: VoxServer, reader: str, path: str, with_token: bool) -> None:
    # never a redirect or a bare framework page: the envelope, always
    reply = server.get(
        path, reader if with_token else None, params={"api": "ivr_minutes"}, allow_redirects=False
    )
    assert reply.status_code == 400, (reply.status_code, dict(reply.headers), reply.text)
    assert envelope_ok(reply, 400, "BAD REQUEST", NO_SUCH_API)["data"] == []


def test_date_is_today_in_the_operation_timezone(server: VoxServer) -> None:
    zones = ["Pacific/Kiritimati", "Etc/GMT-14", "Pacific/Pago_Pago"]
    tenants = {tz: server.tenant(timezone=tz) for tz in zones}
    differs_from_utc = False
    for timezone, tenant in tenants.items():
        for api in ("ivr_minutes", "all"):
            before = local_today(timezone).isoformat()
            body = check_current_month_envelope(server.billing(tenant.token, api))
            after = local_today(timezone).isoformat()
            for row in body["data"]:
                assert list(row) == ROW_KEYS, row
                assert row["date"] in {before, after}, (timezone, row, before, after)
            if body["data"][0]["date"] != datetime.now(UTC).date().isoformat():
                differs_from_utc = True
    # +14 and -11 are 25 hours apart: at any instant one of them is not on UTC's date
    assert differs_from_utc


def test_token_info_with_two_tokens_of_one_operation(server: VoxServer) -> None:
    first = server.tenant(licenses=3)
    second = server.token_for(first.name, description="second token of the operation")
    for _ in range(3):
        assert server.billing(first.token, "ivr_minutes").status_code == 200
    for _ in range(2):
        assert server.billing(second.token, "all").status_code == 200

    reply = server.get("/api/v2/information.php", first.token, params={"api": "token_info"})
    body = envelope_ok(reply, 200, None, reply.json()["msg"])
    assert type(body["code"]) is int
    assert len(body["data"]) == 1
    row = body["data"][0]
    assert list(row) == [
        "description",
        "token_limit",
        "token_use_today",
        "all_token_today",
        "available_consumption_options",
    ], row
    # this token_info request counts too: first 3 + 1, operation 3 + 2 + 1
    assert row == {
        "description": "test token",
        "token_limit": "3000",
        "token_use_today": "4",
        "all_token_today": "6",
        "available_consumption_options": "2994",
    }, row

    row = token_info(server, second.token)
    assert row == {
        "description": "second token of the operation",
        "token_limit": "3000",
        "token_use_today": "3",
        "all_token_today": "7",
        "available_consumption_options": "2993",
    }, row

    # bad requests are still authenticated requests and cost one unit each
    assert server.billing(first.token, "nope").status_code == 400
    row = token_info(server, first.token)
    assert (row["token_use_today"], row["all_token_today"]) == ("6", "9"), row
    assert row["available_consumption_options"] == "2991", row


def test_token_limit_is_licenses_times_1000(server: VoxServer) -> None:
    tenant = server.tenant(licenses=7)
    row = token_info(server, tenant.token)
    assert row["token_limit"] == "7000", row
    assert row["available_consumption_options"] == "6999", row
