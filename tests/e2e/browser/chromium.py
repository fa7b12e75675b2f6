"""Debian's Chromium under Playwright (Playwright's own browser download is not used), and the
folder where browser tests leave screenshots and PDFs. Where Chromium or Playwright is missing
the tests skip with the reason printed; with CI=true they fail instead, so CI never passes by
skipping."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("VOXMETER_CHROMIUM", "/usr/bin/chromium"))
AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
ROOT = Path(__file__).resolve().parents[3]


def require(what: Path | None = None) -> None:
    """Skip (fail under CI) unless Playwright, Chromium and, if asked, `what` are there."""
    missing = []
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright Python package (pip install -e '.[dev]')")
    if not CHROMIUM.exists():
        missing.append(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    if what is not None and not what.exists():
        missing.append(f"{what} (npm ci in tests/e2e/browser)")
    if not missing:
        return
    reason = "browser tests need " + " and ".join(missing)
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI: {reason}")
    print(reason)
    pytest.skip(reason)


def artefacts() -> Path:
    """Where screenshots and PDFs go: VOXMETER_TEST_ARTEFACTS, else test-artefacts/."""
    folder = Path(os.environ.get("VOXMETER_TEST_ARTEFACTS") or ROOT / "test-artefacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
