"""`voxmeter usage` as a user runs it, against a real server."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime

from tests.e2e.harness import Tenant, VoxServer


def _usage(server: VoxServer, tenant_token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VOXTOK": tenant_token}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "voxmeter",
            "usage",
            "--server",
            "9901",
            "--base-url",
            server.base,
            "--token-env",
            "VOXTOK",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def _tenant_with_usage(server: VoxServer) -> Tenant:
    tenant = server.tenant()
    now = datetime.now(UTC).isoformat()
    events = [
        {"id": "u1", "product": "ivr_minutes", "time": now, "quantity": "2.01"},
        {"id": "u2", "product": "ivr_minutes", "time": now, "quantity": "0.5"},
        {"id": "u3", "product": "tts_chars", "time": now, "quantity": "1234.5"},
    ]
    assert server.post_events(tenant.token, events).status_code == 200
    return tenant


def test_one_product_as_json(server: VoxServer) -> None:
    tenant = _tenant_with_usage(server)
    result = _usage(server, tenant.token, "--api", "ivr_minutes", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows == [
        {
            "api": "ivr_minutes",
            "description": "IVR minutes",
            "items": "4",
            "unit": "minutes",
            "operation": tenant.name,
            "date": datetime.now(UTC).date().isoformat(),
        }
    ]
    assert tenant.token not in result.stdout + result.stderr


def test_all_products_as_csv_and_table(server: VoxServer) -> None:
    tenant = _tenant_with_usage(server)
    result = _usage(server, tenant.token, "--all", "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 27
    figures = {r["api"]: r["items"] for r in rows}
    assert figures["ivr_minutes"] == "4"
    assert figures["tts_chars"] == "1234.5"
    assert figures["vision"] == "0"
    table = _usage(server, tenant.token)
    assert table.returncode == 0, table.stderr
    assert "TTS characters" in table.stdout
    assert "1234.5" in table.stdout


def test_errors_are_one_line_with_a_non_zero_exit(server: VoxServer) -> None:
    bad_token = "vxm_" + "x" * 43
    cases = [
        (_usage(server, bad_token, "--api", "ivr_minutes"), "InvalidTokenError"),
        (_usage(server, server.tenant().token, "--api", "nope"), "UnknownApiError"),
        (_usage(server, server.tenant().token, "--month", "2026-13"), "month"),
        (_usage(server, "", "--api", "ivr_minutes"), "VOXTOK"),
    ]
    for result, expected in cases:
        assert result.returncode != 0, result.stdout
        assert expected in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert bad_token not in cases[0][0].stderr
