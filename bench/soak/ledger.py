"""What the soak sends, and what the server must therefore report."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from typing import Any
from zoneinfo import ZoneInfo

REDIS_URL = "redis://127.0.0.1:6379/0"
SERVER = "9901"
BIG_LICENSES = 1_000_000
SMALL_LICENSES = 1
SUM_PRODUCTS = ("ivr_minutes", "tts_chars", "interactions")
LEVEL_PRODUCT = "agent_script"
READ_APIS = ("ivr_minutes", "tts_chars", "interactions", "agent_script", "rec_minutes", "all")
PLAIN_DECIMAL = re.compile(r"^(0|[1-9]\d*)(\.\d*[1-9])?$")
SAMPLE_SECONDS = 10.0
JsonDict = dict[str, Any]

BAD = "400 bad input"
NO_TOKEN = "401 no token"
INVALID_TOKEN = "403 invalid token"
CONCURRENCY = "403 concurrency"
QUOTA = "403 quota"
UNKNOWN_ID = "404 unknown id"
CONCURRENCY_MSG = "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2)"


# --- what the soak sends, and what the server must therefore report --------------------------


def event_of(seq: int) -> tuple[str, Decimal]:
    """The product and quantity of soak event `seq`, derived so they never need storing."""
    mix = (seq * 2654435761) & 0xFFFFFFFF
    if seq % 997 == 5:
        return LEVEL_PRODUCT, Decimal(1 + mix % 500)
    product = SUM_PRODUCTS[seq % 3]
    if product == "ivr_minutes":
        return product, Decimal(1 + mix % 600_000).scaleb(-3)
    if product == "tts_chars":
        return product, Decimal(mix % 5_000_000).scaleb(-2)
    return product, Decimal(1 + mix % 3)


def contribution(product: str, quantity: Decimal) -> Decimal:
    """What one event adds to its sum/count product (IVR minutes round up per event)."""
    if product == "ivr_minutes":
        return quantity.to_integral_value(rounding=ROUND_CEILING)
    return quantity


def event_json(event_id: str, product: str, quantity: Decimal, when: str, seq: int) -> str:
    """One event, with the quantity sometimes a JSON number, sometimes a string or left out."""
    if product == "interactions" and quantity == 1 and seq % 2:
        return f'{{"id":"{event_id}","product":"{product}","time":"{when}"}}'
    if seq % 4 == 0:
        return f'{{"id":"{event_id}","product":"{product}","time":"{when}","quantity":{quantity}}}'
    return f'{{"id":"{event_id}","product":"{product}","time":"{when}","quantity":"{quantity}"}}'


def soak_id(seq: int) -> str:
    return f"soak-{seq:010d}"


@dataclass
class Ledger:
    """Acknowledged events and voids: the figures the server must show at the end."""

    zone: ZoneInfo
    acked: int = 0
    """Soak events 0..acked-1 are acknowledged as stored (ids are handed out in order)."""
    sums: dict[str, Decimal] = field(
        default_factory=lambda: dict.fromkeys(SUM_PRODUCTS, Decimal(0))
    )
    levels: dict[int, Decimal] = field(default_factory=dict)
    voided: set[int] = field(default_factory=set)
    holds: int = 0
    accepted_total: int = 0
    duplicates_total: int = 0
    uncertain: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def store(self, first: int, count: int, duplicates: int) -> None:
        """Soak events first..first+count-1 were acknowledged as new."""
        with self.lock:
            assert first == self.acked
            for seq in range(first, first + count):
                product, quantity = event_of(seq)
                if product == LEVEL_PRODUCT:
                    self.levels[seq] = quantity
                else:
                    self.sums[product] += contribution(product, quantity)
            self.acked = first + count
            self.accepted_total += count
            self.duplicates_total += duplicates

    def store_hold(self) -> None:
        """A concurrency-probe upload (one interaction) was acknowledged as new."""
        with self.lock:
            self.holds += 1
            self.sums["interactions"] += 1
            self.accepted_total += 1

    def void(self, seq: int) -> None:
        with self.lock:
            self.voided.add(seq)
            product, quantity = event_of(seq)
            if product == LEVEL_PRODUCT:
                del self.levels[seq]
            else:
                self.sums[product] -= contribution(product, quantity)

    def expected(self) -> dict[str, Decimal]:
        with self.lock:
            out = dict(self.sums)
            out[LEVEL_PRODUCT] = max(self.levels.values(), default=Decimal(0))
            return out

    def local_now(self) -> datetime:
        return datetime.now(self.zone)
