"""The two phases of the test command (scripts/dev.sh test).

Most tests are independent of one another (fresh SQLite files, PostgreSQL schemas, Redis key
prefixes, temporary folders and, per pytest-xdist worker, their own range of ports), so they run
in parallel workers. Tests that assert a latency, a time bound or a memory figure are marked
`serial`: sharing the CPU with other tests would make them measure their neighbours, so they run
afterwards, one at a time. `--phase` picks one of the two sets; without it, pytest runs both.
"""

from __future__ import annotations

import pytest

PHASES = ("all", "parallel", "serial")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--phase",
        choices=PHASES,
        default="all",
        help="parallel: only tests not marked serial; serial: only those (default: all)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "serial: asserts a latency, time bound or memory figure; run alone (scripts/dev.sh test "
        "runs these after the parallel phase)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    phase = config.getoption("phase")
    if phase == "all":
        return
    want_serial = phase == "serial"
    keep, drop = [], []
    for item in items:
        is_serial = item.get_closest_marker("serial") is not None
        (keep if is_serial == want_serial else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
