"""The test command's two phases (tests/conftest.py) and the ports of parallel workers
(bench/server.py): what keeps the parallel run sound."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bench import server

pytest_plugins = ["pytester"]

SAMPLE = """
import pytest

def test_plain():
    pass

@pytest.mark.serial
def test_timed():
    pass
"""


@pytest.mark.parametrize(
    ("phase", "passed", "deselected"),
    [("parallel", "test_plain", "test_timed"), ("serial", "test_timed", "test_plain")],
)
def test_a_phase_runs_only_its_own_tests(
    pytester: pytest.Pytester, phase: str, passed: str, deselected: str
) -> None:
    pytester.makeconftest((Path(__file__).parents[1] / "conftest.py").read_text("utf-8"))
    pytester.makepyfile(SAMPLE)
    result = pytester.runpytest("-p", "no:xdist", "--phase", phase, "-v")
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines([f"*::{passed} PASSED*"])
    result.stdout.no_fnmatch_line(f"*::{deselected} *")


def test_without_a_phase_every_test_runs(pytester: pytest.Pytester) -> None:
    pytester.makeconftest((Path(__file__).parents[1] / "conftest.py").read_text("utf-8"))
    pytester.makepyfile(SAMPLE)
    pytester.runpytest("-p", "no:xdist").assert_outcomes(passed=2)


def test_each_xdist_worker_takes_ports_from_its_own_range(monkeypatch: pytest.MonkeyPatch) -> None:
    ports: dict[int, set[int]] = {}
    for worker in (0, 1, 3):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{worker}")
        ports[worker] = {server.free_port() for _ in range(5)}
    for worker, taken in ports.items():
        first = 20000 + worker * server.WORKER_PORTS
        assert len(taken) == 5, taken  # never the same port twice in a row
        assert all(first <= port < first + server.WORKER_PORTS for port in taken), taken


def test_a_port_in_use_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw5")
    monkeypatch.setattr(server, "_next_port", {})
    first = 20000 + 5 * server.WORKER_PORTS
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", first))
        listener.listen()
        assert server.free_port() == first + 1


def test_outside_xdist_the_kernel_picks_the_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    low, _ = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    assert server.free_port() >= low
