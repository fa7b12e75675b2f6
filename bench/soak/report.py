"""The report: latency per kind, RSS over time, and the markdown the run writes."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from bench.soak.checks import Sample
from bench.soak.ledger import SAMPLE_SECONDS
from bench.soak.load import Soak


def percentile(values: list[float], pct: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, math.ceil(pct / 100 * len(ordered)) - 1)]


def milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def summarise(
    soak: Soak,
    seconds: float,
    planned: float,
    samples: list[Sample],
    warmup: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per-kind rows and the RSS analysis."""
    kinds: dict[str, Any] = {}
    for name, stats in soak.kinds.items():
        kinds[name] = {
            "count": len(stats.latencies),
            "req_per_s": round(len(stats.latencies) / seconds, 3),
            "p50_ms": milliseconds(percentile(stats.latencies, 50)),
            "p99_ms": milliseconds(percentile(stats.latencies, 99)),
            "max_ms": milliseconds(max(stats.latencies, default=None)),
            "ok": stats.ok,
            "refusals": dict(stats.refusals),
            "unexpected": dict(stats.unexpected),
            "examples": stats.examples,
            "notes": dict(stats.notes),
        }
    at_warmup = min(samples, key=lambda s: abs(s.t - warmup))
    after = [s for s in samples if s.t > at_warmup.t]
    peak_after = max((s.rss_mib for s in after), default=at_warmup.rss_mib)
    warmup_peak = max(s.rss_mib for s in samples if at_warmup.t - 60 < s.t <= at_warmup.t)
    minutes = []
    last = math.ceil(planned / 60 - 1e-9)
    for m in range(1, last + 1):
        inside = [s for s in samples if 60 * (m - 1) < s.t and (m == last or s.t <= 60 * m + 1e-6)]
        if inside:
            end = inside[-1]
            minutes.append(
                {
                    "minute": m,
                    "rss_end_mib": end.rss_mib,
                    "rss_max_mib": max(s.rss_mib for s in inside),
                    "requests": soak.per_minute.get(m - 1, 0),
                    "events_stored": end.events,
                }
            )
    rss = {
        "samples": [[round(s.t, 1), round(s.rss_mib, 1)] for s in samples],
        "per_minute": minutes,
        "start_mib": samples[0].rss_mib,
        "warmup_end_mib": at_warmup.rss_mib,
        "max_after_warmup_mib": peak_after,
        "end_mib": samples[-1].rss_mib,
        "growth_after_warmup": (peak_after - at_warmup.rss_mib) / at_warmup.rss_mib,
        "warmup_last_minute_peak_mib": warmup_peak,
        "growth_peak_to_peak": (peak_after - warmup_peak) / warmup_peak,
    }
    return kinds, rss


def fmt_ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f}" if value >= 10 else f"{value:.2f}"


def markdown(report: dict[str, Any]) -> str:
    """The committed table: per kind, memory over time, the figure checks and the verdict."""
    run = report["run"]
    lines = [
        f"# Soak report ({run['backend']})",
        "",
        f"{run['started']}: {run['minutes']:g} min of mixed load on loopback "
        f"(warm-up {run['warmup_minutes']:g} min), {run['description']}; "
        f"machine: {run['machine']}; code: {run['code']}. "
        "The load generator shares the cores with the server and other work ran on the machine "
        "at the same time, so absolute latencies are noisy; latencies are client-side, "
        "request sent to reply read.",
        "",
        f"Command: `{run['command']}`",
        "",
        "| request kind | count | req/s | p50 ms | p99 ms | expected refusals | unexpected |",
        "|---|--:|--:|--:|--:|---|--:|",
    ]
    total = {"count": 0, "unexpected": 0}
    for name, row in report["kinds"].items():
        refusals = ", ".join(f"{k}: {v:,}" for k, v in sorted(row["refusals"].items())) or "–"
        unexpected = sum(row["unexpected"].values())
        total["count"] += row["count"]
        total["unexpected"] += unexpected
        lines.append(
            f"| {name} | {row['count']:,} | {row['req_per_s']:.1f} | {fmt_ms(row['p50_ms'])} | "
            f"{fmt_ms(row['p99_ms'])} | {refusals} | {unexpected:,} |"
        )
    refused = Counter[str]()
    for row in report["kinds"].values():
        refused.update(row["refusals"])
    lines.append(
        f"| **all** | **{total['count']:,}** | **{total['count'] / run['seconds']:.1f}** | | | "
        f"{sum(refused.values()):,} | **{total['unexpected']:,}** |"
    )
    lines += [
        "",
        "Expected refusals by kind: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(refused.items()))
        + ".",
    ]
    examples = [
        f"- {name}: {example}"
        for name, row in report["kinds"].items()
        for example in row["examples"]
    ]
    if examples:
        lines += ["", "Unexpected responses (first of each kind):", "", *examples]
    ing = report["ingest"]
    wrong = report["kinds"]["ingest"]["unexpected"].get("wrong body", 0)
    predicted = (
        "every acknowledged batch's counts as predicted"
        if not wrong
        else f"**{wrong} acknowledged batches with counts other than predicted**"
    )
    lines += [
        "",
        f"Ingest: {ing['batches']:,} batches, {ing['events_sent']:,} events sent "
        f"({ing['events_per_s']:,.0f}/s), {ing['accepted']:,} accepted and "
        f"{ing['duplicates']:,} duplicates, {predicted}; {ing['retries_after_failure']} "
        f"batches sent again after a failed attempt; {ing['replays']} replays of an "
        f"acknowledged batch (all duplicates), {ing['repeating_stored']} batches "
        f"repeating stored ids with other fields, {ing['repeating_own']} repeating their own ids. "
        f"Voids: {report['voids']['voided']:,} events voided. Concurrency probe: "
        f"{report['concurrency']['refused']:,} rounds refused the third request "
        f"({report['concurrency']['early']:,} probes sent before both uploads were admitted, "
        "retried); the hold row times the rest of each stalled upload. "
        f"Quota: the small operation admitted {report['quota']['admitted']:,} requests of "
        f"{report['quota']['quota']:,} before TOKEN LIMIT EXCEEDED.",
        "",
        f"Server CPU: {report['server']['cpu_percent']:.0f} % of one core on average; "
        f"server exit status after SIGTERM: {report['server']['exit_status']}.",
        "",
        "| minute | RSS MiB (end) | RSS MiB (max) | requests | events stored |",
        "|--:|--:|--:|--:|--:|",
    ]
    rss = report["rss"]
    for row in rss["per_minute"]:
        lines.append(
            f"| {row['minute']} | {row['rss_end_mib']:.1f} | {row['rss_max_mib']:.1f} | "
            f"{row['requests']:,} | {row['events_stored']:,} |"
        )
    lines += [
        "",
        f"RSS at start {rss['start_mib']:.1f} MiB, at the end of warm-up "
        f"{rss['warmup_end_mib']:.1f} MiB, highest after warm-up "
        f"{rss['max_after_warmup_mib']:.1f} MiB, at the end {rss['end_mib']:.1f} MiB: "
        f"growth after warm-up **{rss['growth_after_warmup'] * 100:.1f} %** "
        f"(sampled every {SAMPLE_SECONDS:g} s). The server gives free heap back every 15 s, so "
        f"single samples swing by several MiB; peak to peak (highest in the last warm-up minute, "
        f"{rss['warmup_last_minute_peak_mib']:.1f} MiB, against highest after) the growth is "
        f"{rss['growth_peak_to_peak'] * 100:.1f} %.",
        "",
        "| product | expected (soak's ledger) | server (billing.php) | equal |",
        "|---|--:|--:|---|",
    ]
    figures = report["figures"]
    for row in figures["products"]:
        lines.append(
            f"| {row['product']} | {row['expected']} | {row['server']} | "
            f"{'yes' if row['ok'] else '**no**'} |"
        )
    rec = report["reconciliation"]
    counters = report["server_counters"]
    lines += [
        "",
        f"Other 23 products read 0: {'yes' if figures['other_products_zero'] else '**no**'}. "
        f"Reconciliation listing ({rec['pages']} pages): {rec['listed']} against expected "
        f"{rec['expected']}: {'equal' if rec['ok'] else '**different**'}. Server counters "
        f"{counters['values']} against the soak's {counters['expected']}: "
        f"{'equal' if counters['ok'] else '**different**'}. These final checks took "
        f"{run['final_checks_s']:g} s, after the timed load.",
        "",
    ]
    verdict = report["verdict"]
    lines += [
        f"**Verdict: {'PASS' if verdict['pass'] else 'FAIL'}**: unexpected errors "
        f"{verdict['unexpected']} (criterion 0), RSS growth after warm-up "
        f"{verdict['rss_growth'] * 100:.1f} % (criterion < 10 %), figures, listing and "
        f"counters {'exact' if verdict['figures_ok'] else '**not exact**'}.",
        "",
    ]
    return "\n".join(lines)
