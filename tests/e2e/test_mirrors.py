"""Mirrors end to end: `voxmeter serve` processes sweeping two kinds of upstream started by the
tests — another real `voxmeter serve`, and the hosted-like server (tests/upstreams/hosted.py) —
configured with the CLI as a user does, and read over HTTP as the operation's own tools do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

from tests.e2e.harness import VoxServer, cli
from tests.upstreams.hosted import hosted_like

KEY = Fernet.generate_key().decode()
ENV = {"VOXMETER_SECRET_KEY": KEY}


def _create_mirror(srv: VoxServer, name: str, upstream_url: str, token: str, *extra: str) -> str:
    result = cli(
        srv.db,
        "operation",
        "create",
        name,
        "--server",
        "9901",
        "--mirror",
        "--upstream-url",
        upstream_url,
        "--upstream-token-env",
        "UPSTREAM_TOKEN",
        "--interval",
        "1",
        "--licenses",
        "5",
        *extra,
        env={**ENV, "UPSTREAM_TOKEN": token},
    )
    assert token not in result.stdout + result.stderr
    return result.stdout


def _wait(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _status(srv: VoxServer) -> dict[str, dict[str, object]]:
    result = cli(srv.db, "mirror", "status", "--format", "json", env=ENV, check=False)
    assert result.returncode in (0, 2), result.stderr
    return {row["operation"]: row for row in json.loads(result.stdout)}


def _all_items(srv: VoxServer, token: str) -> list[tuple[str, str]]:
    reply = srv.billing(token, "all")
    assert reply.status_code == 200, reply.text
    return [(row["description"], row["items"]) for row in reply.json()["data"]]


def test_a_mirror_of_a_voxmeter_upstream_answers_every_read(
    make_server: Callable[..., VoxServer], fresh_db: Callable[..., str]
) -> None:
    upstream = make_server(db=fresh_db("upstream"))
    source = upstream.tenant(licenses=5)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    events = [
        {"id": "a", "product": "ivr_minutes", "time": now, "quantity": "2.5"},
        {"id": "b", "product": "interactions", "time": now},
        {"id": "c", "product": "interactions", "time": now},
        {"id": "d", "product": "pbx_licenses", "time": now, "quantity": "7"},
    ]
    assert upstream.post_events(source.token, events).status_code == 200
    mirror = make_server(db=fresh_db("mirror"), env=ENV)
    _create_mirror(mirror, "mirrored", upstream.base, source.token)
    mine = mirror.token_for("mirrored")

    _wait(lambda: mirror.items(mine.token, "ivr_minutes") == "3", "the first sweep")
    assert _all_items(mirror, mine.token) == _all_items(upstream, source.token)
    assert mirror.items(mine.token, "pbx_licenses") == "7"
    month = time.strftime("%Y-%m", time.gmtime())
    assert mirror.items(mine.token, "interactions", month) == "2"
    for path in ("/api/v2/daily", "/api/v2/forecast", "/api/v2/statement"):
        params = {"api": "interactions", "month": month}
        assert mirror.get(path, mine.token, params=params).status_code == 200
    daily = mirror.get("/api/v2/daily", mine.token, params={"api": "interactions"}).json()
    assert sum(int(row["items"]) for row in daily["data"]) == 2

    refused = mirror.post_events(mine.token, [events[0]])
    assert refused.status_code == 409
    assert refused.json()["msg"].startswith("THIS OPERATION IS A MIRROR")

    status = _status(mirror)["mirrored"]
    assert status["last_sync"] != "never"
    assert status["last_error"] == ""
    assert status["stale"] is False
    assert 0 < int(status["requests_today"]) <= int(status["budget"])  # type: ignore[call-overload]
    metrics = mirror.get("/metrics").text
    assert 'voxmeter_mirror_stale{operation="mirrored",server="9901"} 0.0' in metrics
    audit = cli(mirror.db, "audit", "--format", "json", env=ENV).stdout
    assert "mirror.create" in audit
    assert source.token not in audit
    assert source.token not in mirror.log()


def test_a_mirror_of_the_hosted_shape_is_a_caching_proxy(
    make_server: Callable[..., VoxServer],
) -> None:
    figures = {"ivr_minutes": "12", "tts_chars": "1234.5"}
    with hosted_like("good-upstream-token", figures=figures) as upstream:
        mirror = make_server(env=ENV)
        _create_mirror(mirror, "proxied", upstream.base_url, "good-upstream-token")
        _create_mirror(mirror, "refused", upstream.base_url, "wrong-upstream-token")
        mine = mirror.token_for("proxied")
        _wait(lambda: mirror.items(mine.token, "tts_chars") == "1234.5", "the first sweep")
        _wait(lambda: bool(_status(mirror)["refused"]["last_error"]), "the refused sweep")
        assert mirror.items(mine.token, "amazon_s3") == "0"  # a blank " " upstream

        before = upstream.count()
        today = time.strftime("%Y-%m-%d", time.gmtime())
        with requests.Session() as session:
            for _ in range(1000):
                reply = session.get(
                    mirror.url("/api/v2/billing.php"),
                    params={"api": "ivr_minutes"},
                    headers={"wolkvox-token": mine.token},
                    timeout=30,
                )
                assert reply.status_code == 200
                row = reply.json()["data"][0]
                assert (row["items"], row["date"]) == ("12", today)
        assert upstream.count() == before

        refused = _status(mirror)["refused"]
        assert "PLEASE VALIDATE TOKEN" in str(refused["last_error"])
        metrics = mirror.get("/metrics").text
        assert 'voxmeter_mirror_invalid_token{operation="refused",server="9901"} 1.0' in metrics
        log = mirror.log()
        assert "refused its token" in log
        assert "wrong-upstream-token" not in log
        assert "good-upstream-token" not in log
        assert upstream.most_in_flight == 1


def test_mirror_options_are_checked_and_changed_from_the_cli(
    make_server: Callable[..., VoxServer], fresh_db: Callable[..., str], tmp_path: Path
) -> None:
    db = fresh_db("cli")
    cli(db, "migrate", env=ENV)

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "voxmeter", *args, "--db", db],
            input=stdin,
            capture_output=True,
            text=True,
            env={**os.environ, **ENV, "UPSTREAM_TOKEN": "tok-from-env"},
            timeout=120,
            check=False,
        )

    base = ("operation", "create", "m1", "--server", "9901", "--mirror")
    no_token = run(*base)
    assert no_token.returncode == 1
    assert "--upstream-token-env VAR or --upstream-token-stdin" in no_token.stderr
    hosted_fast = run(*base, "--upstream-token-env", "UPSTREAM_TOKEN", "--interval", "1")
    assert hosted_fast.returncode == 1
    assert "at least 5 minute(s) against the hosted service" in hosted_fast.stderr
    not_a_mirror = run(
        "operation", "create", "m0", "--server", "9901", "--upstream-url", "http://x"
    )
    assert not_a_mirror.returncode == 1
    assert "upstream options need --mirror" in not_a_mirror.stderr
    made = run(*base, "--upstream-token-stdin", stdin="tok-from-stdin\n")
    assert made.returncode == 0, made.stderr
    assert "tok-from-stdin" not in made.stdout + made.stderr
    assert "hosted service" in made.stdout
    changed = run(
        "operation",
        "update",
        "m1",
        "--upstream-url",
        "http://127.0.0.1:9",
        "--interval",
        "2",
        "--upstream-token-env",
        "UPSTREAM_TOKEN",
    )
    assert changed.returncode == 0, changed.stderr
    assert "every 2 min" in changed.stdout
    audit = run("audit", "--format", "json").stdout
    assert '"token": "replaced"' in audit
    assert "tok-from" not in audit
    ingest_file = tmp_path / "events.ndjson"
    ingest_file.write_text(
        json.dumps({"id": "x", "product": "interactions", "time": "2026-01-01T00:00:00Z"}) + "\n"
    )
    refused = run("ingest", str(ingest_file), "--operation", "m1")
    assert refused.returncode == 1
    assert "THIS OPERATION IS A MIRROR" in refused.stderr


@pytest.mark.serial
def test_a_hanging_upstream_stalls_only_its_own_mirror(
    make_server: Callable[..., VoxServer], fresh_db: Callable[..., str]
) -> None:
    with (
        hosted_like("slow-token", figures={"ivr_minutes": "1"}, delay=25.0) as slow,
        hosted_like("fast-token", figures={"ivr_minutes": "2"}) as fast,
    ):
        mirror = make_server(db=fresh_db("hang"), env=ENV)
        _create_mirror(mirror, "stalled", slow.base_url, "slow-token")
        _wait(lambda: slow.in_flight == 1, "the hanging sweep to start", 30)
        _create_mirror(mirror, "lively", fast.base_url, "fast-token")
        mine = mirror.token_for("lively")
        stalled = mirror.token_for("stalled")
        started = time.monotonic()
        _wait(lambda: mirror.items(mine.token, "ivr_minutes") == "2", "the other mirror", 20)
        assert time.monotonic() - started < 15
        assert slow.in_flight == 1  # still hanging
        asked = time.monotonic()
        reply = mirror.billing(stalled.token, "ivr_minutes")
        assert time.monotonic() - asked < 5
        assert reply.status_code == 200
        assert reply.json()["data"][0]["items"] == "0"
