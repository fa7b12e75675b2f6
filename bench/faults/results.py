"""A scenario's result: response counts, recovery times, problems, the verdict."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bench.faults.checks import Verdict
from bench.faults.run import Run, Sample

# --- results --------------------------------------------------------------------------------


@dataclass
class Result:
    scenario: str
    backend: str
    rounds: int = 0
    batches_acked: int = 0
    events_acked: int = 0
    unknown_batches: int = 0
    unknown_present: int = 0
    unknown_absent: int = 0
    unknown_partial: int = 0
    unknown_resolved_by_reason: dict[str, dict[str, int]] = field(default_factory=dict)
    batches_never_sent: int = 0
    stored_events: int = 0
    duplicates: int = 0
    missing: int = 0
    figures_exact: bool = False
    responses: dict[str, int] = field(default_factory=dict)
    responses_during_faults: dict[str, int] = field(default_factory=dict)
    max_latency_during_fault_s: float | None = None
    recovery_s: list[float] = field(default_factory=list)
    restart_s: list[float] = field(default_factory=list)
    limits: dict[str, object] = field(default_factory=dict)
    server_tracebacks: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    passed: bool = False
    reason: str = ""
    problems: list[str] = field(default_factory=list)

    def count(self, run: Run) -> None:
        self.batches_acked = run.batches_acked
        self.events_acked = run.events_acked
        self.unknown_present = run.resolutions["present"]
        self.unknown_absent = run.resolutions["absent"]
        self.unknown_partial = run.resolutions["partial"]
        self.unknown_batches = sum(run.resolutions.values())
        self.unknown_resolved_by_reason = {k: dict(v) for k, v in run.resolved_by_reason.items()}
        self.batches_never_sent = run.never_sent
        with run.lock:
            samples = list(run.samples)
        self.responses = dict(Counter(_status_key(s) for s in samples))

    def finish(self, run: Run, verdict: Verdict) -> None:
        self.count(run)
        self.stored_events = verdict.stored
        self.duplicates = verdict.duplicates
        self.missing = verdict.missing
        self.figures_exact = verdict.figures_exact
        self.problems = list(run.problems)
        self.passed = not self.problems
        self.reason = "all checks hold" if self.passed else self.problems[0]


def _status_key(sample: Sample) -> str:
    if sample.status == 0:
        return "refused" if "refused" in sample.detail else "no reply"
    if sample.status == 403 and ("SIMULTANEOUS" in sample.detail or "LIMIT" in sample.detail):
        return "403 limit"
    return str(sample.status)


def base_time() -> tuple[datetime, int]:
    """Event time 0 of a scenario and how many batches fit between it and now (one second each)."""
    now = datetime.now(UTC).replace(microsecond=0)
    month_start = now.replace(day=1, hour=0, minute=0, second=0)
    base = max(month_start + timedelta(seconds=1), now - timedelta(hours=6))
    room = int((now - base).total_seconds()) - 120
    if room < 600:
        raise SystemExit(
            "too early in the month for the event-time windows; run after 00:15 UTC on the 1st"
        )
    return base, room
