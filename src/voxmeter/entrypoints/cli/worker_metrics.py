"""The metrics directory `voxmeter serve --workers N` gives its workers.

prometheus-client's multiprocess mode keeps each process's counters in files of one directory
(`PROMETHEUS_MULTIPROC_DIR`), which a scrape of any worker sums. The supervisor owns that
directory: a fresh private one per start (so no earlier run's counts leak in), named after the
supervisor's pid so a later start can remove the one a killed supervisor left behind; removed
at stop. A worker that dies keeps its counts in the sum (counters never go down), and a thread
tells prometheus-client about it (`mark_process_dead`) so its live gauges, if any, go away.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import multiprocess

ENV = "PROMETHEUS_MULTIPROC_DIR"
_PREFIX = "voxmeter-metrics-"
SWEEP_SECONDS = 1.0


@contextlib.contextmanager
def worker_metrics(root: str | None = None) -> Iterator[Path]:
    """A private metrics directory in the environment the workers inherit, for the duration."""
    base = Path(root or tempfile.gettempdir())
    remove_stale(base)
    folder = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=base))
    previous = os.environ.get(ENV)
    os.environ[ENV] = str(folder)
    stop = threading.Event()
    sweeper = threading.Thread(
        target=_sweep_until, args=(folder, stop), name="voxmeter-metrics-sweeper", daemon=True
    )
    sweeper.start()
    try:
        yield folder
    finally:
        stop.set()
        sweeper.join(timeout=5)
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous
        shutil.rmtree(folder, ignore_errors=True)


def remove_stale(base: Path) -> list[Path]:
    """Remove the directories of supervisors that are gone (killed before they could clean)."""
    removed = []
    for folder in base.glob(f"{_PREFIX}*"):
        pid = _pid_in(folder.name.removeprefix(_PREFIX).split("-", 1)[0])
        if pid is None or not folder.is_dir() or folder.stat().st_uid != os.getuid():
            continue
        if not _alive(pid):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def mark_dead(folder: Path, done: set[int]) -> set[int]:
    """Tell prometheus-client about every process with files here that has exited."""
    dead = set()
    for path in folder.glob("*.db"):
        pid = _pid_in(path.stem.rsplit("_", 1)[-1])
        if pid is None or pid in done or pid in dead or _alive(pid):
            continue
        multiprocess.mark_process_dead(pid, str(folder))  # type: ignore[no-untyped-call]
        dead.add(pid)
    done |= dead
    return dead


def _sweep_until(folder: Path, stop: threading.Event) -> None:
    done: set[int] = set()
    while not stop.wait(SWEEP_SECONDS):
        with contextlib.suppress(OSError):
            mark_dead(folder, done)


def _pid_in(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
