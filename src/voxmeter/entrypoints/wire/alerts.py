"""Alerts and deliveries as the API and the command show them: times in the operation's zone
(or UTC), the webhook as its origin only, never a secret."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from voxmeter.domain.alerts import Alert, On, origin
from voxmeter.domain.months import from_micros
from voxmeter.domain.quantities import format_micro
from voxmeter.entrypoints.http.replies import AlertOut, AttemptOut, DeliveryOut
from voxmeter.service.alerts import month_text
from voxmeter.service.ports import AlertReads, Delivery, DeliveryAttempt

DELIVERIES_SHOWN = 5
"""Last deliveries listed with each alert, unless asked for more (up to the next)."""
MOST_DELIVERIES_SHOWN = 100


def attempt_out(attempt: DeliveryAttempt, zone: ZoneInfo) -> AttemptOut:
    return AttemptOut(
        time=from_micros(attempt.time, zone).isoformat(),
        status=attempt.status,
        error=attempt.error,
        duration_ms=attempt.duration // 1000,
    )


def delivery_out(delivery: Delivery, zone: ZoneInfo) -> DeliveryOut:
    last = delivery.last_attempt
    return DeliveryOut(
        id=delivery.id,
        month=month_text(delivery.month),
        state=delivery.state,  # type: ignore[arg-type]
        attempts=delivery.attempts,
        created=from_micros(delivery.created, zone).isoformat(),
        last_attempt=None if last is None else attempt_out(last, zone),
    )


def alert_out(alert: Alert, deliveries: list[Delivery], zone: ZoneInfo) -> AlertOut:
    return AlertOut(
        id=alert.id,
        product=alert.product,
        on=str(alert.on),  # type: ignore[arg-type]
        threshold=None if alert.on is On.STALE else format_micro(alert.threshold),
        webhook=origin(alert.url),
        payload=str(alert.payload),  # type: ignore[arg-type]
        created=from_micros(alert.created, zone).isoformat(),
        deliveries=[delivery_out(d, zone) for d in deliveries],
    )


def alerts_of(
    storage: AlertReads, operation_id: int, zone: ZoneInfo, shown: int = DELIVERIES_SHOWN
) -> list[AlertOut]:
    """An operation's alerts, each with its last `shown` deliveries."""
    return [
        alert_out(a, storage.deliveries(operation_id, a.id, shown), zone)
        for a in storage.alerts(operation_id)
    ]
