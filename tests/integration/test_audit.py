"""The audit log on SQLite, PostgreSQL and the in-memory fake: every change to money or access
recorded with its actor in the transaction of the change, nothing recorded for a change that
fails, entries listed by operation, window and cursor, and the table refusing UPDATE and DELETE
(docs/behaviour.md, Audit log)."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime

import pytest

from tests.integration.support import FakeClock, Sql, ev
from voxmeter.adapters.postgres import PostgresStorage
from voxmeter.domain import audit as actions
from voxmeter.domain.audit import AuditEntry
from voxmeter.domain.catalog import Catalog
from voxmeter.domain.months import Month
from voxmeter.domain.tenancy import Operation
from voxmeter.errors import BadParameters, ConfigError, Conflict, NotFound
from voxmeter.service import audit, maintenance, months, prices, tenancy
from voxmeter.service.context import Context
from voxmeter.service.events import void_event
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.months import close_due_months, close_month
from voxmeter.service.ports import Database
from voxmeter.service.tenancy import create_operation, create_token, revoke_token

ALICE = "cli:alice"


def entries(ctx: Context[Database], operation_id: int | None = None) -> list[AuditEntry]:
    return audit.entries(ctx, operation_id, None, None, None).entries


def summary(found: list[AuditEntry]) -> list[tuple[str, str, int | None, dict[str, object]]]:
    return [(e.actor, e.action, e.operation_id, json.loads(e.details)) for e in found]


@pytest.fixture
def alice(ctx: Context[Database]) -> Context[Database]:
    return dataclasses.replace(ctx, actor=ALICE)


def test_each_change_is_recorded_with_who_made_it(
    alice: Context[Database], clock: FakeClock
) -> None:
    clock.set("2026-04-02T12:00:00Z")  # March's grace period runs on to 4 April
    op = create_operation(alice, "acme", "9901", "America/Bogota", licenses=3)
    token, secret = create_token(alice, op, "billing robot", ["billing:read"])
    ingest_batch(
        alice,
        op,
        [
            ev("mar-1", "rsync", "2026-03-10T12:00:00Z", "1"),
            ev("apr-1", "rsync", "2026-04-01T12:00:00Z", "2"),
        ],
    )
    as_token = dataclasses.replace(alice, actor=token.id)
    assert void_event(as_token, op, "apr-1")[1] is True
    assert close_month(alice, op, Month(2026, 3)) == [Month(2026, 3)]
    maintenance.set_maintenance(alice, True)
    maintenance.set_maintenance(alice, False)
    revoke_token(alice, token.id)
    clock.set("2026-05-04T12:00:00Z")  # April's grace period is over: the server closes it
    assert close_due_months(alice) == {"9901/acme": [Month(2026, 4)]}

    found = entries(alice)
    assert summary(found) == [
        (
            ALICE,
            actions.OPERATION_CREATE,
            op.id,
            {
                "name": "acme",
                "server": "9901",
                "timezone": "America/Bogota",
                "licenses": 3,
                "currency": "USD",
            },
        ),
        (
            ALICE,
            actions.TOKEN_CREATE,
            op.id,
            {"token": token.id, "description": "billing robot", "scopes": ["billing:read"]},
        ),
        (
            token.id,
            actions.EVENT_VOID,
            op.id,
            {"event": "apr-1", "product": "rsync", "month": "2026-04"},
        ),
        (
            ALICE,
            actions.MONTH_CLOSE,
            op.id,
            {"month": "2026-03", "closed": ["2026-03"], "by": "request"},
        ),
        (ALICE, actions.MAINTENANCE_ON, None, {}),
        (ALICE, actions.MAINTENANCE_OFF, None, {}),
        (ALICE, actions.TOKEN_REVOKE, op.id, {"token": token.id}),
        (
            "system",
            actions.MONTH_CLOSE,
            op.id,
            {"month": "2026-04", "closed": ["2026-04"], "by": "grace"},
        ),
    ]
    assert [e.time for e in found] == sorted(e.time for e in found)
    assert found[-1].time == clock()
    assert secret not in "".join(e.details for e in found)
    assert tenancy.hash_secret(secret) not in "".join(e.details for e in found)


def test_a_change_that_fails_records_nothing(alice: Context[Database], clock: FakeClock) -> None:
    clock.set("2026-05-02T12:00:00Z")  # April's grace period runs on to 4 May
    op = create_operation(alice, "acme", "9901")
    token, _ = create_token(alice, op, "t", [])
    ingest_batch(alice, op, [ev("apr", "rsync", "2026-04-10T00:00:00Z", "1")])
    ingest_batch(alice, op, [ev("may", "rsync", "2026-05-01T12:00:00Z", "1")])
    close_month(alice, op, Month(2026, 4))
    void_event(alice, op, "may")
    before = entries(alice)

    with pytest.raises(ConfigError):
        create_operation(alice, "acme", "9901")  # taken
    with pytest.raises(ConfigError):
        create_token(alice, op, " ", [])
    with pytest.raises(ConfigError):
        revoke_token(alice, "tok_unknown")
    revoke_token(alice, token.id)
    with pytest.raises(ConfigError):
        revoke_token(alice, token.id)  # already revoked
    with pytest.raises(NotFound):
        void_event(alice, op, "nothing")
    with pytest.raises(Conflict):
        void_event(alice, op, "apr")  # April is closed
    assert void_event(alice, op, "may")[1] is False  # already void: no change
    with pytest.raises(BadParameters):
        close_month(alice, op, Month(2026, 5))  # not over yet
    assert close_month(alice, op, Month(2026, 4)) == []  # already closed: no change

    after = entries(alice)
    assert after[: len(before)] == before
    assert summary(after[len(before) :]) == [
        (ALICE, actions.TOKEN_REVOKE, op.id, {"token": token.id})
    ]


def test_a_change_whose_entry_cannot_be_written_is_undone(
    alice: Context[Database], op: Operation, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    """The entry is appended in the change's transaction: when appending fails, the operation,
    token, void, close and maintenance switch are all rolled back with it."""
    clock.set("2026-05-02T12:00:00Z")  # April's grace period runs on to 4 May
    ingest_batch(alice, op, [ev("apr", "rsync", "2026-04-10T00:00:00Z", "1")])
    token, _ = create_token(alice, op, "kept", [])
    before = entries(alice)

    def refused(*args: object, **kwargs: object) -> object:
        raise RuntimeError("the audit log is unavailable")

    monkeypatch.setattr(audit, "new_entry", refused)
    attempts = [
        lambda: create_operation(alice, "other", "9901"),
        lambda: create_token(alice, op, "lost", []),
        lambda: revoke_token(alice, token.id),
        lambda: void_event(alice, op, "apr"),
        lambda: close_month(alice, op, Month(2026, 4)),
        lambda: maintenance.set_maintenance(alice, True),
    ]
    for attempt in attempts:
        with pytest.raises(RuntimeError, match="audit log is unavailable"):
            attempt()
    monkeypatch.undo()

    storage = alice.storage
    assert [o.name for o in storage.operations()] == ["acme"]
    assert [(t.description, t.revoked) for t in storage.tokens(op.id)] == [("kept", None)]
    assert storage.frozen_figures(op.id, Month(2026, 4).index) is None
    assert storage.setting(maintenance.MAINTENANCE) is None
    assert [e.voided for e in storage.events(op.id, 0, 2**62, None, None, 10)] == [None]
    assert entries(alice) == before


def test_an_entry_never_outlives_a_change_that_fails_after_it(
    alice: Context[Database], op: Operation, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    """A failure after the entry is appended, still inside the transaction, takes the entry
    back with the change."""
    clock.set("2026-05-02T12:00:00Z")  # April's grace period runs on to 4 May
    ingest_batch(alice, op, [ev("apr", "rsync", "2026-04-10T00:00:00Z", "1")])
    before = entries(alice)
    real = months.record

    def then_fail(*args: object, **kwargs: object) -> None:
        real(*args, **kwargs)  # type: ignore[arg-type]
        raise RuntimeError("failed after the entry")

    monkeypatch.setattr(months, "record", then_fail)
    with pytest.raises(RuntimeError, match="after the entry"):
        close_month(alice, op, Month(2026, 4))
    monkeypatch.undo()
    assert entries(alice) == before
    assert alice.storage.frozen_figures(op.id, Month(2026, 4).index) is None


def test_entries_are_listed_by_operation_window_and_cursor(
    alice: Context[Database], clock: FakeClock
) -> None:
    clock.set("2026-05-01T00:00:00Z")
    acme = create_operation(alice, "acme", "9901")
    other = create_operation(alice, "other", "9901")
    made = []
    for i in range(5):
        clock.advance(hours=1)
        made.append(create_token(alice, acme, f"acme {i}", [])[0].id)
        create_token(alice, other, f"other {i}", [])
    maintenance.set_maintenance(alice, True)

    own = entries(alice, acme.id)
    assert [e.action for e in own] == [actions.OPERATION_CREATE] + [actions.TOKEN_CREATE] * 5
    assert {e.operation_id for e in own} == {acme.id}
    assert len(entries(alice)) == 2 + 10 + 1  # every operation's, and the deployment's

    pages, after = [], None
    while True:
        page = audit.entries(alice, acme.id, None, None, after, limit=2)
        pages.append([json.loads(e.details).get("token") for e in page.entries])
        if page.next_after is None:
            break
        after = page.next_after
    assert pages == [[None, made[0]], made[1:3], made[3:5]]

    start = own[2].time
    end = own[4].time
    windowed = audit.entries(alice, acme.id, start, end, None).entries
    assert [json.loads(e.details)["token"] for e in windowed] == made[1:3]  # end excluded
    with pytest.raises(BadParameters):
        audit.entries(alice, acme.id, None, None, None, limit=0)


def test_an_operation_lists_its_own_entries_in_a_window_of_its_clock(
    alice: Context[Database], clock: FakeClock
) -> None:
    clock.set("2026-05-15T12:00:00Z")  # 07:00 in Bogota
    op = create_operation(alice, "acme", "9901", "America/Bogota")
    create_operation(alice, "other", "9901", "America/Bogota")
    day = datetime(2026, 5, 15)
    page = audit.operation_entries(alice, op, day, day.replace(hour=7))
    assert [e.action for e in page.entries] == [actions.OPERATION_CREATE]
    assert page.entries[0].operation_id == op.id
    assert (
        audit.operation_entries(alice, op, day, day.replace(hour=6, minute=59, second=59)).entries
        == []
    )
    with pytest.raises(BadParameters, match="future"):
        audit.operation_entries(alice, op, day.replace(hour=7, second=1), day.replace(hour=8))


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET actor = 'someone else'",
        "UPDATE audit_log SET details = '{}' WHERE action = 'token.create'",
        "DELETE FROM audit_log",
        "DELETE FROM audit_log WHERE action = 'operation.create'",
    ],
)
def test_the_database_refuses_to_change_or_delete_an_entry(
    alice: Context[Database], op: Operation, sql: Sql, statement: str
) -> None:
    create_token(alice, op, "t", [])
    before = sql(
        "SELECT seq, time, actor, action, operation_id, details FROM audit_log ORDER BY seq"
    )
    assert len(before) == 2
    with pytest.raises(Exception, match="append-only"):
        sql(statement)
    after = sql(
        "SELECT seq, time, actor, action, operation_id, details FROM audit_log ORDER BY seq"
    )
    assert after == before


def test_postgres_refuses_to_truncate_the_log(pg_url: str, clock: FakeClock) -> None:
    storage = PostgresStorage(pg_url)
    try:
        storage.migrate()
        ctx = Context(storage=storage, catalog=Catalog.load(), clock=clock, actor=ALICE)
        create_operation(ctx, "acme", "9901")
        runner = Sql(pg_url)
        try:
            with pytest.raises(Exception, match="append-only"):
                runner("TRUNCATE audit_log")
            assert runner("SELECT count(*) FROM audit_log") == [(1,)]
        finally:
            runner.close()
    finally:
        storage.close()


def test_an_operation_update_records_each_changed_field(
    alice: Context[Database], op: Operation
) -> None:
    """What `operation update` calls inside the transaction that saves the operation."""
    before = entries(alice)
    bigger = dataclasses.replace(op, licenses=op.licenses + 4)
    with alice.storage.write() as tx:
        assert audit.record_operation_update(tx, alice, op, bigger) is True
        assert audit.record_operation_update(tx, alice, bigger, bigger) is False  # no change
    added = entries(alice)[len(before) :]
    assert summary(added) == [
        (ALICE, actions.OPERATION_UPDATE, op.id, {"licenses": {"from": 1, "to": 5}})
    ]


def test_operation_update_and_price_changes_are_recorded_with_their_change(
    alice: Context[Database], op: Operation
) -> None:
    """`operation update`, `price set` and `price delete` record their entry in the write that
    makes the change; a refused change records nothing."""
    before = len(entries(alice))
    updated = tenancy.update_operation(alice, op, 3, "EUR")
    prices.set_price(alice, updated, "ivr_minutes", "EUR", tiers=["1000:0.05", "inf:0.03"])
    prices.set_price(alice, None, "ivr_minutes", "USD", unit_price="0.01", included="10")
    prices.delete_price(alice, None, "ivr_minutes", "USD")
    with pytest.raises(ConfigError):
        prices.set_price(alice, updated, "ivr_minutes", "EUR", unit_price="-1")
    with pytest.raises(ConfigError):
        prices.delete_price(alice, updated, "ivr_minutes", "JPY")
    with pytest.raises(ConfigError):
        tenancy.update_operation(alice, updated, 0, None)
    assert summary(entries(alice)[before:]) == [
        (
            ALICE,
            actions.OPERATION_UPDATE,
            op.id,
            {"licenses": {"from": 1, "to": 3}, "currency": {"from": "USD", "to": "EUR"}},
        ),
        (
            ALICE,
            actions.PRICE_SET,
            op.id,
            {
                "product": "ivr_minutes",
                "currency": "EUR",
                "scheme": "graduated",
                "included": "0",
                "tiers": [["1000", "0.05"], ["inf", "0.03"]],
            },
        ),
        (
            ALICE,
            actions.PRICE_SET,
            None,
            {
                "product": "ivr_minutes",
                "currency": "USD",
                "scheme": "unit",
                "included": "10",
                "tiers": [["inf", "0.01"]],
            },
        ),
        (ALICE, actions.PRICE_DELETE, None, {"product": "ivr_minutes", "currency": "USD"}),
    ]
    assert [p.product for _, p in prices.list_prices(alice, updated)] == ["ivr_minutes"]
