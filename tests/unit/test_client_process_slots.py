"""Across processes, one token's simultaneous requests stay within the limit (real processes)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from voxmeter.client._errors import APITimeoutError
from voxmeter.client._process_slots import ProcessSlots

pytestmark = pytest.mark.serial  # how long a process waits for a slot: measured alone

KEY = ("http://127.0.0.1:1", "0" * 64)

HOLDER = """
import sys, time
from pathlib import Path
from voxmeter.client._process_slots import ProcessSlots
key = ("http://127.0.0.1:1", "0" * 64)
slots = ProcessSlots(key, int(sys.argv[2]), directory=Path(sys.argv[1]))
with slots.hold():
    print("holding", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def _hold_in_another_process(directory: Path, limit: int, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(directory), str(limit), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_a_second_process_waits_for_the_only_slot(tmp_path: Path) -> None:
    holder = _hold_in_another_process(tmp_path, 1, 1.0)
    started = time.monotonic()
    with ProcessSlots(KEY, 1, directory=tmp_path).hold():
        waited = time.monotonic() - started
    holder.wait(timeout=10)
    assert 0.5 < waited < 5


def test_two_slots_let_a_second_process_through_at_once(tmp_path: Path) -> None:
    holder = _hold_in_another_process(tmp_path, 2, 2.0)
    started = time.monotonic()
    with ProcessSlots(KEY, 2, directory=tmp_path).hold():
        waited = time.monotonic() - started
    holder.wait(timeout=10)
    assert waited < 0.5


def test_waiting_is_bounded(tmp_path: Path) -> None:
    holder = _hold_in_another_process(tmp_path, 1, 3.0)
    with pytest.raises(APITimeoutError), ProcessSlots(KEY, 1, directory=tmp_path, wait=0.3).hold():
        pass
    holder.wait(timeout=10)


def test_a_killed_holder_frees_its_slot(tmp_path: Path) -> None:
    holder = _hold_in_another_process(tmp_path, 1, 60.0)
    holder.kill()
    holder.wait(timeout=10)
    started = time.monotonic()
    with ProcessSlots(KEY, 1, directory=tmp_path, wait=5).hold():
        assert time.monotonic() - started < 0.5


def test_lock_files_never_contain_the_token(tmp_path: Path) -> None:
    secret = "vxm_secret-token-value"
    with ProcessSlots(("http://x", secret), 2, directory=tmp_path).hold():
        pass
    names = [p.name for p in tmp_path.iterdir()]
    assert names
    assert all(secret not in name for name in names)
