"""GET /api/v2/daily through the app's whole request path (docs/api.md, Daily breakdown)."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.harness import (
    SPEC_CATALOG,
    accepted_msg,
    envelope_ok,
    month_start,
    plain_decimal,
    times_this_month,
    token_info,
)
from tests.e2e.inprocess import AppServer

BAD_PARAMS = "SOME PARAMETERS ARE REQUIRED"
NO_SUCH_API = "THE API YOU WANT TO CONSULT DOES NOT EXIST"
CURRENT = "Information found for the current month"


@pytest.fixture(scope="module")
def server(app_server: AppServer) -> AppServer:
    return app_server


def local_today(timezone: str) -> date:
    return datetime.now(ZoneInfo(timezone)).date()


def days_until(last: date) -> list[str]:
    return [last.replace(day=d).isoformat() for d in range(1, last.day + 1)]


def previous_month_last_day(today: date) -> date:
    return today.replace(day=1) - timedelta(days=1)


@pytest.mark.parametrize("timezone", ["UTC", "Asia/Kathmandu", "America/New_York"])
def test_days_of_the_current_month_add_up_to_its_figures(server: AppServer, timezone: str) -> None:
    tenant = server.tenant(timezone=timezone, licenses=5)
    rng = random.Random(7)
    products = {"ivr_minutes": "0.25", "rsync": "1.000001", "interactions": None}
    events: list[dict[str, object]] = []
    for api, quantity in products.items():
        for n, when in enumerate(times_this_month(rng, 40, timezone)):
            event: dict[str, object] = {"id": f"{api}-{n}", "product": api, "time": when}
            if quantity is not None:
                event["quantity"] = quantity
            events.append(event)
    reply = server.post_events(tenant.token, events)
    envelope_ok(reply, 200, None, accepted_msg(len(events)))
    today = local_today(timezone)
    for api in products:
        body = envelope_ok(
            server.get("/api/v2/daily", tenant.token, params={"api": api}), 200, None, CURRENT
        )
        assert [list(row) for row in body["data"]] == [["date", "items"]] * today.day
        assert [row["date"] for row in body["data"]] == days_until(today)
        days_total = sum(Decimal(row["items"]) for row in body["data"])
        assert plain_decimal(days_total) == server.items(tenant.token, api)
    # Each ivr_minutes event bills a whole minute on its own day.
    body = server.get("/api/v2/daily", tenant.token, params={"api": "ivr_minutes"}).json()
    per_day: dict[str, int] = {}
    for event in events:
        if event["product"] == "ivr_minutes":
            day = datetime.fromisoformat(str(event["time"])).date().isoformat()
            per_day[day] = per_day.get(day, 0) + 1
    assert {r["date"]: r["items"] for r in body["data"] if r["items"] != "0"} == {
        day: str(n) for day, n in per_day.items()
    }


def test_api_all_lists_every_product_in_catalog_order_then_by_date(server: AppServer) -> None:
    tenant = server.tenant(licenses=5)
    start = month_start()
    assert isinstance(start, datetime)
    reply = server.post_events(
        tenant.token,
        [{"id": "lvl", "product": "pbx_licenses", "time": start.isoformat(), "quantity": "7"}],
    )
    envelope_ok(reply, 200, None, accepted_msg(1))
    body = envelope_ok(
        server.get("/api/v2/daily", tenant.token, params={"api": "all"}), 200, None, CURRENT
    )
    days = days_until(local_today("UTC"))
    expected = [(api, day) for api, _, _ in SPEC_CATALOG for day in days]
    assert [(row["api"], row["date"]) for row in body["data"]] == expected
    assert all(list(row) == ["api", "date", "items"] for row in body["data"])
    levels = [row["items"] for row in body["data"] if row["api"] == "pbx_licenses"]
    assert levels == ["7"] * len(days)  # reported on the 1st, carried to today


def test_a_past_month_lists_every_one_of_its_days(server: AppServer) -> None:
    tenant = server.tenant()
    last = previous_month_last_day(local_today("UTC"))
    label = f"{last:%Y-%m}"
    body = envelope_ok(
        server.get("/api/v2/daily", tenant.token, params={"api": "rsync", "month": label}),
        200,
        None,
        f"Information found for {label}",
    )
    assert [row["date"] for row in body["data"]] == days_until(last)
    assert {row["items"] for row in body["data"]} == {"0"}


@pytest.mark.parametrize(
    ("params", "msg"),
    [
        ({}, BAD_PARAMS),
        ({"api": ""}, BAD_PARAMS),
        ({"api": "no_such_product"}, NO_SUCH_API),
        ({"api": "rsync", "month": "2026-13"}, BAD_PARAMS),
        ({"api": "all", "month": "26-01"}, BAD_PARAMS),
        ({"api": "all", "month": "future"}, BAD_PARAMS),
    ],
)
def test_bad_parameters_are_a_400_envelope_and_change_nothing(
    server: AppServer, params: dict[str, str], msg: str
) -> None:
    tenant = server.tenant()
    start = month_start()
    assert isinstance(start, datetime)
    event = {"id": "one", "product": "rsync", "time": start.isoformat(), "quantity": "2.5"}
    envelope_ok(server.post_events(tenant.token, [event]), 200, None, accepted_msg(1))
    if params.get("month") == "future":
        following = (local_today("UTC").replace(day=28) + timedelta(days=4)).replace(day=1)
        params = {**params, "month": f"{following:%Y-%m}"}
    before = token_info(server, tenant.token)["all_token_today"]
    reply = server.get("/api/v2/daily", tenant.token, params=params)
    body = envelope_ok(reply, 400, "BAD REQUEST", reply.json()["msg"])
    assert body["msg"].startswith(msg), body
    assert body["data"] == [], body
    # One unit of quota, like any request; the figures are unchanged.
    assert int(token_info(server, tenant.token)["all_token_today"]) == int(before) + 2
    days = server.get("/api/v2/daily", tenant.token, params={"api": "rsync"}).json()["data"]
    assert sum(Decimal(row["items"]) for row in days) == Decimal("2.5")


def test_a_write_only_token_cannot_read_days(server: AppServer) -> None:
    tenant = server.tenant(scopes=["usage:write"])
    reply = server.get("/api/v2/daily", tenant.token, params={"api": "all"})
    envelope_ok(reply, 403, "FORBIDDEN", "PLEASE VALIDATE TOKEN")
    reply = server.get("/api/v2/daily", None, params={"api": "all"})
    envelope_ok(reply, 401, "UNAUTHORIZED", "PLEASE ENTER THE WOLKVOX-TOKEN")


def test_the_cli_prints_the_same_days_and_refuses_a_bad_month(server: AppServer) -> None:
    tenant = server.tenant(timezone="Asia/Kathmandu")
    start = month_start("Asia/Kathmandu")
    assert isinstance(start, datetime)
    events = [
        {"id": "a", "product": "rsync", "time": start.isoformat(), "quantity": "1.25"},
        {"id": "b", "product": "pbx_licenses", "time": start.isoformat(), "quantity": "3"},
    ]
    envelope_ok(server.post_events(tenant.token, events), 200, None, accepted_msg(2))
    printed = server.cli("daily", "--operation", tenant.name).stdout.splitlines()
    body = server.get("/api/v2/daily", tenant.token, params={"api": "all"}).json()
    assert printed == [f"{r['api']}\t{r['date']}\t{r['items']}" for r in body["data"]]
    one = server.cli("daily", "--operation", tenant.name, "--api", "rsync").stdout.splitlines()
    assert one[0] == f"rsync\t{start.date().isoformat()}\t1.25"
    refused = server.cli("daily", "--operation", tenant.name, "--month", "2026-1", check=False)
    assert refused.returncode != 0
    assert "month must be YYYY-MM" in refused.stderr
    assert "Traceback" not in refused.stderr
