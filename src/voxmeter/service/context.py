"""What every service function needs: storage, catalog, clock and the month policy."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from voxmeter.domain.catalog import Catalog
from voxmeter.service.ports import Storage


def system_clock() -> int:
    """Now, in integer microseconds since the epoch."""
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True)
class Context:
    storage: Storage
    catalog: Catalog
    grace_days: int = 3
    clock: Callable[[], int] = field(default=system_clock)
