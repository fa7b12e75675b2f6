"""Alerts: defining them, firing them inside the change of usage that reaches a threshold, and
moving their deliveries through the outbox (docs/behaviour.md, Alerts).

`evaluate_alerts` is the one entry for every source of usage (a batch, a void, a mirror's
sweep): called inside that change's write transaction, after the meters are saved, it records
each alert's firing for the month (at most once: the storage's firing key) and adds its
delivery to the outbox, so both commit with the change or not at all. It reads nothing when
the operation has no armed alert for the month, and computes forecasts and amounts only for
alerts that measure them.

`check_stale_alerts` is the entry for staleness alerts, which no change of usage fires (a
mirror goes stale when nothing happens): called periodically, it fires each one whose mirror
is stale, at most once per staleness episode (the storage's stale firing key), recording the
firing and its delivery in one write.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

from voxmeter.domain import alerts as rules
from voxmeter.domain import audit
from voxmeter.domain.alerts import Alert, AlertError, Armed, On, Payload, State
from voxmeter.domain.catalog import Aggregation
from voxmeter.domain.forecast import forecast
from voxmeter.domain.meters import MeterKey, MeterState, figure
from voxmeter.domain.mirrors import MICROS_PER_MINUTE, is_stale, stale_limit, stale_since
from voxmeter.domain.months import Month, calendar
from voxmeter.domain.prices import Price, charge
from voxmeter.domain.quantities import format_micro
from voxmeter.domain.tenancy import Operation
from voxmeter.errors import ConfigError
from voxmeter.service.audit import record
from voxmeter.service.context import Context
from voxmeter.service.ports import (
    AlertReads,
    AlertWrites,
    Claimed,
    DeliveryAttempt,
    MeterWrites,
    MirrorReads,
    MirrorRecord,
    Outcome,
    SecretSealing,
    Tenancy,
    Writer,
)

MAX_LISTED = 1000
"""Deliveries or attempts listed at most per call."""


class AlertTransaction(AlertWrites, MeterWrites, Protocol):
    """What evaluating alerts needs of a write transaction."""


@dataclass(frozen=True, slots=True)
class NewAlert:
    """An alert as created, with its secret in clear: shown once, then only sealed."""

    alert: Alert
    secret: str
    generated: bool


def create_alert(
    ctx: Context[Writer],
    box: SecretSealing,
    op: Operation,
    *,
    product: str | None,
    threshold: str | None,
    on: str,
    url: str,
    secret: str | None = None,
    payload: str = "json",
) -> NewAlert:
    """Check the whole definition, then store it sealed beside its audit entry. An alert on
    usage needs a threshold; one on staleness (`on="stale"`) needs a mirror and takes neither
    a product nor a threshold."""
    if product is not None and product not in ctx.catalog:
        raise ConfigError(f"unknown product {product!r}")
    try:
        measure = On(on)
        kind = Payload(payload)
        rules.check_definition(product, measure)
        micro = _threshold(op, measure, threshold)
        rules.check_url(url)
        given = rules.check_secret(secret) if secret is not None else None
    except ValueError as exc:
        told = str(exc) if isinstance(exc, AlertError) else _choices(on, payload)
        raise ConfigError(told) from None
    clear = given or rules.new_secret()
    alert = Alert(0, op.id, product, measure, micro, url, box.seal(clear), kind, ctx.clock())
    with ctx.storage.write() as tx:
        alert = replace(alert, id=tx.create_alert(alert))
        record(tx, ctx, audit.ALERT_CREATE, op.id, _details(alert))
    return NewAlert(alert, clear, given is None)


def _threshold(op: Operation, measure: On, threshold: str | None) -> int:
    """The threshold in micro-units (0 for a staleness alert, which has none)."""
    if measure is On.STALE:
        if threshold is not None:
            raise AlertError("an alert --on stale has no threshold: leave out --threshold")
        if not op.mirror:
            raise AlertError(
                f"operation {op.name!r} is not a mirror: --on stale watches a mirror's sweeps"
            )
        return 0
    if threshold is None:
        raise AlertError(f"an alert --on {measure} needs --threshold")
    return rules.parse_threshold(threshold)


def _choices(on: str, payload: str) -> str:
    if on not in {str(o) for o in On}:
        return f"--on {on!r} must be one of: {', '.join(On)}"
    return f"--payload {payload!r} must be one of: {', '.join(Payload)}"


def _details(alert: Alert) -> dict[str, object]:
    """What the audit log says of an alert: never its secret."""
    if alert.on is On.STALE:
        return {
            "alert": alert.id,
            "on": str(alert.on),
            "webhook": rules.origin(alert.url),
            "payload": str(alert.payload),
        }
    return {
        "alert": alert.id,
        "product": alert.product or "total",
        "on": str(alert.on),
        "threshold": format_micro(alert.threshold),
        "webhook": rules.origin(alert.url),
        "payload": str(alert.payload),
    }


def delete_alert(ctx: Context[Writer], alert_id: int) -> Alert:
    """Delete a live alert (its deliveries stay listed); refused when there is none."""
    with ctx.storage.write() as tx:
        gone = tx.delete_alert(alert_id, ctx.clock())
        if gone is None:
            raise ConfigError(f"no alert with id {alert_id}")
        record(tx, ctx, audit.ALERT_DELETE, gone.operation_id, _details(gone))
    return gone


def evaluate_alerts(
    tx: AlertTransaction,
    ctx: Context[object],
    op: Operation,
    months_touched: Iterable[int],
    products_touched: Collection[str],
    saved: Mapping[MeterKey, MeterState] | None = None,
) -> int:
    """Fire, in `tx`, every armed alert of `op` that the change (of `products_touched` in
    `months_touched`, meters already saved) made reach its threshold; return how many
    deliveries were added. An alert on the total is evaluated whatever product changed.
    `saved`: month meters the caller has just saved (not read again)."""
    added = 0
    now = ctx.clock()
    for month in sorted(set(months_touched)):
        armed = tx.armed_alerts(op.id, month)
        if not armed:
            continue
        values = _Values(tx, ctx, op, month, now, saved or {})
        for alert in armed:
            if alert.on is On.STALE:
                continue  # fired by check_stale_alerts, never by a change of usage
            if alert.product is not None and alert.product not in products_touched:
                continue
            measured, value, scale = values.of(alert)
            if value < alert.threshold * scale:
                continue
            text = rules.value_text(measured, values.raw[alert.product, alert.on], op.currency)
            if not tx.record_firing(alert.id, month, now, text):
                continue
            firing = rules.Firing(alert, op.name, op.server, month, text, _iso(now))
            tx.enqueue_delivery(alert.id, op.id, month, rules.body(firing), now)
            added += 1
    return added


def _iso(micros: int) -> str:
    return (
        datetime.fromtimestamp(micros / 1_000_000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


@dataclass
class _Values:
    """A month's figures, forecasts and amounts, each read or computed once, on demand."""

    tx: AlertTransaction
    ctx: Context[object]
    op: Operation
    month: int
    now: int
    saved: Mapping[MeterKey, MeterState]
    _figures: dict[str, int] = field(default_factory=dict)
    _prices: dict[str, Price] | None = None
    raw: dict[tuple[str | None, On], int] = field(default_factory=dict)
    _compared: dict[tuple[str | None, On], tuple[On, int, int]] = field(default_factory=dict)

    def of(self, alert: Armed) -> tuple[On, int, int]:
        """(what is measured, the value scaled for comparing, the threshold's scale): the
        alert has reached its threshold when `value >= threshold * scale`. Each product and
        measure is computed once."""
        key = (alert.product, alert.on)
        found = self._compared.get(key)
        if found is None:
            value = self.raw[key] = self._compute(alert)
            money = rules.amount_on(alert.on, alert.product)
            compared, scale = rules.comparable(money, value, self.op.currency)
            found = self._compared[key] = (On.AMOUNT if money else alert.on, compared, scale)
        return found

    def _compute(self, alert: Armed) -> int:
        if alert.product is None:
            return self._total(alert.on)
        if alert.on is On.FIGURE:
            return self._figure(alert.product)
        if alert.on is On.FORECAST:
            return self._forecast(alert.product)
        price = self._price_list().get(alert.product)
        return 0 if price is None else charge(price, self._figure(alert.product)).amount

    def _figure(self, api: str) -> int:
        if api not in self._figures:
            self._read([api])
        return self._figures[api]

    def _read(self, apis: list[str]) -> None:
        wanted = [a for a in apis if a not in self._figures]
        unknown = [(a, self.month) for a in wanted if (a, self.month) not in self.saved]
        fetched = self.tx.meters(self.op.id, unknown) if unknown else {}
        for api in wanted:
            key = (api, self.month)
            state = self.saved.get(key)
            if state is None:
                state = fetched.get(key)
            aggregation = self._aggregation(api)
            carried = None
            if aggregation is Aggregation.MAX:
                carried = self.tx.level_before(self.op.id, api, self.month)
            self._figures[api] = figure(aggregation, state, carried)

    def _aggregation(self, api: str) -> Aggregation:
        product = self.ctx.catalog.get(api)
        return product.aggregation if product is not None else Aggregation.SUM

    def _forecast(self, api: str) -> int:
        start, end = calendar(self.op.timezone).window(self.month)
        return forecast(self._aggregation(api), self._figure(api), start, end, self.now)

    def _price_list(self) -> dict[str, Price]:
        if self._prices is None:
            self._prices = self.tx.prices_now(self.op.id, self.op.currency)
        return self._prices

    def _total(self, on: On) -> int:
        """The statement total (or its forecast): the sum of the priced lines' amounts."""
        prices = self._price_list()
        self._read(list(prices))
        total = 0
        for api, price in prices.items():
            items = self._forecast(api) if on is On.FORECAST else self._figure(api)
            total += charge(price, items).amount
        return total


# -- staleness ------------------------------------------------------------------------------


class StaleReads(AlertReads, MirrorReads, Tenancy, Writer, Protocol):
    """What checking staleness alerts reads and writes."""


def check_stale_alerts(ctx: Context[StaleReads]) -> list[tuple[int, str]]:
    """Fire every staleness alert whose mirror is stale now and that has not fired for this
    staleness episode: the firing and its delivery in one write, the firing key (alert,
    episode) making a second one (another process, a restart) a no-op. Returns the (alert,
    operation name) pairs fired. With no staleness alert, it reads one query and nothing more;
    otherwise each watched mirror and its operation once."""
    watches = ctx.storage.stale_watches()
    if not watches:
        return []
    now = ctx.clock()
    mirrors: dict[int, tuple[Operation, MirrorRecord] | None] = {}
    fired: list[tuple[int, str]] = []
    for watch in watches:
        if watch.operation_id not in mirrors:
            op = ctx.storage.operation(watch.operation_id)
            found = ctx.storage.mirror(watch.operation_id)
            mirrors[watch.operation_id] = None if op is None or found is None else (op, found)
        pair = mirrors[watch.operation_id]
        if pair is None:
            continue
        op, mirror = pair
        state, options = mirror.state, mirror.options
        episode = stale_since(state, op.created)
        stale = is_stale(state, options, now, op.created)
        if not rules.stale_fires(stale, episode, watch.fired_through):
            continue
        month = calendar(op.timezone).current_month(now)
        body = rules.stale_body(
            rules.StaleFiring(
                alert_id=watch.alert_id,
                payload=watch.payload,
                operation=op.name,
                server=op.server,
                month=month,
                last_sync=None if state.last_ok is None else _iso(state.last_ok),
                stale_after_minutes=stale_limit(state, options) // MICROS_PER_MINUTE,
                fired_at=_iso(now),
            )
        )
        with ctx.storage.write() as tx:
            if tx.record_stale_firing(watch.alert_id, episode, now):
                tx.enqueue_delivery(watch.alert_id, op.id, month, body, now)
                fired.append((watch.alert_id, op.name))
    return fired


# -- listing ----------------------------------------------------------------------------------


def list_alerts(ctx: Context[AlertReads], op: Operation | None) -> list[Alert]:
    return ctx.storage.alerts(None if op is None else op.id)


def month_text(month: int) -> str:
    return str(Month.from_index(month))


# -- delivering -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How deliveries are retried: exponential backoff with full jitter from `base_delay`
    seconds (each wait at most `max_delay`), until `retry_for` seconds after the first
    attempt; then the delivery is failed."""

    base_delay: float = 10.0
    max_delay: float = 3600.0
    retry_for: float = 86_400.0
    timeout: float = 10.0
    lease: float = 60.0
    """Seconds a claimed delivery is held by its sender (longer than one attempt)."""


def outcome(
    policy: DeliveryPolicy, claimed: Claimed, attempt: DeliveryAttempt, draw: float
) -> Outcome:
    """Where a delivery goes after this attempt: a 2xx delivers it; otherwise it waits a
    jittered backoff, unless it has been retried for `retry_for` already."""
    if attempt.status is not None and 200 <= attempt.status < 300:
        return Outcome(str(State.DELIVERED))
    attempts = claimed.attempts + 1
    wait = rules.backoff(attempts, policy.base_delay, policy.max_delay, draw)
    next_attempt = attempt.time + attempt.duration + int(wait * 1_000_000)
    first = claimed.first_attempt if claimed.first_attempt is not None else attempt.time
    if rules.gives_up(first, next_attempt, int(policy.retry_for * 1_000_000)):
        return Outcome(str(State.FAILED))
    return Outcome(str(State.PENDING), next_attempt)


def signed_headers(box: SecretSealing, claimed: Claimed, timestamp: int) -> dict[str, str]:
    """Both signatures of a delivery's body, made with the alert's opened secret. The
    Standard Webhooks id is the delivery's, the same on every attempt (receivers dedupe)."""
    secret = box.open(claimed.secret)
    message_id = f"msg_{claimed.id}"
    return {
        "content-type": "application/json",
        "user-agent": "voxmeter-webhooks",
        "x-voxmeter-signature": rules.voxmeter_signature(secret, claimed.body),
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": rules.standard_signature(secret, message_id, timestamp, claimed.body),
    }


def finish(
    ctx: Context[Writer], owner: str, claimed: Claimed, attempt: DeliveryAttempt, result: Outcome
) -> None:
    """Log the attempt and move the delivery on, in one write."""
    with ctx.storage.write() as tx:
        tx.record_attempt(claimed.id, owner, attempt, result)
