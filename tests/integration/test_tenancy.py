"""Tenancy at the storage/service level: isolation, hashed tokens, the Authenticator."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path

from tests.integration.conftest import DbUnderTest
from tests.integration.support import Sql, ev, event_rows, fig, figures, page_rows
from voxmeter.domain.tenancy import READ, WRITE
from voxmeter.entrypoints.wire.listing import list_events
from voxmeter.service.context import Context
from voxmeter.service.events import void_event
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.tenancy import (
    Authenticator,
    create_operation,
    create_token,
    revoke_token,
    update_operation,
)


def test_operations_are_isolated(ctx: Context, sql: Sql) -> None:
    acme = create_operation(ctx, "acme", "9901", "UTC")
    acme_too = create_operation(ctx, "acme", "0042", "UTC")  # same name, other server
    globex = create_operation(ctx, "globex", "9901", "Asia/Kathmandu")
    assert len({acme.id, acme_too.id, globex.id}) == 3

    batch = [
        ev("shared-1", "rsync", "2026-05-02T00:00:00Z", "1"),
        ev("shared-2", "agent_script", "2026-05-02T00:00:00Z", "4"),
    ]
    for op in (acme, acme_too, globex):
        result = ingest_batch(ctx, op, batch)
        assert (result.accepted, result.duplicates) == (2, 0)
    ingest_batch(ctx, acme, [ev("only-acme", "rsync", "2026-05-03T00:00:00Z", "10")])
    ingest_batch(ctx, globex, [ev("only-globex", "agent_script", "2026-05-03T00:00:00Z", "9")])
    assert event_rows(sql) == 8
    assert [event_rows(sql, op.id) for op in (acme, acme_too, globex)] == [3, 2, 3]

    assert figures(ctx, acme, "2026-05", ["rsync", "agent_script"]) == {
        "rsync": "11",
        "agent_script": "4",
    }
    assert figures(ctx, acme_too, "2026-05", ["rsync", "agent_script"]) == {
        "rsync": "1",
        "agent_script": "4",
    }
    assert figures(ctx, globex, "2026-05", ["rsync", "agent_script"]) == {
        "rsync": "1",
        "agent_script": "9",
    }

    # A void in one operation touches only that one.
    assert void_event(ctx, acme_too, "shared-1")[1] is True
    assert fig(ctx, acme_too, "rsync", "2026-05") == "0"
    assert fig(ctx, acme, "rsync", "2026-05") == "11"
    assert fig(ctx, globex, "rsync", "2026-05") == "1"
    window = ("20260501000000", "20260531235959")
    listed = {
        op.name + op.server: [
            (e["id"], e["voided"]) for e in page_rows(list_events(ctx, op, *window, None, None))
        ]
        for op in (acme, acme_too, globex)
    }
    assert listed == {
        "acme9901": [("shared-1", False), ("shared-2", False), ("only-acme", False)],
        "acme0042": [("shared-1", True), ("shared-2", False)],
        "globex9901": [("shared-1", False), ("shared-2", False), ("only-globex", False)],
    }
    # A duplicate is judged per operation: resending to acme does not block a new operation.
    initech = create_operation(ctx, "initech", "9901", "UTC")
    assert ingest_batch(ctx, initech, [batch[0]]).accepted == 1
    assert ingest_batch(ctx, acme, [batch[0]]).duplicates == 1


def test_tokens_are_stored_only_as_sha256_hashes(
    ctx: Context, database: DbUnderTest, sql: Sql
) -> None:
    op = create_operation(ctx, "acme", "9901", "UTC")
    made = [create_token(ctx, op, f"token {n}", []) for n in range(3)]
    made.append(create_token(ctx, op, "reader", [READ]))
    for token, secret in made:
        assert len(secret) > 40
        row = sql("SELECT hash, scopes FROM tokens WHERE id = ?", (token.id,))
        assert row[0][0] == hashlib.sha256(secret.encode()).hexdigest()
    assert made[0][0].scopes == frozenset({READ, WRITE})
    assert made[3][0].scopes == frozenset({READ})

    def leaks_in_tables(secret: str) -> list[str]:
        """Every cell of every table, whichever backend."""
        body = secret.removeprefix("vxm_")
        if database.backend == "sqlite":
            tables = [r[0] for r in sql("SELECT name FROM sqlite_master WHERE type='table'")]
        else:
            tables = [
                r[0]
                for r in sql(
                    "SELECT table_name FROM information_schema.tables"
                    " WHERE table_schema = current_schema()"
                )
            ]
        return [
            table
            for table in tables
            for row in sql(f'SELECT * FROM "{table}"')
            if any(body in str(cell) or secret in str(cell) for cell in row)
        ]

    for _, secret in made:
        assert leaks_in_tables(secret) == []
    assert len(sql("SELECT * FROM tokens")) == 4
    if database.backend != "sqlite":
        return

    # The SQLite files themselves (the WAL included) never hold a secret either.
    db_path = database.path
    assert db_path is not None

    def files() -> list[Path]:
        return [p for p in db_path.parent.iterdir() if p.name.startswith(db_path.name)]

    def leaks_in_files(secret: str) -> list[str]:
        body = secret.removeprefix("vxm_")
        return [
            path.name
            for path in files()
            if secret.encode() in path.read_bytes() or body.encode() in path.read_bytes()
        ]

    assert any(p.name.endswith("-wal") for p in files())  # the scan covers the WAL too
    for _, secret in made:
        assert leaks_in_files(secret) == []
    # ...and after a checkpoint moves everything into the main file.
    ctx.storage.close()
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for _, secret in made:
        assert leaks_in_files(secret) == []
        assert leaks_in_tables(secret) == []


def test_token_listing_never_carries_the_secret(ctx: Context) -> None:
    op = create_operation(ctx, "acme", "9901", "UTC")
    token, secret = create_token(ctx, op, "ci pipeline", [WRITE])
    listed = ctx.storage.tokens(op.id)
    assert [(t.id, t.description, t.scopes, t.revoked) for t in listed] == [
        (token.id, "ci pipeline", frozenset({WRITE}), None)
    ]
    assert secret not in repr(listed)
    assert secret.removeprefix("vxm_") not in repr(listed)


def test_authenticator_resolves_refuses_revoked_and_sees_new_tokens(ctx: Context) -> None:
    acme = create_operation(ctx, "acme", "9901", "UTC")
    globex = create_operation(ctx, "globex", "0042", "America/New_York")
    auth = Authenticator(ctx, ttl=0.05)
    token, secret = create_token(ctx, acme, "first", [])

    caller = auth.resolve(secret)
    assert caller is not None
    assert caller.token.id == token.id
    assert caller.operation == acme
    assert auth.resolve(secret + "x") is None
    assert auth.resolve("vxm_" + "A" * 43) is None
    assert auth.resolve("") is None

    # Unknown secrets are not cached as misses: a token created now works at once.
    other, other_secret = create_token(ctx, globex, "second", [READ])
    found = auth.resolve(other_secret)
    assert found is not None
    assert (found.token.id, found.operation.name, found.operation.server) == (
        other.id,
        "globex",
        "0042",
    )

    revoke_token(ctx, token.id)
    time.sleep(0.06)  # past the cache TTL
    assert auth.resolve(secret) is None
    assert auth.resolve(secret) is None
    assert Authenticator(ctx, ttl=0.05).resolve(secret) is None  # a cold cache too
    assert auth.resolve(other_secret) is not None  # the other token is unaffected
    revoked = [t for t in ctx.storage.tokens(acme.id) if t.id == token.id]
    assert revoked[0].revoked is not None

    # New tokens keep working at once, also right after a revocation.
    fresh, fresh_secret = create_token(ctx, acme, "third", [])
    resolved = auth.resolve(fresh_secret)
    assert resolved is not None
    assert resolved.token.id == fresh.id


def test_operation_update_is_stored_and_seen_by_new_lookups(ctx: Context) -> None:
    op = create_operation(ctx, "acme", "9901", "UTC", currency="CLP")
    _, secret = create_token(ctx, op, "reader", [READ])
    auth = Authenticator(ctx, ttl=0.0)  # no caching: every lookup reads the storage
    assert auth.resolve(secret).operation.daily_quota == 1000  # type: ignore[union-attr]
    updated = update_operation(ctx, op, 4, "COP")
    assert (updated.licenses, updated.currency) == (4, "COP")
    assert ctx.storage.operation(op.id) == updated
    assert [o for o in ctx.storage.operations() if o.id == op.id] == [updated]
    caller = auth.resolve(secret)
    assert caller is not None
    assert caller.operation.daily_quota == 4000
    assert update_operation(ctx, op, None, "USD").licenses == 4  # only what is given changes
