"""The metrics directory of `voxmeter serve --workers N`: private per start, stale ones removed,
dead workers marked, removed at stop. (The summed scrape itself: tests/e2e/test_scale_out.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from voxmeter.entrypoints.cli.worker_metrics import ENV, mark_dead, remove_stale, worker_metrics


def _dead_pid() -> int:
    gone = subprocess.Popen(["true"])
    gone.wait()
    return gone.pid


def test_a_private_directory_in_the_environment_while_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, "/somewhere/else")
    with worker_metrics(str(tmp_path)) as folder:
        assert os.environ[ENV] == str(folder)
        assert folder.parent == tmp_path
        assert folder.name.startswith(f"voxmeter-metrics-{os.getpid()}-")
        assert list(folder.iterdir()) == []
        (folder / "counter_1.db").write_bytes(b"x")
    assert not folder.exists()
    assert os.environ[ENV] == "/somewhere/else"
    monkeypatch.delenv(ENV)
    with worker_metrics(str(tmp_path)) as again:
        assert again != folder
    assert ENV not in os.environ


def test_only_the_directories_of_supervisors_that_are_gone_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / f"voxmeter-metrics-{_dead_pid()}-abc"
    alive = tmp_path / f"voxmeter-metrics-{os.getpid()}-def"
    odd = tmp_path / "voxmeter-metrics-notapid"
    other = tmp_path / "someone-else"
    for folder in (dead, alive, odd, other):
        folder.mkdir()
        (folder / "counter_1.db").write_bytes(b"x")
    assert remove_stale(tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (alive, odd, other))
    later = tmp_path / f"voxmeter-metrics-{_dead_pid()}-ghi"
    later.mkdir()
    with worker_metrics(str(tmp_path)):  # every start sweeps
        assert not later.exists()
        assert alive.exists()


def test_a_dead_workers_live_gauges_go_and_its_counters_stay(tmp_path: Path) -> None:
    worker = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os\n"
            "from prometheus_client import Counter, Gauge\n"
            "Counter('served', 'requests').inc(3)\n"
            "Gauge('busy', 'in flight', multiprocess_mode='livesum').set(2)\n"
            "print(os.getpid())\n",
        ],
        env={**os.environ, ENV: str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(worker.stdout)
    mine = tmp_path / f"gauge_livesum_{os.getpid()}.db"
    mine.write_bytes(b"")  # a live process's file is left alone
    assert {p.name for p in tmp_path.iterdir()} == {
        f"counter_{pid}.db",
        f"gauge_livesum_{pid}.db",
        mine.name,
    }
    done: set[int] = set()
    assert mark_dead(tmp_path, done) == {pid}
    assert {p.name for p in tmp_path.iterdir()} == {f"counter_{pid}.db", mine.name}
    assert mark_dead(tmp_path, done) == set()  # once per process
