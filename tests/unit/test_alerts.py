"""Alert rules: thresholds, crossing, the body, both signatures, the backoff schedule; and the
service's evaluation on the in-memory fake."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from tests.fakes import FakeSecretBox, MemoryDatabase
from tests.integration.support import ev
from voxmeter.domain import alerts as rules
from voxmeter.domain.alerts import AlertError, Armed, On, Payload
from voxmeter.domain.quantities import MICRO
from voxmeter.domain.tenancy import Operation
from voxmeter.service.alerts import DeliveryPolicy, create_alert, outcome, signed_headers
from voxmeter.service.context import Context
from voxmeter.service.ingest import ingest_batch
from voxmeter.service.ports import Claimed, DeliveryAttempt

SECOND = 1_000_000


@given(st.decimals(min_value=0, max_value=10**9, places=6, allow_nan=False))
def test_thresholds_are_exact_micro_units(value: Decimal) -> None:
    assert rules.parse_threshold(str(value)) == int(value * MICRO)


@pytest.mark.parametrize("text", ["-1", "NaN", "Infinity", "1e400", "0.0000001", "x", ""])
def test_bad_thresholds_are_refused(text: str) -> None:
    with pytest.raises(AlertError):
        rules.parse_threshold(text)


@given(
    st.integers(min_value=0, max_value=10**15),
    st.integers(min_value=0, max_value=10**15),
    st.sampled_from(["USD", "JPY", "BHD"]),
)
def test_amounts_compare_in_the_currency_units(minor: int, threshold: int, currency: str) -> None:
    digits = {"USD": 2, "JPY": 0, "BHD": 3}[currency]
    amount = Decimal(minor).scaleb(-digits)
    assert rules.reached(On.AMOUNT, minor, threshold, currency) == (
        amount >= Decimal(threshold) / MICRO
    )
    assert rules.reached(On.FIGURE, minor, threshold, currency) == (minor >= threshold)


@given(st.integers(min_value=1, max_value=200), st.floats(min_value=0, max_value=0.999999))
def test_backoff_is_full_jitter_under_a_doubling_ceiling(attempts: int, draw: float) -> None:
    wait = rules.backoff(attempts, 10.0, 3600.0, draw)
    ceiling = min(3600.0, 10.0 * 2 ** min(attempts - 1, 62))
    assert 0 <= wait <= ceiling
    assert wait == pytest.approx(draw * ceiling)


def _claimed(attempts: int = 0, first: int | None = None) -> Claimed:
    return Claimed(
        7, 3, b'{"a":1}', "http://x", FakeSecretBox().seal(rules.new_secret()), attempts, first
    )


def test_a_2xx_delivers_anything_else_is_retried_until_the_retry_period_ends() -> None:
    policy = DeliveryPolicy(base_delay=10.0, retry_for=86_400.0)
    t0 = 1_000 * SECOND
    ok = DeliveryAttempt(t0, 204, None, 5)
    assert outcome(policy, _claimed(), ok, 0.5).state == "delivered"
    for status in (None, 301, 404, 500):
        failed = DeliveryAttempt(t0, status, "no", 5)
        first = outcome(policy, _claimed(), failed, 0.5)
        assert (first.state, first.next_attempt) == ("pending", t0 + 5 + 5 * SECOND)
    # 23 h 59 min after the first attempt: retried; past 24 h: failed.
    late = DeliveryAttempt(t0 + 86_340 * SECOND, 500, "no", 5)
    assert outcome(policy, _claimed(40, t0), late, 0.0).state == "pending"
    assert outcome(policy, _claimed(40, t0), late, 0.99).state == "failed"


def test_a_full_day_of_retries_takes_dozens_of_attempts() -> None:
    """With the defaults, a receiver down for a day is tried again and again (not twice)."""
    policy = DeliveryPolicy()
    now, first, attempts, state = 0, None, 0, "pending"
    while state == "pending":
        attempt = DeliveryAttempt(now, None, "refused", 0)
        result = outcome(policy, _claimed(attempts, first), attempt, 0.5)
        first = 0 if first is None else first
        attempts += 1
        state = result.state
        now = result.next_attempt or now
    assert now >= 86_400 * SECOND - 3_600 * SECOND
    assert attempts > 40


@given(st.binary(max_size=2000), st.integers(min_value=1_600_000_000, max_value=2_000_000_000))
def test_both_signatures_verify(body: bytes, timestamp: int) -> None:
    secret = rules.new_secret()
    key = base64.b64decode(secret.removeprefix("whsec_"))
    assert len(key) == rules.SECRET_BYTES
    signed = rules.standard_signature(secret, "msg_1", timestamp, body)
    expected = hmac.new(key, f"msg_1.{timestamp}.".encode() + body, hashlib.sha256).digest()
    assert signed == "v1," + base64.b64encode(expected).decode()
    hexed = rules.voxmeter_signature(secret, body)
    assert hexed == "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_the_standard_webhooks_library_verifies_the_headers() -> None:
    box = FakeSecretBox()
    secret = rules.new_secret()
    claimed = Claimed(9, 1, b'{"alert_id":1}', "http://x", box.seal(secret), 0, None)
    headers = signed_headers(box, claimed, int(time.time()))
    assert Webhook(secret).verify(claimed.body, headers) == {"alert_id": 1}
    with pytest.raises(Exception, match=r"(?i)signature"):
        Webhook(rules.new_secret()).verify(claimed.body, headers)
    stale = signed_headers(box, claimed, int(time.time()) - 3600)
    with pytest.raises(Exception, match=r"(?i)timestamp|old"):
        Webhook(secret).verify(claimed.body, stale)


def test_bodies() -> None:
    armed = Armed(4, None, On.FORECAST, 1_500 * MICRO, Payload.JSON)
    firing = rules.Firing(
        armed, "acme", "9901", 2026 * 12 + 4, "1512.5", "2026-05-15T12:00:00.000Z"
    )
    assert json.loads(rules.body(firing)) == {
        "alert_id": 4,
        "operation": "acme",
        "server": "9901",
        "product": None,
        "month": "2026-05",
        "threshold": "1500",
        "on": "forecast",
        "value": "1512.5",
        "fired_at": "2026-05-15T12:00:00.000Z",
    }
    slack = rules.Firing(
        Armed(4, "ivr_minutes", On.FIGURE, MICRO, Payload.SLACK),
        "acme",
        "9901",
        2026 * 12 + 4,
        "2",
        "",
    )
    (text,) = json.loads(rules.body(slack)).values()
    assert "acme" in text
    assert "ivr_minutes" in text
    assert "2026-05" in text


def test_origin_hides_the_path() -> None:
    assert (
        rules.origin("https://hooks.slack.com/services/T0/B0/secret") == "https://hooks.slack.com"
    )
    assert rules.origin("http://[::1]:8080/x?y") == "http://[::1]:8080"


def test_an_alert_fires_with_the_change_that_reaches_it(
    ctx: Context[MemoryDatabase], op: Operation
) -> None:
    ingest_batch(ctx, op, [ev("a", "rsync", "2026-05-02T00:00:00Z", "5")])
    create_alert(
        ctx, FakeSecretBox(), op, product="rsync", threshold="6", on="figure", url="http://h"
    )
    ingest_batch(ctx, op, [ev("b", "rsync", "2026-05-02T00:00:00Z", "0.5")])
    assert ctx.storage.next_due() is None
    ingest_batch(ctx, op, [ev("c", "rsync", "2026-05-02T00:00:00Z", "0.5")])
    assert ctx.storage.next_due() == ctx.clock()
