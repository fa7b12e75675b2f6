"""The dependency audit's verdict (scripts/audit_report.py, run by .ci/run): a vulnerability
fails, a package nobody could ask about is NOT AUDITED, never a pass."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "audit_report.py"
_spec = importlib.util.spec_from_file_location("audit_report", _SCRIPT)
assert _spec is not None
assert _spec.loader is not None
audit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(audit)

SKIPPED = "Dependency not found on PyPI and could not be audited: x (1.0)"


def _report(tmp_path: Path, *deps: dict[str, Any]) -> tuple[str, str]:
    """pip-audit's JSON (a skipped package has no version there) and the lock it read."""
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        "# comment\n" + "".join(f"{d['name'].upper()}=={d['version']}\n" for d in deps),
        encoding="utf-8",
    )
    reported = [
        {k: v for k, v in d.items() if k != "version" or "skip_reason" not in d} for d in deps
    ]
    path = tmp_path / "audit.json"
    path.write_text(json.dumps({"dependencies": reported}), encoding="utf-8")
    return str(path), str(lock)


def _page(version: str, *vulns: dict[str, Any]) -> dict[str, Any]:
    return {"info": {"version": version}, "vulnerabilities": list(vulns)}


def _no_network(name: str) -> dict[str, Any] | None:
    raise AssertionError(f"no page should be asked for {name}")


def test_a_vulnerability_pip_audit_found_fails(tmp_path: Path, capsys: Any) -> None:
    path = _report(
        tmp_path,
        {"name": "a", "version": "1.0", "vulns": [{"id": "PYSEC-1", "fix_versions": ["1.1"]}]},
        {"name": "b", "version": "2.0", "vulns": []},
    )
    assert audit.main(*path, _no_network) == 1
    out = capsys.readouterr().out
    assert "a 1.0: PYSEC-1 (fixed in 1.1)" in out
    assert "2 of 2 locked packages audited, 1 vulnerable" in out


def test_a_current_release_is_audited_from_the_project_page(tmp_path: Path, capsys: Any) -> None:
    pages = {
        "clean": _page("1.0"),
        "bad": _page("3.0", {"id": "GHSA-x", "fixed_in": ["3.1"], "withdrawn": None}),
        "retracted": _page("2.0", {"id": "PYSEC-9", "fixed_in": [], "withdrawn": "2025-01-01"}),
    }
    path = _report(
        tmp_path,
        {"name": "clean", "version": "1.0", "skip_reason": SKIPPED},
        {"name": "bad", "version": "3.0", "skip_reason": SKIPPED},
        {"name": "retracted", "version": "2.0", "skip_reason": SKIPPED},
    )
    assert audit.main(*path, pages.get) == 1
    out = capsys.readouterr().out
    assert "bad 3.0: GHSA-x (fixed in 3.1)" in out
    assert "PYSEC-9" not in out  # withdrawn advisories are not vulnerabilities
    assert "3 locked packages audited from PyPI's project page" in out
    assert "3 of 3 locked packages audited, 1 vulnerable" in out


@pytest.mark.parametrize("page", [None, _page("1.1"), {"info": {"version": "1.0"}}])
def test_an_older_release_or_no_answer_is_not_audited(
    tmp_path: Path, capsys: Any, page: dict[str, Any] | None
) -> None:
    path = _report(tmp_path, {"name": "old", "version": "1.0", "skip_reason": SKIPPED})
    assert audit.main(*path, lambda name: page) == 0
    out = capsys.readouterr().out
    assert "NOT AUDITED: 1 of 1 locked packages" in out
    assert "old 1.0" in out
    assert "0 of 1 locked packages audited, 0 vulnerable" in out


def test_no_report_fails(tmp_path: Path, capsys: Any) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("a==1.0\n", encoding="utf-8")
    assert audit.main(str(tmp_path / "missing.json"), str(lock), _no_network) == 1
    assert "produced no report" in capsys.readouterr().out
