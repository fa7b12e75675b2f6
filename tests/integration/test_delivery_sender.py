"""The alert sender's look for due deliveries on an embedded database: skipped while nothing
was committed and nothing is due, taken again as soon as any process commits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx

from tests.fakes import FakeSecretBox
from tests.integration.support import FakeClock, ev
from voxmeter.adapters.sqlite.storage import SqliteStorage
from voxmeter.config import Settings
from voxmeter.domain.catalog import Catalog
from voxmeter.entrypoints.http.deliveries import Sender
from voxmeter.service.alerts import create_alert
from voxmeter.service.context import Context
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.tenancy import create_operation


def counted(calls: list[str], name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any) -> Any:
        calls.append(name)
        return method(*args)

    return wrapper


def test_the_sender_looks_again_only_after_a_commit_or_when_something_is_due(
    tmp_path: Path, catalog: Catalog, clock: FakeClock
) -> None:
    path = tmp_path / "voxmeter.db"
    server, other = SqliteStorage(str(path)), SqliteStorage(str(path))
    server.migrate()
    calls: list[str] = []
    server.next_due = counted(calls, "look", server.next_due)  # type: ignore[method-assign]
    server.claim_due = counted(calls, "claim", server.claim_due)  # type: ignore[method-assign]
    mine = Context(storage=server, catalog=catalog, clock=clock)
    theirs = Context(storage=other, catalog=catalog, clock=clock)  # another process
    op = create_operation(theirs, "acme", "9901", "UTC")
    box = FakeSecretBox()
    create_alert(
        theirs, box, op, product="rsync", threshold="2", on="figure", url="http://127.0.0.1:9/hook"
    )
    settings = Settings(database_url=f"sqlite:///{path}")
    failures: list[Exception] = []
    sender = Sender(mine, settings, failures.append, server.version)
    sender.box = box

    async def rounds(count: int) -> None:
        async with httpx.AsyncClient(timeout=2) as http, anyio.create_task_group() as tg:
            for _ in range(count):
                await sender._round(http, tg)

    anyio.run(rounds, 3)
    assert calls == ["look"]  # an empty outbox, and no commit since: looked at once
    ingest_batch(theirs, op, [ev("a", "rsync", "2026-05-02T00:00:00Z", "5")])  # fires the alert
    anyio.run(rounds, 1)
    assert calls == ["look", "look", "claim"]  # the other process's commit is seen at once
    calls.clear()
    anyio.run(rounds, 2)  # the failed POST was committed as an attempt: one look, then none
    assert calls == ["look"]
    assert sender.seen is not None
    retry_at = sender.seen[1]
    assert retry_at is not None
    assert retry_at > clock()
    clock.now = retry_at  # due now, with no commit meanwhile: looked at and claimed
    anyio.run(rounds, 1)
    assert calls == ["look", "look", "claim"]
    assert failures == []
    server.close()
    other.close()
