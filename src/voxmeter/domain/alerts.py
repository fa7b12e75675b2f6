"""Alerts: when a month's figure, forecast or amount reaches a threshold, or a mirror becomes
stale, tell a webhook (docs/behaviour.md, Alerts).

Pure rules: what is measured, when a threshold is reached, when a staleness alert fires, the
body a receiver gets, how the two signatures are made, and when a failed delivery is tried
again. Figures are micro-units
and amounts minor units of the operation's currency, compared as exact integers.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from voxmeter.domain.money import format_minor, minor_units
from voxmeter.domain.months import Month
from voxmeter.domain.quantities import MICRO, QuantityError, format_micro, to_micro

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of every such secret, not one
SECRET_BYTES = 24
"""Random bytes of a generated signing secret (192 bits)."""
MAX_URL = 2048
MAX_BODY_TEXT = 512
"""Characters of a receiver's error kept per attempt."""


class AlertError(ValueError):
    """A bad alert definition; the message says what to change."""


class On(enum.StrEnum):
    """What an alert measures: a product's month figure, its month-end forecast, or the
    statement amount (a product's line, or with no product the statement total); or, for a
    mirror, whether it is stale (no product, no threshold)."""

    FIGURE = "figure"
    FORECAST = "forecast"
    AMOUNT = "amount"
    STALE = "stale"


class Payload(enum.StrEnum):
    JSON = "json"
    SLACK = "slack"


class State(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert as stored. `product` None is the statement total; `threshold` is micro-units
    (of the product's unit, or of the currency for amounts); `secret` is sealed."""

    id: int
    operation_id: int
    product: str | None
    on: On
    threshold: int
    url: str
    secret: str
    payload: Payload
    created: int
    deleted: int | None = None


@dataclass(frozen=True, slots=True)
class Armed:
    """What evaluating an alert needs (not its receiver or secret)."""

    id: int
    product: str | None
    on: On
    threshold: int
    payload: Payload


def parse_threshold(text: str) -> int:
    """A non-negative decimal with at most 6 decimal places, in micro-units."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise AlertError(f"threshold {text!r} is not a decimal number") from None
    if not value.is_finite() or value < 0:
        raise AlertError(f"threshold {text!r} must be a number of at least 0")
    try:
        return to_micro(value)
    except QuantityError as exc:
        raise AlertError(f"threshold {text!r} {exc}") from None


def check_definition(product: str | None, on: On) -> None:
    """A total has no single unit: it is measured in money (amount or forecast amount). A
    staleness alert watches a whole mirror: it has no product."""
    if on is On.STALE and product is not None:
        raise AlertError("an alert --on stale watches the whole mirror: leave out --product")
    if product is None and on is On.FIGURE:
        raise AlertError("an alert on the total measures money: use --on amount or forecast")


def check_url(url: str) -> str:
    """An absolute http(s) URL with a host."""
    parts = urlsplit(url)
    if len(url) > MAX_URL or parts.scheme not in ("http", "https") or not parts.hostname:
        raise AlertError(f"webhook {url!r} must be an http:// or https:// URL with a host")
    return url


def origin(url: str) -> str:
    """scheme://host[:port]: the rest of a webhook URL may be a credential."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` and the base64 of random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def check_secret(secret: str) -> str:
    """A given secret must be a Standard Webhooks one, so both signatures can be made."""
    try:
        key = signing_key(secret)
    except AlertError:
        raise AlertError(
            "the secret must be whsec_ followed by the base64 of 24 to 64 random bytes"
        ) from None
    if not 24 <= len(key) <= 64:
        raise AlertError("the secret must be whsec_ followed by the base64 of 24 to 64 bytes")
    return secret


def signing_key(secret: str) -> bytes:
    """The Standard Webhooks key: the base64 after the `whsec_` prefix, decoded."""
    if not secret.startswith(SECRET_PREFIX):
        raise AlertError("not a whsec_ secret")
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except ValueError:
        raise AlertError("not a whsec_ secret") from None


def comparable(money: bool, value: int, currency: str) -> tuple[int, int]:
    """(value, scale) such that a threshold (micro-units) is reached when `value >= threshold *
    scale`: exact integers for a figure (micro-units) or an amount (minor units of
    `currency`)."""
    if money:
        scale: int = 10 ** minor_units(currency)
        return value * MICRO, scale
    return value, 1


def reached(on: On, value: int, threshold: int, currency: str) -> bool:
    """Whether `value` (micro-units, or minor units of `currency` for amounts) is at least
    `threshold` (micro-units)."""
    compared, scale = comparable(on is On.AMOUNT, value, currency)
    return compared >= threshold * scale


def value_text(on: On, value: int, currency: str) -> str:
    return format_minor(value, currency) if on is On.AMOUNT else format_micro(value)


def amount_on(on: On, product: str | None) -> bool:
    """Whether the value is money (an amount, or a total's forecast)."""
    return on is On.AMOUNT or product is None


@dataclass(frozen=True, slots=True)
class Firing:
    """One alert reaching its threshold in one month."""

    alert: Armed
    operation: str
    server: str
    month: int
    value: str
    fired_at: str
    """ISO 8601 UTC instant."""


def body(firing: Firing) -> bytes:
    """What the receiver gets: the event as JSON, or a Slack/Teams `{"text"}` message."""
    alert = firing.alert
    threshold = format_micro(alert.threshold)
    month = str(Month.from_index(firing.month))
    if alert.payload is Payload.SLACK:
        what = alert.product or "total"
        text = (
            f"voxmeter alert {alert.id}: {firing.operation} ({firing.server}) {what} {alert.on}"
            f" for {month} reached {firing.value} (threshold {threshold})"
        )
        doc: dict[str, object] = {"text": text}
    else:
        doc = {
            "alert_id": alert.id,
            "operation": firing.operation,
            "server": firing.server,
            "product": alert.product,
            "month": month,
            "threshold": threshold,
            "on": str(alert.on),
            "value": firing.value,
            "fired_at": firing.fired_at,
        }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class StaleFiring:
    """A staleness alert firing: its mirror has had no successful sweep (`last_sync`, None
    before any) for longer than its staleness limit (`stale_after_minutes`)."""

    alert_id: int
    payload: Payload
    operation: str
    server: str
    month: int
    """The operation's current month when it fired (what the outbox lists it under)."""
    last_sync: str | None
    """ISO 8601 UTC instant of the last successful sweep."""
    stale_after_minutes: int
    fired_at: str
    """ISO 8601 UTC instant."""


def stale_fires(stale: bool, episode: int, fired_through: int | None) -> bool:
    """Whether a staleness alert fires now: its mirror is stale and the alert has not fired
    for this staleness episode yet. An episode is named by the instant staleness is counted
    from (the last successful sweep, or the mirror's creation before any), which only grows;
    `fired_through` is the latest episode the alert fired for (None: never)."""
    return stale and (fired_through is None or episode > fired_through)


def stale_body(firing: StaleFiring) -> bytes:
    """The receiver's body for a staleness alert: the envelope of every alert (`product`,
    `threshold` and `value` null) with the last successful sweep and the staleness limit, or
    a Slack/Teams `{"text"}` message saying it plainly."""
    if firing.payload is Payload.SLACK:
        since = (
            "it has never been swept successfully"
            if firing.last_sync is None
            else f"its last successful sweep was at {firing.last_sync}"
        )
        text = (
            f"voxmeter alert {firing.alert_id}: mirror {firing.operation} ({firing.server}) is"
            f" stale: {since}, and it is stale after {firing.stale_after_minutes} minutes"
            " without one"
        )
        doc: dict[str, object] = {"text": text}
    else:
        doc = {
            "alert_id": firing.alert_id,
            "operation": firing.operation,
            "server": firing.server,
            "product": None,
            "month": str(Month.from_index(firing.month)),
            "threshold": None,
            "on": str(On.STALE),
            "value": None,
            "last_sync": firing.last_sync,
            "stale_after_minutes": firing.stale_after_minutes,
            "fired_at": firing.fired_at,
        }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def voxmeter_signature(secret: str, payload: bytes) -> str:
    """`X-Voxmeter-Signature`: the hex HMAC-SHA256 of the body, keyed by the secret's text."""
    return "sha256=" + hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def standard_signature(secret: str, message_id: str, timestamp: int, payload: bytes) -> str:
    """`webhook-signature` of Standard Webhooks: `v1,` and the base64 HMAC-SHA256 of
    `id.timestamp.body` keyed by the secret's decoded key."""
    signed = f"{message_id}.{timestamp}.".encode() + payload
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def backoff(attempts: int, base: float, cap: float, draw: float) -> float:
    """Seconds before the next try after `attempts` failed ones: exponential with full
    jitter, `draw` in [0, 1) times min(cap, base * 2 ** (attempts - 1))."""
    doublings: int = min(max(attempts - 1, 0), 62)
    ceiling = min(cap, base * float(2**doublings))
    return draw * ceiling


def gives_up(first_attempt: int, next_attempt: int, retry_for: int) -> bool:
    """Whether a delivery whose next try would be at `next_attempt` (microseconds) has been
    retried long enough: at least `retry_for` microseconds after its first attempt."""
    return next_attempt - first_attempt > retry_for
