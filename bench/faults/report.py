"""The markdown table and the JSON the run writes under bench/reports."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime

from bench.common import cpu_note
from bench.faults.events import REPORTS
from bench.faults.results import Result

# --- report ---------------------------------------------------------------------------------


def _cell_statuses(counts: dict[str, int]) -> str:
    """200 / 503 / 403 limit / no reply (refused included) / anything else."""
    named = ("200", "503", "403 limit")
    lost = counts.get("no reply", 0) + counts.get("refused", 0)
    other = sum(counts.values()) - sum(counts.get(k, 0) for k in named) - lost
    return " / ".join(f"{n:,}" for n in (*(counts.get(k, 0) for k in named), lost, other))


def table(results: list[Result]) -> str:
    head = (
        "| scenario | backend | rounds | batches acked | events acked | unknown batches "
        "(present/absent/partial) | duplicates | missing | figures exact | responses "
        "200 / 503 / 403 limit / no reply / other | max latency in fault (s) "
        "| recovery (s, max) | result |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for r in results:
        latency = (
            "-" if r.max_latency_during_fault_s is None else f"{r.max_latency_during_fault_s:.2f}"
        )
        recovery = f"{max(r.recovery_s):.2f}" if r.recovery_s else "-"
        verdict = "PASS" if r.passed else f"FAIL: {r.reason}"
        rows.append(
            f"| {r.scenario} | {r.backend} | {r.rounds} | {r.batches_acked:,} | {r.events_acked:,} "
            f"| {r.unknown_batches} ({r.unknown_present}/{r.unknown_absent}/{r.unknown_partial}) "
            f"| {r.duplicates} | {r.missing} | {'yes' if r.figures_exact else 'no'} "
            f"| {_cell_statuses(r.responses)} | {latency} | {recovery} | {verdict} |"
        )
    return head + "\n".join(rows) + "\n"


def details(r: Result) -> str:
    lines = [
        f"### {r.scenario}",
        "",
        f"- {r.seconds:.0f} s; {r.rounds} rounds; {r.stored_events:,} events stored at the end; "
        f"{r.batches_never_sent} batches never sent (connection refused while the server was down)",
        f"- responses by status: {dict(sorted(r.responses.items()))}",
    ]
    if r.restart_s:
        lines.append(f"- server start to /healthz (s): {r.restart_s}")
    if r.responses_during_faults:
        lines.append(
            "- responses in flight during the faults: "
            f"{dict(sorted(r.responses_during_faults.items()))}"
        )
    if r.unknown_resolved_by_reason:
        lines.append(f"- unknown-outcome batches by cause: {r.unknown_resolved_by_reason}")
    if r.recovery_s:
        lines.append(f"- recovery (s): {r.recovery_s}")
    if r.limits:
        lines.append(f"- limits: {json.dumps(r.limits)}")
    lines.append(f"- stack traces in the server log, by message: {r.server_tracebacks or 'none'}")
    for problem in r.problems[:10]:
        lines.append(f"- problem: {problem}")
    return "\n".join(lines) + "\n"


def write_reports(results: list[Result], command: str, started: datetime) -> str:
    text = table(results)
    passed = all(r.passed for r in results)
    REPORTS.mkdir(parents=True, exist_ok=True)
    md = [
        "# Fault injection",
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC on {cpu_note()}: `{command}`. "
        "Recovery: for kills, from starting the server again to its first admitted request "
        "(in the scaled-out mode this includes waiting for the killed processes' slot leases, "
        "up to 5 s, as the README documents); for outages, from the component's return to the "
        "first successful ingest and read (the senders honour Retry-After, so ingest resumes up "
        "to a second late). Responses count every request the script made; '403 limit' are, in "
        "pg-kill, reads polling while those leases expire, and in redis-restart the deliberate "
        "third request of each concurrency check plus the final quota refusal. Unknown batches "
        "are those without a 200 (no reply at the kill, or a 503): each is looked up in its own "
        "second of event time, then sent again, as a client would.",
        "",
        text,
        *(details(r) for r in results),
        f"Overall: {'PASS' if passed else 'FAIL'}",
        "",
    ]
    (REPORTS / "faults.md").write_text("\n".join(md))
    payload = {
        "report": "faults",
        "generated": started.isoformat(),
        "command": command,
        "machine": cpu_note(),
        "passed": passed,
        "scenarios": [asdict(r) for r in results],
    }
    (REPORTS / "faults.json").write_text(json.dumps(payload, indent=2) + "\n")
    return text
