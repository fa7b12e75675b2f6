"""What `voxmeter watch` does: make the database's mirrors match the config file, then run the
sweeps that are due, one after another, as the server would (same leases, budget and
schedule), so cron and a running server can share a database without sweeping twice."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from voxmeter.adapters.upstream import fetch
from voxmeter.domain.mirrors import MirrorOptions, SyncState
from voxmeter.domain.tenancy import Operation
from voxmeter.errors import ConfigError
from voxmeter.service.context import Context
from voxmeter.service.mirrors import create_mirror, update_mirror
from voxmeter.service.ports import SecretSealing, Storage
from voxmeter.service.sweeps import (
    LeaseLost,
    begin_sweep,
    finish_sweep,
    lease_until,
    skip_sweep,
)
from voxmeter.service.tenancy import find_operation
from voxmeter.watch.config import OperationConfig, WatchConfig


@dataclass(frozen=True, slots=True)
class SweepReport:
    """One mirror's part of a watch run: `swept`, `failed` or `not due`."""

    operation: Operation
    result: str
    state: SyncState | None = None


def options_of(entry: OperationConfig) -> MirrorOptions:
    return MirrorOptions(
        upstream_url=entry.base_url,
        interval_minutes=entry.interval_minutes,
        budget_percent=entry.budget_percent,
        stale_minutes=entry.stale_minutes,
    )


def _same_token(sealing: SecretSealing, sealed: str, token: str) -> bool:
    try:
        return sealing.open(sealed) == token
    except ConfigError:
        return False


def apply_config(
    ctx: Context[Storage], sealing: SecretSealing, cfg: WatchConfig
) -> list[Operation]:
    """Create the listed mirrors that do not exist and update those whose options or token
    changed (each change audited); the mirrors' operations, in the file's order."""
    found = []
    for entry in cfg.operations:
        options = options_of(entry)
        try:
            op = find_operation(ctx, entry.name, entry.server)
        except ConfigError:
            op = create_mirror(
                ctx,
                sealing,
                entry.name,
                entry.server,
                options,
                entry.token,
                entry.timezone,
                entry.currency,
            )
            found.append(op)
            continue
        record = ctx.storage.mirror(op.id)
        if record is None:
            raise ConfigError(f"operation {entry.name!r} exists and is not a mirror")
        token = None if _same_token(sealing, record.sealed_token, entry.token) else entry.token
        if record.options != options or token is not None:
            update_mirror(ctx, sealing, op, record, options, token)
        found.append(op)
    return found


def sweep_due(
    ctx: Context[Storage], sealing: SecretSealing, operations: list[Operation], owner: str
) -> list[SweepReport]:
    """Run the due sweeps of these mirrors, one at a time."""
    reports = []
    for op in operations:
        job = begin_sweep(ctx, sealing, op.id, owner)
        if job is None:
            reports.append(SweepReport(op, "not due"))
            continue
        if not job.affordable:
            reports.append(SweepReport(op, "failed", skip_sweep(ctx, job, owner)))
            continue

        async def renew(operation_id: int = op.id) -> bool:
            return ctx.storage.renew_lease(operation_id, owner, lease_until(ctx.clock()))

        try:
            outcome = asyncio.run(fetch(job, ctx.catalog, renew))
            state, _ = finish_sweep(ctx, job, outcome, owner)
        except LeaseLost:
            reports.append(SweepReport(op, "not due"))
            continue
        except BaseException:
            ctx.storage.release_lease(op.id, owner)
            raise
        reports.append(SweepReport(op, "failed" if state.failure else "swept", state))
    return reports
