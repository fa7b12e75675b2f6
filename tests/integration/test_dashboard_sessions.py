"""Dashboard sessions and admin tokens on both databases: stored hashed, found by any
connection (so by any worker process), ended by sign-out, idleness and revocation."""

from __future__ import annotations

import json

from tests.integration.conftest import DbUnderTest
from tests.integration.support import FakeClock, Sql
from voxmeter.domain.tenancy import WRITE
from voxmeter.service import dashboard_sessions as sessions
from voxmeter.service.admin_tokens import create_admin_token
from voxmeter.service.audit import entries
from voxmeter.service.context import Context
from voxmeter.service.tenancy import create_operation, create_token, hash_secret, revoke_token

IDLE = 12 * 3600


def test_a_session_is_stored_hashed_and_seen_by_another_connection(
    ctx: Context, database: DbUnderTest, sql: Sql
) -> None:
    op = create_operation(ctx, "acme", "9901")
    token, secret = create_token(ctx, op, "browser", [])
    opened = sessions.sign_in(ctx, secret)
    assert opened is not None
    cookie, session = opened
    assert (session.token_id, session.operation_id) == (token.id, op.id)
    stored = sql("SELECT hash, token_id, operation_id FROM dashboard_sessions")
    assert stored == [(hash_secret(cookie), token.id, op.id)]
    assert cookie not in str(stored)
    assert secret not in str(stored)
    other = database.open()  # another process's storage on the same database
    try:
        found = sessions.current(Context(other, ctx.catalog, clock=ctx.clock), cookie, IDLE)
        assert found == session
    finally:
        other.close()


def test_sign_out_idleness_and_revocation_end_sessions(
    ctx: Context, clock: FakeClock, sql: Sql
) -> None:
    op = create_operation(ctx, "acme", "9901")
    token, secret = create_token(ctx, op, "browser", [])
    first = sessions.sign_in(ctx, secret)
    second = sessions.sign_in(ctx, secret)
    third = sessions.sign_in(ctx, secret)
    assert first is not None
    assert second is not None
    assert third is not None
    sessions.sign_out(ctx, first[0])
    assert sessions.current(ctx, first[0], IDLE) is None
    assert sessions.current(ctx, second[0], IDLE) is not None
    clock.advance(seconds=IDLE - 1)
    assert sessions.current(ctx, second[0], IDLE) is not None  # and seen now
    clock.advance(seconds=IDLE - 1)
    assert sessions.current(ctx, second[0], IDLE) is not None
    clock.advance(seconds=IDLE + 1)
    assert sessions.current(ctx, second[0], IDLE) is None
    assert sql("SELECT count(*) FROM dashboard_sessions") == [(1,)]  # the idle one is gone
    revoke_token(ctx, token.id)
    assert sessions.current(ctx, third[0], IDLE) is None
    assert sql("SELECT count(*) FROM dashboard_sessions") == [(0,)]


def test_only_reading_and_admin_tokens_sign_in(ctx: Context) -> None:
    op = create_operation(ctx, "acme", "9901")
    _, writer = create_token(ctx, op, "writer", [WRITE])
    reader, reading = create_token(ctx, op, "reader", [])
    assert sessions.sign_in(ctx, writer) is None
    assert sessions.sign_in(ctx, "vxm_unknown") is None
    revoke_token(ctx, reader.id)
    assert sessions.sign_in(ctx, reading) is None
    admin, secret = create_admin_token(ctx, "finance")
    opened = sessions.sign_in(ctx, f"  {secret} ")
    assert opened is not None
    assert opened[1].is_admin
    assert opened[1].token_id == admin.id


def test_admin_tokens_are_hashed_listed_revoked_and_audited(ctx: Context, sql: Sql) -> None:
    admin, secret = create_admin_token(ctx, "finance")
    assert sql("SELECT id, hash FROM admin_tokens") == [(admin.id, hash_secret(secret))]
    assert ctx.storage.admin_tokens() == [admin]
    assert ctx.storage.token_by_hash(hash_secret(secret)) is None  # never an API token
    opened = sessions.sign_in(ctx, secret)
    assert opened is not None
    revoke_token(ctx, admin.id)
    assert ctx.storage.admin_tokens()[0].revoked is not None
    assert sessions.current(ctx, opened[0], IDLE) is None
    assert sessions.sign_in(ctx, secret) is None
    logged = [
        (e.action, e.operation_id, json.loads(e.details)["token"])
        for e in entries(ctx, None, None, None, None).entries
    ]
    assert logged == [("token.create", None, admin.id), ("token.revoke", None, admin.id)]
    assert secret not in str(entries(ctx, None, None, None, None).entries)


def test_an_admin_tokens_last_use_is_its_sign_in_then_its_sessions_activity(
    ctx: Context, clock: FakeClock
) -> None:
    admin, secret = create_admin_token(ctx, "billing team")
    op = create_operation(ctx, "acme", "9901")
    _, operation_secret = create_token(ctx, op, "browser", [])

    def last_used() -> int | None:
        (found,) = [t for t in ctx.storage.admin_tokens() if t.id == admin.id]
        return found.last_used

    assert last_used() is None
    opened = sessions.sign_in(ctx, secret)
    assert opened is not None
    signed_in = clock()
    assert last_used() == signed_in
    assert sessions.sign_in(ctx, operation_secret) is not None  # another kind of token
    assert last_used() == signed_in
    clock.advance(seconds=10)
    assert sessions.current(ctx, opened[0], IDLE) is not None
    assert last_used() == signed_in  # written at most once a minute, as the session's
    clock.advance(minutes=5)
    assert sessions.current(ctx, opened[0], IDLE) is not None
    assert last_used() == clock()
