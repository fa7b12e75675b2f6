"""The batches the senders send: time-ordered ids, known Decimal quantities, re-sent events."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from pathlib import Path

SCENARIOS = ("sqlite-kill", "pg-kill", "redis-restart", "pg-restart")
BATCH = 10_000
RESEND = 1_000
RESEND_EVERY = 4
PRODUCTS = ("ivr_minutes", "rsync", "tts_chars", "interactions")
PAGE = 60_000
CLIENT_TIMEOUT = 30.0
HANG_BOUND = 10.0
RECOVERY_BOUND = 30.0
FLUSH_SETTLE = 2.5
"""Seconds a quiet counter needs to reach the database (each process saves them every second)."""
COUNTS_AT_RISK = 2.0
"""Seconds of request counts a Redis restart may lose (the README: "the last second")."""
ADMITTED = frozenset({200, 400, 404, 409, 413, 504})
"""Statuses of requests that passed admission and so count against the daily quota."""
BUSY = "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2)"
REPORTS = Path(__file__).resolve().parents[1] / "reports"


# --- events ---------------------------------------------------------------------------------


def event_spec(number: int, index: int) -> tuple[str, str, int, str | None]:
    """(id, product, microseconds after the run's base time, quantity) of one event.

    Derived from (batch, index) alone, so a re-sent copy is identical and any stored event can
    be checked field by field. Batch `number` owns the second `base + number`, so listing that
    one second shows exactly what is stored of its fresh events.
    """
    key = f"fx-{number:07d}-{index:05d}"
    product = PRODUCTS[(number + index) % len(PRODUCTS)]
    k = number * 7_919 + index * 104_729
    quantity: str | None
    if product == "ivr_minutes":
        quantity = f"{k % 60}.{k % 999_983:06d}"
    elif product == "rsync":
        quantity = f"0.{k * 31 % 1_000_000:06d}"
    elif product == "tts_chars":
        quantity = str(1 + k % 5_000)
    else:
        quantity = None
    return key, product, number * 1_000_000 + index * 100, quantity


def contribution(product: str, quantity: str | None) -> Decimal:
    """What one event adds to its product's month figure (all four products are additive)."""
    value = Decimal(1) if quantity is None else Decimal(quantity)
    if product == "ivr_minutes":
        return value.to_integral_value(rounding=ROUND_CEILING)
    return value


def plain(value: Decimal) -> str:
    """A figure as the API writes `items`."""
    if value == 0:
        return "0"
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class Batch:
    """Fresh events `fx-<number>-<0..fresh-1>`, then copies of acknowledged events."""

    number: int
    fresh: int
    resent: tuple[tuple[int, int], ...]

    def specs(self) -> Iterator[tuple[str, str, int, str | None]]:
        for index in range(self.fresh):
            yield event_spec(self.number, index)
        for number, index in self.resent:
            yield event_spec(number, index)

    def fresh_ids(self) -> set[str]:
        return {event_spec(self.number, i)[0] for i in range(self.fresh)}

    def totals(self) -> dict[str, Decimal]:
        """Figure contributions of the fresh events, by product."""
        out = dict.fromkeys(PRODUCTS, Decimal(0))
        for i in range(self.fresh):
            _, product, _, quantity = event_spec(self.number, i)
            out[product] += contribution(product, quantity)
        return out

    def body(self, base: datetime) -> bytes:
        parts = []
        for key, product, offset, quantity in self.specs():
            when = (base + timedelta(microseconds=offset)).isoformat()
            extra = "" if quantity is None else f',"quantity":"{quantity}"'
            parts.append(f'{{"id":"{key}","product":"{product}","time":"{when}"{extra}}}')
        return ("[" + ",".join(parts) + "]").encode()
