"""Forecasts, prices and statements through the API (docs/api.md), on both backends."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
import requests

from tests.backends import REDIS_URL
from tests.e2e.conftest import Databases
from tests.e2e.harness import SPEC_CATALOG, Tenant, accepted_msg, admin_context, envelope_ok
from tests.e2e.inprocess import AppServer
from voxmeter.domain.months import Month
from voxmeter.entrypoints.http.replies import StatementReply
from voxmeter.service import tenancy
from voxmeter.service.months import close_month

GRACE_DAYS = 62
"""Long enough that last month is still open whatever today's date, so events can be sent."""


@dataclass
class World:
    srv: AppServer
    tenant: Tenant
    this_month: str
    last_month: str
    before_last: str


def _label(moment: datetime) -> str:
    return f"{moment:%Y-%m}"


@pytest.fixture(scope="module")
def world(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """An operation with usage this month, last month and the month before, the earliest of
    them closed."""
    folder: Path = tmp_path_factory.mktemp("money")
    now = datetime.now(UTC)
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last = (first - timedelta(days=1)).replace(day=1)
    before = (last - timedelta(days=1)).replace(day=1)
    with ExitStack() as stack:
        dbs = Databases(backend, folder, stack)
        db = dbs.new()
        redis = REDIS_URL if db.startswith("postgresql") else None
        env = dbs.server_env(db, {"VOXMETER_GRACE_DAYS": str(GRACE_DAYS)})
        with AppServer(db, redis_url=redis, env=env) as srv:
            tenant = srv.tenant(licenses=10)
            events = [
                {
                    "id": "b1",
                    "product": "interactions",
                    "time": (before + timedelta(days=3)).isoformat(),
                },
                {
                    "id": "l1",
                    "product": "rsync",
                    "time": (last + timedelta(days=2)).isoformat(),
                    "quantity": "2.5",
                },
                {
                    "id": "l2",
                    "product": "agent_script",
                    "time": (last + timedelta(days=2)).isoformat(),
                    "quantity": "3",
                },
                {"id": "n1", "product": "interactions", "time": (first).isoformat()},
                {
                    "id": "n2",
                    "product": "rsync",
                    "time": (now - timedelta(minutes=1)).isoformat(),
                    "quantity": "0.5",
                },
            ]
            envelope_ok(srv.post_events(tenant.token, events), 200, None, accepted_msg(5))
            with admin_context(db) as ctx:
                op = tenancy.find_operation(ctx, tenant.name, tenant.server)
                close_month(ctx, op, Month(before.year, before.month))
            yield World(srv, tenant, _label(first), _label(last), _label(before))


def _forecast(world: World, month: str | None = None) -> dict:  # type: ignore[type-arg]
    params = {"month": month} if month else {}
    reply = world.srv.get("/api/v2/forecast", world.tenant.token, params=params)
    shown = month or world.this_month
    return envelope_ok(reply, 200, None, f"Forecast for {shown}")


def test_forecast_has_every_product_in_catalog_order(world: World) -> None:
    body = _forecast(world)
    assert [r["api"] for r in body["data"]] == [api for api, _, _ in SPEC_CATALOG]
    assert [r["description"] for r in body["data"]] == [t for _, t, _ in SPEC_CATALOG]
    billing = world.srv.billing(world.tenant.token, "all").json()["data"]
    for row, figure in zip(body["data"], billing, strict=True):
        assert list(row) == ["api", "description", "unit", "items", "forecast"], row
        assert row["items"] == figure["items"], (row, figure)


def test_current_month_forecast_extrapolates_and_rounds_counts_up(world: World) -> None:
    rows = {r["api"]: r for r in _forecast(world)["data"]}
    assert rows["interactions"]["items"] == "1"
    assert "." not in rows["interactions"]["forecast"]
    assert int(rows["interactions"]["forecast"]) >= 1
    assert Decimal(rows["rsync"]["forecast"]) >= Decimal("0.5")
    assert rows["agent_script"]["forecast"] == rows["agent_script"]["items"] == "3"  # carried
    assert rows["vision"] == {**rows["vision"], "items": "0", "forecast": "0"}


@pytest.mark.parametrize("which", ["last_month", "before_last"])
def test_past_and_closed_months_forecast_their_figure(world: World, which: str) -> None:
    month = getattr(world, which)
    rows = _forecast(world, month)["data"]
    billing = world.srv.billing(world.tenant.token, "all", month).json()["data"]
    assert [r["forecast"] for r in rows] == [r["items"] for r in rows]
    assert [r["items"] for r in rows] == [r["items"] for r in billing]
    assert any(r["items"] != "0" for r in rows)


@pytest.mark.parametrize("month", ["2026-13", "26-01", "2199-12", ""])
def test_forecast_refuses_bad_and_future_months(world: World, month: str) -> None:
    reply = world.srv.get("/api/v2/forecast", world.tenant.token, params={"month": month})
    assert reply.status_code == 400, reply.text
    assert reply.json()["msg"].startswith("SOME PARAMETERS ARE REQUIRED"), reply.text


# ------------------------------------------------------------------- currency and licences


def _token_limit(world: World, token: str) -> str:
    reply = world.srv.get("/api/v2/information.php", token, params={"api": "token_info"})
    return str(reply.json()["data"][0]["token_limit"])


def test_new_licences_lift_a_used_up_quota_within_the_token_cache_time(world: World) -> None:
    """The quota is read from the operation on every admission, through the token cache (1 s):
    an operation that used its day up gets the new licences' quota within about a second."""
    tenant = world.srv.tenant(licenses=1)
    for _ in range(1000):
        assert world.srv.get("/api/v2/forecast", tenant.token).status_code == 200
    refused = world.srv.get("/api/v2/forecast", tenant.token)
    envelope_ok(refused, 403, "FORBIDDEN", "TOKEN LIMIT EXCEEDED")
    result = world.srv.cli("operation", "update", tenant.name, "--licenses", "2")
    assert "2 licenses, 2000 requests a day" in result.stdout, result.stdout
    changed = time.monotonic()
    while world.srv.get("/api/v2/forecast", tenant.token).status_code != 200:
        assert time.monotonic() - changed < 5, "the new quota was not applied"
        time.sleep(0.05)
    assert _token_limit(world, tenant.token) == "2000"


def test_operation_currency_defaults_and_refusals(world: World) -> None:
    srv = world.srv
    made = srv.cli(
        "operation", "create", "cur-env", "--server", "9901", env={"VOXMETER_CURRENCY": "CLP"}
    )
    assert "billed in CLP" in made.stdout, made.stdout
    made = srv.cli("operation", "create", "cur-usd", "--server", "9901")
    assert "billed in USD" in made.stdout, made.stdout
    bad = srv.cli(
        "operation", "create", "cur-bad", "--server", "9901", "--currency", "XYZ", check=False
    )
    assert bad.returncode != 0
    assert "unknown currency 'XYZ'" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr, bad.stderr
    bad = srv.cli(
        "operation", "update", "cur-usd", "--currency", "usd", "--licenses", "7", check=False
    )
    assert bad.returncode != 0
    assert "ISO 4217" in bad.stderr, bad.stderr
    listed = srv.cli("operation", "list").stdout
    assert "cur-bad" not in listed
    row = next(line for line in listed.splitlines() if "cur-usd" in line)
    assert " USD " in row, row
    assert " 7 " not in row, row  # the refused update changed nothing
    done = srv.cli("operation", "update", "cur-usd", "--currency", "COP")
    assert "billed in COP" in done.stdout, done.stdout


# ------------------------------------------------------------------------------------ prices


def test_price_commands_set_list_and_delete_and_refuse_bad_prices(world: World) -> None:
    srv, name = world.srv, world.tenant.name
    made = srv.cli(
        "price",
        "set",
        "--product",
        "tts_chars",
        "--currency",
        "EUR",
        "--tier",
        "1000:0.05",
        "--tier",
        "inf:0.03",
        "--included",
        "10",
    )
    assert "graduated 1000:0.05 inf:0.03, 10 included" in made.stdout, made.stdout
    srv.cli(
        "price",
        "set",
        "--product",
        "tts_chars",
        "--currency",
        "EUR",
        "--unit-price",
        "0.02",
        "--operation",
        name,
    )
    for bad, message in (
        (["--unit-price", "-1"], "must not be negative"),
        (["--unit-price", "0.1234567"], "more than 6 decimal places"),
        (["--tier", "10:1", "--tier", "5:1", "--tier", "inf:1"], "increasing order"),
        (["--tier", "10:1"], "last tier must be inf"),
        (["--unit-price", "1", "--tier", "inf:1"], "exactly one"),
    ):
        result = srv.cli(
            "price", "set", "--product", "tts_chars", "--currency", "EUR", *bad, check=False
        )
        assert result.returncode != 0, bad
        assert message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    for product, currency, message in (
        ("nope", "EUR", "unknown product"),
        ("tts_chars", "EURO", "unknown currency"),
    ):
        result = srv.cli(
            "price",
            "set",
            "--product",
            product,
            "--currency",
            currency,
            "--unit-price",
            "1",
            check=False,
        )
        assert result.returncode != 0
        assert message in result.stderr, result.stderr
    listed = srv.cli("price", "list", "--operation", name).stdout
    rows = [line for line in listed.splitlines() if "tts_chars" in line]
    assert len(rows) == 2, listed
    assert "1000:0.05 inf:0.03" in rows[0], rows  # nothing refused changed the default
    assert "0.02" in rows[1], rows
    srv.cli("price", "delete", "--product", "tts_chars", "--currency", "EUR", "--operation", name)
    gone = srv.cli(
        "price",
        "delete",
        "--product",
        "tts_chars",
        "--currency",
        "EUR",
        "--operation",
        name,
        check=False,
    )
    assert gone.returncode != 0
    assert "no price of tts_chars in EUR" in gone.stderr, gone.stderr
    srv.cli("price", "delete", "--product", "tts_chars", "--currency", "EUR")
    assert "tts_chars" not in srv.cli("price", "list").stdout


# -------------------------------------------------------------------------------- statements


def _statement(world: World, **params: str) -> requests.Response:
    return world.srv.get("/api/v2/statement", world.tenant.token, params=params)


def test_statement_json_has_every_product_and_decodes_as_documented(world: World) -> None:
    reply = _statement(world, month=world.last_month)
    body = envelope_ok(reply, 200, None, f"Statement for {world.last_month}")
    data = msgspec.json.decode(reply.content, type=StatementReply).data
    assert data.operation == world.tenant.name
    assert (data.month, data.status, data.currency) == (world.last_month, "draft", "USD")
    assert [line.api for line in data.lines] == [api for api, _, _ in SPEC_CATALOG]
    assert list(body["data"]) == [
        "operation",
        "server",
        "month",
        "status",
        "currency",
        "lines",
        "total",
        "forecast_total",
    ]
    default = envelope_ok(_statement(world), 200, None, f"Statement for {world.this_month}")
    assert default["data"]["month"] == world.this_month


def test_statement_csv_has_a_row_per_line(world: World) -> None:
    reply = _statement(world, month=world.last_month, format="csv")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/csv"), reply.headers
    rows = list(csv.DictReader(io.StringIO(reply.text)))
    assert [r["api"] for r in rows] == [api for api, _, _ in SPEC_CATALOG]
    assert {r["operation"] for r in rows} == {world.tenant.name}
    rsync = next(r for r in rows if r["api"] == "rsync")
    assert rsync["items"] == "2.5"


@pytest.mark.parametrize("fmt", ["xml", "JSON", ""])
def test_statement_refuses_other_formats(world: World, fmt: str) -> None:
    reply = _statement(world, format=fmt)
    envelope_ok(
        reply, 400, "BAD REQUEST", "SOME PARAMETERS ARE REQUIRED: format must be json or csv"
    )


def _draft_in(world: World, currency: str, seconds: float = 3.0) -> dict[str, Any]:
    """The current month's statement once it is in `currency`: a running server sees an
    operation's update within a second (its token cache), so wait a little longer than that."""
    deadline = time.monotonic() + seconds
    while True:
        draft: dict[str, Any] = json.loads(_statement(world).content)["data"]
        if draft["currency"] == currency or time.monotonic() > deadline:
            assert draft["currency"] == currency, draft["currency"]
            return draft
        time.sleep(0.05)


def _rsync_line(world: World) -> dict[str, Any]:
    draft: dict[str, Any] = json.loads(_statement(world).content)["data"]
    line: dict[str, Any] = next(line for line in draft["lines"] if line["api"] == "rsync")
    return line


def test_a_kept_draft_follows_prices_set_by_another_process(world: World) -> None:
    """The server keeps a draft between reads; a price set or deleted by the CLI (another
    process) shows in the next read, without waiting for any cache to expire."""
    srv, name = world.srv, world.tenant.name
    price = ("--product", "rsync", "--currency", "USD", "--operation", name)
    srv.cli("price", "set", *price, "--unit-price", "2")
    assert _rsync_line(world)["unit_price"] == "2"
    assert _rsync_line(world)["unit_price"] == "2"  # answered from the kept draft
    srv.cli("price", "set", *price, "--unit-price", "3")
    assert _rsync_line(world)["unit_price"] == "3"
    srv.cli("price", "delete", *price)
    assert (_rsync_line(world)["unit_price"], _rsync_line(world)["amount"]) == ("", "0")


def test_a_final_statement_never_changes_after_its_month_closes(world: World) -> None:
    """Prices change after the month closed: the statement read twice is the same bytes, the
    same as when it closed; the open month's draft follows the new price."""
    srv, name = world.srv, world.tenant.name
    price = ("price", "set", "--product", "interactions", "--currency", "USD", "--operation", name)
    srv.cli(*price, "--unit-price", "0.75")
    srv.cli("month", "close", "--operation", name, "--month", world.last_month)
    first = _statement(world, month=world.last_month).content
    first_csv = _statement(world, month=world.last_month, format="csv").content
    assert json.loads(first)["data"]["status"] == "final"
    before_last = json.loads(_statement(world, month=world.before_last).content)["data"]
    assert before_last["status"] == "final"
    srv.cli(*price, "--unit-price", "5")
    srv.cli("operation", "update", name, "--currency", "EUR")
    assert _statement(world, month=world.last_month).content == first
    assert _statement(world, month=world.last_month).content == first
    assert _statement(world, month=world.last_month, format="csv").content == first_csv
    draft = _draft_in(world, "EUR")
    assert draft["status"] == "draft"
    srv.cli("operation", "update", name, "--currency", "USD")
    srv.cli(*price, "--unit-price", "0.75")
    draft = _draft_in(world, "USD")
    interactions = next(line for line in draft["lines"] if line["api"] == "interactions")
    assert (interactions["items"], interactions["unit_price"]) == ("1", "0.75")
    assert interactions["amount"] == "0.75"
    assert Decimal(draft["forecast_total"]) >= Decimal(draft["total"])


def test_statement_command_for_one_operation_and_for_all(world: World) -> None:
    srv, name = world.srv, world.tenant.name
    one = json.loads(srv.cli("statement", "--operation", name, "--month", world.last_month).stdout)
    api = json.loads(_statement(world, month=world.last_month).content)["data"]
    assert one == api
    every = json.loads(srv.cli("statement", "--all", "--month", world.last_month).stdout)
    assert name in [s["operation"] for s in every]
    with admin_context(srv.db) as ctx:
        assert [s["operation"] for s in every] == [op.name for op in ctx.storage.operations()]
    table = srv.cli("statement", "--all", "--month", world.last_month, "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(table)))
    assert len(rows) == len(every) * len(SPEC_CATALOG)
    assert {r["operation"] for r in rows} == {s["operation"] for s in every}
    for args, message in (
        (("--all",), "--all needs --month"),
        (("--operation", name, "--all", "--month", world.last_month), "either --operation"),
        (("--operation", name, "--month", "2199-12"), "in the future"),
        (("--operation", name, "--month", "2026-13"), "MM from 01 to 12"),
    ):
        bad = srv.cli("statement", *args, check=False)
        assert bad.returncode != 0, args
        assert message in bad.stderr, bad.stderr
