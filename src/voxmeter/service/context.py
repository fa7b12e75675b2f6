"""What every service function needs: storage, catalog, clock, the month policy and who acts."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from voxmeter.domain.audit import SYSTEM
from voxmeter.domain.catalog import Catalog

S_co = TypeVar("S_co", covariant=True)


def system_clock() -> int:
    """Now, in integer microseconds since the epoch."""
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True)
class Context(Generic[S_co]):
    """`storage` is typed by the role ports a function uses: `Context[Tenancy]` for one that
    only reads tokens, `Context[Storage]` where everything is wired. `actor` is who the audit
    log names for the changes made through this context: each entrypoint sets it (`cli:<OS
    user>`, a token's id); the server's own work keeps `system`."""

    storage: S_co
    catalog: Catalog
    grace_days: int = 3
    clock: Callable[[], int] = field(default=system_clock)
    actor: str = SYSTEM
