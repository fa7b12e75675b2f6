"""In-process limits for the embedded mode: exact within the one server process.

Counters are persisted to storage (`flush`), so the CLI can show today's use per token and a
restart keeps the day's counts; at most the last flush interval is lost in a crash.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict

from voxmeter.service.ports import Admission, Storage


class InProcessLimiter:
    in_process = True
    """Admissions are a few dictionary updates under a lock: safe on the event loop."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = defaultdict(int)
        self._token_day: dict[tuple[str, str], int] = {}
        self._op_day: dict[tuple[int, str], int] = defaultdict(int)
        self._token_op: dict[str, int] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._last_used: dict[str, int] = {}

    def restore(self, days: list[str]) -> None:
        """Load the persisted counts of these days (call before serving)."""
        owners = {t.id: t.operation_id for t in self._storage.tokens(None)}
        with self._lock:
            for day in days:
                for token_id, n in self._storage.request_counts(day, None).items():
                    op = owners.get(token_id)
                    if op is None:
                        continue
                    self._token_day[(token_id, day)] = n
                    self._token_op[token_id] = op
                    self._op_day[(op, day)] += n

    def admit(
        self, token_id: str, operation_id: int, day: str, max_in_flight: int, quota: int
    ) -> Admission:
        token_day, op_day = (token_id, day), (operation_id, day)
        with self._lock:
            in_flight = self._in_flight.get(token_id, 0)
            used_token = self._token_day.get(token_day, 0)
            used_op = self._op_day.get(op_day, 0)
            if in_flight >= max_in_flight:
                return Admission("busy", used_token, used_op)
            if used_op >= quota:
                return Admission("quota", used_token, used_op)
            self._in_flight[token_id] = in_flight + 1
            self._token_day[token_day] = used_token + 1
            self._op_day[op_day] = used_op + 1
            self._token_op[token_id] = operation_id
            self._dirty.add(token_day)
            self._last_used[token_id] = time.time_ns() // 1000
        return Admission("ok", used_token + 1, used_op + 1)

    def release(self, token_id: str, lease: str = "") -> None:
        with self._lock:
            left = self._in_flight[token_id] - 1
            if left > 0:
                self._in_flight[token_id] = left
            else:
                del self._in_flight[token_id]

    def usage(self, token_id: str, operation_id: int, day: str) -> tuple[int, int]:
        with self._lock:
            return self._token_day.get((token_id, day), 0), self._op_day[(operation_id, day)]

    def flush(self) -> None:
        with self._lock:
            counts = {key: (self._token_op[key[0]], self._token_day[key]) for key in self._dirty}
            last_used = dict(self._last_used)
            self._dirty.clear()
            self._last_used.clear()
        try:
            self._storage.save_request_counts(counts, last_used)
        except Exception:
            with self._lock:
                self._dirty.update(counts)
                for token_id, when in last_used.items():
                    self._last_used.setdefault(token_id, when)
            raise

    def close(self) -> None:
        """Nothing to let go of: the state lives in this process."""
