"""Months (docs/behaviour.md): explicit closing, the grace period, and what a closed month
refuses."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import requests

from tests.e2e.harness import (
    Tenant,
    VoxServer,
    accepted_msg,
    all_events,
    envelope_ok,
    figure_of,
    local_stamp,
    void_event,
)

Event = dict[str, object]
MakeServer = Callable[..., VoxServer]
FreshDb = Callable[[str], str]


def _month_start(months_back: int) -> datetime:
    """The first instant (UTC) of the month `months_back` before the current one."""
    start = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    for _ in range(months_back):
        start = (start - timedelta(days=1)).replace(day=1)
    return start


def _label(start: datetime) -> str:
    return f"{start:%Y-%m}"


def _at(start: datetime, day: int, hour: int = 12) -> str:
    return start.replace(day=day, hour=hour).isoformat()


def _now() -> str:
    return (datetime.now(UTC) - timedelta(seconds=1)).isoformat()


def _accepted(reply: requests.Response, accepted: int, duplicates: int) -> None:
    body = envelope_ok(reply, 200, None, accepted_msg(accepted))
    assert body["data"] == {"accepted": accepted, "duplicates": duplicates}


def _closed_month_refusal(reply: requests.Response, month: str, indices: list[int]) -> None:
    """400 with one per-record problem per refused event, each naming the closed month."""
    assert reply.status_code == 400, reply.text
    body = reply.json()
    assert body["code"] == 400, body
    assert body["error"] == "BAD REQUEST", body
    assert body["msg"].startswith("SOME PARAMETERS ARE REQUIRED"), body
    assert [p["index"] for p in body["data"]] == indices, body
    for problem in body["data"]:
        assert set(problem) == {"index", "field", "error"}, problem
        assert problem["field"] == "time", problem
        assert month in problem["error"], problem
        assert "closed" in problem["error"], problem


def _figures(srv: VoxServer, tenant: Tenant, month: str | None = None) -> list[str]:
    reply = srv.billing(tenant.token, "all", month)
    assert reply.status_code == 200, reply.text
    return [row["items"] for row in reply.json()["data"]]


def _one_line_error(result: object) -> str:
    """A CLI failure as a user should see it: non-zero exit, one line, no traceback."""
    assert hasattr(result, "returncode")
    assert result.returncode != 0, (result.stdout, result.stderr)  # type: ignore[attr-defined]
    err = result.stderr.strip()  # type: ignore[attr-defined]
    assert "Traceback" not in err + result.stdout, err  # type: ignore[attr-defined]
    assert len(err.splitlines()) == 1, err
    assert "error" in err.lower(), err
    return str(err)


def test_closing_a_past_month_freezes_it(make_server: MakeServer) -> None:
    srv = make_server("--grace-days", "400")
    tenant = srv.tenant()
    last = _month_start(1)
    label = _label(last)
    events: list[Event] = [
        {"id": "m1", "product": "ivr_minutes", "time": _at(last, 3), "quantity": "12.2"},
        {"id": "m2", "product": "ivr_minutes", "time": _at(last, 20), "quantity": "0.5"},
        {"id": "m3", "product": "pbx_licenses", "time": _at(last, 5), "quantity": "12"},
        {"id": "m4", "product": "pbx_licenses", "time": _at(last, 25), "quantity": "9"},
        {"id": "m5", "product": "interactions", "time": _at(last, 9)},
        {"id": "m6", "product": "rsync", "time": _at(last, 28, 23), "quantity": "7.125"},
    ]
    _accepted(srv.post_events(tenant.token, events), 6, 0)
    current: list[Event] = [
        {"id": "c1", "product": "ivr_minutes", "time": _now(), "quantity": "1"},
    ]
    _accepted(srv.post_events(tenant.token, current), 1, 0)
    assert srv.items(tenant.token, "ivr_minutes", label) == "14"  # 13 + 1
    assert srv.items(tenant.token, "pbx_licenses", label) == "12"
    assert srv.items(tenant.token, "interactions", label) == "1"
    assert srv.items(tenant.token, "rsync", label) == "7.125"
    # Still open: a void and a late event are accepted before the close.
    late = {"id": "m7", "product": "rsync", "time": _at(last, 1, 0), "quantity": "0.875"}
    _accepted(srv.post_events(tenant.token, [late]), 1, 0)
    envelope_ok(void_event(srv, tenant.token, "m5"), 200, None, "Event voided")
    frozen = _figures(srv, tenant, label)
    assert srv.items(tenant.token, "rsync", label) == "8"
    assert srv.items(tenant.token, "interactions", label) == "0"

    result = srv.cli("month", "close", "--operation", tenant.name, "--month", label)
    assert label in result.stdout
    assert "Traceback" not in result.stderr

    # New events for the closed month: a per-record error naming the month.
    fresh = {"id": "m8", "product": "ivr_minutes", "time": _at(last, 15), "quantity": "100"}
    _closed_month_refusal(srv.post_events(tenant.token, [fresh]), label, [0])
    # One such event rejects its whole batch, valid current-month events included.
    batch = [
        {"id": "c2", "product": "ivr_minutes", "time": _now(), "quantity": "5"},
        fresh,
        {"id": "c3", "product": "ivr_minutes", "time": _now(), "quantity": "5"},
        dict(fresh, id="m9", time=_at(last, 16)),
    ]
    _closed_month_refusal(srv.post_events(tenant.token, batch), label, [1, 3])
    _closed_month_refusal(srv.post_events(tenant.token, batch, ndjson=True), label, [1, 3])
    assert srv.items(tenant.token, "ivr_minutes") == "1"

    # A retry of an already accepted event of the closed month is a duplicate, not an error.
    _accepted(srv.post_events(tenant.token, [events[0]]), 0, 1)
    _accepted(srv.post_events(tenant.token, [dict(events[1], quantity="999")]), 0, 1)
    # ... also a retry of the event voided before the close.
    _accepted(srv.post_events(tenant.token, [events[4]]), 0, 1)
    # ... and next to new current-month events.
    mixed = [events[2], {"id": "c4", "product": "ivr_minutes", "time": _now(), "quantity": "2"}]
    _accepted(srv.post_events(tenant.token, mixed), 1, 1)
    assert srv.items(tenant.token, "ivr_minutes") == "3"

    # Voids of the closed month's events: 409, and the event stays counted.
    refused = void_event(srv, tenant.token, "m1")
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["code"] == 409, body
    assert body["error"] == "CONFLICT", body
    assert label in body["msg"], body
    assert body["data"] == [], body
    # Voiding the event voided before the close stays an idempotent 200.
    assert void_event(srv, tenant.token, "m5").status_code == 200

    listed = all_events(
        srv,
        tenant.token,
        local_stamp(last, "UTC"),
        local_stamp(_month_start(0) - timedelta(seconds=1), "UTC"),
    )
    assert {str(e["id"]): e["voided"] for e in listed} == {
        "m1": False,
        "m2": False,
        "m3": False,
        "m4": False,
        "m5": True,
        "m6": False,
        "m7": False,
    }

    # The closed month's figures never changed.
    assert _figures(srv, tenant, label) == frozen
    assert srv.items(tenant.token, "ivr_minutes", label) == "14"
    # The level carries into the current month: 9 was the last report before it.
    assert srv.items(tenant.token, "pbx_licenses") == "9"

    # Closing it again changes nothing.
    again = srv.cli("month", "close", "--operation", tenant.name, "--month", label, check=False)
    assert "Traceback" not in again.stderr
    assert _figures(srv, tenant, label) == frozen

    # A restarted server (same database) still treats the month as closed.
    srv.stop()
    restarted = make_server("--grace-days", "400", db=srv.db)
    assert _figures(restarted, tenant, label) == frozen
    _closed_month_refusal(restarted.post_events(tenant.token, [fresh]), label, [0])
    assert void_event(restarted, tenant.token, "m2").status_code == 409


def test_closing_the_current_or_a_future_month_fails(server: VoxServer) -> None:
    tenant = server.tenant()
    this_month = _label(_month_start(0))
    next_month = _label(_month_start(0) + timedelta(days=40))
    for month in (this_month, next_month):
        result = server.cli(
            "month", "close", "--operation", tenant.name, "--month", month, check=False
        )
        assert month in _one_line_error(result)
    for month in ("2026-13", "11-2026", "2026-1", "last"):
        result = server.cli(
            "month", "close", "--operation", tenant.name, "--month", month, check=False
        )
        _one_line_error(result)
    unknown = server.cli(
        "month", "close", "--operation", "no-such-op", "--month", "2020-01", check=False
    )
    assert "no-such-op" in _one_line_error(unknown)
    # The current month is still open.
    event = {"id": "still-open", "product": "vision", "time": _now()}
    _accepted(server.post_events(tenant.token, [event]), 1, 0)
    assert server.items(tenant.token, "vision") == "1"


def test_default_grace_refuses_a_month_that_ended_more_than_3_days_ago(
    server: VoxServer,
) -> None:
    tenant = server.tenant()
    two_ago = _month_start(2)
    label = _label(two_ago)
    event = {"id": "old", "product": "rec_minutes", "time": _at(two_ago, 27), "quantity": "3"}
    batch = [{"id": "new", "product": "rec_minutes", "time": _now(), "quantity": "4"}, event]
    _closed_month_refusal(server.post_events(tenant.token, batch), label, [1])
    # The last instant of that month is refused too.
    edge = dict(event, id="edge", time=(_month_start(1) - timedelta(microseconds=1)).isoformat())
    _closed_month_refusal(server.post_events(tenant.token, [edge]), label, [0])
    assert server.items(tenant.token, "rec_minutes") == "0"
    assert server.items(tenant.token, "rec_minutes", label) == "0"

    # Last month closes at local midnight 3 days after it ended.
    last = _month_start(1)
    last_event = {"id": "last", "product": "rec_minutes", "time": _at(last, 10), "quantity": "2"}
    reply = server.post_events(tenant.token, [last_event])
    if datetime.now(UTC) >= _month_start(0) + timedelta(days=3, seconds=5):
        _closed_month_refusal(reply, _label(last), [0])
        assert server.items(tenant.token, "rec_minutes", _label(last)) == "0"
    elif datetime.now(UTC) < _month_start(0) + timedelta(days=3, seconds=-5):
        _accepted(reply, 1, 0)
        assert server.items(tenant.token, "rec_minutes", _label(last)) == "2"

    # The first instant of the current month is always open.
    first = dict(event, id="first", time=_month_start(0).isoformat())
    _accepted(server.post_events(tenant.token, [first]), 1, 0)
    assert server.items(tenant.token, "rec_minutes") == "3"


def test_grace_days_from_the_environment(make_server: MakeServer, fresh_db: FreshDb) -> None:
    two_ago = _month_start(2)
    last = _month_start(1)
    old = {"id": "old", "product": "tts_chars", "time": _at(two_ago, 14), "quantity": "250"}
    late = {"id": "late", "product": "tts_chars", "time": _at(last, 14), "quantity": "30"}

    generous = make_server(db=fresh_db("env400"), env={"VOXMETER_GRACE_DAYS": "400"})
    tenant = generous.tenant()
    _accepted(generous.post_events(tenant.token, [old, late]), 2, 0)
    assert generous.items(tenant.token, "tts_chars", _label(two_ago)) == "250"
    assert generous.items(tenant.token, "tts_chars", _label(last)) == "30"

    strict = make_server(db=fresh_db("env0"), env={"VOXMETER_GRACE_DAYS": "0"})
    tenant = strict.tenant()
    _closed_month_refusal(strict.post_events(tenant.token, [late]), _label(last), [0])
    _accepted(strict.post_events(tenant.token, [dict(late, time=_now())]), 1, 0)

    # The flag wins over the environment.
    flagged = make_server(
        "--grace-days", "0", db=fresh_db("flag"), env={"VOXMETER_GRACE_DAYS": "400"}
    )
    tenant = flagged.tenant()
    _closed_month_refusal(flagged.post_events(tenant.token, [late]), _label(last), [0])


def test_retry_into_a_month_closed_by_grace_is_a_duplicate(
    make_server: MakeServer, fresh_db: FreshDb
) -> None:
    """Accepted while open (long grace); after a restart with the default grace the month is
    closed: the retry is a duplicate, a new event an error, and the figure is unchanged."""
    db = fresh_db("retry")
    two_ago = _month_start(2)
    label = _label(two_ago)
    events: list[Event] = [
        {"id": f"g{i}", "product": "video_call", "time": _at(two_ago, 1 + i), "quantity": f"{i}.1"}
        for i in range(5)
    ]
    first = make_server("--grace-days", "400", db=db)
    tenant = first.tenant()
    _accepted(first.post_events(tenant.token, events), 5, 0)
    expected = figure_of(events, "video_call")
    assert expected == "15"  # 1 + 2 + 3 + 4 + 5
    assert first.items(tenant.token, "video_call", label) == expected
    first.stop()

    second = make_server(db=db)  # default grace: two months ago is closed
    _accepted(second.post_events(tenant.token, events), 0, 5)
    _accepted(second.post_events(tenant.token, events[:2], ndjson=True), 0, 2)
    new = dict(events[0], id="g-new")
    _closed_month_refusal(second.post_events(tenant.token, [*events, new]), label, [5])
    assert second.items(tenant.token, "video_call", label) == expected
    refused = void_event(second, tenant.token, "g3")
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == 409
    assert second.items(tenant.token, "video_call", label) == expected
