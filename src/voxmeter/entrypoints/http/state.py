"""What the HTTP handlers share: the service context, limiter, authenticator and settings."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from voxmeter.config import Settings
from voxmeter.entrypoints.http.renewals import Renewals
from voxmeter.entrypoints.http.uploads import BODIES_PER_BUDGET, UploadBudget
from voxmeter.service.context import Context
from voxmeter.service.maintenance import MAINTENANCE
from voxmeter.service.ports import (
    AfterSweep,
    Changes,
    Limiter,
    LoopLimits,
    SecretSealing,
    Storage,
)
from voxmeter.service.statement_cache import StatementCache
from voxmeter.service.tenancy import Authenticator

__all__ = ["MAINTENANCE", "AppState", "MaintenanceFlag"]


@dataclass
class MaintenanceFlag:
    """The admin's maintenance switch, re-read from storage at most once a second.

    Read more than half its `ttl` ago, it is still answered from memory and handed to `renew`
    (when given) to be read again in the background, so that requests in steady flow never
    find it run out."""

    ctx: Context[Storage]
    ttl: float = 1.0
    clock: Callable[[], float] = time.monotonic
    _value: bool = field(default=False, init=False)
    _until: float = field(default=0.0, init=False)

    def known(self, renew: Callable[[], None] | None = None) -> bool:
        """Whether `on()` can answer from memory, without reading storage."""
        left = self._until - self.clock()
        if renew is not None and 0 < left < self.ttl / 2:
            renew()
        return left > 0

    def on(self) -> bool:
        if self.clock() >= self._until:
            self.refresh()
        return self._value

    def refresh(self) -> None:
        """Read the switch again (its time taken before the read, so it never lasts longer)."""
        now = self.clock()
        self._value = self.ctx.storage.setting(MAINTENANCE) == "on"
        self._until = now + self.ttl


@dataclass
class AppState:
    ctx: Context[Storage]
    settings: Settings
    limiter: Limiter
    auth: Authenticator
    local_reads: bool = False
    """Storage reads are local file reads (SQLite): a billing reply cache lookup may run on the
    event loop. Otherwise (PostgreSQL) every storage read runs in a worker thread."""
    loop_limits: LoopLimits | None = None
    """The shared limiter for the event loop, with `changes`: the scaled-out billing lane
    admits on the loop and answers from its reply cache while the data version holds."""
    changes: Changes | None = None
    sealing: SecretSealing | None = None
    """Opens mirrors' upstream tokens; without it (no deployment key) nothing is swept."""
    after_sweep: AfterSweep | None = None
    """Called after each sweep stored its readings (alert evaluation, "last synced")."""
    maintenance: MaintenanceFlag = field(init=False)
    renewals: Renewals = field(init=False)
    """Background re-reads of the token cache and the maintenance switch."""
    uploads: UploadBudget = field(init=False)
    openapi: bytes | None = field(default=None, init=False)
    """/openapi.json, encoded on first request."""
    statements: StatementCache = field(default_factory=StatementCache, init=False)
    """Statements read since the data last changed."""

    def __post_init__(self) -> None:
        self.maintenance = MaintenanceFlag(self.ctx)
        self.renewals = Renewals(
            self.auth.refresh, self.maintenance.refresh, on_loop=self.local_reads
        )
        self.uploads = UploadBudget(BODIES_PER_BUDGET * self.settings.max_body_bytes)
