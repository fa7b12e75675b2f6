"""The README's Python client snippet runs as pasted, against the demo the README starts.

The snippet is read from README.md, so an edit that breaks it fails here. Only the demo's port
is changed (the README's demo listens on 8080, which a test cannot rely on being free).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.harness import free_port

README = Path(__file__).resolve().parents[2] / "README.md"
README_URL = "http://127.0.0.1:8080"


def python_snippet() -> str:
    """The first ```python block of the README's "Python client" section."""
    text = README.read_text("utf-8")
    section = text[text.index("### Python client") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "no python block under 'Python client'"
    return match[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """`voxmeter demo` as the quick start runs it: (base URL, the token it printed)."""
    folder = tmp_path_factory.mktemp("readme-demo")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "VOXMETER_DATABASE_URL"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "voxmeter", "demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**env, "TMPDIR": str(folder)},
        cwd=folder,
    )
    try:
        assert proc.stdout is not None
        token = None
        deadline = time.monotonic() + 60
        while token is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "the demo exited before printing its token"
            found = re.search(r"wolkvox-token: (vxm_[A-Za-z0-9_-]+)", line)
            token = found[1] if found else None
        assert token is not None
        base = f"http://127.0.0.1:{port}"
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        yield base, token
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_snippet(snippet: str, token: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", snippet],
        capture_output=True,
        text=True,
        env={**os.environ, "VOXMETER_TOKEN": token},
        cwd=cwd,
        timeout=60,
        check=False,
    )


def test_the_python_client_snippet_runs_as_pasted(demo: tuple[str, str], tmp_path: Path) -> None:
    base, token = demo
    snippet = python_snippet()
    assert snippet.count(README_URL) == 1, snippet
    snippet = snippet.replace(README_URL, base)

    first = run_snippet(snippet, token, tmp_path)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == "accepted: 1, duplicates: 0", first.stdout
    assert "'ivr_minutes': Decimal(" in lines[1], first.stdout
    assert lines[1].count("Decimal(") == 27, first.stdout

    # Run again, as a user would: the same id is a duplicate, nothing is counted twice.
    again = run_snippet(snippet, token, tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0] == "accepted: 0, duplicates: 1", again.stdout
    assert again.stdout.splitlines()[1] == lines[1]
