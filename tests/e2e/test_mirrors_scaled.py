"""Mirrors in the scaled-out mode: two `voxmeter serve` processes on one PostgreSQL and Redis
sweep a mirror one at a time, and when the sweeping process is killed the other takes over
within a minute (its lease expires). PostgreSQL only: the embedded mode is one process."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.backends import REDIS_URL, pg_query, pg_schema, redis_prefix, require_postgres
from tests.e2e.harness import VoxServer, cli, free_port
from tests.e2e.test_mirrors import ENV, _create_mirror, _status, _wait
from tests.upstreams.hosted import hosted_like

TOKEN = "scaled-upstream-token"
FULL_SWEEP = 29
"""Requests of a first sweep of the hosted shape: the refused api=all, 27 products and
token_info."""


@pytest.mark.serial
def test_two_processes_sweep_a_mirror_one_at_a_time_and_take_over(tmp_path: Path) -> None:
    require_postgres()
    with (
        pg_schema() as db,
        redis_prefix() as prefix,
        hosted_like(TOKEN, licenses=20, delay=0.2, figures={"ivr_minutes": "5"}) as upstream,
    ):
        env = {**ENV, "VOXMETER_REDIS_PREFIX": prefix}
        servers = [
            VoxServer(db=db, port=free_port(), args=("--redis", REDIS_URL), env=env).start(tmp_path)
            for _ in range(2)
        ]
        try:
            cli(db, "migrate", env=env)
            _create_mirror(servers[0], "scaled", upstream.base_url, TOKEN)

            def owner() -> str | None:
                rows = pg_query(db, "SELECT lease_owner FROM mirrors")
                return str(rows[0][0]) if rows and rows[0][0] else None

            _wait(lambda: owner() is not None, "a process to take the sweep")
            holder = int(str(owner()).split(":")[1])
            victim = next(s for s in servers if holder in s.pids())
            survivor = next(s for s in servers if s is not victim)
            time.sleep(1.0)  # mid-sweep: a few of its requests are made
            victim.kill9()
            killed_at = time.monotonic()
            time.sleep(0.5)  # the request it had in flight is answered (to no one) and logged
            spent_before = upstream.count()
            assert 0 < spent_before < FULL_SWEEP

            _wait(lambda: _status(survivor)["scaled"]["last_sync"] != "never", "the takeover", 90)
            took = time.monotonic() - killed_at
            assert took < 60 + FULL_SWEEP * 0.2 + 5
            assert upstream.most_in_flight == 1  # never two sweeps' requests at once
            assert upstream.count() == spent_before + FULL_SWEEP
            assert "swept" in survivor.log()
        finally:
            for srv in servers:
                if srv.proc is not None and srv.proc.poll() is None:
                    srv.stop()
