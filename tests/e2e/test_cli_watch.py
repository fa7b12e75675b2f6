"""`voxmeter watch --once` and `voxmeter history` as cron and a user run them, against a real
server, in one database with everything else."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from tests.e2e.harness import Tenant, VoxServer, free_port


def _voxmeter(
    *args: str, db: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voxmeter", *args, "--db", db],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def _config(tmp_path: Path, name: str, base: str, body: str, mode: int = 0o600) -> Path:
    path = tmp_path / "operations.toml"
    path.write_text(
        f'[[operation]]\nname = "{name}"\nserver = "9901"\nbase_url = "{base}"\n'
        f"interval_minutes = 1\n{body}",
        encoding="utf-8",
    )
    os.chmod(path, mode)
    return path


def _events(tenant: Tenant, server: VoxServer, prefix: str, quantity: str) -> None:
    now = datetime.now(UTC).isoformat()
    events = [
        {"id": f"{prefix}1", "product": "ivr_minutes", "time": now, "quantity": quantity},
        {"id": f"{prefix}2", "product": "tts_chars", "time": now, "quantity": "1234.5"},
    ]
    assert server.post_events(tenant.token, events).status_code == 200


def _readings(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT product, figure FROM mirror_readings"
            " WHERE product IN ('ivr_minutes', 'tts_chars') ORDER BY product, first_seen"
        ).fetchall()


def test_watch_once_creates_the_mirror_sweeps_when_due_and_history_shows_it(
    server: VoxServer, tmp_path: Path
) -> None:
    tenant = server.tenant()
    _events(tenant, server, "a", "2.01")
    config = _config(tmp_path, "acme", server.base, 'token_env = "VOXTOK"\n')
    db_file = tmp_path / "watch.db"
    db = f"sqlite:///{db_file}"
    env = {"VOXTOK": tenant.token}

    first = _voxmeter("watch", "--config", str(config), "--once", db=db, env=env)
    assert first.returncode == 0, first.stderr
    assert tenant.token not in first.stdout + first.stderr
    assert _readings(db_file) == [("ivr_minutes", "3"), ("tts_chars", "1234.5")]
    spent = json.loads(_voxmeter("mirror", "status", "--format", "json", db=db).stdout)
    assert spent[0]["operation"] == "acme"
    assert spent[0]["last_error"] == ""

    # Not due again within its interval: nothing asked, nothing stored.
    _events(tenant, server, "b", "1")
    again = _voxmeter("watch", "--config", str(config), "--once", db=db, env=env)
    assert again.returncode == 0, again.stderr
    assert _readings(db_file) == [("ivr_minutes", "3"), ("tts_chars", "1234.5")]
    status = json.loads(_voxmeter("mirror", "status", "--format", "json", db=db).stdout)
    assert status[0]["requests_today"] == spent[0]["requests_today"]

    shown = _voxmeter("history", "--operation", "acme", db=db)
    assert shown.returncode == 0, shown.stderr
    assert "ivr_minutes" in shown.stdout
    assert "1234.5" in shown.stdout
    assert tenant.token not in shown.stdout


def test_an_old_history_file_is_imported_once(server: VoxServer, tmp_path: Path) -> None:
    tenant = server.tenant()
    config = _config(tmp_path, "acme", server.base, 'token_env = "VOXTOK"\n')
    db = f"sqlite:///{tmp_path / 'watch.db'}"
    assert (
        _voxmeter(
            "watch", "--config", str(config), "--once", db=db, env={"VOXTOK": tenant.token}
        ).returncode
        == 0
    )
    old = tmp_path / "voxmeter-history.db"
    with sqlite3.connect(old) as conn:
        conn.execute(
            "CREATE TABLE snapshots (operation TEXT, month TEXT, api TEXT, items TEXT,"
            " first_seen INTEGER, last_seen INTEGER, polls INTEGER)"
        )
        conn.executemany(
            "INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?, 1)",
            [
                ("acme", "2026-01", "ivr_minutes", "40", 1767225600000000, 1767225600000000),
                ("acme", "2026-01", "ivr_minutes", "55", 1769817600000000, 1769817600000000),
                ("other", "2026-01", "ivr_minutes", "9", 1767225600000000, 1767225600000000),
            ],
        )
    first = _voxmeter(
        "history", "--operation", "acme", "--month", "2026-01", "--import", str(old), db=db
    )
    assert first.returncode == 0, first.stderr
    assert "imported 2 readings" in first.stdout
    assert "55" in first.stdout
    second = _voxmeter(
        "history", "--operation", "acme", "--month", "2026-01", "--import", str(old), db=db
    )
    assert "imported 0 readings" in second.stdout


def test_token_in_a_world_readable_file_is_refused(server: VoxServer, tmp_path: Path) -> None:
    tenant = server.tenant()
    config = _config(tmp_path, "acme", server.base, f'token = "{tenant.token}"\n', mode=0o644)
    result = _voxmeter(
        "watch", "--config", str(config), "--once", db=f"sqlite:///{tmp_path / 'w.db'}"
    )
    assert result.returncode == 1
    assert "chmod 600" in result.stderr
    assert tenant.token not in result.stdout + result.stderr


def test_unreachable_server_is_stale_with_exit_2(tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    config = _config(tmp_path, "down", base, 'token_env = "VOXTOK"\nstale_minutes = 1\n')
    db = f"sqlite:///{tmp_path / 'watch.db'}"
    result = _voxmeter("watch", "--config", str(config), "--once", db=db, env={"VOXTOK": "vxm_x"})
    assert result.returncode == 0, result.stderr  # not stale yet: created a moment ago
    assert "error: operation down:" in result.stderr
    with sqlite3.connect(tmp_path / "watch.db") as conn:  # as if created two minutes ago
        conn.execute("UPDATE operations SET created = created - 120000000")
        conn.execute("UPDATE mirrors SET next_due = 0")
    result = _voxmeter("watch", "--config", str(config), "--once", db=db, env={"VOXTOK": "vxm_x"})
    assert result.returncode == 2
    assert "warning: operation down is stale: never swept successfully" in result.stderr
    assert "vxm_x" not in result.stderr


def test_watch_once_fires_a_staleness_alert_once_per_episode(tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    config = _config(tmp_path, "down", base, 'token_env = "VOXTOK"\nstale_minutes = 1\n')
    db = f"sqlite:///{tmp_path / 'watch.db'}"
    env = {"VOXTOK": "vxm_x"}
    assert _voxmeter("watch", "--config", str(config), "--once", db=db, env=env).returncode == 0
    made = _voxmeter(
        "alert", "create", "--operation", "down", "--on", "stale",
        "--webhook", "http://127.0.0.1:9/hook", db=db,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    alert_id = int(made.stdout.split()[1])
    with sqlite3.connect(tmp_path / "watch.db") as conn:  # as if created two minutes ago
        conn.execute("UPDATE operations SET created = created - 120000000")
    stale = _voxmeter("watch", "--config", str(config), "--once", db=db, env=env)
    assert stale.returncode == 2
    assert f"warning: operation down is stale: alert {alert_id} fired" in stale.stderr
    still = _voxmeter("watch", "--config", str(config), "--once", db=db, env=env)
    assert still.returncode == 2
    assert "fired" not in still.stderr  # the same staleness episode
    queued = json.loads(_voxmeter("alert", "deliveries", "--format", "json", db=db).stdout)
    assert [(d["alert"], d["state"]) for d in queued] == [(alert_id, "pending")]
