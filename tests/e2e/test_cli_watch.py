"""`voxmeter watch --once` and `voxmeter history` as cron and a user run them, against a real
server."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from tests.e2e.harness import Tenant, VoxServer, free_port


def _voxmeter(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voxmeter", *args],
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
        f"interval_minutes = 0\n{body}",
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


def _rows(db: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT operation, api, items FROM snapshots WHERE api IN ('ivr_minutes', 'tts_chars')"
            " ORDER BY api, first_seen"
        ).fetchall()


def test_watch_once_is_idempotent_and_history_shows_the_trend(
    server: VoxServer, tmp_path: Path
) -> None:
    tenant = server.tenant()
    _events(tenant, server, "a", "2.01")
    config = _config(tmp_path, "acme", server.base, 'token_env = "VOXTOK"\n')
    db = tmp_path / "history.db"
    env = {"VOXTOK": tenant.token}
    watch = ("watch", "--config", str(config), "--history", str(db), "--once")

    first = _voxmeter(*watch, env=env)
    assert first.returncode == 0, first.stderr
    assert _rows(db) == [("acme", "ivr_minutes", "3"), ("acme", "tts_chars", "1234.5")]
    with sqlite3.connect(db) as conn:
        (all_rows,) = conn.execute("SELECT count(*) FROM snapshots").fetchone()
    assert all_rows == 27  # one per catalog product

    second = _voxmeter(*watch, env=env)
    assert second.returncode == 0, second.stderr
    with sqlite3.connect(db) as conn:
        (again,) = conn.execute("SELECT count(*) FROM snapshots").fetchone()
        (polls,) = conn.execute("SELECT polls FROM snapshots WHERE api = 'ivr_minutes'").fetchone()
    assert again == 27
    assert polls == 2

    _events(tenant, server, "b", "4")
    third = _voxmeter(*watch, env=env)
    assert third.returncode == 0, third.stderr
    assert _rows(db) == [
        ("acme", "ivr_minutes", "3"),
        ("acme", "ivr_minutes", "7"),
        ("acme", "tts_chars", "1234.5"),
        ("acme", "tts_chars", "2469"),
    ]

    shown = _voxmeter("history", "--operation", "acme", "--history", str(db))
    assert shown.returncode == 0, shown.stderr
    cells = {}
    for line in shown.stdout.splitlines():
        if line.startswith("│"):
            row = [c.strip() for c in line.strip("│").split("│")]
            cells[row[0]] = row[1:]
    assert len(cells) == 27
    assert cells["ivr_minutes"][:4] == ["3", "7", "4", "2"]
    assert cells["tts_chars"][:4] == ["1234.5", "2469", "1234.5", "2"]
    assert cells["vision"][:4] == ["0", "0", "0", "1"]
    assert cells["ivr_minutes"][5] == ""  # the month has not ended: no month-end yet
    month = f"{datetime.now(UTC):%Y-%m}"
    assert f"acme {month}" in shown.stdout
    explicit = _voxmeter("history", "--operation", "acme", "--month", month, "--history", str(db))
    assert explicit.stdout == shown.stdout

    for result in (first, second, third, shown):
        assert tenant.token not in result.stdout + result.stderr


def test_token_in_a_world_readable_file_is_refused(server: VoxServer, tmp_path: Path) -> None:
    tenant = server.tenant()
    config = _config(tmp_path, "acme", server.base, f'token = "{tenant.token}"\n', mode=0o644)
    db = tmp_path / "history.db"
    result = _voxmeter("watch", "--config", str(config), "--history", str(db), "--once")
    assert result.returncode != 0
    assert "chmod 600" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert tenant.token not in result.stdout + result.stderr
    assert not db.exists()

    os.chmod(config, 0o600)
    ok = _voxmeter("watch", "--config", str(config), "--history", str(db), "--once")
    assert ok.returncode == 0, ok.stderr
    assert tenant.token not in ok.stdout + ok.stderr


def test_unreachable_server_is_stale_with_exit_2(tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    config = _config(tmp_path, "gone", base, 'token_env = "VOXTOK"\n')
    secret = "vxm_" + "z" * 43
    db = tmp_path / "history.db"
    result = _voxmeter(
        "watch",
        "--config",
        str(config),
        "--history",
        str(db),
        "--once",
        "--stale-after",
        "0",
        env={"VOXTOK": secret},
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("warning: operation gone is stale: never polled successfully")
    assert "APIConnectionError" in lines[0]
    assert "Traceback" not in result.stderr
    assert secret not in result.stdout + result.stderr

    missing = _voxmeter("history", "--operation", "gone", "--history", str(db))
    assert missing.returncode != 0
    assert "no snapshots of operation 'gone'" in missing.stderr
