"""The command line (README, Command line) as a user runs it: separate processes, exit codes,
output."""

from __future__ import annotations

import csv
import json
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests.e2e.harness import (
    Tenant,
    VoxServer,
    all_events,
    figure_of,
    free_port,
    local_stamp,
    times_this_month,
)

Event = dict[str, object]


def _name() -> str:
    return f"cli-{uuid.uuid4().hex[:8]}"


def _now() -> str:
    return (datetime.now(UTC) - timedelta(seconds=2)).isoformat()


def _failed(result: subprocess.CompletedProcess[str], one_line: bool = True) -> str:
    """A CLI error as a user should see it: non-zero exit, a message, never a traceback."""
    assert result.returncode != 0, (result.stdout, result.stderr)
    err = result.stderr.strip()
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert err, "an error must say something on stderr"
    if one_line:
        # One message line; a file's per-event problems follow it, one indented line each.
        first, *problems = err.splitlines()
        assert "error" in first.lower(), err
        assert all(re.fullmatch(r"  line \d+: .+", line) for line in problems), err
    return err


def _listed(srv: VoxServer, tenant: Tenant, **params: object) -> list[Event]:
    now = datetime.now(UTC)
    return all_events(
        srv,
        tenant.token,
        local_stamp(now - timedelta(days=30), "UTC"),
        local_stamp(now + timedelta(hours=1), "UTC"),
        **params,
    )


def _table_rows(out: str) -> list[list[str]]:
    """The body rows of a rich table as lists of stripped cells."""
    rows = []
    for line in out.splitlines():
        if line.startswith("│"):
            rows.append([cell.strip() for cell in line.strip("│").split("│")])
    return rows


def _write_ndjson(path: Path, events: list[Event], blank_every: int = 0) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for n, event in enumerate(events, 1):
            handle.write(json.dumps(event, ensure_ascii=False) + "\n")
            if blank_every and n % blank_every == 0:
                handle.write("\n")
    return path


def _write_csv(path: Path, events: list[Event]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "product", "time", "quantity", "subject"])
        for e in events:
            writer.writerow(
                [e["id"], e["product"], e["time"], e.get("quantity", ""), e.get("subject", "")]
            )
    return path


# -- operations ------------------------------------------------------------------------------


def test_operation_create_list_and_duplicate_names(server: VoxServer) -> None:
    name = _name()
    created = server.cli(
        "operation", "create", name, "--server", "9901", "--timezone", "America/Bogota"
    )
    assert name in created.stdout
    assert created.stderr == ""

    duplicate = server.cli("operation", "create", name, "--server", "9901", check=False)
    assert name in _failed(duplicate)

    # The same name on another server is another operation.
    server.cli("operation", "create", name, "--server", "9902", "--licenses", "3")
    rows = [row for row in _table_rows(server.cli("operation", "list").stdout) if name in row]
    assert sorted((row[0], row[1]) for row in rows) == [("9901", name), ("9902", name)]
    assert {row[0]: row[3] for row in rows} == {"9901": "1", "9902": "3"}

    # A bare name is now ambiguous; --server picks one.
    ambiguous = server.cli(
        "token", "create", "--operation", name, "--description", "x", check=False
    )
    assert "--server" in _failed(ambiguous)
    on_9902 = server.token_for(name, server="9902")
    on_9901 = server.token_for(name, server="9901")
    for tenant, code in ((on_9902, "9902"), (on_9901, "9901")):
        reply = server.billing(tenant.token, "ivr_minutes", headers={"wolkvox_server": code})
        assert reply.status_code == 200, reply.text
        assert reply.json()["data"][0]["operation"] == name
    wrong = server.billing(on_9902.token, "ivr_minutes", headers={"wolkvox_server": "9901"})
    assert wrong.status_code == 403, wrong.text
    # Each operation is its own tenant: usage on one does not show on the other.
    event = {"id": "one", "product": "vision", "time": _now()}
    assert server.post_events(on_9902.token, [event]).status_code == 200
    assert server.items(on_9902.token, "vision") == "1"
    assert server.items(on_9901.token, "vision") == "0"


def test_operation_list_prints_every_value_in_full(server: VoxServer) -> None:
    """`operation list` is read by scripts too: no value may be cut, whatever the width."""
    name = f"{_name()}-contact-center-bogota"
    server.cli(
        "operation",
        "create",
        name,
        "--server",
        "0042",
        "--timezone",
        "America/Argentina/Buenos_Aires",
        "--licenses",
        "12",
    )
    out = server.cli("operation", "list").stdout
    rows = [row for row in _table_rows(out) if "0042" in row]
    assert rows, out
    assert rows[0][:5] == ["0042", name, "America/Argentina/Buenos_Aires", "12", "12000"], out


# -- tokens ----------------------------------------------------------------------------------


def test_token_create_list_uses_and_revoke(server: VoxServer) -> None:
    name = _name()
    server.cli("operation", "create", name, "--server", "9901")
    created = server.cli(
        "token", "create", "--operation", name, "--description", "nightly export ✓"
    ).stdout
    lines = created.strip().splitlines()
    secret = lines[-1].strip()
    token_id = re.search(r"\btok_[0-9a-f]+\b", created)
    assert token_id is not None, created
    token_id_text = token_id[0]
    assert secret not in "\n".join(lines[:-1])
    assert " " not in secret
    assert len(secret) >= 32

    reader = server.cli(
        "token",
        "create",
        "--operation",
        name,
        "--description",
        "read only",
        "--scope",
        "billing:read",
    ).stdout
    reader_secret = reader.strip().splitlines()[-1]

    for _ in range(3):
        assert server.billing(secret, "interactions").status_code == 200
    assert server.billing(reader_secret, "interactions").status_code == 200

    def uses() -> dict[str, list[str]]:
        out = server.cli("token", "list", "--operation", name).stdout
        assert secret not in out
        assert reader_secret not in out
        header = next(
            [c.strip() for c in line.replace("┃", "│").strip("│").split("│")]
            for line in out.splitlines()
            if "uses today" in line
        )
        return {
            row[0]: [row[header.index(col)] for col in ("uses today", "status", "scopes")]
            + [row[header.index("description")], row[header.index("last used")]]
            for row in _table_rows(out)
        }

    def counts(listed: dict[str, list[str]]) -> list[str]:
        return sorted(row[0] for row in listed.values())

    def saved(listed: dict[str, list[str]]) -> bool:
        return counts(listed) == ["1", "3"] and listed.get(token_id_text, ["-"] * 5)[4] != "-"

    # Counts and last use are saved about once a second: wait until both tokens' are in.
    deadline = time.monotonic() + 5
    listed = uses()
    while not saved(listed) and time.monotonic() < deadline:
        time.sleep(0.2)
        listed = uses()
    assert len(listed) == 2
    assert listed[token_id_text][:4] == [
        "3",
        "active",
        "billing:read usage:write",
        "nightly export ✓",
    ]
    assert listed[token_id_text][4] != "-"  # last used
    reader_row = next(row for key, row in listed.items() if key != token_id_text)
    assert reader_row[:3] == ["1", "active", "billing:read"]

    revoked = server.cli("token", "revoke", token_id_text)
    assert token_id_text in revoked.stdout
    deadline = time.monotonic() + 5
    reply = server.billing(secret, "interactions")
    while reply.status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
        reply = server.billing(secret, "interactions")
    assert reply.status_code == 403, reply.text
    assert reply.json()["msg"] == "PLEASE VALIDATE TOKEN"
    assert server.billing(reader_secret, "interactions").status_code == 200
    assert uses()[token_id_text][1] == "revoked"

    _failed(server.cli("token", "revoke", token_id_text, check=False))
    assert "tok_doesnotexist" in _failed(
        server.cli("token", "revoke", "tok_doesnotexist", check=False)
    )


# -- ingest files ----------------------------------------------------------------------------


def _mixed_events(rng: random.Random, prefix: str, count: int) -> list[Event]:
    products = ["ivr_minutes", "rsync", "interactions", "pbx_licenses", "tts_chars"]
    events: list[Event] = []
    for i, moment in enumerate(times_this_month(rng, count)):
        product = products[i % len(products)]
        event: Event = {"id": f"{prefix}-{i}", "product": product, "time": moment}
        if product == "ivr_minutes":
            event["quantity"] = f"{rng.randint(0, 20)}.{rng.randint(0, 999_999):06d}"
        elif product == "rsync":
            event["quantity"] = f"{rng.randint(0, 3)}.{rng.randint(0, 99):02d}"
        elif product == "pbx_licenses":
            event["quantity"] = str(rng.randint(1, 80))
        elif product == "tts_chars":
            event["quantity"] = str(rng.randint(1, 9000))
        elif rng.random() < 0.5:
            event["quantity"] = str(rng.randint(1, 4))
        if rng.random() < 0.3:
            event["subject"] = f'agent, {rng.randint(1, 9)} "quoted"'
        events.append(event)
    return events


def test_ingest_ndjson_and_csv_files(server: VoxServer, tmp_path: Path) -> None:
    tenant = server.tenant()
    rng = random.Random(8)
    from_ndjson = _mixed_events(rng, "nd", 400)
    from_csv = _mixed_events(rng, "csv", 300)
    nd = _write_ndjson(tmp_path / "usage.ndjson", from_ndjson, blank_every=37)
    sheet = _write_csv(tmp_path / "usage.csv", from_csv)

    result = server.cli("ingest", str(nd), str(sheet), "--operation", tenant.name)
    assert "700 events accepted, 0 duplicates" in result.stdout
    events = from_ndjson + from_csv
    for product in ("ivr_minutes", "rsync", "interactions", "pbx_licenses", "tts_chars"):
        assert server.items(tenant.token, product) == figure_of(events, product), product
    listed = {str(e["id"]): e for e in _listed(server, tenant)}
    assert set(listed) == {str(e["id"]) for e in events}
    sample = from_csv[7]
    assert listed[str(sample["id"])]["subject"] == sample.get("subject")

    # Re-running is safe: every event is a duplicate.
    again = server.cli("ingest", str(sheet), "--operation", tenant.name)
    assert "0 events accepted, 300 duplicates" in again.stdout
    for product in ("ivr_minutes", "interactions", "pbx_licenses"):
        assert server.items(tenant.token, product) == figure_of(events, product), product


def test_ingest_a_file_with_one_bad_line_stores_nothing(server: VoxServer, tmp_path: Path) -> None:
    tenant = server.tenant()
    rng = random.Random(41)

    def check_nothing_stored() -> None:
        assert _listed(server, tenant) == []
        for product in ("ivr_minutes", "rsync", "interactions", "pbx_licenses", "tts_chars"):
            assert server.items(tenant.token, product) == "0"

    # NDJSON, a blank line after every 10th event: line numbers are the file's.
    events = _mixed_events(rng, "bad-nd", 60)
    events[44] = dict(events[44], product="not_a_product")
    path = _write_ndjson(tmp_path / "bad.ndjson", events, blank_every=10)
    # Event 45 (1-based) is on line 45 + 4 blank lines before it = 49.
    assert json.loads(path.read_text().splitlines()[48])["product"] == "not_a_product"
    err = _failed(
        server.cli("ingest", str(path), "--operation", tenant.name, check=False), one_line=False
    )
    assert re.search(r"\bline 49\b", err), err
    assert "not_a_product" in err
    check_nothing_stored()

    # A line that is not JSON at all.
    lines = path.read_text().splitlines()
    lines[48] = "{this is not json"
    broken = tmp_path / "broken.ndjson"
    broken.write_text("\n".join(lines) + "\n")
    err = _failed(
        server.cli("ingest", str(broken), "--operation", tenant.name, check=False), one_line=False
    )
    assert re.search(r"\bline 49\b", err), err
    check_nothing_stored()

    # CSV: the header is line 1, so the 30th event is on line 31.
    events = _mixed_events(rng, "bad-csv", 50)
    events[29] = dict(events[29], product="pbx_licenses", quantity="")
    events[29].pop("quantity")
    sheet = _write_csv(tmp_path / "bad.csv", events)
    err = _failed(
        server.cli("ingest", str(sheet), "--operation", tenant.name, check=False), one_line=False
    )
    assert re.search(r"\bline 31\b", err), err
    check_nothing_stored()

    # Several files: a bad one stores nothing from any of them.
    good = _write_ndjson(tmp_path / "good.ndjson", _mixed_events(rng, "good", 20))
    err = _failed(
        server.cli("ingest", str(good), str(path), "--operation", tenant.name, check=False),
        one_line=False,
    )
    assert re.search(r"\bline 49\b", err), err
    check_nothing_stored()


def test_ingest_a_bad_line_after_the_first_10000_stores_nothing(
    server: VoxServer, tmp_path: Path
) -> None:
    tenant = server.tenant()
    rng = random.Random(12)
    events: list[Event] = [
        {"id": f"long-{i}", "product": "ivr_calls", "time": t}
        for i, t in enumerate(times_this_month(rng, 12_000))
    ]
    events[11_500] = dict(events[11_500], quantity="1.5")  # a fraction for a count product
    path = _write_ndjson(tmp_path / "long.ndjson", events)
    err = _failed(
        server.cli("ingest", str(path), "--operation", tenant.name, check=False), one_line=False
    )
    assert re.search(r"\bline 11501\b", err), err
    assert server.items(tenant.token, "ivr_calls") == "0"
    assert _listed(server, tenant) == []


def test_ingest_a_line_in_a_closed_month_stores_nothing(server: VoxServer, tmp_path: Path) -> None:
    """With the default grace, a month two months back is closed: the file is refused as a
    whole and the message names the line (same rules as the HTTP ingest, nothing from the file
    stored)."""
    tenant = server.tenant()
    rng = random.Random(13)
    start = datetime.now(UTC).replace(day=1, hour=12, minute=0, second=0, microsecond=0)
    two_ago = (start - timedelta(days=40)).replace(day=3)
    events: list[Event] = [
        {"id": f"cl-{i}", "product": "ivr_calls", "time": t}
        for i, t in enumerate(times_this_month(rng, 10_001))
    ]
    events[10_000] = dict(events[10_000], time=two_ago.isoformat())
    path = _write_ndjson(tmp_path / "closed.ndjson", events)
    err = _failed(
        server.cli("ingest", str(path), "--operation", tenant.name, check=False), one_line=False
    )
    stored = len(_listed(server, tenant))
    figure = server.items(tenant.token, "ivr_calls")
    problems = []
    if stored or figure != "0":
        problems.append(f"{stored} events were stored (figure {figure}) from a refused file")
    if f"{two_ago:%Y-%m}" not in err or not re.search(r"\bline 10001\b", err):
        problems.append(f"the message does not name line 10001 and the month: {err!r}")
    assert not problems, problems


def test_ingest_25000_lines(server: VoxServer, tmp_path: Path) -> None:
    tenant = server.tenant()
    rng = random.Random(25)
    times = times_this_month(rng, 25_000)
    events: list[Event] = []
    for i, moment in enumerate(times):
        if i % 5 == 0:
            events.append(
                {
                    "id": f"big-{i}",
                    "product": "rsync",
                    "time": moment,
                    "quantity": f"0.{rng.randint(0, 999_999):06d}",
                }
            )
        else:
            events.append(
                {"id": f"big-{i}", "product": "ivr_calls", "time": moment, "quantity": i % 3 + 1}
            )
    path = _write_ndjson(tmp_path / "big.ndjson", events)
    result = server.cli("ingest", str(path), "--operation", tenant.name)
    assert re.search(r"\b25,?000 events accepted, 0 duplicates", result.stdout), result.stdout
    assert server.items(tenant.token, "ivr_calls") == figure_of(events, "ivr_calls")
    assert server.items(tenant.token, "rsync") == figure_of(events, "rsync")
    assert len(_listed(server, tenant)) == 25_000


# -- demo ------------------------------------------------------------------------------------


def test_demo_prints_a_working_curl_line_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    env.pop("VOXMETER_DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "voxmeter", "demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        printed: list[str] = []
        deadline = time.monotonic() + 60
        curl_lines: list[str] = []
        while time.monotonic() < deadline and len(curl_lines) < 2:
            line = proc.stdout.readline()
            if not line:
                break
            printed.append(line)
            if line.strip().startswith("curl "):
                curl_lines.append(line.strip())
        assert len(curl_lines) == 2, "".join(printed)
        assert str(port) in curl_lines[0]

        def run(line: str) -> dict:  # type: ignore[type-arg]
            argv = shlex.split(line)
            for _ in range(50):  # the server may take a moment to listen after the banner
                done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
                if done.returncode == 0 and done.stdout:
                    return json.loads(done.stdout)  # type: ignore[no-any-return]
                time.sleep(0.2)
            raise AssertionError(f"{line!r} failed: {done.returncode} {done.stderr}")

        one = run(curl_lines[0])
        assert one["code"] == 200, one
        assert one["error"] is None
        assert one["msg"] == "Information found for the current month"
        [row] = one["data"]
        assert row["operation"] == "demo"
        assert row["description"] == "IVR minutes"
        assert int(row["items"]) > 0
        every = run(curl_lines[1])
        assert every["code"] == 200, every
        assert len(every["data"]) == 27
        assert all(r["operation"] == "demo" for r in every["data"])

        # The token printed works with our own HTTP client too.
        token = re.search(r"wolkvox-token: (\S+?)'", curl_lines[0])
        assert token is not None
        direct = requests.get(
            f"http://127.0.0.1:{port}/api/v2/billing.php",
            params={"api": "pbx_licenses"},
            headers={"wolkvox-token": token[1]},
            timeout=10,
        )
        assert direct.status_code == 200, direct.text

        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        # A requested stop: graceful shutdown, exit status 0, no traceback.
        assert proc.returncode == 0, (proc.returncode, out, err)
        assert "Application shutdown complete" in err, err
        assert "Traceback" not in out + err
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- errors ----------------------------------------------------------------------------------


def _run(args: list[str], cwd: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "VOXMETER_DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "-m", "voxmeter", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


ERROR_CASES: dict[str, Callable[[str, Path], list[str]]] = {
    "server-not-4-digits": lambda op, d: ["operation", "create", "x1", "--server", "99"],
    "server-letters": lambda op, d: ["operation", "create", "x2", "--server", "ab12"],
    "unknown-timezone": lambda op, d: [
        "operation", "create", "x3", "--server", "9901", "--timezone", "Mars/Olympus",
    ],
    "zero-licenses": lambda op, d: [
        "operation", "create", "x4", "--server", "9901", "--licenses", "0",
    ],
    "empty-name": lambda op, d: ["operation", "create", "", "--server", "9901"],
    "65-char-name": lambda op, d: ["operation", "create", "n" * 65, "--server", "9901"],
    "token-unknown-operation": lambda op, d: [
        "token", "create", "--operation", "nope-nope", "--description", "d",
    ],
    "token-blank-description": lambda op, d: [
        "token", "create", "--operation", op, "--description", "   ",
    ],
    "token-list-unknown-operation": lambda op, d: ["token", "list", "--operation", "nope-nope"],
    "revoke-unknown": lambda op, d: ["token", "revoke", "tok_000000000000"],
    "month-close-bad-month": lambda op, d: [
        "month", "close", "--operation", op, "--month", "2020-1",
    ],
    "ingest-unknown-operation": lambda op, d: [
        "ingest", str(d / "ok.ndjson"), "--operation", "nope-nope",
    ],
    "ingest-unknown-csv-column": lambda op, d: [
        "ingest", str(d / "extra.csv"), "--operation", op,
    ],
    "ingest-latin1-csv": lambda op, d: ["ingest", str(d / "latin1.csv"), "--operation", op],
    "ingest-non-utf8-ndjson": lambda op, d: [
        "ingest", str(d / "latin1.ndjson"), "--operation", op,
    ],
    "serve-two-workers": lambda op, d: ["serve", "--workers", "2", "--port", str(free_port())],
    "serve-negative-grace": lambda op, d: [
        "serve", "--grace-days", "-1", "--port", str(free_port()),
    ],
}  # fmt: skip

USAGE_ERRORS: dict[str, Callable[[str, Path], list[str]]] = {
    "unknown-command": lambda op, d: ["frobnicate"],
    "unknown-scope": lambda op, d: [
        "token", "create", "--operation", op, "--description", "d", "--scope", "admin",
    ],
    "ingest-missing-file": lambda op, d: [
        "ingest", str(d / "missing.ndjson"), "--operation", op,
    ],
    "ingest-no-operation": lambda op, d: ["ingest", str(d / "ok.ndjson")],
    "licenses-not-a-number": lambda op, d: [
        "operation", "create", "x5", "--server", "9901", "--licenses", "many",
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def error_setup(server: VoxServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    folder = tmp_path_factory.mktemp("cli-errors")
    name = _name()
    server.cli("operation", "create", name, "--server", "9901")
    ok = {"id": "ok", "product": "vision", "time": _now()}
    _write_ndjson(folder / "ok.ndjson", [ok])
    (folder / "extra.csv").write_text(f"id,product,time,quantity,colour\na,vision,{_now()},,red\n")
    (folder / "latin1.csv").write_bytes(
        f"id,product,time\nca\u00f1a,vision,{_now()}\n".encode("latin-1")
    )
    (folder / "latin1.ndjson").write_bytes(
        json.dumps(
            {"id": "ca\u00f1a", "product": "vision", "time": _now()}, ensure_ascii=False
        ).encode("latin-1")
    )
    return name, folder


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_cli_errors_are_one_line_without_traceback(
    server: VoxServer, error_setup: tuple[str, Path], case: str
) -> None:
    name, folder = error_setup
    _failed(server.cli(*ERROR_CASES[case](name, folder), check=False))


def test_failed_creates_left_nothing_behind(server: VoxServer) -> None:
    names = {row[1] for row in _table_rows(server.cli("operation", "list").stdout)}
    assert not names & {"x1", "x2", "x3", "x4", "x5"}, names
    assert not any(n.startswith("nnnnnnnn") for n in names), names


@pytest.mark.parametrize("case", sorted(USAGE_ERRORS))
def test_cli_usage_errors_without_traceback(
    server: VoxServer, error_setup: tuple[str, Path], case: str
) -> None:
    name, folder = error_setup
    err = _failed(server.cli(*USAGE_ERRORS[case](name, folder), check=False), one_line=False)
    assert "error" in err.lower()


def test_bad_database_urls_fail_cleanly(tmp_path: Path) -> None:
    (tmp_path / "a-directory.db").mkdir()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for db in (
        "postgres://nowhere/x",
        "mysql://nowhere/x",
        f"sqlite:///{tmp_path / 'a-directory.db'}",
        f"sqlite:///{blocker / 'below-a-file.db'}",
    ):
        for args in (["operation", "list"], ["token", "list"]):
            _failed(_run([*args, "--db", db], tmp_path))
    # A file that is not a database.
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    _failed(_run(["operation", "list", "--db", f"sqlite:///{junk}"], tmp_path))


#: Every command that reads or changes an existing database (all but serve, demo and migrate).
NEEDS_A_DATABASE: dict[str, list[str]] = {
    "operation-create": ["operation", "create", "acme", "--server", "9901"],
    "operation-list": ["operation", "list"],
    "token-create": ["token", "create", "--operation", "acme", "--description", "d"],
    "token-list": ["token", "list", "--operation", "acme"],
    "token-revoke": ["token", "revoke", "tok_000000000000"],
    "month-close": ["month", "close", "--operation", "acme", "--month", "2020-01"],
    "maintenance": ["maintenance", "on"],
    "ingest": ["ingest", "events.ndjson", "--operation", "acme"],
    "audit": ["audit", "--operation", "acme"],
}


@pytest.mark.parametrize("case", sorted(NEEDS_A_DATABASE))
def test_a_missing_sqlite_file_is_refused_and_not_created(tmp_path: Path, case: str) -> None:
    """Run where there is no database (the default ./voxmeter.db, or a --db naming a missing
    file): a one-line error naming the file, a non-zero exit, and no file created."""
    (tmp_path / "events.ndjson").write_text(json.dumps({"id": "a", "product": "vision"}) + "\n")
    before = sorted(tmp_path.iterdir())
    err = _failed(_run(NEEDS_A_DATABASE[case], tmp_path))
    assert str(tmp_path / "voxmeter.db") in err, err
    elsewhere = tmp_path / "nowhere" / "billing.db"
    err = _failed(_run([*NEEDS_A_DATABASE[case], "--db", f"sqlite:///{elsewhere}"], tmp_path))
    assert str(elsewhere) in err, err
    assert "voxmeter migrate" in err, err
    assert sorted(tmp_path.iterdir()) == before


def test_migrate_creates_the_database_the_other_commands_then_use(tmp_path: Path) -> None:
    created = _run(["migrate"], tmp_path)
    assert created.returncode == 0, created.stderr
    assert (tmp_path / "voxmeter.db").is_file()
    made = _run(NEEDS_A_DATABASE["operation-create"], tmp_path)
    assert made.returncode == 0, made.stderr
    assert "1 license," in made.stdout, made.stdout
    assert "acme" in _run(["operation", "list"], tmp_path).stdout


def test_serve_on_a_busy_port_fails_cleanly(server: VoxServer, tmp_path: Path) -> None:
    result = _run(["serve", "--port", str(server.port), "--db", server.db], tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert str(server.port) in result.stdout + result.stderr
    assert requests.get(server.url("/healthz"), timeout=5).status_code == 200
