"""When to retry and how long to wait: one policy shared by the sync and async clients.

Only transient failures are retried (network, timeouts, 5xx, concurrency, maintenance). Quota,
token and unknown-API errors never are: public Wolkvox clients that retry them burn the day's
quota or hammer a server that will keep saying no.
"""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

from voxmeter.client._errors import APIStatusError, VoxmeterClientError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, honouring `Retry-After` when the server sends one."""

    max_retries: int = 2
    """Retries after the first attempt (so `max_retries + 1` requests at most)."""
    initial_delay: float = 0.5
    """The first backoff before jitter, in seconds; doubled on each further retry."""
    max_delay: float = 8.0
    """Cap of the computed backoff."""
    max_retry_after: float = 60.0
    """A longer `Retry-After` is not waited out: the error is raised for the caller to decide."""
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be 0 or more")

    def backoff(self, attempt: int) -> float:
        """Attempt 0's wait is in (initial/2, initial]; "equal jitter" keeps a floor."""
        base = min(self.max_delay, self.initial_delay * (2**attempt))
        return float(base / 2 + self.rng.uniform(0, base / 2))

    def delay(self, attempt: int, error: VoxmeterClientError) -> float | None:
        """Seconds to wait before retry number `attempt + 1`, or None to raise `error`."""
        if not error.transient or attempt >= self.max_retries:
            return None
        wait = self.backoff(attempt)
        retry_after = error.retry_after if isinstance(error, APIStatusError) else None
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            wait = max(wait, retry_after)
        return wait


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
