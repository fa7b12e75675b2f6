"""Importing the separate history file older releases of `voxmeter watch` kept
(`voxmeter-history.db`): its snapshots become the mirror's readings, projected like a sweep's,
so past months, daily figures and forecasts include them. A product's month the mirror has
readings of already is left as it is (its sweeps know better); importing twice adds nothing."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

from voxmeter.domain.months import Month
from voxmeter.domain.quantities import micro_or_invalid
from voxmeter.domain.readings import Reading
from voxmeter.domain.tenancy import Operation
from voxmeter.errors import ConfigError
from voxmeter.service.context import Context
from voxmeter.service.ports import Storage
from voxmeter.service.sweeps import store_and_project


def _rows(path: Path, name: str) -> list[tuple[str, str, str, int, int]]:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return conn.execute(
                "SELECT month, api, items, first_seen, last_seen FROM snapshots"
                " WHERE operation = ? ORDER BY first_seen",
                (name,),
            ).fetchall()
    except sqlite3.Error as exc:
        raise ConfigError(f"{path} is not a voxmeter history file: {exc}") from exc


def import_history(ctx: Context[Storage], op: Operation, path: Path) -> int:
    """Store the file's snapshots of `op` (by its name) as readings; how many were new."""
    stored = ctx.storage.readings(op.id, 0, 10**6)
    kept = {(r.product, r.month) for r in stored}
    readings = []
    for month, api, items, first_seen, last_seen in _rows(path, op.name):
        micro = micro_or_invalid(Decimal(items))
        index = Month.parse(month).index
        if api not in ctx.catalog or micro < 0 or (api, index) in kept:
            continue
        readings.append(Reading(api, index, micro, int(first_seen)))
        if last_seen != first_seen:
            readings.append(Reading(api, index, micro, int(last_seen)))
    with ctx.storage.write() as tx:
        tx.exclusive(op.id)
        store_and_project(ctx, tx, op, readings)
    return len(ctx.storage.readings(op.id, 0, 10**6)) - len(stored)
