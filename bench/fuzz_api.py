"""Schemathesis against the server's own /openapi.json: no 5xx, no reply the document does not
describe, over thousands of generated requests per operation.

Starts a real `voxmeter serve` on a fresh database (loopback), makes an operation whose quota
cannot run out, stores a few events (some in a month it then closes, so voids can answer 409),
and runs `st run` against http://127.0.0.1:<port>/openapi.json with the token and server
headers. Every response is checked (CHECKS); `fuzz_hooks.py` steers part of the generated cases
past rules no schema can state, so the success paths are fuzzed too. Prints cases and failing
cases per operation and exits 1 on any failure (2 if the time limit stopped the run first).
Operations that take no input get `--max-examples` generated requests each from fuzz_probe.py.

    .venv/bin/python -m bench.fuzz_api                          # 2,000 examples per operation
    .venv/bin/python -m bench.fuzz_api --max-examples 100 --seconds 300
    .venv/bin/python -m bench.fuzz_api --backend postgres       # + limits in Redis
    .venv/bin/python -m bench.fuzz_api --checks all             # also schemathesis' other checks
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
HOOKS = HERE / "fuzz_hooks.py"
SERVER_CODE = "9901"
#: Response checks: no 5xx, and status, content type, headers and body as documented.
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
#: Months stay open this long after they end, so the driver can store events in the previous
#: month before closing it (voids of those answer 409). The API is otherwise the default one.
GRACE_DAYS = 62


@dataclass
class Result:
    """What one schemathesis run did, per operation ("METHOD /path")."""

    cases: Counter[str] = field(default_factory=Counter)
    failing: Counter[str] = field(default_factory=Counter)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    """One line per distinct failure: operation, check, message."""
    exit_code: int = 0
    complete: bool = True
    seed: int | None = None
    seconds: float = 0.0
    output: str = ""
    """schemathesis' own console output (its failure section shows reproducing curl lines)."""
    report_dir: Path | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.failures and self.complete

    def table(self) -> str:
        lines = [f"{'operation':<36} {'cases':>7} {'failing':>7}  statuses"]
        for op in sorted(self.cases, key=lambda o: (o.split()[1], o.split()[0])):
            seen = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.get(op, {}).items()))
            lines.append(f"{op:<36} {self.cases[op]:>7,} {self.failing[op]:>7,}  {seen}")
        lines.append(
            f"{'total':<36} {sum(self.cases.values()):>7,} {sum(self.failing.values()):>7,}"
        )
        return "\n".join(lines)


def _post(base: str, token: str, events: list[dict[str, object]]) -> tuple[int, bytes]:
    request = urllib.request.Request(
        base + "/api/v2/events",
        data=json.dumps(events).encode(),
        headers={"wolkvox-token": token, "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def seed(base: str, token: str, close_month: Callable[[str], None]) -> None:
    """Store the events fuzz_hooks' voids aim at; close the previous month (UTC operation)."""
    from bench.fuzz_hooks import seed_ids

    opened, closed = seed_ids()
    now = datetime.now(UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    previous = month_start - timedelta(days=1)
    batch = [
        {"id": i, "product": "ivr_minutes", "time": now.isoformat(), "quantity": "1"}
        for i in opened
    ] + [
        {"id": i, "product": "ivr_minutes", "time": previous.isoformat(), "quantity": "2.5"}
        for i in closed
    ]
    status, body = _post(base, token, batch)
    if status != 200:
        raise RuntimeError(f"seeding failed: {status} {body[:300]!r}")
    close_month(previous.strftime("%Y-%m"))


def _operation(case: dict[str, object], label: str, documented: set[str]) -> str:
    method, path = str(case.get("method", "")).upper(), str(case.get("path", ""))
    name = f"{method} {path}"
    if name in documented:
        return name
    return f"(other) {path}" if path else label


def read_report(path: Path, documented: set[str], result: Result) -> None:
    """Cases, failing cases and statuses per operation, from schemathesis' NDJSON event log."""
    seen: set[tuple[str, str, str]] = set()
    with path.open(encoding="utf-8") as events:
        for line in events:
            if line.startswith('{"Initialize"'):
                result.seed = json.loads(line)["Initialize"].get("seed")
                continue
            if line.startswith('{"Interrupted"'):
                result.complete = False
                continue
            if line.startswith('{"NonFatalError"'):
                error = json.loads(line)["NonFatalError"]
                value = error.get("value") or {}
                result.failures.append(
                    f"{error.get('label')}: error in the {error.get('phase')} phase: "
                    f"{value.get('type')}: {str(value.get('message', ''))[:300]}"
                )
                continue
            if not line.startswith('{"ScenarioFinished"'):
                continue
            finished = json.loads(line)["ScenarioFinished"]
            recorder = finished.get("recorder") or {}
            label = recorder.get("label", "?")
            ops: dict[str, str] = {}
            for case_id, case in (recorder.get("cases") or {}).items():
                op = _operation(case.get("value") or {}, label, documented)
                ops[case_id] = op
                result.cases[op] += 1
            for case_id, interaction in (recorder.get("interactions") or {}).items():
                response = interaction.get("response") or {}
                op = ops.get(case_id, label)
                status = response.get("status_code")
                if status is not None:
                    result.statuses.setdefault(op, Counter())[int(status)] += 1
            for case_id, checks in (recorder.get("checks") or {}).items():
                failed = [c for c in checks if c.get("status") == "failure"]
                if failed:
                    op = ops.get(case_id, label)
                    result.failing[op] += 1
                request = ((recorder.get("interactions") or {}).get(case_id) or {}).get("request")
                sent = f" ({request.get('method')} {request.get('uri')})" if request else ""
                for check in failed:
                    failure = (check.get("failure_info") or {}).get("failure") or {}
                    title = failure.get("title", "")
                    key = (op, check.get("name", ""), title)
                    if key not in seen:
                        seen.add(key)
                        message = [m for m in str(failure.get("message", "")).splitlines() if m]
                        detail = f": {message[0]}" if message else ""
                        result.failures.append(f"{op}: {check.get('name')}: {title}{detail}{sent}")


def documented_operations(base: str) -> set[str]:
    with urllib.request.urlopen(base + "/openapi.json", timeout=30) as reply:
        doc = json.load(reply)
    return {f"{m.upper()} {p}" for p, item in doc["paths"].items() for m in item}


def fuzz(
    base: str,
    token: str,
    *,
    max_examples: int,
    seconds: float,
    checks: str = ",".join(CHECKS),
    workers: int = 1,
    seed_value: int | None = None,
    phases: str | None = None,
    report_dir: Path | None = None,
    echo: bool = False,
) -> Result:
    """Run `st run` against BASE/openapi.json; stop it (SIGINT) once `seconds` have passed."""
    temporary = report_dir is None
    report_dir = report_dir or Path(tempfile.mkdtemp(prefix="voxmeter-fuzz-"))
    report_dir.mkdir(parents=True, exist_ok=True)
    report = report_dir / "events.ndjson"
    log = report_dir / "schemathesis.log"
    config = report_dir / "schemathesis.toml"
    # Headers sent with every request; the token comes from the environment, never argv.
    config.write_text(
        "[headers]\n"
        '"wolkvox-token" = "${VOXMETER_FUZZ_TOKEN}"\n'
        f'"wolkvox_server" = "{SERVER_CODE}"\n'
        f'"wolkvox-server" = "{SERVER_CODE}"\n',
        encoding="utf-8",
    )
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        base + "/openapi.json",
        "--checks",
        checks,
        "--max-examples",
        str(max_examples),
        "--workers",
        str(workers),
        "--continue-on-failure",
        "--request-timeout",
        "70",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
        "--no-color",
        # No example database: nothing is written to the working directory, and Hypothesis
        # keeps no Pareto front (optimising it stalls on large batches: minutes per case).
        "--generation-database",
        "none",
    ]
    if seed_value is not None:
        command += ["--seed", str(seed_value)]
    if phases:
        command += ["--phases", phases]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS), "VOXMETER_FUZZ_TOKEN": token}
    result = Result()
    start = time.monotonic()
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=report_dir,  # schemathesis keeps a crash cache in ./.schemathesis
        start_new_session=True,
    )

    def tee() -> None:
        assert proc.stdout is not None
        with log.open("wb") as out:
            for line in proc.stdout:
                out.write(line)
                if echo:
                    sys.stdout.buffer.write(line)
                    sys.stdout.flush()

    copier = threading.Thread(target=tee, daemon=True)
    copier.start()
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        result.complete = False
        os.killpg(proc.pid, signal.SIGINT)  # schemathesis stops and writes its reports
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    copier.join(timeout=10)
    result.seconds = time.monotonic() - start
    result.exit_code = proc.returncode
    result.output = log.read_text(errors="replace") if log.exists() else ""
    if report.exists():
        read_report(report, documented_operations(base), result)
    else:
        result.failures.append(f"schemathesis wrote no report (exit {proc.returncode})")
    if temporary and result.ok:
        shutil.rmtree(report_dir, ignore_errors=True)  # the event log can reach hundreds of MB
    else:
        result.report_dir = report_dir
    return result


def main() -> None:
    from bench.common import (
        Server,
        add_backend_option,
        cpu_note,
        fresh_db,
        fresh_postgres,
        make_tenant,
        write_json,
    )
    from bench.fuzz_probe import probe

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--max-examples", type=int, default=2000, help="per operation and phase")
    parser.add_argument("--seconds", type=float, default=3600.0, help="time limit of the run")
    parser.add_argument("--checks", default=",".join(CHECKS), help="schemathesis checks, or all")
    parser.add_argument("--workers", type=int, default=1, help="schemathesis workers")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--phases", default=None, help="e.g. coverage,fuzzing (default: all)")
    parser.add_argument("--report-dir", type=Path, default=None)
    parser.add_argument("--db", default=None, help="database URL (default: a fresh one)")
    add_backend_option(parser)
    parser.add_argument("--quiet", action="store_true", help="hide schemathesis' progress")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()

    db = args.db or (fresh_postgres() if args.backend == "postgres" else fresh_db())
    extra: tuple[str, ...] = ("--grace-days", str(GRACE_DAYS))
    if db.startswith("postgresql"):
        extra += ("--redis", "redis://127.0.0.1:6379/0")
        os.environ.setdefault("VOXMETER_REDIS_PREFIX", f"voxfuzz-{os.getpid()}-{time.time_ns()}")
    token = make_tenant(db, name="fuzz")[0]
    server = Server(db, args=extra).start()

    def close_month(month: str) -> None:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "voxmeter",
                "month",
                "close",
                "--operation",
                "fuzz",
                "--month",
                month,
                "--db",
                db,
            ],
            check=True,
            capture_output=True,
        )

    print(
        f"fuzz: schemathesis against {server.base}/openapi.json, {db.split(':', 1)[0]}, "
        f"--max-examples {args.max_examples}, checks {args.checks}, {cpu_note()}",
        flush=True,
    )
    try:
        seed(server.base, token, close_month)
        result = fuzz(
            server.base,
            token,
            max_examples=args.max_examples,
            seconds=args.seconds,
            checks=args.checks,
            workers=args.workers,
            seed_value=args.seed,
            phases=args.phases,
            report_dir=args.report_dir,
            echo=not args.quiet,
        )
        # Operations without input: as many generated requests as the others get cases.
        doc = json.loads(urllib.request.urlopen(server.base + "/openapi.json", timeout=30).read())
        cases, statuses, failures = probe("127.0.0.1", server.port, doc, args.max_examples)
        result.cases.update(cases)
        for op, counts in statuses.items():
            result.statuses.setdefault(op, Counter()).update(counts)
        result.failing.update({f.split(":", 1)[0]: 1 for f in failures})
        result.failures += failures
    finally:
        server.stop()
    print()
    print(result.table())
    print(
        f"{result.seconds:.0f} s, seed {result.seed}, schemathesis exit {result.exit_code}"
        + ("" if result.complete else ", STOPPED BY THE TIME LIMIT")
        + f"; database {db}"
    )
    for line in result.failures:
        print("FAIL", line)
    write_json(
        args.json,
        {
            "bench": "fuzz_api",
            "backend": db.split(":", 1)[0],
            "max_examples": args.max_examples,
            "seed": result.seed,
            "seconds": result.seconds,
            "complete": result.complete,
            "exit_code": result.exit_code,
            "cases": dict(result.cases),
            "server_errors": sum(
                n for counts in result.statuses.values() for s, n in counts.items() if s >= 500
            ),
            "failures": result.failures,
        },
    )
    if result.report_dir is not None:
        print(f"schemathesis output and event log: {result.report_dir}")
    if result.failures or result.exit_code:
        raise SystemExit(1)
    if not result.complete:
        raise SystemExit(2)


if __name__ == "__main__":
    main()
