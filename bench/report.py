"""Every performance and reliability figure, regenerated with one command, as one markdown table.

Runs the bench scripts one after another on this machine (loopback, bounded in time), each
writing its figures as JSON, and renders them against the project's targets:

    .venv/bin/python -m bench.report              # the full sizes (about an hour)
    .venv/bin/python -m bench.report --quick      # smaller sizes, same table (about 10 minutes)
    .venv/bin/python -m bench.report --readme     # also put the table into README.md
    .venv/bin/python -m bench.report --only fuzz_sqlite,fuzz_postgres   # rerun some steps,
                                                  # keeping the others' last figures

Writes bench/reports/report.md (and report.json). The first rows calibrate the machine: the
build machine changes, and `/healthz` req/s says how fast this one is. A step that fails or
times out shows as FAILED in its rows and makes the exit status 1; the other steps still run.
Needs wrk, PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 (as the test suite does).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REPORTS = HERE / "reports"
START, END = "<!-- bench-report:start -->", "<!-- bench-report:end -->"

Row = tuple[str, str, str, str]  # figure, target, measured, verdict
Figures = dict[str, Any]


@dataclass
class Step:
    """One bench run: its command (`{json}` is replaced by the figures file), its rows."""

    name: str
    command: list[str]
    rows: Callable[[Figures, dict[str, Figures]], list[Row]]
    timeout: float
    json_from: str | None = None  # a report file the script writes itself, instead of `{json}`
    needs: list[str] = field(default_factory=list)


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def fmt(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def ingest_rows(title: str, target: float, at_end: bool) -> Callable[[Figures, Any], list[Row]]:
    def rows(f: Figures, _: Any) -> list[Row]:
        events = f"{f['events']:,}"
        measured = (
            f"{fmt(f['events_per_s'])} ev/s over {events}; last million "
            f"{fmt(f['last_window_eps'])}; peak RSS {fmt(f['peak_rss_mib'])} MiB"
        )
        figure = f["last_window_eps"] if at_end else f["events_per_s"]
        shown = f"≥ {fmt(target)} events/s" + (" at the end" if at_end else "")
        out = [(title, shown, measured, verdict(figure >= target))]
        if f["backend"] == "sqlite":
            out.append(
                (
                    f"server RSS through that run ({f['ids']} ids)",
                    "≤ 200 MB",
                    f"{fmt(f['peak_rss_mib'])} MiB",
                    verdict(f["peak_rss_mib"] * 1.048576 <= 200),
                )
            )
        return out

    return rows


def read_rows(f: Figures, _: Any) -> list[Row]:
    if f["backend"] == "postgresql":
        return [
            (
                "scaled-out `billing.php`, wrk, 2 connections",
                "(none)",
                f"{fmt(f['billing_rps'])} req/s, p99 {f['billing_p99_ms']:.2f} ms",
                "",
            )
        ]
    measured = f"{fmt(f['billing_rps'])} vs {fmt(f['healthz_rps'])} req/s = {f['ratio']:.2f}"
    return [
        (
            "machine calibration: embedded `/healthz`, wrk, 2 connections",
            "",
            f"{fmt(f['healthz_rps'])} req/s",
            "",
        ),
        ("`billing.php` / `/healthz` throughput", "≥ 0.7", measured, verdict(f["ratio"] >= 0.7)),
        (
            "`billing.php` p99 at 2 connections",
            "≤ 5 ms",
            f"{f['billing_p99_ms']:.2f} ms",
            verdict(f["billing_p99_ms"] <= 5),
        ),
    ]


def month_rows(f: Figures, _: Any) -> list[Row]:
    small, large = f"{f['small_events']:,}", f"{f['large_events']:,}"
    measured = (
        f"p50 {f['large_p50_us']:.0f} vs {f['small_p50_us']:.0f} µs = {f['ratio']:.2f}; "
        f"p99 {f['large_p99_us']:.0f} µs at {large} events ({small} small)"
    )
    if f["backend"] == "postgresql":
        ok = f["large_p99_us"] <= 10_000
        return [("scaled-out month read, no cache", "p99 ≤ 10 ms", measured, verdict(ok))]
    ok = f["ratio"] <= 1.2
    return [("embedded month read, large vs small, no cache", "ratio ≤ 1.2", measured, verdict(ok))]


def redis_rows(f: Figures, _: Any) -> list[Row]:
    admit, both = f["admit"], f["admit_release"]
    measured = (
        f"admit p99 {admit['p99_ms']:.2f} ms (p50 {admit['p50_ms']:.2f}); "
        f"admit + release p99 {both['p99_ms']:.2f} ms; {f['admissions']:,} admissions"
    )
    return [("Redis admission, one round trip", "p99 ≤ 1 ms", measured, verdict(f["meets_target"]))]


def soak_rows(f: Figures, _: Any) -> list[Row]:
    run, verdict_, rss = f["run"], f["verdict"], f["rss"]
    requests = sum(kind["count"] for kind in f["kinds"].values())
    measured = (
        f"{run['minutes']:.0f} min, {requests:,} requests, {verdict_['unexpected']} unexpected "
        f"errors; RSS {rss['warmup_end_mib']:.0f} MiB after warm-up, "
        f"{rss['max_after_warmup_mib']:.0f} at most after "
        f"(+{100 * verdict_['rss_growth']:.1f} %); figures exact: "
        f"{'yes' if verdict_['figures_ok'] else 'NO'}"
    )
    target = "no unexpected errors; RSS growth < 10 % after warm-up"
    return [(f"soak, mixed load ({run['backend']})", target, measured, verdict(verdict_["pass"]))]


def fault_rows(f: Figures, _: Any) -> list[Row]:
    out: list[Row] = []
    for s in f.get("scenarios", []):
        measured = (
            f"{s['rounds']} rounds, {s['events_acked']:,} events acknowledged, "
            f"{s['missing']} missing, {s['duplicates']} double-counted, "
            f"{s['unknown_partial']} partial batches"
        )
        if s.get("max_latency_during_fault_s") is not None:
            measured += f", slowest reply during the fault {s['max_latency_during_fault_s']:.2f} s"
        out.append(
            (
                f"fault: {s['scenario']} ({s['backend']})",
                "every acknowledged event once, no partial batch, figures exact",
                measured,
                verdict(bool(s["passed"])),
            )
        )
    return out


def fuzz_rows(f: Figures, _: Any) -> list[Row]:
    cases = sum(f["cases"].values())
    # Documented operations only: "(other) <path>" counts requests to paths the document lacks.
    documented = [n for op, n in f["cases"].items() if not op.startswith("(other)")]
    fewest = min(documented) if documented else 0
    ok = (
        f["complete"]
        and not f["failures"]
        and f["exit_code"] == 0
        and not f["server_errors"]
        and fewest >= f["max_examples"]
    )
    measured = (
        f"{cases:,} cases (≥ {fewest:,} per operation), {f['server_errors']} 5xx, "
        f"{len(f['failures'])} document violations"
    )
    target = f"zero 5xx and violations over ≥ {f['max_examples']:,} cases per operation"
    return [(f"schemathesis, {f['backend']}", target, measured, verdict(ok))]


def attack_rows(f: Figures, _: Any) -> list[Row]:
    out: list[Row] = []
    for r in f["results"]:
        if r["scenario"] == "junk reads":
            measured = (
                f"{r['reads']:,} reads: RSS +{r['rss_growth_mib']} MiB over {r['rss_before_mib']}"
            )
            target = "RSS growth < 20 MB"
        else:
            measured = (
                f"RSS +{r['rss_growth_mib']} MiB over {r['rss_before_mib']}; /healthz p99 "
                f"{r['healthz_p99_ms']} ms (max {r['healthz_max_ms']}); replies {r['statuses'][0]}"
            )
            target = "RSS growth < 100 MB; /healthz p99 < 50 ms"
        out.append((f"{r['scenario']} ({f['backend']})", target, measured, verdict(r["met"])))
    return out


def statement_latency_rows(f: Figures, _: Any) -> list[Row]:
    small, large = f"{f['small_events']:,}", f"{f['large_events']:,}"

    def pair(name: str) -> str:
        p50, p99 = f"p50_ratio_{name}_large_{name}_small", f"p99_ratio_{name}_large_{name}_small"
        return (
            f"p50 {f[f'{name}_large_p50_ms']:.2f} vs {f[f'{name}_small_p50_ms']:.2f} ms = "
            f"{f[p50]:.2f}; p99 {f[f'{name}_large_p99_ms']:.2f} vs "
            f"{f[f'{name}_small_p99_ms']:.2f} ms = {f[p99]:.2f}"
        )

    p99 = f["statement_small_p99_ms"]
    alone = (
        f"p99 {p99:.2f} ms, p50 {f['statement_small_p50_ms']:.2f}; same run, alternated: "
        f"`/healthz` p99 {f['healthz_p99_ms']:.2f} (p50 {f['healthz_p50_ms']:.2f}), "
        f"`billing.php?api=all` p99 {f['billing_all_p99_ms']:.2f} "
        f"(p50 {f['billing_all_p50_ms']:.2f}); statement / `/healthz` p99 "
        f"{f['p99_ratio_statement_small_healthz']:.2f}; load average {f['load_average_1min']}"
    )
    return [
        ("`statement` p99, embedded, one request at a time", "≤ 5 ms", alone, verdict(p99 <= 5)),
        (
            f"`statement` at {large} vs {small} events, embedded, alternated",
            "ratio ≤ 1.2",
            pair("statement"),
            verdict(f["p50_ratio_statement_large_statement_small"] <= 1.2),
        ),
        (
            f"`daily?api=all` at {large} vs {small} events, embedded, alternated",
            "ratio ≤ 1.2",
            pair("daily"),
            verdict(f["p50_ratio_daily_large_daily_small"] <= 1.2),
        ),
    ]


def statement_export_rows(f: Figures, _: Any) -> list[Row]:
    kind, target = ("PostgreSQL", 20) if f["backend"] == "postgres" else ("SQLite", 10)
    measured = "; ".join(
        f"{fmt.upper()} {f[f'{fmt}_seconds_best']:.1f}–{f[f'{fmt}_seconds_worst']:.1f} s wall "
        f"({f[f'{fmt}_cpu_seconds_best']:.1f}–{f[f'{fmt}_cpu_seconds_worst']:.1f} s CPU)"
        for fmt in ("csv", "json")
    )
    worst = max(f["csv_seconds_worst"], f["json_seconds_worst"])
    return [
        (
            f"`statement --all`, {f['operations']:,} operations × {f['products']} products, {kind}",
            f"≤ {target} s",
            f"{measured}; load average {f['load_average_1min']}",
            verdict(worst <= target),
        )
    ]


def steps(quick: bool, work: Path) -> list[Step]:
    py = sys.executable
    seq, uuid, pg = (1_000_000, 1_000_000, 1_000_000) if quick else (10**7, 10**7, 5_000_000)
    fuzz = "100" if quick else "2000"
    ingest = [py, "-m", "bench.ingest", "--json", "{json}"]
    return [
        Step("read", [py, "-m", "bench.read", "--json", "{json}"], read_rows, 300),
        Step(
            "ingest_seq",
            [*ingest, "--ids", "sequential", "--events", str(seq)],
            ingest_rows(f"embedded ingest, time-ordered ids, to {seq:,}", 200_000, False),
            1800,
        ),
        Step(
            "month_read",
            [py, "-m", "bench.month_read", "--large", "{db:ingest_seq}", "--json", "{json}"],
            month_rows,
            900,
            needs=["ingest_seq"],
        ),
        Step(
            "ingest_uuid",
            [*ingest, "--ids", "uuid4", "--events", str(uuid)],
            ingest_rows(f"embedded ingest, random UUIDv4 ids, to {uuid:,}", 50_000, True),
            1800,
        ),
        Step(
            "ingest_pg",
            [*ingest, "--backend", "postgres", "--workers", "2", "--events", str(pg)],
            ingest_rows(f"scaled-out ingest, PostgreSQL, 2 workers, {pg:,}", 100_000, False),
            1800,
        ),
        Step(
            "month_read_pg",
            [py, "-m", "bench.month_read", "--large", "{db:ingest_pg}", "--json", "{json}"],
            month_rows,
            900,
            needs=["ingest_pg"],
        ),
        Step(
            "statement_latency",
            [
                *(py, "-m", "bench.statement", "latency", "--small", "10000"),
                *("--large", str(seq), "--rounds", "500" if quick else "2000", "--json", "{json}"),
            ],
            statement_latency_rows,
            1800,
        ),
        *(
            Step(
                f"statement_export_{backend}",
                [
                    *(py, "-m", "bench.statement", "export", "--operations", "10000"),
                    *("--backend", backend, "--rounds", "1" if quick else "3", "--json", "{json}"),
                ],
                statement_export_rows,
                900,
            )
            for backend in ("sqlite", "postgres")
        ),
        Step(
            "redis",
            [py, "-m", "bench.redis_admission", "--json", "{json}"],
            redis_rows,
            120,
        ),
        Step(
            "read_pg",
            [py, "-m", "bench.read", "--backend", "postgres", "--json", "{json}"],
            read_rows,
            300,
        ),
        *(
            Step(
                f"attacks_{backend}",
                [py, "-m", "bench.attacks", "--backend", backend, "--json", "{json}"],
                attack_rows,
                900,
            )
            for backend in ("sqlite", "postgres")
        ),
        Step(
            "soak",
            [py, "-m", "bench.soak", "--minutes", "1" if quick else "10"],
            soak_rows,
            1500,
            json_from="soak.json",
        ),
        Step(
            "soak_pg",
            [
                *(py, "-m", "bench.soak", "--backend", "postgres"),
                *("--minutes", "1" if quick else "10"),
            ],
            soak_rows,
            1500,
            json_from="soak-postgres.json",
        ),
        Step(
            "faults",
            [py, "-m", "bench.faults", "--rounds", "2" if quick else "5"],
            fault_rows,
            3000,
            json_from="faults.json",
        ),
        *(
            Step(
                f"fuzz_{backend}",
                [
                    *(py, "-m", "bench.fuzz_api", "--quiet", "--backend", backend),
                    *("--max-examples", fuzz, "--seconds", "300" if quick else "1800"),
                    *("--json", "{json}"),
                    *("--report-dir", str(work / f"fuzz-{backend}")),
                ],
                fuzz_rows,
                2400,
            )
            for backend in ("sqlite", "postgres")
        ),
    ]


def run(step: Step, work: Path, done: dict[str, Figures]) -> tuple[Figures | None, str]:
    """Run one step; its figures, or None and why not."""
    missing = [n for n in step.needs if n not in done]
    if missing:
        return None, f"needs {', '.join(missing)}, which failed"
    out = work / f"{step.name}.json"
    command = [
        str(out) if part == "{json}" else part.format(db=_Db(done)) if "{db:" in part else part
        for part in step.command
    ]
    started = time.monotonic()
    print(f"report: {step.name}: {' '.join(command[1:])}", flush=True)
    try:
        proc = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=step.timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return None, f"timed out after {step.timeout:.0f} s"
    took = time.monotonic() - started
    (work / f"{step.name}.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    source = REPORTS / step.json_from if step.json_from else out
    if not source.exists() or (step.json_from and source.stat().st_mtime < time.time() - took):
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
        return None, f"exit {proc.returncode}: {tail[0][:200]}"
    figures: Figures = json.loads(source.read_text(encoding="utf-8"))
    figures["exit_code_of_step"] = proc.returncode
    return figures, ""


class _Db:
    """`{db:step}` in a command: the database the named step filled."""

    def __init__(self, done: dict[str, Figures]) -> None:
        self.done = done

    def __format__(self, spec: str) -> str:
        return str(self.done[spec]["database"])


def commit() -> str:
    proc = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return proc.stdout.strip() or "unknown"


def render(rows: list[Row], quick: bool, machine: str, seconds: float) -> str:
    head = (
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `bench/report.py"
        f"{' --quick' if quick else ''}` at commit {commit()} in {seconds / 60:.0f} min, "
        f"{machine}, loopback, the load generator on the same cores.\n\n"
        "| figure | target | measured | verdict |\n|---|---|---|---|\n"
    )
    return head + "".join(f"| {' | '.join(r)} |\n" for r in rows)


def into_readme(table: str) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"README.md has no {START} ... {END} block")
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    readme.write_text(f"{before}{START}\n{table}{END}{after}", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about 10 minutes)")
    parser.add_argument("--only", default="", help="comma-separated step names")
    parser.add_argument("--skip", default="", help="comma-separated step names not to run")
    parser.add_argument("--readme", action="store_true", help="also update README.md")
    args = parser.parse_args()
    from bench.common import cpu_note

    work = Path(tempfile.mkdtemp(prefix="voxmeter-report-"))
    chosen = set(filter(None, args.only.split(",")))
    skipped = set(filter(None, args.skip.split(",")))
    kept = REPORTS / "report.json"
    done: dict[str, Figures] = {}
    if (chosen or skipped) and kept.exists():  # steps not run keep their last figures
        done = {
            k: v
            for k, v in json.loads(kept.read_text()).items()
            if (chosen and k not in chosen) or k in skipped
        }
    rows: list[Row] = []
    failed = False
    started = time.monotonic()
    for step in steps(args.quick, work):
        if step.name in skipped or (chosen and step.name not in chosen):
            if step.name in done:
                rows.extend(step.rows(done[step.name], done))
            continue
        figures, why = run(step, work, done)
        if figures is None:
            failed = True
            rows.append((step.name, "", f"FAILED: {why} (log in {work})", "**failed**"))
            continue
        figures["measured_at"] = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        done[step.name] = figures
        new = step.rows(figures, done)
        failed |= figures["exit_code_of_step"] != 0 and not any("not met" in r[3] for r in new)
        rows.extend(new)
        for row in new:
            print(f"report:   {row[0]}: {row[2]} [{row[3]}]", flush=True)
    table = render(rows, args.quick, cpu_note(), time.monotonic() - started)
    if chosen or skipped:
        table += (
            f"\nThis run: {'`--only ' + args.only + '`' if chosen else ''}"
            f"{'`--skip ' + args.skip + '`' if skipped else ''}; rows of steps it did not run "
            "are from an earlier run (their time is in bench/reports/report.json).\n"
        )
    REPORTS.mkdir(exist_ok=True)
    (REPORTS / "report.md").write_text(table, encoding="utf-8")
    (REPORTS / "report.json").write_text(json.dumps(done, indent=2) + "\n", encoding="utf-8")
    print(table)
    if args.readme:
        into_readme(table)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
