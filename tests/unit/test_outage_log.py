"""Background tasks report an outage once per interval, and anything else in full each time."""

from __future__ import annotations

import logging

import anyio
import pytest

from voxmeter.entrypoints.http.app import _OutageLog
from voxmeter.errors import Unavailable


def test_an_outage_is_one_line_per_interval_and_other_failures_are_logged_in_full(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fail_repeatedly() -> None:
        outage = _OutageLog("persist request counters")
        for _ in range(5):
            outage.failed(Unavailable("THE DATABASE IS UNAVAILABLE"))
        outage.failed(RuntimeError("boom"))
        outage.failed(RuntimeError("boom"))

    with caplog.at_level(logging.WARNING, logger="voxmeter.http"):
        anyio.run(fail_repeatedly)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in warnings] == [
        "could not persist request counters: THE DATABASE IS UNAVAILABLE; will retry"
    ]
    assert all(r.exc_info is None for r in warnings)
    assert len(errors) == 2
    assert all(r.exc_info is not None for r in errors)
