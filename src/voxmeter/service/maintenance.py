"""Maintenance mode: a deployment-wide switch, recorded in the audit log when flipped."""

from __future__ import annotations

from voxmeter.domain import audit
from voxmeter.service.audit import record
from voxmeter.service.context import Context
from voxmeter.service.ports import Writer

MAINTENANCE = "maintenance"
"""The setting's name; its value is "on" while maintenance is on, absent otherwise."""


def set_maintenance(ctx: Context[Writer], on: bool) -> None:
    """Switch maintenance on or off (each switch is recorded, even when it changes nothing:
    an admin asked for it)."""
    with ctx.storage.write() as tx:
        tx.set_setting(MAINTENANCE, "on" if on else None)
        action = audit.MAINTENANCE_ON if on else audit.MAINTENANCE_OFF
        record(tx, ctx, action, None, {})
