"""What the dashboard shows beside an operation's figures, from the stored alerts, deliveries
and mirror sweeps: each alert with its last delivery, when a mirror last synced, and which
mirrors are stale."""

from __future__ import annotations

from typing import Protocol

from voxmeter.domain.alerts import On
from voxmeter.domain.mirrors import is_stale
from voxmeter.domain.quantities import format_micro
from voxmeter.service.ports import AlertReads, AlertSummary, MirrorReads, Tenancy


class NoticeReads(AlertReads, MirrorReads, Tenancy, Protocol):
    """What the notices read."""


class StoredNotices:
    """The dashboard's notices (the `DashboardNotices` port) read from storage."""

    __slots__ = ("_storage",)

    def __init__(self, storage: NoticeReads) -> None:
        self._storage = storage

    def alert_summaries(self, operation_id: int) -> list[AlertSummary]:
        found: list[AlertSummary] = []
        for alert in self._storage.alerts(operation_id):
            last = self._storage.deliveries(operation_id, alert.id, 1)
            attempt = last[0].last_attempt if last else None
            if attempt is None:
                when, status = (last[0].created, last[0].state) if last else (None, "")
            else:
                when = attempt.time
                status = str(attempt.status) if attempt.status is not None else attempt.error or ""
            stale = alert.on is On.STALE
            found.append(
                AlertSummary(
                    id=str(alert.id),
                    target="mirror" if stale else alert.product or "total",
                    on=alert.on.value,
                    threshold="" if stale else format_micro(alert.threshold),
                    last_delivery=when,
                    last_status=status,
                )
            )
        return found

    def last_synced(self, operation_id: int) -> int | None:
        mirror = self._storage.mirror(operation_id)
        return None if mirror is None else mirror.state.last_ok

    def is_stale(self, operation_id: int, now: int) -> bool:
        mirror = self._storage.mirror(operation_id)
        op = None if mirror is None else self._storage.operation(operation_id)
        if mirror is None or op is None:
            return False
        return is_stale(mirror.state, mirror.options, now, op.created)

    def stale_mirrors(self, now: int) -> set[int]:
        created = {op.id: op.created for op in self._storage.operations() if op.mirror}
        return {
            m.operation_id
            for m in self._storage.mirrors()
            if m.operation_id in created
            and is_stale(m.state, m.options, now, created[m.operation_id])
        }
