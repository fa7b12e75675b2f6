"""Mirror gauges for /metrics, read from the database at scrape time so every process (and
every worker) reports the same values: staleness, time since the last successful sweep,
requests spent today against the budget, and whether the upstream refused the token."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from voxmeter.domain.mirrors import Failure
from voxmeter.service.context import Context
from voxmeter.service.mirrors import MirrorDirectory, MirrorStatus, statuses

_LABELS = ["operation", "server"]


class _Mirrors(Collector):
    def __init__(self, found: list[MirrorStatus], now: int) -> None:
        self.found = found
        self.now = now

    def collect(self) -> list[GaugeMetricFamily]:
        stale = GaugeMetricFamily(
            "voxmeter_mirror_stale",
            "1 when the mirror's last successful sweep is older than its staleness limit",
            labels=_LABELS,
        )
        age = GaugeMetricFamily(
            "voxmeter_mirror_last_sync_age_seconds",
            "Seconds since the mirror's last successful sweep (since creation if none yet)",
            labels=_LABELS,
        )
        spent = GaugeMetricFamily(
            "voxmeter_mirror_requests_today",
            "Upstream requests the mirror's sweeps spent today (upstream's local day)",
            labels=_LABELS,
        )
        budget = GaugeMetricFamily(
            "voxmeter_mirror_request_budget",
            "Upstream requests a day the mirror's sweeps may spend",
            labels=_LABELS,
        )
        token = GaugeMetricFamily(
            "voxmeter_mirror_invalid_token",
            "1 when the upstream refused the mirror's token at its last sweep",
            labels=_LABELS,
        )
        for s in self.found:
            labels = [s.operation.name, s.operation.server]
            state = s.record.state
            since = state.last_ok if state.last_ok is not None else s.operation.created
            stale.add_metric(labels, 1 if s.stale else 0)
            age.add_metric(labels, max(0, self.now - since) / 1_000_000)
            spent.add_metric(labels, s.requests_today)
            budget.add_metric(labels, s.budget)
            token.add_metric(labels, 1 if state.failure is Failure.INVALID_TOKEN else 0)
        return [stale, age, spent, budget, token]


def mirror_exposition(ctx: Context[MirrorDirectory]) -> bytes:
    """The gauges' text; empty when there is no mirror."""
    now = ctx.clock()
    found = statuses(ctx, now)
    if not found:
        return b""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Mirrors(found, now))
    return generate_latest(registry)
