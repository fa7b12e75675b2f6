"""Schemathesis against the server's own /openapi.json: no 5xx, and every reply's status, content
type, headers and body as documented. The short version of `bench/fuzz_api.py` (same driver,
hooks and checks, far fewer examples), so a regression of the server or the document shows here.

The seed is fixed (set VOXMETER_FUZZ_SEED to explore others); a failure names the seed, and the
schemathesis output in the message has a curl line reproducing each failing request.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.e2e.harness import VoxServer

MAX_EXAMPLES = 100
SEED = int(os.environ.get("VOXMETER_FUZZ_SEED", "20261122"))
OPERATIONS = (
    "GET /api/v2/billing.php",
    "GET /api/v2/information.php",
    "GET /api/v2/forecast",
    "GET /api/v2/statement",
    "POST /api/v2/events",
    "GET /api/v2/events",
    "DELETE /api/v2/events/{event_id}",
    "GET /api/v2/audit",
    "GET /api/v2/alerts",
)


def _driver() -> ModuleType:
    try:
        import schemathesis  # noqa: F401
    except ImportError as exc:  # a dev dependency: missing only in a stale environment
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs schemathesis (pip install -e '.[dev]'): {exc}")
        pytest.skip(f"schemathesis is not installed: {exc}")
    return importlib.import_module("bench.fuzz_api")


def test_generated_requests_get_documented_replies(make_server: Any, tmp_path: Path) -> None:
    fuzz = _driver()
    srv: VoxServer = make_server("--grace-days", str(fuzz.GRACE_DAYS))
    tenant = srv.tenant(licenses=1000)

    def close_month(month: str) -> None:
        srv.cli("month", "close", "--operation", tenant.name, "--month", month)

    fuzz.seed(srv.base, tenant.token, close_month)
    result = fuzz.fuzz(
        srv.base,
        tenant.token,
        max_examples=MAX_EXAMPLES,
        seconds=240,
        seed_value=SEED,
        phases="coverage,fuzzing",
        report_dir=tmp_path / "schemathesis",
    )
    summary = f"seed {result.seed}\n{result.table()}\n" + "\n".join(result.failures)
    assert result.complete, f"schemathesis did not finish in time\n{summary}"
    assert not result.failures, f"{summary}\n\n{result.output[-20000:]}"
    assert result.exit_code == 0, f"{summary}\n\n{result.output[-20000:]}"
    for op in OPERATIONS:
        assert result.cases[op] >= MAX_EXAMPLES, summary
        assert 500 not in result.statuses.get(op, {}), summary
    # the hooks reach the success paths, not only the refusals
    for op in OPERATIONS:
        assert result.statuses[op][200] > 0, summary


def test_operations_without_input_get_documented_replies(make_server: Any) -> None:
    """/healthz, /metrics and /openapi.json take no parameters, so schemathesis has only a few
    distinct requests for them: fuzz_probe.py sends each generated query strings and headers."""
    _driver()  # skips or fails like the test above when the dev dependencies are missing
    probe = importlib.import_module("bench.fuzz_probe")
    srv: VoxServer = make_server()
    doc = httpx.get(srv.base + "/openapi.json").json()
    operations = probe.inputless_operations(doc)
    assert {"GET /healthz", "GET /metrics", "GET /openapi.json"} <= {
        f"{m} {p}" for m, p in operations
    }
    cases, statuses, failures = probe.probe("127.0.0.1", srv.port, doc, MAX_EXAMPLES, seed=SEED)
    assert failures == []
    for method, path in operations:
        assert cases[f"{method} {path}"] == MAX_EXAMPLES
        assert set(statuses[f"{method} {path}"]) == {200}
