"""Upgrading a database made by the previous release (schema version 1): a server refuses it
with a clear message until `voxmeter migrate` runs, and after that every figure, id and token
is as before."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.harness import VoxServer, cli, figure_of
from voxmeter.adapters.sqlite import schema

pytestmark = pytest.mark.sqlite_only

PRODUCTS = ("ivr_minutes", "tts_chars", "interactions", "rec_minutes")


def _events(count: int) -> list[dict[str, object]]:
    rng = random.Random(7)
    now = datetime.now(UTC)
    out: list[dict[str, object]] = []
    for i in range(count):
        product = PRODUCTS[i % len(PRODUCTS)]
        event: dict[str, object] = {
            "id": f"{rng.getrandbits(64):016x}-{i}",
            "product": product,
            "time": (now - timedelta(seconds=i + 1)).isoformat(),
        }
        if product != "interactions":
            event["quantity"] = f"{rng.randrange(1, 90)}.{rng.randrange(1000):03d}"
        out.append(event)
    return out


def _as_version_1(current: Path, target: Path) -> None:
    """The same rows in a database laid out by schema version 1 (the previous release's)."""
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        for statement in schema.MIGRATIONS[0].split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version (version) VALUES (1)")
        conn.execute("ATTACH ? AS source", (str(current),))
        for table in ("operations", "tokens", "products", "events", "meters", "subjects"):
            # the columns version 1 had (later migrations add some)
            columns = ", ".join(r[1] for r in conn.execute(f"PRAGMA main.table_info({table})"))
            conn.execute(f"INSERT INTO main.{table} SELECT {columns} FROM source.{table}")
        conn.execute("DETACH source")
    finally:
        conn.close()


def test_a_version_1_database_is_refused_then_migrated_with_every_figure_kept(
    make_server: Callable[..., VoxServer], tmp_path: Path
) -> None:
    current = tmp_path / "current.db"
    srv = make_server(db=f"sqlite:///{current}")
    tenant = srv.tenant()
    events = _events(3_000)
    assert srv.post_events(tenant.token, events).status_code == 200
    before = {p: srv.items(tenant.token, p) for p in PRODUCTS}
    assert before == {p: figure_of(events, p) for p in PRODUCTS}
    srv.stop()

    old = tmp_path / "release-1.db"
    _as_version_1(current, old)
    db = f"sqlite:///{old}"

    refused = subprocess.run(
        [sys.executable, "-m", "voxmeter", "serve", "--db", db, "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr
    assert "schema version 1" in refused.stderr
    assert "voxmeter migrate" in refused.stderr

    migrated = cli(db, "migrate")
    assert f"schema at version {schema.LATEST}" in migrated.stdout
    assert cli(db, "migrate").stdout.strip().endswith("(0 migrations applied)")

    upgraded = make_server(db=db)
    assert {p: upgraded.items(tenant.token, p) for p in PRODUCTS} == before
    again = upgraded.post_events(tenant.token, events[:1_000] + _events(3_001)[-1:])
    assert again.json()["data"] == {"accepted": 1, "duplicates": 1_000}
    assert upgraded.items(tenant.token, PRODUCTS[0]) == figure_of(
        events + _events(3_001)[-1:], PRODUCTS[0]
    )
