"""One scenario's bookkeeping: every request and its reply, batches acknowledged or unknown."""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from bench.faults.events import BATCH, PRODUCTS, RESEND, RESEND_EVERY, Batch
from bench.faults.wire import Reply

# --- one scenario's bookkeeping -------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    kind: str
    """ingest, read, health, quota, limits"""
    who: str
    """W (writer token) or R (reader token) of the main operation, or '-'"""
    started: float
    ended: float
    status: int
    unavailable_ok: bool
    detail: str


class Run:
    """Every batch sent, what became of it, and every request's outcome, for one scenario."""

    def __init__(self, port: int, base: datetime, max_batches: int) -> None:
        self.port = port
        self.base = base
        self.base_epoch = int(base.timestamp())
        self.max_batches = max_batches
        self.lock = threading.Lock()
        self.next_number = 0
        self.stored: dict[int, Batch] = {}
        """Batches known to be stored: acknowledged, or resolved and sent again."""
        self.stored_order: list[int] = []
        self.unknown: dict[int, tuple[Batch, str]] = {}
        self.totals = dict.fromkeys(PRODUCTS, Decimal(0))
        self.samples: list[Sample] = []
        self.problems: list[str] = []
        self.batches_acked = 0
        self.events_acked = 0
        self.never_sent = 0
        self.resolutions: Counter[str] = Counter()
        self.resolved_by_reason: dict[str, Counter[str]] = {}
        self.outages: list[tuple[float, float]] = []

    def problem(self, text: str) -> None:
        with self.lock:
            if len(self.problems) < 50:
                self.problems.append(text)

    def record(self, kind: str, who: str, reply: Reply) -> Reply:
        sample = Sample(
            kind,
            who,
            reply.started,
            reply.ended,
            reply.status,
            reply.unavailable_ok,
            reply.describe() if reply.status != 200 else "",
        )
        with self.lock:
            self.samples.append(sample)
        return reply

    def new_batch(self, rng: random.Random) -> Batch | None:
        with self.lock:
            number = self.next_number
            if number >= self.max_batches:
                return None
            self.next_number += 1
            if number % RESEND_EVERY == RESEND_EVERY - 1 and self.stored_order:
                source = self.stored[rng.choice(self.stored_order)]
                picked = rng.sample(range(source.fresh), RESEND)
                return Batch(number, BATCH - RESEND, tuple((source.number, i) for i in picked))
        return Batch(number, BATCH, ())

    def store(self, batch: Batch) -> None:
        """The batch is stored now: its events may be re-sent and count in the figures."""
        totals = batch.totals()
        with self.lock:
            self.stored[batch.number] = batch
            self.stored_order.append(batch.number)
            for product, value in totals.items():
                self.totals[product] += value

    def acknowledge(self, batch: Batch, reply: Reply) -> None:
        """A 200: the batch is stored; its counts must say which events were new."""
        data = reply.data()
        if (data["accepted"], data["duplicates"]) != (batch.fresh, len(batch.resent)):
            self.problem(
                f"batch {batch.number}: 200 with accepted={data['accepted']} "
                f"duplicates={data['duplicates']}, expected {batch.fresh}/{len(batch.resent)}"
            )
        self.store(batch)
        with self.lock:
            self.batches_acked += 1
            self.events_acked += batch.fresh

    def lose(self, batch: Batch, why: str) -> None:
        with self.lock:
            self.unknown[batch.number] = (batch, why)

    def drop(self) -> None:
        with self.lock:
            self.never_sent += 1

    def take_unknown(self) -> list[tuple[Batch, str]]:
        with self.lock:
            out = [self.unknown[n] for n in sorted(self.unknown)]
            self.unknown.clear()
        return out

    def samples_between(self, start: float, end: float) -> list[Sample]:
        """Requests in flight at any moment of [start, end]."""
        with self.lock:
            return [s for s in self.samples if s.started <= end and s.ended >= start]
