"""The audit log end to end: changes made with the `voxmeter` command recorded as its OS user,
voids as the token that made them, `voxmeter audit` in its three formats, and
`GET /api/v2/audit` showing an operation its own entries only, with the event listing's window
rules (docs/api.md, Audit; docs/behaviour.md, Audit log)."""

from __future__ import annotations

import csv
import getpass
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.e2e.harness import Tenant, VoxServer, cli, envelope_ok, local_stamp
from tests.e2e.inprocess import AppServer

NY = "America/New_York"
CLI_USER = f"cli:{getpass.getuser()}"
ROW_FIELDS = ["time", "actor", "action", "details"]


@pytest.fixture(scope="module")
def server(app_server: AppServer) -> AppServer:
    """The listing needs no separate process: the app runs in this one (inprocess.py)."""
    return app_server


def _window(timezone: str = "UTC", back: timedelta = timedelta(hours=1)) -> dict[str, str]:
    now = datetime.now(UTC)
    return {"date_ini": local_stamp(now - back, timezone), "date_end": local_stamp(now, timezone)}


def audit_page(srv: VoxServer, token: str, **params: str) -> requests.Response:
    return srv.get("/api/v2/audit", token, params=params)


def listed(srv: VoxServer, tenant: Tenant, timezone: str = "UTC") -> list[dict[str, object]]:
    reply = audit_page(srv, tenant.token, **_window(timezone))
    found = len(reply.json()["data"])
    noun = "entry" if found == 1 else "entries"
    body = envelope_ok(reply, 200, None, f"{found} {noun} found")
    assert list(body) == ["code", "error", "msg", "data", "next_cursor"], body
    assert body["next_cursor"] is None, body
    return body["data"]  # type: ignore[no-any-return]


def _refused(reply: requests.Response, detail: str) -> None:
    body = envelope_ok(reply, 400, "BAD REQUEST", f"SOME PARAMETERS ARE REQUIRED: {detail}")
    assert body["data"] == [], body


# -- the command -----------------------------------------------------------------------------


def _audit_json(db: str, *args: str) -> list[dict[str, object]]:
    out = cli(db, "audit", "--format", "json", *args)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_every_change_made_with_the_command_is_recorded_as_its_os_user(
    fresh_db: Callable[..., str],
) -> None:
    db = fresh_db("cli")
    cli(db, "migrate")
    cli(db, "operation", "create", "acme", "--server", "9901", "--timezone", NY)
    cli(db, "operation", "create", "other", "--server", "9902")
    made = cli(db, "token", "create", "--operation", "acme", "--description", "robot")
    secret = made.stdout.strip().splitlines()[-1]
    token_id = made.stdout.split()[1]
    cli(db, "token", "revoke", token_id)
    last_month = (datetime.now(ZoneInfo(NY)).replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    cli(db, "month", "close", "--operation", "acme", "--month", last_month)
    cli(db, "maintenance", "on")
    cli(db, "maintenance", "off")

    rows = _audit_json(db)
    assert [(r["actor"], r["action"], r["operation"]) for r in rows] == [
        (CLI_USER, "operation.create", "9901/acme"),
        (CLI_USER, "operation.create", "9902/other"),
        (CLI_USER, "token.create", "9901/acme"),
        (CLI_USER, "token.revoke", "9901/acme"),
        (CLI_USER, "month.close", "9901/acme"),
        (CLI_USER, "maintenance.on", ""),
        (CLI_USER, "maintenance.off", ""),
    ]
    assert rows[0]["details"] == {
        "name": "acme",
        "server": "9901",
        "timezone": NY,
        "licenses": 1,
        "currency": "USD",
    }
    assert rows[2]["details"] == {
        "token": token_id,
        "description": "robot",
        "scopes": ["billing:read", "usage:write"],
    }
    assert rows[3]["details"] == {"token": token_id}
    assert rows[4]["details"] == {"month": last_month, "closed": [last_month], "by": "request"}
    times = [str(r["time"]) for r in rows]
    assert times == sorted(times)
    assert all(t.endswith("Z") for t in times), times
    every_format = "".join(cli(db, "audit", "--format", f).stdout for f in ("table", "json", "csv"))
    assert secret[4:20] not in every_format
    assert token_id in every_format

    only = _audit_json(db, "--operation", "other")
    assert [(r["action"], r["operation"]) for r in only] == [("operation.create", "9902/other")]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert _audit_json(db, "--since", tomorrow) == []
    assert len(_audit_json(db, "--since", datetime.now(UTC).date().isoformat())) == 7


def test_the_command_prints_a_table_csv_and_json_of_the_same_entries(
    fresh_db: Callable[..., str],
) -> None:
    db = fresh_db("formats")
    cli(db, "migrate")
    cli(db, "operation", "create", "acme", "--server", "9901")
    token_id = cli(
        db, "token", "create", "--operation", "acme", "--description", 'a, "quoted" one'
    ).stdout.split()[1]
    as_json = _audit_json(db)

    as_csv = list(csv.DictReader(io.StringIO(cli(db, "audit", "--format", "csv").stdout)))
    assert [list(r) for r in as_csv] == [["time", "actor", "action", "operation", "details"]] * 2
    assert [{**r, "details": json.loads(r["details"])} for r in as_csv] == as_json
    assert as_json[1]["details"]["description"] == 'a, "quoted" one'  # type: ignore[index]

    table = cli(db, "audit").stdout
    assert table == cli(db, "audit", "--format", "table").stdout
    header = next(line for line in table.splitlines() if "time" in line)
    assert [w for w in header.replace("┃", " ").split()] == [
        "time",
        "actor",
        "action",
        "operation",
        "details",
    ]
    for row in as_json:
        line = next(line for line in table.splitlines() if str(row["time"]) in line)
        assert CLI_USER in line, line
        assert str(row["action"]) in line, line
        assert "9901/acme" in line, line
    assert token_id in table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "2026-13-01"), "--since must be a date, YYYY-MM-DD"),
        (("--since", "yesterday"), "--since must be a date, YYYY-MM-DD"),
        (("--operation", "nobody"), "no operation named 'nobody'"),
        (("--format", "xml"), "Invalid value for '--format'"),
    ],
)
def test_the_command_refuses_bad_options_clearly(
    fresh_db: Callable[..., str], args: tuple[str, ...], message: str
) -> None:
    db = fresh_db("bad")
    cli(db, "migrate")
    result = cli(db, "audit", *args, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


# -- the API ---------------------------------------------------------------------------------


def test_a_void_is_recorded_as_its_token_and_each_operation_sees_only_its_own(
    server: AppServer,
) -> None:
    a, b = server.tenant(timezone=NY), server.tenant()
    now = datetime.now(UTC) - timedelta(seconds=2)
    event = {"id": "audited-1", "product": "rsync", "time": now.isoformat(), "quantity": "1"}
    assert server.post_events(a.token, [event]).status_code == 200
    assert (
        server.delete("/api/v2/events/audited-1", headers={"wolkvox-token": a.token}).status_code
        == 200
    )

    rows = listed(server, a, NY)
    assert [list(r) for r in rows] == [ROW_FIELDS] * 3
    assert [(r["actor"], r["action"]) for r in rows] == [
        ("system", "operation.create"),
        ("system", "token.create"),
        (a.token_id, "event.void"),
    ]
    assert rows[1]["details"]["token"] == a.token_id  # type: ignore[index]
    assert rows[2]["details"] == {
        "event": "audited-1",
        "product": "rsync",
        "month": rows[2]["time"][:7],
    }  # type: ignore[index]
    assert all(str(r["time"])[-6:] in ("-05:00", "-04:00") for r in rows), rows  # New York time

    theirs = listed(server, b)
    assert [(r["action"], r["details"].get("token")) for r in theirs] == [  # type: ignore[attr-defined]
        ("operation.create", None),
        ("token.create", b.token_id),
    ]
    assert a.token_id not in json.dumps(theirs)
    assert "audited-1" not in json.dumps(theirs)


def test_the_window_follows_the_event_listing_rules(server: AppServer) -> None:
    tenant = server.tenant()
    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%d%H%M%S")
    later = (now + timedelta(hours=1)).strftime("%Y%m%d%H%M%S")
    month_ago = (now - timedelta(days=31)).strftime("%Y%m%d%H%M%S")
    too_long = (now - timedelta(days=31, seconds=1)).strftime("%Y%m%d%H%M%S")

    assert audit_page(server, tenant.token, date_ini=month_ago, date_end=stamp).status_code == 200
    # the end may be later than now
    assert audit_page(server, tenant.token, date_ini=stamp, date_end=later).status_code == 200
    cases = [
        ({"date_end": stamp}, "date_ini is required (YYYYmmddHHiiss)"),
        ({"date_ini": stamp}, "date_end is required (YYYYmmddHHiiss)"),
        ({"date_ini": "2026-01-01", "date_end": stamp}, "date_ini must be YYYYmmddHHiiss"),
        ({"date_ini": stamp, "date_end": "20261301000000"}, "date_end must be YYYYmmddHHiiss"),
        ({"date_ini": stamp, "date_end": month_ago}, "date_end is before date_ini"),
        ({"date_ini": too_long, "date_end": stamp}, "the window is longer than 31 days"),
        ({"date_ini": later, "date_end": later}, "date_ini is in the future"),
        (
            {"date_ini": month_ago, "date_end": stamp, "cursor": "garbage!"},
            "cursor is not one this server issued",
        ),
        (
            {"date_ini": month_ago, "date_end": stamp, "limit": "0"},
            "limit must be between 1 and 10000",
        ),
        (
            {"date_ini": month_ago, "date_end": stamp, "limit": "ten"},
            "limit must be a whole number up to 10000",
        ),
    ]
    for params, detail in cases:
        _refused(audit_page(server, tenant.token, **params), detail)


def test_pages_follow_the_cursor_and_each_request_costs_one_unit(server: AppServer) -> None:
    tenant = server.tenant()
    made = [server.token_for(tenant.name, description=f"extra {i}").token_id for i in range(4)]
    whole = listed(server, tenant)
    assert [r["details"].get("token") for r in whole] == [None, tenant.token_id, *made]  # type: ignore[attr-defined]

    def used() -> int:
        reply = server.get("/api/v2/information.php", tenant.token, params={"api": "token_info"})
        return int(reply.json()["data"][0]["all_token_today"])

    before = used()
    paged: list[object] = []
    cursor: str | None = None
    requests_made = 0
    while True:
        params = _window() | {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        body = audit_page(server, tenant.token, **params).json()
        requests_made += 1
        assert body["code"] == 200, body
        assert len(body["data"]) <= 2, body
        paged += body["data"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert paged == whole
    assert requests_made == 3
    assert used() == before + requests_made + 1  # the second information request counts too


def test_a_token_without_billing_read_cannot_list(server: AppServer) -> None:
    tenant = server.tenant(scopes=["usage:write"])
    reply = audit_page(server, tenant.token, **_window())
    assert envelope_ok(reply, 403, "FORBIDDEN", "PLEASE VALIDATE TOKEN")["data"] == []
    assert server.get("/api/v2/audit", None, params=_window()).status_code == 401
