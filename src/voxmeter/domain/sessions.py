"""Dashboard sign-in sessions: who a session is and when it lapses (pure rules, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

MICROS = 1_000_000
TOUCH_EVERY = 60 * MICROS
"""A session's last-seen time is written at most once a minute, not on every page."""


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: the token it signed in with and, for an operation's token, that
    operation (None: an admin token). The session's secret is never kept, only its hash."""

    token_id: str
    operation_id: int | None
    created: int
    last_seen: int

    @property
    def is_admin(self) -> bool:
        return self.operation_id is None

    def expired(self, now: int, idle_seconds: int) -> bool:
        """Idle longer than `idle_seconds` (or seen in the future, a clock gone back: kept)."""
        return now - self.last_seen > idle_seconds * MICROS

    def needs_touch(self, now: int) -> bool:
        return now - self.last_seen >= TOUCH_EVERY
